from marshmallow import fields, validate

from schemas.common import Base, Path


class TranscriptionJob(Base):
    path = Path(required=True)
    language = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))


class FaceClusteringJob(Base):
    cluster_job_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    face_media_paths = fields.List(Path(), load_default=list)
    eps = fields.Float(load_default=0.48, validate=validate.Range(min=0.0, max=10.0))
    min_samples = fields.Integer(load_default=5, validate=validate.Range(min=1, max=1000))


class AnalyzeRequest(Base):
    cache_dir = Path(required=True)
    visual_media_paths = fields.List(Path(), load_default=list)
    transcription_jobs = fields.List(fields.Nested(TranscriptionJob), load_default=list)
    face_clustering_jobs = fields.List(fields.Nested(FaceClusteringJob), load_default=list)


class AnalyzeStarted(Base):
    message = fields.String(required=True)
    task_id = fields.String(required=True)
    files = fields.Integer()
    invalid_paths = fields.Dict(keys=fields.String(), values=fields.String())
    warnings = fields.List(fields.String())


class TaskStatus(Base):
    task_id = fields.String()
    state = fields.String()
    kind = fields.String()
    total = fields.Integer()
    finished = fields.Integer()
    failed = fields.Integer()
    cancelled = fields.Integer()
    errors = fields.List(fields.Dict())
    last_event = fields.Dict(allow_none=True)
