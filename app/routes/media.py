from flask import Blueprint, request, send_file

from app.api import endpoint
from app.services import library, media
from schemas.media import (
    BrowseQuery,
    BrowseResponse,
    CachePathsRequest,
    CachePathsResponse,
    ImageUploadRequest,
    ImageUploadResponse,
    MetadataRequest,
    MetadataResponse,
)

bp = Blueprint("media", __name__)


@endpoint(bp, "/media/metadata", "POST", summary="Duration, fps, timecode, hash and analysis status",
          tag="Media", body=MetadataRequest, response=MetadataResponse, errors=(400, 403))
def media_metadata(data):
    return media.media_properties(data["cache_dir"], data["media_paths"])


@endpoint(bp, "/cache-paths", "POST", summary="Visual and audio cache folders of one file", tag="Cache paths",
          body=CachePathsRequest, response=CachePathsResponse, errors=(400, 403))
def cache_paths(data):
    return media.cache_paths(data["cache_dir"], data["media_path"])


@endpoint(bp, "/media/browse", "GET", summary="Folders and media files in a folder (sightline extension)",
          tag="Media", query=BrowseQuery, response=BrowseResponse, errors=(400, 403, 404))
def media_browse(data):
    return library.browse(data.get("path"))


@endpoint(bp, "/media/reference-image", "POST", summary="Keep an uploaded image for /search/image "
          "(sightline extension)", tag="Media", body=ImageUploadRequest, response=ImageUploadResponse,
          status=201, errors=(400,))
def media_reference_image(data):
    return {"image_path": library.save_image(data["image_base64"])}


# Bytes, not JSON, so not in the OpenAPI document: a <video> element plays it and cannot send
# headers, so the key may come as ?license_key=. Werkzeug answers Range requests with 206.
@bp.get("/media/stream")
def media_stream():
    path = library.streamable(request.args.get("path"))
    response = send_file(path, conditional=True, max_age=0)
    response.headers["Accept-Ranges"] = "bytes"
    return response
