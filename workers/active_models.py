"""Which model is active for each kind (visual, speech). The choice made with /models/load
lives in ``$SIGHTLINE_HOME/state.json`` so it survives restarts and every process agrees;
without one, the ``SIGHTLINE_*_MODEL`` setting decides."""

from __future__ import annotations

from workers.settings import load_settings
from workers.store import atomic_write_json, read_json


def active_model(kind: str) -> str:
    settings = load_settings()
    chosen = (read_json(settings.state_file, {}) or {}).get("models", {}).get(kind)
    if chosen:
        return chosen
    return {"visual": settings.visual_model, "speech": settings.speech_model}.get(kind, "")


def set_active_model(kind: str, key: str) -> None:
    settings = load_settings()
    state = read_json(settings.state_file, {}) or {}
    state.setdefault("models", {})[kind] = key
    atomic_write_json(settings.state_file, state)
