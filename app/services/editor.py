"""The editing backend's logic between the routes and the tasks/engine (docs/editor.md).

Every function takes the asking key's id: projects belong to the key that made them, and a
row of another key's project is "not found" (404), never "forbidden". Timeline edits are one
transaction each and leave ``order_index`` dense over the active segments. Renders that take
long (grade, generate, export, URL ingest) are Celery tasks; previews are one ffmpeg call here.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import time
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlparse

from celery.exceptions import TimeoutError as CeleryTimeout
from flask import request, send_file
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app import signed
from app.errors import ApiError
from app.paths import check_media
from tasks.celery_app import celery_app
from workers import editor as layout
from workers.db import credits, session_scope
from workers.db.editor import (
    EditorAiOperation,
    EditorAsset,
    EditorExport,
    EditorJob,
    EditorProject,
    EditorSegment,
    EditorSignedUse,
    EditorVariant,
    active_segments,
    reindex,
    replace_segment,
)
from workers.editor import render
from workers.editor.grade import Grade
from workers.exports.ffmpeg import FFmpegError
from workers.media.probe import MediaError
from workers.settings import load_settings

GRADE_WAIT_SECONDS = 900
SCORE_WAIT_SECONDS = 900
MAX_STRIP_FRAMES = 200
_CHUNK = 1024 * 1024


# ---------------------------------------------------------------- shapes

def _iso(value: datetime | float | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def project_dir(project_id: str) -> Path:
    return layout.project_dir(load_settings().data_dir, project_id)


def _proxy(asset: EditorAsset) -> Path:
    return layout.proxy_path(load_settings().data_dir, asset.project_id, asset.id)


def _want_proxy(project_id: str, asset_id: str, path: str) -> None:
    _send("sightline.editor.proxy", [project_id, asset_id, path])


def _asset_dict(asset: EditorAsset) -> dict:
    return {"id": asset.id, "origin": asset.origin, "status": asset.status, "file_name": asset.file_name,
            "duration": asset.duration, "fps": asset.fps, "width": asset.width, "height": asset.height,
            "has_audio": asset.has_audio, "error": asset.error,
            "proxy": asset.status == "ready" and _proxy(asset).exists()}


def _segment_dict(segment: EditorSegment, asset: EditorAsset | None, timeline_start: float | None = None) -> dict:
    url = signed.file_url(asset.path, "video/mp4") if asset is not None and asset.path else None
    return {"id": segment.id, "project_id": segment.project_id, "asset_id": segment.asset_id,
            "start_ts": segment.start_ts, "end_ts": segment.end_ts, "source": segment.source, "url": url,
            "variant_id": segment.variant_id, "order_index": segment.order_index, "active": segment.active,
            "timeline_start": timeline_start, "grade": segment.grade}


_active = active_segments
_reindex = reindex


def _timeline(session: Session, project_id: str) -> list[tuple[EditorSegment, EditorAsset, float]]:
    """Active segments in order, each with its asset and its start on the timeline."""
    out, position = [], 0.0
    for segment in _active(session, project_id):
        asset = session.get(EditorAsset, segment.asset_id)
        out.append((segment, asset, position))
        position += segment.end_ts - segment.start_ts
    return out


def _project_dict(session: Session, project: EditorProject) -> dict:
    assets = session.scalars(select(EditorAsset).where(EditorAsset.project_id == project.id,
                                                       EditorAsset.origin.in_(("url", "path", "upload")))
                             .order_by(EditorAsset.created_at))
    timeline = _timeline(session, project.id)
    duration = sum(s.end_ts - s.start_ts for s, _, _ in timeline)
    return {"id": project.id, "name": project.name, "description": project.description,
            "created_at": _iso(project.created_at), "duration": round(duration, 6),
            "assets": [_asset_dict(a) for a in assets],
            "segments": [_segment_dict(s, a, round(t, 6)) for s, a, t in timeline]}


# ---------------------------------------------------------------- lookups (404 across keys)

def _project(session: Session, key_id: str, project_id: str) -> EditorProject:
    project = session.get(EditorProject, project_id)
    if project is None or project.key_id != key_id:
        raise ApiError(404, f"No project {project_id}")
    return project


def _owned(session: Session, key_id: str, model, row_id: str, what: str):
    row = session.get(model, row_id)
    if row is None:
        raise ApiError(404, f"No {what} {row_id}")
    project = session.get(EditorProject, row.project_id)
    if project is None or project.key_id != key_id:
        raise ApiError(404, f"No {what} {row_id}")
    return row


@lru_cache(maxsize=256)
def _inspect_cached(path: str, mtime: float, size: int) -> render.SourceInfo:
    return render.inspect(path)


def source_of(asset: EditorAsset) -> render.SourceInfo:
    try:
        stat = os.stat(asset.path)
        return _inspect_cached(asset.path, stat.st_mtime, stat.st_size)
    except (OSError, MediaError) as exc:
        raise ApiError(409, f"asset {asset.id} cannot be read any more: {exc}") from None


def _send(name: str, args: list) -> object:
    return celery_app.send_task(name, args=args)


# ---------------------------------------------------------------- me, health

def me(record) -> dict:
    with session_scope() as session:
        balance = credits.balance(session, record.id)
    return {"id": record.id, "label": record.label, "tier": record.tier, "credits": balance,
            "created_at": _iso(record.created)}


def health() -> dict:
    try:
        with session_scope() as session:
            session.execute(select(1))
        database = "ok"
    except Exception as exc:  # noqa: BLE001 - health reports, never fails
        database = f"unavailable: {exc.__class__.__name__}"
    return {"status": "ok", "database": database}


def ai_health() -> dict:
    from workers.active_models import active_model
    from workers.editor.providers import all_providers
    from workers.editor.score import has_vmaf

    settings = load_settings()
    return {"provider": settings.ai_provider, "providers": [p.health() for p in all_providers(settings)],
            "scoring": {"original": "VMAF (libvmaf), SSIM and PSNR" if has_vmaf() else "SSIM and PSNR (no libvmaf)",
                        "prompt": f"similarity from the active visual model {active_model('visual')!r} when the "
                                  "query worker can load it; otherwise reported unavailable"}}


def ai_timeline(key_id: str, limit: int = 100) -> dict:
    with session_scope() as session:
        rows = session.scalars(select(EditorAiOperation).where(EditorAiOperation.key_id == key_id)
                               .order_by(EditorAiOperation.started_at.desc()).limit(limit))
        return {"operations": [{"id": r.id, "kind": r.kind, "provider": r.provider, "status": r.status,
                                "project_id": r.project_id, "subject_id": r.subject_id, "detail": r.detail,
                                "started_at": _iso(r.started_at), "finished_at": _iso(r.finished_at),
                                "duration_ms": r.duration_ms} for r in rows]}


# ---------------------------------------------------------------- projects

def _local_path(video_url: str) -> str | None:
    if video_url.startswith("file://"):
        parsed = urlparse(video_url)
        if parsed.netloc not in ("", "localhost"):
            raise ApiError(400, "video_url: a file:// URL must name a file on this server")
        return unquote(parsed.path)
    if video_url.startswith("/") or video_url.startswith("~"):
        return video_url
    return None


def _add_ready_asset(session: Session, project_id: str, asset: EditorAsset, info: render.SourceInfo) -> EditorSegment:
    asset.status, asset.duration, asset.fps = "ready", info.duration, info.fps
    asset.width, asset.height, asset.has_audio = info.width, info.height, info.has_audio
    count = len(_active(session, project_id))
    segment = EditorSegment(project_id=project_id, asset_id=asset.id, start_ts=0.0, end_ts=info.duration,
                            source="original", order_index=count, active=True)
    session.add(segment)
    session.flush()
    return segment


def create_project(key_id: str, data: dict) -> dict:
    video_url = data.get("video_url")
    path = ingest_job = proxy_for = None
    if video_url:
        path = _local_path(video_url)
        if path is None and not re.match(r"^https?://", video_url, re.IGNORECASE):
            raise ApiError(400, "video_url: give an http(s) URL, a file:// URL or an absolute path on this server")
    info = None
    if path is not None:
        path = os.path.abspath(os.path.expanduser(check_media(os.path.expanduser(path), "video_url")))
        if not os.path.isfile(path):
            raise ApiError(400, f"video_url: file not found: {path}")
        try:
            info = render.inspect(path)
        except MediaError as exc:
            raise ApiError(400, f"video_url: {path} is not a usable video ({exc})") from None
    with session_scope() as session:
        project = EditorProject(key_id=key_id, name=data["name"], description=data.get("description") or "")
        session.add(project)
        session.flush()
        if info is not None:
            asset = EditorAsset(project_id=project.id, origin="path", status="pending", path=path,
                                file_name=os.path.basename(path), source_url=video_url, size=os.path.getsize(path))
            session.add(asset)
            session.flush()
            _add_ready_asset(session, project.id, asset, info)
            proxy_for = (project.id, asset.id, path)
        elif video_url:
            asset = EditorAsset(project_id=project.id, origin="url", status="pending", source_url=video_url,
                                file_name=os.path.basename(urlparse(video_url).path) or "video")
            session.add(asset)
            session.flush()
            job = EditorJob(project_id=project.id, kind="ingest", params={"asset_id": asset.id})
            session.add(job)
            session.flush()
            ingest_job = job.id
        result = _project_dict(session, project)
    if ingest_job:
        _send("sightline.editor.ingest", [ingest_job])
    if proxy_for:
        _want_proxy(*proxy_for)
    return result


def list_projects(key_id: str) -> dict:
    with session_scope() as session:
        projects = session.scalars(select(EditorProject).where(EditorProject.key_id == key_id)
                                   .order_by(EditorProject.created_at.desc()))
        return {"projects": [_project_dict(session, p) for p in projects]}


def get_project(key_id: str, project_id: str) -> dict:
    with session_scope() as session:
        return _project_dict(session, _project(session, key_id, project_id))


def delete_project(key_id: str, project_id: str) -> dict:
    with session_scope() as session:
        project = _project(session, key_id, project_id)
        for model in (EditorVariant, EditorSegment, EditorExport, EditorJob, EditorAsset):
            session.execute(delete(model).where(model.project_id == project.id))
        session.delete(project)
    # Only what the server made or received lives here; ingested local files stay where they are.
    shutil.rmtree(project_dir(project_id), ignore_errors=True)
    return {"deleted": True}


def timeline_file(key_id: str, project_id: str, fmt: str):
    from workers.editor.timeline import TimelineClip, write_timeline

    with session_scope() as session:
        project = _project(session, key_id, project_id)
        clips = [TimelineClip(a.path, a.file_name or os.path.basename(a.path), s.start_ts, s.end_ts, a.fps or 25.0,
                              a.duration or s.end_ts, s.source) for s, a, _ in _timeline(session, project.id)]
        name = project.name
    text = write_timeline(name, clips, fmt)
    mime = "application/json" if fmt == "otio" else "application/xml"
    suffix = "otio" if fmt == "otio" else "xml"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "timeline"
    return text, 200, {"Content-Type": f"{mime}; charset=utf-8",
                       "Content-Disposition": f'attachment; filename="{safe}.{suffix}"'}


# ---------------------------------------------------------------- uploads

def start_upload(key_id: str, project_id: str, data: dict) -> dict:
    settings = load_settings()
    with session_scope() as session:
        project = _project(session, key_id, project_id)
        asset = EditorAsset(project_id=project.id, origin="upload", status="pending",
                            file_name=os.path.basename(data["file_name"])[:500] or "upload",
                            content_type=data.get("content_type") or "")
        session.add(asset)
        session.flush()
        asset_id = asset.id
    token, expires = signed.sign("upload", {"a": asset_id}, data.get("expires_in"), nonce=asset_id)
    return {"upload_url": f"{signed.base_url()}{signed.SIGNED_PREFIX}/upload/{token}", "asset_id": asset_id,
            "expires_at": _iso(expires), "max_bytes": settings.upload_max_bytes}


_RANGE = re.compile(r"^bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)$")


def _content_range() -> tuple[int | None, int | None, int | None]:
    """(first, last, total) from ``Content-Range``; (None, None, None) without one."""
    header = request.headers.get("Content-Range")
    if not header:
        return None, None, None
    match = _RANGE.match(header.strip())
    if not match:
        raise ApiError(400, "Content-Range must look like 'bytes FIRST-LAST/TOTAL' (or 'bytes */TOTAL')")
    first = int(match.group(1)) if match.group(1) is not None else None
    last = int(match.group(2)) if match.group(2) is not None else None
    total = int(match.group(3)) if match.group(3) != "*" else None
    if first is not None and (last < first or (total is not None and last >= total)):
        raise ApiError(400, "Content-Range: FIRST <= LAST < TOTAL")
    return first, last, total


def receive_upload(token: str):
    """One ``PUT`` to an upload URL: the whole file, or one ``Content-Range`` chunk of it."""
    import fcntl

    payload = signed.verify(token, "upload")
    settings = load_settings()
    limit = settings.upload_max_bytes
    asset_id = payload["s"]["a"]
    first, last, total = _content_range()
    length = request.content_length
    if total is not None and total > limit:
        raise ApiError(413, f"The file is larger than the upload limit ({limit} bytes, SIGHTLINE_UPLOAD_MAX_BYTES)")
    with session_scope() as session:
        if session.get(EditorSignedUse, payload.get("n") or asset_id) is not None:
            raise ApiError(410, "This upload URL was already used; ask for a new one")
        asset = session.get(EditorAsset, asset_id)
        if asset is None or asset.status not in ("pending", "uploading"):
            raise ApiError(410, "This upload URL was already used; ask for a new one")
        project_id = asset.project_id
    folder = project_dir(project_id) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{asset_id}.part"
    with open(folder / f"{asset_id}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        received = part.stat().st_size if part.exists() else 0
        if first is None and last is None and total is not None:  # "bytes */TOTAL": where are we?
            return _upload_status(asset_id, received, total)
        if first is None:
            first, received = 0, 0
            part.unlink(missing_ok=True)
        if first > received:
            raise ApiError(416, f"This chunk starts at byte {first} but only {received} bytes have arrived; "
                                f"resume from byte {received}", received=received)
        request.max_content_length = limit
        skip = received - first
        written = received
        with open(part, "ab") as handle:
            stream = request.stream
            while True:
                chunk = stream.read(_CHUNK)
                if not chunk:
                    break
                if skip:
                    dropped = min(skip, len(chunk))
                    chunk, skip = chunk[dropped:], skip - dropped
                if written + len(chunk) > limit:
                    handle.truncate(received)
                    raise ApiError(413, f"The file is larger than the upload limit ({limit} bytes, "
                                        "SIGHTLINE_UPLOAD_MAX_BYTES)")
                handle.write(chunk)
                written += len(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        if last is not None and written < last + 1 and (length is None or length >= last + 1 - first):
            raise ApiError(400, f"The chunk ended early: got bytes up to {written - 1}, Content-Range said {last}",
                           received=written)
        if total is not None and written < total:
            with session_scope() as session:
                asset = session.get(EditorAsset, asset_id)
                asset.status, asset.received, asset.size = "uploading", written, total
            return _upload_status(asset_id, written, total)
        return _finish_upload(asset_id, project_id, part, payload.get("n") or asset_id)


def _upload_status(asset_id: str, received: int, total: int | None):
    headers = {"Range": f"bytes=0-{received - 1}"} if received else {}
    return {"asset_id": asset_id, "status": "uploading", "received": received, "total": total,
            "complete": False}, 202, headers


def _finish_upload(asset_id: str, project_id: str, part: Path, nonce: str):
    with session_scope() as session:
        asset = session.get(EditorAsset, asset_id)
        suffix = Path(asset.file_name).suffix.lower()
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix or "") else ".bin"
    final = project_dir(project_id) / "assets" / f"{asset_id}{suffix}"
    try:
        info = render.inspect(part)
    except MediaError as exc:
        part.unlink(missing_ok=True)
        with session_scope() as session:
            session.add(EditorSignedUse(nonce=nonce))
            session.execute(delete(EditorAsset).where(EditorAsset.id == asset_id))
        raise ApiError(415, f"The uploaded file is not a video the editor can use ({exc}); nothing was added") \
            from None
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, final)
    with session_scope() as session:
        session.add(EditorSignedUse(nonce=nonce))
        asset = session.get(EditorAsset, asset_id)
        asset.path, asset.size, asset.received = str(final), final.stat().st_size, final.stat().st_size
        segment = _add_ready_asset(session, project_id, asset, info)
        answer = {"asset_id": asset_id, "status": "ready", "complete": True, "received": asset.size,
                  "total": asset.size, "asset": _asset_dict(asset), "segment": _segment_dict(segment, asset)}
    _want_proxy(project_id, asset_id, str(final))
    return answer, 201


# ---------------------------------------------------------------- previews

def _locate(timeline, ts: float) -> tuple[EditorSegment, EditorAsset, float]:
    total = sum(s.end_ts - s.start_ts for s, _, _ in timeline)
    if not timeline:
        raise ApiError(400, "The timeline is empty")
    if ts >= total - 1e-9:
        raise ApiError(400, f"ts {ts:g} is beyond the timeline (its duration is {total:g} s)")
    for segment, asset, start in timeline:
        # A hair of tolerance: 1.8 - 1.2 is 0.6000000000000001, and ts 0.6 is the next segment's start.
        if ts < start + (segment.end_ts - segment.start_ts) - 1e-9:
            return segment, asset, segment.start_ts + (ts - start)
    segment, asset, start = timeline[-1]
    return segment, asset, segment.end_ts


def _frame_file(asset: EditorAsset, source_ts: float, grade: Grade | None = None) -> Path:
    settings = load_settings()
    source = source_of(asset)
    index = min(render.frame_index(source_ts, source.fps), source.frame_count - 1)
    filters = grade.filters() if grade else []
    # The proxy (preview size, short GOP) when it is there and has every frame; else the source.
    frames_from, via = source, "source"
    proxy = _proxy(asset)
    if proxy.exists():
        try:
            stat = proxy.stat()
            candidate = _inspect_cached(str(proxy), stat.st_mtime, stat.st_size)
            if abs(candidate.fps - source.fps) < 1e-3 and candidate.frame_count >= source.frame_count:
                frames_from, via = candidate, "proxy"
        except (OSError, MediaError):
            pass
    key = hashlib.sha1(f"{asset.id}|{index}|{'|'.join(filters)}|{settings.preview_max_side}|{via}".encode())
    target = project_dir(asset.project_id) / "previews" / f"{key.hexdigest()[:24]}.jpg"
    if not target.exists():
        try:
            render.extract_frame(frames_from, index / source.fps, target, filters, settings.preview_max_side)
        except FFmpegError as exc:
            raise ApiError(409, f"could not render that frame: {exc}") from None
    return target


def preview_frame(key_id: str, project_id: str, ts: float) -> dict:
    with session_scope() as session:
        _project(session, key_id, project_id)
        segment, asset, source_ts = _locate(_timeline(session, project_id), ts)
    return {"frame_url": signed.file_url(_frame_file(asset, source_ts), "image/jpeg"), "timestamp": ts}


def preview_strip(key_id: str, project_id: str, data: dict) -> dict:
    start, end, fps = data["start"], data["end"], data["fps"]
    count = max(1, math.ceil((end - start) * fps - 1e-6))  # frames at start, start + 1/fps, ... before end
    if count > MAX_STRIP_FRAMES:
        raise ApiError(400, f"That strip has {count} frames; at most {MAX_STRIP_FRAMES} (lower fps or the range)")
    with session_scope() as session:
        _project(session, key_id, project_id)
        timeline = _timeline(session, project_id)
        frames = []
        for number in range(count):
            ts = start + number / fps
            if ts >= end:
                break
            segment, asset, source_ts = _locate(timeline, ts)
            # Rendered when fetched: a 200-frame strip answers at once, frames arrive as viewed.
            frames.append({"frame_url": signed.url_for("frame", {"a": asset.id, "t": round(source_ts, 6)}),
                           "timestamp": round(ts, 6)})
    return {"frames": frames}


def serve_frame(token: str):
    payload = signed.verify(token, "frame")
    with session_scope() as session:
        asset = session.get(EditorAsset, payload["s"]["a"])
        if asset is None or asset.status != "ready":
            raise ApiError(404, "That frame's video is gone")
    return send_file(_frame_file(asset, float(payload["s"]["t"])), mimetype="image/jpeg", max_age=3600)


def serve_file(token: str):
    payload = signed.verify(token, "file")
    path = payload["s"]["p"]
    if not os.path.isfile(path):
        raise ApiError(404, "That file is gone")
    return send_file(path, mimetype=payload["s"].get("m") or None, conditional=True, max_age=3600)


# ---------------------------------------------------------------- segment edits

def _editable(session: Session, key_id: str, segment_id: str) -> EditorSegment:
    segment = _owned(session, key_id, EditorSegment, segment_id, "segment")
    if not segment.active:
        raise ApiError(409, f"Segment {segment_id} is no longer on the timeline (it was split, graded, replaced "
                            "or deleted)")
    return segment


def _frame(session: Session, segment: EditorSegment) -> float:
    asset = session.get(EditorAsset, segment.asset_id)
    return 1.0 / (asset.fps or 25.0)


def split(key_id: str, segment_id: str, split_ts: float) -> dict:
    with session_scope() as session:
        segment = _editable(session, key_id, segment_id)
        if not segment.start_ts < split_ts < segment.end_ts:
            raise ApiError(400, f"split_ts {split_ts:g} must lie strictly inside the segment "
                                f"({segment.start_ts:g}, {segment.end_ts:g})")
        common = {"project_id": segment.project_id, "asset_id": segment.asset_id, "source": segment.source,
                  "variant_id": segment.variant_id, "grade": segment.grade, "parent_id": segment.id, "active": True}
        left = EditorSegment(start_ts=segment.start_ts, end_ts=split_ts, **common)
        right = EditorSegment(start_ts=split_ts, end_ts=segment.end_ts, **common)
        replace_segment(session, segment, [left, right])
        asset = session.get(EditorAsset, segment.asset_id)
        return {"left": _segment_dict(left, asset), "right": _segment_dict(right, asset)}


def trim(key_id: str, segment_id: str, new_start: float, new_end: float) -> dict:
    with session_scope() as session:
        segment = _editable(session, key_id, segment_id)
        if not new_start < new_end:
            raise ApiError(400, "new_start_ts must be before new_end_ts")
        if new_start < segment.start_ts - 1e-9 or new_end > segment.end_ts + 1e-9:
            raise ApiError(400, f"A trim stays within the segment's bounds [{segment.start_ts:g}, {segment.end_ts:g}]")
        segment.start_ts, segment.end_ts = new_start, new_end
        session.flush()
        return _segment_dict(segment, session.get(EditorAsset, segment.asset_id))


def delete_segment(key_id: str, segment_id: str) -> dict:
    with session_scope() as session:
        segment = _editable(session, key_id, segment_id)
        segment.active = False
        session.flush()
        _reindex(session, segment.project_id)
    return {"deleted": True}


def _grade(data: dict) -> Grade:
    try:
        return Grade.from_dict(data)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


def grade_preview(key_id: str, segment_id: str, data: dict) -> dict:
    grade = _grade(data)
    with session_scope() as session:
        segment = _editable(session, key_id, segment_id)
        ts = data.get("ts")
        if ts is None:
            ts = segment.start_ts
        elif not segment.start_ts <= ts < segment.end_ts:
            raise ApiError(400, f"ts {ts:g} is outside the segment [{segment.start_ts:g}, {segment.end_ts:g})")
        asset = session.get(EditorAsset, segment.asset_id)
    return {"preview_frame_url": signed.file_url(_frame_file(asset, ts, grade), "image/jpeg"), "timestamp": ts}


def color_grade(key_id: str, segment_id: str, data: dict) -> dict:
    grade = _grade(data)
    with session_scope() as session:
        segment = _editable(session, key_id, segment_id)
        job = EditorJob(project_id=segment.project_id, kind="grade",
                        params={"segment_id": segment.id, "grade": grade.as_dict()})
        session.add(job)
        session.flush()
        job_id = job.id
    try:
        answer = _send("sightline.editor.color_grade", [job_id]).get(timeout=GRADE_WAIT_SECONDS, interval=0.05)
    except CeleryTimeout:
        raise ApiError(503, "The grade is still rendering (the render queue is busy); see GET /api/job/"
                            f"{job_id}", job_id=job_id) from None
    if answer.get("error"):
        raise ApiError(int(answer.get("status", 409)), answer["error"])
    with session_scope() as session:
        graded = session.get(EditorSegment, answer["segment_id"])
        asset = session.get(EditorAsset, graded.asset_id)
        return {"segment_id": graded.id, "graded_url": signed.file_url(asset.path, "video/mp4"),
                "segment": _segment_dict(graded, asset)}


# ---------------------------------------------------------------- AI

def generate(key_id: str, data: dict) -> tuple[dict, int]:
    settings = load_settings()
    start, end = data["start_ts"], data["end_ts"]
    if not start < end:
        raise ApiError(400, "start_ts must be before end_ts")
    with session_scope() as session:
        project = _project(session, key_id, data["project_id"])
        timeline = _timeline(session, project.id)
        segment, asset, source_start = _locate(timeline, start)
        offset = next(t for s, _, t in timeline if s.id == segment.id)
        if end > offset + (segment.end_ts - segment.start_ts) + 1e-6:
            raise ApiError(400, "start_ts and end_ts must lie within one segment of the timeline (split first, or "
                                "generate once per segment)")
        source_end = segment.start_ts + (end - offset)
        job = EditorJob(project_id=project.id, kind="generate", params={
            "segment_id": segment.id, "asset_id": asset.id, "source_start": source_start, "source_end": source_end,
            "prompt": data["prompt"], "bounding_box": data["bounding_box"], "provider": settings.ai_provider,
            "timeline_start": start, "timeline_end": end})
        session.add(job)
        session.flush()
        operation = EditorAiOperation(key_id=key_id, project_id=project.id, kind="generate",
                                      provider=settings.ai_provider, status="pending", subject_id=job.id,
                                      detail=data["prompt"][:500])
        session.add(operation)
        session.flush()
        job_id = job.id
    _send("sightline.editor.generate", [job_id])
    return {"job_id": job_id, "status": "pending"}, 202


def _variant_dict(variant: EditorVariant, asset: EditorAsset | None) -> dict:
    return {"id": variant.id, "label": variant.label, "accepted": variant.accepted,
            "url": signed.file_url(asset.path, "video/mp4") if asset is not None else None,
            "preview_url": signed.file_url(variant.preview_path, "image/jpeg") if variant.preview_path else None}


def get_job(key_id: str, job_id: str) -> dict:
    with session_scope() as session:
        job = _owned(session, key_id, EditorJob, job_id, "job")
        variants = session.scalars(select(EditorVariant).where(EditorVariant.job_id == job.id)
                                   .order_by(EditorVariant.created_at, EditorVariant.label))
        return {"id": job.id, "project_id": job.project_id, "kind": job.kind, "status": job.status,
                "error": job.error, "provider": (job.params or {}).get("provider"),
                "variants": [_variant_dict(v, session.get(EditorAsset, v.asset_id)) for v in variants]}


def accept_variant(key_id: str, variant_id: str) -> dict:
    with session_scope() as session:
        variant = _owned(session, key_id, EditorVariant, variant_id, "variant")
        segment = session.get(EditorSegment, variant.segment_id)
        if variant.accepted:
            raise ApiError(409, "This variant is already on the timeline")
        if segment is None or not segment.active or not (
                segment.start_ts - 1e-6 <= variant.start_ts < variant.end_ts <= segment.end_ts + 1e-6):
            raise ApiError(409, "The segment this variant replaces has changed since it was generated; generate again")
        asset = session.get(EditorAsset, variant.asset_id)
        frame = _frame(session, segment)
        common = {"project_id": segment.project_id, "active": True, "parent_id": segment.id}
        pieces = []
        if variant.start_ts - segment.start_ts >= frame / 2:
            pieces.append(EditorSegment(asset_id=segment.asset_id, start_ts=segment.start_ts, end_ts=variant.start_ts,
                                        source=segment.source, variant_id=segment.variant_id, grade=segment.grade,
                                        **common))
        placed = EditorSegment(asset_id=asset.id, start_ts=0.0, end_ts=asset.duration, source="variant",
                               variant_id=variant.id, **common)
        pieces.append(placed)
        if segment.end_ts - variant.end_ts >= frame / 2:
            pieces.append(EditorSegment(asset_id=segment.asset_id, start_ts=variant.end_ts, end_ts=segment.end_ts,
                                        source=segment.source, variant_id=segment.variant_id, grade=segment.grade,
                                        **common))
        replace_segment(session, segment, pieces)
        variant.accepted = True
        return {"variant_id": variant.id, "accepted": True, "segment": _segment_dict(placed, asset)}


def score_variant(key_id: str, variant_id: str, compare_to: str) -> dict:
    with session_scope() as session:
        variant = _owned(session, key_id, EditorVariant, variant_id, "variant")
        job = session.get(EditorJob, variant.job_id)
        operation = EditorAiOperation(key_id=key_id, project_id=variant.project_id, kind="score",
                                      provider="ffmpeg metrics" if compare_to == "original" else "visual model",
                                      status="running", subject_id=variant.id, detail=f"compare_to={compare_to}")
        session.add(operation)
        session.flush()
        operation_id = operation.id
        prompt = (job.params or {}).get("prompt", "")
    started = time.monotonic()
    try:
        answer = _send("sightline.editor.score", [variant_id, compare_to, prompt]).get(
            timeout=SCORE_WAIT_SECONDS, interval=0.05)
    except CeleryTimeout:
        _close_operation(operation_id, "failed", started, "no worker answered in time")
        raise ApiError(503, "No worker answered in time; is a `sightline worker` running?") from None
    if answer.get("error"):
        _close_operation(operation_id, "failed", started, answer["error"])
        raise ApiError(int(answer.get("status", 409)), answer["error"])
    _close_operation(operation_id, "completed", started, answer["score"].get("overall_rating", ""))
    return {"variant_id": variant_id, "compare_to": compare_to, "score": answer["score"]}


def _close_operation(operation_id: str, status: str, started: float, detail: str) -> None:
    with session_scope() as session:
        operation = session.get(EditorAiOperation, operation_id)
        operation.status, operation.finished_at = status, datetime.now(UTC)
        operation.duration_ms = round((time.monotonic() - started) * 1000, 1)
        operation.detail = f"{operation.detail}: {detail}"[:2000]


# ---------------------------------------------------------------- export

def start_export(key_id: str, data: dict) -> tuple[dict, int]:
    with session_scope() as session:
        project = _project(session, key_id, data["project_id"])
        timeline = _timeline(session, project.id)
        if not timeline:
            raise ApiError(400, "The timeline is empty: nothing to export")
        pending = [a.id for _, a, _ in timeline if a.status != "ready"]
        if pending:
            raise ApiError(409, f"Assets still arriving: {', '.join(pending)}; export when they are ready")
        export = EditorExport(project_id=project.id, format=data.get("format", "mp4"))
        session.add(export)
        session.flush()
        export_id = export.id
    _send("sightline.editor.export", [export_id])
    return {"export_job_id": export_id, "status": "pending",
            "message": "Export job created — check status with get_export_status "
                       f"(GET /api/export/{export_id})"}, 202


def export_status(key_id: str, export_id: str) -> dict:
    with session_scope() as session:
        export = _owned(session, key_id, EditorExport, export_id, "export")
        done = export.status == "completed" and export.path and os.path.isfile(export.path)
        details = export.details or {}
        return {"export_job_id": export.id, "status": export.status, "progress": round(export.progress, 3),
                "export_url": Path(export.path).as_uri() if done else None,
                "download_url": signed.file_url(export.path, "video/mp4") if done else None,
                "error": export.error, "duration": details.get("duration"), "parts": details.get("parts", [])}
