"""Progress events from workers to Socket.IO rooms, through the Redis message queue.

A worker has no Flask app: flask-socketio's write-only mode (``SocketIO(message_queue=...)``)
publishes to the same Redis channel the API servers listen on, and they deliver to the room
named by the task id. The last event of each task is also kept in Redis so a client that
joins late (or reconnects) is told where the task stands.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache

from tasks import state
from workers.messages import ProgressEvent
from workers.settings import redis_url

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _emitter():
    from flask_socketio import SocketIO

    return SocketIO(message_queue=redis_url())


class ProgressReporter:
    """Emits ``progress`` events for one task; throttled so a fast loop can call it per frame."""

    def __init__(self, task_id: str, min_interval: float = 0.25, base: dict | None = None):
        self.task_id = task_id
        self.base = base or {}
        self.min_interval = min_interval
        self._last_sent = 0.0
        self._last_progress: dict[tuple, float] = {}

    def emit(self, event: ProgressEvent, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_sent < self.min_interval:
            return
        self._last_sent = now
        encoded = event.with_extra(**self.base).encode()
        try:
            state.store_last_event(self.task_id, encoded)
            _emitter().emit("progress", encoded, to=self.task_id, namespace="/")
        except Exception:  # noqa: BLE001 - progress must never fail the analysis itself
            log.exception("could not publish progress for task %s", self.task_id)

    def file_progress(self, media_path: str | None, kind: str, percent: float, **extra) -> None:
        percent = round(max(0.0, min(100.0, float(percent))), 1)
        key = (media_path, kind)
        force = percent >= 100.0 or percent == 0.0 or self._last_progress.get(key) is None
        self._last_progress[key] = percent
        self.emit(ProgressEvent.file_progress(self.task_id, media_path, kind, percent, **extra), force=force)
