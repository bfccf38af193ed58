"""Request and response schemas of the editing backend (``/api``, docs/editor.md)."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from schemas.common import MAX_SECONDS, Base


def _time(**kwargs):
    return fields.Float(validate=validate.Range(min=0, max=MAX_SECONDS), **kwargs)


def _offset(limit: float = 1.0):
    return fields.Float(load_default=0.0, validate=validate.Range(min=-limit, max=limit))


class Health(Base):
    status = fields.String()
    database = fields.String()


class Me(Base):
    id = fields.String()
    label = fields.String()
    tier = fields.String()
    credits = fields.Integer(allow_none=True, metadata={"description": "null: unmetered"})
    created_at = fields.String()


class ProviderHealth(Base):
    name = fields.String()
    usable = fields.Boolean()
    configured = fields.Boolean()
    url = fields.String()
    capabilities = fields.List(fields.String())
    detail = fields.String()


class AiHealth(Base):
    provider = fields.String(metadata={"description": "the one SIGHTLINE_AI_PROVIDER selects"})
    providers = fields.List(fields.Nested(ProviderHealth))
    scoring = fields.Dict()


class AiOperation(Base):
    id = fields.String()
    kind = fields.String()
    provider = fields.String()
    status = fields.String()
    project_id = fields.String(allow_none=True)
    subject_id = fields.String(allow_none=True)
    detail = fields.String()
    started_at = fields.String()
    finished_at = fields.String(allow_none=True)
    duration_ms = fields.Float(allow_none=True)


class AiTimeline(Base):
    operations = fields.List(fields.Nested(AiOperation))


class ProjectCreate(Base):
    name = fields.String(required=True, validate=validate.Length(min=1, max=500))
    description = fields.String(load_default="", validate=validate.Length(max=10000))
    video_url = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=4096))


class Asset(Base):
    id = fields.String()
    origin = fields.String()
    status = fields.String()
    file_name = fields.String()
    duration = fields.Float(allow_none=True)
    fps = fields.Float(allow_none=True)
    width = fields.Integer(allow_none=True)
    height = fields.Integer(allow_none=True)
    has_audio = fields.Boolean()
    error = fields.String(allow_none=True)
    proxy = fields.Boolean(metadata={"description": "whether its preview proxy exists (previews are faster)"})


class Segment(Base):
    id = fields.String()
    project_id = fields.String()
    asset_id = fields.String()
    start_ts = fields.Float()
    end_ts = fields.Float()
    source = fields.String()
    url = fields.String(allow_none=True)
    variant_id = fields.String(allow_none=True)
    order_index = fields.Integer()
    active = fields.Boolean()
    timeline_start = fields.Float()
    grade = fields.Dict(allow_none=True)


class Project(Base):
    id = fields.String()
    name = fields.String()
    description = fields.String()
    created_at = fields.String()
    duration = fields.Float(metadata={"description": "timeline duration: the active segments' sum"})
    assets = fields.List(fields.Nested(Asset))
    segments = fields.List(fields.Nested(Segment))


class ProjectList(Base):
    projects = fields.List(fields.Nested(Project))


class Deleted(Base):
    deleted = fields.Boolean()


class UploadRequest(Base):
    file_name = fields.String(required=True, validate=validate.Length(min=1, max=500))
    content_type = fields.String(load_default="application/octet-stream", validate=validate.Length(max=200))
    expires_in = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=7 * 86400),
                                metadata={"description": "seconds the URL stays valid (default: the setting)"})


class UploadStarted(Base):
    upload_url = fields.String()
    asset_id = fields.String()
    expires_at = fields.String()
    max_bytes = fields.Integer()


class FrameRequest(Base):
    ts = _time(required=True)


class Frame(Base):
    frame_url = fields.String()
    timestamp = fields.Float()


class StripRequest(Base):
    start = _time(required=True)
    end = _time(required=True)
    fps = fields.Float(load_default=1.0, validate=validate.Range(min=0.001, max=240, min_inclusive=True))

    @validates_schema
    def _ordered(self, data, **kwargs):
        if data["end"] <= data["start"]:
            raise ValidationError("end must be after start")


class Strip(Base):
    frames = fields.List(fields.Nested(Frame))


class SplitRequest(Base):
    split_ts = _time(required=True)


class Split(Base):
    left = fields.Nested(Segment)
    right = fields.Nested(Segment)


class TrimRequest(Base):
    new_start_ts = _time(required=True)
    new_end_ts = _time(required=True)


class GradeRequest(Base):
    brightness = _offset()
    contrast = _offset()
    saturation = _offset()
    temperature = _offset()
    gamma = _offset()
    hue_shift = _offset(180.0)


class GradePreviewRequest(GradeRequest):
    ts = _time(load_default=None, allow_none=True,
               metadata={"description": "time in the segment's source (default: its first frame)"})


class Graded(Base):
    segment_id = fields.String()
    graded_url = fields.String()
    segment = fields.Nested(Segment)


class GradePreview(Base):
    preview_frame_url = fields.String()
    timestamp = fields.Float()


class BoundingBox(Base):
    x = fields.Float(required=True, validate=validate.Range(min=0, max=1))
    y = fields.Float(required=True, validate=validate.Range(min=0, max=1))
    width = fields.Float(required=True, validate=validate.Range(min=0, max=1, min_inclusive=False))
    height = fields.Float(required=True, validate=validate.Range(min=0, max=1, min_inclusive=False))

    @validates_schema
    def _inside(self, data, **kwargs):
        if data["x"] + data["width"] > 1 + 1e-9 or data["y"] + data["height"] > 1 + 1e-9:
            raise ValidationError("the box must lie inside the frame (x + width <= 1, y + height <= 1)")


class GenerateRequest(Base):
    project_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    prompt = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    start_ts = _time(required=True)
    end_ts = _time(required=True)
    bounding_box = fields.Nested(BoundingBox, required=True)


class JobStarted(Base):
    job_id = fields.String()
    status = fields.String()


class Variant(Base):
    id = fields.String()
    url = fields.String()
    preview_url = fields.String()
    label = fields.String()
    accepted = fields.Boolean()


class Job(Base):
    id = fields.String()
    project_id = fields.String()
    kind = fields.String()
    status = fields.String()
    error = fields.String(allow_none=True)
    provider = fields.String(allow_none=True)
    variants = fields.List(fields.Nested(Variant))


class Accepted(Base):
    variant_id = fields.String()
    accepted = fields.Boolean()
    segment = fields.Nested(Segment)


class ScoreQuery(Base):
    compare_to = fields.String(load_default="prompt", validate=validate.OneOf(["prompt", "original"]))


class ScoreDetail(Base):
    overall_rating = fields.String()
    details = fields.String()
    fidelity_to_prompt = fields.String()
    visual_quality = fields.String()
    fidelity = fields.String()
    metrics = fields.Dict()


class Score(Base):
    variant_id = fields.String()
    compare_to = fields.String()
    score = fields.Nested(ScoreDetail)


class ExportRequest(Base):
    project_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    format = fields.String(load_default="mp4", validate=validate.OneOf(["mp4"]))


class ExportStarted(Base):
    export_job_id = fields.String()
    status = fields.String()
    message = fields.String()


class ExportStatus(Base):
    export_job_id = fields.String()
    status = fields.String()
    progress = fields.Float()
    export_url = fields.String(allow_none=True)
    download_url = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    duration = fields.Float(allow_none=True)
    parts = fields.List(fields.Dict())


class TimelineQuery(Base):
    format = fields.String(load_default="otio", validate=validate.OneOf(["otio", "fcp_xml"]))
