"""The editing backend, mounted at ``/api`` (docs/editor.md, contract: editor-api.md).

Every rule here starts with a fixed word (``project``, ``segment``, ...), never a variable, so
nothing mounted at ``/api`` can shadow ``/api/v1/...`` or ``/api/v2/...``.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from app.api import endpoint
from app.auth import current_key
from app.services import editor
from schemas import editor as s

bp = Blueprint("editor", __name__)
TAG = "Editor"
ED = {"prefix": "/api", "tag": TAG}


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


@endpoint(bp, "/ai/timeline", "GET", summary="The key's recent AI operations, newest first",
          response=s.AiTimeline, errors=(), **ED)
def ai_timeline():
    return editor.ai_timeline(current_key().id)


@endpoint(bp, "/project", "GET", summary="The key's projects", response=s.ProjectList, errors=(), **ED)
def list_projects():
    return editor.list_projects(current_key().id)


@endpoint(bp, "/project", "POST", summary="Create a project (optionally ingesting video_url)",
          body=s.ProjectCreate, response=s.Project, status=201, errors=(400, 403), **ED)
def create_project(data):
    return editor.create_project(current_key().id, data)


@endpoint(bp, "/project/<project_id>", "GET", summary="A project: assets, active segments, duration",
          response=s.Project, errors=(404,), **ED)
def get_project(project_id):
    return editor.get_project(current_key().id, project_id)


@endpoint(bp, "/project/<project_id>", "DELETE", summary="Delete a project and the media it holds",
          response=s.Deleted, errors=(404,), **ED)
def delete_project(project_id):
    return editor.delete_project(current_key().id, project_id)


@endpoint(bp, "/project/<project_id>/timeline", "GET", summary="The cut as OpenTimelineIO JSON or FCP XML",
          query=s.TimelineQuery, errors=(400, 404), **ED)
def project_timeline(project_id, data):
    return editor.timeline_file(current_key().id, project_id, data["format"])


@endpoint(bp, "/project/<project_id>/upload", "POST", summary="A signed, expiring, single-use URL to PUT a file to",
          body=s.UploadRequest, response=s.UploadStarted, status=201, errors=(400, 404), **ED)
def start_upload(project_id, data):
    return editor.start_upload(current_key().id, project_id, data)


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


@endpoint(bp, "/project/<project_id>/preview/strip", "POST", summary="Up to 200 timeline frames as JPEG URLs",
          body=s.StripRequest, response=s.Strip, errors=(400, 404), **ED)
def preview_strip(project_id, data):
    return editor.preview_strip(current_key().id, project_id, data)


@endpoint(bp, "/segment/<segment_id>/split", "POST", summary="Split a segment at a time in its source",
          body=s.SplitRequest, response=s.Split, errors=(400, 404, 409), **ED)
def split_segment(segment_id, data):
    return editor.split(current_key().id, segment_id, data["split_ts"])


@endpoint(bp, "/segment/<segment_id>/trim", "POST", summary="Trim a segment within its bounds",
          body=s.TrimRequest, response=s.Segment, errors=(400, 404, 409), **ED)
def trim_segment(segment_id, data):
    return editor.trim(current_key().id, segment_id, data["new_start_ts"], data["new_end_ts"])


@endpoint(bp, "/segment/<segment_id>", "DELETE", summary="Take a segment off the timeline",
          response=s.Deleted, errors=(404, 409), **ED)
def delete_segment(segment_id):
    return editor.delete_segment(current_key().id, segment_id)


@endpoint(bp, "/segment/<segment_id>/color-grade", "POST", summary="Render a graded replacement segment",
          body=s.GradeRequest, response=s.Graded, errors=(400, 404, 409, 503), **ED)
def color_grade(segment_id, data):
    return editor.color_grade(current_key().id, segment_id, data)


@endpoint(bp, "/segment/<segment_id>/grade-preview", "POST", summary="One graded JPEG of the segment",
          body=s.GradePreviewRequest, response=s.GradePreview, errors=(400, 404, 409), **ED)
def grade_preview(segment_id, data):
    return editor.grade_preview(current_key().id, segment_id, data)


@endpoint(bp, "/ai/generate", "POST", summary="Generate variants of a range and box (a job)",
          body=s.GenerateRequest, response=s.JobStarted, status=202, errors=(400, 404), **ED)
def ai_generate(data):
    return editor.generate(current_key().id, data)


@endpoint(bp, "/job/<job_id>", "GET", summary="A generate/grade/ingest job and its variants",
          response=s.Job, errors=(404,), **ED)
def get_job(job_id):
    return editor.get_job(current_key().id, job_id)


@endpoint(bp, "/variant/<variant_id>/accept", "POST", summary="Put a variant on the timeline in place of its range",
          response=s.Accepted, errors=(404, 409), **ED)
def accept_variant(variant_id):
    return editor.accept_variant(current_key().id, variant_id)


@endpoint(bp, "/variant/<variant_id>/score", "GET", summary="Measured scores of a variant (prompt or original)",
          query=s.ScoreQuery, response=s.Score, errors=(400, 404, 409, 503), **ED)
def score_variant(variant_id, data):
    return editor.score_variant(current_key().id, variant_id, data["compare_to"])


@endpoint(bp, "/export", "POST", summary="Render the timeline to an mp4 (a job)", body=s.ExportRequest,
          response=s.ExportStarted, status=202, errors=(400, 404, 409), **ED)
def start_export(data):
    return editor.start_export(current_key().id, data)


@endpoint(bp, "/export/<export_job_id>", "GET", summary="An export's status, progress and download URL",
          response=s.ExportStatus, errors=(404,), **ED)
def export_status(export_job_id):
    return editor.export_status(current_key().id, export_job_id)
