"""Socket.IO at the server root: a client emits ``join`` with a task_id and receives that
task's ``progress`` events. A late joiner is first sent what it missed: every file's outcome
so far and the latest event."""

from __future__ import annotations

import logging

from flask import request
from flask_socketio import SocketIO, emit, join_room, leave_room

from tasks import state
from workers.messages import ProgressEvent

log = logging.getLogger(__name__)

socketio = SocketIO()


def _task_id(payload) -> str | None:
    if isinstance(payload, dict):
        payload = payload.get("task_id") or payload.get("room")
    return payload if isinstance(payload, str) and 0 < len(payload) <= 200 else None


@socketio.on("join")
def on_join(payload=None):
    task_id = _task_id(payload)
    if not task_id:
        emit("error", {"error": "join needs a task_id"})
        return
    join_room(task_id)
    try:
        history = state.event_history(task_id)
    except Exception:  # noqa: BLE001 - Redis down: the room still works once it is back
        history = []
    for event in history:
        emit("progress", event, to=request.sid)


@socketio.on("leave")
def on_leave(payload=None):
    task_id = _task_id(payload)
    if task_id:
        leave_room(task_id)


def emit_progress(event: ProgressEvent) -> None:
    socketio.emit("progress", event.encode(), to=event.task_id, namespace="/")
