"""Watch-folder settings (persisted, validated, safe across processes) and folder scanning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.test_watch_api import SPEC_DEFAULTS  # the spec's defaults, written once
from workers.watch import config
from workers.watch.config import UnknownWatchFolder
from workers.watch.scanner import StabilityTracker, is_excluded, is_media_file, scan_folder

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "sightline-home"
    monkeypatch.setenv("SIGHTLINE_HOME", str(path))
    return path


@pytest.fixture()
def ingest(tmp_path) -> Path:
    path = tmp_path / "Ingest"
    path.mkdir()
    return path


# --- settings --------------------------------------------------------------------------------


def test_new_folder_gets_the_documented_defaults(home, ingest):
    before = int(time.time())
    folder = config.add_folder({"folder_path": str(ingest)})

    assert folder["id"].startswith("wf-") and len(folder["id"]) > 5
    assert folder["folder_path"] == str(ingest)
    assert {k: folder[k] for k in config.DEFAULTS} == SPEC_DEFAULTS
    assert folder["cache_dir"] == str(home / "cache")
    assert before <= folder["created_at"] <= time.time()
    assert folder["last_poll_time"] is None and folder["files_analyzed_count"] == 0
    assert config.list_folders() == [folder]
    stored = json.loads((home / "watch_folders.json").read_text())
    assert stored["folders"] == [folder]


def test_add_validates_its_fields(home, ingest, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        config.add_folder({"folder_path": str(tmp_path / "nope")})
    with pytest.raises(ValueError, match="folder_path is required"):
        config.add_folder({"cache_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="cluster_job_name is required"):
        config.add_folder({"folder_path": str(ingest), "enable_face_analysis": True})
    with pytest.raises(ValueError, match="face_eps"):
        config.add_folder({"folder_path": str(ingest), "face_eps": -1})
    with pytest.raises(ValueError, match="face_min_samples"):
        config.add_folder({"folder_path": str(ingest), "face_min_samples": 2.5})
    with pytest.raises(ValueError, match="enabled"):
        config.add_folder({"folder_path": str(ingest), "enabled": "yes"})
    with pytest.raises(ValueError, match="unknown watch folder field"):
        config.add_folder({"folder_path": str(ingest), "exclude_extensions": [".jpg"]})
    assert config.list_folders() == []

    folder = config.add_folder({
        "folder_path": str(ingest), "enable_face_analysis": True, "cluster_job_name": "crew",
        "excluded_extensions": ["JPG", ".jpeg", "jpg", " .MXF "],
        "excluded_filename_globs": ["*_a04.mxf", "*_a04.mxf"],
    })
    assert folder["excluded_extensions"] == [".jpg", ".jpeg", ".mxf"]
    assert folder["excluded_filename_globs"] == ["*_a04.mxf"]
    with pytest.raises(ValueError, match="already a watch folder"):
        config.add_folder({"folder_path": str(ingest) + "/"})


def test_update_changes_only_the_given_fields_and_persists(home, ingest, tmp_path):
    folder = config.add_folder({"folder_path": str(ingest), "excluded_extensions": [".jpg"]})

    updated = config.update_folder(folder["id"], {
        "enabled": False, "excluded_extensions": ["MOV", ".mov"], "excluded_filename_globs": ["*_proxy.mov"],
        "id": "wf-ignored", "files_analyzed_count": 99,  # server-owned fields sent back are ignored
    })

    assert updated == {**folder, "enabled": False, "excluded_extensions": [".mov"],
                       "excluded_filename_globs": ["*_proxy.mov"]}
    assert config.get_folder(folder["id"]) == updated
    assert json.loads((home / "watch_folders.json").read_text())["folders"] == [updated]

    with pytest.raises(ValueError, match="cluster_job_name is required"):
        config.update_folder(folder["id"], {"enable_face_analysis": True})
    config.update_folder(folder["id"], {"cluster_job_name": "crew"})
    assert config.update_folder(folder["id"], {"enable_face_analysis": True})["enable_face_analysis"]
    with pytest.raises(ValueError, match="does not exist"):
        config.update_folder(folder["id"], {"folder_path": str(tmp_path / "gone")})
    assert config.get_folder(folder["id"])["folder_path"] == str(ingest)


def test_unknown_ids_raise_lookup_error(home, ingest):
    for call in (lambda: config.get_folder("wf-nope"), lambda: config.update_folder("wf-nope", {}),
                 lambda: config.delete_folder("wf-nope")):
        with pytest.raises(UnknownWatchFolder) as info:
            call()
        assert isinstance(info.value, LookupError) and "wf-nope" in str(info.value)


def test_delete_poll_and_count(home, ingest, tmp_path):
    other = tmp_path / "Other"
    other.mkdir()
    first = config.add_folder({"folder_path": str(ingest)})
    second = config.add_folder({"folder_path": str(other)})

    assert config.record_poll(first["id"], when=1707840060)["last_poll_time"] == 1707840060
    config.increment_analyzed(first["id"], 3)
    assert config.increment_analyzed(first["id"])["files_analyzed_count"] == 4
    assert config.delete_folder(second["id"])["id"] == second["id"]

    (remaining,) = config.list_folders()
    assert remaining["id"] == first["id"] and remaining["files_analyzed_count"] == 4
    # A folder deleted while the service was scanning it is not an error for the service.
    assert config.record_poll(second["id"]) is None
    assert config.increment_analyzed(second["id"]) is None


def test_service_switch_survives_a_restart(home):
    assert config.service_enabled() is False
    config.set_service_enabled(True)
    fresh = subprocess.run(
        [sys.executable, "-c", "from workers.watch.config import service_enabled; print(service_enabled())"],
        cwd=ROOT, env={**os.environ, "SIGHTLINE_HOME": str(home)}, capture_output=True, text=True, check=True,
    )
    assert fresh.stdout.strip() == "True"
    config.set_service_enabled(False)
    assert config.service_enabled() is False


def test_two_processes_do_not_lose_updates(home, ingest):
    folder = config.add_folder({"folder_path": str(ingest)})
    script = (
        "from workers.watch.config import increment_analyzed\n"
        f"for _ in range(25): increment_analyzed({folder['id']!r}, 1)\n"
    )
    env = {**os.environ, "SIGHTLINE_HOME": str(home)}
    workers = [subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env) for _ in range(2)]
    for _ in range(25):
        config.increment_analyzed(folder["id"], 1)
    assert [w.wait(timeout=120) for w in workers] == [0, 0]

    assert config.get_folder(folder["id"])["files_analyzed_count"] == 75


# --- scanning --------------------------------------------------------------------------------


def test_a_file_being_copied_is_not_ready_until_it_has_been_stable(ingest):
    cfg = {"folder_path": str(ingest)}
    tracker = StabilityTracker(stable_seconds=5)
    clip = ingest / "A001.mov"
    clip.write_bytes(b"x" * 1000)

    assert scan_folder(cfg, tracker, now=100) == []
    with clip.open("ab") as handle:
        handle.write(b"x" * 1000)
    assert scan_folder(cfg, tracker, now=104) == []  # grew: the clock restarts at 104
    assert scan_folder(cfg, tracker, now=108) == []
    assert scan_folder(cfg, tracker, now=109) == [str(clip)]
    assert scan_folder(cfg, tracker, now=120) == []  # handed out once
    assert tracker.pending_count() == 0

    with clip.open("ab") as handle:  # re-written later: analysed again once stable
        handle.write(b"y")
    assert scan_folder(cfg, tracker, now=121) == []
    assert tracker.pending_count() == 1
    assert scan_folder(cfg, tracker, now=126) == [str(clip)]
    tracker.retry(str(clip))
    assert scan_folder(cfg, tracker, now=127) == [str(clip)]


def test_a_slow_real_copy_is_only_ready_after_it_finishes(ingest):
    cfg = {"folder_path": str(ingest)}
    stable = 1.0  # several times the gap between writes, so a busy machine cannot fake a pause
    tracker = StabilityTracker(stable_seconds=stable)
    target = ingest / "day1" / "interview.mp4"
    target.parent.mkdir()
    last_write: list[float] = []

    def slow_copy() -> None:
        with target.open("wb") as handle:
            for _ in range(6):
                time.sleep(0.15)
                handle.write(os.urandom(64 * 1024))
                handle.flush()
                last_write[:] = [time.time()]

    writer = threading.Thread(target=slow_copy)
    writer.start()
    ready_at = None
    deadline = time.time() + 10
    while ready_at is None and time.time() < deadline:
        copying = writer.is_alive()
        found = scan_folder(cfg, tracker)
        if found:
            assert not copying, "a file still being written was reported ready"
            assert found == [str(target)]
            ready_at = time.time()
        time.sleep(0.05)
    writer.join()

    assert ready_at is not None, "the finished file never became ready"
    assert ready_at >= last_write[0] + stable
    assert target.stat().st_size == 6 * 64 * 1024


def test_empty_files_are_never_ready(ingest):
    (ingest / "placeholder.mp4").touch()
    tracker = StabilityTracker(stable_seconds=0)
    cfg = {"folder_path": str(ingest)}
    assert scan_folder(cfg, tracker, now=1) == []
    assert scan_folder(cfg, tracker, now=100) == []


def test_exclusions_are_case_insensitive_and_on_the_basename_only(ingest):
    names = [
        "a.MP4", "b.jpg", "c.JPEG", "CLIP_A04.MXF", "clip_a01.mxf", "notes.txt", ".hidden.mp4",
        "._a.MP4", "sub/x_a04.mxf", "sub_a04.mxf/keep.mov", "sub/deeper/voice.WAV", "proxies/p_proxy.mov",
    ]
    for name in names:
        path = ingest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"media")
    hidden = ingest / ".Trashes" / "old.mp4"
    hidden.parent.mkdir()
    hidden.write_bytes(b"media")
    cfg = {
        "folder_path": str(ingest),
        "excluded_extensions": config.normalise_extensions(["JPG", "jpeg"]),
        "excluded_filename_globs": ["*_A04.mxf", "sub_a04*", "*_PROXY.*"],
    }
    tracker = StabilityTracker(stable_seconds=0)

    assert scan_folder(cfg, tracker, now=0) == []  # first sighting: nothing is proven stable yet
    ready = scan_folder(cfg, tracker, now=0)

    assert [os.path.relpath(p, ingest) for p in ready] == [
        "a.MP4", "clip_a01.mxf", "sub/deeper/voice.WAV", "sub_a04.mxf/keep.mov",
    ]
    assert is_excluded("/Volumes/Card/CLIP_A04.MXF", cfg)
    assert is_excluded(ingest / "b.JPG", cfg)
    assert not is_excluded("/Volumes/sub_a04.mxf/keep.mov", cfg)
    assert not is_excluded("/x/readme.jpg.mov", cfg)


def test_media_extensions():
    for name in ("a.mp4", "B.MOV", "c.mxf", "d.wav", "e.mp3", "f.JPG", "g.png", "h.mkv"):
        assert is_media_file(name), name
    for name in ("a.txt", "b.json", "c.npy", "d.part", "e", "f.mp4.crdownload"):
        assert not is_media_file(name), name


def test_cache_inside_the_folder_is_skipped_and_gone_files_forgotten(ingest):
    cache = ingest / "analysis"
    cache.mkdir()
    (cache / "thumb.jpg").write_bytes(b"jpeg")
    clip = ingest / "clip.mp4"
    clip.write_bytes(b"media")
    cfg = {"folder_path": str(ingest), "cache_dir": str(cache)}
    tracker = StabilityTracker(stable_seconds=0)

    scan_folder(cfg, tracker, now=0)
    assert scan_folder(cfg, tracker, now=1) == [str(clip)]
    clip.unlink()
    assert scan_folder(cfg, tracker, now=2) == []
    assert tracker.pending_count() == 0


def test_a_vanished_folder_is_an_error_the_service_can_report(tmp_path):
    with pytest.raises(FileNotFoundError, match="watch folder not found"):
        scan_folder({"folder_path": str(tmp_path / "unmounted")}, StabilityTracker(5))
