"""The reframe pipeline below the routes (API v2): ingest, analyses and transforms queued as
Celery tasks, step status, downloads and their once-per-video credit charge.

Every lookup is scoped to the asking key: another key's video answers exactly like an
unknown one (404), so ids leak nothing.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from marshmallow import ValidationError

from app.errors import ApiError
from app.paths import check_media
from schemas.reframe import PARAMETERS
from tasks.celery_app import celery_app
from workers.reframe import records
from workers.reframe.ingest import IngestError, is_remote, local_path_of
from workers.reframe.steps import OUTPUTS
from workers.settings import load_settings


def _video(key_id: str, video_id: str):
    video = records.video_of(key_id, video_id)
    if video is None:
        raise ApiError(404, f"Unknown video_id: {video_id}")
    return video


def start_ingest(key_id: str, url: str) -> dict:
    url = url.strip()
    try:
        local = local_path_of(url)
    except IngestError as exc:
        raise ApiError(400, f"url: {exc}") from None
    if local is not None:
        check_media(local, "url")  # 403 outside SIGHTLINE_MEDIA_ROOTS, before anything is stored
    elif not is_remote(url):
        raise ApiError(400, "url: give an http(s):// URL, a file:// URL or an absolute path")
    video_id, step_id = records.new_video(key_id, url)
    _send("sightline.reframe.ingest", step_id)
    return {"video_id": video_id}


def _send(task: str, step_id: int) -> None:
    """Queue the step's task; if the queue is down the step is failed (not left 'queued'
    forever) and the error handler answers 503."""
    try:
        celery_app.send_task(task, args=[step_id])
    except Exception:
        records.update_step(step_id, status="failed", error="the task queue (Redis) was unavailable; retry")
        raise


def _parameters(step: str, parameters: dict) -> dict:
    try:
        return PARAMETERS[step]().load(parameters or {})
    except ValidationError as exc:
        raise ValidationError({"parameters": exc.messages}) from None


def start_step(key_id: str, video_id: str, step: str, parameters: dict) -> dict:
    # What the request asks is checked before whose video it names (a bad request is a 400
    # whatever the id).
    params = _parameters(step, parameters)
    if step == "reframe_llm" and not load_settings().llm_url:
        raise ApiError(400, "reframe_llm needs an OpenAI-compatible LLM endpoint: set SIGHTLINE_LLM_URL "
                            "(and SIGHTLINE_LLM_MODEL, SIGHTLINE_LLM_KEY if it needs them)")
    video = _video(key_id, video_id)
    ingest = records.ingest_step(video.id)
    if ingest is not None and ingest.status == "failed":
        raise ApiError(409, f"Video {video_id} was not ingested ({ingest.error}); ingest it again")
    step_id = records.new_step(video.id, step, params)
    _send("sightline.reframe.step", step_id)
    return {"video_id": video.id, "status": "queued"}


def status(key_id: str, video_id: str) -> dict:
    video = _video(key_id, video_id)
    # A worker beats every few seconds while it runs a step; silence this long means it died.
    step = records.fail_if_stale(records.latest_step(video.id), max(60.0, 4 * load_settings().task_stale_seconds))
    result = None
    if step.status == "completed" and step.result_path:
        try:
            result = json.loads(Path(step.result_path).read_text())
        except (OSError, ValueError):
            result = None
    return {"video_id": video.id, "step": step.step, "status": step.status,
            "progress": round(float(step.progress or 0.0), 1), "error": step.error, "result": result}


def download(key_id: str, video_id: str, suffix: str) -> tuple[str, str, str]:
    """(path, media type, download name) of an output; 404 until it exists, 402 when the key
    cannot pay for its first reframed download."""
    video = _video(key_id, video_id)
    if not suffix:
        if not video.media_path or not os.path.isfile(video.media_path):
            raise ApiError(404, f"Video {video_id} has no stored source yet (see /status/{video_id})")
        ext = Path(video.media_path).suffix or ".mp4"
        return video.media_path, "application/octet-stream", f"{video.id}{ext}"
    output = records.output_of(video.id, suffix)
    if output is None or not os.path.isfile(output.path):
        raise ApiError(404, f"No {suffix} output for video {video_id} yet")
    media_type = OUTPUTS[suffix][1]
    if suffix == "_reframe":
        seconds = float(video.duration or 0.0)
        needed = int(math.floor(seconds))
        outcome = records.charge_once(key_id, video.id, needed, seconds)
        if not outcome.allowed:
            raise ApiError(402, f"Not enough credits: downloading this video costs {needed} credits "
                                f"(1 per second of source), the key has {outcome.credits_left}",
                           credits_needed=needed, credits_left=outcome.credits_left)
    name = f"{video.id}{suffix}" + (".mp4" if media_type == "video/mp4" else ".json")
    return output.path, media_type, name
