"""What a media file is: kind, duration, frame rate, timecode, streams — read with PyAV/PIL.

Torch-free: the API uses it for /media/metadata.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import av
from PIL import Image

IMAGE_PIPE_FORMATS = {"image2", "jpeg_pipe", "png_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif",
                      "gif_pipe", "pgm_pipe", "ppm_pipe", "qoi_pipe", "dpx_pipe", "exr_pipe", "j2k_pipe"}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif"}
AUDIO_EXTENSIONS = {".mp3", ".wav", ".flac", ".m4a", ".aac", ".ogg", ".opus", ".aif", ".aiff", ".wma"}
VIDEO_EXTENSIONS = {".mp4", ".mov", ".mkv", ".avi", ".mxf", ".m4v", ".webm", ".mts", ".m2ts", ".ts", ".mpg",
                    ".mpeg", ".wmv", ".flv", ".3gp", ".dv", ".r3d", ".braw"}
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | AUDIO_EXTENSIONS | VIDEO_EXTENSIONS

# Pillow refuses images above this many pixels (decompression bombs); 20000x20000 is refused.
Image.MAX_IMAGE_PIXELS = 120_000_000


class MediaError(ValueError):
    """The file cannot be analysed; the message says why in words a user understands."""


@dataclass
class MediaInfo:
    path: str
    kind: str  # video | image | audio
    duration: float  # seconds; 0.0 for images and when the container does not say
    fps: float  # 0.0 for images and audio
    width: int
    height: int
    has_video: bool
    has_audio: bool
    timecode: str
    container: str
    video_codec: str | None = None
    # The exact rate (30000/1001, not 29.97) for frame-accurate cuts and NLE timelines.
    frame_rate: Fraction | None = None
    audio_channels: int = 0
    audio_sample_rate: int = 0


def _timecode(container, stream) -> str:
    for metadata in (getattr(stream, "metadata", {}) if stream else {}, container.metadata):
        value = metadata.get("timecode") if metadata else None
        if value:
            return value
    for other in container.streams:
        value = other.metadata.get("timecode") if other.metadata else None
        if value:
            return value
    return "00:00:00:00"


def _exact_rate(stream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0 < Fraction(rate) < 1000:
            return Fraction(rate)
    return None


def _rate(stream) -> float:
    rate = _exact_rate(stream)
    return float(rate) if rate is not None else 0.0


def _is_cover_art(stream) -> bool:
    # Album art in an audio file is a one-picture "video" stream; the file is still audio.
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _duration(container, stream) -> float:
    if stream is not None and stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


def _probe_image(path: str) -> MediaInfo:
    try:
        with Image.open(path) as image:
            width, height = image.size
            image.verify()
    except Image.DecompressionBombError as exc:
        raise MediaError(f"image is too large to analyse ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad files
        raise MediaError(f"not a readable image or media file: {exc}") from exc
    return MediaInfo(path, "image", 0.0, 0.0, width, height, True, False, "00:00:00:00", "image")


def probe(path: str | os.PathLike) -> MediaInfo:
    """Describe a media file. Raises MediaError for anything that is not readable media."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MediaError("file not found")
    if not os.path.isfile(path):
        raise MediaError("not a regular file")
    if os.path.getsize(path) == 0:
        raise MediaError("file is empty (0 bytes)")
    try:
        container = av.open(path, metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        if os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS:
            return _probe_image(path)
        raise MediaError(f"not a readable media file ({exc.__class__.__name__}: {exc})") from exc
    with container:
        fmt = container.format.name.split(",")[0]
        video = next((s for s in container.streams.video
                      if s.codec_context is not None and not _is_cover_art(s)), None)
        audio = next(iter(container.streams.audio), None)
        if video is not None and (fmt in IMAGE_PIPE_FORMATS or fmt.endswith("_pipe")):
            return _probe_image(path)
        if video is None and audio is None:
            raise MediaError("file has neither a video nor an audio stream")
        if video is not None and (video.frames == 1 or (fmt == "image2")):
            return _probe_image(path)
        timecode = _timecode(container, video)
        # A stream that does not say how many channels it has still plays as (at least) mono.
        channels = int(audio.codec_context.channels or 1) if audio is not None else 0
        sample_rate = int(audio.codec_context.sample_rate or 0) if audio is not None else 0
        if video is not None:
            duration = _duration(container, video) or _duration(container, None)
            return MediaInfo(path, "video", duration, _rate(video), video.codec_context.width,
                             video.codec_context.height, True, audio is not None, timecode, fmt,
                             video.codec_context.name, _exact_rate(video), channels, sample_rate)
        return MediaInfo(path, "audio", _duration(container, audio) or _duration(container, None), 0.0, 0, 0,
                         False, True, timecode, fmt, audio_channels=channels, audio_sample_rate=sample_rate)
