"""The virtual camera: which face the vertical crop follows, frame by frame, and how the crop
moves to it.

Who: the active speaker (the track whose speaking score is highest while it speaks; a new
speaker takes over only after speaking for ``SWITCH_SECONDS``, so a one-word interjection
does not yank the frame). With nobody speaking the crop holds the last speaker while that
face is on screen, else frames the faces present; with no face it centres.

How: like a camera operator. The target is median-filtered (detector jitter never reaches
the crop), small offsets inside a dead zone are ignored, a pan accelerates and brakes at a
bounded rate up to a bounded speed and stops exactly on the subject; at a scene cut the
crop jumps at once (a cut is already a discontinuity, panning across it would look wrong).
Everything is in source pixels per second so the behaviour is the same at any frame rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SWITCH_SECONDS = 0.4
MAX_GAP_SECONDS = 1.0  # a face missing for longer than this between two boxes is absent
TARGET_MEDIAN_SECONDS = 0.5
DEAD_ZONE = 0.12  # fraction of the crop width the subject may drift before the camera moves
SETTLE_PIXELS = 2.0
MAX_SPEED = 2.5  # crop widths per second
MAX_ACCEL = 8.0  # crop widths per second squared

RATIOS = {"9:16": (9, 16), "1:1": (1, 1), "4:5": (4, 5)}


@dataclass
class CropSize:
    width: int
    height: int
    y: int


@dataclass
class CameraPath:
    """Crop rectangles for every frame: ``x[i]`` is the left edge of frame i's crop."""

    x: np.ndarray
    size: CropSize
    subject: np.ndarray  # face_id followed at each frame, -1 for none
    scene_starts: list[int] = field(default_factory=list)

    def stats(self, fps: float) -> dict:
        moves = np.diff(self.x.astype(np.int64)) if len(self.x) > 1 else np.zeros(0)
        cuts = set(self.scene_starts)
        pan = [abs(int(m)) for i, m in enumerate(moves, start=1) if i not in cuts]
        subjects = [int(s) for s in self.subject]
        switches = sum(1 for a, b in zip(subjects, subjects[1:], strict=False) if a != b)
        return {
            "frames": int(len(self.x)),
            "frames_moving": int(sum(1 for m in pan if m)),
            "max_pan_pixels_per_second": round(max(pan, default=0) * fps, 1),
            "subject_changes": switches,
            "frames_without_subject": int(sum(1 for s in subjects if s < 0)),
        }


def even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def crop_size(src_w: int, src_h: int, aspect_ratio: str) -> CropSize:
    """Output height = source height and width from the ratio, both even; a source already
    narrower than the ratio keeps its width and loses height instead (centred)."""
    num, den = RATIOS[aspect_ratio]
    width = even(src_h * num / den)
    if width <= src_w:
        return CropSize(width, even(src_h), 0)
    width = even(src_w)
    height = even(width * den / num)
    return CropSize(width, height, (src_h - height) // 2 // 2 * 2)


def _track_positions(tracks: list[dict], total_frames: int, fps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per track and frame: present?, box centre x, box half-width (linear between boxes)."""
    count = len(tracks)
    present = np.zeros((count, total_frames), dtype=bool)
    centre = np.zeros((count, total_frames), dtype=np.float64)
    half = np.zeros((count, total_frames), dtype=np.float64)
    max_gap = max(1, int(round(MAX_GAP_SECONDS * fps)))
    frames = np.arange(total_frames)
    for row, track in enumerate(tracks):
        boxes = sorted(track.get("boxes") or [], key=lambda b: b["frame_number"])
        if not boxes:
            continue
        at = np.array([min(total_frames - 1, max(0, int(b["frame_number"]))) for b in boxes])
        cx = np.array([b["x"] + b["width"] / 2 for b in boxes], dtype=np.float64)
        hw = np.array([b["width"] / 2 for b in boxes], dtype=np.float64)
        # Present from the first box to the last, except across gaps longer than max_gap; each
        # box also covers half a sampling interval either side (not more: a track ends at a cut).
        reach = max(0, min(max_gap // 2, int(np.median(np.diff(at))) // 2 if len(at) > 1 else 0))
        mask = np.zeros(total_frames, dtype=bool)
        for i, frame in enumerate(at):
            mask[max(0, frame - reach):min(total_frames, frame + reach + 1)] = True
            if i + 1 < len(at) and at[i + 1] - frame <= max_gap:
                mask[frame:at[i + 1] + 1] = True
        present[row] = mask
        centre[row] = np.interp(frames, at, cx)
        half[row] = np.interp(frames, at, hw)
    return present, centre, half


def _speaking(tracks: list[dict], speaker_tracks: list[dict], total_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Per face track and frame: speaking?, score — each sample holds until the next one."""
    by_id = {t["face_id"]: t for t in speaker_tracks or []}
    speaking = np.zeros((len(tracks), total_frames), dtype=bool)
    score = np.zeros((len(tracks), total_frames), dtype=np.float64)
    for row, track in enumerate(tracks):
        samples = sorted((by_id.get(track["face_id"]) or {}).get("scores") or [], key=lambda s: s["frame_number"])
        at = [int(s["frame_number"]) for s in samples]
        # A sample holds until the next one, and the last one for one sampling interval only.
        interval = int(np.median(np.diff(at))) if len(at) > 1 else 1
        for i, sample in enumerate(samples):
            start = min(total_frames, max(0, at[i]))
            end = min(total_frames, at[i] + interval if i + 1 == len(samples) else at[i + 1])
            speaking[row, start:end] = bool(sample.get("speaking"))
            score[row, start:end] = float(sample.get("score", 0.0))
    return speaking, score


def choose_subjects(present: np.ndarray, speaking: np.ndarray, score: np.ndarray, scenes: list[tuple[int, int]],
                    fps: float, forced: dict[int, int] | None = None) -> np.ndarray:
    """Row index of the followed track at each frame (-1: none). ``forced`` maps a scene index
    to a track row that scene should follow whenever that face is on screen (reframe_llm)."""
    total = present.shape[1]
    subject = np.full(total, -1, dtype=np.int64)
    switch_frames = max(1, int(round(SWITCH_SECONDS * fps)))
    for index, (start, end) in enumerate(scenes):
        current, pending, pending_for = -1, -1, 0
        chosen = (forced or {}).get(index)
        for frame in range(start, min(end, total - 1) + 1):
            if chosen is not None and 0 <= chosen < present.shape[0] and present[chosen, frame]:
                current = chosen
                subject[frame] = current
                continue
            talking = np.flatnonzero(speaking[:, frame] & present[:, frame])
            if current >= 0 and not present[current, frame]:
                current = -1
            if len(talking) and current not in talking:
                best = int(talking[np.argmax(score[talking, frame])])
                if current < 0:
                    current, pending, pending_for = best, -1, 0
                elif best == pending:
                    pending_for += 1
                    if pending_for >= switch_frames:
                        current, pending, pending_for = best, -1, 0
                else:
                    pending, pending_for = best, 1
            else:
                pending, pending_for = -1, 0
            subject[frame] = current
    return subject


def _targets(subject: np.ndarray, present: np.ndarray, centre: np.ndarray, half: np.ndarray,
             src_w: int, crop_w: int) -> np.ndarray:
    total = present.shape[1]
    target = np.full(total, src_w / 2.0)
    for frame in range(total):
        row = subject[frame]
        if row >= 0:
            target[frame] = centre[row, frame]
            continue
        rows = np.flatnonzero(present[:, frame])
        if len(rows):
            left = float(np.min(centre[rows, frame] - half[rows, frame]))
            right = float(np.max(centre[rows, frame] + half[rows, frame]))
            if right - left <= crop_w:
                target[frame] = (left + right) / 2
            else:  # they do not all fit: frame the largest face
                target[frame] = centre[rows[np.argmax(half[rows, frame])], frame]
    return target


def _median(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < 3:
        return values.copy()
    pad = window // 2
    padded = np.pad(values, pad, mode="edge")
    view = np.lib.stride_tricks.sliding_window_view(padded, 2 * pad + 1)
    return np.median(view, axis=1)


def operate(target: np.ndarray, scenes: list[tuple[int, int]], fps: float, crop_w: int, src_w: int) -> np.ndarray:
    """Camera centre per frame: dead zone, bounded speed and acceleration, a jump at each cut."""
    dt = 1.0 / fps
    dead = DEAD_ZONE * crop_w
    vmax, amax = MAX_SPEED * crop_w, MAX_ACCEL * crop_w
    low, high = crop_w / 2, src_w - crop_w / 2
    target = np.clip(target, low, high)
    out = np.empty(len(target))
    for start, end in scenes:
        end = min(end, len(target) - 1)
        if start > end:
            continue
        smooth = _median(target[start:end + 1], int(round(TARGET_MEDIAN_SECONDS * fps)))
        pos, vel, moving = float(smooth[0]), 0.0, False
        for i, goal in enumerate(smooth):
            error = goal - pos
            if not moving and abs(error) > dead:
                moving = True
            if moving:
                # The fastest speed from which braking at amax, frame by frame, still stops on the
                # goal: v(v/k + 1)/2 = distance, in pixels per frame with k = amax·dt².
                k = amax * dt * dt
                stop_speed = k * (np.sqrt(1 + 8 * abs(error) / k) - 1) / 2 / dt
                desired = np.sign(error) * min(vmax, stop_speed)
                step = np.clip(desired - vel, -amax * dt, amax * dt)
                vel += step
                move = vel * dt
                if abs(move) >= abs(error) or abs(error) <= SETTLE_PIXELS:
                    pos, vel, moving = float(goal), 0.0, False
                else:
                    pos += move
            out[start + i] = pos
    return np.clip(out, low, high)


def plan(*, fps: float, total_frames: int, src_w: int, src_h: int, aspect_ratio: str,
         scenes: list[dict] | None, face_tracks: dict | None, active_speaker: dict | None,
         forced_faces: dict[int, int | None] | None = None) -> CameraPath:
    """The crop for every frame from the analyses' JSON results.

    ``scenes``: the scene_detection result's ``scenes``; ``face_tracks`` / ``active_speaker``:
    the results of those steps; ``forced_faces``: scene index → face_id to follow there.
    """
    total_frames = max(1, int(total_frames))
    size = crop_size(src_w, src_h, aspect_ratio)
    # Only the scenes' first frames matter (a cut is where one starts), so an exclusive or
    # inclusive end_frame and gaps between scenes make no difference.
    starts = sorted({0, *(int(s["start_frame"]) for s in scenes or [] if 0 < int(s["start_frame"]) < total_frames)})
    covered = [(a, b - 1) for a, b in zip(starts, [*starts[1:], total_frames], strict=True)]
    tracks = list((face_tracks or {}).get("tracks") or [])
    present, centre, half = _track_positions(tracks, total_frames, fps)
    speaking, score = _speaking(tracks, (active_speaker or {}).get("tracks") or [], total_frames)
    rows = {t["face_id"]: row for row, t in enumerate(tracks)}
    forced = {index: rows[face] for index, face in (forced_faces or {}).items() if face in rows}
    subject_rows = choose_subjects(present, speaking, score, covered, fps, forced)
    target = _targets(subject_rows, present, centre, half, src_w, size.width)
    centres = operate(target, covered, fps, size.width, src_w)
    x = np.clip(np.round(centres - size.width / 2).astype(np.int64) // 2 * 2, 0, max(0, src_w - size.width))
    ids = np.array([tracks[r]["face_id"] if r >= 0 else -1 for r in subject_rows], dtype=np.int64)
    return CameraPath(x, size, ids, [a for a, _ in covered])
