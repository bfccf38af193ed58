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
    channels = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.Integer(allow_none=True)),
        metadata={"description": "only for files with one speaker per audio channel, transcribed channel by "
                                 "channel: the channel (0-based) of each row of `transcriptions`, in order"},
    )
