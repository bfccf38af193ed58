from flask import Blueprint

from app.api import endpoint
from app.services import thumbnails
from schemas.thumbnails import SceneRequest, SceneResponse, ThumbnailsRequest, ThumbnailsResponse

bp = Blueprint("thumbnails", __name__)


@endpoint(bp, "/thumbnails", "POST", summary="Base64 JPEG thumbnails for media/time pairs", tag="Thumbnails",
          body=ThumbnailsRequest, response=ThumbnailsResponse, errors=(400, 403))
def get_thumbnails(data):
    return thumbnails.thumbnails(data["cache_dir"], data["requests"])


@endpoint(bp, "/thumbnails/scene", "POST", summary="A strip of thumbnails over a time range (≤ 100)",
          tag="Thumbnails", body=SceneRequest, response=SceneResponse, errors=(400, 403))
def scene_thumbnails(data):
    return thumbnails.scene_strip(data["cache_dir"], data["media_path"], data["start_time"], data["end_time"],
                                  data.get("hash_str"))
