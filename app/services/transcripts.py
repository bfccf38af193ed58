"""/transcriptions and /search/transcript, read from the cache (no model needed)."""

from __future__ import annotations

from app.errors import ApiError
from app.paths import check_cache_dir, check_media
from app.services.loaded import resolve_loaded
from workers import store, transcripts


def transcriptions(cache_dir: str, media_paths: list[str]) -> dict:
    cache_dir = check_cache_dir(cache_dir)
    out = {}
    channels = {}
    for path in media_paths:
        check_media(path, "media_paths")
        try:
            hash_str = store.hash_file(path)
        except OSError:
            raise ApiError(400, f"media_paths: file not found: {path}") from None
        transcript = transcripts.load_transcript(cache_dir, hash_str)
        out[path] = transcripts.segments_as_rows(transcript, path) if transcript else []
        heard_on = transcripts.segment_channels(transcript) if transcript else None
        if heard_on is not None:
            channels[path] = heard_on
    # Rows keep Jumper's shape; which channel each row was heard on rides alongside.
    return {"transcriptions": out, "channels": channels} if channels else {"transcriptions": out}


def search(query: str, cache_dir: str, media_paths: list[str], max_results: int) -> dict:
    cache_dir = check_cache_dir(cache_dir)
    # search_all defaults to true here; media_paths, when given, still narrow the search.
    chosen = resolve_loaded("speech", cache_dir, media_paths, not media_paths)
    rows = {}
    for hash_str, path in chosen.items():
        transcript = transcripts.load_transcript(cache_dir, hash_str)
        if transcript:
            rows[path] = (hash_str, transcripts.segments_as_rows(transcript, path))
    return {"matches": transcripts.search_segments(rows, query, max_results)}
