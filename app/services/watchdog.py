"""Noticing work that died: a worker killed mid-file, or a task no worker ever picked up.

Each file being analysed is registered as in flight with a timestamp its worker refreshes
every two seconds. A file whose timestamp goes stale (the worker was killed, the machine
lost) is counted as failed with a clear error, its room hears about it, and the batch goes
on with the other files; if it was the last one, the batch is finalized by a worker. A task
nobody picked up at all is failed as a whole.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from tasks import state
from tasks.celery_app import celery_app
from workers.messages import ProgressEvent
from workers.settings import load_settings

log = logging.getLogger(__name__)


Emit = Callable[[ProgressEvent], None]


def check_current(emit: Emit | None = None) -> None:
    current = state.current_task_id()
    if current:
        fail_lost_files(current, emit)
        fail_if_stale(current, emit)


def fail_lost_files(task_id: str, emit: Emit | None = None) -> int:
    """Fail the in-flight files whose worker stopped beating. Returns how many."""
    stale_after = load_settings().task_stale_seconds
    now = time.time()
    lost = 0
    for index, (path, beat) in state.inflight(task_id).items():
        if now - beat <= stale_after or not state.clear_inflight(task_id, index):
            continue
        lost += 1
        error = f"the worker analysing this file stopped responding for {int(stale_after)} s (killed?)"
        event = ProgressEvent.file_failed(task_id, path, error)
        state.store_last_event(task_id, event.encode())
        if emit:
            emit(event)
        log.warning("task %s: %s: %s", task_id, path, error)
        finished, total = state.record_file_result(task_id, "failed", {"path": path, "error": error})
        if finished >= total and state.claim_finalize(task_id):
            celery_app.send_task("sightline.finalize", args=[task_id])
    return lost


def fail_if_stale(task_id: str, emit: Emit | None = None) -> bool:
    """Fail a whole task whose workers all went silent. True if it was failed.

    A started task must beat every few seconds; a task no worker picked up gets ten times
    longer, since it may be waiting behind other work in the queue.
    """
    record = state.get_task(task_id)
    if record is None:
        state.release_current(task_id, "failed")
        return True
    if record["state"] not in ("queued", "running"):
        return False
    stale_after = load_settings().task_stale_seconds
    now = time.time()
    if record["heartbeat"]:
        silent = now - record["heartbeat"] > stale_after and not state.inflight(task_id)
        reason = f"no worker has reported on this task for {int(stale_after)} s (workers lost?)"
    else:
        silent = now - record["created"] > stale_after * 10
        reason = "no worker picked up this task (is a `sightline worker` running?)"
    if not silent or not state.claim_finalize(task_id):
        return False
    event = ProgressEvent.task_done(task_id, "failed", error=reason, files_total=record["total"],
                                    files_failed=record["total"] - record["finished"] + record["failed"])
    state.release_current(task_id, "failed")
    state.store_last_event(task_id, event.encode())
    if emit:
        emit(event)
    log.warning("task %s failed: %s", task_id, reason)
    return True
