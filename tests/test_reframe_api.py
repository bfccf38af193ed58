"""The reframe pipeline (API v2) end to end through HTTP, on both databases: a real server
with real Celery workers, a two-person talking clip built from real recordings, ingest from
a local HTTP server and from paths, every analysis, the reframe render, status and Socket.IO
progress, downloads with Range, credits, and bad input.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import pytest
import requests

from tests.conftest import ProgressListener, free_port, sightline, start_server
from tests.reframe_media import ffmpeg, two_person_clip

FPS = 25.0
SECONDS = 6.0  # left person talks in the first 3 s, right person in the last 3 s
INGEST_LIMIT = 3_000_000


# --- fixtures: media, a local web server, a fake LLM endpoint, one server per database ---------


@pytest.fixture(scope="session")
def v2_media(session_tmp) -> Path:
    folder = session_tmp / "v2-media"
    folder.mkdir()
    two_person_clip(folder / "two.mp4")
    subprocess.run([ffmpeg(), "-y", "-loglevel", "error", "-i", str(folder / "two.mp4"), "-an", "-c:v", "copy",
                    str(folder / "silent.mp4")], check=True, timeout=60)
    (folder / "notes.txt").write_text("this is not a video\n" * 50)
    (folder / "page.html").write_text("<html><body>a page about a video</body></html>")
    (folder / "huge.mp4").write_bytes(b"\0" * (INGEST_LIMIT + 1024))
    return folder


@pytest.fixture(scope="session")
def web(v2_media) -> str:
    handler = partial(SimpleHTTPRequestHandler, directory=str(v2_media))
    handler.log_message = lambda *a: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.handle_error = lambda *a: None  # a client that stops reading (the size limit) is expected
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class FakeLLM:
    """An OpenAI-compatible chat endpoint that keeps whoever sits on the right in frame."""

    def __init__(self):
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                scenes = json.loads(body["messages"][-1]["content"])["scenes"]
                picks = [{"scene": s["scene"], "reason": "the editor asked for the right",
                          "face_id": next((f["face_id"] for f in s["faces"] if f["position"] == "right"), None)}
                         for s in scenes]
                reply = {"id": "x", "object": "chat.completion", "model": body["model"],
                         "choices": [{"index": 0, "message": {"role": "assistant", "content":
                                      "```json\n" + json.dumps({"scenes": picks}) + "\n```"},
                                      "finish_reason": "stop"}]}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


@pytest.fixture(scope="session")
def llm():
    fake = FakeLLM()
    yield fake
    fake.httpd.shutdown()


@pytest.fixture(scope="session")
def v2(database_url, session_tmp, v2_media, llm):
    name = "pg" if database_url.startswith("postgresql") else "sqlite"
    srv = start_server(session_tmp / f"v2-{name}", extra_env={
        "SIGHTLINE_DATABASE_URL": database_url, "SIGHTLINE_MEDIA_ROOTS": str(v2_media),
        "SIGHTLINE_LLM_URL": llm.url, "SIGHTLINE_LLM_MODEL": "fake-director", "SIGHTLINE_LLM_KEY": "sk-test",
        "SIGHTLINE_INGEST_MAX_BYTES": str(INGEST_LIMIT)})
    yield srv
    srv.stop()


# --- helpers ------------------------------------------------------------------------------------


def call(srv, method: str, path: str, key: str | None = "pro", **kwargs) -> requests.Response:
    headers = kwargs.pop("headers", {})
    if key:
        headers["X-License-Key"] = {"pro": srv.pro_key, "basic": srv.basic_key}.get(key, key)
    kwargs.setdefault("timeout", 60)
    return requests.request(method, f"{srv.base}/api/v2{path}", headers=headers, **kwargs)


def wait_step(srv, video_id: str, step: str, key: str = "pro", timeout: float = 400) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = call(srv, "GET", f"/status/{video_id}", key=key)
        assert status.status_code == 200, status.text
        body = status.json()
        if body["step"] == step and body["status"] in ("completed", "failed"):
            return body
        time.sleep(0.5)
    raise AssertionError(f"{step} of {video_id} did not finish: {body}\n{srv.log[-3000:]}")


def ingest(srv, url: str, key: str = "pro") -> dict:
    reply = call(srv, "POST", "/ingest", key=key, json={"url": url})
    assert reply.status_code == 202, reply.text
    video_id = reply.json()["video_id"]
    return {"video_id": video_id, **wait_step(srv, video_id, "ingest", key=key)}


def run(srv, video_id: str, kind: str, name: str, parameters: dict | None = None, key: str = "pro") -> dict:
    route, field = ("/analyze", "model_type") if kind == "analyze" else ("/transform", "transform_type")
    body = {"video_id": video_id, field: name, **({"parameters": parameters} if parameters is not None else {})}
    reply = call(srv, "POST", route, key=key, json=body)
    assert reply.status_code == 202, reply.text
    assert reply.json() == {"video_id": video_id, field: name, "status": "queued"}
    done = wait_step(srv, video_id, name, key=key)
    assert done["status"] == "completed", done
    assert done["progress"] == 100
    return done["result"]


def gray_frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="gray").astype(np.float32) for f in container.decode(video=0)]


def crop_centre(source: np.ndarray, crop: np.ndarray) -> float:
    """Where in the source frame the output frame was cut from (centre x, by best match)."""
    width = crop.shape[1]
    errors = [np.abs(source[:, x:x + width] - crop).mean() for x in range(0, source.shape[1] - width + 1, 2)]
    return int(np.argmin(errors)) * 2 + width / 2


# --- the pipeline ---------------------------------------------------------------------------------


def test_pipeline_from_http_ingest_to_reframed_download(v2, web, v2_media, tmp_path):
    with ProgressListener(v2.base) as listener:
        reply = call(v2, "POST", "/ingest", json={"url": f"{web}/two.mp4"})
        assert reply.status_code == 202
        video_id = reply.json()["video_id"]
        listener.join(video_id)
        ingested = wait_step(v2, video_id, "ingest")
        assert ingested["status"] == "completed", ingested
        assert abs(ingested["result"]["duration"] - SECONDS) < 0.1 and ingested["result"]["width"] == 720

        scenes = run(v2, video_id, "analyze", "scene_detection")
        assert scenes["model"] == "scene_detection" and scenes["video_fps"] == FPS
        assert abs(scenes["total_frames"] - SECONDS * FPS) <= 1 and scenes["scenes"]
        assert set(scenes["scenes"][0]) == {"start", "end", "start_frame", "end_frame"}

        # Active speaker before face tracking: it runs face tracking itself first.
        speaker = run(v2, video_id, "analyze", "active_speaker",
                      {"face_tracking_model": "face_tracking_yolov8"})
        assert speaker["model"] == "active_speaker" and speaker["track_count"] == len(speaker["tracks"]) >= 2
        tracks = call(v2, "GET", f"/download/{video_id}", params={"suffix": "_face_tracking_yolov8"})
        assert tracks.status_code == 200 and tracks.headers["Content-Type"].startswith("application/json")
        faces = tracks.json()
        side = {t["face_id"]: np.mean([b["x"] + b["width"] / 2 for b in t["boxes"]]) < 360 for t in faces["tracks"]}
        talk = {}
        for track in speaker["tracks"]:
            assert set(track) >= {"face_id", "first_seen", "last_seen", "speaking_fraction", "scores"}
            first = [s["speaking"] for s in track["scores"] if s["timestamp"] < SECONDS / 2]
            second = [s["speaking"] for s in track["scores"] if s["timestamp"] >= SECONDS / 2]
            talk[track["face_id"]] = (np.mean(first or [0]), np.mean(second or [0]))
        left = [talk[f] for f, is_left in side.items() if is_left and f in talk]
        right = [talk[f] for f, is_left in side.items() if not is_left and f in talk]
        assert max(t[0] for t in left) > max(t[1] for t in left), talk  # the left one talks first
        assert max(t[1] for t in right) > max(t[0] for t in right), talk

        result = run(v2, video_id, "transform", "reframe", {"face_tracking_model": "face_tracking_yolov8"})
        assert (result["width"], result["height"]) == (162, 288) and result["aspect_ratio"] == "9:16"

        # Status progression over Socket.IO: queued → running (with the input it ran) → completed.
        time.sleep(1.0)
        events = [e for e in listener.events.get(video_id, []) if e.get("step") == "active_speaker"]
        statuses = [e["status"] for e in events]
        assert "running" in statuses and statuses[-1] == "completed", statuses
        assert any(e.get("running") == "face_tracking_yolov8" for e in events)
        progress = [e["progress"] for e in events if e["status"] == "running"]
        assert progress == sorted(progress)

        # The same step with the same parameters again: the stored result, not a second run.
        again = run(v2, video_id, "analyze", "scene_detection")
        assert again == scenes
        time.sleep(1.0)
        scene_events = [e for e in listener.events.get(video_id, []) if e.get("step") == "scene_detection"]
        assert scene_events[-1]["status"] == "completed" and scene_events[-1].get("reused") is True, scene_events
        assert sum(1 for e in scene_events if e.get("reused")) == 1, scene_events

    # Range: a player seeks without fetching the whole file.
    part = call(v2, "GET", f"/download/{video_id}", params={"suffix": "_reframe"}, headers={"Range": "bytes=0-1023"})
    assert part.status_code == 206 and len(part.content) == 1024
    total = int(part.headers["Content-Range"].split("/")[1])
    whole = call(v2, "GET", f"/download/{video_id}", params={"suffix": "_reframe"})
    assert whole.status_code == 200 and len(whole.content) == total and whole.content[:1024] == part.content
    out = tmp_path / "vertical.mp4"
    out.write_bytes(whole.content)
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio
        assert (video.codec_context.width, video.codec_context.height) == (162, 288)
        assert float(video.average_rate) == FPS and len(audio) == 1
    frames = gray_frames(out)
    assert abs(len(frames) - SECONDS * FPS) <= 1
    source = gray_frames(v2_media / "two.mp4")
    assert crop_centre(source[40], frames[40]) < 360  # 1.6 s: the left person is talking
    assert crop_centre(source[140], frames[140]) > 360  # 5.6 s: the right person is talking

    original = call(v2, "GET", f"/download/{video_id}")
    assert original.status_code == 200 and original.content == (v2_media / "two.mp4").read_bytes()



def test_transcription_and_diarization(v2, v2_media):
    video_id = ingest(v2, str(v2_media / "two.mp4"))["video_id"]
    diarization = run(v2, video_id, "analyze", "diarization")
    assert diarization["num_speakers"] >= 1 and diarization["segments"]
    assert any(s["start"] < SECONDS / 2 for s in diarization["segments"])
    assert any(s["end"] > SECONDS / 2 + 0.5 for s in diarization["segments"])
    text = run(v2, video_id, "analyze", "transcription", {"language": "en"})
    assert text["language"] == "en" and text["segments"]
    words = [w for s in text["segments"] for w in s["words"]]
    assert words and all(0 <= w["start"] <= w["end"] <= SECONDS + 0.5 for w in words)
    assert any(w["start"] < SECONDS / 2 for w in words) and any(w["start"] > SECONDS / 2 for w in words)
    labels = {s["speaker"] for s in diarization["segments"]}
    assert all(s["speaker"] in labels for s in text["segments"])  # speakers from the diarization
    stored = call(v2, "GET", f"/download/{video_id}", params={"suffix": "_transcription"}).json()
    assert stored == text


def test_reframe_llm_follows_the_llm_choice(v2, v2_media, llm, tmp_path):
    video_id = ingest(v2, f"file://{v2_media / 'two.mp4'}")["video_id"]
    llm.requests.clear()
    result = run(v2, video_id, "transform", "reframe_llm", {"prompt": "Keep the woman on the right in frame",
                                                              "aspect_ratio": "1:1"})
    assert (result["width"], result["height"]) == (288, 288)
    assert len(llm.requests) == 1
    sent = llm.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-test"
    assert sent["body"]["model"] == "fake-director"
    assert "Keep the woman on the right in frame" in sent["body"]["messages"][-1]["content"]
    told = json.loads(sent["body"]["messages"][-1]["content"])["scenes"]
    assert any(line["text"] for scene in told for line in scene["speech"])  # the transcript went along
    # The diarization stored by the test before (same content) ties voices to faces.
    assert any(f.get("voice") for scene in told for f in scene["faces"])
    assert result["llm"]["choices"] and all(c["face_id"] is not None for c in result["llm"]["choices"])
    out = tmp_path / "square.mp4"
    out.write_bytes(call(v2, "GET", f"/download/{video_id}", params={"suffix": "_reframe"}).content)
    frames, source = gray_frames(out), gray_frames(v2_media / "two.mp4")
    # The left person talks at 1.6 s, but the LLM chose the right one.
    assert crop_centre(source[40], frames[40]) > 360


def test_a_silent_video_is_reframed_on_its_faces(v2, v2_media, tmp_path):
    video_id = ingest(v2, str(v2_media / "silent.mp4"))["video_id"]
    result = run(v2, video_id, "transform", "reframe", {"aspect_ratio": "4:5"})
    assert (result["width"], result["height"]) == (230, 288)
    out = tmp_path / "silent-vertical.mp4"
    out.write_bytes(call(v2, "GET", f"/download/{video_id}", params={"suffix": "_reframe"}).content)
    with av.open(str(out)) as container:
        assert not container.streams.audio and container.streams.video[0].codec_context.width == 230
    assert abs(len(gray_frames(out)) - SECONDS * FPS) <= 1
    # Without sound, an analysis of sound fails with its reason; nothing crashes.
    failed = call(v2, "POST", "/analyze", json={"video_id": video_id, "model_type": "diarization"})
    assert failed.status_code == 202
    assert wait_step(v2, video_id, "diarization")["status"] == "failed"


def test_ingest_by_path_reuses_the_stored_file(v2, v2_media, tmp_path):
    first = ingest(v2, str(v2_media / "two.mp4"))
    copy = v2_media / "copy-of-two.mp4"
    shutil.copy(v2_media / "two.mp4", copy)
    second = ingest(v2, f"file://{copy}")
    assert first["status"] == second["status"] == "completed"
    assert second["result"]["reused_stored_file"] is True
    a = call(v2, "GET", f"/download/{first['video_id']}").content
    b = call(v2, "GET", f"/download/{second['video_id']}").content
    assert a == b == (v2_media / "two.mp4").read_bytes()


# --- credits ----------------------------------------------------------------------------------------


def _balance(srv, label: str) -> str:
    return sightline("keys", "credits", label, env=srv.env).stdout.strip().split("\t")[-1]


def test_credits_charge_once_per_video(v2, v2_media):
    label = f"metered-{time.monotonic_ns()}"
    key = sightline("keys", "create", "--tier", "pro", "--label", label, "--credits", "3",
                    env=v2.env).stdout.split()[-1]
    video_id = ingest(v2, str(v2_media / "two.mp4"), key=key)["video_id"]
    run(v2, video_id, "transform", "reframe", key=key)

    short = call(v2, "GET", f"/download/{video_id}", key=key, params={"suffix": "_reframe"})
    assert short.status_code == 402
    assert short.json() == {"error": short.json()["error"], "credits_needed": 6, "credits_left": 3}
    assert _balance(v2, label) == "3 credits"  # nothing taken
    # Analysis results are not charged.
    assert call(v2, "GET", f"/download/{video_id}", key=key, params={"suffix": "_scene_detection"}).ok

    sightline("keys", "credits", label, "--add", "10", env=v2.env)
    replies: list[requests.Response] = []

    def fetch():
        replies.append(call(v2, "GET", f"/download/{video_id}", key=key, params={"suffix": "_reframe"}))

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in replies] == [200] * 4
    assert len({r.content for r in replies}) == 1
    assert _balance(v2, label) == "7 credits"  # 13 - 6, once
    assert call(v2, "GET", f"/download/{video_id}", key=key, params={"suffix": "_reframe"}).ok
    assert _balance(v2, label) == "7 credits"


# --- bad input ----------------------------------------------------------------------------------------


def test_bad_input_is_refused_and_nothing_is_lost(v2, web, v2_media, tmp_path):
    good = ingest(v2, str(v2_media / "two.mp4"))["video_id"]

    assert call(v2, "POST", "/ingest", key=None, json={"url": f"{web}/two.mp4"}).status_code == 401
    assert call(v2, "POST", "/ingest", key="basic", json={"url": f"{web}/two.mp4"}).status_code == 403
    outside = tmp_path / "outside.mp4"
    shutil.copy(v2_media / "two.mp4", outside)
    for url in (str(outside), f"file://{outside}", str(v2_media / ".." / "outside.mp4")):
        reply = call(v2, "POST", "/ingest", json={"url": url})
        assert reply.status_code == 403 and "SIGHTLINE_MEDIA_ROOTS" in reply.json()["error"]
    for body in ({"url": "ftp://example.com/a.mp4"}, {"url": "relative/a.mp4"}, {}, {"url": 5}):
        reply = call(v2, "POST", "/ingest", json=body)
        assert reply.status_code == 400 and "error" in reply.json()

    failures = {
        f"{web}/notes.txt": "not a media file",
        f"{web}/page.html": "web page",
        f"{web}/missing.mp4": "HTTP 404",
        f"http://127.0.0.1:{free_port()}/two.mp4": "unreachable",
        f"{web}/huge.mp4": "too large",
        str(v2_media / "notes.txt"): "not a media file",
    }
    for url, reason in failures.items():
        failed = ingest(v2, url)
        assert failed["status"] == "failed" and reason in failed["error"], (url, failed)
    conflict = call(v2, "POST", "/analyze", json={"video_id": failed["video_id"], "model_type": "scene_detection"})
    assert conflict.status_code == 409

    unknown = "0" * 32
    other_key = sightline("keys", "create", "--tier", "pro", env=v2.env).stdout.split()[-1]
    for key in ("pro", other_key):
        video = unknown if key == "pro" else good  # another key's video is as unknown as a made-up id
        assert call(v2, "GET", f"/status/{video}", key=key).status_code == 404
        assert call(v2, "GET", f"/download/{video}", key=key).status_code == 404
        assert call(v2, "POST", "/analyze", key=key,
                    json={"video_id": video, "model_type": "scene_detection"}).status_code == 404
        assert call(v2, "POST", "/transform", key=key,
                    json={"video_id": video, "transform_type": "reframe"}).status_code == 404

    bad_requests = [
        ("/analyze", {"video_id": good, "model_type": "face_tracking_yolov9"}),
        ("/analyze", {"video_id": good, "model_type": "diarization", "parameters": {"num_speakers": 0}}),
        ("/analyze", {"video_id": good, "model_type": "scene_detection", "parameters": {"threshold": 3}}),
        ("/analyze", {"video_id": good, "model_type": "active_speaker",
                      "parameters": {"face_tracking_model": "yolov5"}}),
        ("/analyze", {"video_id": good, "model_type": "scene_detection", "parameters": [1]}),
        ("/transform", {"video_id": good, "transform_type": "zoom"}),
        ("/transform", {"video_id": good, "transform_type": "reframe", "parameters": {"aspect_ratio": "2:1"}}),
    ]
    for route, body in bad_requests:
        reply = call(v2, "POST", route, json=body)
        assert reply.status_code == 400 and reply.json()["error"], (body, reply.text)
    assert re.search("parameters", call(v2, "POST", "/analyze", json=bad_requests[2][1]).json()["error"])
    assert call(v2, "GET", f"/download/{good}", params={"suffix": "_thumbnails"}).status_code == 400
    assert call(v2, "GET", f"/download/{good}", params={"suffix": "_reframe"}).status_code == 404

    # Nothing lost: the good video is still there, still ingested, still downloadable.
    status = call(v2, "GET", f"/status/{good}").json()
    assert status["step"] == "ingest" and status["status"] == "completed"
    assert call(v2, "GET", f"/download/{good}").content == (v2_media / "two.mp4").read_bytes()
    assert "Traceback" not in v2.log


def test_reframe_llm_without_an_endpoint_names_the_setting(server):
    reply = requests.post(f"{server.base}/api/v2/transform", headers={"X-License-Key": server.pro_key},
                          json={"video_id": "0" * 32, "transform_type": "reframe_llm"}, timeout=30)
    assert reply.status_code == 400 and "SIGHTLINE_LLM_URL" in reply.json()["error"]


def test_openapi_document_lists_the_v2_routes(v2):
    from openapi_spec_validator import validate

    doc = requests.get(f"{v2.base}/api/v2/openapi.json", timeout=30).json()
    validate(doc)
    assert {"/api/v2/ingest", "/api/v2/analyze", "/api/v2/transform", "/api/v2/status/{video_id}",
            "/api/v2/download/{video_id}"} <= set(doc["paths"])
    v1 = requests.get(f"{v2.base}/api/v1/openapi.json", timeout=30).json()
    assert not any(path.startswith("/api/v2") for path in v1["paths"])
