"""The editing backend, mounted at ``/api`` (docs/editor.md, contract: editor-api.md).

Every rule here starts with a fixed word (``project``, ``segment``, ...), never a variable, so
nothing mounted at ``/api`` can shadow ``/api/v1/...`` or ``/api/v2/...``.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, jsonify

from app.api import endpoint
from app.auth import current_key
from app.services import editor
from schemas import editor as s

bp = Blueprint("editor", __name__)
TAG = "Editor"
ED = {"prefix": "/api", "tag": TAG}


def _keyed_route(rule: str, method: str, service: Callable, **options) -> None:
    """A route that only hands on what it got: ``service(key_id, *url_params, data)``, the caller's
    key first (every project, segment, job and export belongs to one key)."""
    def view(**kwargs):  # the URL parameters in the rule's order, then the validated body or query
        return service(current_key().id, *kwargs.values())

    view.__name__ = service.__name__  # the Flask endpoint's name
    endpoint(bp, rule, method, **ED, **options)(view)


@endpoint(bp, "/health", "GET", summary="Liveness of the editing backend", response=s.Health, public=True,
          errors=(), **ED)
def editor_health():
    return editor.health()


@bp.get("/openapi.json")
def editor_openapi():
    from app.routes.openapi import build_spec

    return jsonify(build_spec("/api/", "sightline — editing backend (/api)", "1.0.0", ("/api/v1/", "/api/v2/"),
                              "Projects, uploads, a segment timeline, previews, grades, AI variants and exports. "
                              "Every endpoint except /api/health, /api/openapi.json and the signed URLs under "
                              "/api/signed/ needs a licence key (any tier) in the X-License-Key header."))


@endpoint(bp, "/me", "GET", summary="The licence key's profile and credits", response=s.Me, errors=(), **ED)
def me():
    return editor.me(current_key())


@endpoint(bp, "/ai/health", "GET", summary="AI providers: usable or not, and what each can do",
          response=s.AiHealth, errors=(), **ED)
def ai_health():
    return editor.ai_health()


_keyed_route("/ai/timeline", "GET", editor.ai_timeline, summary="The key's recent AI operations, newest first",
             response=s.AiTimeline, errors=())
_keyed_route("/project", "GET", editor.list_projects, summary="The key's projects", response=s.ProjectList, errors=())
_keyed_route("/project", "POST", editor.create_project, summary="Create a project (optionally ingesting video_url)",
             body=s.ProjectCreate, response=s.Project, status=201, errors=(400, 403))
_keyed_route("/project/<project_id>", "GET", editor.get_project,
             summary="A project: assets, active segments, duration", response=s.Project, errors=(404,))
_keyed_route("/project/<project_id>", "DELETE", editor.delete_project,
             summary="Delete a project and the media it holds", response=s.Deleted, errors=(404,))


@endpoint(bp, "/project/<project_id>/timeline", "GET", summary="The cut as OpenTimelineIO JSON or FCP XML",
          query=s.TimelineQuery, errors=(400, 404), **ED)
def project_timeline(project_id, data):
    return editor.timeline_file(current_key().id, project_id, data["format"])


_keyed_route("/project/<project_id>/upload", "POST", editor.start_upload,
             summary="A signed, expiring, single-use URL to PUT a file to", body=s.UploadRequest,
             response=s.UploadStarted, status=201, errors=(400, 404))


@endpoint(bp, "/signed/upload/<token>", "PUT", summary="Upload bytes (whole, or Content-Range chunks that resume)",
          errors=(400, 403, 410, 413, 415, 416), public=True, **ED)
def receive_upload(token):
    return editor.receive_upload(token)


@endpoint(bp, "/signed/file/<token>", "GET", summary="A signed preview, render or export (Range supported)",
          errors=(403, 404), public=True, **ED)
def signed_file(token):
    return editor.serve_file(token)


@endpoint(bp, "/signed/frame/<token>", "GET", summary="A signed strip frame, rendered when first fetched",
          errors=(403, 404), public=True, **ED)
def signed_frame(token):
    return editor.serve_frame(token)


@endpoint(bp, "/project/<project_id>/preview/frame", "POST", summary="One timeline frame as a JPEG URL",
          body=s.FrameRequest, response=s.Frame, errors=(400, 404), **ED)
def preview_frame(project_id, data):
    return editor.preview_frame(current_key().id, project_id, data["ts"])


_keyed_route("/project/<project_id>/preview/strip", "POST", editor.preview_strip,
             summary="Up to 200 timeline frames as JPEG URLs", body=s.StripRequest, response=s.Strip,
             errors=(400, 404))


@endpoint(bp, "/segment/<segment_id>/split", "POST", summary="Split a segment at a time in its source",
          body=s.SplitRequest, response=s.Split, errors=(400, 404, 409), **ED)
def split_segment(segment_id, data):
    return editor.split(current_key().id, segment_id, data["split_ts"])


@endpoint(bp, "/segment/<segment_id>/trim", "POST", summary="Trim a segment within its bounds",
          body=s.TrimRequest, response=s.Segment, errors=(400, 404, 409), **ED)
def trim_segment(segment_id, data):
    return editor.trim(current_key().id, segment_id, data["new_start_ts"], data["new_end_ts"])


_keyed_route("/segment/<segment_id>", "DELETE", editor.delete_segment, summary="Take a segment off the timeline",
             response=s.Deleted, errors=(404, 409))
_keyed_route("/segment/<segment_id>/color-grade", "POST", editor.color_grade,
             summary="Render a graded replacement segment", body=s.GradeRequest, response=s.Graded,
             errors=(400, 404, 409, 503))
_keyed_route("/segment/<segment_id>/grade-preview", "POST", editor.grade_preview,
             summary="One graded JPEG of the segment", body=s.GradePreviewRequest, response=s.GradePreview,
             errors=(400, 404, 409))
_keyed_route("/ai/generate", "POST", editor.generate, summary="Generate variants of a range and box (a job)",
             body=s.GenerateRequest, response=s.JobStarted, status=202, errors=(400, 404))
_keyed_route("/job/<job_id>", "GET", editor.get_job, summary="A generate/grade/ingest job and its variants",
             response=s.Job, errors=(404,))
_keyed_route("/variant/<variant_id>/accept", "POST", editor.accept_variant,
             summary="Put a variant on the timeline in place of its range", response=s.Accepted, errors=(404, 409))


@endpoint(bp, "/variant/<variant_id>/score", "GET", summary="Measured scores of a variant (prompt or original)",
          query=s.ScoreQuery, response=s.Score, errors=(400, 404, 409, 503), **ED)
def score_variant(variant_id, data):
    return editor.score_variant(current_key().id, variant_id, data["compare_to"])


_keyed_route("/export", "POST", editor.start_export, summary="Render the timeline to an mp4 (a job)",
             body=s.ExportRequest, response=s.ExportStarted, status=202, errors=(400, 404, 409))
_keyed_route("/export/<export_job_id>", "GET", editor.export_status,
             summary="An export's status, progress and download URL", response=s.ExportStatus, errors=(404,))
