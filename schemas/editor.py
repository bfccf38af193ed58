"""Request and response schemas of the editing backend (``/api``, docs/editor.md)."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from schemas.common import MAX_SECONDS, Base, schema
from workers.editor import grade


def _time(**kwargs):
    return fields.Float(validate=validate.Range(min=0, max=MAX_SECONDS), **kwargs)


def _offset(limit: float):
    return fields.Float(load_default=0.0, validate=validate.Range(min=-limit, max=limit))


Health = schema("Health", status=str, database=str)
Me = schema("Me", id=str, label=str, tier=str,
            credits=fields.Integer(allow_none=True, metadata={"description": "null: unmetered"}), created_at=str)
ProviderHealth = schema("ProviderHealth", name=str, usable=bool, configured=bool, url=str, capabilities=[str],
                        detail=str)
AiHealth = schema("AiHealth", provider=fields.String(metadata={"description": "the one SIGHTLINE_AI_PROVIDER selects"}),
                  providers=[ProviderHealth], scoring=dict)
AiOperation = schema("AiOperation", id=str, kind=str, provider=str, status=str, project_id=str | None,
                     subject_id=str | None, detail=str, started_at=str, finished_at=str | None,
                     duration_ms=float | None)
AiTimeline = schema("AiTimeline", operations=[AiOperation])


class ProjectCreate(Base):
    name = fields.String(required=True, validate=validate.Length(min=1, max=500))
    description = fields.String(load_default="", validate=validate.Length(max=10000))
    video_url = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=4096))


Asset = schema("Asset", id=str, origin=str, status=str, file_name=str, duration=float | None, fps=float | None,
               width=int | None, height=int | None, has_audio=bool, error=str | None,
               proxy=fields.Boolean(metadata={"description": "whether its preview proxy exists (previews are faster)"}))
Segment = schema("Segment", id=str, project_id=str, asset_id=str, start_ts=float, end_ts=float, source=str,
                 url=str | None, variant_id=str | None, order_index=int, active=bool, timeline_start=float,
                 grade=dict | None)
Project = schema("Project", id=str, name=str, description=str, created_at=str,
                 duration=fields.Float(metadata={"description": "timeline duration: the active segments' sum"}),
                 assets=[Asset], segments=[Segment])
ProjectList = schema("ProjectList", projects=[Project])
Deleted = schema("Deleted", deleted=bool)


class UploadRequest(Base):
    file_name = fields.String(required=True, validate=validate.Length(min=1, max=500))
    content_type = fields.String(load_default="application/octet-stream", validate=validate.Length(max=200))
    expires_in = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=7 * 86400),
                                metadata={"description": "seconds the URL stays valid (default: the setting)"})


UploadStarted = schema("UploadStarted", upload_url=str, asset_id=str, expires_at=str, max_bytes=int)

FrameRequest = schema("FrameRequest", ts=_time(required=True))

Frame = schema("Frame", frame_url=str, timestamp=float)


class StripRequest(Base):
    start = _time(required=True)
    end = _time(required=True)
    fps = fields.Float(load_default=1.0, validate=validate.Range(min=0.001, max=240, min_inclusive=True))

    @validates_schema
    def _ordered(self, data, **kwargs):
        if data["end"] <= data["start"]:
            raise ValidationError("end must be after start")


Strip = schema("Strip", frames=[Frame])

SplitRequest = schema("SplitRequest", split_ts=_time(required=True))

Split = schema("Split", left=Segment, right=Segment)

TrimRequest = schema("TrimRequest", new_start_ts=_time(required=True), new_end_ts=_time(required=True))

# The grade's knobs and their ranges are the grade's own (workers/editor/grade.py).
GradeRequest = schema("GradeRequest", **{name: _offset(limit) for name, limit in grade.LIMITS.items()})


class GradePreviewRequest(GradeRequest):
    ts = _time(load_default=None, allow_none=True,
               metadata={"description": "time in the segment's source (default: its first frame)"})


Graded = schema("Graded", segment_id=str, graded_url=str, segment=Segment)
GradePreview = schema("GradePreview", preview_frame_url=str, timestamp=float)


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


JobStarted = schema("JobStarted", job_id=str, status=str)
Variant = schema("Variant", id=str, url=str, preview_url=str, label=str, accepted=bool)
Job = schema("Job", id=str, project_id=str, kind=str, status=str, error=str | None, provider=str | None,
             variants=[Variant])
Accepted = schema("Accepted", variant_id=str, accepted=bool, segment=Segment)


class ScoreQuery(Base):
    compare_to = fields.String(load_default="prompt", validate=validate.OneOf(["prompt", "original"]))


ScoreDetail = schema("ScoreDetail", overall_rating=str, details=str, fidelity_to_prompt=str, visual_quality=str,
                     fidelity=str, metrics=dict)
Score = schema("Score", variant_id=str, compare_to=str, score=ScoreDetail)


class ExportRequest(Base):
    project_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    format = fields.String(load_default="mp4", validate=validate.OneOf(["mp4"]))


ExportStarted = schema("ExportStarted", export_job_id=str, status=str, message=str)
ExportStatus = schema("ExportStatus", export_job_id=str, status=str, progress=float, export_url=str | None,
                      download_url=str | None, error=str | None, duration=float | None, parts=[dict])


class TimelineQuery(Base):
    format = fields.String(load_default="otio", validate=validate.OneOf(["otio", "fcp_xml"]))
