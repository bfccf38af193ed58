"""Reliability campaign (fast parts): bad media, killed workers, Redis restarts, two workers.

Each test that breaks something starts its own server, so the shared one stays healthy.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import psutil
import pytest
import redis
import requests
from PIL import Image

from app.supervisor import free_port, redis_server_binary, wait_for_redis
from tests.conftest import BIN, DATA, ProgressListener, sightline, start_server
from tests.media_factory import jfk_samples, write_audio, write_video
from tests.text_match import words
from workers.exports.ffmpeg import ffmpeg_exe


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """A models folder with the tiny CLIP imported, shared by this module's servers."""
    home = tmp_path_factory.mktemp("models-home")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")},
           "SIGHTLINE_HOME": str(home), "SIGHTLINE_MODELS_DIR": str(home / "models")}
    sightline("models", "import", "tiny-clip", str(tiny_model_dir), env=env)
    return home / "models"


def _malformed_corpus(folder: Path) -> dict[str, Path]:
    """Files a studio's ingest folder really gets, and a few good ones among them."""
    good_video = DATA / "testvideo.mp4"
    corpus = {}
    data = good_video.read_bytes()
    for cut in (0.02, 0.3, 0.7):
        corpus[f"truncated_{cut}"] = folder / f"truncated_{int(cut * 100)}.mp4"
        corpus[f"truncated_{cut}"].write_bytes(data[: int(len(data) * cut)])
    corpus["zero"] = folder / "zero.mp4"
    corpus["zero"].write_bytes(b"")
    rng = np.random.default_rng(7)
    for ext in ("mp4", "mov", "jpg"):
        corpus[f"random_{ext}"] = folder / f"random.{ext}"
        corpus[f"random_{ext}"].write_bytes(rng.bytes(50_000))
    corpus["text_mp3"] = folder / "notes.mp3"
    corpus["text_mp3"].write_text("not audio at all\n" * 100)
    corpus["webp_named_jpg"] = folder / "really_webp.jpg"
    Image.new("RGB", (200, 120), (10, 200, 90)).save(corpus["webp_named_jpg"], "WEBP")
    corpus["huge_png_header"] = folder / "huge.png"
    # A valid PNG header that claims 20000 x 20000 pixels, and almost no data.
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    chunk = lambda kind, body: (struct.pack(">I", len(body)) + kind + body  # noqa: E731
                                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    corpus["huge_png_header"].write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                                          + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    corpus["no_frames"] = folder / "no_frames.mp4"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=4",
                    "-frames:v", "0", "-c:v", "mpeg4", str(corpus["no_frames"])], check=True)
    corpus["audio_only_mp4"] = folder / "audio_only.mp4"
    write_audio(corpus["audio_only_mp4"], jfk_samples(), codec="aac")
    corpus["vfr"] = folder / "variable_rate.mkv"
    with av.open(str(corpus["vfr"]), "w") as container:
        stream = container.add_stream("mpeg4", rate=1000)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        pts = 0
        for i in range(40):
            frame = av.VideoFrame.from_ndarray(np.full((64, 96, 3), (i * 6, 40, 40), np.uint8), format="rgb24")
            frame.pts = pts
            frame.time_base = stream.time_base
            pts += 100 if i % 2 else 400  # 0.1 s and 0.4 s gaps
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    corpus["spaces_unicode"] = folder / "Prüfung mit Leerzeichen – 東京.mp4"
    shutil.copy(DATA / "counter.mp4", corpus["spaces_unicode"])
    corpus["good_video"] = folder / "good.mp4"
    shutil.copy(DATA / "fades.mp4", corpus["good_video"])
    return corpus


def test_malformed_media_corpus_fails_file_by_file(server, tmp_path):
    corpus = _malformed_corpus(tmp_path)
    paths = [str(p) for p in corpus.values()]
    server.wait_idle()
    task_id, events = server.analyze({
        "cache_dir": str(tmp_path / "cache"),
        "visual_media_paths": paths,
        "transcription_jobs": [{"path": p} for p in paths],
        "face_clustering_jobs": [{"cluster_job_name": "corpus", "face_media_paths": paths}],
    }, timeout=600)
    final = events[-1]
    assert final["done"] is True and final["files_total"] == len(paths)
    outcome = {}
    for name, path in corpus.items():
        mine = [e for e in events if e.get("video_path") == str(path)]
        failed = [e for e in mine if e.get("status") == "failed"]
        finished = [e for e in mine if e.get("progress") == 100 and not e.get("error")]
        assert failed or finished, f"{name} got neither a result nor an error: {mine}"
        assert all(e["error"] for e in failed), name
        # A video without sound gets its visual result and a clear error for the speech part.
        outcome[name] = "result" if finished else "error"
    print("\nmalformed corpus outcome:", json.dumps(outcome, indent=1))
    for name in ("zero", "random_mp4", "random_mov", "random_jpg", "text_mp3", "huge_png_header", "no_frames",
                 "truncated_0.02"):
        assert outcome[name] == "error", name
    for name in ("good_video", "spaces_unicode", "webp_named_jpg", "vfr"):
        assert outcome[name] == "result", name
    assert final["files_failed"] == sum(1 for v in outcome.values() if v == "error")
    # The worker survived: the same server analyses a good file afterwards.
    _, after = server.analyze({"cache_dir": str(tmp_path / "cache2"), "visual_media_paths": [str(DATA / "counter.mp4")]})
    assert after[-1]["status"] == "completed"


def _analysis_worker_processes(server) -> list[psutil.Process]:
    supervisor = psutil.Process(server.process.pid)
    found = []
    for child in supervisor.children(recursive=False):
        if "-Q" in child.cmdline() and "analysis" in child.cmdline():
            found.append(child)
            found.extend(child.children(recursive=True))
    return found


def test_worker_killed_mid_analysis_fails_that_file_and_rerun_reuses_work(tmp_path, models_dir):
    server = start_server(tmp_path / "srv", extra_env={"SIGHTLINE_TASK_STALE_SECONDS": "10"},
                          models_dir=models_dir)
    try:
        long_speech = tmp_path / "long_speech.mp4"
        # Five and a half minutes of speech: long enough to be killed in the middle of on any machine.
        write_video(long_speech, 330, audio=jfk_samples(30))
        short = tmp_path / "short.mp4"
        shutil.copy(DATA / "counter.mp4", short)
        cache = tmp_path / "cache"
        body = {"cache_dir": str(cache), "visual_media_paths": [str(short)],
                "transcription_jobs": [{"path": str(long_speech)}]}
        inflight = redis.Redis.from_url(server.redis_url(), decode_responses=True)
        with ProgressListener(server.base) as listener:
            response = server.post("/analyze", body)
            task_id = response.json()["task_id"]
            listener.join(task_id)
            deadline = time.monotonic() + 180
            # The speech file (the second job) is being worked on: its worker registered it.
            while not (inflight.hget(f"sightline:inflight:{task_id}", "1")
                       and any(e.get("type") == "speech" for e in listener.events.get(task_id, []))):
                assert time.monotonic() < deadline, listener.events.get(task_id)
                time.sleep(0.1)
            victims = _analysis_worker_processes(server)
            assert victims
            for process in victims:
                process.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            deadline = killed_at + 30
            while not any(e.get("video_path") == str(long_speech) and e.get("status") == "failed"
                          for e in listener.events.get(task_id, [])):
                assert time.monotonic() < deadline, "the killed file was not reported failed within 30 s"
                time.sleep(0.2)
            print(f"\nkilled file reported failed after {time.monotonic() - killed_at:.1f} s")
            events = listener.follow(task_id, timeout=180)
        assert events[-1]["status"] in ("completed_with_errors", "failed")
        status = server.get(f"/tasks/{task_id}").json()
        assert status["failed"] >= 1 and status["state"] == events[-1]["status"]
        for manifest in cache.rglob("*.json"):
            json.loads(manifest.read_text())  # nothing torn
        for array in cache.rglob("*.npy"):
            np.load(array)
        # The restarted worker takes the same batch again: the finished file is reused.
        short_hash = server.post("/media/metadata", {"cache_dir": str(cache), "media_paths": [str(short)]}).json()[
            "media_properties"][str(short)]["hash_str"]
        pack = cache / short_hash / "frames.pack"
        before = pack.stat().st_mtime_ns if pack.exists() else None
        _, again = server.analyze(body, timeout=300)
        assert again[-1]["status"] == "completed", again[-1]
        if before is not None:
            assert pack.stat().st_mtime_ns == before
        transcript = server.post("/transcriptions", {"cache_dir": str(cache), "media_paths": [str(long_speech)]})
        assert "americans" in words("".join(row[1] for row in transcript.json()["transcriptions"][str(long_speech)]))
    finally:
        server.stop()


class ExternalRedis:
    """A redis-server the test controls (to stop and restart it under a running server)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen([redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no", "--dir", str(self.folder)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_redis(self.url)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _start_worker(server, redis_url: str, queues: str, log: Path) -> subprocess.Popen:
    env = {**server.env, "SIGHTLINE_REDIS_URL": redis_url}
    return subprocess.Popen([str(BIN / "sightline"), "worker", "--queues", queues], env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def test_redis_restart_gives_503_then_recovers_by_itself(tmp_path, models_dir):
    redis_server = ExternalRedis(tmp_path / "redis")
    redis_server.start()
    server = start_server(tmp_path / "srv", extra_env={"SIGHTLINE_REDIS_URL": redis_server.url},
                          models_dir=models_dir)
    worker = _start_worker(server, redis_server.url, "analysis,query", tmp_path / "worker.log")
    try:
        assert server.get("/models/loaded").status_code == 200
        redis_server.stop()
        during = [server.get("/models/loaded", timeout=30).status_code for _ in range(3)]
        assert set(during) == {503}, during
        assert requests.get(f"{server.api}/health", timeout=10).status_code == 200
        analyze_during = server.post("/analyze", {"cache_dir": str(tmp_path / "c"),
                                                  "visual_media_paths": [str(DATA / "counter.mp4")]})
        assert analyze_during.status_code == 503 and "error" in analyze_during.json()
        redis_server.start()
        deadline = time.monotonic() + 30
        while server.get("/models/loaded", timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "the API did not recover after Redis came back"
            time.sleep(0.5)
        _, events = server.analyze({"cache_dir": str(tmp_path / "c"),
                                    "visual_media_paths": [str(DATA / "counter.mp4")]}, timeout=120)
        assert events[-1]["status"] == "completed"
    finally:
        _stop(worker)
        server.stop()
        redis_server.stop()


def test_search_without_a_query_worker_is_a_503_in_time_and_waits_without_blocking(tmp_path, models_dir):
    """API and query worker on one Redis only (as on two machines); when the worker goes away,
    a search answers 503 within the search timeout, and while it waits the API serves others."""
    redis_server = ExternalRedis(tmp_path / "redis")
    redis_server.start()
    server = start_server(tmp_path / "srv", models_dir=models_dir,
                          extra_env={"SIGHTLINE_REDIS_URL": redis_server.url, "SIGHTLINE_SEARCH_TIMEOUT_SECONDS": "4"})
    worker = _start_worker(server, redis_server.url, "analysis,query", tmp_path / "worker.log")
    try:
        cache = str(tmp_path / "cache")
        _, events = server.analyze({"cache_dir": cache, "visual_media_paths": [str(DATA / "counter.mp4")]})
        assert events[-1]["status"] == "completed", events[-1]
        assert server.post("/analysis-data/load", {"cache_dir": cache}).status_code == 200
        query = {"query": "numbers", "cache_dir": cache, "search_all": True}
        deadline = time.monotonic() + 60
        while (answer := server.post("/search/text", query)).status_code == 503:  # the worker's first model load
            assert time.monotonic() < deadline, answer.text
        assert answer.status_code == 200 and len(answer.json()["matches"]) == 3, answer.text
        _stop(worker)

        result = {}
        waiting = threading.Thread(target=lambda: result.update(answer=server.post("/search/text", query)))
        started = time.monotonic()
        waiting.start()
        time.sleep(0.5)
        assert requests.get(f"{server.api}/health", timeout=10).status_code == 200
        assert waiting.is_alive(), "the search should still be waiting for a worker"
        waiting.join(timeout=30)
        answer = result["answer"]
        assert answer.status_code == 503 and "No query worker answered in time" in answer.json()["error"]
        assert time.monotonic() - started < 15
        # The unanswered search was taken back: a worker started now finds nothing stale waiting.
        assert redis.Redis.from_url(redis_server.url).llen("sightline:search:requests") == 0
        worker = _start_worker(server, redis_server.url, "query", tmp_path / "worker2.log")
        deadline = time.monotonic() + 60
        while (answer := server.post("/search/text", query)).status_code == 503:
            assert time.monotonic() < deadline, answer.text
        assert answer.status_code == 200 and len(answer.json()["matches"]) == 3, answer.text
    finally:
        _stop(worker)
        server.stop()
        redis_server.stop()


def test_two_workers_share_a_batch_with_identical_results(tmp_path, models_dir):
    redis_server = ExternalRedis(tmp_path / "redis")
    redis_server.start()
    server = start_server(tmp_path / "srv", extra_env={"SIGHTLINE_REDIS_URL": redis_server.url},
                          models_dir=models_dir)
    workers = [_start_worker(server, redis_server.url, "analysis", tmp_path / f"worker{i}.log") for i in range(2)]
    try:
        files = []
        for i in range(6):
            data = bytearray((DATA / "testvideo.mp4").read_bytes())
            data[-5] ^= i + 1
            path = tmp_path / f"clip{i}.mp4"
            path.write_bytes(bytes(data))
            files.append(str(path))
        _, events = server.analyze({"cache_dir": str(tmp_path / "two"), "visual_media_paths": files}, timeout=600)
        assert events[-1]["status"] == "completed", events[-1]
        by_worker = {}
        for event in events:
            if event.get("worker") and event.get("progress") == 100 and event.get("video_path"):
                by_worker.setdefault(event["worker"], set()).add(event["video_path"])
        assert len(by_worker) == 2, f"both workers should have analysed files: {by_worker}"
        assert set().union(*by_worker.values()) == set(files)
        # A second API process on the same Redis sees the same loaded data and answers alike.
        workers.append(_start_worker(server, redis_server.url, "query", tmp_path / "query.log"))
        second = start_server(tmp_path / "srv", extra_env={"SIGHTLINE_REDIS_URL": redis_server.url},
                              models_dir=models_dir)
        try:
            assert server.post("/analysis-data/load", {"cache_dir": str(tmp_path / "two")}).status_code == 200
            query = {"query": "a leaf on a rock", "cache_dir": str(tmp_path / "two"), "search_all": True}
            first_answer = server.post("/search/text", query)
            second_answer = requests.post(f"{second.api}/search/text", json=query, timeout=60,
                                          headers={"X-License-Key": server.pro_key})
            assert first_answer.status_code == second_answer.status_code == 200, second_answer.text
            assert first_answer.json() == second_answer.json()
        finally:
            second.process.send_signal(signal.SIGINT)
            second.process.wait(timeout=30)
        _stop(workers.pop())
        _stop(workers.pop())
        _, single = server.analyze({"cache_dir": str(tmp_path / "one"), "visual_media_paths": files}, timeout=600)
        assert single[-1]["status"] == "completed"
        two = sorted((tmp_path / "two").rglob("emb-*.npy"))
        one = sorted((tmp_path / "one").rglob("emb-*.npy"))
        assert [p.relative_to(tmp_path / "two") for p in two] == [p.relative_to(tmp_path / "one") for p in one]
        for a, b in zip(two, one, strict=True):
            assert np.array_equal(np.load(a), np.load(b))
    finally:
        for worker in workers:
            _stop(worker)
        server.stop()
        redis_server.stop()


def test_keys_are_never_logged_and_paths_outside_roots_are_refused(tmp_path, models_dir):
    media_root = tmp_path / "media"
    export_root = tmp_path / "exports"
    media_root.mkdir()
    export_root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.mp4"
    shutil.copy(DATA / "counter.mp4", secret)
    inside = media_root / "ok.mp4"
    shutil.copy(DATA / "counter.mp4", inside)
    (media_root / "link_out.mp4").symlink_to(secret)
    (export_root / "escape").symlink_to(outside)
    server = start_server(tmp_path / "srv", models_dir=models_dir, extra_env={
        "SIGHTLINE_MEDIA_ROOTS": str(media_root), "SIGHTLINE_EXPORT_ROOTS": str(export_root)})
    try:
        cache = str(export_root / "cache")
        ok = server.post("/media/metadata", {"cache_dir": cache, "media_paths": [str(inside)]})
        assert ok.status_code == 200
        for path in (str(secret), str(media_root / ".." / "outside" / "secret.mp4"), str(media_root / "link_out.mp4")):
            refused = server.post("/media/metadata", {"cache_dir": cache, "media_paths": [path]})
            assert refused.status_code == 403, (path, refused.text)
            assert server.post("/analyze", {"cache_dir": cache, "visual_media_paths": [path]}).status_code == 403
        assert server.post("/media/metadata", {"cache_dir": str(outside), "media_paths": [str(inside)]}).status_code == 403
        clips = server.post("/export/clips", {"clips": [{"source_path": str(inside), "start_seconds": 0,
                                                         "end_seconds": 1}],
                                              "output_dir": str(export_root / "escape")})
        assert clips.status_code == 403
        xml = server.post("/export/premiere-xml", {"clips": [{"source_path": str(inside), "start_seconds": 0,
                                                               "end_seconds": 1}],
                                                    "output_path": str(export_root / ".." / "outside" / "x.xml")})
        assert xml.status_code == 403
        assert not (outside / "x.xml").exists()
        server.request("GET", "/models/loaded", key="sl-pro-wrong-key-for-the-log")
        log = server.log
        assert server.pro_key not in log and "sl-pro-wrong-key-for-the-log" not in log
    finally:
        server.stop()
