"""The watch-folder service: polls enabled folders and queues new, complete files through the
same analysis path as /analyze.

It runs as a background greenlet in every API process, but only the holder of a Redis lock
works, so there is one instance cluster-wide. It yields to a user's /analyze: while another
task holds the analysis slot it waits, and files of its own batch that were cancelled are
picked up again on a later poll (nothing marks them analysed).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid

from app.errors import ApiError
from app.settings import load_settings
from tasks import state
from workers import store, transcripts
from workers.active_models import active_model
from workers.watch import config
from workers.watch.scanner import StabilityTracker, scan_folder

log = logging.getLogger(__name__)

LOCK = state.PREFIX + "watch:lock"
STATUS = state.PREFIX + "watch:status"
INSTANCE = uuid.uuid4().hex


def _set_status(**fields) -> None:
    r = state.client()
    r.hset(STATUS, mapping={k: json.dumps(v) for k, v in fields.items()})


def status() -> dict:
    raw = state.client().hgetall(STATUS)
    current = {k: json.loads(v) for k, v in raw.items()}
    enabled = config.service_enabled()
    out = {
        "state": current.get("state", "stopped") if enabled else "stopped",
        "current_folder": current.get("current_folder"),
        "current_file": current.get("current_file"),
        "files_pending": current.get("files_pending", 0),
        "files_processed_this_session": current.get("files_processed_this_session", 0),
        "last_error": current.get("last_error"),
        "paused_until": current.get("paused_until"),
        "folder_stats": current.get("folder_stats", {}),
    }
    if enabled and out["state"] == "stopped":
        out["state"] = "starting"
    return out


def start() -> dict:
    config.set_service_enabled(True)
    _set_status(state="starting", last_error=None)
    return {"message": "Watch folder service started", "service_status": status()}


def stop() -> dict:
    config.set_service_enabled(False)
    _set_status(state="stopped", current_folder=None, current_file=None)
    return {"message": "Watch folder service stopped", "service_status": status()}


def _needs_analysis(path: str, folder: dict) -> bool:
    """False when everything this folder asks for is already in the cache (by content hash)."""
    cache_dir = folder.get("cache_dir") or config.default_cache_dir()
    try:
        hash_str = store.hash_file(path)
    except OSError:
        return False
    if folder.get("enable_visual_analysis", True) or folder.get("enable_face_analysis"):
        if not store.has_embeddings(cache_dir, hash_str, active_model("visual")):
            return True
    if folder.get("enable_audio_analysis") and not transcripts.has_transcript(cache_dir, hash_str):
        from workers.media.probe import MediaError, probe

        try:
            return probe(path).has_audio
        except MediaError:
            return False
    return False


def _request_for(folder: dict, paths: list[str]) -> dict:
    request = {"cache_dir": folder.get("cache_dir") or config.default_cache_dir(), "visual_media_paths": [],
               "transcription_jobs": [], "face_clustering_jobs": []}
    if folder.get("enable_visual_analysis", True):
        request["visual_media_paths"] = list(paths)
    if folder.get("enable_audio_analysis"):
        language = folder.get("audio_language")
        request["transcription_jobs"] = [{"path": p, "language": language} for p in paths]
    if folder.get("enable_face_analysis") and folder.get("cluster_job_name"):
        request["face_clustering_jobs"] = [{"cluster_job_name": folder["cluster_job_name"],
                                            "face_media_paths": list(paths), "eps": folder.get("face_eps", 0.48),
                                            "min_samples": folder.get("face_min_samples", 5)}]
    return request


class WatchLoop:
    def __init__(self):
        self.trackers: dict[str, StabilityTracker] = {}
        self.queue: dict[str, list[str]] = {}  # folder id → ready files not yet submitted
        self.running: tuple[str, str, list[str]] | None = None  # (task_id, folder id, files)
        self.processed = 0
        self.stats: dict[str, dict] = {}

    def _holds_lock(self, ttl: float) -> bool:
        r = state.client()
        if r.set(LOCK, INSTANCE, nx=True, ex=int(ttl) + 1):
            return True
        if r.get(LOCK) == INSTANCE:
            r.expire(LOCK, int(ttl) + 1)
            return True
        return False

    def tick(self) -> None:
        settings = load_settings()
        if not config.service_enabled():
            self.trackers.clear()
            self.queue.clear()
            return
        if not self._holds_lock(settings.watch_poll_seconds * 3 + 5):
            return
        self._collect_finished()
        folders = [f for f in config.list_folders() if f.get("enabled", True)]
        last_error = None
        for folder in folders:
            tracker = self.trackers.setdefault(folder["id"], StabilityTracker(settings.watch_stable_seconds))
            try:
                ready = scan_folder(folder, tracker)
            except OSError as exc:
                last_error = f"{folder['folder_path']}: {exc.strerror or exc}"
                self.stats[folder["id"]] = {**self.stats.get(folder["id"], {}), "error": last_error}
                continue
            config.record_poll(folder["id"])
            fresh = [p for p in ready if _needs_analysis(p, folder)]
            if fresh:
                queued = self.queue.setdefault(folder["id"], [])
                queued.extend(p for p in fresh if p not in queued)
            self.stats[folder["id"]] = {"pending": len(self.queue.get(folder["id"], [])),
                                        "waiting_for_stable": tracker.pending_count(),
                                        "last_poll_time": time.time()}
        pending = sum(len(v) for v in self.queue.values())
        waiting = sum(t.pending_count() for t in self.trackers.values())
        current_state = "running"
        current_folder = current_file = None
        if self.running is None and pending:
            current_state, current_folder, current_file, last_error = self._submit(folders, last_error)
        elif self.running is not None:
            current_state = "analyzing"
            current_folder = next((f["folder_path"] for f in folders if f["id"] == self.running[1]), None)
            current_file = self.running[2][0] if self.running[2] else None
        _set_status(state=current_state, current_folder=current_folder, current_file=current_file,
                    files_pending=sum(len(v) for v in self.queue.values()) + waiting,
                    files_processed_this_session=self.processed,
                    last_error=last_error, folder_stats=self.stats)

    def _submit(self, folders: list[dict], last_error):
        from app.services.analysis import start_analysis

        if state.current_task_id():
            return "waiting", None, None, last_error  # a user's task runs: yield to it
        for folder in folders:
            paths = self.queue.get(folder["id"])
            if not paths:
                continue
            paths = [p for p in paths if os.path.isfile(p)]
            self.queue[folder["id"]] = []
            if not paths:
                continue
            try:
                started = start_analysis(_request_for(folder, paths), origin="watch")
            except ApiError as exc:
                if exc.status in (409, 503):
                    self.queue[folder["id"]] = paths  # try again next poll
                    return "waiting", None, None, last_error
                return "running", folder["folder_path"], None, exc.message
            self.running = (started["task_id"], folder["id"], paths)
            return "analyzing", folder["folder_path"], paths[0], last_error
        return "running", None, None, last_error

    def _collect_finished(self) -> None:
        if self.running is None:
            return
        task_id, folder_id, paths = self.running
        record = state.get_task(task_id)
        if record and record["state"] in ("queued", "running"):
            return
        self.running = None
        if record is None:
            return
        done = max(0, record["finished"] - record["failed"] - record["cancelled"])
        self.processed += done
        if done:
            config.increment_analyzed(folder_id, done)
        if record["cancelled"]:
            # Yielded to a user's task: let those files be found again.
            tracker = self.trackers.get(folder_id)
            for path in paths:
                if tracker:
                    tracker.retry(path)


def run_forever(sleep) -> None:
    """The greenlet body; ``sleep`` is eventlet's."""
    loop = WatchLoop()
    while True:
        try:
            loop.tick()
        except Exception as exc:  # noqa: BLE001 - Redis restarting, a folder on a dropped share…
            log.warning("watch folder poll failed: %s", exc)
            try:
                _set_status(last_error=str(exc))
            except Exception:  # noqa: BLE001
                pass
        sleep(load_settings().watch_poll_seconds)
