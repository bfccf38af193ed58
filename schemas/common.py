"""Shared schema pieces. Unknown JSON fields are ignored (EXCLUDE); wrong types are 400s."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate


class Base(Schema):
    class Meta:
        unknown = EXCLUDE
        ordered = True


class Path(fields.String):
    """An absolute filesystem path (checked against the allowed roots by the route)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("validate", validate.Length(min=1, max=4096))
        super().__init__(**kwargs)


class CacheDirRequest(Base):
    cache_dir = Path(required=True)


class Number(fields.Float):
    """A JSON number that stays an integer when it is one (``30``, not ``30.0``)."""

    def _serialize(self, value, attr, obj, **kwargs):
        value = super()._serialize(value, attr, obj, **kwargs)
        return int(value) if isinstance(value, float) and value.is_integer() else value


class Error(Base):
    error = fields.String(required=True)


class Message(Base):
    message = fields.String(required=True)


class TaskStarted(Base):
    message = fields.String(required=True)
    task_id = fields.String(required=True)


def max_results(default: int = 50):
    return fields.Integer(load_default=default, validate=validate.Range(min=1, max=10000))
