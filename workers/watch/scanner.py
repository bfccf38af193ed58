"""Which files in a watch folder are ready to analyse.

A file counts as ready once its size and mtime have not changed for ``stable_seconds``
across successive polls and it is not empty: a file still being copied keeps growing (or,
when the copier preallocates, keeps getting a new mtime) and is never handed out. Copy tools
that preserve the original mtime are why the first sighting is never enough on its own.

Typical loop (the service owns hashing, queuing and locking)::

    trackers = {}
    for cfg in list_folders():
        if cfg["enabled"]:
            tracker = trackers.setdefault(cfg["id"], StabilityTracker(settings.watch_stable_seconds))
            for path in scan_folder(cfg, tracker):
                ...  # hash, skip if analysed, queue
"""

from __future__ import annotations

import fnmatch
import os
import time
from dataclasses import dataclass

VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".mov", ".m4v", ".mkv", ".avi", ".mxf", ".mts", ".m2ts", ".ts", ".webm", ".wmv",
    ".flv", ".mpg", ".mpeg", ".m2v", ".3gp", ".dv", ".ogv", ".vob",
})
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".wma",
})
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | AUDIO_EXTENSIONS | IMAGE_EXTENSIONS


def is_media_file(path: str | os.PathLike) -> bool:
    """True for known video, audio and image extensions (case-insensitive)."""
    return os.path.splitext(os.fspath(path))[1].lower() in MEDIA_EXTENSIONS


def is_excluded(path: str | os.PathLike, folder_cfg: dict) -> bool:
    """True when the file's extension or basename matches the folder's exclusions.

    Extensions compare lowercased (``.MP4`` == ``.mp4``; multi-part ones such as
    ``.proxy.mov`` work too). Globs match the basename only, never the folder part, and
    case-insensitively: ``*_a04.mxf`` excludes ``CLIP_A04.MXF``.
    """
    name = os.path.basename(os.fspath(path)).lower()
    for ext in folder_cfg.get("excluded_extensions") or ():
        ext = "." + ext.strip().lower().lstrip(".")
        if ext != "." and name.endswith(ext):
            return True
    return any(fnmatch.fnmatchcase(name, pattern.lower())
               for pattern in folder_cfg.get("excluded_filename_globs") or ())


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float  # when this (size, mtime) was first observed
    handed_out: bool = False


class StabilityTracker:
    """Remembers each file's size and mtime across polls of one watch folder."""

    def __init__(self, stable_seconds: float) -> None:
        if stable_seconds < 0:
            raise ValueError("stable_seconds must not be negative")
        self.stable_seconds = float(stable_seconds)
        self._seen: dict[str, _Seen] = {}

    def observe(self, path: str, size: int, mtime_ns: int, now: float) -> bool:
        """Record one sighting; True when the file has been unchanged long enough to be ready."""
        seen = self._seen.get(path)
        if seen is None or seen.size != size or seen.mtime_ns != mtime_ns:
            # New or changed: the stability clock starts over, even if it was handed out before.
            self._seen[path] = _Seen(size, mtime_ns, now)
            return False
        return size > 0 and now - seen.since >= self.stable_seconds

    def take_new(self, path: str) -> bool:
        """Mark a ready file as handed out; False when this version was handed out already."""
        seen = self._seen.get(path)
        if seen is None or seen.handed_out:
            return False
        seen.handed_out = True
        return True

    def retry(self, path: str) -> None:
        """Hand ``path`` out again on the next scan that finds it ready (e.g. after a failure)."""
        if path in self._seen:
            self._seen[path].handed_out = False

    def forget_missing(self, present: set[str]) -> None:
        """Drop files not seen in the latest scan (deleted, moved, or now excluded)."""
        for path in [p for p in self._seen if p not in present]:
            del self._seen[path]

    def pending_count(self) -> int:
        """Files seen but not yet handed out (still copying, or waiting to be stable)."""
        return sum(1 for seen in self._seen.values() if not seen.handed_out)


def iter_media_files(folder_cfg: dict):
    """Every non-hidden, non-excluded media file under the folder, recursively, as absolute paths.

    Hidden files and folders (``.name``, which includes macOS ``._`` resource forks and
    export temp files) are skipped, as is the folder's own ``cache_dir`` when it lives inside.
    Symlinked folders are not followed, so a link loop cannot trap the scan.
    """
    root = os.path.abspath(folder_cfg["folder_path"])
    if not os.path.isdir(root):
        raise FileNotFoundError(f"watch folder not found or not a folder: {root}")
    cache_dir = folder_cfg.get("cache_dir")
    skip = os.path.realpath(cache_dir) if cache_dir else None
    errors: list[OSError] = []
    for current, dirs, files in os.walk(root, onerror=errors.append):
        dirs[:] = sorted(
            d for d in dirs
            if not d.startswith(".") and os.path.realpath(os.path.join(current, d)) != skip
        )
        for name in sorted(files):
            if name.startswith(".") or not is_media_file(name):
                continue
            path = os.path.join(current, name)
            if not is_excluded(path, folder_cfg):
                yield path
    if errors and errors[0].filename and os.path.abspath(errors[0].filename) == root:
        raise errors[0]


def scan_folder(folder_cfg: dict, tracker: StabilityTracker, now: float | None = None,
                only_new: bool = True) -> list[str]:
    """Media files in the folder that are ready, sorted by path.

    With ``only_new`` (the default) each stable version of a file is returned once; a file
    that changes afterwards is returned again once it is stable again, and
    ``tracker.retry(path)`` puts one back. Raises FileNotFoundError when the folder itself is
    gone (an unmounted share); files vanishing mid-scan are skipped.
    """
    now = time.time() if now is None else now
    ready: list[str] = []
    present: set[str] = set()
    for path in iter_media_files(folder_cfg):
        try:
            stat = os.stat(path)
        except OSError:
            continue
        present.add(path)
        if tracker.observe(path, stat.st_size, stat.st_mtime_ns, now):
            if not only_new or tracker.take_new(path):
                ready.append(path)
    tracker.forget_missing(present)
    return ready
