"""Cutting clips out of source media with ffmpeg (``POST /export/clips``).

Each clip is written to a hidden temporary name in its target folder and only then given
its final name, so a killed export never leaves a half-written file under a real name, and
an existing file is never overwritten (a `` (1)``-style suffix is added instead). One bad
clip (missing source, corrupt file, end before start) fails alone.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable
from pathlib import Path, PurePath

from workers.exports.ffmpeg import FFmpegError, run_ffmpeg
from workers.media.probe import MediaError, MediaInfo, probe

# (overall fraction 0..1, source path of the clip being cut)
ExportProgress = Callable[[float, str], None]

# Stream copy reads and writes at disk speed; re-encoding on a small CPU can run well below
# real time, so its limit grows with the clip.
_COPY_TIMEOUT = (300.0, 2.0)  # base seconds, seconds per clip second
_ENCODE_TIMEOUT = (300.0, 30.0)

# Containers that take H.264 + AAC as they are; other video sources re-encode into .mp4.
_H264_CONTAINERS = {".mp4", ".mov", ".m4v", ".mkv"}
_FASTSTART = {".mp4", ".mov", ".m4v", ".m4a"}
_AUDIO_ENCODERS = {
    ".wav": ["-c:a", "pcm_s16le"],
    ".flac": ["-c:a", "flac"],
    ".mp3": ["-c:a", "libmp3lame", "-q:a", "2"],
    ".m4a": ["-c:a", "aac", "-b:a", "192k"],
    ".ogg": ["-c:a", "libvorbis", "-q:a", "6"],
    ".opus": ["-c:a", "libopus", "-b:a", "160k"],
}
_MAX_NAME_BYTES = 200  # leaves room for the " (n)" suffix and the temp prefix under 255


def export_clips(
    clips: list[dict],
    output_dir: str,
    copy_codec: bool = True,
    progress: ExportProgress | None = None,
) -> dict:
    """Cut every clip and return the ``/export/clips`` response body.

    ``clips``: dicts with ``source_path``, ``start_seconds``, ``end_seconds`` and an optional
    ``subfolder`` (relative, inside ``output_dir``). ``copy_codec`` stream-copies (fast, but
    cuts land on keyframes); ``False`` re-encodes (H.264/AAC) so the first frame is the
    requested one. Raises ValueError only for a bad ``output_dir`` or ``clips`` list; a bad
    clip becomes a ``{"success": false, ...}`` entry. ``progress`` may raise to cancel.
    """
    if not isinstance(clips, list) or not clips:
        raise ValueError("clips must be a non-empty list")
    root = prepare_output_dir(output_dir)
    results: list[dict] = []
    total = len(clips)
    for index, clip in enumerate(clips):
        source = clip.get("source_path") if isinstance(clip, dict) else None
        clip_progress = None
        if progress is not None:
            label = str(source)

            def clip_progress(fraction: float, _index=index, _label=label) -> None:
                progress((_index + fraction) / total, _label)

            clip_progress(0.0)
        try:
            output = export_clip(clip, root, copy_codec=copy_codec, progress=clip_progress)
        except (ValueError, FFmpegError, OSError) as exc:
            results.append({"success": False, "error": str(exc), "source_path": source})
        else:
            results.append({"success": True, "output_path": output})
    if progress is not None:
        progress(1.0, str(source))
    done = sum(1 for r in results if r["success"])
    return {"results": results, "summary": f"{done}/{total} clips exported successfully"}


def prepare_output_dir(output_dir: str | os.PathLike) -> Path:
    """Resolve and create ``output_dir``; ValueError when it is relative or not a folder."""
    if not output_dir or not isinstance(output_dir, str | os.PathLike):
        raise ValueError("output_dir is required")
    path = Path(output_dir).expanduser()
    if not path.is_absolute():
        raise ValueError(f"output_dir must be an absolute path, got {os.fspath(output_dir)!r}")
    path = path.resolve()
    if path.exists() and not path.is_dir():
        raise ValueError(f"output_dir is not a folder: {path}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create output_dir {path}: {exc.strerror or exc}") from exc
    return path


def export_clip(
    clip: dict,
    output_root: Path,
    copy_codec: bool = True,
    progress: Callable[[float], None] | None = None,
) -> str:
    """Cut one clip into ``output_root`` (already resolved); returns the written path."""
    source, start, end, subfolder = parse_clip(clip)
    info = probe_source(source)
    if info.kind == "image":
        raise ValueError(f"{source} is a still image; clips can only be cut from video or audio")
    if info.duration and start >= info.duration:
        raise ValueError(
            f"start_seconds ({_fmt(start)}) is at or past the end of {source} ({_fmt(info.duration)} s)"
        )
    target_dir = _target_dir(output_root, subfolder)
    extension = _output_extension(Path(source).suffix, info, copy_codec)
    final = target_dir / _clip_name(Path(source).stem, start, end, extension)
    length = (min(end, info.duration) if info.duration else end) - start
    if copy_codec:
        args = _copy_args(source, start, end)
        timeout = _COPY_TIMEOUT[0] + _COPY_TIMEOUT[1] * length
    else:
        args = _encode_args(source, start, end, info, extension)
        timeout = _ENCODE_TIMEOUT[0] + _ENCODE_TIMEOUT[1] * length

    target_dir.mkdir(parents=True, exist_ok=True)
    # The extension stays last so ffmpeg still picks the right muxer for the temp file.
    temp = target_dir / f".{final.stem}.{secrets.token_hex(4)}.part{extension}"
    try:
        run_ffmpeg([*args, str(temp)], timeout=timeout, progress=progress, duration=length)
        return str(_claim_name(temp, final))
    finally:
        if temp.exists():
            temp.unlink()


def probe_source(source: str) -> MediaInfo:
    """Probe a clip's source; ValueError naming the file when it is missing or unreadable."""
    try:
        return probe(source)
    except MediaError as exc:
        raise ValueError(f"cannot read {source}: {exc}") from None


# --- clip fields ---------------------------------------------------------------------------


def parse_clip(clip) -> tuple[str, float, float, str | None]:
    """Validate one clip dict: (absolute source path, start, end, subfolder or None)."""
    if not isinstance(clip, dict):
        raise ValueError("each clip must be an object with source_path, start_seconds and end_seconds")
    source = clip.get("source_path")
    if not isinstance(source, str) or not source.strip():
        raise ValueError("clip is missing source_path")
    path = Path(source).expanduser()
    if not path.is_absolute():
        raise ValueError(f"source_path must be an absolute path, got {source!r}")
    start = _seconds(clip, "start_seconds")
    end = _seconds(clip, "end_seconds")
    if start < 0:
        raise ValueError(f"start_seconds must not be negative, got {_fmt(start)}")
    if end <= start:
        raise ValueError(f"end_seconds ({_fmt(end)}) must be greater than start_seconds ({_fmt(start)})")
    subfolder = clip.get("subfolder")
    if subfolder is not None and not isinstance(subfolder, str):
        raise ValueError("subfolder must be a string")
    return os.path.abspath(path), start, end, subfolder or None


def _seconds(clip: dict, key: str) -> float:
    value = clip.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number of seconds, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, got {value!r}")
    return float(value)


def _target_dir(root: Path, subfolder: str | None) -> Path:
    if not subfolder:
        return root
    relative = PurePath(subfolder)
    if relative.is_absolute() or ".." in relative.parts or subfolder.startswith(("/", "\\")):
        raise ValueError(f"subfolder must be a relative folder inside output_dir, got {subfolder!r}")
    target = (root / relative).resolve()
    # A symlinked subfolder could still point elsewhere; the resolved path decides.
    if not target.is_relative_to(root):
        raise ValueError(f"subfolder {subfolder!r} leads outside output_dir")
    return target


# --- names ---------------------------------------------------------------------------------


def _fmt(seconds: float) -> str:
    """10.0 -> "10", 10.5 -> "10.5", 1/3 -> "0.333" (millisecond precision, no trailing zeros)."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _clip_name(stem: str, start: float, end: float, extension: str) -> str:
    suffix = f"_{_fmt(start)}-{_fmt(end)}{extension}"
    budget = _MAX_NAME_BYTES - len(suffix.encode("utf-8", "surrogateescape"))
    encoded = stem.encode("utf-8", "surrogateescape")
    if len(encoded) > budget:
        stem = encoded[:budget].decode("utf-8", "ignore")
    return f"{stem or 'clip'}{suffix}"


def _output_extension(source_ext: str, info: MediaInfo, copy_codec: bool) -> str:
    ext = source_ext.lower()
    if copy_codec:
        # Matroska takes nearly any codec, so it is the safe home for an extensionless source.
        return source_ext if ext else ".mkv"
    if info.has_video:
        return source_ext if ext in _H264_CONTAINERS else ".mp4"
    if ext == ".aac":
        return ".m4a"
    return source_ext if ext in _AUDIO_ENCODERS else ".m4a"


def _claim_name(temp: Path, final: Path) -> Path:
    """Give ``temp`` the name ``final``, or ``final (n)`` when taken; never overwrites."""
    for n in range(10_000):
        candidate = final if n == 0 else final.with_name(f"{final.stem} ({n}){final.suffix}")
        try:
            # link() fails when the name exists, so claiming a name cannot race another export.
            os.link(temp, candidate)
        except FileExistsError:
            continue
        except OSError:
            # A file system without hard links (some SMB/exFAT mounts): check, then rename.
            if os.path.lexists(candidate):
                continue
            os.replace(temp, candidate)
            return candidate
        os.unlink(temp)
        return candidate
    raise ValueError(f"too many existing files named like {final}")


# --- ffmpeg arguments ----------------------------------------------------------------------


def _copy_args(source: str, start: float, end: float) -> list[str]:
    # Input seeking with stream copy starts at the keyframe at or before `start`; MP4/MOV get
    # an edit list so players that honour it still begin at `start`.
    return [
        "-ss", f"{start:.6f}", "-i", source, "-t", f"{end - start:.6f}",
        "-map", "0:V?", "-map", "0:a?", "-c", "copy", "-map_metadata", "0",
    ]


def _encode_args(source: str, start: float, end: float, info: MediaInfo, extension: str) -> list[str]:
    ext = extension.lower()
    if not info.has_video:
        audio = _AUDIO_ENCODERS.get(ext, _AUDIO_ENCODERS[".m4a"])
        args = ["-ss", f"{start:.6f}", "-i", source, "-t", f"{end - start:.6f}", "-map", "0:a", *audio]
    else:
        args = _video_encode_args(source, start, end, info)
    args += ["-map_metadata", "0"]
    if ext in _FASTSTART:
        args += ["-movflags", "+faststart"]
    return args


def _video_encode_args(source: str, start: float, end: float, info: MediaInfo) -> list[str]:
    frames: list[str] = []
    seek, length = start, end - start
    fps = info.frame_rate
    if fps and fps > 0:
        # Snap to the frame showing at `start` and the last frame starting before `end`, so
        # 1.0-2.0 s at 10 fps is exactly frames 10..19.
        first = math.floor(start * fps + 1e-6)
        stop = max(math.ceil(end * fps - 1e-6), first + 1)
        seek, length = float(first / fps), float((stop - first) / fps)
        frames = ["-frames:v", str(stop - first)]
        # ffmpeg drops decoded frames stamped before the seek point; a hair of slack keeps the
        # wanted frame when its stamp rounds a microsecond above first/fps.
        seek = max(seek - min(0.001, 0.1 / float(fps)), 0.0)
    args = ["-ss", f"{seek:.6f}", "-i", source, "-t", f"{length:.6f}", *frames,
            "-map", "0:V:0", "-map", "0:a?",
            "-c:v", "libx264", "-preset", "fast", "-crf", "18", "-pix_fmt", "yuv420p"]
    if (info.width or 0) % 2 or (info.height or 0) % 2:
        # 4:2:0 needs even dimensions.
        args += ["-vf", "crop=trunc(iw/2)*2:trunc(ih/2)*2"]
    return args + ["-c:a", "aac", "-b:a", "192k"]
