from marshmallow import fields, validate

from schemas.common import Base


class LoadedModel(Base):
    model_key = fields.String(allow_none=True)
    is_loading = fields.Boolean()


class ModelsLoaded(Base):
    visual = fields.Nested(LoadedModel)
    speech = fields.Nested(LoadedModel)


class ModelsAvailable(Base):
    supported_models = fields.List(fields.String())
    downloaded_models = fields.List(fields.String())
    loaded_model = fields.String(allow_none=True)
    model_info = fields.List(fields.Dict(keys=fields.String(), values=fields.Dict()))
    current_system = fields.String()
    speech_models = fields.List(fields.Dict())


class LoadModelRequest(Base):
    model_key = fields.String(required=True, validate=validate.Length(min=1, max=200))


class LoadModelResponse(Base):
    message = fields.String()
    loaded_model = fields.String()
