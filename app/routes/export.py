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

# A route whose view only hands the validated body on is the service function itself.
bp = Blueprint("export", __name__)

endpoint(bp, "/export/clips", "POST", summary="Cut clips with ffmpeg into a folder", tag="Export",
         body=ClipsRequest, response=ClipsResponse, errors=(400, 403))(export.clips)

endpoint(bp, "/export/premiere-xml", "POST", summary="Write a Premiere Pro XML (XMEML v4) sequence",
         tag="Export", body=PremiereRequest, response=PremiereResponse, errors=(400, 403))(export.premiere)

endpoint(bp, "/export/transcript", "POST", summary="Write transcript segments as txt/csv/docx/pdf/srt/vtt",
         tag="Export", body=TranscriptExportRequest, response=TranscriptExportResponse,
         errors=(400, 403))(export.transcript)
