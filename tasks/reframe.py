"""Reframe pipeline tasks (API v2) on the analysis queue: ``ingest`` fetches a video,
``step`` runs one analysis or transform — and first whatever it needs that is not stored yet
(active_speaker before face tracking runs face tracking, as part of itself).

Each step's state lives in the database (``reframe_steps``), its result in a JSON file under
``data_dir``; progress goes to the Socket.IO room named by the video id, through Redis like v1.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from tasks.celery_app import celery_app
from tasks.heartbeat import Heartbeat
from tasks.progress import ProgressReporter
from workers import store
from workers.db import migrate
from workers.engines.base import ModelUnavailable
from workers.media.probe import MediaError
from workers.messages import ProgressEvent
from workers.reframe import records
from workers.reframe.ingest import IngestError, ingest
from workers.reframe.steps import OUTPUTS, USES, Media, StepFailed, needs, run
from workers.settings import load_settings

log = logging.getLogger(__name__)

INGEST_WAIT_SECONDS = 6 * 3600
DB_PROGRESS_INTERVAL = 1.0
HEARTBEAT_SECONDS = 5.0
CLEAR_ERRORS = (StepFailed, IngestError, MediaError, ModelUnavailable, FileNotFoundError, ValueError)


def _describe(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return text if isinstance(exc, CLEAR_ERRORS) else f"{exc.__class__.__name__}: {text}"


class _Progress:
    """One step's progress: to the room (throttled by the reporter) and to its row (≤ 1/s)."""

    def __init__(self, video_id: str, step_id: int, step: str):
        self.video_id, self.step_id, self.step = video_id, step_id, step
        self.reporter = ProgressReporter(video_id, min_interval=0.5)
        self._written = 0.0
        self.percent = 0.0

    def event(self, status: str, percent: float, error: str | None = None, force: bool = False,
              **extra) -> None:
        self.percent = round(max(0.0, min(100.0, percent)), 1)
        self.reporter.emit(ProgressEvent.reframe_step(self.video_id, self.step, status, self.percent, error,
                                                      **extra), force=force)

    def fraction(self, fraction: float, running: str | None = None) -> None:
        self.event("running", 100.0 * fraction, running=running or self.step)
        now = time.monotonic()
        if now - self._written >= DB_PROGRESS_INTERVAL:
            self._written = now
            records.update_step(self.step_id, progress=self.percent)


def _heartbeat(step_id: int) -> Heartbeat:
    """Keeps the step's row fresh while it runs (a long model load reports no progress), so
    ``/status`` can tell a step in progress from one whose worker was killed."""
    return Heartbeat(lambda: records.touch_step(step_id), HEARTBEAT_SECONDS, f"reframe step {step_id}",
                     immediately=False)


@celery_app.task(name="sightline.reframe.ingest", ignore_result=True)
def ingest_video(step_id: int) -> dict:
    migrate()
    step = records.get_step(step_id)
    video = records.get_video(step.video_id)
    progress = _Progress(video.id, step_id, "ingest")
    records.update_step(step_id, status="running", progress=0.0)
    progress.event("running", 0.0, force=True)
    settings = load_settings()
    try:
        with _heartbeat(step_id):
            stored = ingest(video.source_url, settings.data_dir, max_bytes=settings.ingest_max_bytes,
                            timeout=settings.ingest_timeout_seconds, progress=progress.fraction)
    except Exception as exc:  # noqa: BLE001 - any failure fails this ingest, with its reason
        if not isinstance(exc, CLEAR_ERRORS):
            log.exception("ingest of video %s failed", video.id)
        error = _describe(exc)
        records.update_step(step_id, status="failed", error=error)
        progress.event("failed", progress.percent, error, force=True)
        return {"status": "failed"}
    info = stored.info
    total_frames = max(1, int(round(info.duration * info.fps)))
    records.update_video(video.id, media_path=str(stored.path), content_hash=stored.content_hash,
                         size_bytes=stored.size, duration=info.duration, fps=info.fps, width=info.width,
                         height=info.height, total_frames=total_frames, has_audio=info.has_audio)
    result = {"video_id": video.id, "source": video.source_url, "size_bytes": stored.size,
              "duration": round(info.duration, 3), "video_fps": info.fps, "width": info.width,
              "height": info.height, "total_frames": total_frames, "has_audio": info.has_audio,
              "reused_stored_file": stored.reused}
    folder = records.step_folder(video.id, "ingest", "{}")
    store.atomic_write_json(folder / "result.json", result)
    records.update_step(step_id, status="completed", progress=100.0, result_path=str(folder / "result.json"))
    progress.event("completed", 100.0, force=True)
    return {"status": "completed"}


def _wait_for_media(video_id: str) -> Media:
    """The stored video, waiting while its ingest is still queued or running (another worker)."""
    deadline = time.monotonic() + INGEST_WAIT_SECONDS
    while True:
        video = records.get_video(video_id)
        if video.media_path:
            return Media(video.media_path, float(video.fps), int(video.total_frames), int(video.width),
                         int(video.height), float(video.duration), bool(video.has_audio))
        ingest_row = records.ingest_step(video_id)
        if ingest_row is None or ingest_row.status == "failed":
            raise StepFailed(f"the video was not ingested: {ingest_row.error if ingest_row else 'no ingest'}")
        if time.monotonic() > deadline:
            raise StepFailed("the video's ingest did not finish in time")
        time.sleep(1.0)


def _load(row) -> dict:
    return json.loads(Path(row.result_path).read_text())


def _plan(video_id: str, name: str, has_audio: bool) -> tuple[list[str], dict[str, dict]]:
    """(steps to run first, in order; stored inputs already there) for running ``name``."""
    have: dict[str, dict] = {}
    order: list[str] = []

    def need(step: str) -> None:
        for required in needs(step, has_audio):
            if required in have or required in order:
                continue
            stored = records.completed(video_id, required)
            if stored is not None:
                have[required] = _load(stored)
                if stored.video_id != video_id:
                    _reuse(video_id, records.new_step(video_id, required, json.loads(stored.params_key),
                                                      requested=False, status="running"), required, stored)
            else:
                need(required)
                order.append(required)

    need(name)
    for step in [*order, name]:
        for optional in USES.get(step, ()):
            if optional not in have and optional not in order:
                stored = records.completed(video_id, optional)
                if stored is not None:
                    have[optional] = _load(stored)
    return order, have


def _store_result(video_id: str, step_id: int, name: str, key: str, output) -> str:
    folder = records.step_folder(video_id, name, key)
    path = folder / "result.json"
    store.atomic_write_json(path, output.result)
    if output.file is not None:
        records.set_output(video_id, "_reframe", str(output.file), step_id, {"transform": name})
    if f"_{name}" in OUTPUTS and OUTPUTS[f"_{name}"][1] == "application/json":
        records.set_output(video_id, f"_{name}", str(path), step_id)
    return str(path)


@celery_app.task(name="sightline.reframe.step", ignore_result=True)
def run_step(step_id: int) -> dict:
    migrate()
    with _heartbeat(step_id):
        return _run_step(step_id)


def _run_step(step_id: int) -> dict:
    step = records.get_step(step_id)
    name, video_id, key = step.step, step.video_id, step.params_key
    params = json.loads(key)
    progress = _Progress(video_id, step_id, name)
    records.update_step(step_id, status="running", progress=0.0)
    progress.event("running", 0.0, force=True)
    current = name
    try:
        media = _wait_for_media(video_id)
        same = records.completed(video_id, name, key)
        if same is not None:
            # The same step with the same parameters already ran: its stored result is the answer.
            _reuse(video_id, step_id, name, same)
            progress.event("completed", 100.0, force=True, reused=True)
            return {"status": "completed"}
        order, inputs = _plan(video_id, name, media.has_audio)
        units = len(order) + 1
        for index, required in enumerate([*order, name]):
            current = required
            is_main = required == name

            def report(fraction: float, index=index, required=required) -> None:
                progress.fraction((index + max(0.0, min(1.0, fraction))) / units, running=required)

            sub_params = params if is_main else {}
            sub_id = step_id if is_main else records.new_step(video_id, required, {}, requested=False,
                                                              status="running")
            sub_key = records.params_key(sub_params)
            folder = records.step_folder(video_id, required, sub_key)
            try:
                output = run(required, media, sub_params, inputs, folder, progress=report)
            except Exception as exc:
                if not is_main:
                    records.update_step(sub_id, status="failed", error=_describe(exc))
                raise
            path = _store_result(video_id, sub_id, required, sub_key, output)
            inputs[required] = output.result
            if not is_main:
                records.update_step(sub_id, status="completed", progress=100.0, result_path=path)
        records.update_step(step_id, status="completed", progress=100.0, result_path=path)
        progress.event("completed", 100.0, force=True)
        return {"status": "completed"}
    except Exception as exc:  # noqa: BLE001 - a failed step is reported, never a crashed worker
        if not isinstance(exc, CLEAR_ERRORS):
            log.exception("reframe step %s (%s) of video %s failed", name, current, video_id)
        error = _describe(exc)
        if current != name:
            error = f"{current} (needed first) failed: {error}"
        records.update_step(step_id, status="failed", error=error)
        progress.event("failed", progress.percent, error, force=True)
        return {"status": "failed"}


def _reuse(video_id: str, step_id: int, name: str, same) -> None:
    """This step's answer is a stored run (this video's, or another ingest of the same file)."""
    records.update_step(step_id, status="completed", progress=100.0, result_path=same.result_path)
    if name in ("reframe", "reframe_llm"):
        video_file = Path(same.result_path).parent / f"{name}.mp4"
        records.set_output(video_id, "_reframe", str(video_file), step_id, {"transform": name})
    elif f"_{name}" in OUTPUTS:
        records.set_output(video_id, f"_{name}", same.result_path, step_id)
