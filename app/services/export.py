"""Exports run in the API process: ffmpeg is a subprocess (green under eventlet), XML and
transcript writers are quick. Paths are checked against the allowed roots first."""

from __future__ import annotations

from app.errors import ApiError
from app.paths import check_export, check_media
from app.socket import emit_progress
from workers.messages import ProgressEvent


def clips(data: dict) -> dict:
    from workers.exports.clips import export_clips

    check_export(data["output_dir"], "output_dir")
    for clip in data["clips"]:
        check_media(clip["source_path"], "clips.source_path")
    progress = None
    if data.get("task_id"):
        room = data["task_id"]

        def progress(fraction: float, label: str) -> None:
            emit_progress(ProgressEvent(room, "export", round(100 * fraction, 1), label, done=fraction >= 1.0))

    try:
        return export_clips(data["clips"], data["output_dir"], copy_codec=data["copy_codec"], progress=progress)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


def premiere(data: dict) -> dict:
    from workers.exports.premiere import export_premiere_xml

    check_export(data["output_path"], "output_path")
    for clip in data["clips"]:
        check_media(clip["source_path"], "clips.source_path")
    try:
        return export_premiere_xml(data["clips"], data["output_path"], data["sequence_name"], data["timebase"])
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    except OSError as exc:
        raise ApiError(400, f"output_path cannot be written: {exc.strerror or exc}") from None


def transcript(data: dict) -> dict:
    from workers.exports.transcript import default_output_path, export_transcript

    fmt = data["format"].lower()
    output_path = data.get("output_path") or default_output_path(data["display_name"], fmt)
    check_export(output_path, "output_path")
    try:
        return export_transcript(data["segments"], fmt, output_path, display_name=data["display_name"],
                                 include_silences=data["include_silences"], channels=data.get("channels"))
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    except OSError as exc:
        raise ApiError(400, f"output_path cannot be written: {exc.strerror or exc}") from None
