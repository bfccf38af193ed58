"""Reframe pipeline (API v2): ingest → analyze → transform → status → download."""

from __future__ import annotations

from flask import Blueprint, jsonify, send_file

from app.api import endpoint
from app.auth import current_key
from app.services import reframe
from schemas.reframe import (
    AnalyzeQueued,
    AnalyzeRequest,
    DownloadQuery,
    IngestRequest,
    IngestStarted,
    StepStatus,
    TransformQueued,
    TransformRequest,
)

PREFIX = "/api/v2"
TAG = "Reframe pipeline"
bp = Blueprint("reframe", __name__)


@endpoint(bp, "/ingest", "POST", summary="Download a video (http(s), file:// or a path); returns video_id",
          tag=TAG, body=IngestRequest, response=IngestStarted, status=202, errors=(400, 403), prefix=PREFIX)
def ingest(data):
    return reframe.start_ingest(current_key().id, data["url"])


@endpoint(bp, "/analyze", "POST", summary="Run a model on a video (202; poll /status/{video_id})", tag=TAG,
          body=AnalyzeRequest, response=AnalyzeQueued, status=202, errors=(400, 404, 409), prefix=PREFIX)
def analyze(data):
    queued = reframe.start_step(current_key().id, data["video_id"], data["model_type"], data["parameters"])
    return {**queued, "model_type": data["model_type"]}


@endpoint(bp, "/transform", "POST", summary="Apply a transform (reframe, reframe_llm) to a video", tag=TAG,
          body=TransformRequest, response=TransformQueued, status=202, errors=(400, 404, 409), prefix=PREFIX)
def transform(data):
    queued = reframe.start_step(current_key().id, data["video_id"], data["transform_type"], data["parameters"])
    return {**queued, "transform_type": data["transform_type"]}


@endpoint(bp, "/status/<video_id>", "GET", summary="The most recent step of a video", tag=TAG,
          response=StepStatus, errors=(404,), prefix=PREFIX)
def status(video_id):
    return reframe.status(current_key().id, video_id)


@endpoint(bp, "/download/<video_id>", "GET", summary="Download the source (no suffix), _reframe (MP4, "
          "charged once per video) or an analysis result (JSON); HTTP Range supported", tag=TAG,
          query=DownloadQuery, errors=(402, 404), prefix=PREFIX)
def download(video_id, data):
    path, media_type, name = reframe.download(current_key().id, video_id, data["suffix"])
    return send_file(path, mimetype=media_type, as_attachment=True, download_name=name, conditional=True)


@bp.get("/openapi.json")
def openapi_json():
    from app.routes.openapi import build_spec

    return jsonify(build_spec(PREFIX + "/", "sightline — reframe pipeline API v2", "2.0.0"))
