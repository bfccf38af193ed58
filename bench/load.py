"""Load benchmark: concurrent clients against a real server with analysed files loaded.

    python bench/load.py [--clients 16] [--seconds 60] [--files 10]

Starts ``sightline serve`` on a temporary home with a tiny CLIP as the visual model (the
search path is the real one; only the model is small), analyses ``--files`` copies of the
test videos plus a transcribed speech file, loads them, then runs the clients: each loops
over /search/text, /thumbnails, /transcriptions and /health for the given time. Prints JSON:
requests, errors, and p50/p99 latency per endpoint. Target: 0 errors.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import DATA, ProgressListener, sightline, start_server  # noqa: E402
from tests.tiny_models import build_tiny_clip  # noqa: E402

QUERIES = ["a deer in a forest", "a leaf on a rock", "numbers on a red background", "black screen",
           "a tyre tread", "someone speaking"]


def _prepare(tmp: Path, files: int):
    home = tmp / "srv"
    env_home = {"SIGHTLINE_HOME": str(home / "home"), "SIGHTLINE_MODELS_DIR": str(home / "home" / "models")}
    import os

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")}, **env_home}
    model = build_tiny_clip(tmp / "tiny-clip")
    sightline("models", "import", "tiny-clip", str(model), env=env)
    server = start_server(home)
    media = tmp / "media"
    media.mkdir()
    sources = ["testvideo.mp4", "counter.mp4", "fades.mp4"]
    videos = []
    for i in range(files):
        data = bytearray((DATA / sources[i % len(sources)]).read_bytes())
        data[-7] ^= (i + 1) % 255  # distinct content, distinct hash
        path = media / f"clip {i:02d}.mp4"
        path.write_bytes(bytes(data))
        videos.append(str(path))
    speech = str(Path(shutil.copy(DATA / "jfk.flac", media / "jfk.flac")))
    cache = str(tmp / "cache")
    with ProgressListener(server.base) as listener:
        started = server.post("/analyze", {"cache_dir": cache, "visual_media_paths": videos,
                                           "transcription_jobs": [{"path": speech}]}).json()
        listener.follow(started["task_id"], timeout=1800)
    server.post("/analysis-data/load", {"cache_dir": cache})
    return server, cache, videos, speech


def _client(server, cache, videos, speech, deadline, results, lock, seed):
    rng = random.Random(seed)
    session = requests.Session()
    session.headers["X-License-Key"] = server.pro_key
    while time.monotonic() < deadline:
        kind = rng.choice(["search", "thumbnails", "transcriptions", "health"])
        if kind == "search":
            args = ("/search/text", {"query": rng.choice(QUERIES), "cache_dir": cache, "search_all": True,
                                     "max_results": 20})
        elif kind == "thumbnails":
            args = ("/thumbnails", {"cache_dir": cache, "requests": [
                {"media_path": rng.choice(videos), "time_seconds": rng.randint(0, 2)} for _ in range(4)]})
        elif kind == "transcriptions":
            args = ("/transcriptions", {"cache_dir": cache, "media_paths": [speech]})
        else:
            args = None
        started = time.perf_counter()
        try:
            if args is None:
                response = session.get(f"{server.api}/health", timeout=30)
            else:
                response = session.post(server.api + args[0], json=args[1], timeout=30)
            ok = response.status_code == 200
        except requests.RequestException:
            ok = False
        elapsed = time.perf_counter() - started
        with lock:
            results.setdefault(kind, []).append((elapsed, ok))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--files", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server, cache, videos, speech = _prepare(Path(tmp), args.files)
        try:
            results: dict[str, list] = {}
            lock = threading.Lock()
            deadline = time.monotonic() + args.seconds
            threads = [threading.Thread(target=_client, args=(server, cache, videos, speech, deadline, results,
                                                              lock, i)) for i in range(args.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            server.stop()
    report = {"clients": args.clients, "seconds": args.seconds, "files_loaded": args.files, "endpoints": {}}
    total = errors = 0
    for kind, samples in sorted(results.items()):
        latencies = sorted(s[0] * 1000 for s in samples)
        failed = sum(1 for s in samples if not s[1])
        total += len(samples)
        errors += failed
        report["endpoints"][kind] = {
            "requests": len(samples), "errors": failed,
            "p50_ms": round(statistics.median(latencies), 1),
            "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
        }
    report.update({"requests": total, "errors": errors, "requests_per_second": round(total / args.seconds, 1)})
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
