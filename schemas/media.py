from marshmallow import fields, validate

from schemas.common import Base, Number, Path


class MetadataRequest(Base):
    # Without a cache_dir the file facts still come back; video_cached/audio_cached are false.
    cache_dir = Path(load_default=None, allow_none=True)
    media_paths = fields.List(Path(), required=True, validate=validate.Length(max=10000))


class MediaProperties(Base):
    video_cached = fields.Boolean()
    audio_cached = fields.Boolean()
    runtime = fields.String()
    fps = Number()
    media_path = fields.String()
    timecode = fields.String()
    hash_str = fields.String(allow_none=True)
    error = fields.String()


class MetadataResponse(Base):
    media_properties = fields.Dict(keys=fields.String(), values=fields.Nested(MediaProperties))


class CachePathsRequest(Base):
    cache_dir = Path(required=True)
    media_path = Path(required=True)


class CachePathsResponse(Base):
    video_cache_path = fields.String(allow_none=True)
    audio_cache_path = fields.String(allow_none=True)
    hash_str = fields.String()


class BrowseQuery(Base):
    # Without a path: the media roots (or nothing when none are set: the client types a path).
    path = Path(load_default=None)


class BrowseEntry(Base):
    name = fields.String()
    path = fields.String()
    kind = fields.String(metadata={"description": "folder, video, audio or image"})
    size = fields.Integer(allow_none=True)


class BrowseResponse(Base):
    path = fields.String(allow_none=True)
    parent = fields.String(allow_none=True, metadata={"description": "null at a media root or at /"})
    roots = fields.List(fields.String())
    entries = fields.List(fields.Nested(BrowseEntry))


class ImageUploadRequest(Base):
    image_base64 = fields.String(required=True, validate=validate.Length(min=1, max=48 * 1024 * 1024))


class ImageUploadResponse(Base):
    image_path = fields.String(metadata={"description": "pass as image_path to /search/image"})
