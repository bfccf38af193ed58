"""Starting, cancelling and watching analysis tasks (the part of /analyze below the route).

Jumper runs one analysis task at a time: a new request first asks the running one to stop
and waits a moment for it to unwind; if it is still unwinding, the caller gets 409.
"""

from __future__ import annotations

import logging
import os
import time
import uuid

from app.errors import ApiError
from app.paths import check_cache_dir, check_media
from app.services.media import usable_visual_model
from app.services.watchdog import fail_if_stale
from tasks import state
from tasks.celery_app import celery_app
from workers.active_models import active_model
from workers.engines import catalogue
from workers.messages import FaceJob, FileJob, ModelChoice, SpeechJob
from workers.settings import load_settings

log = logging.getLogger(__name__)

UNWIND_WAIT_SECONDS = 3.0


def _file_problem(path: str) -> str | None:
    if not os.path.exists(path):
        return "file not found"
    if not os.path.isfile(path):
        return "not a regular file"
    if not os.access(path, os.R_OK):
        return "file is not readable"
    return None


def refuse_while_loading(kind: str) -> None:
    """503 while a model of ``kind`` is being loaded (switched) by the workers."""
    loading = state.model_loading(kind)
    if loading:
        raise ApiError(503, f"The {kind} model {loading} is still loading; retry shortly")


def require_model(kind: str, key: str | None = None) -> str:
    """The active (or given) model key for ``kind``; 503 while it loads, 400 when absent."""
    key = key or active_model(kind)
    refuse_while_loading(kind)
    spec = catalogue.get_spec(key)
    if spec is None:
        raise ApiError(400, f"Unknown {kind} model '{key}'")
    if not catalogue.is_downloaded(spec):
        raise ApiError(400, f"The {kind} model '{key}' is not on this machine. Fix: {catalogue.fix_command(key)}")
    return key


def visual_model_ready() -> bool:
    """True when the active visual model's files are here; 503 while it is being switched."""
    refuse_while_loading("visual")
    return usable_visual_model() is not None


def visual_model_missing_message() -> str:
    key = active_model("visual")
    return (f"The visual model '{key}' is not on this machine: files get thumbnails, scenes and faces, "
            f"but no embeddings for visual search. Fix: {catalogue.fix_command(key)}")


def build_jobs(data: dict) -> tuple[list[FileJob], dict[str, str], list[FaceJob]]:
    """Group the request's jobs by file: each file is analysed once for all that names it."""
    jobs: dict[str, dict] = {}
    invalid: dict[str, str] = {}

    def job_for(path: str, field: str) -> dict | None:
        check_media(path, field)
        problem = _file_problem(path)
        if problem:
            invalid[path] = problem
            return None
        return jobs.setdefault(path, {"path": path, "visual": False, "speech": None, "face_jobs": ()})

    for path in data["visual_media_paths"]:
        job = job_for(path, "visual_media_paths")
        if job:
            job["visual"] = True
    for item in data["transcription_jobs"]:
        job = job_for(item["path"], "transcription_jobs.path")
        if job:
            job["speech"] = SpeechJob(item.get("language"))
    face_jobs = []
    for item in data["face_clustering_jobs"]:
        face_job = FaceJob(item["cluster_job_name"], item["eps"], item["min_samples"])
        face_jobs.append(face_job)
        for path in item["face_media_paths"]:
            job = job_for(path, "face_clustering_jobs.face_media_paths")
            if job and face_job.cluster_job_name not in [f.cluster_job_name for f in job["face_jobs"]]:
                job["face_jobs"] += (face_job,)
    return [FileJob(index=i, **job) for i, job in enumerate(jobs.values())], invalid, face_jobs


def _check_languages(jobs: list[FileJob], speech_model: str) -> None:
    """An English-only model asked for German would quietly transcribe as English: refuse."""
    from workers.engines.speech import check_language

    for job in jobs:
        if job.speech:
            try:
                check_language(speech_model, job.speech.language)
            except ValueError as exc:
                raise ApiError(400, f"transcription_jobs: {job.path}: {exc}") from None


def start_analysis(data: dict, origin: str = "api") -> dict:
    cache_dir = check_cache_dir(data["cache_dir"])
    jobs, invalid, face_jobs = build_jobs(data)
    if not jobs:
        named = "; ".join(f"{path}: {why}" for path, why in invalid.items())
        raise ApiError(400, "No valid media files supplied" + (f" ({named})" if named else ""),
                       invalid_paths=invalid)
    warnings = []
    models = ModelChoice(
        visual=active_model("visual"),
        speech=require_model("speech") if any(j.speech for j in jobs) else active_model("speech"),
    )
    if any(j.visual for j in jobs) and not visual_model_ready():
        # Without the visual model the file still gets its thumbnails, scenes and faces; only
        # embeddings (and so visual search) wait until the model is there.
        warnings.append(visual_model_missing_message())
        models = ModelChoice(None, models.speech)
    if face_jobs:
        require_model("faces", load_settings().face_model)
    _check_languages(jobs, models.speech)
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError as exc:
        raise ApiError(400, f"cache_dir cannot be created: {exc.strerror}") from exc

    make_room_for_new_task()
    task_id = str(uuid.uuid4())
    extra = {"cache_dir": cache_dir, "face_jobs": [f.encode() for f in face_jobs], "origin": origin}
    if not state.create_task(task_id, "analyze", len(jobs), [j.path for j in jobs], extra):
        raise ApiError(409, "Another analysis task is already active; retry shortly",
                       task_id=state.current_task_id())
    for job in jobs:
        celery_app.send_task("sightline.analyze_file", args=[task_id, job.encode(), cache_dir, models.encode()])
    return {"message": "Analysis started", "task_id": task_id, "files": len(jobs), "invalid_paths": invalid,
            "warnings": warnings}


def make_room_for_new_task() -> None:
    """Ask the running task to stop; 409 if it has not unwound within a few seconds."""
    current = state.current_task_id()
    if not current:
        return
    if fail_if_stale(current):
        return
    state.request_cancel(current)
    deadline = time.monotonic() + UNWIND_WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if state.current_task_id() != current:
            return
    raise ApiError(409, "The previous analysis task is still stopping; retry shortly", task_id=current)


def cancel_current() -> str | None:
    current = state.current_task_id()
    if current:
        state.request_cancel(current)
    return current


def task_status(task_id: str) -> dict:
    record = state.get_task(task_id)
    if record is None:
        raise ApiError(404, f"Unknown task_id: {task_id}")
    record["last_event"] = state.last_event(task_id)
    return record
