"""Analysis tasks. One ``/analyze`` request is one task id whose files are fanned out as one
Celery task each (so N workers share a batch); the worker that finishes the last file
finalizes the task: face clustering, then the ``done: true`` event.

Every failure inside a file is caught here and reported as that file's error event: a bad
file never stops the batch, and the counters always reach the total.
"""

from __future__ import annotations

import logging
import threading
import time

from billiard.exceptions import WorkerLostError
from celery.signals import task_failure

from tasks import state
from tasks.celery_app import celery_app
from tasks.progress import ProgressReporter
from workers import store
from workers.engines.base import ModelUnavailable
from workers.media.probe import MediaError, probe
from workers.pipeline import Cancelled

log = logging.getLogger(__name__)


class _Heartbeat:
    """Tells the API this task is alive while a long step (a model load, a decode) runs."""

    def __init__(self, task_id: str, every: float = 2.0):
        self.task_id, self.every = task_id, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                state.heartbeat(self.task_id)
            except Exception:  # noqa: BLE001 - Redis may blink; the next beat retries
                log.warning("heartbeat failed for %s", self.task_id)
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


def _cancel_checker(task_id: str):
    last = [0.0, False]

    def should_cancel() -> bool:
        # Polling Redis per frame is cheap, but a few times a second is enough.
        now = time.monotonic()
        if now - last[0] > 0.3:
            last[0] = now
            last[1] = state.is_cancelled(task_id)
        return last[1]

    return should_cancel


@celery_app.task(name="sightline.analyze_file", bind=True, ignore_result=True)
def analyze_file(self, task_id: str, job: dict, cache_dir: str, models: dict) -> dict:
    """Analyse one file for every job that names it (visual, speech, faces)."""
    reporter = ProgressReporter(task_id)
    path = job["path"]
    should_cancel = _cancel_checker(task_id)
    status, error = "completed", None
    kind = "video" if (job.get("visual") or job.get("face_jobs")) else "speech"
    try:
        with _Heartbeat(task_id):
            if should_cancel():
                raise Cancelled()
            _run_file(job, cache_dir, models, reporter, should_cancel)
    except Cancelled:
        status = "cancelled"
        reporter.emit({"progress": 0, "video_path": path, "done": False, "type": kind,
                       "status": "cancelled"}, force=True)
    except Exception as exc:  # noqa: BLE001 - any failure fails this file only
        status = "failed"
        error = {"path": path, "error": _describe(exc)}
        if not isinstance(exc, (MediaError, ModelUnavailable, FileNotFoundError, ValueError)):
            log.exception("analysis of %s failed", path)
        reporter.emit({"progress": 100, "video_path": path, "done": False, "type": kind,
                       "status": "failed", "error": error["error"]}, force=True)
    finish_file(task_id, status, error)
    return {"status": status}


def _describe(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return text if isinstance(exc, (MediaError, ModelUnavailable)) else f"{exc.__class__.__name__}: {text}"


def _run_file(job: dict, cache_dir: str, models: dict, reporter: ProgressReporter, should_cancel) -> None:
    path = job["path"]
    info = probe(path)
    hash_str = store.hash_file(path)
    face_jobs = job.get("face_jobs") or []
    wants_visual = bool(job.get("visual") or face_jobs) and info.kind in ("video", "image")
    if job.get("visual") and info.kind == "audio" and not job.get("speech"):
        raise MediaError("file has no video stream or image to analyse visually")
    if wants_visual:
        _visual_step(info, cache_dir, hash_str, job, models, reporter, should_cancel)
    if job.get("speech"):
        if not info.has_audio:
            raise MediaError("file has no audio stream to transcribe")
        from workers.pipeline.speech import transcribe_file

        transcribe_file(path, cache_dir, hash_str, job["speech"].get("language"), models["speech"],
                        progress=lambda p: reporter.file_progress(path, "speech", p),
                        should_cancel=should_cancel)
        reporter.file_progress(path, "speech", 100.0)


def _visual_step(info, cache_dir, hash_str, job, models, reporter, should_cancel) -> None:
    from workers.pipeline.visual import analyze_visual

    engine = None
    if job.get("visual"):
        from workers.engines.visual import load_visual_engine

        reporter.file_progress(info.path, "video", 0.0)
        engine = load_visual_engine(models["visual"])
    face_jobs = job.get("face_jobs") or []
    collector = None
    if face_jobs:
        from workers.pipeline.faces import FaceCollector

        collector = FaceCollector()
    analyze_visual(info, cache_dir, hash_str, engine, face_sink=collector,
                   progress=lambda p: reporter.file_progress(info.path, "video", p),
                   should_cancel=should_cancel)
    if collector is not None:
        for face_job in face_jobs:
            collector.store(cache_dir, face_job, hash_str)


def finish_file(task_id: str, status: str, error: dict | None) -> None:
    finished, total = state.record_file_result(task_id, status, error)
    if finished >= total and state.claim_finalize(task_id):
        finalize(task_id)


def finalize(task_id: str) -> None:
    """Cluster faces for the batch's face jobs, then tell the room the task is done."""
    record = state.get_task(task_id) or {}
    extra = record.get("extra", {})
    reporter = ProgressReporter(task_id)
    cancelled = record.get("cancel_requested", False)
    errors = list(record.get("errors", []))
    if not cancelled and extra.get("face_jobs"):
        from workers.pipeline.faces import cluster_after_batch

        for face_job in extra["face_jobs"]:
            try:
                cluster_after_batch(extra["cache_dir"], face_job, reporter)
            except Exception as exc:  # noqa: BLE001
                log.exception("clustering %s failed", face_job.get("cluster_job_name"))
                errors.append({"cluster_job_name": face_job.get("cluster_job_name"), "error": _describe(exc)})
    failed = record.get("failed", 0)
    final = "cancelled" if cancelled else ("completed_with_errors" if failed or errors else "completed")
    reporter.emit({
        "progress": 100, "video_path": None, "done": True, "type": "video", "status": final,
        "files_total": record.get("total", 0), "files_failed": failed,
        "files_cancelled": record.get("cancelled", 0), "errors": errors,
    }, force=True)
    state.release_current(task_id, final)


@task_failure.connect
def _on_lost_worker(sender=None, task_id=None, exception=None, args=None, kwargs=None, **_):
    """A worker process that died mid-file (killed, segfault) still counts its file as failed."""
    if getattr(sender, "name", None) != "sightline.analyze_file" or not args:
        return
    if not isinstance(exception, WorkerLostError):
        return
    batch_id, job = args[0], args[1]
    try:
        ProgressReporter(batch_id).emit({
            "progress": 100, "video_path": job.get("path"), "done": False, "type": "video",
            "status": "failed", "error": f"worker lost while analysing this file: {exception!r}",
        }, force=True)
        finish_file(batch_id, "failed", {"path": job.get("path"), "error": f"worker lost: {exception!r}"})
    except Exception:  # noqa: BLE001
        log.exception("could not record the lost file of task %s", batch_id)
