"""The vertical render: one ffmpeg pass whose filter graph crops every frame where the camera
path says. ``sendcmd`` feeds the crop filter a new ``x`` at each frame where the crop moves,
so the whole path is one filter graph (no frames on disk, no Python per frame); audio is
copied as it is whenever MP4 can carry it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import av

from workers import store
from workers.exports.ffmpeg import run_ffmpeg
from workers.reframe.camera import CameraPath, CropSize

# Audio codecs an MP4 file carries as they are; others (PCM in a .mov, say) are encoded to AAC.
MP4_AUDIO = {"aac", "mp3", "mp2", "ac3", "eac3", "opus", "alac", "flac"}
VIDEO_ENCODE = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]


class Stopped(RuntimeError):
    pass


def stream_facts(path: str | os.PathLike) -> tuple[float, str | None]:
    """(seconds from the file's start to its first video frame, audio codec name or None).

    ffmpeg shifts input timestamps so the file starts at 0; the first video frame sits at
    this offset, which the crop commands' times must include (MPEG-PS clips often start late).
    """
    with av.open(os.fspath(path)) as container:
        video = container.streams.video[0]
        file_start = (container.start_time or 0) / 1_000_000
        video_start = float(video.start_time * video.time_base) if video.start_time is not None else file_start
        audio = next(iter(container.streams.audio), None)
        codec = audio.codec_context.name if audio is not None else None
    return max(0.0, video_start - file_start), codec


def crop_commands(path: CameraPath, fps: float, offset: float) -> str:
    """sendcmd lines: at each frame whose left edge differs from the frame before, a new x.

    Each command is timed half a frame before its frame, so rounding in the frame times can
    never apply it one frame late."""
    lines = []
    previous = None
    for frame, x in enumerate(path.x.tolist()):
        if x != previous:
            at = max(0.0, offset + (frame - 0.5) / fps) if frame else 0.0
            lines.append(f"{at:.6f} crop x {int(x)};")
            previous = x
    return "\n".join(lines) + "\n"


def _audio_args(audio_codec: str | None) -> list[str]:
    if audio_codec is None:
        return []
    if audio_codec in MP4_AUDIO:
        return ["-map", "0:a:0", "-c:a", "copy"]
    return ["-map", "0:a:0", "-c:a", "aac", "-b:a", "160k"]


def _escape_filter_path(path: str) -> str:
    # Inside a filter graph, ':' '\' and quotes are special; the path is ours, in a temp dir.
    return path.replace("\\", "\\\\").replace(":", "\\:").replace("'", "\\'")


def _encode(source: str, output: Path, video_filter: str, audio_codec: str | None, duration: float,
            progress: Callable[[float], None] | None, should_stop: Callable[[], bool] | None,
            extra_inputs: list[str] | None = None) -> None:
    def on_progress(fraction: float) -> None:
        if should_stop is not None and should_stop():
            raise Stopped()
        if progress is not None:
            progress(fraction)

    with store.atomic_output(output, ".part.mp4") as partial:
        run_ffmpeg(["-y", "-i", source, *(extra_inputs or []), "-filter_complex", f"[0:v:0]{video_filter}[v]",
                    "-map", "[v]", *_audio_args(audio_codec), *VIDEO_ENCODE, "-fps_mode", "passthrough",
                    "-movflags", "+faststart", str(partial)],
                   progress=on_progress, duration=duration)


def render(source: str | os.PathLike, output: str | os.PathLike, camera: CameraPath, *, fps: float,
           duration: float, progress: Callable[[float], None] | None = None,
           should_stop: Callable[[], bool] | None = None) -> None:
    """Write the reframed MP4 (atomically) from ``source`` along ``camera``."""
    source = os.fspath(source)
    offset, audio_codec = stream_facts(source)
    size = camera.size
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent) as folder:
        commands = Path(folder) / "crop.cmd"
        commands.write_text(crop_commands(camera, fps, offset))
        first = int(camera.x[0]) if len(camera.x) else 0
        graph = (f"sendcmd=f='{_escape_filter_path(str(commands))}',"
                 f"crop=w={size.width}:h={size.height}:x={first}:y={size.y}")
        _encode(source, output, graph, audio_codec, duration, progress, should_stop)


def render_static(source: str | os.PathLike, output: str | os.PathLike, size: CropSize, x: int, *,
                  duration: float) -> None:
    """The same encode with one fixed crop: the baseline ``bench/reframe.py`` compares with."""
    source = os.fspath(source)
    _offset, audio_codec = stream_facts(source)
    _encode(source, Path(output), f"crop=w={size.width}:h={size.height}:x={x}:y={size.y}", audio_codec,
            duration, None, None)
