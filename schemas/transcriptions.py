from marshmallow import fields, validate

from schemas.common import Base, Path


class TranscriptionsRequest(Base):
    cache_dir = Path(required=True)
    media_paths = fields.List(Path(), required=True, validate=validate.Length(max=10000))


class TranscriptionsResponse(Base):
    transcriptions = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.List(fields.Raw(), metadata={"description": "[start_seconds, text, end_seconds, media_path]"})),
    )
