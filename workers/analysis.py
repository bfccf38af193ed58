"""Analyse one file, as a library: ``analyze_file(path, cache_dir, options)`` runs the parts
asked for (visual: thumbnails, scenes, embeddings, faces; speech: a transcript) and returns a
typed result, with no Celery, Redis or HTTP involved (as PySceneDetect's ``detect()``). The
analysis task (tasks/analyze.py) calls it for each file of a batch.

    from workers import AnalysisOptions, analyze_file
    result = analyze_file("clip.mp4", "/data/cache", AnalysisOptions(visual_model="clip-vit-b32"))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from workers import store
from workers.engines.base import ModelUnavailable
from workers.media.probe import MediaError, MediaInfo, probe
from workers.messages import FaceJob, FileJob, ModelChoice, SpeechJob
from workers.pipeline import Cancelled

Progress = Callable[[str, float], None]  # (part: "video" | "speech", percent)


@dataclass(frozen=True)
class AnalysisOptions:
    """What to do with a file. ``visual``: thumbnails and scenes, plus embeddings when
    ``visual_model`` is set; ``speech``: transcribe with ``speech_model``; ``face_jobs``:
    detect faces (on the visual pass's frames) for these clustering jobs."""

    visual: bool = True
    visual_model: str | None = None
    speech: SpeechJob | None = None
    speech_model: str | None = None
    face_jobs: tuple[FaceJob, ...] = ()
    device: str = "cpu"

    @classmethod
    def for_job(cls, job: FileJob, models: ModelChoice, device: str = "cpu") -> AnalysisOptions:
        return cls(job.visual, models.visual, job.speech, models.speech, job.face_jobs, device)


@dataclass(frozen=True)
class PartFailure:
    part: str  # "video" | "speech"
    error: str
    exception: Exception = field(compare=False, repr=False)


@dataclass(frozen=True)
class FileAnalysis:
    """What ``analyze_file`` did: the parts it ran and those of them that failed."""

    path: str
    hash_str: str
    parts: tuple[str, ...]
    failures: tuple[PartFailure, ...] = ()


def describe_error(exc: BaseException) -> str:
    """An error as a user reads it: our own errors by their message, others with their type."""
    text = str(exc) or exc.__class__.__name__
    return text if isinstance(exc, (MediaError, ModelUnavailable)) else f"{exc.__class__.__name__}: {text}"


def analyze_file(path: str, cache_dir: str, options: AnalysisOptions | None = None,
                 progress: Progress | None = None,
                 should_cancel: Callable[[], bool] | None = None) -> FileAnalysis:
    """Run each part ``options`` asks for. A part that fails is reported in the result and
    leaves the others' results; when every part failed, the first part's error is raised
    (as is a file that cannot be probed or read, and ``Cancelled``)."""
    options = options or AnalysisOptions()
    report: Progress = progress or (lambda part, percent: None)
    info = probe(path)
    hash_str = store.hash_file(path)
    parts: list[tuple[str, Callable[[], None]]] = []
    if options.visual or options.face_jobs:
        parts.append(("video", lambda: _visual(info, cache_dir, hash_str, options, report, should_cancel)))
    if options.speech:
        parts.append(("speech", lambda: _speech(info, cache_dir, hash_str, options, report, should_cancel)))
    failures: list[PartFailure] = []
    for part, run in parts:
        try:
            run()
        except Cancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - one part failing leaves the others' results
            failures.append(PartFailure(part, describe_error(exc), exc))
    if parts and len(failures) == len(parts):
        raise failures[0].exception
    return FileAnalysis(path, hash_str, tuple(p for p, _ in parts), tuple(failures))


def _speech(info: MediaInfo, cache_dir: str, hash_str: str, options: AnalysisOptions, report: Progress,
            should_cancel) -> None:
    from workers.pipeline.speech import transcribe_file
    from workers.transcripts import load_transcript

    if not info.has_audio:
        raise MediaError("file has no audio stream to transcribe")
    existing = load_transcript(cache_dir, hash_str)
    language = options.speech.language
    same = existing and existing.get("model_key") == options.speech_model and (
        language in (None, "", "auto") or existing.get("language_requested", language) == language)
    if same and "channels" not in existing:
        # Made before channels were analysed: a file with one speaker per channel was
        # transcribed as a garbled downmix, so a multichannel file is transcribed again.
        from workers.media.audio import audio_channels

        count, surround = audio_channels(info.path)
        same = count < 2 or surround
    if not same:
        transcribe_file(info.path, cache_dir, hash_str, language, options.speech_model,
                        progress=lambda p: report("speech", p), should_cancel=should_cancel, device=options.device)
    report("speech", 100.0)


def _visual(info: MediaInfo, cache_dir: str, hash_str: str, options: AnalysisOptions, report: Progress,
            should_cancel) -> None:
    from workers.faces.storage import job_has_media
    from workers.pipeline.visual import analyze_visual

    if info.kind == "audio":
        raise MediaError("file has no video stream or image to analyse visually")
    engine = None
    if options.visual and options.visual_model:
        from workers.engines.visual import load_visual_engine

        report("video", 0.0)
        engine = load_visual_engine(options.visual_model)
    # A job that already holds this file's faces (a re-run batch) needs no second detection.
    face_jobs = [f for f in options.face_jobs if not job_has_media(cache_dir, f.cluster_job_name, hash_str)]
    collector = None
    if face_jobs:
        from workers.pipeline.faces import FaceCollector

        collector = FaceCollector()
    analyze_visual(info, cache_dir, hash_str, engine, face_sink=collector, progress=lambda p: report("video", p),
                   should_cancel=should_cancel)
    if collector is not None:
        for face_job in face_jobs:
            collector.store(cache_dir, face_job.encode(), hash_str)
