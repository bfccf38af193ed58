"""What the web page needs beyond Jumper's API: list the folders and media files a key may
analyse, find a file to stream to a ``<video>`` element, and keep an uploaded reference image
where ``/search/image`` can read it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
from pathlib import Path

from app.errors import ApiError
from app.paths import check_media, uploads_dir
from workers.media.probe import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from workers.settings import load_settings
from workers.store import atomic_write_bytes

MAX_ENTRIES = 5000


def _kind(name: str) -> str | None:
    ext = os.path.splitext(name)[1].lower()
    if ext in VIDEO_EXTENSIONS:
        return "video"
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    if ext in IMAGE_EXTENSIONS:
        return "image"
    return None


def browse(path: str | None) -> dict:
    roots = [str(root) for root in load_settings().media_roots]
    if path is None:
        entries = [{"name": root, "path": root, "kind": "folder", "size": None} for root in roots]
        return {"path": None, "parent": None, "roots": roots, "entries": entries}
    check_media(path, "path")
    folder = Path(os.path.realpath(os.path.expanduser(path)))
    if not folder.is_dir():
        raise ApiError(404, f"path: not a folder: {path}")
    entries = []
    try:
        with os.scandir(folder) as scan:
            items = sorted(scan, key=lambda e: e.name.lower())
    except PermissionError:
        raise ApiError(403, f"path: this server may not read {path}") from None
    for item in items:
        if item.name.startswith("."):
            continue
        try:
            if item.is_dir():
                entries.append({"name": item.name, "path": os.path.join(folder, item.name), "kind": "folder",
                                "size": None})
            elif item.is_file() and (kind := _kind(item.name)):
                entries.append({"name": item.name, "path": os.path.join(folder, item.name), "kind": kind,
                                "size": item.stat().st_size})
        except OSError:  # a broken link or a file removed while listing: leave it out
            continue
        if len(entries) >= MAX_ENTRIES:
            break
    at_root = str(folder) in roots or folder.parent == folder
    return {"path": str(folder), "parent": None if at_root else str(folder.parent), "roots": roots,
            "entries": entries}


def streamable(path: str | None) -> str:
    """The file a ``/media/stream`` request names, checked against the media roots."""
    if not path:
        raise ApiError(400, "path: a path is required")
    check_media(path, "path")
    resolved = os.path.realpath(os.path.expanduser(path))
    if not os.path.isfile(resolved):
        raise ApiError(404, f"path: file not found: {path}")
    if _kind(resolved) is None:
        raise ApiError(400, f"path: not a media file: {path}")
    return resolved


def save_image(image_base64: str) -> str:
    from PIL import Image, UnidentifiedImageError

    text = image_base64.split(",", 1)[1] if image_base64.startswith("data:") else image_base64
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "image_base64: not base64") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            fmt = (image.format or "").lower()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ApiError(400, "image_base64: not an image this server can read") from None
    ext = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "gif": ".gif", "bmp": ".bmp", "tiff": ".tif"}.get(fmt)
    if ext is None:
        raise ApiError(400, f"image_base64: unsupported image format {fmt or 'unknown'}")
    # Content-addressed: the same picture uploaded twice is one file.
    target = uploads_dir() / (hashlib.sha256(data).hexdigest()[:32] + ext)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)
    return str(target)
