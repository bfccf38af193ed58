"""Which paths a request may touch. With ``SIGHTLINE_MEDIA_ROOTS`` / ``SIGHTLINE_EXPORT_ROOTS``
set, anything outside them (after resolving ``..`` and symlinks) is refused with 403."""

from __future__ import annotations

import os
from pathlib import Path

from app.errors import ApiError
from workers.settings import load_settings


def _resolve(path: str, field: str) -> Path:
    if not isinstance(path, str) or not path:
        raise ApiError(400, f"{field}: a path is required")
    if "\x00" in path:
        raise ApiError(400, f"{field}: path contains a NUL byte")
    if not os.path.isabs(os.path.expanduser(path)):
        raise ApiError(400, f"{field}: path must be absolute: {path}")
    return Path(os.path.realpath(os.path.expanduser(path)))


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def check_media(path: str, field: str = "media_path") -> str:
    """A file the request reads. Returns the path as given (it stays the file's identity)."""
    resolved = _resolve(path, field)
    roots = load_settings().media_roots
    if roots and not _inside(resolved, roots):
        raise ApiError(403, f"{field}: {path} is outside the allowed media roots (SIGHTLINE_MEDIA_ROOTS)")
    return path


def check_export(path: str, field: str = "output_path") -> str:
    """A file or folder the request writes."""
    resolved = _resolve(path, field)
    roots = load_settings().export_roots
    if roots and not _inside(resolved, roots):
        raise ApiError(403, f"{field}: {path} is outside the allowed export roots (SIGHTLINE_EXPORT_ROOTS)")
    return path


def check_cache_dir(path: str, field: str = "cache_dir") -> str:
    resolved = _resolve(path, field)
    settings = load_settings()
    roots = settings.media_roots + settings.export_roots
    if roots and not _inside(resolved, roots):
        raise ApiError(403, f"{field}: {path} is outside the allowed media/export roots")
    return os.path.abspath(os.path.expanduser(path))
