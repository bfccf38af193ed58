from flask import Blueprint

from app.api import endpoint
from app.services import search, transcripts
from schemas.search import (
    FrameSearchRequest,
    ImageSearchRequest,
    TextSearchRequest,
    TranscriptSearchRequest,
    TranscriptSearchResponse,
    VisualSearchResponse,
)

bp = Blueprint("search", __name__)

VISUAL_ERRORS = (400, 403, 503)


@endpoint(bp, "/search/text", "POST", summary="Find moments matching a description", tag="Search",
          body=TextSearchRequest, response=VisualSearchResponse, errors=VISUAL_ERRORS)
def search_text(data):
    return search.visual_search("text", data)


@endpoint(bp, "/search/image", "POST", summary="Find moments similar to an image", tag="Search",
          body=ImageSearchRequest, response=VisualSearchResponse, errors=VISUAL_ERRORS)
def search_image(data):
    return search.visual_search("image", data)


@endpoint(bp, "/search/frame", "POST", summary="Find moments similar to a frame of a video", tag="Search",
          body=FrameSearchRequest, response=VisualSearchResponse, errors=VISUAL_ERRORS)
def search_frame(data):
    return search.visual_search("frame", data)


@endpoint(bp, "/search/transcript", "POST", summary="Case-insensitive substring search in transcripts",
          tag="Search", body=TranscriptSearchRequest, response=TranscriptSearchResponse, errors=(400, 403))
def search_transcript(data):
    return transcripts.search(data["query"], data["cache_dir"], data["media_paths"], data["max_results"])
