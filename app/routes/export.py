from flask import Blueprint

from app.api import endpoint
from app.services import export
from schemas.export import (
    ClipsRequest,
    ClipsResponse,
    PremiereRequest,
    PremiereResponse,
    TranscriptExportRequest,
    TranscriptExportResponse,
)

bp = Blueprint("export", __name__)


@endpoint(bp, "/export/clips", "POST", summary="Cut clips with ffmpeg into a folder", tag="Export",
          body=ClipsRequest, response=ClipsResponse, errors=(400, 403))
def export_clips(data):
    return export.clips(data)


@endpoint(bp, "/export/premiere-xml", "POST", summary="Write a Premiere Pro XML (XMEML v4) sequence",
          tag="Export", body=PremiereRequest, response=PremiereResponse, errors=(400, 403))
def export_premiere(data):
    return export.premiere(data)


@endpoint(bp, "/export/transcript", "POST", summary="Write transcript segments as txt/csv/docx/pdf/srt/vtt",
          tag="Export", body=TranscriptExportRequest, response=TranscriptExportResponse, errors=(400, 403))
def export_transcript(data):
    return export.transcript(data)
