"""Frames of a video at a sampled rate, scaled down for the models, with exact frame numbers.

Shared by face tracking and active-speaker detection: both look at a few frames per second,
never at every frame, and neither needs full resolution.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import av
import numpy as np

from workers.media.probe import MediaError
from workers.reframe.models import check_stop, report


class NoVideoStream(MediaError):
    """The file has no video track, so there are no faces to find."""


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    total_frames: int
    width: int
    height: int
    duration: float


@dataclass
class SampledFrame:
    frame_number: int
    timestamp: float
    image: np.ndarray  # HxWx3 uint8 RGB at ``scale`` of the source
    scale: float


def _open(path: str | os.PathLike):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"media file not found: {path}")
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot read {path}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise NoVideoStream(f"{path} has no video stream (face tracking needs pictures)")
    return container


def _info(container) -> VideoInfo:
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate and 0 < float(rate) < 1000 else 25.0
    duration = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    total = int(stream.frames or 0) or int(round(duration * fps))
    return VideoInfo(fps=fps, total_frames=total, width=stream.codec_context.width,
                     height=stream.codec_context.height, duration=duration)


def video_info(path: str | os.PathLike) -> VideoInfo:
    with _open(path) as container:
        return _info(container)


def iter_sampled(path: str | os.PathLike, sample_fps: float, max_side: int, *,
                 progress: Callable[[float], None] | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 info_out: list | None = None,
                 on_frame: Callable[[av.VideoFrame, int, float], None] | None = None) -> Iterator[SampledFrame]:
    """Frames at about ``sample_fps`` (every frame when that is at least the video's rate).

    ``on_frame(frame, frame_number, time)`` sees every decoded frame (a shot detector riding
    along the same decode).

    The frame number is the source frame's index at the video's rate, counted from the
    stream's start time, so boxes line up with any later frame-accurate render.
    """
    if sample_fps <= 0:
        raise ValueError(f"sample_fps must be positive, got {sample_fps}")
    with _open(path) as container:
        info = _info(container)
        if info_out is not None:
            info_out.append(info)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        scale = min(1.0, max_side / max(info.width, info.height, 1))
        out_w = max(2, int(round(info.width * scale / 2)) * 2)
        out_h = max(2, int(round(info.height * scale / 2)) * 2)
        step = 1.0 / min(sample_fps, info.fps)
        start = None
        next_time = 0.0
        decoded = 0
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    continue
                for frame in frames:
                    decoded += 1
                    if frame.time is None:
                        continue
                    if start is None:
                        start = frame.time
                    t = frame.time - start
                    if on_frame is not None:
                        on_frame(frame, int(round(t * info.fps)), t)
                    # Half a frame of slack: a 25 fps grid sampled at 5 fps keeps every 5th frame.
                    if t + 0.5 / info.fps < next_time:
                        continue
                    next_time += step
                    while next_time <= t:
                        next_time += step
                    if decoded % 8 == 0:
                        check_stop(should_stop)
                    image = np.ascontiguousarray(frame.reformat(width=out_w, height=out_h, format="rgb24",
                                           interpolation="AREA" if scale < 1 else None).to_ndarray())
                    yield SampledFrame(frame_number=int(round(t * info.fps)), timestamp=round(t, 3),
                                       image=image, scale=out_w / info.width)
                    if info.duration > 0:
                        report(progress, t / info.duration)
        except av.error.FFmpegError as exc:
            if decoded == 0:
                raise MediaError(f"cannot decode the video of {os.fspath(path)}: {exc}") from exc
            # A truncated file: what was decoded before the damage stands.
        if decoded == 0:
            raise MediaError(f"{os.fspath(path)}: no video frame could be decoded")
