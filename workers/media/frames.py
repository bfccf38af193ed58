"""One frame per second out of a media file, as fast as this machine allows.

Two ways to get there, picked per file by its keyframe interval (DESIGN.md, "Known traps"):
- *decode all*: decode every frame with codec threads, skipping frames that no other frame
  references (their pixels are never needed for the 1 fps grid), and keep the first frame at
  or after each whole second. Fastest for long GOPs.
- *seek*: jump to the keyframe before each second and decode forward. Fastest when
  keyframes are close together (intra-only or short-GOP footage).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import av
import numpy as np
from PIL import Image, ImageOps

from workers.media import h264refs
from workers.media.probe import MediaError, MediaInfo

log = logging.getLogger(__name__)

# Seek when a keyframe comes at least this often (seconds); measured crossover on 2 cores.
SEEK_MAX_GOP_SECONDS = 1.5
# Skip H.264/HEVC deblocking in *decode all* mode at or above this many bits per pixel and
# frame. Skipping it makes every reference frame drift from what the encoder saw, until the
# next keyframe; at high bitrates the filter has little to do, so the drift stays invisible:
# on 720p30 at 5.8 Mb/s (0.21 bpp) thumbnails stay within 45.8 dB PSNR (mean 53 dB) of the
# filtered ones, for 4-13 % less decoding (bench/decode.py). Below it the filter does real
# work on blocky low-bitrate video, and it stays on.
SKIP_LOOP_FILTER_MIN_BPP = 0.12


@dataclass
class Frame:
    """A decoded frame on the 1 fps grid. Pixels are produced on demand at the size asked for."""

    index: int
    time: float
    _frame: av.VideoFrame | None = None
    _image: Image.Image | None = None

    @property
    def size(self) -> tuple[int, int]:
        if self._frame is not None:
            return self._frame.width, self._frame.height
        return self._image.size

    def rgb(self, max_side: int | None = None) -> np.ndarray:
        """HxWx3 uint8, scaled down (never up) so the longest side is at most ``max_side``."""
        width, height = self.size
        scale = 1.0 if not max_side else min(1.0, max_side / max(width, height))
        out_w, out_h = max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)
        if self._frame is not None:
            return self._frame.reformat(width=out_w, height=out_h, format="rgb24",
                                        interpolation="AREA" if scale < 1 else None).to_ndarray()
        image = self._image if (out_w, out_h) == self._image.size else self._image.resize(
            (out_w, out_h), Image.Resampling.BILINEAR)
        return np.asarray(image)


def _gop_seconds(container, stream, max_packets: int = 400) -> float:
    """Average keyframe interval from the first packets (demux only, no decoding)."""
    key_times = []
    for i, packet in enumerate(container.demux(stream)):
        if packet.is_keyframe and packet.pts is not None:
            key_times.append(float(packet.pts * stream.time_base))
        if i >= max_packets or len(key_times) >= 6:
            break
    container.seek(0)
    if len(key_times) < 2:
        return float("inf")
    key_times.sort()
    return (key_times[-1] - key_times[0]) / (len(key_times) - 1)


def _frame_time(frame: av.VideoFrame, start: float) -> float | None:
    return None if frame.time is None else frame.time - start


def iter_image(path: str) -> Iterator[Frame]:
    try:
        with Image.open(path) as image:
            image.draft("RGB", (2048, 2048))
            image = ImageOps.exif_transpose(image).convert("RGB")
    except Image.DecompressionBombError as exc:
        raise MediaError(f"image is too large to analyse ({exc})") from exc
    except Exception as exc:  # noqa: BLE001
        raise MediaError(f"image could not be decoded: {exc}") from exc
    yield Frame(0, 0.0, _image=image)


def iter_frames(info: MediaInfo, should_stop: Callable[[], bool] | None = None,
                mode: str = "auto", on_decoded: Callable[[av.VideoFrame, float], None] | None = None,
                decoded_modes: list[str] | None = None, threads: int | None = None) -> Iterator[Frame]:
    """Frames at t = 0, 1, 2, … seconds (the first frame at or after each second).

    ``on_decoded(frame, seconds)`` sees every frame the decoder produced, in display order
    (*decode all* mode only: seeking produces a few frames per second). ``decoded_modes``, if
    given, gets the mode chosen appended, so a caller knows whether it saw the whole stream.
    ``threads``: the decoder's threads (default: every core, up to 8).
    """
    if info.kind == "image":
        yield from iter_image(info.path)
        return
    if info.kind != "video":
        return
    try:
        container = av.open(info.path, metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise MediaError(f"video could not be opened: {exc}") from exc
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads or min(8, os.cpu_count() or 2)
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        if mode == "auto":
            mode = "seek" if _gop_seconds(container, stream) <= SEEK_MAX_GOP_SECONDS else "decode"
        if decoded_modes is not None:
            decoded_modes.append(mode)
        if mode == "seek":
            yield from _iter_seek(container, stream, start, info.duration, should_stop)
        else:
            yield from _iter_decode_all(container, stream, start, should_stop, on_decoded)


def _decode_packets(container, stream, planner: h264refs.DecodePlanner | None = None,
                    inexact: set[int] | None = None) -> Iterator[av.VideoFrame]:
    """Decode, skipping corrupt packets instead of failing the whole file on one bad one.

    With a ``planner``, each packet is decoded under the ``skip_frame`` its plan says (the
    decoder reads it as the packet is sent, frame threads included); the pts of pictures
    that come out only as place holders go to ``inexact``.
    """
    bad = 0

    def ready(packet):
        return planner.feed(packet) if planner is not None else ((packet, None),)

    def tail():
        return planner.finish() if planner is not None else ()

    for packet in container.demux(stream):
        for item, step in ready(packet):
            if step is not None:
                stream.codec_context.skip_frame = step.skip_frame
                if not step.exact and item.pts is not None:
                    inexact.add(item.pts)
            try:
                yield from item.decode()
            except av.error.InvalidDataError:
                bad += 1
                if bad > 50:
                    raise MediaError("too many corrupt packets; the video stream is damaged") from None
    for item, step in tail():  # a demux that ended without its empty flush packet
        stream.codec_context.skip_frame = step.skip_frame
        try:
            yield from item.decode()
        except av.error.InvalidDataError:
            pass


def bits_per_pixel(stream) -> float:
    rate = float(stream.average_rate or 0)
    pixels = (stream.codec_context.width or 0) * (stream.codec_context.height or 0)
    return (stream.bit_rate or 0) / (pixels * rate) if pixels and rate else 0.0


def _planner(stream, start: float, half_frame: float) -> h264refs.DecodePlanner | None:
    if stream.codec_context.name != "h264" or stream.time_base is None:
        return None
    try:
        return h264refs.DecodePlanner(stream.codec_context.extradata, stream.time_base, start, half_frame)
    except (h264refs.Unsupported, IndexError, ValueError) as exc:
        log.debug("no decode plan (%s): every reference picture is decoded", exc)
        return None


def _iter_decode_all(container, stream, start, should_stop, on_decoded=None) -> Iterator[Frame]:
    # Frames nobody references are never on our grid's critical path: skip decoding them
    # (about 40 % of the decoding on x264 footage). Shot detection sees the frames that are
    # left and decodes the few places where a cut may hide between two of them again in full.
    # On H.264, B-frames that are references but that no decoded picture needs are skipped
    # too (workers/media/h264refs.py: a third of what is left on x264 veryfast footage).
    stream.codec_context.skip_frame = "NONREF"
    if stream.codec_context.name in ("h264", "hevc") and bits_per_pixel(stream) >= SKIP_LOOP_FILTER_MIN_BPP:
        stream.codec_context.options = {"skip_loop_filter": "all"}
    half_frame = 0.5 / float(stream.average_rate) if stream.average_rate else 0.02
    inexact: set[int] = set()
    target = 0
    for frame in _decode_packets(container, stream, _planner(stream, start, half_frame), inexact):
        t = _frame_time(frame, start)
        if t is not None and on_decoded is not None and frame.pts not in inexact:
            on_decoded(frame, t)
        if t is None or t < target - half_frame:
            continue
        while t >= target - half_frame:
            # A gap longer than a second (variable frame rate) repeats the frame on the grid.
            yield Frame(target, float(target), _frame=frame)
            target += 1
            if should_stop and should_stop():
                return
    if target == 0:
        raise MediaError("the video stream has no decodable frames")


def _iter_seek(container, stream, start, duration, should_stop) -> Iterator[Frame]:
    last_index = max(0, int(duration + 1e-6)) if duration else 10**9
    target = 0
    produced = 0
    while target <= last_index:
        if should_stop and should_stop():
            return
        try:
            container.seek(int((target + start) / stream.time_base), stream=stream, backward=True)
        except av.FFmpegError:
            break
        found = None
        for frame in _decode_packets(container, stream):
            t = _frame_time(frame, start)
            if t is not None and t >= target - 0.02:
                found = frame
                break
        if found is None:
            break
        t = _frame_time(found, start)
        while target <= t + 0.02 and target <= last_index:
            yield Frame(target, float(target), _frame=found)
            produced += 1
            target += 1
    if produced == 0:
        raise MediaError("the video stream has no decodable frames")


def frame_at(info: MediaInfo, seconds: float, max_side: int | None = None) -> np.ndarray | None:
    """The first frame at or after ``seconds`` (the last frame if past the end); None for audio."""
    if info.kind == "image":
        return next(iter_image(info.path)).rgb(max_side)
    if info.kind != "video":
        return None
    with av.open(info.path, metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        seconds = min(max(0.0, seconds), max(0.0, info.duration - 0.001))
        container.seek(int((seconds + start) / stream.time_base), stream=stream, backward=True)
        last = None
        for frame in _decode_packets(container, stream):
            last = frame
            t = _frame_time(frame, start)
            if t is not None and t >= seconds - 0.02:
                break
        return Frame(0, seconds, _frame=last).rgb(max_side) if last is not None else None
