"""Transcripts on disk and the queries on them: /transcriptions rows and /search/transcript.

One file per media file: ``<cache_dir>/<hash_str>_audio/transcript.json``, written atomically.
It is its own manifest (format version, model key, language) and holds every segment with
its words::

    {"format_version": 1, "model_key": "whisper-tiny.en", "language": "en",
     "language_requested": "english", "media_path": "/Videos/a.mp4", "duration": 11.0,
     "created_at": 1763790000.0,
     "segments": [{"start": 0.0, "end": 10.48, "text": " And so my fellow ...",
                   "words": [{"start": 0.0, "end": 0.3, "word": " And", "probability": 0.92}, ...]}]}

A multichannel file also has ``"channels": {"count": 2, "split": true, "speech_channels": [0, 1],
...}``; when split (one speaker per channel, each transcribed alone), every segment has a
``"channel"`` (0-based) and segments of both channels are in time order (they may overlap).

Torch-free: the API process reads transcripts through this module.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from workers import store
from workers.engines.base import Segment
from workers.timecode import hhmmss

TRANSCRIPT_FORMAT_VERSION = 1
TRANSCRIPT_FILE = "transcript.json"
_AUDIO_SUFFIX = "_audio"
_HASH = re.compile(r"[0-9A-Za-z_-]{1,64}")


def _check_hash(hash_str: str) -> str:
    # The hash names a folder under cache_dir: refuse anything that could step out of it.
    if not isinstance(hash_str, str) or not _HASH.fullmatch(hash_str):
        raise ValueError(f"invalid hash_str {hash_str!r}: expected the 16 hex characters /media/metadata gives")
    return hash_str


def transcript_path(cache_dir: str | os.PathLike, hash_str: str) -> Path:
    return store.audio_dir(cache_dir, _check_hash(hash_str)) / TRANSCRIPT_FILE


def _segment_dict(segment: Segment | Mapping) -> dict:
    if isinstance(segment, Segment):
        start, end, text, words = segment.start, segment.end, segment.text, segment.words
        words = [{"start": w.start, "end": w.end, "word": w.word, "probability": w.probability} for w in words]
        channel = segment.channel
    else:
        start, end, text = segment["start"], segment["end"], segment["text"]
        words = [dict(w) for w in segment.get("words", [])]
        channel = segment.get("channel")
    for word in words:
        word["start"] = round(float(word["start"]), 3)
        word["end"] = round(float(word["end"]), 3)
        word["probability"] = round(float(word.get("probability", 0.0)), 4)
    out = {"start": round(float(start), 3), "end": round(float(end), 3), "text": str(text), "words": words}
    if channel is not None:
        out["channel"] = int(channel)
    return out


def save_transcript(cache_dir: str | os.PathLike, hash_str: str, media_path: str, model_key: str,
                    language: str | None, segments: Iterable[Segment | Mapping], *,
                    duration: float | None = None, language_requested: str | None = None,
                    channels: Mapping | None = None) -> dict:
    """Write (replace) the transcript of one media file atomically; returns what was written.

    ``channels``: what the channel analysis found for a multichannel file (``count``,
    ``split``, ``speech_channels``, ...); when ``split``, each segment carries the ``channel``
    (0-based) it was heard on. Both are extra fields: readers of the Jumper shape skip them.
    """
    transcript = {
        "format_version": TRANSCRIPT_FORMAT_VERSION,
        "model_key": model_key,
        "language": language,
        "language_requested": language_requested,
        "media_path": str(media_path),
        "duration": None if duration is None else round(float(duration), 3),
        "created_at": round(time.time(), 3),
        "segments": [_segment_dict(s) for s in segments],
    }
    if channels is not None:
        transcript["channels"] = dict(channels)
    store.atomic_write_json(transcript_path(cache_dir, hash_str), transcript)
    return transcript


def load_transcript(cache_dir: str | os.PathLike, hash_str: str) -> dict | None:
    """The stored transcript, or None when there is none (or it is unreadable or from another
    format version, which counts as not transcribed)."""
    transcript = store.read_json(transcript_path(cache_dir, hash_str))
    if not isinstance(transcript, dict) or transcript.get("format_version") != TRANSCRIPT_FORMAT_VERSION:
        return None
    if not isinstance(transcript.get("segments"), list):
        return None
    return transcript


def has_transcript(cache_dir: str | os.PathLike, hash_str: str) -> bool:
    return load_transcript(cache_dir, hash_str) is not None


def list_transcripts(cache_dir: str | os.PathLike) -> Iterator[tuple[str, dict]]:
    """Every readable transcript under ``cache_dir`` as ``(hash_str, transcript)``."""
    try:
        entries = sorted(os.scandir(cache_dir), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if not entry.name.endswith(_AUDIO_SUFFIX) or not entry.is_dir():
            continue
        hash_str = entry.name[: -len(_AUDIO_SUFFIX)]
        if not _HASH.fullmatch(hash_str):
            continue
        transcript = load_transcript(cache_dir, hash_str)
        if transcript is not None:
            yield hash_str, transcript


def segments_as_rows(transcript: Mapping, media_path: str) -> list[list]:
    """``[[start, text, end, media_path], ...]``: the /transcriptions shape, text as Whisper
    wrote it (with its leading space)."""
    return [[s["start"], s["text"], s["end"], media_path] for s in transcript.get("segments", [])]


def segment_channels(transcript: Mapping) -> list[int | None] | None:
    """The channel of each segment (in row order) of a transcript made channel by channel;
    None for a mono or downmixed one."""
    segments = transcript.get("segments", [])
    if not any(isinstance(s, Mapping) and s.get("channel") is not None for s in segments):
        return None
    return [s.get("channel") if isinstance(s, Mapping) else None for s in segments]


def load_transcript_rows(cache_dir: str | os.PathLike) -> dict[str, tuple[str, list[list]]]:
    """What /analysis-data/load-transcriptions keeps in memory: media path → (hash_str, rows),
    keyed by the path each file had when it was transcribed."""
    loaded: dict[str, tuple[str, list[list]]] = {}
    for hash_str, transcript in list_transcripts(cache_dir):
        media_path = transcript.get("media_path") or hash_str
        loaded[media_path] = (hash_str, segments_as_rows(transcript, media_path))
    return loaded


def format_hms(seconds: float) -> str:
    """``HH:MM:SS``, seconds truncated (12.9 → 00:00:12), as Jumper's timestamps are."""
    return hhmmss(seconds)


def search_segments(rows_by_media: Mapping[str, tuple[str, Sequence[Sequence]]], query: str,
                    max_results: int = 50, media_paths: Iterable[str] | None = None) -> list[dict]:
    """/search/transcript: segments whose text contains ``query``, case-insensitively.

    ``rows_by_media`` maps a media path to ``(hash_str, rows)`` (see :func:`load_transcript_rows`).
    ``media_paths`` restricts the search to those files (None or empty: all of them). Matches
    come in file order, then time order, at most ``max_results``.
    """
    if not isinstance(query, str) or not query.strip():
        raise ValueError("query must be a non-empty string")
    if isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1:
        raise ValueError(f"max_results must be a positive integer, got {max_results!r}")
    # casefold, not lower: "STRASSE" finds "Straße", as a user expects of case-insensitive.
    needle = query.casefold()
    wanted = set(media_paths) if media_paths else None
    matches: list[dict] = []
    for media_path, (hash_str, rows) in rows_by_media.items():
        if wanted is not None and media_path not in wanted:
            continue
        for row in sorted(rows, key=lambda r: float(r[0])):
            start, text, end = float(row[0]), str(row[1]), float(row[2])
            if needle not in text.casefold():
                continue
            matches.append({
                "media_path": media_path,
                "hash_str": hash_str,
                "start_seconds": start,
                "end_seconds": end,
                "text": text.strip(),
                "start_timestamp": format_hms(start),
                "end_timestamp": format_hms(end),
            })
            if len(matches) >= max_results:
                return matches
    return matches
