from flask import Blueprint

from app.api import endpoint
from app.services import transcripts
from schemas.transcriptions import TranscriptionsRequest, TranscriptionsResponse

bp = Blueprint("transcriptions", __name__)


@endpoint(bp, "/transcriptions", "POST", summary="Transcript segments of transcribed files",
          tag="Transcriptions", body=TranscriptionsRequest, response=TranscriptionsResponse, errors=(400, 403))
def get_transcriptions(data):
    return transcripts.transcriptions(data["cache_dir"], data["media_paths"])
