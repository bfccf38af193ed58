"""Face re-clustering on the ``analysis`` queue, reported in its own Socket.IO room."""

from __future__ import annotations

import logging

from tasks import state
from tasks.celery_app import celery_app
from tasks.progress import ProgressReporter
from workers.messages import ProgressEvent

log = logging.getLogger(__name__)


@celery_app.task(name="sightline.recluster", ignore_result=True)
def recluster(task_id: str, cache_dir: str, job_name: str, params: dict) -> dict:
    from workers.faces.service import cluster_job

    reporter = ProgressReporter(task_id)
    state.heartbeat(task_id)
    try:
        summary = cluster_job(cache_dir, job_name, eps=params.get("eps"), min_samples=params.get("min_samples"),
                              auto_detect_params=params.get("auto_detect_params", False),
                              clear_names=params.get("clear_names", False),
                              progress=lambda f: (state.heartbeat(task_id), reporter.emit(
                                  ProgressEvent.cluster(task_id, job_name, round(100 * f, 1)))))
    except Exception as exc:  # noqa: BLE001 - reported to the room, the worker goes on
        log.exception("recluster of %s failed", job_name)
        state.release_current(task_id, "failed")
        reporter.emit(ProgressEvent.cluster(task_id, job_name, 100, done=True, status="failed", error=str(exc)),
                      force=True)
        return {"status": "failed"}
    state.release_current(task_id, "completed")
    reporter.emit(ProgressEvent.cluster(
        task_id, job_name, 100, done=True, status="completed", num_clusters=summary["num_clusters"],
        noise_entries=summary["noise_entries"], cluster_media_hashes=summary["cluster_media_hashes"],
        eps=summary["eps"], min_samples=summary["min_samples"]), force=True)
    return {"status": "completed"}
