"""Active-speaker detection: who of the tracked faces is talking, frame by frame.

Three cues, fused per face track:
- visual: the inner-lip opening from dlib's 68-point landmarks, normalised by the distance
  between the eyes, and how much it moves over a short window (a talking mouth opens and
  closes several times a second; a listening one is still or moves slowly);
- voice activity: Silero VAD (the ONNX model inside faster-whisper) on the decoded audio, so a
  mouth that moves in silence (chewing, smiling) is not "speaking";
- diarization, when it exists: each voice is tied to the face whose mouth moves while that
  voice (alone) is heard, and that face then counts as speaking whenever its voice is heard,
  also in the moments its mouth is hidden or still.
No learned audio-visual model (TalkNet, Light-ASD) ships offline; this is a hand-set fusion
and the result says so only through its figures in docs/reframe-models.md.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable

import numpy as np
from scipy.optimize import linear_sum_assignment

from workers.media.audio import SAMPLE_RATE, decode_audio
from workers.reframe import models
from workers.reframe.sampling import iter_sampled, video_info

MODEL_NAME = "active_speaker"
# Mouth motion needs more than the tracker's 5 fps: syllables come at 4-6 Hz.
VISUAL_FPS = 12.5
LANDMARK_MAX_SIDE = 960
# Window (seconds, centred) over which mouth motion is measured.
MOTION_WINDOW = 0.5
# Logistic on mouth motion (std of opening / eye distance over the window); set on GRID
# talkers (speaking ~0.02-0.04, silent ~0.001-0.01).
MOTION_CENTRE = 0.010
MOTION_SLOPE = 300.0
# Scores are averaged over this window so one blink of the landmarks does not flip a flag.
SMOOTH_SECONDS = 0.4
VAD_WINDOW = 512  # samples at 16 kHz, Silero's frame
VOICE_FULL = 0.5
# Boxes further apart than this (seconds) mean the face was not there in between.
MAX_BOX_GAP = 1.0
SPEAKING_THRESHOLD = 0.5
# Minimum share of a voice's solo time a mouth must be active in to be tied to that voice.
MIN_ASSOCIATION = 0.35


def _validate_tracks(tracks: dict) -> list[dict]:
    if not isinstance(tracks, dict) or not isinstance(tracks.get("tracks"), list):
        raise ValueError("tracks must be a face tracking result with a 'tracks' list")
    for track in tracks["tracks"]:
        if "face_id" not in track or not isinstance(track.get("boxes"), list):
            raise ValueError("every track needs a face_id and a list of boxes")
    return tracks["tracks"]


def _box_at(track: dict, frames: list[int], frame_number: int, fps: float):
    """The track's box at ``frame_number``, interpolated between its sampled boxes."""
    boxes = track["boxes"]
    i = bisect.bisect_left(frames, frame_number)
    if i < len(frames) and frames[i] == frame_number:
        b = boxes[i]
        return b["x"], b["y"], b["width"], b["height"]
    if i == 0 or i == len(frames):
        # A little before the first / after the last box still counts as the same face.
        j = 0 if i == 0 else len(frames) - 1
        if abs(frames[j] - frame_number) / fps > 0.25:
            return None
        b = boxes[j]
        return b["x"], b["y"], b["width"], b["height"]
    a, b = boxes[i - 1], boxes[i]
    if (frames[i] - frames[i - 1]) / fps > MAX_BOX_GAP:
        return None
    w = (frame_number - frames[i - 1]) / (frames[i] - frames[i - 1])
    return tuple((1 - w) * a[k] + w * b[k] for k in ("x", "y", "width", "height"))


def _mouth_opening(image: np.ndarray, box, scale: float) -> float | None:
    import dlib
    x, y, w, h = (v * scale for v in box)
    if w < 24 or h < 24:
        return None
    rect = dlib.rectangle(int(round(x)), int(round(y)), int(round(x + w)), int(round(y + h)))
    shape = models.landmarks_68()(image, rect)
    p = np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], dtype=np.float32)
    eyes = np.linalg.norm(p[36] - p[45])
    if eyes < 1:
        return None
    # Inner lips: 61-67, 62-66, 63-65 (0-based dlib numbering).
    gap = (np.linalg.norm(p[61] - p[67]) + np.linalg.norm(p[62] - p[66]) + np.linalg.norm(p[63] - p[65])) / 3
    return float(gap / eyes)


def _motion(times: np.ndarray, opening: np.ndarray) -> np.ndarray:
    """Std of the mouth opening over a centred window, per sample."""
    out = np.zeros(len(times), dtype=np.float32)
    half = MOTION_WINDOW / 2
    lo = np.searchsorted(times, times - half, side="left")
    hi = np.searchsorted(times, times + half, side="right")
    for k in range(len(times)):
        window = opening[lo[k]:hi[k]]
        out[k] = float(np.std(window)) if len(window) >= 3 else 0.0
    return out


def _visual_score(motion: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-MOTION_SLOPE * (motion - MOTION_CENTRE)))


def _compete(series: dict[int, dict]) -> None:
    """Visual score per face: its own mouth motion, and, where several faces are on screen at
    once, how it compares with the most active mouth among them (one voice, one speaker: the
    quieter mouths are listening). Sets ``series[face]["visual"]``."""
    peak: dict[int, float] = {}
    for s in series.values():
        for frame, m in zip(s["frames"], s["motion"], strict=True):
            peak[frame] = max(peak.get(frame, 0.0), float(m))
    for s in series.values():
        own = _visual_score(s["motion"])
        top = np.array([peak[f] for f in s["frames"]], dtype=np.float32)
        relative = np.where(top > 0, s["motion"] / np.maximum(top, 1e-6), 0.0)
        # Alone on screen, relative is 1 and the absolute cue decides; among others, the
        # geometric mean makes a face that moves clearly less than the leader drop out.
        s["visual"] = np.sqrt(own * relative).astype(np.float32)


def _smooth(times: np.ndarray, score: np.ndarray, half: float = SMOOTH_SECONDS / 2) -> np.ndarray:
    if len(times) < 3:
        return score
    lo = np.searchsorted(times, times - half, side="left")
    hi = np.searchsorted(times, times + half, side="right")
    csum = np.concatenate(([0.0], np.cumsum(score, dtype=np.float64)))
    return ((csum[hi] - csum[lo]) / (hi - lo)).astype(np.float32)


def voice_activity(audio: np.ndarray) -> np.ndarray:
    """Silero's speech probability per 32 ms window of 16 kHz audio."""
    model = models.silero_vad()
    padded = np.pad(audio, (0, (-len(audio)) % VAD_WINDOW))
    if len(padded) == 0:
        return np.zeros(0, dtype=np.float32)
    return np.asarray(model(padded), dtype=np.float32).reshape(-1)


def _voice_at(probs: np.ndarray, times: np.ndarray) -> np.ndarray:
    """VAD probability around each time (max over +-0.1 s, so a short pause inside a word stays voiced)."""
    if len(probs) == 0:
        return np.zeros(len(times), dtype=np.float32)
    hop = VAD_WINDOW / SAMPLE_RATE
    out = np.zeros(len(times), dtype=np.float32)
    for k, t in enumerate(times):
        a = max(0, int((t - 0.1) / hop))
        b = min(len(probs), int((t + 0.1) / hop) + 1)
        out[k] = float(probs[a:b].max()) if b > a else 0.0
    return out


def _diarization_cues(diarization: dict | None, series: dict[int, dict]) -> dict[int, np.ndarray]:
    """For each face, 1.0 where the voice tied to that face is heard, else 0.0."""
    if not diarization or not diarization.get("segments"):
        return {}
    segments = [(float(s["start"]), float(s["end"]), str(s["speaker"])) for s in diarization["segments"]]
    speakers = sorted({s for _, _, s in segments})
    face_ids = list(series)
    if not speakers or not face_ids:
        return {}

    def active(speaker: str | None, times: np.ndarray, solo: bool) -> np.ndarray:
        on = np.zeros(len(times), dtype=bool)
        others = np.zeros(len(times), dtype=bool)
        for start, end, who in segments:
            inside = (times >= start) & (times < end)
            if who == speaker:
                on |= inside
            else:
                others |= inside
        return on & ~others if solo else on

    association = np.zeros((len(speakers), len(face_ids)))
    for j, face_id in enumerate(face_ids):
        s = series[face_id]
        for i, speaker in enumerate(speakers):
            solo = active(speaker, s["times"], solo=True)
            if solo.sum() >= 3:
                association[i, j] = float(np.mean(s["visual"][solo]))
    rows, cols = linear_sum_assignment(-association)
    cues: dict[int, np.ndarray] = {}
    for i, j in zip(rows, cols, strict=True):
        if association[i, j] < MIN_ASSOCIATION:
            continue
        # The tie must be clear: this voice moves this mouth more than any other visible one.
        others = [association[i, k] for k in range(len(face_ids)) if k != j]
        if others and association[i, j] < max(others) + 0.1:
            continue
        face_id = face_ids[j]
        cues[face_id] = active(speakers[i], series[face_id]["times"], solo=False).astype(np.float32)
    return cues


def detect_active_speaker(path: str | os.PathLike, tracks: dict, *, diarization: dict | None = None,
                          progress: Callable[[float], None] | None = None,
                          should_stop: Callable[[], bool] | None = None) -> dict:
    """Per face track of ``tracks`` (a ``track_faces`` result), a speaking score at ~12.5 fps.

    ``diarization`` (a ``diarize`` result) ties voices to faces when given. Raises
    ``NoAudioStream`` for a file without sound, ``NoVideoStream`` / ``MediaError`` for one
    without usable pictures, ``ValueError`` for a malformed ``tracks``, ``Cancelled`` on stop.
    """
    track_list = _validate_tracks(tracks)
    audio = decode_audio(path)  # raises NoAudioStream first: without sound there is no speaker
    models.check_stop(should_stop)
    probs = voice_activity(audio)
    models.report(progress, 0.1)
    frames_of = {t["face_id"]: [b["frame_number"] for b in t["boxes"]] for t in track_list}
    samples: dict[int, list[tuple[float, int, float | None]]] = {t["face_id"]: [] for t in track_list}
    info_out: list = []

    def visual_progress(fraction: float) -> None:
        models.report(progress, 0.1 + 0.8 * fraction)

    # No face, nothing to look at: one cheap probe instead of decoding the pictures.
    frames = (iter_sampled(path, VISUAL_FPS, LANDMARK_MAX_SIDE, progress=visual_progress,
                           should_stop=should_stop, info_out=info_out)
              if any(t["boxes"] for t in track_list) else iter(()))
    if not any(t["boxes"] for t in track_list):
        info_out.append(video_info(path))
    for frame in frames:
        fps = info_out[0].fps
        for track in track_list:
            if not track["boxes"]:
                continue
            box = _box_at(track, frames_of[track["face_id"]], frame.frame_number, fps)
            if box is None:
                continue
            opening = _mouth_opening(frame.image, box, frame.scale)
            samples[track["face_id"]].append((frame.timestamp, frame.frame_number, opening))
    info = info_out[0] if info_out else None
    series: dict[int, dict] = {}
    for face_id, rows in samples.items():
        if not rows:
            series[face_id] = {"times": np.zeros(0), "frames": [], "visual": np.zeros(0), "voice": np.zeros(0)}
            continue
        times = np.array([r[0] for r in rows], dtype=np.float64)
        raw = np.array([np.nan if r[2] is None else r[2] for r in rows], dtype=np.float32)
        valid = ~np.isnan(raw)
        opening = np.interp(times, times[valid], raw[valid]) if valid.any() else np.zeros(len(times))
        motion = _motion(times, opening) if valid.any() else np.zeros(len(times), dtype=np.float32)
        series[face_id] = {"times": times, "frames": [r[1] for r in rows], "motion": motion,
                           "voice": _voice_at(probs, times)}
    _compete(series)
    cues = _diarization_cues(diarization, series)
    out_tracks = []
    for track in track_list:
        face_id = track["face_id"]
        s = series[face_id]
        # Silero's own decision threshold is 0.5: at or above it the voice counts fully, below
        # it in proportion (soft onsets and quiet words sit at 0.2-0.5).
        voice = np.minimum(1.0, s["voice"] / VOICE_FULL)
        if face_id in cues:
            # A tied voice is strong evidence on its own (also where VAD hesitates, or the
            # mouth is hidden or still); the mouth still decides overlaps.
            voice = np.maximum(voice, cues[face_id])
            score = voice * np.clip(0.45 * s["visual"] + 0.55 * cues[face_id], 0, 1)
        else:
            score = voice * s["visual"]
        score = _smooth(s["times"], score)
        scores = [{"timestamp": round(float(t), 3), "frame_number": int(f), "score": round(float(v), 3),
                   "speaking": bool(v >= SPEAKING_THRESHOLD)}
                  for t, f, v in zip(s["times"], s["frames"], score, strict=True)]
        fraction = (sum(1 for x in scores if x["speaking"]) / len(scores)) if scores else 0.0
        out_tracks.append({"face_id": face_id, "first_seen": track.get("first_seen", 0.0),
                           "last_seen": track.get("last_seen", 0.0),
                           "speaking_fraction": round(fraction, 3), "scores": scores})
    models.report(progress, 1.0)
    fps = info.fps if info else float(tracks.get("video_fps") or 0.0)
    total = info.total_frames if info else int(tracks.get("total_frames") or 0)
    return {"model": MODEL_NAME, "video_fps": round(fps, 3), "total_frames": total,
            "track_count": len(out_tracks), "tracks": out_tracks}

