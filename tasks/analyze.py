"""Analysis tasks. One ``/analyze`` request is one task id whose files are fanned out as one
Celery task each (so N workers share a batch); the worker that finishes the last file
finalizes the task: face clustering, then the ``done: true`` event.

Every failure inside a file is caught here and reported as that file's error event: a bad
file never stops the batch, and the counters always reach the total.
"""

from __future__ import annotations

import logging
import time

from billiard.exceptions import WorkerLostError
from celery.signals import task_failure

from tasks import state
from tasks.celery_app import celery_app
from tasks.heartbeat import Heartbeat
from tasks.progress import ProgressReporter
from workers import analysis
from workers.analysis import AnalysisOptions, describe_error
from workers.engines.base import ModelUnavailable
from workers.media.probe import MediaError
from workers.messages import FileJob, ModelChoice, ProgressEvent
from workers.pipeline import Cancelled
from workers.settings import load_settings

log = logging.getLogger(__name__)


def _heartbeat(task_id: str, index: int, path: str, every: float = 2.0) -> Heartbeat:
    """Tells the API this task is alive while a long step (a model load, a decode) runs."""

    def beat() -> None:
        state.heartbeat(task_id)
        state.beat_inflight(task_id, index, path)

    return Heartbeat(beat, every, f"task {task_id}")


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
def analyze_file(self, task_id: str, encoded_job: dict, cache_dir: str, encoded_models: dict) -> dict:
    """Analyse one file for every job that names it (visual, speech, faces); the job and the
    models are a ``FileJob`` and a ``ModelChoice``, encoded."""
    if not state.is_active(task_id):
        # A message delivered after its task ended (failed by the watchdog, say): nothing to do.
        return {"status": "skipped"}
    job, models = FileJob.decode(encoded_job), ModelChoice.decode(encoded_models)
    # Which worker did the file: useful when several share a batch.
    reporter = ProgressReporter(task_id, base={"worker": self.request.hostname})
    path, index = job.path, job.index
    state.mark_inflight(task_id, index, path)
    should_cancel = _cancel_checker(task_id)
    status, error = "completed", None
    kind = job.kind
    try:
        with _heartbeat(task_id, index, path):
            if should_cancel():
                raise Cancelled()
            part_errors = _run_file(job, cache_dir, models, reporter, should_cancel)
        if part_errors:
            error = {"path": path, "error": "; ".join(f"{e['part']}: {e['error']}" for e in part_errors)}
    except Cancelled:
        status = "cancelled"
        reporter.emit(ProgressEvent.file_cancelled(task_id, path, kind), force=True)
    except Exception as exc:  # noqa: BLE001 - any failure fails this file only
        status = "failed"
        error = {"path": path, "error": describe_error(exc)}
        if not isinstance(exc, (MediaError, ModelUnavailable, FileNotFoundError, ValueError)):
            log.exception("analysis of %s failed", path)
        reporter.emit(ProgressEvent.file_failed(task_id, path, error["error"], kind), force=True)
    # If the watchdog already gave this file up (we were too slow to beat), it counted it.
    if state.clear_inflight(task_id, index):
        finish_file(task_id, status, error)
    return {"status": status}


def _run_file(job: FileJob, cache_dir: str, models: ModelChoice, reporter: ProgressReporter,
              should_cancel) -> list[dict]:
    """Analyse the file (workers.analysis); each part that failed alone is reported on its own.
    Returns the parts' errors."""
    options = AnalysisOptions.for_job(job, models, load_settings().device)
    result = analysis.analyze_file(job.path, cache_dir, options, should_cancel=should_cancel,
                                   progress=lambda part, percent: reporter.file_progress(job.path, part, percent))
    for failure in result.failures:
        reporter.emit(ProgressEvent.file_failed(reporter.task_id, job.path, failure.error, failure.part), force=True)
    return [{"path": job.path, "part": f.part, "error": f.error} for f in result.failures]


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
                errors.append({"cluster_job_name": face_job.get("cluster_job_name"), "error": describe_error(exc)})
    failed = record.get("failed", 0)
    if cancelled:
        final = "cancelled"
    elif failed and failed >= record.get("total", 0):
        final = "failed"
    else:
        final = "completed_with_errors" if failed or errors else "completed"
    # The state first: a client that hears `done` and asks for the task must see it ended.
    state.release_current(task_id, final)
    reporter.emit(ProgressEvent.task_done(task_id, final, files_total=record.get("total", 0), files_failed=failed,
                                          files_cancelled=record.get("cancelled", 0), errors=errors), force=True)


@celery_app.task(name="sightline.finalize", ignore_result=True)
def finalize_task(task_id: str) -> None:
    """Finalize a batch whose last file was accounted for outside a worker (the watchdog)."""
    finalize(task_id)


@task_failure.connect
def _on_lost_worker(sender=None, task_id=None, exception=None, args=None, kwargs=None, **_):
    """A worker process that died mid-file (killed, segfault) still counts its file as failed."""
    if getattr(sender, "name", None) != "sightline.analyze_file" or not args:
        return
    if not isinstance(exception, WorkerLostError):
        return
    batch_id, job = args[0], FileJob.decode(args[1])
    if not state.clear_inflight(batch_id, job.index):
        return
    try:
        ProgressReporter(batch_id).emit(ProgressEvent.file_failed(
            batch_id, job.path, f"worker lost while analysing this file: {exception!r}"), force=True)
        finish_file(batch_id, "failed", {"path": job.path, "error": f"worker lost: {exception!r}"})
    except Exception:  # noqa: BLE001
        log.exception("could not record the lost file of task %s", batch_id)
