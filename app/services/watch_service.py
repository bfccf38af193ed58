"""The watch-folder service: polls enabled folders and sends new, complete files through the
same analysis path as /analyze.

It runs as a background greenlet in every API process, but only the holder of a Redis lock
works, so there is one instance cluster-wide. Whether it runs is stored with the watch
folders (``workers/watch/config.py``), so a restarted server resumes it.

It yields to a user's /analyze: while another task holds the analysis slot it waits, and
when a user's request stops one of its own tasks (Jumper runs one task at a time), the files
of that batch are picked up again on the next poll (the cache decides what is left to do).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid

from app.errors import ApiError
from app.paths import check_media
from app.services.media import usable_visual_model, visual_cached
from tasks import state
from workers import store, transcripts
from workers.faces.storage import job_has_media
from workers.settings import load_settings
from workers.watch import config
from workers.watch.scanner import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, StabilityTracker, scan_folder

log = logging.getLogger(__name__)

LOCK = state.PREFIX + "watch:lock"
STATUS = state.PREFIX + "watch:status"
INSTANCE = uuid.uuid4().hex
ORIGIN = "watch"

# Settings that change what a folder's files need; editing one re-examines the folder.
_SCAN_FIELDS = ("folder_path", "cache_dir", "enable_visual_analysis", "enable_audio_analysis",
                "enable_face_analysis", "cluster_job_name", "audio_language", "excluded_extensions",
                "excluded_filename_globs")


def _set_status(**fields) -> None:
    state.client().hset(STATUS, mapping={k: json.dumps(v) for k, v in fields.items()})


def status() -> dict:
    """The spec's service status, plus ``current_task_id`` (join its Socket.IO room for progress)."""
    raw = state.client().hgetall(STATUS)
    current = {k: json.loads(v) for k, v in raw.items()}
    running = config.service_enabled()
    return {
        # The switch decides: a client that just called start sees "running" at once.
        "state": "running" if running else "stopped",
        "current_folder": current.get("current_folder") if running else None,
        "current_file": current.get("current_file") if running else None,
        "current_task_id": current.get("current_task_id") if running else None,
        "files_pending": current.get("files_pending", 0) if running else 0,
        "files_processed_this_session": current.get("files_processed_this_session", 0),
        "last_error": current.get("last_error"),
        "paused_until": current.get("paused_until") if running else None,
        "folder_stats": current.get("folder_stats", {}),
    }


def start() -> dict:
    config.set_service_enabled(True)
    _set_status(last_error=None)
    return {"message": "Watch folder service started", "service_status": status()}


def stop() -> dict:
    config.set_service_enabled(False)
    # A task the service started stops with it; a user's own /analyze is left alone.
    current = state.current_task_id()
    if current:
        record = state.get_task(current) or {}
        if record.get("extra", {}).get("origin") == ORIGIN:
            state.request_cancel(current)
    _set_status(current_folder=None, current_file=None, current_task_id=None, paused_until=None)
    return {"message": "Watch folder service stopped", "service_status": status()}


def _kind(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    return "image" if ext in IMAGE_EXTENSIONS else "video"


def _needs(path: str, folder: dict) -> set[str]:
    """What this folder asks for that the cache does not hold yet for ``path`` (by content hash):
    a subset of {"visual", "faces", "speech"}."""
    cache_dir = folder.get("cache_dir") or config.default_cache_dir()
    kind = _kind(path)
    try:
        hash_str = store.hash_file(path)
    except OSError:
        return set()
    needs: set[str] = set()
    if kind in ("video", "image"):
        if folder.get("enable_visual_analysis", True) and not visual_cached(
                cache_dir, hash_str, usable_visual_model()):
            needs.add("visual")
        job = folder.get("cluster_job_name")
        if folder.get("enable_face_analysis") and job and not job_has_media(cache_dir, job, hash_str):
            needs.add("faces")
    if folder.get("enable_audio_analysis") and kind in ("video", "audio") and not transcripts.has_transcript(
            cache_dir, hash_str):
        from workers.media.probe import MediaError, probe

        try:
            if probe(path).has_audio:
                needs.add("speech")
        except MediaError:
            pass
    return needs


def _request_for(folder: dict, needs: dict[str, set[str]]) -> dict:
    request = {"cache_dir": folder.get("cache_dir") or config.default_cache_dir(),
               "visual_media_paths": [p for p, n in needs.items() if "visual" in n],
               "transcription_jobs": [{"path": p, "language": folder.get("audio_language")}
                                      for p, n in needs.items() if "speech" in n],
               "face_clustering_jobs": []}
    faces = [p for p, n in needs.items() if "faces" in n]
    if faces:
        request["face_clustering_jobs"] = [{"cluster_job_name": folder["cluster_job_name"],
                                            "face_media_paths": faces, "eps": folder.get("face_eps", 0.48),
                                            "min_samples": folder.get("face_min_samples", 5)}]
    return request


def _signature(folder: dict) -> str:
    return json.dumps([folder.get(k) for k in _SCAN_FIELDS])


class WatchLoop:
    def __init__(self):
        self.trackers: dict[str, StabilityTracker] = {}
        self.signatures: dict[str, str] = {}
        self.queue: dict[str, dict[str, set[str]]] = {}  # folder id → ready file → what it needs
        self.running: tuple[str, str, list[str]] | None = None  # (task_id, folder id, files)
        self.processed = 0
        self.stats: dict[str, dict] = {}
        self.last_error: str | None = None
        self.unreachable: set[str] = set()  # folders whose last scan failed

    def _holds_lock(self, ttl: float) -> bool:
        r = state.client()
        if r.set(LOCK, INSTANCE, nx=True, ex=int(ttl) + 1):
            return True
        if r.get(LOCK) == INSTANCE:
            r.expire(LOCK, int(ttl) + 1)
            return True
        return False

    def _stat(self, folder_id: str) -> dict:
        return self.stats.setdefault(folder_id, {"pending": 0, "waiting_for_stable": 0, "last_poll_time": None,
                                                 "submitted": 0, "analyzed": 0, "failed": 0,
                                                 "last_task_id": None, "error": None})

    def tick(self) -> None:
        settings = load_settings()
        if not self._holds_lock(settings.watch_poll_seconds * 3 + 5):
            return
        self._collect_finished()
        if not config.service_enabled():
            # Forget what was seen: a later start looks at every file again (the cache decides).
            self.trackers.clear()
            self.queue.clear()
            self.signatures.clear()
            return
        folders = [f for f in config.list_folders() if f.get("enabled", True)]
        self._forget_changed(folders)
        for folder in folders:
            self._poll(folder, settings.watch_stable_seconds)
        waiting = sum(t.pending_count() for t in self.trackers.values())
        fields = {"current_folder": None, "current_file": None, "current_task_id": None, "paused_until": None}
        if self.running is not None:
            task_id, folder_id, paths = self.running
            fields.update(current_task_id=task_id, current_file=paths[0] if paths else None,
                          current_folder=next((f["folder_path"] for f in folders if f["id"] == folder_id), None))
        elif any(self.queue.values()):
            fields.update(self._submit(folders, settings.watch_poll_seconds))
        _set_status(**fields, files_pending=sum(len(v) for v in self.queue.values()) + waiting,
                    files_processed_this_session=self.processed, last_error=self.last_error,
                    folder_stats=self.stats)

    def _forget_changed(self, folders: list[dict]) -> None:
        """Drop state of folders removed, disabled or edited since the last poll."""
        current = {f["id"]: _signature(f) for f in folders}
        for folder_id in list(self.trackers):
            if current.get(folder_id) != self.signatures.get(folder_id):
                self.trackers.pop(folder_id, None)
                self.queue.pop(folder_id, None)
        for folder_id in list(self.queue):
            if folder_id not in current:
                self.queue.pop(folder_id)
        for folder_id in list(self.stats):
            if folder_id not in current:
                self.stats.pop(folder_id)
        self.signatures = current

    def _poll(self, folder: dict, stable_seconds: float) -> None:
        stat = self._stat(folder["id"])
        tracker = self.trackers.setdefault(folder["id"], StabilityTracker(stable_seconds))
        try:
            ready = scan_folder(folder, tracker)
        except OSError as exc:
            # An unmounted share: keep polling, say why nothing happens.
            stat["error"] = self.last_error = f"{folder['folder_path']}: {exc.strerror or exc}"
            self.unreachable.add(folder["id"])
            return
        if folder["id"] in self.unreachable:  # back again; a file's own error stays on show
            self.unreachable.discard(folder["id"])
            stat["error"] = None
        config.record_poll(folder["id"])
        queued = self.queue.setdefault(folder["id"], {})
        for path in ready:
            needs = _needs(path, folder)
            if needs:
                queued[path] = needs
        stat.update(pending=len(queued), waiting_for_stable=tracker.pending_count(), last_poll_time=time.time())

    def _submit(self, folders: list[dict], poll_seconds: float) -> dict:
        from app.services.analysis import start_analysis

        if state.current_task_id():
            # A user's task holds the slot: wait for it, look again next poll.
            return {"paused_until": time.time() + poll_seconds}
        for folder in folders:
            queued = self.queue.get(folder["id"])
            if not queued:
                continue
            needs = {p: n for p, n in queued.items() if os.path.isfile(p) and self._allowed(p, folder["id"])}
            self.queue[folder["id"]] = {}
            if not needs:
                continue
            try:
                started = start_analysis(_request_for(folder, needs), origin=ORIGIN)
            except ApiError as exc:
                if exc.status in (409, 503):
                    self.queue[folder["id"]] = needs  # busy or a model still loading: next poll
                    return {"paused_until": time.time() + poll_seconds}
                self._stat(folder["id"])["error"] = self.last_error = f"{folder['folder_path']}: {exc.message}"
                continue
            paths = list(needs)
            self.running = (started["task_id"], folder["id"], paths)
            stat = self._stat(folder["id"])
            stat.update(submitted=stat["submitted"] + len(paths), last_task_id=started["task_id"],
                        pending=0)
            return {"current_task_id": started["task_id"], "current_folder": folder["folder_path"],
                    "current_file": paths[0]}
        return {}

    def _allowed(self, path: str, folder_id: str) -> bool:
        # A symlink inside the folder may lead outside the media roots; that file alone is refused.
        try:
            check_media(path, "watch folder file")
        except ApiError as exc:
            self._stat(folder_id)["error"] = self.last_error = exc.message
            return False
        return True

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
        stat = self.stats.get(folder_id)
        if stat is not None:  # None when the folder was removed meanwhile
            stat.update(analyzed=stat["analyzed"] + done, failed=stat["failed"] + record["failed"])
        if done:
            config.increment_analyzed(folder_id, done)
        if record["cancelled"]:
            # Stopped to make room for a user's task: hand the batch out again; files that
            # finished before the stop are skipped then, as the cache already holds them.
            tracker = self.trackers.get(folder_id)
            for path in paths if tracker else ():
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
