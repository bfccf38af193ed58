"""/models/*: which models exist, which are on disk, which is active, and switching."""

from __future__ import annotations

import time

from app.errors import ApiError
from tasks import state
from tasks.celery_app import celery_app
from workers.active_models import active_model, set_active_model
from workers.engines import catalogue

LOAD_WAIT_SECONDS = 120.0


def loaded_models() -> dict:
    return {
        kind: {"model_key": active_model(kind), "is_loading": bool(state.model_loading(kind))}
        for kind in ("visual", "speech")
    }


def available_models() -> dict:
    specs = catalogue.all_specs()
    visual = [s for s in specs.values() if s.kind == catalogue.VISUAL]
    speech = [s for s in specs.values() if s.kind == catalogue.SPEECH]
    return {
        "supported_models": [s.key for s in visual],
        "downloaded_models": [s.key for s in visual if catalogue.is_downloaded(s)],
        "loaded_model": active_model("visual"),
        "model_info": [{s.key: s.info()} for s in visual],
        "current_system": catalogue.current_system(),
        "speech_models": [
            {"model_key": s.key, "downloaded": catalogue.is_downloaded(s), "engine": s.family,
             "is_multilingual": s.multilingual, "active": s.key == active_model("speech")}
            for s in speech
        ],
    }


def load_model(key: str) -> dict:
    spec = catalogue.get_spec(key)
    if spec is None or spec.kind not in (catalogue.VISUAL, catalogue.SPEECH):
        raise ApiError(400, f"Unknown model key '{key}'. See GET /models/available")
    try:
        catalogue.family_of(spec)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    if not catalogue.is_downloaded(spec):
        raise ApiError(400, f"Model '{key}' is not downloaded. Fix: {catalogue.fix_command(key)}")
    kind = spec.kind
    previous = active_model(kind)
    loading = state.model_loading(kind)
    if loading:
        return {"message": f"Model {loading} is still loading from a previous switch", "loaded_model": loading}
    if previous == key:
        return {"message": f"Model {spec.display_name or key} is already active", "loaded_model": key}
    started = time.monotonic()
    set_active_model(kind, key)
    if kind != catalogue.VISUAL:
        return {"message": f"Speech model changed from {previous} to {key}", "loaded_model": key}
    # Analysis data embedded by another model cannot be searched with this one.
    state.clear_loaded("visual")
    state.set_model_loading(kind, key)
    state.clear_model_error(kind)
    celery_app.send_task("sightline.query.warm_visual", args=[key])
    deadline = time.monotonic() + LOAD_WAIT_SECONDS
    while state.model_loading(kind) and time.monotonic() < deadline:
        time.sleep(0.2)
    error = state.model_error(kind)
    if error:
        set_active_model(kind, previous)
        raise ApiError(500, f"Loading {key} failed: {error}")
    old = catalogue.get_spec(previous)
    old_name = (old.display_name if old else None) or previous
    if state.model_loading(kind):
        return {"message": f"Switching from {old_name} to {spec.display_name or key}; still loading",
                "loaded_model": key}
    seconds = time.monotonic() - started
    return {"message": f"Model changed from {old_name} to {spec.display_name or key} in {seconds:.2f}s",
            "loaded_model": key}
