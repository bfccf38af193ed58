"""Visual search (/search/text, /search/image, /search/frame) from the API side: validate
what is searched, then hand the query to a query worker, which owns the model and the
loaded embeddings, and wait for its answer (over Redis lists: tasks/search_rpc.py)."""

from __future__ import annotations

import os

from flask import Response

from app.api import json_parts_response
from app.errors import ApiError, unwrap
from app.paths import check_cache_dir, check_media, check_reference_image
from app.services.loaded import resolve_loaded
from tasks import search_rpc
from workers.active_models import active_model
from workers.messages import SearchQuery
from workers.settings import load_settings


def _people_mask(cache_dir: str, people_filter: list[dict], mode: str) -> dict[str, list[int]]:
    from workers.faces.service import people_frames
    from workers.faces.storage import CorruptJob

    try:
        frames = people_frames(cache_dir, people_filter, mode)
    except CorruptJob as exc:
        raise ApiError(500, f"people_filter: face clustering job cannot be read: {exc}") from None
    except LookupError as exc:
        raise ApiError(400, f"people_filter: {exc.args[0] if exc.args else exc}") from None
    except ValueError as exc:
        raise ApiError(400, f"people_filter: {exc}") from None
    return {hash_str: sorted(int(i) for i in indices) for hash_str, indices in frames.items()}


def visual_search(kind: str, data: dict) -> dict | Response:
    cache_dir = check_cache_dir(data["cache_dir"])
    from app.services.analysis import visual_model_missing_message, visual_model_ready

    if not visual_model_ready():
        raise ApiError(400, visual_model_missing_message())
    chosen = resolve_loaded("visual", cache_dir, data.get("media_paths") or [], data.get("search_all", False))
    frame_mask = None
    if data.get("people_filter"):
        mask = _people_mask(cache_dir, data["people_filter"], data.get("people_filter_mode", "and"))
        frame_mask = {h: frames for h, frames in mask.items() if h in chosen}
        if not frame_mask:
            return {"matches": []}
    image_path = media_path = None
    if kind == "image":
        image_path = check_reference_image(data["image_path"], "image_path")
        if not os.path.isfile(image_path):
            raise ApiError(400, f"image_path: file not found: {image_path}")
    if kind == "frame":
        media_path = check_media(data["media_path"], "media_path")
        if not os.path.isfile(media_path):
            raise ApiError(400, f"media_path: file not found: {media_path}")
    query = SearchQuery(kind=kind, cache_dir=cache_dir, model_key=active_model("visual"), hashes=chosen,
                        max_results=data["max_results"], query=data.get("query"),
                        exclude=tuple(data.get("exclude") or ()), text_weight=data.get("text_weight", 1.0),
                        frame_mask=frame_mask, image_path=image_path, media_path=media_path,
                        time_seconds=data.get("time_seconds") if kind == "frame" else None)
    outcome = search_rpc.call(query, load_settings().search_timeout_seconds)
    if outcome is None:
        raise ApiError(503, "No query worker answered in time; is a `sightline worker` running?")
    # The worker's JSON text of the matches, as VisualSearchResponse would dump them.
    return json_parts_response(b'{"matches":', unwrap(outcome), b"}")
