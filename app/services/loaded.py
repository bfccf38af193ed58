"""Which analysis data is loaded, shared by every API process and query worker via Redis.

Loading marks files (hash → media path) per cache_dir; the query workers read the marks and
keep the embeddings in memory. Transcripts are read by the API itself (no model needed).
"""

from __future__ import annotations

import os
import re
import time

from app.errors import ApiError
from app.paths import check_cache_dir, check_media
from app.services.analysis import refuse_while_loading
from tasks import state
from tasks.celery_app import celery_app
from workers import store, transcripts
from workers.active_models import active_model

_HASH_DIR = re.compile(r"^[0-9a-f]{16}$")
WARM_WAIT_SECONDS = 120.0


def _require_dir(cache_dir: str) -> str:
    cache_dir = check_cache_dir(cache_dir)
    if not os.path.isdir(cache_dir):
        raise ApiError(400, f"cache_dir does not exist: {cache_dir}")
    return cache_dir


def _visual_entries(cache_dir: str, model_key: str) -> dict[str, str]:
    entries = {}
    for entry in os.scandir(cache_dir):
        if entry.is_dir() and _HASH_DIR.match(entry.name):
            manifest = store.embedded_manifest(cache_dir, entry.name, model_key)
            if manifest:
                entries[entry.name] = manifest.get("media_path") or entry.name
    return entries


def _speech_entries(cache_dir: str) -> dict[str, str]:
    return {h: t.get("media_path") or h for h, t in transcripts.list_transcripts(cache_dir)}


def _warm(cache_dir: str) -> None:
    """Have a query worker read the embeddings now, so the first search is fast."""
    result = celery_app.send_task("sightline.query.load", args=[cache_dir, active_model("visual")])
    deadline = time.monotonic() + WARM_WAIT_SECONDS
    while not result.ready() and time.monotonic() < deadline:
        time.sleep(0.05)


def _check_model_ready() -> str:
    refuse_while_loading("visual")
    return active_model("visual")


def load_all(cache_dir: str) -> dict:
    started = time.monotonic()
    cache_dir = _require_dir(cache_dir)
    model_key = _check_model_ready()
    visual = _visual_entries(cache_dir, model_key)
    state.mark_loaded("visual", cache_dir, visual)
    speech = _speech_entries(cache_dir)
    state.mark_loaded("speech", cache_dir, speech)
    if visual:
        _warm(cache_dir)
    seconds = time.monotonic() - started
    return {"message": f"Analysis data loaded in {seconds:.2f}s", "files": len(visual) + len(speech)}


def load_transcriptions(cache_dir: str) -> dict:
    started = time.monotonic()
    cache_dir = _require_dir(cache_dir)
    speech = _speech_entries(cache_dir)
    state.mark_loaded("speech", cache_dir, speech)
    return {"message": f"Loaded {len(speech)} transcriptions in {time.monotonic() - started:.2f}s",
            "files": len(speech)}


def _hash_of(path: str, known_paths: dict[str, str]) -> str | None:
    """The file's hash: from the loaded data when that path is known (no disk read), else by
    reading it; None when it cannot be read."""
    check_media(path, "media_paths")
    if path in known_paths:
        return known_paths[path]
    try:
        return store.hash_file(path)
    except OSError:
        return None


def load_for_media(cache_dir: str, media_paths: list[str]) -> dict:
    started = time.monotonic()
    cache_dir = _require_dir(cache_dir)
    model_key = _check_model_ready()
    already = state.loaded("visual", cache_dir)
    known_paths = {path: hash_str for hash_str, path in already.items()}
    new, missing, skipped = {}, {}, 0
    for path in media_paths:
        hash_str = _hash_of(path, known_paths)
        if hash_str is None:
            missing[path] = "file not found"
        elif hash_str in already:
            skipped += 1
        elif store.has_embeddings(cache_dir, hash_str, model_key):
            new[hash_str] = path
        else:
            missing[path] = f"not analysed with the visual model {model_key}"
    if missing and not new and not skipped:
        named = "; ".join(f"{p}: {why}" for p, why in missing.items())
        raise ApiError(400, f"No analysis data to load ({named})", missing=missing)
    state.mark_loaded("visual", cache_dir, new)
    if new:
        _warm(cache_dir)
    seconds = time.monotonic() - started
    return {"message": f"Loaded analysis data for {len(new)} files in {seconds:.2f}s", "files": len(new),
            "skipped": skipped, "missing": missing}


def resolve_loaded(kind: str, cache_dir: str, media_paths: list[str], search_all: bool) -> dict[str, str]:
    """hash → media path of the loaded files a search covers; 400 naming what is not loaded."""
    cache_dir = check_cache_dir(cache_dir)
    loaded = state.loaded(kind, cache_dir)
    what = "visual analysis data" if kind == "visual" else "transcriptions"
    hint = "/analysis-data/load" if kind == "visual" else "/analysis-data/load-transcriptions"
    if not loaded:
        raise ApiError(400, f"No {what} loaded for {cache_dir}; call {hint} first")
    if search_all or not media_paths:
        return loaded
    by_path = {path: hash_str for hash_str, path in loaded.items()}
    chosen, problems = {}, {}
    for path in media_paths:
        hash_str = _hash_of(path, by_path)
        if hash_str is None:
            problems[path] = "file not found"
        elif hash_str in loaded:
            chosen[hash_str] = path
        else:
            problems[path] = "not analysed or not loaded"
    if problems:
        named = "; ".join(f"{p}: {why}" for p, why in problems.items())
        raise ApiError(400, f"Cannot search these media ({named}); analyse them and call {hint}",
                       media=problems)
    return chosen
