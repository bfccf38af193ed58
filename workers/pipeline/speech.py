"""Transcription of one file, end to end: decode → transcribe → save. What the Celery task calls.

The engine stays loaded in the worker process between files (a batch of 50 files loads the
model once); asking for another model key replaces it.
"""

from __future__ import annotations

import bisect
import os
import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from workers import transcripts
from workers.engines import catalogue
from workers.engines.base import Segment
from workers.engines.cache import gb_to_bytes, model_cache
from workers.engines.speech import (
    SAMPLE_RATE,
    FasterWhisperEngine,
    OpenAIWhisperEngine,
    Transcription,
    load_speech_engine,
    normalize_language,
)
from workers.media.audio import (
    ChannelReport,
    audio_channels,
    decode_audio,
    decode_channels,
    distinct_channels,
    downmix,
)
from workers.pipeline import Cancelled

# Progress (percent) given to decoding; transcription fills the rest up to SAVE_AT, saving to 100.
DECODED_AT = 2.0
SAVE_AT = 99.0

def get_speech_engine(model_key: str, device: str = "auto",
                      models_base: Path | None = None) -> FasterWhisperEngine | OpenAIWhisperEngine:
    """The loaded engine for ``model_key``, loading it on first use in this process.

    Only one speech model is kept (``KINDS["speech"]`` in workers/engines/cache.py): a worker
    that switches keys frees the previous one.
    """
    spec = catalogue.get_spec(model_key, models_base)
    return model_cache().get(
        catalogue.SPEECH, model_key, lambda: load_speech_engine(model_key, device=device, base=models_base),
        {"device": device, "models_base": str(models_base) if models_base else None},
        size_bytes=gb_to_bytes(spec.size_gb) if spec else 0)


def unload_speech_engine() -> None:
    model_cache().clear(catalogue.SPEECH)


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
    tracks, labels, channel_report = decode_for_speech(media_path)
    decoded = time.perf_counter()
    report(DECODED_AT)
    check_cancel()

    results: list[Transcription] = []
    for index, audio in enumerate(tracks):
        def on_fraction(fraction: float, index: int = index) -> None:
            check_cancel()
            report(DECODED_AT + (SAVE_AT - DECODED_AT) * (index + fraction) / len(tracks))

        results.append(engine.transcribe_detailed(audio, code, on_fraction))
    result = merge_channels(results, labels, levels_db(tracks) if len(tracks) > 1 else None)
    check_cancel()
    report(SAVE_AT)
    transcripts.save_transcript(cache_dir, hash_str, media_path, model_key, result.language, result.segments,
                                duration=result.duration, language_requested=language,
                                channels=_channels_record(channel_report))
    report(100.0)
    elapsed = time.perf_counter() - started
    return {
        "media_path": media_path,
        "hash_str": hash_str,
        "model_key": model_key,
        "language": result.language,
        "segments": len(result.segments),
        "channels": [label for label in labels if label is not None],
        "duration": round(result.duration, 3),
        "seconds": round(elapsed, 3),
        "decode_seconds": round(decoded - decode_started, 3),
        "realtime_factor": round(elapsed / result.duration, 4) if result.duration else None,
        "transcript_path": str(transcripts.transcript_path(cache_dir, hash_str)),
    }


def decode_for_speech(media_path: str) -> tuple[list, list[int | None], ChannelReport | None]:
    """The audio to transcribe: ``(tracks, channel of each track, the channel analysis)``.

    A mono file is one track. A file whose channels carry different speakers (one lavalier
    per speaker: :func:`~workers.media.audio.distinct_channels`) gives one track per speaking
    channel, so each voice is transcribed alone instead of as a garbled mix; any other
    multichannel file, and any surround (5.1, 7.1) mix, is downmixed as before: one track
    with channel None.
    """
    count, surround = audio_channels(media_path)
    if count < 2:
        return [decode_audio(media_path)], [None], None
    if surround:
        # A surround mix keeps its dialogue in the centre: downmixed, as before.
        return [decode_audio(media_path)], [None], ChannelReport(count, False)
    channels = decode_channels(media_path)
    split = distinct_channels(channels)
    if split.distinct:
        return [channels[c] for c in split.speech_channels], list(split.speech_channels), split
    return [downmix(channels)], [None], split


_LEVEL_FRAME = 512  # 32 ms at 16 kHz
# A word is the other speaker's bleed when its channel is this much quieter there than the
# channel that heard the same word at the same time (lavaliers: ~10-20 dB).
_BLEED_DB = 6.0
_SAME_WORD_WITHIN_S = 1.0
_NOT_LETTERS = re.compile(r"[^\w']+")


def levels_db(tracks: list[np.ndarray]) -> np.ndarray:
    """Loudness of each track per 32 ms frame, in dB: ``(tracks, frames)``."""
    frames = min(len(t) for t in tracks) // _LEVEL_FRAME
    power = [np.mean(np.square(t[: frames * _LEVEL_FRAME].reshape(frames, _LEVEL_FRAME), dtype=np.float64), axis=1)
             for t in tracks]
    return 10.0 * np.log10(np.stack(power) + 1e-10)


def _level(levels: np.ndarray, track: int, start: float, end: float) -> float:
    first = int(start * SAMPLE_RATE) // _LEVEL_FRAME
    last = max(first + 1, int(np.ceil(end * SAMPLE_RATE / _LEVEL_FRAME)))
    span = levels[track, first:last]
    return float(10.0 * np.log10(np.mean(10.0 ** (span / 10.0)))) if span.size else -100.0


def _key(word: str) -> str:
    return _NOT_LETTERS.sub("", word.casefold())


def drop_bleed(results: list[Transcription], levels: np.ndarray) -> list[Transcription]:
    """Each channel's transcription without the words it only heard as the other speaker's
    bleed: a word is dropped when another channel heard the same word at the same time and
    was at least 6 dB louder there. Real speech of a channel never matches both tests (the
    other speaker does not say the same word at that moment), so nothing it said is lost."""
    # Per channel: word → its start times, sorted, so a file of any length is checked in
    # n log n rather than comparing every word with every other.
    heard: list[dict[str, list[float]]] = []
    for result in results:
        starts: dict[str, list[float]] = {}
        for segment in result.segments:
            for word in segment.words:
                starts.setdefault(_key(word.word), []).append(word.start)
        heard.append({key: sorted(times) for key, times in starts.items()})

    def said_there(other: int, key: str, start: float) -> bool:
        times = heard[other].get(key, [])
        at = bisect.bisect_left(times, start - _SAME_WORD_WITHIN_S)
        return at < len(times) and times[at] <= start + _SAME_WORD_WITHIN_S

    cleaned = []
    for track, result in enumerate(results):
        segments = []
        for segment in result.segments:
            if not segment.words:
                segments.append(segment)
                continue
            kept = []
            for word in segment.words:
                key = _key(word.word)
                others = [o for o in range(len(results)) if o != track and key and said_there(o, key, word.start)]
                here = _level(levels, track, word.start, word.end) if others else 0.0
                if not any(_level(levels, o, word.start, word.end) - here >= _BLEED_DB for o in others):
                    kept.append(word)
            if len(kept) == len(segment.words):
                segments.append(segment)
            elif kept:
                segments.append(replace(segment, start=kept[0].start, end=kept[-1].end,
                                        text="".join(w.word for w in kept), words=kept))
        cleaned.append(replace(result, segments=segments))
    return cleaned


def merge_channels(results: list[Transcription], labels: list[int | None],
                   levels: np.ndarray | None = None) -> Transcription:
    """One transcription from one per channel: segments in time order, each with its channel.
    ``levels`` (:func:`levels_db` of the tracks) lets words heard only as bleed be dropped."""
    if len(results) == 1 and labels == [None]:
        return results[0]
    if levels is not None and len(results) > 1:
        results = drop_bleed(results, levels)
    segments: list[Segment] = []
    for result, label in zip(results, labels, strict=True):
        segments.extend(replace(segment, channel=label) for segment in result.segments)
    segments.sort(key=lambda s: (s.start, s.end, -1 if s.channel is None else s.channel))
    # The language heard longest stands for the file (each channel detected its own).
    spoken = [sum(s.end - s.start for s in r.segments) for r in results]
    main = results[max(range(len(results)), key=lambda i: spoken[i])]
    return Transcription(segments, main.language, max(r.duration for r in results), main.language_probability,
                         extra={**main.extra, "channels": [label for label in labels if label is not None]})


def _channels_record(report: ChannelReport | None) -> dict | None:
    if report is None:
        return None
    return {"count": report.channels, "split": report.distinct, "speech_channels": report.speech_channels,
            "correlation": report.correlation, "own_speech_s": report.own_speech_s,
            "analysed_s": report.analysed_s}
