"""/search/text through HTTP against the same search in process, in one run.

    python bench/search_http.py                    # 600 frames, then 1,000 h (3.6 M frames)
    python bench/search_http.py --hours 0          # 600 frames only
    python bench/search_http.py --hours 20         # a smaller "large" library while developing

Starts ``sightline serve`` on a temporary home with a randomly initialised ViT-B/32-sized CLIP
imported through ``sightline models import`` (built once into ``--model-dir``), writes
synthetic analysis data straight into a cache folder (embeddings shaped like real ones,
see bench/search.py, and real JPEG thumbnails at the pipeline's size and quality), loads it
and measures:

- ``in_process``: what a search must do, in this process with the same engine class, the
  same model and the same runtimes (``text_runtime``), one query at a time: encode the text, rank over the loaded frames (sampling, combining, top 50,
  per-video grouping), read and base64 the 50 thumbnails the answer carries.
- ``http_sequential``: ``POST /search/text`` (max_results 50, search_all) one at a time.
- ``http_clients``: ``--clients`` concurrent clients for ``--seconds``: requests/s, p50, p99.
- for the large library also the query worker's memory, the index's own bytes and
  recall@50 of the index's default path against exact search (in this process, same code).

Every query text is distinct (a counter in it), so a text-embedding cache never answers.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.search import Footage  # noqa: E402
from tests.conftest import sightline, start_server  # noqa: E402
from tests.tiny_models import WORDS, build_clip_vit_b32  # noqa: E402
from workers import store  # noqa: E402

MODEL_KEY = "bench-clip-b32"
FILE_FRAMES = 3600  # the large library: one-hour files
THUMBNAILS = 120  # distinct JPEGs, cycled through every file's pack


def _thumbnails(max_side: int = 384, quality: int = 65) -> list[bytes]:
    """Smooth, textured 384x216 frames, encoded as the analysis pipeline stores thumbnails
    (quality 65, encoded again lower above its 9 kB cap): this grain is as detailed as busy
    footage, so most land near the cap, above the 5 kB mean of ordinary footage."""
    from PIL import Image, ImageFilter

    from workers.pipeline.visual import encode_thumbnail

    rng = np.random.default_rng(1)
    out = []
    for _ in range(THUMBNAILS):
        base = rng.integers(0, 255, (27, 48, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((max_side, max_side * 9 // 16), Image.BICUBIC)
        grain = rng.normal(0, 12, (max_side * 9 // 16, max_side, 3))
        image = Image.fromarray(np.clip(np.asarray(image) + grain, 0, 255).astype(np.uint8))
        out.append(encode_thumbnail(np.asarray(image.filter(ImageFilter.SMOOTH)), quality))
    return out


def build_cache(cache: Path, frames: int, model_key: str, file_frames: int = FILE_FRAMES) -> list[str]:
    """Write analysis data for ``frames`` 1 fps frames; the packs are hard links of one pack."""
    footage = Footage()
    thumbs = _thumbnails()
    cache.mkdir(parents=True, exist_ok=True)
    proto = cache / "_pack"
    proto.mkdir(exist_ok=True)
    store.write_frames_pack(proto, [thumbs[i % len(thumbs)] for i in range(file_frames)])
    hashes = []
    for number, start in enumerate(range(0, frames, file_frames)):
        count = min(file_frames, frames - start)
        hash_str = f"{number + 1:016x}"
        folder = store.visual_dir(cache, hash_str)
        folder.mkdir(exist_ok=True)
        if count == file_frames:
            for name in (store.FRAMES_PACK, store.FRAMES_INDEX):
                if not (folder / name).exists():
                    os.link(proto / name, folder / name)
        else:
            store.write_frames_pack(folder, [thumbs[i % len(thumbs)] for i in range(count)])
        emb = footage.file(count)
        emb_path = store.embeddings_file(cache, hash_str, model_key)
        store.atomic_save_npy(emb_path, emb)
        scenes = [[s, min(s + 12, count)] for s in range(0, count, 12)]
        store.atomic_write_json(folder / store.MANIFEST, {
            "format_version": store.VISUAL_FORMAT_VERSION, "hash_str": hash_str,
            "media_path": f"/media/synthetic/{hash_str}.mp4", "kind": "video", "duration": float(count),
            "fps": 30.0, "width": 1280, "height": 720, "frame_count": count, "frames_complete": True,
            "scenes": scenes, "embeddings": {model_key: {"file": emb_path.name, "dim": int(emb.shape[1])}},
        })
        hashes.append(hash_str)
    return hashes


class Texts:
    """Distinct, plausible query texts."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.count = 0
        self.lock = threading.Lock()

    def next(self) -> str:
        with self.lock:
            self.count += 1
            words = " ".join(self.rng.choice(WORDS, 3))
            return f"a photo of {words} {self.count}"


def stats(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "mean_ms": round(float(ms.mean()), 1), "requests": len(ms)}


def in_process(model_dir: Path, cache: Path, hashes: list[str], queries: int, texts: Texts,
               runtime: str = "auto") -> dict:
    """One query at a time in this process: text encoding, cosine top-50 and the 50 thumbnails
    as base64. ``runtime="auto"`` is what the server's engine picks (texts on ONNX Runtime where
    that export agrees), so the reference does the same work as the query worker, not a slower
    one; ``"torch"`` is the issue's own yardstick (PyTorch ``get_text_features``)."""
    from workers.engines.catalogue import VISUAL, ModelSpec
    from workers.engines.visual import TransformersVisualEngine
    from workers.search import visual_search
    from workers.search.service import sync

    engine = TransformersVisualEngine(ModelSpec(MODEL_KEY, VISUAL, "clip", "bench"), model_dir, runtime=runtime)
    engine.load()
    entry = sync(str(cache), MODEL_KEY, {h: h for h in hashes}, generation=-1, build_now=True)
    seconds = []
    for i in range(queries + 3):
        started = time.perf_counter()
        text = engine.embed_texts([texts.next()])[0]
        grouped = visual_search(entry.index, text_vec=text, max_results=50)
        images = [base64.b64encode(store.read_frame_jpeg(store.visual_dir(cache, m["hash_str"]), m["frame_idx"]))
                  .decode("ascii") for m in grouped]
        assert len(images) == min(50, len(entry.index))
        if i >= 3:
            seconds.append(time.perf_counter() - started)
    return {**stats(seconds), "text_runtime": engine.text_runtime}


def _search(session: requests.Session, server, cache: Path, text: str, timeout: float = 60) -> float:
    started = time.perf_counter()
    response = session.post(f"{server.api}/search/text", json={
        "query": text, "cache_dir": str(cache), "search_all": True, "max_results": 50}, timeout=timeout)
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or len(response.json()["matches"]) == 0:
        raise RuntimeError(f"search failed: {response.status_code} {response.text[:300]}")
    return elapsed


def warm(server, cache: Path, texts: Texts, timeout: float = 900) -> None:
    """The query worker loads the model on its first search (exporting ONNX the first time)."""
    session = requests.Session()
    session.headers["X-License-Key"] = server.pro_key
    deadline = time.monotonic() + timeout
    while True:
        try:
            _search(session, server, cache, texts.next(), timeout=timeout)
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def http_sequential(server, cache: Path, queries: int, texts: Texts) -> dict:
    session = requests.Session()
    session.headers["X-License-Key"] = server.pro_key
    for _ in range(5):
        _search(session, server, cache, texts.next())
    return stats([_search(session, server, cache, texts.next()) for _ in range(queries)])


def http_clients(server, cache: Path, clients: int, seconds: float, texts: Texts) -> dict:
    results: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client():
        session = requests.Session()
        session.headers["X-License-Key"] = server.pro_key
        while time.monotonic() < deadline:
            try:
                elapsed = _search(session, server, cache, texts.next())
            except Exception:  # noqa: BLE001 - counted, the run goes on
                with lock:
                    errors[0] += 1
                continue
            with lock:
                results.append(elapsed)

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    return {"clients": clients, "seconds": round(wall, 1), "requests_per_second": round(len(results) / wall, 1),
            "errors": errors[0], **stats(results)}


def _query_worker_rss_gb() -> float | None:
    """Resident memory of the server's query worker(s) (``celery worker -Q query``)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"-Q" in cmdline and b"query" in cmdline and any(b"celery" in part for part in cmdline):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return round(total / 1e9, 2) if total else None


def recall_and_memory(cache: Path, hashes: list[str], queries: int) -> dict:
    """The index the query worker builds (same code), searched by its default path and exactly."""
    from workers.search import visual_search
    from workers.search.service import sync

    entry = sync(str(cache), MODEL_KEY, {h: h for h in hashes}, generation=-1, build_now=True)
    index = entry.index
    footage = Footage()  # the generator build_cache used: queries about the same topics as the frames
    texts = footage.texts(queries)
    got_hits = want_hits = 0
    for text in texts:
        fast = visual_search(index, text_vec=text, max_results=50)
        exact = visual_search(index, text_vec=text, max_results=50, exact=True)
        got_hits += len({(m["hash_str"], m["frame_idx"]) for m in fast}
                        & {(m["hash_str"], m["frame_idx"]) for m in exact})
        want_hits += len(exact)
    return {"index_memory_gb": round(index.memory_bytes() / 1e9, 3), "recall_at_50_vs_exact":
            round(got_hits / max(1, want_hits), 4), "recall_queries": queries}


def run_size(server, model_dir: Path, tmp: Path, frames: int, args, label: str) -> dict:
    cache = tmp / f"cache-{label}"
    started = time.perf_counter()
    hashes = build_cache(cache, frames, MODEL_KEY, file_frames=min(FILE_FRAMES, frames))
    out: dict = {"frames": frames, "hours": round(frames / 3600, 2), "files": len(hashes),
                 "build_cache_s": round(time.perf_counter() - started, 1)}
    rss_before = _query_worker_rss_gb()
    started = time.perf_counter()
    response = server.post("/analysis-data/load", {"cache_dir": str(cache)}, timeout=3600)
    response.raise_for_status()
    out["load_s"] = round(time.perf_counter() - started, 1)
    texts = Texts(frames)
    warm(server, cache, texts)
    out["in_process"] = in_process(model_dir, cache, hashes, args.queries, texts)
    if frames <= 100_000:
        out["in_process_pytorch_text"] = in_process(model_dir, cache, hashes, args.queries, texts, runtime="torch")
    out["http_sequential"] = http_sequential(server, cache, args.queries, texts)
    out["http_clients"] = http_clients(server, cache, args.clients, args.seconds, texts)
    reference = out["in_process"]
    out["http_over_in_process"] = {
        "p50": round(out["http_sequential"]["p50_ms"] / reference["p50_ms"], 2),
        "p99": round(out["http_sequential"]["p99_ms"] / reference["p99_ms"], 2)}
    if "in_process_pytorch_text" in out:
        torch_reference = out["in_process_pytorch_text"]
        out["http_over_in_process_pytorch_text"] = {
            "p50": round(out["http_sequential"]["p50_ms"] / torch_reference["p50_ms"], 2),
            "p99": round(out["http_sequential"]["p99_ms"] / torch_reference["p99_ms"], 2)}
    rss_after = _query_worker_rss_gb()
    if rss_before is not None and rss_after is not None:
        out["query_worker_rss_gb"] = {"before_load": rss_before, "after_load": rss_after}
    if frames > 100_000:
        out.update(recall_and_memory(cache, hashes, args.recall_queries))
    print(json.dumps({label: out}), file=sys.stderr, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=1000, help="the large library (0: skip it)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--recall-queries", type=int, default=50)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "tests" / ".tmp" / "bench-clip-b32")
    args = parser.parse_args()
    if not (args.model_dir / "config.json").exists():
        build_clip_vit_b32(args.model_dir)
    # Other processes' load moves every figure on a small machine: say how busy it was.
    report: dict = {"load_average_at_start": [round(x, 2) for x in os.getloadavg()],
                    "cpu_threads": len(os.sched_getaffinity(0)), "model": "random ViT-B/32-sized CLIP "
                    "(transformers CLIPModel, 512-d), imported with `sightline models import`"}
    with tempfile.TemporaryDirectory(dir=ROOT / "tests" / ".tmp") as folder:
        tmp = Path(folder)
        home = tmp / "srv"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")},
               "SIGHTLINE_HOME": str(home / "home"), "SIGHTLINE_MODELS_DIR": str(home / "home" / "models")}
        sightline("models", "import", MODEL_KEY, str(args.model_dir), env=env)
        server = start_server(home, {"SIGHTLINE_VISUAL_MODEL": MODEL_KEY, "SIGHTLINE_SEARCH_TIMEOUT_SECONDS": "900"})
        try:
            report["small"] = run_size(server, args.model_dir, tmp, 600, args, "small")
            if args.hours > 0:
                report["large"] = run_size(server, args.model_dir, tmp, int(args.hours * 3600), args, "large")
        finally:
            server.stop()
    report["targets"] = {"http_p50_over_in_process": 1.5, "http_p99_over_in_process_p99": 3.0,
                         "clients_requests_per_second": 60, "clients_p99_ms": 250, "large_p50_ms": 80,
                         "index_gb_per_1000_h": 2.0, "recall_at_50": 0.95}
    if "large" in report and "index_memory_gb" in report["large"]:
        report["large"]["index_gb_per_1000_h"] = round(
            report["large"]["index_memory_gb"] / max(report["large"]["hours"], 1e-9) * 1000, 3)
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
