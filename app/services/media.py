"""/media/metadata and /cache-paths: probe files and look up their analysis on disk."""

from __future__ import annotations

import os

from app.paths import check_cache_dir, check_media
from workers import store, transcripts
from workers.active_models import active_model
from workers.engines import catalogue
from workers.media.probe import MediaError, probe
from workers.timecode import hhmmss


def _number(value: float) -> float | int:
    value = round(float(value), 3)
    return int(value) if value.is_integer() else value


def usable_visual_model() -> str | None:
    """The active visual model's key when its files are on this machine, else None."""
    key = active_model("visual")
    spec = catalogue.get_spec(key)
    return key if spec is not None and catalogue.is_downloaded(spec) else None


def visual_cached(cache_dir: str, hash_str: str, model_key: str | None) -> bool:
    """Visual analysis is as complete as this machine can make it: embeddings of
    ``model_key`` (from :func:`usable_visual_model`), or without one the thumbnails and scenes."""
    if model_key:
        return store.has_embeddings(cache_dir, hash_str, model_key)
    return store.has_frames(cache_dir, hash_str)


def audio_cached(cache_dir: str, hash_str: str) -> bool:
    return transcripts.transcript_path(cache_dir, hash_str).exists()


def media_properties(cache_dir: str | None, media_paths: list[str]) -> dict:
    cache_dir = check_cache_dir(cache_dir) if cache_dir else None

    model_key = usable_visual_model()
    out = {}
    for path in media_paths:
        check_media(path, "media_paths")
        try:
            info = probe(path)
            hash_str = store.hash_file(path)
        except (MediaError, OSError) as exc:
            out[path] = {"media_path": path, "error": str(exc) if isinstance(exc, MediaError) else exc.strerror,
                         "video_cached": False, "audio_cached": False, "hash_str": None}
            continue
        runtime = hhmmss(info.duration, nearest=True) if info.kind != "image" else "00:00:01"
        out[path] = {
            "video_cached": bool(cache_dir) and info.kind in ("video", "image") and visual_cached(cache_dir, hash_str, model_key),
            "audio_cached": bool(cache_dir) and info.has_audio and audio_cached(cache_dir, hash_str),
            "runtime": runtime,
            "fps": _number(info.fps) if info.kind == "video" else 0,
            "media_path": path,
            "timecode": info.timecode,
            "hash_str": hash_str,
        }
    return {"media_properties": out}


def cache_paths(cache_dir: str, media_path: str) -> dict:
    cache_dir = check_cache_dir(cache_dir)
    check_media(media_path)
    if not os.path.isfile(media_path):
        from app.errors import ApiError

        raise ApiError(400, f"media_path: file not found: {media_path}")
    hash_str = store.hash_file(media_path)
    visual = store.visual_dir(cache_dir, hash_str)
    audio = store.audio_dir(cache_dir, hash_str)
    return {
        "video_cache_path": str(visual) if (visual / store.MANIFEST).exists() else None,
        "audio_cache_path": str(audio) if transcripts.transcript_path(cache_dir, hash_str).exists() else None,
        "hash_str": hash_str,
    }
