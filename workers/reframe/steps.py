"""The reframe pipeline's steps as plain functions: what each step is called, what it needs
first, and how it turns a stored video (and the results of the steps it needs) into its own
JSON-ready result. No database, HTTP or Celery here: ``tasks/reframe.py`` finds the inputs,
stores the outputs and reports progress.

Models that really run (the API names stay Jumper's): scene_detection is the project's shot
detector; face_tracking_yolov8 is dlib face detection + tracking (no YOLOv8 weights exist
offline; the result names its detector); active_speaker fuses mouth motion with voice
activity; transcription is the speech engine (faster-whisper) with word times; diarization
is voice activity → speaker embeddings → clustering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workers.reframe import camera as camera_mod

ANALYSES = ("scene_detection", "face_tracking_yolov8", "active_speaker", "transcription", "diarization")
TRANSFORMS = ("reframe", "reframe_llm")
# Inputs a step cannot run without: missing ones run first, as part of the step.
NEEDS: dict[str, tuple[str, ...]] = {
    "scene_detection": (),
    "face_tracking_yolov8": ("scene_detection",),
    "active_speaker": ("face_tracking_yolov8",),
    "transcription": (),
    "diarization": (),
    "reframe": ("scene_detection", "face_tracking_yolov8", "active_speaker"),
    "reframe_llm": ("scene_detection", "face_tracking_yolov8", "active_speaker", "transcription"),
}
# What only sound can tell: a silent video is reframed on its faces alone.
NEEDS_SOUND = ("active_speaker", "transcription", "diarization")
# Inputs a step uses when they are already stored, but does not run for itself.
USES: dict[str, tuple[str, ...]] = {
    "active_speaker": ("diarization",),
    "transcription": ("diarization",),
    "reframe_llm": ("diarization",),
}
# The downloadable outputs: suffix → (step that makes it, media type).
OUTPUTS: dict[str, tuple[str, str]] = {
    "_reframe": ("reframe", "video/mp4"),
    **{f"_{name}": (name, "application/json") for name in ANALYSES},
}

Progress = Callable[[float], None] | None


def needs(name: str, has_audio: bool) -> tuple[str, ...]:
    """The inputs ``name`` runs first when they are missing (none that need sound, without it)."""
    return NEEDS[name] if has_audio else tuple(n for n in NEEDS[name] if n not in NEEDS_SOUND)
Stop = Callable[[], bool] | None


@dataclass(frozen=True)
class Media:
    path: str
    fps: float
    total_frames: int
    width: int
    height: int
    duration: float
    has_audio: bool


@dataclass
class StepOutput:
    result: dict
    file: Path | None = None  # a rendered video (reframe); JSON results are stored by the caller


class StepFailed(ValueError):
    """The step cannot produce its result for this video; the message is for the client."""


def _shots_as_dicts(shots) -> list[dict]:
    out = []
    for shot in shots:
        get = shot.get if isinstance(shot, dict) else lambda name, s=shot: getattr(s, name)
        out.append({"start": round(float(get("start")), 3), "end": round(float(get("end")), 3),
                    "start_frame": int(get("start_frame")), "end_frame": int(get("end_frame"))})
    return out


def scene_detection(media: Media, params: dict, inputs: dict, progress: Progress, should_stop: Stop,
                    out_dir: Path) -> StepOutput:
    from workers.scenes import detect_shots

    # detect_shots reports a percentage; steps report fractions.
    shots = detect_shots(media.path, progress=(lambda percent: progress(percent / 100.0)) if progress else None,
                         should_stop=should_stop)
    scenes = _shots_as_dicts(shots)
    if not scenes:
        scenes = [{"start": 0.0, "end": round(media.duration, 3), "start_frame": 0,
                   "end_frame": max(0, media.total_frames - 1)}]
    return StepOutput({"model": "scene_detection", "video_fps": media.fps, "total_frames": media.total_frames,
                       "scenes": scenes})


def _shots_for_tracking(scenes: dict | None) -> list | None:
    if not scenes:
        return None
    try:
        from workers.scenes import Shot

        return [Shot(**s) for s in scenes["scenes"]]
    except (ImportError, TypeError):
        return list(scenes["scenes"])


def face_tracking_yolov8(media: Media, params: dict, inputs: dict, progress: Progress, should_stop: Stop,
                         out_dir: Path) -> StepOutput:
    from workers.reframe.tracking import track_faces
    from workers.settings import load_settings

    detector = params.get("detector") or load_settings().face_track_detector
    result = track_faces(media.path, sample_fps=float(params.get("sample_fps", 5.0)),
                         shots=_shots_for_tracking(inputs.get("scene_detection")), detector=detector,
                         progress=progress, should_stop=should_stop)
    return StepOutput(result)


def active_speaker(media: Media, params: dict, inputs: dict, progress: Progress, should_stop: Stop,
                   out_dir: Path) -> StepOutput:
    from workers.reframe.speaker import detect_active_speaker

    return StepOutput(detect_active_speaker(media.path, inputs["face_tracking_yolov8"],
                                            diarization=inputs.get("diarization"), progress=progress,
                                            should_stop=should_stop))


def diarization(media: Media, params: dict, inputs: dict, progress: Progress, should_stop: Stop,
                out_dir: Path) -> StepOutput:
    from workers.reframe.diarization import diarize

    if not media.has_audio:
        raise StepFailed("the video has no audio stream to diarize")
    return StepOutput(diarize(media.path, num_speakers=params.get("num_speakers"), progress=progress,
                              should_stop=should_stop))


def transcription(media: Media, params: dict, inputs: dict, progress: Progress, should_stop: Stop,
                  out_dir: Path) -> StepOutput:
    from workers.engines.speech import normalize_language
    from workers.media.audio import decode_audio
    from workers.pipeline import Cancelled
    from workers.pipeline.speech import get_speech_engine
    from workers.reframe.llm import speaker_of
    from workers.settings import load_settings

    if not media.has_audio:
        raise StepFailed("the video has no audio stream to transcribe")
    settings = load_settings()
    engine = get_speech_engine(settings.speech_model, device=settings.device)
    audio = decode_audio(media.path)

    def on_fraction(fraction: float) -> None:
        if should_stop is not None and should_stop():
            raise Cancelled("transcription stopped")
        if progress is not None:
            progress(0.05 + 0.95 * fraction)

    if progress is not None:
        progress(0.05)
    result = engine.transcribe_detailed(audio, normalize_language(params.get("language")), on_fraction)
    who = (inputs.get("diarization") or {}).get("segments") or []
    segments = []
    for segment in result.segments:
        segments.append({
            "start": round(segment.start, 3), "end": round(segment.end, 3), "text": segment.text.strip(),
            "speaker": speaker_of(who, segment.start, segment.end) if who else None,
            "words": [{"start": round(w.start, 3), "end": round(w.end, 3), "word": w.word,
                       "probability": round(float(w.probability), 4)} for w in segment.words],
        })
    return StepOutput({"model": settings.speech_model, "language": result.language, "segments": segments})


def _render(media: Media, params: dict, inputs: dict, progress: Progress, should_stop: Stop, out_dir: Path,
            forced: dict[int, int | None] | None, name: str) -> StepOutput:
    from workers.reframe.render import render

    scenes = inputs["scene_detection"]["scenes"]
    path = camera_mod.plan(fps=media.fps, total_frames=media.total_frames, src_w=media.width, src_h=media.height,
                           aspect_ratio=params.get("aspect_ratio", "9:16"), scenes=scenes,
                           face_tracks=inputs["face_tracking_yolov8"], active_speaker=inputs.get("active_speaker"),
                           forced_faces=forced)
    output = out_dir / f"{name}.mp4"
    render(media.path, output, path, fps=media.fps, duration=media.duration, progress=progress,
           should_stop=should_stop)
    return StepOutput({
        "transform": name, "aspect_ratio": params.get("aspect_ratio", "9:16"), "width": path.size.width,
        "height": path.size.height, "video_fps": media.fps, "total_frames": media.total_frames,
        "duration": media.duration, "face_tracking_model": params.get("face_tracking_model",
                                                                      "face_tracking_yolov8"),
        "camera": path.stats(media.fps), "download_suffix": "_reframe",
    }, output)


def reframe(media: Media, params: dict, inputs: dict, progress: Progress, should_stop: Stop,
            out_dir: Path) -> StepOutput:
    return _render(media, params, inputs, progress, should_stop, out_dir, None, "reframe")


def reframe_llm(media: Media, params: dict, inputs: dict, progress: Progress, should_stop: Stop,
                out_dir: Path) -> StepOutput:
    from workers.reframe import llm
    from workers.settings import load_settings

    settings = load_settings()
    if not settings.llm_url:
        raise StepFailed("reframe_llm needs an LLM endpoint: set SIGHTLINE_LLM_URL")
    scenes = inputs["scene_detection"]["scenes"]
    described = llm.describe_scenes(scenes, inputs["face_tracking_yolov8"], inputs.get("active_speaker"),
                                    inputs.get("transcription"), inputs.get("diarization"), media.width)
    try:
        choices, exchange = llm.ask(url=settings.llm_url, model=settings.llm_model, key=settings.llm_key,
                                    timeout=settings.llm_timeout_seconds, prompt=params.get("prompt", ""),
                                    scenes=described)
    except llm.LLMError as exc:
        raise StepFailed(str(exc)) from None
    if progress is not None:
        progress(0.05)
    forced = {c.scene: c.face_id for c in choices if c.face_id is not None}
    output = _render(media, params, inputs, (lambda f: progress(0.05 + 0.95 * f)) if progress else None,
                     should_stop, out_dir, forced, "reframe_llm")
    output.result["llm"] = {**exchange, "prompt": params.get("prompt", ""),
                            "choices": [{"scene": c.scene, "face_id": c.face_id, "reason": c.reason}
                                        for c in choices]}
    return output


RUNNERS: dict[str, Callable[..., StepOutput]] = {
    "scene_detection": scene_detection, "face_tracking_yolov8": face_tracking_yolov8,
    "active_speaker": active_speaker, "transcription": transcription, "diarization": diarization,
    "reframe": reframe, "reframe_llm": reframe_llm,
}


def run(name: str, media: Media, params: dict, inputs: dict, out_dir: Path, progress: Progress = None,
        should_stop: Stop = None) -> StepOutput:
    return RUNNERS[name](media, params, inputs, progress, should_stop, Path(out_dir))
