"""Face tracking for the reframe pipeline (API model name ``face_tracking_yolov8``).

No YOLOv8-face weights can be had offline, so what runs is dlib: a face detector at a sampled
rate on a scaled-down frame, IoU association between detections with a correlation tracker
bridging the frames where the detector misses (a turned head, motion blur), tracks broken at
shot cuts, and re-identification by dlib's 128-d face embedding so a person who comes back
after a cut or after leaving the frame keeps one ``face_id``. The result names the detector
that really ran.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from workers.reframe import models
from workers.reframe.sampling import SampledFrame, iter_sampled

MODEL_NAME = "face_tracking_yolov8"
# Longest side of the frame the detector sees when no face turns up in the probe frames (and
# always for CNN, which is costlier and upsamples itself). dlib's HOG finds faces down to
# ~80 px at no upsampling, so for HOG the side is chosen per video: a few frames are probed at
# up to 1280 px and the frame is scaled so the smaller faces come out ~100 px (640-1280 px).
DETECT_MAX_SIDE = {"hog": 800, "cnn": 640}
PROBE_FRAMES = 6
PROBE_MAX_SIDE = 1280
TARGET_FACE_PX = 100
MIN_DETECT_SIDE = 640
MATCH_IOU = 0.3
# A correlation tracker carries a track through at most this many seconds without detection.
MAX_COAST_SECONDS = 1.0
# dlib's correlation tracker reports a peak-to-sidelobe ratio; below this it has lost the face.
MIN_TRACKER_PSR = 7.0
# dlib's recommended same-person threshold is 0.6 (Euclidean, 128-d); a little stricter here
# because a wrong merge sends the crop to the wrong person.
REID_DISTANCE = 0.55
EMBED_EVERY_SECONDS = 1.0
MAX_EMBEDDINGS_PER_SEGMENT = 4
MIN_DETECTIONS = 2
# Frame change (workers.scenes score units) above which a cut may have happened.
CUT_HINT_SCORE = 16.0


@dataclass
class _Segment:
    """One uninterrupted run of a face inside one shot."""

    boxes: list[dict] = field(default_factory=list)
    embeddings: list[tuple[float, np.ndarray]] = field(default_factory=list)  # (timestamp, 128-d)
    detections: int = 0
    last_box: tuple[float, float, float, float] = (0, 0, 0, 0)  # x0, y0, x1, y1 at detection scale
    last_detect_time: float = 0.0
    last_embed_time: float = -1e9
    tracker: object | None = None
    last_image: np.ndarray | None = None  # the frame of the last detection, for the tracker
    embeds_since_cut: int = 0

    @property
    def start(self) -> float:
        return self.boxes[0]["timestamp"]

    @property
    def end(self) -> float:
        return self.boxes[-1]["timestamp"]


def _iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _confidence(score: float) -> float:
    # HOG's SVM margin and MMOD's score are both ~0 at the decision boundary and ~1-3 for clear
    # faces; a logistic maps them onto 0..1 the way a client reads "confidence".
    return round(1.0 / (1.0 + math.exp(-(2.0 * score + 1.0))), 3)


def _detect(detector, kind: str, image: np.ndarray, upsample: int) -> list[tuple[tuple, float]]:
    import dlib
    if kind == "cnn":
        found = detector(image, upsample)
        return [((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), float(d.confidence))
                for d in found]
    rects, scores, _ = detector.run(image, upsample, 0.0)
    out = []
    for rect, score in zip(rects, scores, strict=True):
        if isinstance(rect, dlib.rectangle):
            out.append(((rect.left(), rect.top(), rect.right(), rect.bottom()), float(score)))
    return out


def _detection_side(path: str | os.PathLike, kind: str, face_detector) -> int:
    """The long side to scale frames to so HOG sees this video's faces at a size it finds."""
    if kind != "hog":
        return DETECT_MAX_SIDE[kind]
    from workers.media.frames import frame_at
    from workers.media.probe import probe

    info = probe(path)
    long_side = max(info.width, info.height)
    if info.kind != "video" or info.duration <= 0 or long_side <= 0:
        return DETECT_MAX_SIDE[kind]
    heights = []
    for k in range(PROBE_FRAMES):
        rgb = frame_at(info, info.duration * (k + 0.5) / PROBE_FRAMES, max_side=min(long_side, PROBE_MAX_SIDE))
        if rgb is None:
            continue
        scale = rgb.shape[1] / info.width
        heights += [(box[3] - box[1]) / scale for box, _ in _detect(face_detector, kind, np.ascontiguousarray(rgb), 0)]
    if not heights:
        return DETECT_MAX_SIDE[kind]
    smallest = float(np.percentile(heights, 10))
    return int(min(PROBE_MAX_SIDE, max(MIN_DETECT_SIDE, long_side * TARGET_FACE_PX / smallest)))


def _shot_starts(shots: list | None) -> list[int]:
    starts = []
    for shot in shots or []:
        value = shot.get("start_frame") if isinstance(shot, dict) else getattr(shot, "start_frame", None)
        if value is not None and int(value) > 0:
            starts.append(int(value))
    return sorted(set(starts))


def _embed(image: np.ndarray, box) -> np.ndarray | None:
    import dlib
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    if x1 - x0 < 20 or y1 - y0 < 20:
        return None
    rect = dlib.rectangle(x0, y0, x1, y1)
    shape = models.landmarks_5()(image, rect)
    return np.asarray(models.face_embedder().compute_face_descriptor(image, shape), dtype=np.float32)


def _box_dict(frame: SampledFrame, box, confidence: float, width: int, height: int) -> dict:
    s = frame.scale
    x0 = max(0, min(width - 1, int(round(box[0] / s))))
    y0 = max(0, min(height - 1, int(round(box[1] / s))))
    x1 = max(x0 + 1, min(width, int(round(box[2] / s))))
    y1 = max(y0 + 1, min(height, int(round(box[3] / s))))
    return {"timestamp": frame.timestamp, "frame_number": frame.frame_number,
            "x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0, "confidence": confidence}


def _merge_identities(segments: list[_Segment]) -> list[list[_Segment]]:
    """Average-link agglomeration of segments by embedding; two segments seen at the same time
    are never one person."""
    clusters: list[list[_Segment]] = [[s] for s in segments]
    means = [np.mean([e for _, e in s.embeddings], axis=0) if s.embeddings else None for s in segments]

    def overlaps(a: list[_Segment], b: list[_Segment]) -> bool:
        return any(x.start <= y.end and y.start <= x.end for x in a for y in b)

    def distance(i: int, j: int) -> float:
        pairs = [np.linalg.norm(means_by_seg[id(x)] - means_by_seg[id(y)])
                 for x in clusters[i] for y in clusters[j]
                 if means_by_seg.get(id(x)) is not None and means_by_seg.get(id(y)) is not None]
        return float(np.mean(pairs)) if pairs else math.inf

    means_by_seg = {id(s): m for s, m in zip(segments, means, strict=True)}
    while len(clusters) > 1:
        best, pair = REID_DISTANCE, None
        for i in range(len(clusters)):
            for j in range(i + 1, len(clusters)):
                d = distance(i, j)
                if d < best and not overlaps(clusters[i], clusters[j]):
                    best, pair = d, (i, j)
        if pair is None:
            break
        i, j = pair
        clusters[i].extend(clusters.pop(j))
    return clusters


def track_faces(path: str | os.PathLike, *, sample_fps: float = 5.0, shots: list | None = None,
                detector: str = "hog", progress: Callable[[float], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> dict:
    """Track every face in ``path``; boxes are in source pixels at the sampled frames.

    ``sample_fps`` is the detection rate (the tracker bridges the frames between). ``shots``
    (objects or dicts with ``start_frame``, e.g. from ``workers.scenes.detect_shots``) break
    tracks at cuts; re-identification joins a person's runs under one ``face_id`` again.
    ``detector`` is ``"hog"`` (dlib HOG, the default: fast, frontal faces) or ``"cnn"`` (dlib
    MMOD: smaller and turned faces, ~10x slower on a CPU). A deployment chooses it with
    ``SIGHTLINE_FACE_TRACK_DETECTOR``; a connected deployment with a GPU is where "cnn" pays.
    Raises ``NoVideoStream`` / ``MediaError`` for files without usable pictures and
    ``Cancelled`` when ``should_stop()`` turns true.
    """
    import dlib

    if not os.path.exists(path):
        raise FileNotFoundError(f"media file not found: {os.fspath(path)}")
    detector = (detector or "hog").lower()
    face_detector = models.face_detector(detector)
    cuts = _shot_starts(shots)
    # Without shots from the caller, cuts are found on the same decode and runs are split at
    # them afterwards: IoU alone would carry a track from one person to another across a cut
    # that keeps faces in the same place (two single shots of an interview).
    shot_detector = None
    if shots is None:
        from workers.scenes import ShotDetector
        shot_detector = ShotDetector()
    info_out: list = []
    segments: list[_Segment] = []
    active: list[_Segment] = []
    last_frame_number = -1
    scored = 0
    detect_side = _detection_side(path, detector, face_detector)
    for frame in iter_sampled(path, sample_fps, detect_side, progress=progress,
                              should_stop=should_stop, info_out=info_out,
                              on_frame=shot_detector.add if shot_detector is not None else None):
        info = info_out[0]
        image = frame.image
        if any(last_frame_number < c <= frame.frame_number for c in cuts):
            active = []
        last_frame_number = frame.frame_number
        found = _detect(face_detector, detector, image, 0)
        matched_tracks: set[int] = set()
        matched_dets: set[int] = set()
        if active and found:
            cost = np.array([[1.0 - _iou(seg.last_box, box) for box, _ in found] for seg in active])
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols, strict=True):
                if 1.0 - cost[r, c] >= MATCH_IOU:
                    matched_tracks.add(r)
                    matched_dets.add(c)
                    seg, (box, score) = active[r], found[c]
                    _update(seg, frame, box, score, info, detected=True)
        still_active = []
        for i, seg in enumerate(active):
            if i in matched_tracks:
                still_active.append(seg)
                continue
            # The detector missed this face: let the correlation tracker carry it a little. It
            # starts only now, from the frame of the last detection (most runs never need it).
            if frame.timestamp - seg.last_detect_time <= MAX_COAST_SECONDS and seg.last_image is not None:
                if seg.tracker is None:
                    x0, y0, x1, y1 = seg.last_box
                    seg.tracker = dlib.correlation_tracker()
                    seg.tracker.start_track(seg.last_image, dlib.drectangle(x0, y0, x1, y1))
                psr = seg.tracker.update(image)
                if psr >= MIN_TRACKER_PSR:
                    pos = seg.tracker.get_position()
                    box = (pos.left(), pos.top(), pos.right(), pos.bottom())
                    if not any(_iou(box, active[j].last_box) > 0.5 for j in matched_tracks):
                        _update(seg, frame, box, None, info, detected=False, psr=psr)
                        still_active.append(seg)
                        continue
        active = still_active
        for c, (box, score) in enumerate(found):
            if c in matched_dets:
                continue
            seg = _Segment()
            _update(seg, frame, box, score, info, detected=True)
            segments.append(seg)
            active.append(seg)
        if shot_detector is not None:
            # A frame change as large as a cut's: the faces after it may be other people, so
            # they get fresh embeddings (runs are split at the real cuts at the end).
            recent = shot_detector.scores[scored:]
            scored = len(shot_detector.scores)
            if recent and max(recent) >= CUT_HINT_SCORE:
                for seg in active:
                    seg.embeds_since_cut = 0
                    seg.last_embed_time = -1e9
        for seg in active:
            if seg.last_detect_time != frame.timestamp:
                continue
            seg.tracker = None
            seg.last_image = image
            if (frame.timestamp - seg.last_embed_time >= EMBED_EVERY_SECONDS
                    and seg.embeds_since_cut < MAX_EMBEDDINGS_PER_SEGMENT):
                emb = _embed(image, seg.last_box)
                if emb is not None:
                    seg.embeddings.append((frame.timestamp, emb))
                    seg.last_embed_time = frame.timestamp
                    seg.embeds_since_cut += 1
    if not info_out:
        raise models.ModelMissing("no frames were read")  # pragma: no cover - iter_sampled raises first
    info = info_out[0]
    if shot_detector is not None and shot_detector.frames:
        found_cuts = [shot.start_frame for shot in shot_detector.shots()[1:]]
        segments = [part for seg in segments for part in _split_at(seg, found_cuts)]
    kept = [s for s in segments if s.detections >= MIN_DETECTIONS]
    for seg in kept:
        # Coasted boxes after the last detection are the tracker drifting off a face that left.
        while seg.boxes and seg.boxes[-1].get("_coast"):
            seg.boxes.pop()
    identities = _merge_identities(kept)
    identities.sort(key=lambda group: min(s.start for s in group))
    tracks = []
    for face_id, group in enumerate(identities, start=1):
        boxes = sorted((b for s in group for b in s.boxes), key=lambda b: b["frame_number"])
        for b in boxes:
            b.pop("_coast", None)
        tracks.append({"face_id": face_id, "first_seen": boxes[0]["timestamp"],
                       "last_seen": boxes[-1]["timestamp"], "boxes": boxes})
    models.report(progress, 1.0)
    return {"model": MODEL_NAME, "detector": f"dlib_{detector}" + ("_mmod" if detector == "cnn" else ""),
            "video_fps": round(info.fps, 3), "total_frames": info.total_frames,
            "track_count": len(tracks), "tracks": tracks}


def _split_at(seg: _Segment, cuts: list[int]) -> list[_Segment]:
    """``seg`` cut into the parts that lie in one shot each."""
    first, last = seg.boxes[0]["frame_number"], seg.boxes[-1]["frame_number"]
    inside = [c for c in cuts if first < c <= last]
    if not inside:
        return [seg]
    parts = []
    bounds = [-1, *inside, last + 1]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        boxes = [b for b in seg.boxes if lo <= b["frame_number"] < hi]
        if not boxes:
            continue
        t0, t1 = boxes[0]["timestamp"], boxes[-1]["timestamp"]
        part = _Segment(boxes=boxes, embeddings=[(t, e) for t, e in seg.embeddings if t0 <= t <= t1],
                        detections=sum(1 for b in boxes if not b.get("_coast")))
        parts.append(part)
    return parts


def _update(seg: _Segment, frame: SampledFrame, box, score: float | None, info, *, detected: bool,
            psr: float | None = None) -> None:
    seg.last_box = tuple(float(v) for v in box)
    if detected:
        confidence = _confidence(score)
        seg.detections += 1
        seg.last_detect_time = frame.timestamp
    else:
        # A tracked (not detected) box is trusted less, and less as the tracker's peak fades.
        confidence = round(min(0.5, psr / 40.0), 3)
    entry = _box_dict(frame, box, confidence, info.width, info.height)
    if not detected:
        entry["_coast"] = True
    seg.boxes.append(entry)
