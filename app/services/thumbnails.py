"""/thumbnails and /thumbnails/scene: stored 1 fps thumbnails, base64 JPEG.

Analysed files are served from their frame pack; a file not analysed yet is decoded at the
asked time (slower, but a client gets its picture either way). Audio files have none (null).
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from app.errors import ApiError
from app.paths import check_cache_dir, check_media
from workers import store
from workers.media.frames import frame_at
from workers.media.probe import MediaError, probe
from workers.settings import load_settings
from workers.timecode import hhmmss, parse_hhmmss

SCENE_MAX_FRAMES = 100


def _b64(jpeg: bytes | None) -> str | None:
    return base64.b64encode(jpeg).decode("ascii") if jpeg else None


def _encode(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    settings = load_settings()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=settings.thumbnail_quality)
    return buffer.getvalue()


class _FileFrames:
    """Frames of one media file, from its analysis if there is one, else decoded on demand."""

    def __init__(self, cache_dir: str, media_path: str, hash_str: str | None = None):
        check_media(media_path)
        try:
            self.hash_str = hash_str or store.hash_file(media_path)
        except FileNotFoundError:
            raise ApiError(400, f"media_path: file not found: {media_path}") from None
        except OSError as exc:
            raise ApiError(400, f"media_path: cannot read {media_path}: {exc.strerror}") from None
        self.media_path = media_path
        self.folder = store.visual_dir(cache_dir, self.hash_str)
        self.manifest = store.read_visual_manifest(cache_dir, self.hash_str)
        self._info = None

    @property
    def info(self):
        if self._info is None:
            try:
                self._info = probe(self.media_path)
            except MediaError as exc:
                raise ApiError(400, f"{self.media_path}: {exc}") from None
        return self._info

    @property
    def is_audio(self) -> bool:
        if self.manifest:
            return False
        return self.info.kind == "audio"

    @property
    def duration(self) -> float:
        if self.manifest:
            return float(self.manifest.get("duration") or self.manifest.get("frame_count", 1) - 1)
        return self.info.duration

    def jpeg(self, seconds: float) -> bytes | None:
        if self.manifest and self.manifest.get("frames_complete"):
            return store.read_frame_jpeg(self.folder, int(seconds))
        if self.is_audio:
            return None
        rgb = frame_at(self.info, seconds, load_settings().thumbnail_max_side)
        return _encode(rgb) if rgb is not None else None


def thumbnails(cache_dir: str, requests: list[dict]) -> dict:
    cache_dir = check_cache_dir(cache_dir)
    files: dict[str, _FileFrames] = {}
    out = []
    for item in requests:
        path = item["media_path"]
        if path not in files:
            files[path] = _FileFrames(cache_dir, path)
        out.append({"thumbnail": _b64(files[path].jpeg(item["time_seconds"]))})
    return {"thumbnails": out}


def scene_strip(cache_dir: str, media_path: str, start_time, end_time, hash_str: str | None = None) -> dict:
    cache_dir = check_cache_dir(cache_dir)
    try:
        start, end = parse_hhmmss(start_time), parse_hhmmss(end_time)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, f"start_time/end_time: {exc}") from None
    if end < start:
        raise ApiError(400, "end_time must not be before start_time")
    frames = _FileFrames(cache_dir, media_path, hash_str)
    if frames.is_audio:
        return {"scene_thumbnails": []}
    last = max(0, int(frames.duration))
    first, final = min(int(start), last), min(int(end), last)
    seconds = list(range(first, final + 1))
    if len(seconds) > SCENE_MAX_FRAMES:
        seconds = sorted(set(int(round(v)) for v in np.linspace(first, final, SCENE_MAX_FRAMES)))
    return {"scene_thumbnails": [[_b64(frames.jpeg(t)), hhmmss(t, nearest=True)] for t in seconds]}
