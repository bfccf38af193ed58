from marshmallow import fields, validate

from schemas.common import MAX_SECONDS, Base, Path, Timestamp


class ThumbnailItem(Base):
    media_path = Path(required=True)
    time_seconds = fields.Float(required=True, validate=validate.Range(min=0, max=MAX_SECONDS))


class ThumbnailsRequest(Base):
    cache_dir = Path(required=True)
    requests = fields.List(fields.Nested(ThumbnailItem), required=True, validate=validate.Length(max=1000))


class Thumbnail(Base):
    thumbnail = fields.String(allow_none=True)


class ThumbnailsResponse(Base):
    thumbnails = fields.List(fields.Nested(Thumbnail))


class SceneRequest(Base):
    cache_dir = Path(required=True)
    media_path = Path(required=True)
    start_time = Timestamp(required=True)
    end_time = Timestamp(required=True)
    hash_str = fields.String(validate=validate.Regexp(r"^[0-9a-f]{16}$"))


class SceneResponse(Base):
    scene_thumbnails = fields.List(fields.List(fields.String(allow_none=True)))
