"""Shared schema pieces. Unknown JSON fields are ignored (EXCLUDE); wrong types are 400s."""

from __future__ import annotations

import math
import re
import types
import typing

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from workers.timecode import parse_hhmmss

MAX_SECONDS = 10 ** 7  # a time in a media file: ~115 days, far beyond any real file


class Base(Schema):
    class Meta:
        unknown = EXCLUDE
        ordered = True


_PLAIN: dict[type, type[fields.Field]] = {
    str: fields.String, int: fields.Integer, float: fields.Float, bool: fields.Boolean, dict: fields.Dict,
}


def field_for(shape: typing.Any, **kwargs) -> fields.Field:
    """The field of a reply value written as a type: ``str``, ``int``, ``float``, ``bool``,
    ``dict``, a schema (nested), ``[item]`` (a list of item), ``X | None`` (may be null), or a
    field itself (kept as it is, for one with a description)."""
    if isinstance(shape, fields.Field):
        return shape
    if isinstance(shape, types.UnionType):
        (inner,) = (arg for arg in typing.get_args(shape) if arg is not type(None))
        return field_for(inner, allow_none=True, **kwargs)
    if isinstance(shape, list):
        (item,) = shape
        return fields.List(field_for(item), **kwargs)
    if isinstance(shape, type) and issubclass(shape, Schema):
        return fields.Nested(shape, **kwargs)
    return _PLAIN[shape](**kwargs)


def schema(name: str, /, **shape: typing.Any) -> type[Base]:
    """A schema class from its fields, in order. A reply's fields are written as types
    (``schema("Frame", frame_url=str, timestamp=float)``: optional, only shaping what a route
    returns); a request's as fields (``ts=fields.Float(required=True)``). A schema with
    validators of its own stays a class."""
    return Base.from_dict({key: field_for(value) for key, value in shape.items()}, name=name)


class Path(fields.String):
    """An absolute filesystem path. Before anything else looks at the request, ``app/api.py``
    checks every Path in it against the allowed roots (``app/paths.py``), by ``roots``:

    - ``"media"``: a file or folder the request reads (SIGHTLINE_MEDIA_ROOTS);
    - ``"export"``: where the request writes (SIGHTLINE_EXPORT_ROOTS);
    - ``"cache"``: an analysis cache folder (either set of roots);
    - ``"reference"``: an image to compare with: media, or an upload the server stored itself.

    Left out, it follows the field's name: ``cache_dir`` is a cache, ``output*``/``export*`` an
    export, anything else media.
    """

    ROOTS = ("media", "export", "cache", "reference")

    def __init__(self, *, roots: str | None = None, **kwargs):
        if roots is not None and roots not in self.ROOTS:
            raise ValueError(f"roots must be one of {self.ROOTS}, got {roots!r}")
        self.roots = roots
        kwargs.setdefault("validate", validate.Length(min=1, max=4096))
        # "path" tells clients (and the fuzzer, bench/fuzz_api.py) which strings name files.
        kwargs["metadata"] = {"format": "path", **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _bind_to_schema(self, field_name, parent):
        super()._bind_to_schema(field_name, parent)
        if self.roots is None:
            name = field_name.lower()
            self.roots = ("cache" if name.startswith("cache") else
                          "export" if name.startswith(("output", "export")) else "media")

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in value:
            raise ValidationError("A path cannot contain a NUL byte.")
        return value


class CacheDirRequest(Base):
    cache_dir = Path(required=True)


class Number(fields.Float):
    """A JSON number that stays an integer when it is one (``30``, not ``30.0``)."""

    def _serialize(self, value, attr, obj, **kwargs):
        value = super()._serialize(value, attr, obj, **kwargs)
        return int(value) if isinstance(value, float) and value.is_integer() else value


class Timestamp(fields.Field):
    """A time in a media file: seconds as a number or a string (``"75.5"``), or ``"HH:MM:SS"`` /
    ``"MM:SS"`` (fractions allowed). Loads as float seconds, finite and in [0, 10^7]."""

    PATTERN = r"^([0-9]+:){0,2}[0-9]+(\.[0-9]+)?$"

    def __init__(self, **kwargs):
        kwargs["metadata"] = {
            "oneOf": [{"type": "number", "minimum": 0, "maximum": MAX_SECONDS},
                      {"type": "string", "pattern": self.PATTERN, "maxLength": 40}],
            "description": "seconds, or HH:MM:SS / MM:SS",
            **kwargs.get("metadata", {}),
        }
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValidationError("Not a time: give seconds or HH:MM:SS.")
        if isinstance(value, str):
            if len(value) > 40 or not re.fullmatch(self.PATTERN, value):
                raise ValidationError(f"Not a time: {value[:40]!r} (give seconds or HH:MM:SS).")
            seconds = parse_hhmmss(value)
        else:
            try:
                seconds = float(value)
            except OverflowError:  # an int beyond float range
                seconds = math.inf
        if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SECONDS:
            raise ValidationError(f"Must be between 0 and {MAX_SECONDS} seconds.")
        return seconds


class Error(Base):
    error = fields.String(required=True)


class Message(Base):
    message = fields.String(required=True)


class TaskStarted(Base):
    message = fields.String(required=True)
    task_id = fields.String(required=True)


def max_results(default: int = 50):
    return fields.Integer(load_default=default, validate=validate.Range(min=1, max=10000))
