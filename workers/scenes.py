"""Scene boundaries: frame-accurate shots from every decoded frame, and the 1 fps grid view.

Shots (``detect_shots``, ``ShotDetector``)
    Every decoded frame is reduced to a tiny sample of its planes (about 80x45 luma, 40x23 of
    each chroma plane, read straight from the decoder's buffer: no scaling; 0.1-0.2 ms a frame
    with the scoring).
    Consecutive samples give one change score per frame, and a cut is where that score stands
    out from its neighbours, as in PySceneDetect's AdaptiveDetector: at least ``ADAPTIVE_RATIO``
    times the mean of the two frames either side, and at least ``MIN_SCORE`` in absolute terms.
    What makes it hold on motion, fades and brightness changes:
    - luma is compared after removing each frame's mean and dividing by its contrast, so a fade
      or a lamp turned on (a gain and an offset on the whole frame) scores almost nothing; the
      change of mean brightness counts for little, except between two flat pictures (a cut
      from a black card to a white one), where it is all there is;
    - camera or character motion changes every frame a little, evenly: the ratio to the
      neighbours stays low, where a cut is one frame that differs and the next ones do not;
    - a flash (one or two frames, then the same picture again) is no cut: the frame after it
      is compared with the frame before it.
    The cut is the first frame of the new shot, so it is exact when the decoder produced every
    frame. A caller that skips frames (``add`` with frame numbers that jump: the 1 fps
    analysis skips frames nobody references) passes a ``Refiner`` to ``shots``, which decodes
    in full the few stretches where a cut may hide between two seen frames.

1 fps grid (``detect_scenes``, ``scene_for``)
    Search answers and scene strips work on the 1 fps grid: scene i holds grid frames
    ``(start, end)`` inclusive. ``grid_scenes`` derives that view from shots; the older
    histogram rule (``detect_scenes`` on ``frame_features``) stays for images and for a video
    whose shot detection failed. ``shots_for`` gives a cached file's shots, detecting them
    once for caches analysed before shots were stored.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np
from PIL import Image

from workers.media.probe import MediaError

# --- frame-accurate shots ---------------------------------------------------------------
SAMPLE_COLUMNS = 80  # luma samples across; chroma gets half
ADAPTIVE_RATIO = 3.0  # PySceneDetect AdaptiveDetector's adaptive_threshold
WINDOW = 2  # frames either side (AdaptiveDetector's window_width)
SPARSE_RATIO = 2.0  # where frames were skipped: a looser ratio picks candidates to decode in full
MIN_SCORE = 8.0  # a cut changes at least this much (score units: about luma levels)
MEAN_SHARE = 0.05  # share of the mean-brightness change kept in the score between pictures
MEAN_SHARE_FLAT = 0.5  # ... and between flat pictures, whose brightness is all there is to compare
CONTRAST_FLOOR = 8.0  # luma standard deviation below which a frame counts as flat
CONTRAST_SCALE = 32.0  # normalised luma has this standard deviation
MIN_SHOT_SECONDS = 0.4  # no second cut this soon after one (PySceneDetect: 15 frames)
FLASH_FRAMES = 2  # a picture that comes back within this many frames was a flash


@dataclass(frozen=True)
class Shot:
    """One shot: ``start``/``end`` in seconds from the start of the video stream,
    ``start_frame``/``end_frame`` decoded-frame numbers, end exclusive."""

    start: float
    end: float
    start_frame: int
    end_frame: int

    def as_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "start_frame": self.start_frame, "end_frame": self.end_frame}

    @classmethod
    def from_dict(cls, data: dict) -> Shot:
        return cls(float(data["start"]), float(data["end"]), int(data["start_frame"]), int(data["end_frame"]))


# 8-bit planar formats the planes can be read from directly: (horizontal, vertical) chroma subsampling.
_PLANAR_8BIT = {"yuv420p": (2, 2), "yuvj420p": (2, 2), "yuv422p": (2, 1), "yuvj422p": (2, 1),
                "yuv444p": (1, 1), "yuvj444p": (1, 1)}


def _grid(plane, width: int, height: int, step: int) -> np.ndarray:
    """Means of 2x2 pixels every ``step`` pixels: a point sample, with a little noise averaged out."""
    pixels = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:height, :width]
    o = step // 2
    rows, cols = len(range(o, height - 1, step)), len(range(o, width - 1, step))
    top = pixels[o:o + rows * step:step]
    bottom = pixels[o + 1:o + 1 + rows * step:step]
    grid = top[:, o:o + cols * step:step].astype(np.uint16)
    grid += top[:, o + 1:o + 1 + cols * step:step]
    grid += bottom[:, o:o + cols * step:step]
    grid += bottom[:, o + 1:o + 1 + cols * step:step]
    return grid.astype(np.float32) * 0.25


def _sample(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray]:
    """(luma, chroma) float32 samples of a frame, read from its planes (reformatted only when
    the decoder gives another pixel format: 10-bit, RGB, NV12)."""
    width, height = frame.width, frame.height
    subsampling = _PLANAR_8BIT.get(frame.format.name)
    if subsampling is None or width < 8 or height < 8:
        columns = min(SAMPLE_COLUMNS, max(2, width))
        rows = max(2, round(columns * height / max(1, width)))
        small = frame.reformat(width=columns, height=rows, format="yuv444p", interpolation="FAST_BILINEAR")
        planes = [np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:rows, :columns] for p in small.planes]
        return planes[0].astype(np.float32), np.stack(planes[1:]).astype(np.float32)
    step = max(2, width // SAMPLE_COLUMNS)
    luma = _grid(frame.planes[0], width, height, step)
    sx, sy = subsampling
    cw, ch = -(-width // sx), -(-height // sy)
    # Point samples at the chroma planes' resolution (subsampled chroma is smooth already).
    chroma_step = max(2, step // sx)
    o = chroma_step // 2
    u, v = (np.frombuffer(frame.planes[k], np.uint8).reshape(-1, frame.planes[k].line_size)[:ch, :cw]
            [o::chroma_step, o::chroma_step] for k in (1, 2))
    return luma, np.stack([u, v]).astype(np.float32)


class _Features:
    """Frames' normalised luma samples and their chroma samples, one row each, in one matrix:
    a row's mean absolute difference to another frame's is the luma term plus the chroma term.

    Made for a block of frames at once (a few whole-matrix operations instead of a dozen small
    ones per frame: in the 1 fps pass over the bench video, 2.0 → 1.6 CPU s for 6885 frames)."""

    __slots__ = ("vectors", "size", "means", "flat")

    def __init__(self, samples: list[tuple[np.ndarray, np.ndarray]]):
        luma = np.stack([sample[0].ravel() for sample in samples])
        chroma = np.stack([sample[1].ravel() for sample in samples])
        self.means = luma.mean(axis=1)
        centred = luma - self.means[:, None]
        contrast = centred.std(axis=1)
        self.flat = contrast < CONTRAST_FLOOR
        centred *= (CONTRAST_SCALE / np.maximum(contrast, CONTRAST_FLOOR))[:, None]
        self.size = centred.shape[1]
        # Chroma weighted so that its mean difference counts as much as luma's.
        self.vectors = np.concatenate([centred, chroma * (self.size / max(1, chroma.shape[1]))], axis=1)

    def __len__(self) -> int:
        return len(self.means)

    @classmethod
    def _of(cls, vectors: np.ndarray, means: np.ndarray, flat: np.ndarray, size: int) -> _Features:
        rows = cls.__new__(cls)
        rows.vectors, rows.means, rows.flat, rows.size = vectors, means, flat, size
        return rows

    def same_shape(self, other: _Features) -> bool:
        """False where the resolution changed between the two (their samples do not compare)."""
        return self.size == other.size and self.vectors.shape[1] == other.vectors.shape[1]

    def then(self, other: _Features) -> _Features:
        """These rows followed by ``other``'s (of the same shape)."""
        return _Features._of(np.concatenate([self.vectors, other.vectors]), np.concatenate([self.means, other.means]),
                             np.concatenate([self.flat, other.flat]), self.size)

    def tail(self, rows: int) -> _Features:
        first = max(0, len(self) - rows)
        return _Features._of(self.vectors[first:], self.means[first:], self.flat[first:], self.size)

    def distances(self, lag: int, start: int) -> np.ndarray:
        """Distance from each row from ``start`` on to the row ``lag`` before it; NaN where
        there is none."""
        out = np.full(len(self) - start, np.nan)
        first = max(lag, start)
        if first < len(self):
            now, then = slice(first, None), slice(first - lag, len(self) - lag)
            share = np.where(self.flat[now] & self.flat[then], MEAN_SHARE_FLAT, MEAN_SHARE)
            out[first - start:] = (np.abs(self.vectors[now] - self.vectors[then]).sum(axis=1) / self.size
                                   + share * np.abs(self.means[now] - self.means[then]))
        return out


# Frames sampled before their scores are worked out together (memory: ~22 kB a frame).
SCORE_BLOCK = 64


class ShotDetector:
    """Feed decoded frames in display order with ``add``; ``shots`` gives the shots.

    Keeps one score per frame (and up to ``SCORE_BLOCK`` tiny frames not yet scored), so it
    can ride along any decode loop.
    Frame numbers may jump (a decoder skipping frames nobody references): a jump seen around a
    candidate makes it *uncertain*, and ``shots`` asks ``refine`` to decide it on every frame.
    """

    def __init__(self) -> None:
        self.frames: list[int] = []
        self.times: list[float] = []
        self._scores: list[float] = []
        # back[j][k]: distance from frame j to frame j-2-k (k < FLASH_FRAMES): does an older picture return?
        self._back: list[tuple[float, ...]] = []
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._recent: _Features | None = None  # the last FLASH_FRAMES + 1 frames scored

    def add(self, frame: av.VideoFrame, number: int, time: float) -> None:
        self.frames.append(int(number))
        self.times.append(float(time))
        self._pending.append(_sample(frame))
        if len(self._pending) >= SCORE_BLOCK:
            self._score()

    @property
    def scores(self) -> list[float]:
        """The change score of each frame added (0 for the first)."""
        self._score()
        return self._scores

    @property
    def back(self) -> list[tuple[float, ...]]:
        self._score()
        return self._back

    def _score(self) -> None:
        pending, self._pending = self._pending, []
        start = 0
        while start < len(pending):  # runs of one sample shape (one resolution)
            shape = (pending[start][0].shape, pending[start][1].shape)
            end = start + 1
            while end < len(pending) and (pending[end][0].shape, pending[end][1].shape) == shape:
                end += 1
            self._score_run(_Features(pending[start:end]))
            start = end

    def _score_run(self, block: _Features) -> None:
        recent = self._recent
        changed = recent is not None and not recent.same_shape(block)
        context = block.tail(0) if recent is None or changed else recent
        rows = context.then(block)
        lags = [rows.distances(lag, len(context)) for lag in range(1, FLASH_FRAMES + 2)]
        if changed:  # resolution changed mid-stream: a new shot, whichever older frame it meets
            for lag, values in enumerate(lags, start=1):
                values[max(0, lag - len(recent)):min(lag, len(block))] = 255.0
        for i in range(len(block)):
            score = lags[0][i]
            self._scores.append(0.0 if np.isnan(score) else float(score))
            # frames j-2, j-3, …, as far as there are any
            self._back.append(tuple(float(lag[i]) for lag in lags[1:] if not np.isnan(lag[i])))
        self._recent = rows.tail(FLASH_FRAMES + 1)

    def _seen_before(self, i: int) -> bool:
        """Was the frame just before frame i decoded too (so a cut at i is exactly there)?"""
        return self.frames[i] - self.frames[i - 1] == 1

    def candidates(self) -> list[tuple[int, bool]]:
        """(index into the frames added, uncertain) of each shot's first frame after the first.

        Where the frame before was seen too, the rule is final: the cut is there, and skipped
        frames around only make the neighbours' scores larger (a stricter test). Where frames
        before it were skipped, the cut may hide between two seen frames, and a jump over
        several frames of a fade or a pan looks bigger than its neighbours: a looser ratio
        picks candidates for ``refine`` to settle on every frame. Encoders put a keyframe at a
        hard cut and a reference frame just before it, so real cuts are rarely uncertain.
        """
        scores = np.asarray(self.scores, dtype=np.float64)
        count = len(scores)
        cuts: list[tuple[int, bool]] = []
        last_cut_time = -math.inf
        flash_until = -1
        for i in range(1, count):
            score = scores[i]
            if score < MIN_SCORE:
                continue
            dense = self._seen_before(i)
            neighbours = np.concatenate([scores[max(1, i - WINDOW):i], scores[i + 1:i + 1 + WINDOW]])
            if dense:
                average = float(neighbours.mean()) if len(neighbours) else 0.0
                if average > 1e-5 and score < ADAPTIVE_RATIO * average:
                    continue
            else:
                # Change per frame of distance, against the neighbours' (a fade or a pan
                # spreads evenly over the skipped frames; a cut does not).
                first = max(1, i - WINDOW)
                gaps = np.diff(np.asarray(self.frames[first - 1:i + 1 + WINDOW], dtype=np.float64))
                per_frame = scores[first:i + 1 + WINDOW] / np.maximum(gaps, 1)
                own = per_frame[i - first]
                others = np.delete(per_frame, i - first)
                average = float(others.mean()) if len(others) else 0.0
                if average > 1e-5 and own < SPARSE_RATIO * average:
                    continue
            if self.times[i] - last_cut_time < MIN_SHOT_SECONDS:
                continue
            if i <= flash_until:
                continue  # the jump back out of a flash
            # The picture before the jump (frame i-1) comes back within FLASH_FRAMES frames: a flash.
            back = next((i + k for k in range(1, FLASH_FRAMES + 1)
                         if i + k < count and len(self.back[i + k]) >= k
                         and self.back[i + k][k - 1] < 0.25 * score), None)
            if back is not None:
                flash_until = back
                continue
            cuts.append((i, not dense))
            last_cut_time = self.times[i]
        return cuts

    def cut_positions(self) -> list[int]:
        """Indices of the cuts the seen frames settle on their own (uncertain ones left out)."""
        return [i for i, uncertain in self.candidates() if not uncertain]

    def shots(self, end_time: float | None = None, end_frame: int | None = None,
              refine: Callable[[float, float], tuple[int, float] | None] | None = None) -> list[Shot]:
        """Shots covering every frame added; the last ends at ``end_time``/``end_frame``
        (default: one frame duration after the last frame).

        ``refine(after, upto)`` decides an uncertain candidate on every frame between the seen
        frame before it (time ``after``) and the candidate (time ``upto``): it returns the cut's
        (frame number, time), or None for no cut. Without it, an uncertain candidate is kept
        only if it passes the strict rule, at the first frame seen after the cut.
        """
        if not self.frames:
            return []
        if end_frame is None:
            end_frame = self.frames[-1] + 1
        if end_time is None:
            step = (self.times[-1] - self.times[0]) / max(1, self.frames[-1] - self.frames[0])
            end_time = self.times[-1] + (step if step > 0 else 0.0)
        bounds = [(0.0, 0)]
        for i, uncertain in self.candidates():
            cut: tuple[int, float] | None = (self.frames[i], self.times[i])
            if uncertain:
                if refine is not None:
                    cut = refine(self.times[i - 1], self.times[i])
                elif not self._strict(i):
                    cut = None
            if cut is not None and cut[0] > bounds[-1][1] and cut[1] - bounds[-1][0] >= MIN_SHOT_SECONDS:
                bounds.append((cut[1], cut[0]))
        shots = []
        for (start, first), (end, stop) in zip(bounds, [*bounds[1:], (end_time, end_frame)], strict=True):
            shots.append(Shot(round(start, 6), round(max(end, start), 6), first, max(stop, first + 1)))
        return shots

    def _strict(self, i: int) -> bool:
        scores = self.scores
        neighbours = [*scores[max(1, i - WINDOW):i], *scores[i + 1:i + 1 + WINDOW]]
        average = sum(neighbours) / len(neighbours) if neighbours else 0.0
        return average <= 1e-5 or scores[i] >= ADAPTIVE_RATIO * average


def _open_video(path: str | os.PathLike):
    try:
        container = av.open(os.fspath(path), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise MediaError(f"video could not be opened: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise MediaError("the file has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = min(8, os.cpu_count() or 2)
    return container, stream


def _stream_start(stream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


class Refiner:
    """Settles uncertain cuts of a decode that skipped frames: seeks to the keyframe before
    each and decodes every frame of a short window (one GOP at most), through the same rule."""

    def __init__(self, path: str | os.PathLike):
        self.path = path
        self._container = None
        self._stream = None
        self.calls = 0

    def __call__(self, after: float, upto: float) -> tuple[int, float] | None:
        if self._container is None:
            self._container, self._stream = _open_video(self.path)
        container, stream = self._container, self._stream
        self.calls += 1
        start = _stream_start(stream)
        rate = float(stream.average_rate) if stream.average_rate else 30.0
        margin = (WINDOW + FLASH_FRAMES + 1) / rate
        first, last = after - margin, upto + margin
        try:
            container.seek(max(0, int((first + start) / stream.time_base)), stream=stream, backward=True)
        except av.FFmpegError:
            return None
        local = ShotDetector()
        try:
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                t = frame.time - start
                if t < first - 1e-6:
                    continue
                if t > last + 1e-6:
                    break
                local.add(frame, round(t * rate), t)
        except av.FFmpegError:
            return None
        inside = [i for i, _ in local.candidates() if after + 1e-6 < local.times[i] <= upto + 1e-6]
        if not inside:
            return None
        best = max(inside, key=lambda i: local.scores[i])
        return local.frames[best], local.times[best]

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def detect_shots(path: str | os.PathLike, progress: Callable[[float], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> list[Shot]:
    """Every shot of a video file, frame-accurate: it decodes every frame (codec threads, tiny
    samples read from the decoder's planes). Times are seconds from the video stream's start.

    ``progress`` gets a percentage; ``should_stop`` is polled between frames and makes it
    return the shots found so far (covering the frames decoded). Raises ``MediaError`` for a
    file with no decodable video.
    """
    container, stream = _open_video(path)
    with container:
        # Nothing references these frames, so skipping their deblocking cannot spread errors;
        # the tiny samples do not see it (about 10 % less decoding on x264 footage).
        stream.codec_context.options = {"skip_loop_filter": "noref"}
        start = _stream_start(stream)
        rate = float(stream.average_rate) if stream.average_rate else 0.0
        duration = float(stream.duration * stream.time_base) if stream.duration else (
            container.duration / 1e6 if container.duration else 0.0)
        detector = ShotDetector()
        number = 0
        last_time = None
        reported = -1.0
        bad = 0
        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError:
                bad += 1
                if bad > 50:
                    raise MediaError("too many corrupt packets; the video stream is damaged") from None
                continue
            for frame in decoded:
                if frame.time is not None:
                    t = frame.time - start
                elif last_time is not None and rate:
                    t = last_time + 1.0 / rate
                else:
                    t = number / rate if rate else 0.0
                detector.add(frame, number, t)
                number += 1
                last_time = t
                if progress and duration > 0 and t / duration * 100 >= reported + 1:
                    reported = min(99.0, t / duration * 100)
                    progress(reported)
            if should_stop and should_stop():
                break
        if number == 0:
            raise MediaError("the video stream has no decodable frames")
    step = 1.0 / rate if rate else 0.0
    end_time = last_time + step
    if not (should_stop and should_stop()) and duration > end_time:
        end_time = duration
    if progress:
        progress(100.0)
    return detector.shots(end_time=end_time, end_frame=number)


def grid_scenes(shots: list[Shot], frame_count: int, fps: float) -> list[tuple[int, int]]:
    """The 1 fps grid view of ``shots``: inclusive (start, end) grid indices per scene.

    Grid frame i is the first frame at or after i seconds (half a frame's tolerance, as the
    decoder's grid has), so it belongs to the shot holding that frame; a shot between two grid
    points has no grid frame and vanishes from this view.
    """
    if frame_count <= 0:
        return []
    half = 0.5 / fps if fps > 0 else 0.0
    starts = {0}
    for shot in shots[1:]:
        first = math.floor(shot.start - half + 1e-9) + 1
        if 0 < first < frame_count:
            starts.add(first)
    ordered = sorted(starts)
    return list(zip(ordered, [s - 1 for s in ordered[1:]] + [frame_count - 1], strict=True))


# --- the 1 fps histogram rule (caches analysed before shots were stored) ---------------------
H_BINS, S_BINS, V_BINS = 16, 4, 4
GREY_BINS = 8  # near-grey pixels have no meaningful hue: they are binned by brightness alone
GREY_SATURATION, DARK_VALUE = 40, 40
ABSOLUTE_CUT = 0.45
RELATIVE_CUT = 0.20
RELATIVE_FACTOR = 3.0


EMBEDDING_ABSOLUTE_CUT = 0.25
EMBEDDING_RELATIVE_CUT = 0.10


def frame_features(rgb: np.ndarray) -> np.ndarray:
    """A normalised HSV histogram of one frame (colour bins + grey-by-brightness bins, sum 1)."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(f"expected an HxWx3 uint8 RGB frame, got {rgb.dtype} array of shape {rgb.shape}")
    image = Image.fromarray(rgb)
    if max(image.size) > 96:
        image.thumbnail((96, 96), Image.Resampling.BILINEAR)
    hsv = np.asarray(image.convert("HSV"), dtype=np.uint16).reshape(-1, 3)
    h = hsv[:, 0] * H_BINS // 256
    s = hsv[:, 1] * S_BINS // 256
    v = hsv[:, 2] * V_BINS // 256
    colour_bins = H_BINS * S_BINS * V_BINS
    bins = (h * S_BINS + s) * V_BINS + v
    grey = (hsv[:, 1] < GREY_SATURATION) | (hsv[:, 2] < DARK_VALUE)
    bins = np.where(grey, colour_bins + hsv[:, 2] * GREY_BINS // 256, bins)
    hist = np.bincount(bins, minlength=colour_bins + GREY_BINS).astype(np.float32)
    return hist / max(1.0, float(hist.sum()))


def _matrix(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"{name} must be a (frames, dim) matrix, got shape {values.shape}")
    return values


def frame_distances(features: np.ndarray) -> np.ndarray:
    """d[i] = half the L1 distance between frames i-1 and i (d[0] = 0), in [0, 1]."""
    features = _matrix(features, "features")
    if len(features) < 2:
        return np.zeros(len(features), dtype=np.float32)
    distances = 0.5 * np.abs(np.diff(features, axis=0)).sum(axis=1)
    return np.concatenate([[0.0], distances]).astype(np.float32)


def _scenes_from_distances(distances: np.ndarray, absolute: float, relative: float) -> list[tuple[int, int]]:
    count = len(distances)
    if count == 0:
        return []
    cuts = []
    for i in range(1, count):
        window = np.concatenate([distances[max(1, i - 3):i], distances[i + 1:i + 4]])
        local = float(np.median(window)) if len(window) else 0.0
        # A fade changes every frame a lot, evenly: only a jump that stands out from its
        # neighbours is a cut.
        big = distances[i] >= absolute and distances[i] >= 1.5 * local
        standout = distances[i] >= relative and distances[i] >= RELATIVE_FACTOR * max(local, 0.02)
        if big or standout:
            cuts.append(i)
    starts = [0, *cuts]
    ends = [c - 1 for c in cuts] + [count - 1]
    return list(zip(starts, ends, strict=True))


def detect_scenes(features: np.ndarray, threshold: float = ABSOLUTE_CUT,
                  relative_threshold: float = RELATIVE_CUT) -> list[tuple[int, int]]:
    """Inclusive (start, end) frame indices of each scene, covering every frame.

    ``features``: (frames, dim) rows of ``frame_features``. A cut goes before frame i when
    its distance to frame i-1 reaches ``threshold`` (and 1.5x its neighbours' median), or
    reaches ``relative_threshold`` and 3x that median.
    """
    return _scenes_from_distances(frame_distances(features), threshold, relative_threshold)


def detect_scenes_from_embeddings(embeddings: np.ndarray, threshold: float = EMBEDDING_ABSOLUTE_CUT,
                                  relative_threshold: float = EMBEDDING_RELATIVE_CUT) -> list[tuple[int, int]]:
    """Scenes from the visual model's frame embeddings, by the cosine distance of consecutive
    frames and the same absolute/relative rule as ``detect_scenes``."""
    emb = _matrix(embeddings, "embeddings")
    if len(emb) == 0:
        return []
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    distances = np.concatenate([[0.0], 1.0 - np.sum(emb[1:] * emb[:-1], axis=1)]).astype(np.float32)
    return _scenes_from_distances(distances, threshold, relative_threshold)


def scene_for(scenes: list[tuple[int, int]] | list[list[int]], frame_idx: int) -> tuple[int, int]:
    """The scene that holds ``frame_idx`` (binary search over sorted scenes)."""
    if not scenes:
        return frame_idx, frame_idx
    starts = [s[0] for s in scenes]
    position = int(np.searchsorted(starts, frame_idx, side="right")) - 1
    start, end = scenes[max(0, min(position, len(scenes) - 1))]
    return int(start), int(end)


# --- shots in the stored analysis (manifest.json) ------------------------------------------
# ``manifest["shots"]``: [{"start", "end", "start_frame", "end_frame"}, ...] frame-accurate,
# seconds unrounded; ``manifest["scenes"]`` stays the 1 fps grid view (what search answers and
# scene strips read). Caches analysed before shots existed have "scenes" only: ``shots_for``
# detects their shots once and stores them (and a grid view derived from them).


def put_shots(manifest: dict, shots: list[Shot]) -> None:
    """Store ``shots`` and the grid view derived from them in ``manifest`` (in place)."""
    manifest["shots"] = [shot.as_dict() for shot in shots]
    if shots and manifest.get("frame_count"):
        fps = float(manifest.get("fps") or 0.0) or (shots[-1].end_frame / max(shots[-1].end, 1e-6))
        manifest["scenes"] = [list(map(int, s)) for s in grid_scenes(shots, int(manifest["frame_count"]), fps)]


def stored_shots(manifest: dict | None) -> list[Shot] | None:
    """The shots stored in a manifest; None when it predates them (see ``shots_for``)."""
    rows = (manifest or {}).get("shots")
    if not isinstance(rows, list):
        return None
    try:
        return [Shot.from_dict(row) for row in rows]
    except (KeyError, TypeError, ValueError):
        return None


def shots_for(cache_dir: str | os.PathLike, hash_str: str, media_path: str | os.PathLike,
              progress: Callable[[float], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> list[Shot]:
    """A file's shots from its stored analysis, detecting and storing them if it has none yet
    (an analysis from before shots were kept, or no analysis at all: then nothing is stored)."""
    from workers import store

    manifest = store.read_visual_manifest(cache_dir, hash_str)
    shots = stored_shots(manifest)
    if shots is not None:
        if progress:
            progress(100.0)
        return shots
    shots = detect_shots(media_path, progress=progress, should_stop=should_stop)
    if manifest is not None and not (should_stop and should_stop()):
        latest = store.read_visual_manifest(cache_dir, hash_str) or manifest  # an analysis may have written meanwhile
        put_shots(latest, shots)
        store.atomic_write_json(store.visual_dir(cache_dir, hash_str) / store.MANIFEST, latest)
    return shots
