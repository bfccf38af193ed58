"""Which paths a request may touch. With ``SIGHTLINE_MEDIA_ROOTS`` / ``SIGHTLINE_EXPORT_ROOTS``
set, anything outside them (after resolving ``..`` and symlinks) is refused with 403."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from marshmallow import Schema, fields

from app.errors import ApiError
from schemas.common import Path as PathField
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


def _check(path: str, field: str, roots: tuple[Path, ...], which: str) -> None:
    """400 for a path that is not absolute, 403 for one outside ``roots`` (when any are set)."""
    resolved = _resolve(path, field)
    if roots and not _inside(resolved, roots):
        raise ApiError(403, f"{field}: {path} is outside the allowed {which}")


def check_media(path: str, field: str = "media_path") -> str:
    """A file the request reads. Returns the path as given (it stays the file's identity)."""
    _check(path, field, load_settings().media_roots, "media roots (SIGHTLINE_MEDIA_ROOTS)")
    return path


def check_export(path: str, field: str = "output_path") -> str:
    """A file or folder the request writes."""
    _check(path, field, load_settings().export_roots, "export roots (SIGHTLINE_EXPORT_ROOTS)")
    return path


def check_cache_dir(path: str, field: str = "cache_dir") -> str:
    settings = load_settings()
    _check(path, field, settings.media_roots + settings.export_roots, "media/export roots")
    return os.path.abspath(os.path.expanduser(path))


def uploads_dir() -> Path:
    """Where reference images uploaded through ``/media/reference-image`` are kept."""
    return load_settings().data_dir / "uploads"


def is_upload(path: str) -> bool:
    return Path(os.path.realpath(path)).parent == Path(os.path.realpath(uploads_dir()))


def check_reference_image(path: str, field: str = "image_path") -> str:
    """An image a search compares with: a media file, or one this server stored on upload
    (it lives in the data folder, outside the media roots, and holds only what a key sent)."""
    _resolve(path, field)
    return path if is_upload(path) else check_media(path, field)


_CHECKS = {"media": check_media, "export": check_export, "cache": check_cache_dir,
           "reference": check_reference_image}


def check_request_paths(schema: Schema, data: object) -> None:
    """403 for the first path in a raw request body (or query) outside the allowed roots.

    Runs before the request schema and before any route looks at the server's state, so a
    request that may not touch a path learns nothing else (not whether a model is loaded, a
    file exists or another field is wrong). Every :class:`schemas.common.Path` field is
    checked, inside lists and nested objects too. Values that are not absolute path strings
    are left to the schema, which answers 400 for them.
    """
    settings = load_settings()
    if not (settings.media_roots or settings.export_roots) or not isinstance(data, Mapping):
        return
    _check_object(schema, data, "")


def _check_object(schema: Schema, data: Mapping, prefix: str) -> None:
    for name, field in schema.load_fields.items():
        key = field.data_key or name
        if key in data:
            _check_value(field, data[key], f"{prefix}{key}")


def _check_value(field: fields.Field, value: object, where: str) -> None:
    if isinstance(field, PathField):
        if (isinstance(value, str) and value and "\x00" not in value
                and os.path.isabs(os.path.expanduser(value))):
            _CHECKS[field.roots](value, where)
    elif isinstance(field, fields.List) and isinstance(value, list):
        for item in value:
            _check_value(field.inner, item, where)
    elif isinstance(field, fields.Nested):
        items = value if field.many and isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, Mapping) and isinstance(field.schema, Schema):
                _check_object(field.schema, item, f"{where}.")
