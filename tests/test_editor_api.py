"""The editing backend through HTTP on real media, on SQLite and PostgreSQL.

``counter.mp4`` (../shared/testdata/video) is 30 frames at 10 fps, 1920x1080, each showing its
own number: a frame that comes back is matched against the 30 decoded source frames, which
proves frame accuracy of previews, splits, variants and exports.
"""

from __future__ import annotations

import http.server
import json
import shutil
import threading
import time
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest
import requests
from openapi_spec_validator import validate
from PIL import Image

from tests.conftest import ProgressListener, sightline, start_server

COUNTER = Path(__file__).resolve().parent.parent / ".." / "shared" / "testdata" / "video" / "counter.mp4"


def _small(gray: np.ndarray) -> np.ndarray:
    """Downscaled, zero-mean and unit-variance: a brightened frame still matches its number."""
    small = np.asarray(Image.fromarray(gray).resize((192, 108), Image.BILINEAR), dtype=np.float32)
    return (small - small.mean()) / (small.std() + 1e-6)


@pytest.fixture(scope="module")
def reference_frames() -> list[np.ndarray]:
    with av.open(str(COUNTER)) as container:
        return [_small(f.to_ndarray(format="gray")) for f in container.decode(video=0)]


def frame_number(image: Image.Image | np.ndarray, reference) -> int:
    gray = np.asarray(image.convert("L")) if isinstance(image, Image.Image) else image
    small = _small(gray)
    errors = [float(np.abs(small - r).mean()) for r in reference]
    best = int(np.argmin(errors))
    runner_up = sorted(errors)[1]
    assert errors[best] < 0.5 * runner_up, f"no clear counter frame (errors {errors[best]:.4f}, {runner_up:.4f})"
    return best


class Client:
    def __init__(self, server, key):
        self.server, self.key = server, key

    def call(self, method, path, **kwargs):
        headers = kwargs.pop("headers", {})
        if self.key:
            headers["X-License-Key"] = self.key
        return requests.request(method, f"{self.server.base}/api{path}", headers=headers, timeout=300, **kwargs)

    def ok(self, method, path, status=200, **kwargs):
        response = self.call(method, path, **kwargs)
        assert response.status_code == status, response.text
        return response.json()


@pytest.fixture(scope="module")
def editor(database_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("editor")
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp / 'editor.db'}"
    media = tmp / "media"
    media.mkdir()
    shutil.copy(COUNTER, media / "counter.mp4")
    server = start_server(tmp, extra_env={"SIGHTLINE_DATABASE_URL": database_url})
    other = sightline("keys", "create", "--tier", "basic", "--label", "other", env=server.env).stdout.split()[-1]
    yield {"server": server, "a": Client(server, server.pro_key), "b": Client(server, other),
           "anon": Client(server, None), "media": media}
    server.stop()


def _project(client, media, name="p") -> dict:
    return client.ok("POST", "/project", 201, json={"name": name, "video_url": str(media / "counter.mp4")})


def _jpeg(url: str) -> Image.Image:
    response = requests.get(url, timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/jpeg"
    from io import BytesIO

    return Image.open(BytesIO(response.content))


def _wait(client, path, key="status", timeout=240) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.ok("GET", path)
        if body[key] in ("completed", "failed") or time.monotonic() > deadline:
            return body
        time.sleep(0.3)


def test_health_me_and_keys(editor):
    anon, a = editor["anon"], editor["a"]
    assert anon.ok("GET", "/health")["status"] == "ok"
    assert anon.call("GET", "/me").status_code == 401
    me = a.ok("GET", "/me")
    assert me["tier"] == "pro" and me["label"] == "tests" and me["credits"] is None and me["created_at"]
    assert editor["b"].ok("GET", "/me")["tier"] == "basic"
    health = a.ok("GET", "/ai/health")
    offline = next(p for p in health["providers"] if p["name"] == "offline")
    assert health["provider"] == "offline" and offline["usable"] and offline["capabilities"]
    http = next(p for p in health["providers"] if p["name"] == "http")
    assert not http["usable"] and "SIGHTLINE_AI_URL" in http["detail"]
    # The editor's own OpenAPI document, and /api/v1 is not shadowed by /api.
    spec = anon.ok("GET", "/openapi.json")
    validate(spec)
    assert "/api/segment/{segment_id}/split" in spec["paths"] and "/api/v1/health" not in spec["paths"]
    assert requests.get(f"{editor['server'].api}/health", timeout=10).status_code == 200


def test_projects_belong_to_their_key(editor):
    a, b, media = editor["a"], editor["b"], editor["media"]
    project = _project(a, media, "mine")
    assert project["duration"] == pytest.approx(3.0)
    assert [s["start_ts"] for s in project["segments"]] == [0.0] and project["assets"][0]["status"] == "ready"
    segment = project["segments"][0]["id"]
    assert b.call("GET", f"/project/{project['id']}").status_code == 404
    assert b.call("POST", f"/segment/{segment}/split", json={"split_ts": 1.0}).status_code == 404
    assert b.call("POST", f"/project/{project['id']}/preview/frame", json={"ts": 0}).status_code == 404
    assert b.call("POST", "/export", json={"project_id": project["id"]}).status_code == 404
    assert project["id"] not in [p["id"] for p in b.ok("GET", "/project")["projects"]]
    assert project["id"] in [p["id"] for p in a.ok("GET", "/project")["projects"]]
    assert a.call("POST", "/project", json={"name": "x", "video_url": "ftp://nope"}).status_code == 400
    assert a.call("POST", "/project", json={"name": "x", "video_url": str(media / "missing.mp4")}).status_code == 400
    assert b.call("DELETE", f"/project/{project['id']}").status_code == 404
    assert a.ok("DELETE", f"/project/{project['id']}") == {"deleted": True}
    assert a.call("GET", f"/project/{project['id']}").status_code == 404


def test_uploads_whole_chunked_refused_and_expired(editor):
    a = editor["a"]
    project = a.ok("POST", "/project", 201, json={"name": "uploads"})
    data = COUNTER.read_bytes()
    # Whole file in one PUT, no key needed.
    started = a.ok("POST", f"/project/{project['id']}/upload", 201,
                   json={"file_name": "clip.mp4", "content_type": "video/mp4"})
    assert started["upload_url"].startswith(editor["server"].base + "/api/signed/")
    done = requests.put(started["upload_url"], data=data, timeout=60)
    assert done.status_code == 201, done.text
    assert done.json()["asset"]["duration"] == pytest.approx(3.0)
    assert requests.put(started["upload_url"], data=data, timeout=60).status_code == 410  # single use
    # Chunked, interrupted, resumed.
    started = a.ok("POST", f"/project/{project['id']}/upload", 201, json={"file_name": "c.mp4"})
    url, total, third = started["upload_url"], len(data), len(data) // 3
    first = requests.put(url, data=data[:third], headers={"Content-Range": f"bytes 0-{third - 1}/{total}"})
    assert first.status_code == 202 and first.json()["received"] == third
    ahead = requests.put(url, data=data[2 * third:], headers={"Content-Range": f"bytes {2 * third}-{total - 1}/{total}"})
    assert ahead.status_code == 416 and ahead.json()["received"] == third
    status = requests.put(url, headers={"Content-Range": f"bytes */{total}"})
    assert status.status_code == 202 and status.json()["received"] == third
    # The resend overlaps bytes already there: they are skipped, not doubled.
    rest = requests.put(url, data=data[third - 100:], headers={"Content-Range": f"bytes {third - 100}-{total - 1}/{total}"})
    assert rest.status_code == 201, rest.text
    project_now = a.ok("GET", f"/project/{project['id']}")
    assert len(project_now["segments"]) == 2 and project_now["duration"] == pytest.approx(6.0)
    # Not media: refused, and the project is as it was.
    started = a.ok("POST", f"/project/{project['id']}/upload", 201, json={"file_name": "notes.mp4"})
    refused = requests.put(started["upload_url"], data=b"these are not frames\n" * 200)
    assert refused.status_code == 415 and "not a video" in refused.json()["error"]
    after = a.ok("GET", f"/project/{project['id']}")
    assert len(after["assets"]) == 2 and len(after["segments"]) == 2
    # Expired and forged URLs.
    started = a.ok("POST", f"/project/{project['id']}/upload", 201, json={"file_name": "late.mp4", "expires_in": 1})
    time.sleep(1.5)
    expired = requests.put(started["upload_url"], data=data)
    assert expired.status_code == 403 and "expired" in expired.json()["error"]
    forged = started["upload_url"][:-3] + ("AAA" if not started["upload_url"].endswith("AAA") else "BBB")
    assert requests.put(forged, data=data).status_code == 403
    # Over the size limit (a chunk that declares more than the limit).
    started = a.ok("POST", f"/project/{project['id']}/upload", 201, json={"file_name": "huge.mp4"})
    huge = requests.put(started["upload_url"], data=data[:10], headers={"Content-Range": f"bytes 0-9/{10 ** 13}"})
    assert huge.status_code == 413
    # The API's 64 MiB body limit does not apply to upload URLs (SIGHTLINE_UPLOAD_MAX_BYTES does).
    big = 65 * 1024 * 1024
    started = a.ok("POST", f"/project/{project['id']}/upload", 201, json={"file_name": "big.mp4"})
    chunk = requests.put(started["upload_url"], data=bytes(big), headers={"Content-Range": f"bytes 0-{big - 1}/{big + 10}"})
    assert chunk.status_code == 202 and chunk.json()["received"] == big


def test_split_trim_delete_and_frame_accuracy(editor, reference_frames):
    a, media = editor["a"], editor["media"]
    project = _project(a, media)
    pid, seg = project["id"], project["segments"][0]["id"]
    for bad in (0.0, 3.0, 5.0):
        assert a.call("POST", f"/segment/{seg}/split", json={"split_ts": bad}).status_code == 400
    assert a.call("POST", f"/segment/{seg}/split", json={"split_ts": -1}).status_code == 400
    assert a.call("POST", f"/segment/{seg}/split", json={"split_ts": "soon"}).status_code == 400
    parts = a.ok("POST", f"/segment/{seg}/split", json={"split_ts": 1.0})
    left, right = parts["left"], parts["right"]
    assert (left["start_ts"], left["end_ts"], right["start_ts"], right["end_ts"]) == (0.0, 1.0, 1.0, 3.0)
    assert (left["order_index"], right["order_index"]) == (0, 1) and left["active"] and right["active"]
    assert a.call("POST", f"/segment/{seg}/split", json={"split_ts": 2.0}).status_code == 409  # original is off
    right2 = a.ok("POST", f"/segment/{right['id']}/split", json={"split_ts": 2.0})
    assert [s["order_index"] for s in a.ok("GET", f"/project/{pid}")["segments"]] == [0, 1, 2]
    # Trim rules: inside the bounds, start before end.
    mid = right2["left"]["id"]
    assert a.call("POST", f"/segment/{mid}/trim", json={"new_start_ts": 0.5, "new_end_ts": 1.8}).status_code == 400
    assert a.call("POST", f"/segment/{mid}/trim", json={"new_start_ts": 1.5, "new_end_ts": 1.5}).status_code == 400
    assert a.call("POST", f"/segment/{mid}/trim", json={"new_start_ts": 1.2, "new_end_ts": 2.5}).status_code == 400
    trimmed = a.ok("POST", f"/segment/{mid}/trim", json={"new_start_ts": 1.2, "new_end_ts": 1.8})
    assert (trimmed["start_ts"], trimmed["end_ts"]) == (1.2, 1.8)
    assert a.ok("DELETE", f"/segment/{left['id']}") == {"deleted": True}
    assert a.call("DELETE", f"/segment/{left['id']}").status_code == 409
    timeline = a.ok("GET", f"/project/{pid}")
    assert [(s["start_ts"], s["end_ts"], s["order_index"]) for s in timeline["segments"]] == [(1.2, 1.8, 0),
                                                                                             (2.0, 3.0, 1)]
    assert timeline["duration"] == pytest.approx(1.6)
    # Timeline time → source frame: 0 is source 1.2 (frame 12), 0.65 is source 2.05 (frame 20).
    for ts, expected in ((0.0, 12), (0.55, 17), (0.6, 20), (0.65, 20), (1.55, 29)):
        frame = a.ok("POST", f"/project/{pid}/preview/frame", json={"ts": ts})
        assert frame["timestamp"] == ts
        assert frame_number(_jpeg(frame["frame_url"]), reference_frames) == expected, ts
    assert a.call("POST", f"/project/{pid}/preview/frame", json={"ts": 1.6}).status_code == 400
    strip = a.ok("POST", f"/project/{pid}/preview/strip", json={"start": 0, "end": 1.6, "fps": 10})
    assert len(strip["frames"]) == 16
    got = [frame_number(_jpeg(f["frame_url"]), reference_frames) for f in strip["frames"][::5]]
    assert got == [12, 17, 24, 29]  # timeline 1.0 is source 2.4 in the second segment
    assert a.call("POST", f"/project/{pid}/preview/strip", json={"start": 0, "end": 1.5, "fps": 200}).status_code == 400
    assert len(a.ok("POST", f"/project/{pid}/preview/strip", json={"start": 0, "end": 1.0, "fps": 200})["frames"]) \
        == 200
    assert a.call("POST", f"/project/{pid}/preview/strip", json={"start": 1, "end": 0.5}).status_code == 400


def test_previews_from_the_proxy_are_frame_exact(editor, reference_frames):
    a, media = editor["a"], editor["media"]
    project = _project(a, media)
    deadline = time.monotonic() + 180
    while not a.ok("GET", f"/project/{project['id']}")["assets"][0]["proxy"]:
        assert time.monotonic() < deadline, "the preview proxy was never made"
        time.sleep(0.3)
    for ts, expected in ((0.0, 0), (0.79, 7), (0.8, 8), (1.65, 16), (2.95, 29)):
        frame = a.ok("POST", f"/project/{project['id']}/preview/frame", json={"ts": ts})
        assert frame_number(_jpeg(frame["frame_url"]), reference_frames) == expected, ts
    strip = a.ok("POST", f"/project/{project['id']}/preview/strip", json={"start": 0.3, "end": 3.0, "fps": 2})
    assert [frame_number(_jpeg(f["frame_url"]), reference_frames) for f in strip["frames"]] == \
        [3, 8, 13, 18, 23, 28]
    seg = project["segments"][0]["id"]
    graded = _jpeg(a.ok("POST", f"/segment/{seg}/grade-preview", json={"ts": 2.0})["preview_frame_url"])
    assert frame_number(graded, reference_frames) == 20


def _luma(image: Image.Image) -> float:
    return float(np.asarray(image.convert("L"), dtype=np.float32).mean())


def test_grade_preview_neutral_direction_and_render(editor, reference_frames):
    a, media = editor["a"], editor["media"]
    project = _project(a, media)
    seg = project["segments"][0]["id"]
    plain = _jpeg(a.ok("POST", f"/project/{project['id']}/preview/frame", json={"ts": 1.0})["frame_url"])
    neutral = _jpeg(a.ok("POST", f"/segment/{seg}/grade-preview", json={"ts": 1.0})["preview_frame_url"])
    diff = np.abs(np.asarray(plain, dtype=np.float32) - np.asarray(neutral, dtype=np.float32)).mean()
    assert diff < 1.0
    brighter = _jpeg(a.ok("POST", f"/segment/{seg}/grade-preview", json={"ts": 1.0, "brightness": 0.4})
                     ["preview_frame_url"])
    assert _luma(brighter) > _luma(plain) + 20
    warm = np.asarray(_jpeg(a.ok("POST", f"/segment/{seg}/grade-preview", json={"ts": 1.0, "temperature": 1})
                            ["preview_frame_url"]), dtype=np.float32)
    base = np.asarray(plain, dtype=np.float32)
    assert warm[..., 0].mean() - warm[..., 2].mean() > base[..., 0].mean() - base[..., 2].mean() + 5
    first = a.ok("POST", f"/segment/{seg}/grade-preview", json={})
    assert frame_number(_jpeg(first["preview_frame_url"]), reference_frames) == 0
    for bad in ({"brightness": 1.5}, {"hue_shift": 200}, {"gamma": -2}, {"ts": 9.0}):
        assert a.call("POST", f"/segment/{seg}/grade-preview", json=bad).status_code == 400, bad
    # A rendered grade of all zeros is the source within encoding error, and replaces the segment.
    graded = a.ok("POST", f"/segment/{seg}/color-grade", json={})
    after = a.ok("GET", f"/project/{project['id']}")["segments"]
    assert [s["id"] for s in after] == [graded["segment_id"]] and after[0]["source"] == "graded"
    video = requests.get(graded["graded_url"], timeout=60)
    assert video.status_code == 200 and video.headers["Content-Type"] == "video/mp4"
    path = editor["media"] / "graded.mp4"
    path.write_bytes(video.content)
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    assert len(frames) == 30
    assert [frame_number(f, reference_frames) for f in frames[::7]] == [0, 7, 14, 21, 28]
    with av.open(str(COUNTER)) as container:
        source = [f.to_ndarray(format="gray").astype(np.float32) for f in container.decode(video=0)]
    assert np.abs(frames[14].astype(np.float32) - source[14]).mean() < 2.0
    assert a.call("POST", f"/segment/{seg}/color-grade", json={"brightness": 0.2}).status_code == 409


def test_generate_score_accept_and_ai_timeline(editor, reference_frames):
    a, b, media = editor["a"], editor["b"], editor["media"]
    project = _project(a, media)
    pid = project["id"]
    box = {"x": 0.65, "y": 0.7, "width": 0.33, "height": 0.28}  # where counter.mp4 prints its numbers
    bad = {"project_id": pid, "prompt": "blur", "start_ts": 1, "end_ts": 2,
           "bounding_box": {"x": 0.8, "y": 0.1, "width": 0.5, "height": 0.2}}
    assert a.call("POST", "/ai/generate", json=bad).status_code == 400
    assert a.call("POST", "/ai/generate", json={**bad, "bounding_box": box, "end_ts": 4}).status_code == 400
    assert b.call("POST", "/ai/generate", json={**bad, "bounding_box": box}).status_code == 404
    started = a.ok("POST", "/ai/generate", 202, json={"project_id": pid, "prompt": "blur the number so nobody "
                                                      "can read it", "start_ts": 1.0, "end_ts": 2.0,
                                                      "bounding_box": box})
    job = _wait(a, f"/job/{started['job_id']}")
    assert job["status"] == "completed", job
    assert len(job["variants"]) >= 2 and job["provider"] == "offline"
    assert b.call("GET", f"/job/{job['id']}").status_code == 404
    variant = job["variants"][0]
    preview = _jpeg(variant["preview_url"])
    assert preview.size[0] <= 1280
    original = a.ok("GET", f"/variant/{variant['id']}/score", params={"compare_to": "original"})["score"]
    assert original["visual_quality"].startswith("VMAF") and "SSIM" in original["fidelity"]
    assert original["metrics"]["frames"] == 10 and 0 < original["metrics"]["ssim"] < 1
    by_prompt = a.ok("GET", f"/variant/{variant['id']}/score")["score"]
    assert by_prompt["fidelity_to_prompt"].startswith("unavailable") and by_prompt["metrics"]["prompt_similarity"] is None
    assert a.call("GET", f"/variant/{variant['id']}/score", params={"compare_to": "vibes"}).status_code == 400
    assert b.call("POST", f"/variant/{variant['id']}/accept").status_code == 404
    accepted = a.ok("POST", f"/variant/{variant['id']}/accept")
    assert accepted["segment"]["source"] == "variant" and accepted["segment"]["variant_id"] == variant["id"]
    timeline = a.ok("GET", f"/project/{pid}")
    assert [(s["source"], s["order_index"]) for s in timeline["segments"]] == [("original", 0), ("variant", 1),
                                                                               ("original", 2)]
    assert timeline["duration"] == pytest.approx(3.0)
    assert a.call("POST", f"/variant/{job['variants'][1]['id']}/accept").status_code == 409
    # The blurred box no longer shows the number, outside it the picture is the source's.
    blurred = _jpeg(a.ok("POST", f"/project/{pid}/preview/frame", json={"ts": 1.5})["frame_url"])
    plain = _jpeg(a.ok("POST", f"/project/{pid}/preview/frame", json={"ts": 0.5})["frame_url"])
    inside = (slice(530, 680), slice(880, 1230))
    blurred_std = np.asarray(blurred.convert("L"), dtype=np.float32)[inside].std()
    assert blurred_std < 0.6 * np.asarray(plain.convert("L"), dtype=np.float32)[inside].std()
    # A prompt the offline provider cannot serve fails the job and names the setting.
    failed = a.ok("POST", "/ai/generate", 202, json={"project_id": pid, "prompt": "add a dragon flying past",
                                                     "start_ts": 0.0, "end_ts": 0.5, "bounding_box": box})
    failed = _wait(a, f"/job/{failed['job_id']}")
    assert failed["status"] == "failed" and "SIGHTLINE_AI_PROVIDER" in failed["error"]
    operations = a.ok("GET", "/ai/timeline")["operations"]
    kinds = [(o["kind"], o["status"]) for o in operations[:4]]
    assert kinds[0] == ("generate", "failed") and ("score", "completed") in kinds
    assert all(o["duration_ms"] is not None for o in operations[:4])
    assert operations[0]["started_at"] >= operations[-1]["started_at"]
    assert b.ok("GET", "/ai/timeline")["operations"] == []


def test_export_duration_first_frames_and_timeline_files(editor, reference_frames):
    a, media = editor["a"], editor["media"]
    project = _project(a, media)
    pid, seg = project["id"], project["segments"][0]["id"]
    parts = a.ok("POST", f"/segment/{seg}/split", json={"split_ts": 1.3})
    parts2 = a.ok("POST", f"/segment/{parts['right']['id']}/split", json={"split_ts": 2.0})
    a.ok("DELETE", f"/segment/{parts2['left']['id']}")  # drop 1.3-2.0
    a.ok("POST", f"/segment/{parts['left']['id']}/trim", json={"new_start_ts": 0.4, "new_end_ts": 1.3})
    graded = a.ok("POST", f"/segment/{parts2['right']['id']}/color-grade", json={"brightness": 0.1})
    assert graded["segment"]["source"] == "graded"
    with ProgressListener(editor["server"].base) as listener:
        started = a.ok("POST", "/export", 202, json={"project_id": pid, "format": "mp4"})
        assert started["status"] == "pending" and started["export_job_id"]
        events = listener.follow(started["export_job_id"], timeout=300)
    assert events[-1]["status"] == "completed" and events[-1]["type"] == "export"
    assert a.call("POST", "/export", json={"project_id": pid, "format": "webm"}).status_code == 400
    status = _wait(a, f"/export/{started['export_job_id']}")
    assert status["status"] == "completed", status
    assert status["progress"] == 1.0 and status["download_url"]
    assert editor["b"].call("GET", f"/export/{started['export_job_id']}").status_code == 404
    head = requests.get(status["download_url"], headers={"Range": "bytes=0-99"}, timeout=60)
    assert head.status_code == 206 and len(head.content) == 100
    out = media / "export.mp4"
    out.write_bytes(requests.get(status["download_url"], timeout=60).content)
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    # 0.4-1.3 (9 frames) + graded 2.0-3.0 (10 frames) = 1.9 s at 10 fps.
    assert abs(len(frames) - 19) <= 1
    assert frame_number(frames[0], reference_frames) == 4
    assert frame_number(frames[8], reference_frames) == 12
    assert frame_number(frames[9], reference_frames) == 20
    assert status["duration"] == pytest.approx(1.9, abs=0.1)
    # The cut as OpenTimelineIO JSON and FCP XML.
    text = a.call("GET", f"/project/{pid}/timeline", params={"format": "otio"})
    assert text.status_code == 200
    clips = list(otio.adapters.read_from_string(text.text, "otio_json").find_clips())
    assert [(c.source_range.start_time.to_seconds(), c.source_range.duration.to_seconds()) for c in clips] == \
        [(pytest.approx(0.4), pytest.approx(0.9)), (0.0, pytest.approx(1.0))]
    xml = a.call("GET", f"/project/{pid}/timeline", params={"format": "fcp_xml"})
    assert xml.status_code == 200 and "<xmeml" in xml.text
    assert len(list(otio.adapters.read_from_string(xml.text, "fcp_xml").find_clips())) == 2
    assert a.call("GET", f"/project/{pid}/timeline", params={"format": "edl"}).status_code == 400


class _FakeGenerativeApi(http.server.BaseHTTPRequestHandler):
    """A stand-in for an outside generative video API: answers every POST with two clips."""

    seen: list[dict] = []

    def do_GET(self):
        self.send_response(405)
        self.end_headers()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({k: v for k, v in body.items() if k != "video_mp4_base64"})
        clip = body["video_mp4_base64"]
        reply = json.dumps({"variants": [{"label": "fake one", "video_mp4_base64": clip},
                                         {"label": "fake two", "video_mp4_base64": clip}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def test_http_provider_and_url_ingest(tmp_path, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("one database is enough for the outside-service fake")
    fake = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeGenerativeApi)
    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *args: http.server.SimpleHTTPRequestHandler(
        *args, directory=str(COUNTER.parent)))
    for service in (fake, files):
        threading.Thread(target=service.serve_forever, daemon=True).start()
    server = start_server(tmp_path, extra_env={"SIGHTLINE_AI_PROVIDER": "http", "SIGHTLINE_AI_API_KEY": "k",
                                               "SIGHTLINE_AI_URL": f"http://127.0.0.1:{fake.server_port}/gen"})
    try:
        a = Client(server, server.pro_key)
        health = a.ok("GET", "/ai/health")
        assert health["provider"] == "http"
        assert next(p for p in health["providers"] if p["name"] == "http")["usable"]
        project = a.ok("POST", "/project", 201, json={
            "name": "remote", "video_url": f"http://127.0.0.1:{files.server_port}/counter.mp4"})
        assert project["assets"][0]["status"] == "pending"
        deadline = time.monotonic() + 120
        while a.ok("GET", f"/project/{project['id']}")["assets"][0]["status"] == "pending":
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert a.ok("GET", f"/project/{project['id']}")["duration"] == pytest.approx(3.0)
        started = a.ok("POST", "/ai/generate", 202, json={
            "project_id": project["id"], "prompt": "a dragon flies past", "start_ts": 0.5, "end_ts": 1.5,
            "bounding_box": {"x": 0, "y": 0, "width": 1, "height": 1}})
        job = _wait(a, f"/job/{started['job_id']}")
        assert job["status"] == "completed", job
        assert [v["label"] for v in job["variants"]] == ["fake one", "fake two"] and job["provider"] == "http"
        assert _FakeGenerativeApi.seen[-1]["prompt"] == "a dragon flies past"
        assert _FakeGenerativeApi.seen[-1]["bounding_box"]["width"] == 1
        bad = a.ok("POST", "/project", 201, json={"name": "gone", "video_url":
                                                  f"http://127.0.0.1:{files.server_port}/missing.mp4"})
        deadline = time.monotonic() + 60
        while (asset := a.ok("GET", f"/project/{bad['id']}")["assets"][0])["status"] == "pending":
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert asset["status"] == "failed" and "404" in asset["error"]
    finally:
        server.stop()
        fake.shutdown()
        files.shutdown()


