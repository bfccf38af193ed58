from marshmallow import fields, validate

from schemas.common import Base, Path, schema


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


AnalyzeStarted = schema("AnalyzeStarted", message=fields.String(required=True), task_id=fields.String(required=True),
                        files=int, invalid_paths=fields.Dict(keys=fields.String(), values=fields.String()),
                        warnings=[str])
TaskStatus = schema("TaskStatus", task_id=str, state=str, kind=str, total=int, finished=int, failed=int, cancelled=int,
                    errors=[dict], last_event=dict | None)
