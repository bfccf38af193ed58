"""Frame-exact previews and renders with the ffmpeg binary (``workers.exports.ffmpeg``).

Times are seconds in a source file. The frame shown at time ``t`` is frame ``floor(t·fps)``;
ffmpeg's input ``-ss X`` keeps the first frame with a timestamp ≥ X, so every seek goes to a
hair before that frame's own timestamp (``seek_time``) — the frame asked for is the first one
out, never its neighbour. Outputs go to a temporary name beside the target and are renamed
into place, so a killed render never leaves a torn file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av

from workers.exports.ffmpeg import FFmpegError, run_ffmpeg
from workers.media.probe import MediaError, probe
from workers.store import atomic_output

RENDER_TIMEOUT = 3600.0
ENCODE_VIDEO = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p"]


@dataclass(frozen=True)
class SourceInfo:
    """What a render needs to know about a video file."""

    path: str
    duration: float
    fps: float
    width: int
    height: int
    has_audio: bool
    video_codec: str = ""
    pix_fmt: str = ""
    audio_codec: str = ""
    sample_rate: int = 0
    channels: int = 0

    @property
    def frame_count(self) -> int:
        return max(1, round(self.duration * self.fps))


def inspect(path: str | os.PathLike) -> SourceInfo:
    """Probe a file for editing; MediaError unless it is a video with a known frame rate."""
    info = probe(path)
    if info.kind != "video":
        raise MediaError(f"not a video file (it is {info.kind})")
    if not info.fps or not info.duration:
        raise MediaError("the video has no usable frame rate or duration")
    pix_fmt = audio_codec = ""
    try:
        with av.open(os.fspath(path)) as container:
            pix_fmt = container.streams.video[0].codec_context.format.name or ""
            if container.streams.audio:
                audio_codec = container.streams.audio[0].codec_context.name or ""
    except (av.FFmpegError, AttributeError, IndexError):
        pass
    return SourceInfo(os.fspath(path), float(info.duration), float(info.fps), int(info.width), int(info.height),
                      bool(info.has_audio), info.video_codec or "", pix_fmt, audio_codec,
                      int(info.audio_sample_rate), int(info.audio_channels))


def frame_index(ts: float, fps: float) -> int:
    """The frame on screen at ``ts`` (a tiny tolerance keeps 0.3 at 10 fps on frame 3, not 2)."""
    return max(0, math.floor(ts * fps + 1e-6))


def seek_time(index: int, fps: float) -> float:
    return max(0.0, index / fps - min(0.001, 0.25 / fps))


def frames_between(start: float, end: float, fps: float) -> int:
    """Frames of ``[start, end)``: from the one on screen at ``start`` to the last one before the
    one on screen at ``end`` — so pieces cut at any times join without a lost or doubled frame."""
    return max(1, frame_index(end, fps) - frame_index(start, fps))


def scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height, 1))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def extract_frame(source: SourceInfo, ts: float, target: Path, filters: list[str] | None = None,
                  max_side: int = 1280, quality: int = 3) -> Path:
    """The frame on screen at ``ts`` (seconds in ``source``) as a JPEG, optionally graded."""
    index = min(frame_index(ts, source.fps), source.frame_count - 1)
    width, height = scaled_size(source.width, source.height, max_side)
    chain = ([] if (width, height) == (source.width, source.height) else [f"scale={width}:{height}"])
    chain += list(filters or [])
    args = ["-y", "-ss", f"{seek_time(index, source.fps):.6f}", "-i", source.path, "-map", "0:v:0",
            "-frames:v", "1", "-an", "-sn"]
    if chain:
        args += ["-vf", ",".join(chain)]
    with atomic_output(target, ".jpg") as temp:
        run_ffmpeg([*args, "-q:v", str(quality), "-f", "image2", "-c:v", "mjpeg", str(temp)], timeout=60)
        if temp.stat().st_size == 0:
            raise FFmpegError(f"no frame at {ts:.3f} s")
    return target


PROXY_GOP = 8


def make_proxy(source: SourceInfo, target: Path, max_side: int = 1280) -> Path:
    """A preview proxy: the source at preview size with a keyframe every ``PROXY_GOP`` frames and
    no B-frames, so any frame decodes from at most 8 small ones (a long-GOP 1080p source can need
    60 full-size decodes). Frame times are passed through: frame i is at the same time in both."""
    width, height = scaled_size(source.width, source.height, max_side)
    args = ["-y", "-i", source.path, "-map", "0:v:0", "-an", "-sn", "-vf", f"scale={width}:{height},format=yuv420p",
            "-fps_mode", "passthrough", "-c:v", "libx264", "-preset", "veryfast", "-crf", "16",
            "-g", str(PROXY_GOP), "-bf", "0", "-movflags", "+faststart", "-f", "mp4"]
    with atomic_output(target, ".mp4") as temp:
        run_ffmpeg([*args, str(temp)], timeout=RENDER_TIMEOUT)
    return target


def render_range(source: SourceInfo, start: float, end: float, target: Path, filters: list[str] | None = None,
                 progress: Callable[[float], None] | None = None) -> Path:
    """Re-encode ``[start, end)`` of ``source`` (H.264/AAC mp4, same size and rate) with ``filters``."""
    first = frame_index(start, source.fps)
    count = frames_between(start, end, source.fps)
    seconds = count / source.fps
    chain = list(filters or []) + ["format=yuv420p"]
    args = ["-y", "-ss", f"{seek_time(first, source.fps):.6f}", "-i", source.path, "-map", "0:v:0"]
    if source.has_audio:
        args += ["-map", "0:a:0", "-c:a", "aac", "-b:a", "192k"]
    args += ["-vf", ",".join(chain), "-frames:v", str(count), "-t", f"{seconds:.6f}",
             "-r", _rate(source.fps), *ENCODE_VIDEO, "-movflags", "+faststart", "-f", "mp4"]
    with atomic_output(target, ".mp4") as temp:
        run_ffmpeg([*args, str(temp)], timeout=RENDER_TIMEOUT, progress=progress, duration=seconds)
    return target


def _rate(fps: float) -> str:
    # 29.97 and friends as their exact NTSC fractions, so re-encoded parts keep the source's clock.
    for num, den in ((24000, 1001), (30000, 1001), (60000, 1001)):
        if abs(fps - num / den) < 1e-3:
            return f"{num}/{den}"
    return f"{fps:.6f}".rstrip("0").rstrip(".")


def keyframe_times(path: str) -> list[float]:
    """Times (seconds from the file's start, as ffmpeg's ``-ss`` counts) of the video keyframes."""
    times = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        origin = (container.start_time or 0) / av.time_base
        for packet in container.demux(stream):
            if packet.pts is not None and packet.is_keyframe:
                times.append(float(packet.pts * stream.time_base) - origin)
    return sorted(times)


@dataclass(frozen=True)
class ExportPart:
    source: SourceInfo
    start: float
    end: float


@dataclass
class ExportReport:
    path: str
    duration: float
    parts: list[dict] = field(default_factory=list)

    @property
    def copied(self) -> int:
        return sum(1 for p in self.parts if p["mode"] == "copy")


def _on_keyframe(ts: float, keyframes: list[float], fps: float) -> float | None:
    for key in keyframes:
        if abs(key - ts) < 0.5 / fps:
            return key
    return None


def plan_part(part: ExportPart, out: SourceInfo, keyframes: list[float]) -> list[tuple[str, float, float]]:
    """How to render ``part`` into ``out``: ``[(mode, start, end), ...]`` with mode copy or encode.

    A part from a file with the output's codec, size, pixel format and rate is cut on keyframes:
    the head up to its first keyframe and the tail after its last one are re-encoded, the whole
    GOPs between are stream-copied (no frame decoded). Anything else is re-encoded whole.
    """
    src = part.source
    whole = [("encode", part.start, part.end)]
    same = (src.video_codec == "h264" and (src.width, src.height) == (out.width, out.height)
            and abs(src.fps - out.fps) < 1e-3 and src.pix_fmt in ("yuv420p", "yuvj420p"))
    if not same or not keyframes:
        return whole
    half = 0.5 / src.fps
    first = next((k for k in keyframes if k >= part.start - half), None)
    if abs(part.end - src.duration) < half:
        last = part.end  # to the file's end: the last GOP needs no closing keyframe
    else:
        last = next((k for k in reversed(keyframes) if k <= part.end + half), None)
    if first is None or last is None or last - first < half:
        return whole
    plan = []
    if first - part.start >= half:
        plan.append(("encode", part.start, first))
    plan.append(("copy", first, last))
    if part.end - last >= half:
        plan.append(("encode", last, part.end))
    return plan


def _audio_matches(src: SourceInfo, out: SourceInfo) -> bool:
    return (src.has_audio and src.audio_codec == "aac" and src.sample_rate == out.sample_rate
            and src.channels == out.channels)


def _part_args(part: ExportPart, out: SourceInfo, mode: str, target: Path) -> list[str]:
    src = part.source
    count = frames_between(part.start, part.end, src.fps)
    seconds = count / out.fps
    if mode == "copy":
        # A copy starts on a keyframe: seek exactly there (the demuxer lands on it, nothing is dropped).
        args = ["-y", "-ss", f"{part.start:.6f}", "-i", src.path]
    else:
        args = ["-y", "-ss", f"{seek_time(frame_index(part.start, src.fps), src.fps):.6f}", "-i", src.path]
    silent = out.has_audio and not src.has_audio
    if silent:
        args += ["-f", "lavfi", "-i", f"anullsrc=r={out.sample_rate}:cl={'mono' if out.channels == 1 else 'stereo'}"]
    args += ["-map", "0:v:0"]
    if out.has_audio:
        # Audio is always re-encoded (cheap next to video) and padded/trimmed to the video's exact
        # length, so every piece's sound starts and ends with its pictures.
        args += ["-map", "1:a:0" if silent else "0:a:0", "-af", f"apad=whole_dur={seconds:.6f},"
                 f"atrim=duration={seconds:.6f}", "-c:a", "aac", "-b:a", "192k", "-ar", str(out.sample_rate),
                 "-ac", str(out.channels)]
    if mode == "copy":
        # The part ends on a keyframe of a closed GOP: its first ``count`` packets in decode
        # order are exactly its ``count`` frames.
        args += ["-c:v", "copy", "-bsf:v", "h264_mp4toannexb", "-frames:v", str(count)]
    else:
        chain = [f"scale={out.width}:{out.height}:force_original_aspect_ratio=decrease",
                 f"pad={out.width}:{out.height}:(ow-iw)/2:(oh-ih)/2", "setsar=1", "format=yuv420p"]
        args += ["-vf", ",".join(chain), "-frames:v", str(count), "-r", _rate(out.fps), *ENCODE_VIDEO]
    return args + ["-f", "mpegts", str(target)]


def export_timeline(parts: list[ExportPart], target: Path, workdir: Path,
                    progress: Callable[[float], None] | None = None) -> ExportReport:
    """Concatenate ``parts`` into one H.264/AAC mp4 at ``target``.

    Each part becomes an MPEG-TS piece — stream-copied when ``plan_part`` allows, re-encoded
    otherwise — and the pieces are joined with ffmpeg's concat demuxer without re-encoding.
    MPEG-TS carries the H.264 parameter sets in-band before every keyframe, so copied and
    re-encoded pieces (different encoders, different SPS/PPS) decode correctly one after another.
    """
    if not parts:
        raise ValueError("the timeline is empty: nothing to export")
    first = parts[0].source
    audio = next((p.source for p in parts if p.source.has_audio), None)
    out = SourceInfo("", 0.0, first.fps, first.width, first.height, audio is not None, "h264", "yuv420p", "aac",
                     (audio.sample_rate or 48000) if audio else 0, min(2, audio.channels or 2) if audio else 0)
    keyframes: dict[str, list[float]] = {}
    total = sum(frames_between(p.start, p.end, p.source.fps) / p.source.fps for p in parts)
    done = 0.0
    report = ExportReport(str(target), 0.0)
    workdir.mkdir(parents=True, exist_ok=True)
    pieces = []
    for part in parts:
        if part.source.path not in keyframes:
            keyframes[part.source.path] = keyframe_times(part.source.path) if part.source.video_codec == "h264" else []
        for mode, start, end in plan_part(part, out, keyframes[part.source.path]):
            piece = ExportPart(part.source, start, end)
            path = workdir / f"part-{len(pieces):05d}.ts"
            seconds = frames_between(start, end, part.source.fps) / part.source.fps

            def _step(fraction: float, _base=done, _seconds=seconds) -> None:
                if progress and total:
                    progress(min(0.99, (_base + fraction * _seconds) / total))

            run_ffmpeg(_part_args(piece, out, mode, path), timeout=RENDER_TIMEOUT, progress=_step, duration=seconds)
            pieces.append((path, seconds))
            done += seconds
            report.parts.append({"source": part.source.path, "start": round(start, 6), "end": round(end, 6),
                                 "mode": mode})
    listing = workdir / "parts.txt"
    # The declared duration is what the concat demuxer offsets the next piece by: the pictures'
    # length, whatever the audio encoder's priming adds.
    listing.write_text("".join(f"file '{p.name}'\nduration {d:.6f}\n" for p, d in pieces))
    with atomic_output(target, ".mp4") as temp:
        run_ffmpeg(["-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-map", "0", "-c", "copy",
                    "-movflags", "+faststart", "-f", "mp4", str(temp)], timeout=RENDER_TIMEOUT)
    report.duration = inspect(target).duration
    if progress:
        progress(1.0)
    return report
