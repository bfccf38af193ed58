"""Transcription of one file, end to end: decode → transcribe → save. What the Celery task calls.

The engine stays loaded in the worker process between files (a batch of 50 files loads the
model once); asking for another model key replaces it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from workers import transcripts
from workers.engines.speech import (
    FasterWhisperEngine,
    OpenAIWhisperEngine,
    Transcription,
    load_speech_engine,
    normalize_language,
)
from workers.media.audio import decode_audio
from workers.pipeline import Cancelled

# Progress (percent) given to decoding; transcription fills the rest up to SAVE_AT, saving to 100.
DECODED_AT = 2.0
SAVE_AT = 99.0

_lock = threading.Lock()
_cached: dict[tuple, FasterWhisperEngine | OpenAIWhisperEngine] = {}


def get_speech_engine(model_key: str, device: str = "auto",
                      models_base: Path | None = None) -> FasterWhisperEngine | OpenAIWhisperEngine:
    """The loaded engine for ``model_key``, loading it on first use in this process.

    Only one speech model is kept: a worker that switches keys frees the previous one.
    """
    cache_key = (model_key, device, str(models_base) if models_base else None)
    with _lock:
        engine = _cached.get(cache_key)
        if engine is None:
            _cached.clear()
            engine = load_speech_engine(model_key, device=device, base=models_base)
            _cached[cache_key] = engine
        return engine


def loaded_speech_model() -> str | None:
    """The key of the speech model loaded in this process, if any (for /models/loaded)."""
    with _lock:
        return next(iter(_cached))[0] if _cached else None


def unload_speech_engine() -> None:
    with _lock:
        _cached.clear()


def transcribe_file(media_path: str, cache_dir: str | os.PathLike, hash_str: str, language: str | None,
                    model_key: str, progress: Callable[[float], None] | None = None,
                    should_cancel: Callable[[], bool] | None = None, *, device: str = "auto",
                    models_base: Path | None = None) -> dict:
    """Transcribe ``media_path`` and store the result under ``<cache_dir>/<hash_str>_audio/``.

    ``progress(percent)`` goes 0 → 100 and never backwards. ``should_cancel()`` is polled
    before decoding, after each segment and before saving; when it returns True this raises
    :class:`~workers.pipeline.Cancelled` and nothing is written.

    Raises ValueError for a bad language or model key (``NoAudioStream`` and
    ``AudioDecodeError`` are ValueErrors too), ``ModelUnavailable`` when the weights are not
    on this machine, FileNotFoundError for a missing file.
    """
    started = time.perf_counter()
    code = normalize_language(language)
    transcripts.transcript_path(cache_dir, hash_str)  # validates hash_str before any work
    reached = [0.0]

    def report(percent: float) -> None:
        percent = max(reached[0], min(100.0, percent))
        reached[0] = percent
        if progress is not None:
            progress(percent)

    def check_cancel() -> None:
        if should_cancel is not None and should_cancel():
            raise Cancelled(f"transcription of {media_path} cancelled")

    report(0.0)
    check_cancel()
    engine = get_speech_engine(model_key, device=device, models_base=models_base)
    decode_started = time.perf_counter()
    audio = decode_audio(media_path)
    decoded = time.perf_counter()
    report(DECODED_AT)
    check_cancel()

    def on_fraction(fraction: float) -> None:
        check_cancel()
        report(DECODED_AT + (SAVE_AT - DECODED_AT) * fraction)

    result: Transcription = engine.transcribe_detailed(audio, code, on_fraction)
    check_cancel()
    report(SAVE_AT)
    transcripts.save_transcript(cache_dir, hash_str, media_path, model_key, result.language, result.segments,
                                duration=result.duration, language_requested=language)
    report(100.0)
    elapsed = time.perf_counter() - started
    return {
        "media_path": media_path,
        "hash_str": hash_str,
        "model_key": model_key,
        "language": result.language,
        "segments": len(result.segments),
        "duration": round(result.duration, 3),
        "seconds": round(elapsed, 3),
        "decode_seconds": round(decoded - decode_started, 3),
        "realtime_factor": round(elapsed / result.duration, 4) if result.duration else None,
        "transcript_path": str(transcripts.transcript_path(cache_dir, hash_str)),
    }
