from flask import Blueprint

from app.api import endpoint
from app.services import models
from schemas.models import LoadModelRequest, LoadModelResponse, ModelsAvailable, ModelsLoaded

bp = Blueprint("models", __name__)


@endpoint(bp, "/models/loaded", "GET", summary="Active visual and speech models", tag="Models",
          response=ModelsLoaded, errors=())
def models_loaded():
    return models.loaded_models()


@endpoint(bp, "/models/available", "GET", summary="Supported, downloaded and active models", tag="Models",
          response=ModelsAvailable, errors=())
def models_available():
    return models.available_models()


@endpoint(bp, "/models/load", "POST", summary="Switch the visual (or speech) model", tag="Models",
          body=LoadModelRequest, response=LoadModelResponse, errors=(400, 500))
def models_load(data):
    return models.load_model(data["model_key"])
