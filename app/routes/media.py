from flask import Blueprint

from app.api import endpoint
from app.services import media
from schemas.media import CachePathsRequest, CachePathsResponse, MetadataRequest, MetadataResponse

bp = Blueprint("media", __name__)


@endpoint(bp, "/media/metadata", "POST", summary="Duration, fps, timecode, hash and analysis status",
          tag="Media", body=MetadataRequest, response=MetadataResponse, errors=(400, 403))
def media_metadata(data):
    return media.media_properties(data["cache_dir"], data["media_paths"])


@endpoint(bp, "/cache-paths", "POST", summary="Visual and audio cache folders of one file", tag="Cache paths",
          body=CachePathsRequest, response=CachePathsResponse, errors=(400, 403))
def cache_paths(data):
    return media.cache_paths(data["cache_dir"], data["media_path"])
