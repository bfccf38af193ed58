from flask import Blueprint

from app.api import endpoint
from app.services import analysis
from schemas.analyze import AnalyzeRequest, AnalyzeStarted, TaskStatus
from schemas.common import Message

bp = Blueprint("analyze", __name__)


@endpoint(bp, "/analyze", "POST", summary="Start visual, speech and face analysis (202 + task_id)",
          tag="Analysis", body=AnalyzeRequest, response=AnalyzeStarted, status=202,
          errors=(400, 403, 409, 503))
def analyze(data):
    return analysis.start_analysis(data)


@endpoint(bp, "/analyze/cancel", "POST", summary="Cancel the running analysis task", tag="Analysis",
          response=Message, errors=())
def analyze_cancel():
    current = analysis.cancel_current()
    return {"message": "Cancellation requested" if current else "No analysis task is running"}


@endpoint(bp, "/tasks/<task_id>", "GET", summary="State of a task (sightline extension)", tag="Analysis",
          response=TaskStatus, errors=(404,))
def task_status(task_id):
    return analysis.task_status(task_id)
