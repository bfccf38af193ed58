"""The watch-folder fields a client may set, and their limits: one marshmallow schema that the
configuration store (workers/watch/config.py) validates with and the API schema
(schemas/watch_folders.py) extends, so a rule is written once for both.

Paths are plain strings here; the API layer swaps in its root-checked ``Path`` field.
"""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

FACE_EPS_MAX = 10.0
FACE_MIN_SAMPLES_MAX = 1000
LANGUAGE_MAX_CHARS = 40
JOB_NAME_MAX_CHARS = 200
EXTENSION_MAX_CHARS = 50
GLOB_MAX_CHARS = 500
LIST_MAX_ITEMS = 500

BOOLEAN_FIELDS = ("enabled", "enable_visual_analysis", "enable_audio_analysis", "enable_face_analysis")


class WatchFolderRules(Schema):
    class Meta:
        unknown = EXCLUDE
        ordered = True

    folder_path = fields.String()
    cache_dir = fields.String(allow_none=True)
    enabled = fields.Boolean()
    enable_visual_analysis = fields.Boolean()
    enable_audio_analysis = fields.Boolean()
    enable_face_analysis = fields.Boolean()
    audio_language = fields.String(validate=validate.Length(min=1, max=LANGUAGE_MAX_CHARS))
    cluster_job_name = fields.String(allow_none=True, validate=validate.Length(max=JOB_NAME_MAX_CHARS))
    face_eps = fields.Float(validate=validate.Range(min=0.0, min_inclusive=False, max=FACE_EPS_MAX))
    face_min_samples = fields.Integer(strict=True, validate=validate.Range(min=1, max=FACE_MIN_SAMPLES_MAX))
    excluded_extensions = fields.List(fields.String(validate=validate.Length(max=EXTENSION_MAX_CHARS)),
                                      validate=validate.Length(max=LIST_MAX_ITEMS))
    excluded_filename_globs = fields.List(fields.String(validate=validate.Length(max=GLOB_MAX_CHARS)),
                                          validate=validate.Length(max=LIST_MAX_ITEMS))


EDITABLE = frozenset(WatchFolderRules().fields)
_RULES = WatchFolderRules()


def load_fields(data: dict) -> dict:
    """``data``'s editable fields, typed and checked against the rules; ValueError naming the
    first field that breaks one."""
    try:
        return _RULES.load(data, partial=True)
    except ValidationError as exc:
        name, problems = next(iter(exc.normalized_messages().items()))
        raise ValueError(f"{name}: {_first(problems)}") from None


def _first(problems) -> str:
    while isinstance(problems, dict | list):
        problems = next(iter(problems.values())) if isinstance(problems, dict) else problems[0]
    return str(problems)
