import math

from marshmallow import ValidationError, fields, validate, validates

from schemas.common import MAX_SECONDS, Base, Path

FORMATS = ("txt", "csv", "docx", "pdf", "srt", "vtt")


class Clip(Base):
    source_path = Path(required=True)
    start_seconds = fields.Float(required=True, validate=validate.Range(min=0, max=10 ** 7))
    end_seconds = fields.Float(required=True, validate=validate.Range(min=0, max=10 ** 7))
    subfolder = fields.String(validate=[validate.Length(max=500), validate.Regexp(r"^[^\x00]*$",
                                                                                   error="must not contain NUL")],
                              allow_none=True)


class ClipsRequest(Base):
    clips = fields.List(fields.Nested(Clip), required=True, validate=validate.Length(min=1, max=10000))
    output_dir = Path(required=True)
    copy_codec = fields.Boolean(load_default=True)
    task_id = fields.String(validate=validate.Length(min=1, max=200),
                            metadata={"description": "optional Socket.IO room for progress events"})


class ClipResult(Base):
    success = fields.Boolean(required=True)
    output_path = fields.String()
    error = fields.String()
    source_path = fields.String(allow_none=True)


class ClipsResponse(Base):
    results = fields.List(fields.Nested(ClipResult))
    summary = fields.String()


class PremiereRequest(Base):
    sequence_name = fields.String(load_default="Untitled Sequence", validate=validate.Length(max=500))
    clips = fields.List(fields.Nested(Clip), required=True, validate=validate.Length(min=1, max=10000))
    output_path = Path(required=True)
    timebase = fields.Float(load_default=24, validate=validate.Range(min=1, max=240))


class PremiereResponse(Base):
    output_path = fields.String()
    clip_count = fields.Integer()
    total_duration_seconds = fields.Float()


class SegmentField(fields.List):
    """``[start_seconds, text, end_seconds]`` (a 4th element, the media path, is ignored)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {"description": "[start_seconds, text, end_seconds]"})
        super().__init__(fields.Raw(metadata={"oneOf": [{"type": "number"}, {"type": "string"}]}),
                         validate=validate.Length(min=3, max=4), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        items = super()._deserialize(value, attr, data, **kwargs)
        start, text, end = items[0], items[1], items[2]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (start, end))
        if not numbers or not isinstance(text, str):
            raise ValidationError("each segment is [start_seconds (number), text (string), end_seconds (number)]")
        if not all(math.isfinite(v) for v in (start, end)) or end > MAX_SECONDS:
            raise ValidationError(f"segment times must be finite and at most {MAX_SECONDS} seconds")
        if start < 0 or end < start:
            raise ValidationError("a segment needs 0 <= start_seconds <= end_seconds")
        return [float(start), text, float(end)]


class TranscriptExportRequest(Base):
    segments = fields.List(SegmentField(), required=True, validate=validate.Length(max=100000))
    format = fields.String(load_default="txt")
    display_name = fields.String(load_default="Transcript", validate=validate.Length(min=1, max=200))
    output_path = Path(load_default=None, allow_none=True)
    include_silences = fields.Boolean(load_default=True)
    channels = fields.List(fields.Integer(allow_none=True, validate=validate.Range(min=0, max=63)),
                           load_default=None, allow_none=True,
                           metadata={"description": "the audio channel (0-based) of each segment, as "
                                                    "/transcriptions gives it; shown as 'Channel N' in the file"})

    @validates("format")
    def _known_format(self, value, **kwargs):
        if value.lower() not in FORMATS:
            raise ValidationError(f"unknown format {value!r}; use one of {', '.join(FORMATS)}")


class TranscriptExportResponse(Base):
    output_path = fields.String()
    format = fields.String()
    row_count = fields.Integer()
