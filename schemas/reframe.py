"""Request and reply shapes of the reframe pipeline (API v2)."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from schemas.common import Base, schema
from workers.reframe.camera import RATIOS
from workers.reframe.steps import ANALYSES, OUTPUTS, TRANSFORMS

FACE_TRACKING_MODELS = ("face_tracking_yolov8",)


class IngestRequest(Base):
    url = fields.String(required=True, validate=validate.Length(min=1, max=8192),
                        metadata={"description": "http(s):// URL, file:// URL or absolute path on the server"})


class IngestStarted(Base):
    video_id = fields.String(required=True)


def _step_schemas(name: str, step_field: str, steps) -> tuple[type[Base], type[Base]]:
    """The request that queues an analysis or a transform (its step named by ``step_field``,
    one of ``steps``) and the reply that says it is queued."""
    request = schema(f"{name}Request", video_id=fields.String(required=True, validate=validate.Length(min=1, max=64)),
                     **{step_field: fields.String(required=True, validate=validate.OneOf(steps))},
                     parameters=fields.Dict(keys=fields.String(), load_default=dict, allow_none=False))
    queued = schema(f"{name}Queued", video_id=fields.String(required=True),
                    **{step_field: fields.String(required=True)}, status=fields.String(required=True))
    return request, queued


AnalyzeRequest, AnalyzeQueued = _step_schemas("Analyze", "model_type", ANALYSES)
TransformRequest, TransformQueued = _step_schemas("Transform", "transform_type", TRANSFORMS)


class StepStatus(Base):
    video_id = fields.String(required=True)
    step = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(("queued", "running", "completed", "failed")))
    progress = fields.Float(required=True)
    error = fields.String(allow_none=True)
    result = fields.Dict(allow_none=True)


class DownloadQuery(Base):
    suffix = fields.String(load_default="", validate=validate.OneOf(("", *OUTPUTS)))


class CreditsNeeded(Base):
    error = fields.String(required=True)
    credits_needed = fields.Integer(required=True)
    credits_left = fields.Integer(allow_none=True)


# --- per-step parameters: unknown names are refused (a typo must not silently do nothing) ---

class _Params(Schema):
    class Meta:
        unknown = RAISE
        ordered = True


class NoParams(_Params):
    pass


class FaceTrackingParams(_Params):
    sample_fps = fields.Float(validate=validate.Range(min=0.5, max=30.0))
    detector = fields.String(validate=validate.OneOf(("hog", "cnn")))


class ActiveSpeakerParams(_Params):
    face_tracking_model = fields.String(validate=validate.OneOf(FACE_TRACKING_MODELS))


class TranscriptionParams(_Params):
    language = fields.String(validate=validate.Length(max=40), allow_none=True)


class DiarizationParams(_Params):
    num_speakers = fields.Integer(validate=validate.Range(min=1, max=20), allow_none=True)


class ReframeParams(_Params):
    face_tracking_model = fields.String(validate=validate.OneOf(FACE_TRACKING_MODELS))
    aspect_ratio = fields.String(load_default="9:16", validate=validate.OneOf(tuple(RATIOS)))


class ReframeLLMParams(ReframeParams):
    prompt = fields.String(load_default="", validate=validate.Length(max=4000))


PARAMETERS: dict[str, type[_Params]] = {
    "scene_detection": NoParams, "face_tracking_yolov8": FaceTrackingParams,
    "active_speaker": ActiveSpeakerParams, "transcription": TranscriptionParams,
    "diarization": DiarizationParams, "reframe": ReframeParams, "reframe_llm": ReframeLLMParams,
}
