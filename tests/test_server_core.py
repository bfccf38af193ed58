"""The server issue: auth, metadata, analysis with live progress, corrupt files, cancel."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import requests
import yaml
from openapi_spec_validator import validate
from PIL import Image

from tests.conftest import ProgressListener
from tests.media_factory import distinct_copy

ROOT = Path(__file__).resolve().parent.parent


def test_health_needs_no_key(server):
    response = requests.get(f"{server.api}/health", timeout=5)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_openapi_document_is_valid_and_lists_the_core_routes(server):
    document = requests.get(f"{server.api}/openapi.json", timeout=10).json()
    validate(document)
    for path in ("/health", "/models/loaded", "/models/available", "/models/load", "/media/metadata",
                 "/cache-paths", "/analyze", "/analyze/cancel"):
        assert f"/api/v1{path}" in document["paths"], path


def _protected_operations(server) -> list[tuple[str, str]]:
    document = requests.get(f"{server.api}/openapi.json", timeout=10).json()
    operations = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if operation.get("security") != []:
                concrete = path.replace("/api/v1", "").replace("{watch_folder_id}", "wf-none").replace(
                    "{task_id}", "none")
                operations.append((method.upper(), concrete))
    return operations


def test_every_route_but_health_refuses_missing_unknown_and_basic_keys(server):
    operations = _protected_operations(server)
    assert len(operations) >= 8
    for method, path in operations:
        body = {} if method in ("POST", "PUT") else None
        none = server.request(method, path, key=None, json=body)
        assert none.status_code == 401, (method, path, none.text)
        assert "error" in none.json()
        unknown = server.request(method, path, key="sl-pro-not-a-real-key", json=body)
        assert unknown.status_code == 401, (method, path, unknown.text)
        basic = server.request(method, path, key="basic", json=body)
        assert basic.status_code == 403, (method, path, basic.text)


def test_pro_key_works_in_header_and_in_body(server, media):
    body = {"cache_dir": str(media["counter.mp4"].parent / "cache"), "media_paths": [str(media["counter.mp4"])]}
    assert server.post("/media/metadata", body).status_code == 200
    in_body = requests.post(f"{server.api}/media/metadata", json={**body, "license_key": server.pro_key},
                            timeout=30)
    assert in_body.status_code == 200, in_body.text
    assert server.get("/models/loaded").status_code == 200
    assert server.get("/models/available").status_code == 200
    assert server.post("/analyze/cancel").status_code == 200
    paths = server.post("/cache-paths", {"cache_dir": body["cache_dir"], "media_path": body["media_paths"][0]})
    assert paths.status_code == 200
    assert paths.json()["video_cache_path"] is None


def test_metadata_reports_duration_fps_timecode_and_hash(server, media, tmp_path):
    image = tmp_path / "still.jpg"
    Image.new("RGB", (320, 240), (200, 30, 30)).save(image)
    paths = [str(media["counter.mp4"]), str(media["jfk.flac"]), str(image), str(tmp_path / "missing.mp4")]
    response = server.post("/media/metadata", {"cache_dir": str(tmp_path / "cache"), "media_paths": paths})
    assert response.status_code == 200
    props = response.json()["media_properties"]
    counter = props[paths[0]]
    assert counter["runtime"] == "00:00:03"
    assert counter["fps"] == 10
    assert counter["timecode"] == "00:00:00:00"
    assert len(counter["hash_str"]) == 16 and int(counter["hash_str"], 16) >= 0
    assert counter["video_cached"] is False
    assert props[paths[1]]["runtime"] == "00:00:11" and props[paths[1]]["fps"] == 0
    assert props[paths[2]]["runtime"] == "00:00:01"
    assert "not found" in props[paths[3]]["error"]
    without_cache = server.post("/media/metadata", {"media_paths": paths[:1]})
    assert without_cache.status_code == 200
    assert without_cache.json()["media_properties"][paths[0]]["fps"] == 10


def test_hash_is_stable_across_move_and_differs_by_content(server, media, tmp_path):
    cache = str(tmp_path / "cache")
    original = media["counter.mp4"]

    def hash_of(path):
        return server.post("/media/metadata", {"cache_dir": cache, "media_paths": [str(path)]}).json()[
            "media_properties"][str(path)]["hash_str"]

    before = hash_of(original)
    moved = tmp_path / "elsewhere" / "renamed clip.mp4"
    moved.parent.mkdir()
    shutil.move(original, moved)
    assert hash_of(moved) == before
    assert hash_of(media["fades.mp4"]) != before
    edited = tmp_path / "edited.mp4"
    data = bytearray(moved.read_bytes())
    data[len(data) // 2] ^= 0xFF
    edited.write_bytes(bytes(data))
    assert hash_of(edited) != before


def test_bad_requests_get_clear_4xx_json(server, tmp_path):
    not_json = server.request("POST", "/media/metadata", data=b"{not json", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and "JSON" in not_json.json()["error"]
    wrong_type = server.post("/media/metadata", {"cache_dir": 5, "media_paths": "x"})
    assert wrong_type.status_code == 400
    assert "cache_dir" in wrong_type.json()["error"] and "media_paths" in wrong_type.json()["error"]
    missing = server.post("/analyze", {"visual_media_paths": []})
    assert missing.status_code == 400 and "cache_dir" in missing.json()["error"]
    relative = server.post("/analyze", {"cache_dir": "relative/dir", "visual_media_paths": ["a.mp4"]})
    assert relative.status_code == 400
    unknown_fields = server.post("/models/load", {"model_key": "tiny-clip", "surprise": [1, 2]})
    assert unknown_fields.status_code == 200
    unknown_model = server.post("/models/load", {"model_key": "no-such-model"})
    assert unknown_model.status_code == 400 and "no-such-model" in unknown_model.json()["error"]
    array_body = server.post("/analyze", [1, 2, 3])
    assert array_body.status_code == 400


def test_analyze_with_no_valid_media_names_each_path(server, tmp_path):
    response = server.post("/analyze", {"cache_dir": str(tmp_path / "c"),
                                        "visual_media_paths": [str(tmp_path / "a.mp4"), str(tmp_path / "b.mov")]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "a.mp4" in error and "b.mov" in error


def _check_event_shape(event: dict) -> None:
    assert isinstance(event["progress"], (int, float)) and 0 <= event["progress"] <= 100
    assert "video_path" in event and isinstance(event["done"], bool)
    assert event["type"] in ("video", "speech", "faces")


def test_batch_reports_progress_per_file_until_done(server, media, tmp_path):
    server.wait_idle()
    image = tmp_path / "photo.jpg"
    Image.new("RGB", (640, 480), (20, 120, 220)).save(image)
    videos = [str(media[name]) for name in ("counter.mp4", "fades.mp4", "testvideo.mp4")]
    cache = tmp_path / "cache"
    task_id, events = server.analyze({
        "cache_dir": str(cache),
        "visual_media_paths": videos + [str(image)],
        "transcription_jobs": [{"path": str(media["jfk.flac"]), "language": "english"}],
    })
    for event in events:
        _check_event_shape(event)
    assert events[-1]["done"] is True and events[-1]["status"] == "completed", events[-1]
    finished_visual = {e["video_path"] for e in events if e["type"] == "video" and e["progress"] == 100}
    assert set(videos + [str(image)]) <= finished_visual
    assert any(e["type"] == "speech" and e["video_path"] == str(media["jfk.flac"]) for e in events)
    partial = [e for e in events if e["video_path"] == videos[2] and 0 < e["progress"] < 100]
    assert partial, "a 24 s video should report intermediate progress"

    props = server.post("/media/metadata", {"cache_dir": str(cache), "media_paths": videos + [str(image)]}).json()
    for path in videos + [str(image)]:
        entry = props["media_properties"][path]
        assert entry["video_cached"] is True
        assert (cache / entry["hash_str"] / "manifest.json").exists()
    counter_hash = props["media_properties"][videos[0]]["hash_str"]
    paths = server.post("/cache-paths", {"cache_dir": str(cache), "media_path": videos[0]}).json()
    assert paths["video_cache_path"] == str(cache / counter_hash)
    assert list((cache / counter_hash).glob("*.tmp")) == []


def test_corrupt_files_fail_alone(server, media, tmp_path):
    server.wait_idle()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(media["testvideo.mp4"].read_bytes()[: 300_000])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    good = [str(media["counter.mp4"]), str(media["fades.mp4"])]
    bad = [str(truncated), str(empty), str(text)]
    task_id, events = server.analyze({"cache_dir": str(tmp_path / "cache"), "visual_media_paths": bad + good})
    final = events[-1]
    assert final["done"] is True
    errors = {e["video_path"]: e["error"] for e in events if e.get("status") == "failed"}
    assert str(empty) in errors and "empty" in errors[str(empty)]
    assert str(text) in errors
    for path in good:
        assert any(e["video_path"] == path and e["progress"] == 100 and not e.get("error") for e in events)
    # A truncated file either fails on its own or yields what could be decoded; never the batch.
    assert final["files_total"] == 5
    assert final["files_failed"] >= 2
    status = server.get(f"/tasks/{task_id}").json()
    assert status["state"] == "completed_with_errors"


def test_cancel_mid_batch_then_new_analyze(server, media, tmp_path):
    server.wait_idle()
    # Distinct content, so nothing is served from a previous analysis.
    copies = [str(distinct_copy(media["testvideo.mp4"], tmp_path / f"clip{i}.mp4", i)) for i in range(6)]
    cache = tmp_path / "cache"
    with ProgressListener(server.base) as listener:
        response = server.post("/analyze", {"cache_dir": str(cache), "visual_media_paths": copies})
        assert response.status_code == 202
        task_id = response.json()["task_id"]
        listener.join(task_id)
        deadline = time.monotonic() + 120
        while not any(e.get("progress", 0) > 0 for e in listener.events.get(task_id, [])):
            assert time.monotonic() < deadline, "analysis never started"
            time.sleep(0.2)
        cancelled_at = time.monotonic()
        assert server.post("/analyze/cancel").json()["message"] == "Cancellation requested"
        events = listener.follow(task_id, timeout=60)
        assert time.monotonic() - cancelled_at < 30
    assert events[-1]["status"] == "cancelled"
    # Files finished before the cancel keep their results; none is torn.
    assert list(cache.rglob("*.tmp")) == []
    again = server.post("/analyze", {"cache_dir": str(cache), "visual_media_paths": copies[:1]})
    assert again.status_code in (202, 409)
    if again.status_code == 202:
        with ProgressListener(server.base) as listener:
            assert listener.follow(again.json()["task_id"], timeout=120)[-1]["done"] is True


def test_new_analyze_stops_the_running_one(server, media, tmp_path):
    server.wait_idle()
    copies = [str(distinct_copy(media["testvideo.mp4"], tmp_path / f"long{i}.mp4", 7 + i)) for i in range(4)]
    first = server.post("/analyze", {"cache_dir": str(tmp_path / "c1"), "visual_media_paths": copies})
    assert first.status_code == 202
    time.sleep(1.0)
    started = time.monotonic()
    second = server.post("/analyze", {"cache_dir": str(tmp_path / "c2"),
                                      "visual_media_paths": [str(media["counter.mp4"])]})
    assert time.monotonic() - started < 10
    assert second.status_code in (202, 409), second.text
    if second.status_code == 409:
        assert "error" in second.json()
    server.wait_idle(120)


def test_docker_compose_file_is_valid():
    compose = ROOT / "docker-compose.yml"
    try:
        result = subprocess.run(["docker", "compose", "-f", str(compose), "config", "--quiet"],
                                capture_output=True, text=True, timeout=60)
        has_compose = result.returncode == 0 or "unknown" not in result.stderr
    except FileNotFoundError:
        has_compose = False
    if has_compose:
        assert result.returncode == 0, result.stderr
    # Without the compose plugin, check what `config` would: the three services and their wiring.
    document = yaml.safe_load(compose.read_text())
    services = document["services"]
    assert {"redis", "api", "worker"} <= set(services)
    for name in ("api", "worker"):
        service = services[name]
        assert service["environment"]["SIGHTLINE_REDIS_URL"].startswith("redis://redis:")
        assert "redis" in service["depends_on"]
        assert service["build"] == "."
    assert services["api"]["command"][:2] == ["sightline", "serve"]
    assert services["worker"]["command"] == ["sightline", "worker"]
    assert (ROOT / "Dockerfile").exists()


def test_without_a_visual_model_analysis_still_gives_thumbnails_and_search_says_how_to_fix(tmp_path):
    from tests.conftest import start_server

    fresh = start_server(tmp_path / "fresh", extra_env={"SIGHTLINE_VISUAL_MODEL": "v2-medium-256"})
    try:
        video = tmp_path / "clip.mp4"
        shutil.copy(Path(__file__).parent / "data" / "counter.mp4", video)
        cache = str(tmp_path / "cache")
        with ProgressListener(fresh.base) as listener:
            response = fresh.post("/analyze", {"cache_dir": cache, "visual_media_paths": [str(video)]})
            assert response.status_code == 202, response.text
            assert "models pull v2-medium-256" in response.json()["warnings"][0]
            events = listener.follow(response.json()["task_id"], timeout=120)
        assert events[-1]["status"] == "completed"
        meta = fresh.post("/media/metadata", {"cache_dir": cache, "media_paths": [str(video)]}).json()
        assert meta["media_properties"][str(video)]["video_cached"] is True
        thumbs = fresh.post("/thumbnails", {"cache_dir": cache, "requests": [{"media_path": str(video),
                                                                             "time_seconds": 1}]}).json()
        assert thumbs["thumbnails"][0]["thumbnail"]
        search = fresh.post("/search/text", {"query": "numbers", "cache_dir": cache})
        assert search.status_code == 400 and "sightline models pull v2-medium-256" in search.json()["error"]
    finally:
        fresh.stop()
