"""Watch folders through HTTP on a real server: settings CRUD per the spec table, and the
background service finding, waiting for and analysing files dropped into a folder."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import DATA, ProgressListener, start_server
from tests.media_factory import distinct_copy

ROOT = Path(__file__).resolve().parent.parent


def documented_defaults() -> dict:
    """The defaults in the fields table of docs/watch-folders.md whose default is a JSON value
    (not ``folder_path``, required, nor ``cache_dir``, a path under the server's home)."""
    rows = re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", (ROOT / "docs" / "watch-folders.md").read_text(), re.M)
    defaults = {}
    for name, value in rows:
        with contextlib.suppress(ValueError):
            defaults[name] = json.loads(value)
    return defaults


SPEC_DEFAULTS = documented_defaults()
STATUS_FIELDS = {"state", "current_folder", "current_file", "files_pending", "files_processed_this_session",
                 "last_error", "paused_until", "folder_stats"}


def wait_for(check, timeout: float, what: str, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def folder_by_id(srv, folder_id: str) -> dict:
    listing = srv.get("/watch-folders").json()["watch_folders"]
    return next(f for f in listing if f["id"] == folder_id)


def add_folder(srv, **fields) -> dict:
    response = srv.post("/watch-folders", fields)
    assert response.status_code == 201, response.text
    return response.json()["watch_folder"]


def video_cached(srv, cache_dir: Path, paths: list[Path]) -> dict[str, bool]:
    props = srv.post("/media/metadata", {"cache_dir": str(cache_dir),
                                         "media_paths": [str(p) for p in paths]}).json()["media_properties"]
    return {Path(p).name: entry["video_cached"] for p, entry in props.items()}


@pytest.fixture()
def cleanup(server):
    """Removes every watch folder a CRUD test added to the shared server."""
    before = {f["id"] for f in server.get("/watch-folders").json()["watch_folders"]}
    yield
    for folder in server.get("/watch-folders").json()["watch_folders"]:
        if folder["id"] not in before:
            server.request("DELETE", f"/watch-folders/{folder['id']}")


# --- settings ----------------------------------------------------------------------------------


def test_add_applies_the_spec_defaults_and_lists_the_folder(server, tmp_path, cleanup):
    started = int(time.time())
    response = server.post("/watch-folders", {"folder_path": str(tmp_path)})

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["message"] == f"Watch folder added: {tmp_path}"
    folder = body["watch_folder"]
    assert folder["id"].startswith("wf-")
    assert folder["folder_path"] == str(tmp_path)
    assert len(SPEC_DEFAULTS) == 10 and SPEC_DEFAULTS["face_eps"] == 0.48  # the table was read
    assert {k: folder[k] for k in SPEC_DEFAULTS} == SPEC_DEFAULTS
    assert folder["cache_dir"]  # a default analysis folder, so the service can write somewhere
    assert started <= folder["created_at"] <= time.time() + 1
    assert folder["last_poll_time"] is None and folder["files_analyzed_count"] == 0

    listing = server.get("/watch-folders").json()
    assert folder in listing["watch_folders"]
    assert STATUS_FIELDS <= set(listing["service_status"])


def test_every_field_round_trips_and_put_changes_only_what_it_names(server, tmp_path, cleanup):
    fields = {
        "folder_path": str(tmp_path),
        "cache_dir": str(tmp_path / "analysis"),
        "enabled": False,
        "enable_visual_analysis": False,
        "enable_audio_analysis": True,
        "enable_face_analysis": True,
        "audio_language": "german",
        "cluster_job_name": "Interviews",
        "face_eps": 0.3,
        "face_min_samples": 3,
        "excluded_extensions": ["MOV", ".JPG", "jpeg", ".mov"],
        "excluded_filename_globs": ["*_a04.mxf", "*_PROXY.*"],
        "colour": "blue",  # unknown fields are ignored
    }
    folder = add_folder(server, **fields)

    expected = {**{k: v for k, v in fields.items() if k != "colour"},
                "excluded_extensions": [".mov", ".jpg", ".jpeg"]}
    assert {k: folder[k] for k in expected} == expected
    assert "colour" not in folder

    # The spec's PUT example: only these three change.
    change = {"enabled": True, "excluded_extensions": [], "excluded_filename_globs": ["*_proxy.mov"]}
    response = server.request("PUT", f"/watch-folders/{folder['id']}", json=change)
    assert response.status_code == 200, response.text
    updated = response.json()["watch_folder"]
    assert updated == {**folder, **change}
    assert folder_by_id(server, folder["id"]) == updated

    # A client may send the whole object back; the server-owned fields are not taken from it.
    echoed = server.request("PUT", f"/watch-folders/{folder['id']}",
                            json={**updated, "id": "wf-other", "files_analyzed_count": 99, "created_at": 1})
    assert echoed.status_code == 200, echoed.text
    assert echoed.json()["watch_folder"] == updated


def test_face_analysis_needs_a_cluster_job_name(server, tmp_path, cleanup):
    for body in ({"enable_face_analysis": True}, {"enable_face_analysis": True, "cluster_job_name": None},
                 {"enable_face_analysis": True, "cluster_job_name": "   "}):
        response = server.post("/watch-folders", {"folder_path": str(tmp_path), **body})
        assert response.status_code == 400, (body, response.text)
        assert "cluster_job_name" in response.json()["error"]

    folder = add_folder(server, folder_path=str(tmp_path))
    refused = server.request("PUT", f"/watch-folders/{folder['id']}", json={"enable_face_analysis": True})
    assert refused.status_code == 400 and "cluster_job_name" in refused.json()["error"]
    assert folder_by_id(server, folder["id"]) == folder

    named = server.request("PUT", f"/watch-folders/{folder['id']}",
                           json={"enable_face_analysis": True, "cluster_job_name": "Crew"})
    assert named.status_code == 200
    dropped = server.request("PUT", f"/watch-folders/{folder['id']}", json={"cluster_job_name": None})
    assert dropped.status_code == 400


def test_unknown_ids_are_404(server, tmp_path, cleanup):
    for method, body in (("PUT", {"enabled": False}), ("DELETE", None)):
        response = server.request(method, "/watch-folders/wf-000000000000", json=body)
        assert response.status_code == 404, response.text
        assert "wf-000000000000" in response.json()["error"]

    folder = add_folder(server, folder_path=str(tmp_path))
    first = server.request("DELETE", f"/watch-folders/{folder['id']}")
    assert first.status_code == 200 and first.json()["watch_folder"]["id"] == folder["id"]
    assert server.request("DELETE", f"/watch-folders/{folder['id']}").status_code == 404
    assert folder["id"] not in {f["id"] for f in server.get("/watch-folders").json()["watch_folders"]}


def test_bad_folders_and_wrong_types_are_400_and_change_nothing(server, tmp_path, cleanup):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    before = server.get("/watch-folders").json()["watch_folders"]
    bad_bodies = [
        {},
        {"folder_path": str(tmp_path / "not-there")},
        {"folder_path": str(a_file)},
        {"folder_path": "relative/folder"},
        {"folder_path": 5},
        {"folder_path": str(tmp_path), "enabled": "banana"},
        {"folder_path": str(tmp_path), "face_min_samples": "many"},
        {"folder_path": str(tmp_path), "face_min_samples": 2.5},
        {"folder_path": str(tmp_path), "face_min_samples": 0},
        {"folder_path": str(tmp_path), "face_eps": "wide"},
        {"folder_path": str(tmp_path), "face_eps": -1},
        {"folder_path": str(tmp_path), "excluded_extensions": ".jpg"},
        {"folder_path": str(tmp_path), "excluded_extensions": [5]},
        {"folder_path": str(tmp_path), "excluded_filename_globs": "*.mxf"},
        {"folder_path": str(tmp_path), "cluster_job_name": 7},
        {"folder_path": str(tmp_path), "audio_language": ""},
        {"folder_path": str(tmp_path), "cache_dir": "relative/cache"},
    ]
    for body in bad_bodies:
        response = server.post("/watch-folders", body)
        assert response.status_code == 400, (body, response.status_code, response.text)
        assert response.json()["error"], body
    assert server.get("/watch-folders").json()["watch_folders"] == before

    folder = add_folder(server, folder_path=str(tmp_path))
    again = server.post("/watch-folders", {"folder_path": str(tmp_path)})
    assert again.status_code == 400 and "already" in again.json()["error"]
    for body in ({"folder_path": str(tmp_path / "gone")}, {"enabled": "banana"}, {"face_eps": None}):
        response = server.request("PUT", f"/watch-folders/{folder['id']}", json=body)
        assert response.status_code == 400, (body, response.text)
    assert folder_by_id(server, folder["id"]) == folder


# --- the service -------------------------------------------------------------------------------


class ServerHolder:
    """The module's own server; the restart test replaces it with a new process on the same home."""

    def __init__(self, tmp: Path, models_dir: Path, env: dict):
        self.tmp, self.models_dir, self.env = tmp, models_dir, env
        self.srv = start_server(tmp, env, models_dir=models_dir)

    def restart(self):
        self.srv.stop()
        self.srv = start_server(self.tmp, self.env, models_dir=self.models_dir)
        return self.srv


@pytest.fixture(scope="module")
def holder(server, session_tmp, tmp_path_factory):
    """A server of its own, so the running service never touches the shared one's analyses.
    It may read media only under pytest's temp folder (its home and tests/data are outside)."""
    env = {"SIGHTLINE_MEDIA_ROOTS": str(tmp_path_factory.getbasetemp())}
    held = ServerHolder(session_tmp / "watch-server", server.home / "models", env)
    yield held
    held.srv.stop()


@pytest.fixture()
def watch(holder):
    """The module server with its service stopped and no watch folders, before and after."""

    def reset():
        srv = holder.srv  # a restart test leaves a new process behind
        srv.post("/watch-folders/service/stop")
        for folder in srv.get("/watch-folders").json()["watch_folders"]:
            srv.request("DELETE", f"/watch-folders/{folder['id']}")
        srv.wait_idle(120)

    reset()
    yield holder.srv
    reset()


def stats_of(srv, folder_id: str) -> dict:
    return srv.get("/watch-folders/service/status").json()["folder_stats"].get(folder_id, {})


def test_service_start_stop_and_status(watch):
    status = watch.get("/watch-folders/service/status")
    assert status.status_code == 200
    assert STATUS_FIELDS <= set(status.json())
    assert status.json()["state"] == "stopped"

    started = watch.post("/watch-folders/service/start")
    assert started.status_code == 200
    assert started.json()["service_status"]["state"] == "running"
    assert watch.get("/watch-folders/service/status").json()["state"] == "running"
    assert watch.get("/watch-folders").json()["service_status"]["state"] == "running"
    assert watch.post("/watch-folders/service/start").json()["service_status"]["state"] == "running"

    stopped = watch.post("/watch-folders/service/stop")
    assert stopped.status_code == 200
    assert stopped.json()["service_status"]["state"] == "stopped"
    status = watch.get("/watch-folders/service/status").json()
    assert status["state"] == "stopped" and status["current_file"] is None


def test_a_file_copied_in_slowly_is_analysed_once_after_the_copy(watch, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    cache = tmp_path / "analysis"
    folder = add_folder(watch, folder_path=str(inbox), cache_dir=str(cache))
    assert watch.post("/watch-folders/service/start").status_code == 200
    wait_for(lambda: stats_of(watch, folder["id"]).get("last_poll_time"), 20, "the first poll")

    target = inbox / "rushes day 1.mp4"
    data = (DATA / "testvideo.mp4").read_bytes()
    chunks = 14
    with target.open("wb") as out:
        # ~4 s of copying, each write well inside the 1.5 s stability window.
        for i in range(chunks):
            out.write(data[i * len(data) // chunks:(i + 1) * len(data) // chunks])
            out.flush()
            status = watch.get("/watch-folders/service/status").json()
            assert status["current_task_id"] is None, "analysis started while the file was still copying"
            assert status["folder_stats"][folder["id"]]["submitted"] == 0
            time.sleep(0.3)

    folder_now = wait_for(lambda: (f := folder_by_id(watch, folder["id"]))["files_analyzed_count"] and f,
                          120, "the watch service to analyse the file")
    assert folder_now["files_analyzed_count"] == 1
    assert folder_now["last_poll_time"] >= folder["created_at"]
    assert video_cached(watch, cache, [target]) == {target.name: True}
    stats = stats_of(watch, folder["id"])
    task = watch.get(f"/tasks/{stats['last_task_id']}").json()
    assert (task["state"], task["total"], task["failed"]) == ("completed", 1, 0)
    with ProgressListener(watch.base) as listener:  # a late joiner gets the task's last event
        last = listener.follow(stats["last_task_id"], timeout=10)[-1]
    assert last["done"] is True and last["status"] == "completed"

    # Several more polls: the file is not analysed again.
    time.sleep(3.5)
    stats = stats_of(watch, folder["id"])
    assert (stats["submitted"], stats["analyzed"], stats["failed"]) == (1, 1, 0)
    assert folder_by_id(watch, folder["id"])["files_analyzed_count"] == 1
    status = watch.get("/watch-folders/service/status").json()
    assert status["files_pending"] == 0 and status["current_task_id"] is None
    assert status["files_processed_this_session"] >= 1


def test_excluded_extensions_and_globs_are_skipped(watch, tmp_path):
    inbox = tmp_path / "card"
    cache = tmp_path / "analysis"
    counter = DATA / "counter.mp4"
    files = {
        "keep.mp4": True,
        "Skip.MOV": False,  # excluded extension, other case
        "CAM_A04.MXF": False,  # excluded by extension and by glob
        "Interview_Proxy.mp4": False,  # glob, other case
        "take_proxy.d/inner.mp4": True,  # the glob looks at the file name, not its folder
        "notes.txt": None,  # not media at all
    }
    for n, name in enumerate(files):
        distinct_copy(counter, inbox / name, n)
    folder = add_folder(watch, folder_path=str(inbox), cache_dir=str(cache),
                        excluded_extensions=["mxf", ".Mov"], excluded_filename_globs=["*_PROXY.*", "*_a04.mxf"])
    assert folder["excluded_extensions"] == [".mxf", ".mov"]
    watch.post("/watch-folders/service/start")

    wait_for(lambda: folder_by_id(watch, folder["id"])["files_analyzed_count"] >= 2, 120,
             "the two wanted files to be analysed")
    time.sleep(3)  # more polls: nothing else turns up
    stats = stats_of(watch, folder["id"])
    assert (stats["submitted"], stats["analyzed"]) == (2, 2)
    media = [inbox / name for name, wanted in files.items() if wanted is not None]
    assert video_cached(watch, cache, media) == {
        Path(name).name: wanted for name, wanted in files.items() if wanted is not None}


def test_each_file_gets_only_the_analyses_it_can_have(watch, tmp_path):
    inbox = tmp_path / "mixed"
    inbox.mkdir()
    cache = tmp_path / "analysis"
    video = distinct_copy(DATA / "counter.mp4", inbox / "silent video.mp4", 7)  # no audio stream
    audio = Path(shutil.copy(DATA / "jfk.flac", inbox / "speech.flac"))
    still = inbox / "still.jpg"
    Image.new("RGB", (320, 240), (40, 160, 90)).save(still)
    folder = add_folder(watch, folder_path=str(inbox), cache_dir=str(cache), enable_audio_analysis=True)
    watch.post("/watch-folders/service/start")

    wait_for(lambda: folder_by_id(watch, folder["id"])["files_analyzed_count"] == 3, 120,
             "all three files to be analysed")
    stats = stats_of(watch, folder["id"])
    assert (stats["submitted"], stats["analyzed"], stats["failed"]) == (3, 3, 0)
    props = watch.post("/media/metadata", {"cache_dir": str(cache), "media_paths": [
        str(video), str(audio), str(still)]}).json()["media_properties"]
    assert props[str(video)]["video_cached"] is True
    assert props[str(still)]["video_cached"] is True
    assert props[str(audio)]["audio_cached"] is True


def test_the_service_yields_to_a_users_analysis_and_picks_up_after(watch, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    cache = tmp_path / "analysis"
    # Several videos and a speech, so the user's task outlasts the time the new file needs to
    # become stable (1.5 s) even when the worker is warm.
    user_files = [str(distinct_copy(DATA / "testvideo.mp4", tmp_path / f"user{n}.mp4", n)) for n in range(10, 14)]
    user_speech = str(shutil.copy(DATA / "jfk.flac", tmp_path / "user speech.flac"))
    folder = add_folder(watch, folder_path=str(inbox), cache_dir=str(cache))
    watch.post("/watch-folders/service/start")
    wait_for(lambda: stats_of(watch, folder["id"]).get("last_poll_time"), 20, "the first poll")

    # 1. A file arrives, and before it is stable a user's task starts: the service waits for it.
    with ProgressListener(watch.base) as listener:
        first = distinct_copy(DATA / "counter.mp4", inbox / "first.mp4", 1)
        time.sleep(0.8)
        response = watch.post("/analyze", {"cache_dir": str(tmp_path / "user cache"),
                                           "visual_media_paths": user_files,
                                           "transcription_jobs": [{"path": user_speech, "language": "english"}]})
        assert response.status_code == 202, response.text
        user_task = response.json()["task_id"]
        listener.join(user_task)
        paused = []
        while not listener.done[user_task].is_set():
            status = watch.get("/watch-folders/service/status").json()
            assert status["current_task_id"] in (None, user_task)
            assert status["folder_stats"][folder["id"]]["submitted"] == 0
            paused.append(status["paused_until"])
            time.sleep(0.2)
        assert listener.events[user_task][-1]["status"] == "completed"
    assert any(paused), "the service never reported waiting for the user's task"
    wait_for(lambda: folder_by_id(watch, folder["id"])["files_analyzed_count"] == 1, 90,
             "the file that arrived during the user's task")
    assert video_cached(watch, cache, [first]) == {"first.mp4": True}

    # 2. The service's own task is running when a user starts one: the user's wins, and the
    #    interrupted file is analysed afterwards.
    second = distinct_copy(DATA / "testvideo.mp4", inbox / "second.mp4", 2)
    service_task = wait_for(lambda: watch.get("/watch-folders/service/status").json()["current_task_id"], 30,
                            "the service to start analysing the second file")
    short = str(shutil.copy(DATA / "counter.mp4", tmp_path / "short.mp4"))
    response = watch.post("/analyze", {"cache_dir": str(tmp_path / "user cache"), "visual_media_paths": [short]})
    assert response.status_code == 202, response.text
    assert response.json()["task_id"] != service_task
    with ProgressListener(watch.base) as listener:
        assert listener.follow(response.json()["task_id"], timeout=90)[-1]["status"] == "completed"
    interrupted = watch.get(f"/tasks/{service_task}").json()
    assert interrupted["state"] in ("cancelled", "completed")
    wait_for(lambda: video_cached(watch, cache, [second])["second.mp4"], 120,
             "the interrupted file to be analysed after the user's task")
    wait_for(lambda: watch.get("/watch-folders/service/status").json()["current_task_id"] is None, 30,
             "the service to go idle")
    assert folder_by_id(watch, folder["id"])["files_analyzed_count"] == 2


def test_folders_and_files_outside_the_media_roots_are_refused(watch, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    cache = tmp_path / "analysis"
    outside = watch.post("/watch-folders", {"folder_path": str(DATA), "cache_dir": str(cache)})
    assert outside.status_code == 403 and "folder_path" in outside.json()["error"]
    no_cache = watch.post("/watch-folders", {"folder_path": str(inbox)})
    assert no_cache.status_code == 400 and "cache_dir" in no_cache.json()["error"]
    folder = add_folder(watch, folder_path=str(inbox), cache_dir=str(cache))
    for body in ({"folder_path": str(DATA)}, {"cache_dir": str(DATA / "cache")}):
        response = watch.request("PUT", f"/watch-folders/{folder['id']}", json=body)
        assert response.status_code == 403, (body, response.text)
    assert folder_by_id(watch, folder["id"]) == folder

    # A symlink inside the folder leading out of the roots is refused alone.
    (inbox / "linked.mp4").symlink_to(DATA / "counter.mp4")
    inside = distinct_copy(DATA / "counter.mp4", inbox / "inside.mp4", 8)
    watch.post("/watch-folders/service/start")
    wait_for(lambda: folder_by_id(watch, folder["id"])["files_analyzed_count"] == 1, 90, "the file inside")
    time.sleep(2.5)
    status = watch.get("/watch-folders/service/status").json()
    stats = status["folder_stats"][folder["id"]]
    assert stats["submitted"] == 1
    assert "linked.mp4" in stats["error"] and "media roots" in stats["error"]
    assert "linked.mp4" in status["last_error"]
    assert video_cached(watch, cache, [inside]) == {"inside.mp4": True}


def test_a_restarted_server_resumes_the_running_service(holder, watch, tmp_path):
    inbox = tmp_path / "inbox"
    cache = tmp_path / "analysis"
    before = distinct_copy(DATA / "counter.mp4", inbox / "before.mp4", 3)
    folder = add_folder(watch, folder_path=str(inbox), cache_dir=str(cache))
    watch.post("/watch-folders/service/start")
    wait_for(lambda: folder_by_id(watch, folder["id"])["files_analyzed_count"] == 1, 90, "the first file")

    srv = holder.restart()

    status = srv.get("/watch-folders/service/status").json()
    assert status["state"] == "running"
    assert folder_by_id(srv, folder["id"])["files_analyzed_count"] == 1
    after = distinct_copy(DATA / "counter.mp4", inbox / "after.mp4", 4)
    wait_for(lambda: folder_by_id(srv, folder["id"])["files_analyzed_count"] == 2, 90,
             "a file added after the restart")
    assert video_cached(srv, cache, [before, after]) == {"before.mp4": True, "after.mp4": True}
    # The file analysed before the restart was found again but not sent to analysis again.
    assert stats_of(srv, folder["id"])["submitted"] == 1

    # A service left stopped stays stopped across a restart.
    srv.post("/watch-folders/service/stop")
    srv = holder.restart()
    assert srv.get("/watch-folders/service/status").json()["state"] == "stopped"
