from flask import Blueprint

from app.api import endpoint
from app.services import loaded
from schemas.analysis_data import LoadAllRequest, LoadForMediaRequest, LoadResponse

bp = Blueprint("analysis_data", __name__)


@endpoint(bp, "/analysis-data/load", "POST", summary="Load all analysis data of a cache folder",
          tag="Analysis data", body=LoadAllRequest, response=LoadResponse, errors=(400, 403, 503))
def load_all(data):
    return loaded.load_all(data["cache_dir"])


@endpoint(bp, "/analysis-data/load-for-media", "POST", summary="Load visual data for some files",
          tag="Analysis data", body=LoadForMediaRequest, response=LoadResponse, errors=(400, 403, 503))
def load_for_media(data):
    return loaded.load_for_media(data["cache_dir"], data["media_paths"])


@endpoint(bp, "/analysis-data/load-transcriptions", "POST", summary="Load transcriptions only",
          tag="Analysis data", body=LoadAllRequest, response=LoadResponse, errors=(400, 403))
def load_transcriptions(data):
    return loaded.load_transcriptions(data["cache_dir"])
