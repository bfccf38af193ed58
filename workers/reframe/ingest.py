"""Fetching a video into the data folder: an http(s) URL streamed to disk with a size limit,
a web page through yt-dlp when it is installed, or a local file. Stored content-addressed
(``<data_dir>/media/<hash><ext>``, the project's content hash), so a second ingest of the
same content reuses the stored file instead of keeping a copy.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from workers import store
from workers.media.probe import MediaError, MediaInfo, probe

CHUNK = 1024 * 1024
MEDIA_TYPES = ("video/", "audio/", "application/octet-stream", "application/mp4", "application/x-matroska",
               "binary/octet-stream")


TEXT_FORMATS = {"tty", "ansi", "bin", "xbin", "idf", "adf"}
TEXT_CODECS = {"ansi", "bintext", "xbin", "idf"}


class IngestError(ValueError):
    """The source cannot become a stored video; the message says why, for the client."""


class Stopped(RuntimeError):
    pass


@dataclass
class Ingested:
    path: Path
    content_hash: str
    size: int
    info: MediaInfo
    reused: bool


def local_path_of(source: str) -> str | None:
    """The filesystem path a ``file://`` URL or an absolute path names; None for other URLs."""
    parts = urlsplit(source)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise IngestError(f"file:// URLs must name a local file (got host {parts.netloc!r})")
        return unquote(parts.path)
    if parts.scheme == "" and os.path.isabs(source):
        return source
    return None


def is_remote(source: str) -> bool:
    return urlsplit(source).scheme in ("http", "https")


def _ext_for(source: str, fallback: str = ".mp4") -> str:
    ext = os.path.splitext(urlsplit(source).path)[1].lower()
    return ext if 1 < len(ext) <= 6 and ext[1:].isalnum() else fallback


def download(url: str, dest: Path, *, max_bytes: int, timeout: float,
             progress: Callable[[float], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> str:
    """Stream ``url`` into ``dest``; returns the reply's Content-Type. IngestError for an
    unreachable URL, an HTTP error, a body over ``max_bytes``, or a web page when yt-dlp
    is not installed (a page with yt-dlp is handed to :func:`download_page`)."""
    import requests

    try:
        reply = requests.get(url, stream=True, timeout=timeout, allow_redirects=True)
    except requests.RequestException as exc:
        raise IngestError(f"URL unreachable: {exc.__class__.__name__}: {exc}") from None
    with reply:
        if reply.status_code >= 400:
            raise IngestError(f"URL answered HTTP {reply.status_code}")
        content_type = reply.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type.startswith("text/html"):
            return content_type
        length = int(reply.headers.get("Content-Length") or 0) or None
        if length and length > max_bytes:
            raise IngestError(f"file too large: {length} bytes (limit {max_bytes}, SIGHTLINE_INGEST_MAX_BYTES)")
        received = 0
        try:
            with open(dest, "wb") as handle:
                for chunk in reply.iter_content(CHUNK):
                    received += len(chunk)
                    if received > max_bytes:
                        raise IngestError(f"file too large: over {max_bytes} bytes (SIGHTLINE_INGEST_MAX_BYTES)")
                    handle.write(chunk)
                    if should_stop is not None and should_stop():
                        raise Stopped()
                    if progress is not None and length:
                        progress(min(1.0, received / length))
        except requests.RequestException as exc:
            raise IngestError(f"download interrupted: {exc.__class__.__name__}: {exc}") from None
    if received == 0:
        raise IngestError("URL answered an empty body, not media")
    return content_type


def yt_dlp_available() -> bool:
    return importlib.util.find_spec("yt_dlp") is not None


def download_page(url: str, folder: Path, *, max_bytes: int,
                  progress: Callable[[float], None] | None = None) -> Path:
    """A page that holds a video (a hosting site) through yt-dlp, best single file."""
    import yt_dlp

    def hook(status: dict) -> None:
        total = status.get("total_bytes") or status.get("total_bytes_estimate")
        if progress is not None and total and status.get("downloaded_bytes") is not None:
            progress(min(1.0, status["downloaded_bytes"] / total))

    options = {"outtmpl": str(folder / "page.%(ext)s"), "format": "best[ext=mp4]/best", "quiet": True,
               "noprogress": True, "max_filesize": max_bytes, "progress_hooks": [hook], "noplaylist": True}
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            ydl.download([url])
    except Exception as exc:  # noqa: BLE001 - yt-dlp raises its own error types for every failure
        raise IngestError(f"yt-dlp could not fetch the page: {exc}") from None
    files = [p for p in folder.glob("page.*") if p.is_file()]
    if not files:
        raise IngestError("the page holds no downloadable video (or it is over the size limit)")
    return files[0]


def _check_video(path: Path) -> MediaInfo:
    try:
        info = probe(path)
    except MediaError as exc:
        raise IngestError(f"not a media file: {exc}") from None
    if info.container in TEXT_FORMATS or (info.video_codec or "") in TEXT_CODECS:
        # ffmpeg renders a .txt file as ANSI art "video": a text file is still not media.
        raise IngestError(f"not a media file: it is text ({info.container})")
    if not info.has_video or info.kind != "video":
        raise IngestError(f"not a video: the file is {info.kind} only (reframing needs a video stream)")
    if info.duration <= 0 or info.fps <= 0:
        raise IngestError("the video has no readable duration or frame rate")
    return info


def _store(candidate: Path, ext: str, data_dir: Path, *, keep_candidate: bool) -> tuple[Path, str, bool]:
    """Move (or copy) a checked file to its content address; reuse one already stored."""
    content_hash = store.hash_file(candidate)
    media_dir = data_dir / "media"
    media_dir.mkdir(parents=True, exist_ok=True)
    final = media_dir / f"{content_hash}{ext}"
    if final.exists() and final.stat().st_size == candidate.stat().st_size:
        if not keep_candidate:
            candidate.unlink(missing_ok=True)
        return final, content_hash, True
    if keep_candidate:
        partial = media_dir / f".{uuid.uuid4().hex}{ext}.part"
        try:
            os.link(candidate, partial)  # same filesystem: no copy at all
        except OSError:
            shutil.copyfile(candidate, partial)
        os.chmod(partial, store.FILE_MODE)
        os.replace(partial, final)
    else:
        os.chmod(candidate, store.FILE_MODE)
        os.replace(candidate, final)
    return final, content_hash, False


def ingest(source: str, data_dir: Path, *, max_bytes: int, timeout: float = 30.0,
           progress: Callable[[float], None] | None = None,
           should_stop: Callable[[], bool] | None = None) -> Ingested:
    """Fetch ``source`` (already checked against the allowed roots) and store it.

    Raises IngestError with a client-facing reason for anything that does not end as a
    stored, readable video.
    """
    data_dir = Path(data_dir)
    local = local_path_of(source)
    if local is not None:
        path = Path(local)
        if not path.is_file():
            raise IngestError(f"file not found: {local}")
        if path.stat().st_size > max_bytes:
            raise IngestError(f"file too large: {path.stat().st_size} bytes (limit {max_bytes})")
        info = _check_video(path)
        final, content_hash, reused = _store(path, path.suffix.lower() or ".mp4", data_dir, keep_candidate=True)
        if progress is not None:
            progress(1.0)
        return Ingested(final, content_hash, final.stat().st_size, info, reused)
    if not is_remote(source):
        raise IngestError("url must be http(s)://, file:// or an absolute path")
    tmp_root = data_dir / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root) as folder:
        folder = Path(folder)
        target = folder / "download"
        content_type = download(source, target, max_bytes=max_bytes, timeout=timeout, progress=progress,
                                should_stop=should_stop)
        ext = _ext_for(source)
        if content_type.startswith("text/html"):
            if not yt_dlp_available():
                raise IngestError("the URL is a web page, not a media file (install yt-dlp to fetch videos "
                                  "from pages)")
            target = download_page(source, folder, max_bytes=max_bytes, progress=progress)
            ext = target.suffix.lower() or ".mp4"
        info = _check_video(target)
        final, content_hash, reused = _store(target, ext, data_dir, keep_candidate=False)
    if progress is not None:
        progress(1.0)
    return Ingested(final, content_hash, final.stat().st_size, info, reused)
