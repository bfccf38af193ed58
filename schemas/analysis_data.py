from marshmallow import fields, validate

from schemas.common import Base, Path


class LoadAllRequest(Base):
    cache_dir = Path(required=True)


class LoadForMediaRequest(Base):
    cache_dir = Path(required=True)
    media_paths = fields.List(Path(), required=True, validate=validate.Length(min=1, max=100000))


class LoadResponse(Base):
    message = fields.String(required=True)
    files = fields.Integer()
    skipped = fields.Integer()
    missing = fields.Dict(keys=fields.String(), values=fields.String())
