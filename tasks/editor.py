"""The editor's long work, on the ``analysis`` queue: URL ingest, grade renders, AI generation
and exports; variant scores on the ``query`` queue (its worker holds the visual model).

Each task reads its job from the SQL database by id (the API wrote it), runs the engine in
``workers.editor`` on plain values, and writes the outcome back in one transaction. A failure
a user can act on becomes the job's ``error``; nothing is retried behind their back.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from tasks.celery_app import celery_app

log = logging.getLogger(__name__)


def _db():
    from workers.db import migrate, session_scope

    migrate()
    return session_scope


def _now() -> datetime:
    return datetime.now(UTC)


def _start(session, model, row_id: str):
    """The job (or export) row a task was queued for, marked running."""
    row = session.get(model, row_id)
    row.status = "running"
    return row


def _project_dir(project_id: str) -> Path:
    from workers.editor import project_dir
    from workers.settings import load_settings

    return project_dir(load_settings().data_dir, project_id)


@celery_app.task(name="sightline.editor.proxy")
def proxy(project_id: str, asset_id: str, path: str) -> dict:
    """Make an asset's preview proxy (previews use the source until it exists)."""
    from workers.editor import proxy_path
    from workers.editor.render import inspect, make_proxy
    from workers.settings import load_settings

    settings = load_settings()
    target = proxy_path(settings.data_dir, project_id, asset_id)
    if target.exists():
        return {"proxy": str(target)}
    try:
        make_proxy(inspect(path), target, settings.preview_max_side)
    except Exception as exc:  # noqa: BLE001 - previews fall back to the source; nothing else depends on it
        log.warning("no proxy for asset %s: %s", asset_id, exc)
        return {"error": str(exc)}
    return {"proxy": str(target)}


def _asset_from(info, **fields):
    from workers.db.editor import EditorAsset

    return EditorAsset(status="ready", duration=info.duration, fps=info.fps, width=info.width, height=info.height,
                       has_audio=info.has_audio, path=info.path, size=os.path.getsize(info.path), **fields)


@celery_app.task(name="sightline.editor.ingest")
def ingest(job_id: str) -> dict:
    """Download an http(s) ``video_url`` into the data folder and put it on the timeline."""
    from workers.db.editor import EditorAsset, EditorJob, EditorSegment, active_segments
    from workers.editor.render import inspect
    from workers.media.probe import MediaError
    from workers.settings import load_settings

    session_scope = _db()
    with session_scope() as session:
        job = _start(session, EditorJob, job_id)
        asset = session.get(EditorAsset, job.params["asset_id"])
        url, project_id, asset_id, name = asset.source_url, asset.project_id, asset.id, asset.file_name
    limit = load_settings().upload_max_bytes
    suffix = Path(name).suffix.lower() if len(Path(name).suffix) <= 9 else ""
    target = _project_dir(project_id) / "assets" / f"{asset_id}{suffix or '.bin'}"
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.part")
    error = None
    try:
        with urllib.request.urlopen(url, timeout=60) as reply, open(temp, "wb") as handle:
            copied = 0
            while chunk := reply.read(1024 * 1024):
                copied += len(chunk)
                if copied > limit:
                    raise ValueError(f"larger than the upload limit ({limit} bytes, SIGHTLINE_UPLOAD_MAX_BYTES)")
                handle.write(chunk)
        info = inspect(temp)
        os.replace(temp, target)
    except (OSError, ValueError, MediaError) as exc:
        error = f"could not ingest {url}: {exc}"
    except Exception as exc:  # noqa: BLE001 - a bug must fail the ingest, not leave it pending
        log.exception("ingest job %s failed", job_id)
        error = f"could not ingest {url} ({exc.__class__.__name__}: {exc})"
    finally:
        temp.unlink(missing_ok=True)
    with session_scope() as session:
        job = session.get(EditorJob, job_id)
        asset = session.get(EditorAsset, asset_id)
        job.finished_at = _now()
        if error:
            job.status, job.error, asset.status, asset.error = "failed", error, "failed", error
            return {"error": error}
        asset.status, asset.path, asset.size = "ready", str(target), target.stat().st_size
        asset.duration, asset.fps, asset.width, asset.height = info.duration, info.fps, info.width, info.height
        asset.has_audio = info.has_audio
        session.add(EditorSegment(project_id=project_id, asset_id=asset_id, start_ts=0.0, end_ts=info.duration,
                                  source="original", order_index=len(active_segments(session, project_id))))
        job.status = "completed"
    proxy.delay(project_id, asset_id, str(target))
    return {"asset_id": asset_id}


@celery_app.task(name="sightline.editor.color_grade")
def color_grade(job_id: str) -> dict:
    """Render a segment with a grade and put the result on the timeline in its place."""
    from workers.db.editor import EditorAsset, EditorJob, EditorSegment, replace_segment
    from workers.editor.grade import Grade
    from workers.editor.render import inspect, render_range
    from workers.exports.ffmpeg import FFmpegError

    session_scope = _db()
    with session_scope() as session:
        job = _start(session, EditorJob, job_id)
        segment = session.get(EditorSegment, job.params["segment_id"])
        source = session.get(EditorAsset, segment.asset_id)
        grade = Grade.from_dict(job.params["grade"])
        project_id, start, end, path = segment.project_id, segment.start_ts, segment.end_ts, source.path
        base_grade = segment.grade
    target = _project_dir(project_id) / "renders" / f"graded-{job_id}.mp4"
    try:
        info = inspect(render_range(inspect(path), start, end, target, grade.filters()))
    except Exception as exc:  # noqa: BLE001 - ffmpeg, disk or a bug: the job fails with the reason
        if not isinstance(exc, (FFmpegError, OSError, ValueError)):
            log.exception("grade job %s failed", job_id)
        with session_scope() as session:
            job = session.get(EditorJob, job_id)
            job.status, job.error, job.finished_at = "failed", f"grade render failed: {exc}", _now()
        return {"error": f"grade render failed: {exc}", "status": 409}
    with session_scope() as session:
        job = session.get(EditorJob, job_id)
        segment = session.get(EditorSegment, job.params["segment_id"])
        if not segment.active:
            target.unlink(missing_ok=True)
            job.status, job.error, job.finished_at = "failed", "the segment changed while it was graded", _now()
            return {"error": job.error, "status": 409}
        asset = _asset_from(info, project_id=project_id, origin="graded", file_name=target.name)
        session.add(asset)
        session.flush()
        graded = EditorSegment(project_id=project_id, asset_id=asset.id, start_ts=0.0, end_ts=info.duration,
                               source="graded", variant_id=segment.variant_id, parent_id=segment.id,
                               grade={"applied": grade.as_dict(), "on": base_grade}, active=True)
        replace_segment(session, segment, [graded])
        job.status, job.finished_at = "completed", _now()
        return {"segment_id": graded.id}


@celery_app.task(name="sightline.editor.generate")
def generate(job_id: str) -> dict:
    """Ask the configured AI provider for variants of a range; store each as an asset and a variant."""
    from workers.db.editor import EditorAiOperation, EditorAsset, EditorJob, EditorVariant
    from workers.editor.effects import Box
    from workers.editor.providers import GenerateRequest, ProviderError, get_provider
    from workers.editor.render import extract_frame, inspect
    from workers.exports.ffmpeg import FFmpegError
    from workers.media.probe import MediaError
    from workers.settings import load_settings

    session_scope = _db()
    started = time.monotonic()
    with session_scope() as session:
        job = _start(session, EditorJob, job_id)
        params = dict(job.params)
        project_id = job.project_id
        path = session.get(EditorAsset, params["asset_id"]).path
        operation = session.query(EditorAiOperation).filter_by(subject_id=job_id, kind="generate").first()
        if operation is not None:
            operation.status = "running"
    workdir = _project_dir(project_id) / "variants" / job_id
    workdir.mkdir(parents=True, exist_ok=True)
    error, made = None, []
    try:
        provider = get_provider()
        box = params["bounding_box"]
        request = GenerateRequest(inspect(path), params["source_start"], params["source_end"], params["prompt"],
                                  Box(box["x"], box["y"], box["width"], box["height"]))
        for item in provider.generate(request, workdir):
            info = inspect(item.path)
            preview = item.path.with_suffix(".jpg")
            extract_frame(info, 0.0, preview, max_side=load_settings().preview_max_side)
            made.append((item.label, info, preview))
    except (ProviderError, FFmpegError, MediaError, OSError, ValueError) as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a bug must fail the job, not leave it running
        log.exception("generate job %s failed", job_id)
        error = f"generation failed ({exc.__class__.__name__}: {exc})"
    with session_scope() as session:
        job = session.get(EditorJob, job_id)
        job.finished_at = _now()
        operation = session.query(EditorAiOperation).filter_by(subject_id=job_id, kind="generate").first()
        if error:
            job.status, job.error = "failed", error
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            for label, info, preview in made:
                asset = _asset_from(info, project_id=project_id, origin="variant", file_name=Path(info.path).name)
                session.add(asset)
                session.flush()
                session.add(EditorVariant(job_id=job_id, project_id=project_id, asset_id=asset.id,
                                          segment_id=params["segment_id"], start_ts=params["source_start"],
                                          end_ts=params["source_end"], label=label, preview_path=str(preview)))
            job.status = "completed"
        if operation is not None:
            operation.status = job.status
            operation.finished_at = _now()
            operation.duration_ms = round((time.monotonic() - started) * 1000, 1)
            operation.detail = f"{operation.detail}: {error or f'{len(made)} variants'}"[:2000]
    return {"error": error} if error else {"variants": len(made)}


@celery_app.task(name="sightline.editor.export")
def export(export_id: str) -> dict:
    """Render the timeline to an mp4 (stream-copying what needs no decode); progress to DB and Socket.IO."""
    from tasks.progress import ProgressReporter
    from workers.db.editor import EditorAsset, EditorExport, active_segments
    from workers.editor.render import ExportPart, export_timeline, inspect
    from workers.exports.ffmpeg import FFmpegError
    from workers.media.probe import MediaError
    from workers.messages import ProgressEvent

    session_scope = _db()
    with session_scope() as session:
        project_id = _start(session, EditorExport, export_id).project_id
        ranges = [(session.get(EditorAsset, s.asset_id).path, s.start_ts, s.end_ts)
                  for s in active_segments(session, project_id)]
    reporter = ProgressReporter(export_id, min_interval=0.5)
    last = [0.0]

    def progress(fraction: float) -> None:
        reporter.emit(ProgressEvent(export_id, "export", round(fraction * 100, 1)))
        if fraction - last[0] >= 0.05:
            last[0] = fraction
            with session_scope() as session:
                session.get(EditorExport, export_id).progress = fraction

    target = _project_dir(project_id) / "exports" / f"{export_id}.mp4"
    workdir = _project_dir(project_id) / "exports" / f".work-{export_id}"
    try:
        sources = {path: inspect(path) for path, _, _ in ranges}
        report = export_timeline([ExportPart(sources[p], a, b) for p, a, b in ranges], target, workdir, progress)
        error = None
    except (FFmpegError, MediaError, OSError, ValueError) as exc:
        error = f"export failed: {exc}"
    except Exception as exc:  # noqa: BLE001 - a bug must fail the export, not leave it running
        log.exception("export %s failed", export_id)
        error = f"export failed ({exc.__class__.__name__}: {exc})"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    with session_scope() as session:
        row = session.get(EditorExport, export_id)
        row.finished_at = _now()
        if error:
            row.status, row.error = "failed", error
        else:
            row.status, row.progress, row.path = "completed", 1.0, str(target)
            row.details = {"duration": report.duration, "parts": report.parts, "copied": report.copied}
    reporter.emit(ProgressEvent.task_done(export_id, "failed" if error else "completed", error, kind="export"),
                  force=True)
    return {"error": error} if error else {"path": str(target)}


def _prompt_similarity(variant_path: str, prompt: str) -> tuple[float | None, str]:
    """Mean cosine similarity of the prompt and up to 8 frames under the active visual model."""
    import av
    import numpy as np

    from workers.active_models import active_model

    key = active_model("visual")
    try:
        from workers.engines.visual import load_visual_engine

        engine = load_visual_engine(key)
    except Exception as exc:  # noqa: BLE001 - any load failure means "unavailable", with the reason
        return None, (f"unavailable: the visual model {key!r} is not loaded here ({exc}); import or pull it "
                      "(`sightline models pull KEY`) to score against the prompt")
    with av.open(variant_path) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    picked = [frames[i] for i in np.linspace(0, len(frames) - 1, num=min(8, len(frames))).round().astype(int)]
    images = np.asarray(engine.embed_images(picked), dtype=np.float32)
    text = np.asarray(engine.embed_texts([prompt]), dtype=np.float32)[0]
    images /= np.linalg.norm(images, axis=1, keepdims=True) + 1e-12
    text /= np.linalg.norm(text) + 1e-12
    value = float((images @ text).mean())
    return value, f"mean cosine similarity of the prompt and {len(picked)} frames under visual model {key!r}"


@celery_app.task(name="sightline.editor.score")
def score(variant_id: str, compare_to: str, prompt: str) -> dict:
    try:
        return _score(variant_id, compare_to, prompt)
    except Exception as exc:  # noqa: BLE001 - the API answers with the reason, never hangs
        log.exception("scoring variant %s failed", variant_id)
        return {"error": f"scoring failed ({exc.__class__.__name__}: {exc})", "status": 500}


def _score(variant_id: str, compare_to: str, prompt: str) -> dict:
    from workers.db.editor import EditorAsset, EditorSegment, EditorVariant
    from workers.editor.render import inspect
    from workers.editor.score import full_reference
    from workers.exports.ffmpeg import FFmpegError

    session_scope = _db()
    with session_scope() as session:
        variant = session.get(EditorVariant, variant_id)
        variant_path = session.get(EditorAsset, variant.asset_id).path
        segment = session.get(EditorSegment, variant.segment_id)
        original_path = session.get(EditorAsset, segment.asset_id).path
        start, end = variant.start_ts, variant.end_ts
    if compare_to == "original":
        try:
            metrics = full_reference(inspect(variant_path), inspect(original_path), start, end)
        except (FFmpegError, OSError, ValueError) as exc:
            return {"error": f"scoring failed: {exc}", "status": 409}
        ssim, psnr, vmaf = metrics["ssim"], metrics["psnr"], metrics["vmaf"]
        psnr_text = f"PSNR {psnr:.2f} dB" if psnr is not None else "PSNR infinite (identical)"
        quality = f"VMAF {vmaf:.2f} / 100" if vmaf is not None else psnr_text
        how = (f"Full-reference metrics over {metrics['frames']} frames against the original range "
               f"[{start:g}, {end:g}) s: " + ("VMAF (libvmaf, built-in model vmaf_v0.6.1) as visual_quality, "
                                              if vmaf is not None else "no libvmaf in this ffmpeg, so PSNR as "
                                              "visual_quality, ") + "SSIM (mean of All) as fidelity; "
               f"{psnr_text}. The variant is meant to differ inside its box, so fidelity measures how much else "
               "was kept.")
        return {"score": {"overall_rating": quality, "details": how, "visual_quality": quality,
                          "fidelity": f"SSIM {ssim:.4f}" if ssim is not None else "SSIM unavailable",
                          "fidelity_to_prompt": "not measured: compare_to=original compares with the source range; "
                                                "ask compare_to=prompt",
                          "metrics": {**metrics, "method": "vmaf+ssim+psnr" if vmaf is not None else "ssim+psnr"}}}
    value, how = _prompt_similarity(variant_path, prompt)
    text = f"{value:.4f} cosine similarity" if value is not None else how
    return {"score": {"overall_rating": text, "details": how, "fidelity_to_prompt": text,
                      "visual_quality": "not measured: compare_to=prompt; ask compare_to=original",
                      "metrics": {"prompt_similarity": value}}}
