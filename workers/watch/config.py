"""Watch-folder settings and the service's on/off switch, kept in one JSON file.

The file is ``load_settings().watch_folders_file`` (``$SIGHTLINE_HOME/watch_folders.json``)
so the configuration survives a Redis restart. Every change is a read-modify-write under an
exclusive ``flock`` on a sidecar lock file, and the new file is renamed into place, so two
processes (the API and a worker) never lose each other's updates and a reader never sees a
torn file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from workers.settings import load_settings
from workers.store import atomic_write_json, read_json
from workers.watch.fields import BOOLEAN_FIELDS, EDITABLE, load_fields

try:
    import fcntl
except ImportError:  # Windows: only the in-process lock below protects updates
    fcntl = None

FORMAT_VERSION = 1

DEFAULTS: dict = {
    "enabled": True,
    "enable_visual_analysis": True,
    "enable_audio_analysis": False,
    "enable_face_analysis": False,
    "audio_language": "english",
    "cluster_job_name": None,
    "face_eps": 0.48,
    "face_min_samples": 5,
    "excluded_extensions": [],
    "excluded_filename_globs": [],
}
# Fields the server owns; a client that sends a whole folder object back gets them ignored.
_READ_ONLY = {"id", "created_at", "last_poll_time", "files_analyzed_count"}

_thread_lock = threading.Lock()


class UnknownWatchFolder(LookupError):
    """No watch folder has this id (the HTTP layer answers 404)."""

    def __init__(self, folder_id: str) -> None:
        super().__init__(f"no watch folder with id {folder_id!r}")
        self.folder_id = folder_id


# --- public API ----------------------------------------------------------------------------


def list_folders() -> list[dict]:
    """All watch folders, oldest first."""
    return [dict(folder) for folder in _read()["folders"]]


def get_folder(folder_id: str) -> dict:
    for folder in _read()["folders"]:
        if folder["id"] == folder_id:
            return dict(folder)
    raise UnknownWatchFolder(folder_id)


def add_folder(fields: dict) -> dict:
    """Validate ``fields`` (``folder_path`` required), fill the defaults, store, return it."""
    if not isinstance(fields, dict):
        raise ValueError("watch folder settings must be an object")
    if not fields.get("folder_path"):
        raise ValueError("folder_path is required")
    changes = _validated(fields)
    folder = {
        "id": f"wf-{secrets.token_hex(6)}",
        "folder_path": changes.pop("folder_path"),
        "cache_dir": None,
        **DEFAULTS,
        "excluded_extensions": [],
        "excluded_filename_globs": [],
        "created_at": int(time.time()),
        "last_poll_time": None,
        "files_analyzed_count": 0,
    }
    folder.update(changes)
    if not folder["cache_dir"]:
        folder["cache_dir"] = default_cache_dir()
    _check_consistent(folder)
    with _locked() as state:
        _check_not_watched(state["folders"], folder["folder_path"], folder["id"])
        state["folders"].append(folder)
    return dict(folder)


def update_folder(folder_id: str, fields: dict) -> dict:
    """Change only the given fields; the result is validated as a whole."""
    if not isinstance(fields, dict):
        raise ValueError("watch folder settings must be an object")
    changes = _validated(fields)
    if "cache_dir" in changes and not changes["cache_dir"]:
        changes["cache_dir"] = default_cache_dir()
    with _locked() as state:
        folder = _find(state["folders"], folder_id)
        updated = {**folder, **changes}
        _check_consistent(updated)
        if "folder_path" in changes:
            _check_not_watched(state["folders"], updated["folder_path"], folder_id)
        folder.update(changes)
        return dict(folder)


def delete_folder(folder_id: str) -> dict:
    """Remove a watch folder (its analysis data stays); returns what was removed."""
    with _locked() as state:
        folder = _find(state["folders"], folder_id)
        state["folders"].remove(folder)
        return dict(folder)


def record_poll(folder_id: str, when: float | None = None) -> dict | None:
    """Stamp ``last_poll_time``; None when the folder was deleted meanwhile."""
    with _locked() as state:
        folder = _find_or_none(state["folders"], folder_id)
        if folder is None:
            return None
        folder["last_poll_time"] = int(time.time() if when is None else when)
        return dict(folder)


def increment_analyzed(folder_id: str, n: int = 1) -> dict | None:
    """Add ``n`` to ``files_analyzed_count``; None when the folder was deleted meanwhile."""
    with _locked() as state:
        folder = _find_or_none(state["folders"], folder_id)
        if folder is None:
            return None
        folder["files_analyzed_count"] = int(folder.get("files_analyzed_count") or 0) + int(n)
        return dict(folder)


def service_enabled() -> bool:
    """Whether the watch service was last left running (so it resumes after a restart)."""
    return bool(_read().get("service_enabled", False))


def set_service_enabled(enabled: bool) -> None:
    with _locked() as state:
        state["service_enabled"] = bool(enabled)


def default_cache_dir() -> str:
    return str(load_settings().home / "cache")


def _string_list(value, name: str, clean: Callable[[str], str]) -> list[str]:
    """``value`` must be a list of strings: each one ``clean``ed, the empty ones dropped, no repeats."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f"{name} must be a list of strings")
    result: list[str] = []
    for raw in value:
        if not isinstance(raw, str):
            raise ValueError(f"{name} entries must be strings, got {raw!r}")
        item = clean(raw)
        if item and item not in result:
            result.append(item)
    return result


def _extension(raw: str) -> str:
    ext = raw.strip().lower().lstrip(".")
    if "/" in ext or "\\" in ext:
        raise ValueError(f"not a file extension: {raw!r}")
    return f".{ext}" if ext else ""


def normalise_extensions(extensions) -> list[str]:
    """``["MP4", ".Mov", "mp4"]`` -> ``[".mp4", ".mov"]``: lowercase, one leading dot, no repeats."""
    return _string_list(extensions, "excluded_extensions", _extension)


# --- validation ----------------------------------------------------------------------------


def _validated(fields: dict) -> dict:
    unknown = set(fields) - EDITABLE - _READ_ONLY
    if unknown:
        raise ValueError(f"unknown watch folder field(s): {', '.join(sorted(unknown))}")
    for key in BOOLEAN_FIELDS:
        # The rules read "yes" as true for an HTTP form; what is stored is a real boolean.
        if key in fields and not isinstance(fields[key], bool):
            raise ValueError(f"{key} must be true or false, got {fields[key]!r}")
    out = load_fields({key: value for key, value in fields.items() if key not in _READ_ONLY})
    if "folder_path" in out:
        out["folder_path"] = _existing_folder(out["folder_path"])
    if "cache_dir" in out:
        out["cache_dir"] = _absolute_path(out["cache_dir"], "cache_dir") if out["cache_dir"] else None
    if "audio_language" in out:
        from workers.engines.speech import normalize_language

        normalize_language(out["audio_language"])  # an unknown language is refused now, not file by file later
        out["audio_language"] = out["audio_language"].strip()
    if "cluster_job_name" in out:
        name = out["cluster_job_name"]
        out["cluster_job_name"] = name.strip() if name and name.strip() else None
    if "excluded_extensions" in out:
        out["excluded_extensions"] = normalise_extensions(out["excluded_extensions"])
    if "excluded_filename_globs" in out:
        out["excluded_filename_globs"] = _globs(out["excluded_filename_globs"])
    return out


def _check_consistent(folder: dict) -> None:
    if folder.get("enable_face_analysis") and not folder.get("cluster_job_name"):
        raise ValueError("cluster_job_name is required when enable_face_analysis is true")


def _existing_folder(value) -> str:
    path = _absolute_path(value, "folder_path")
    if not os.path.isdir(path):
        raise ValueError(f"folder_path does not exist or is not a folder: {path}")
    return path


def _absolute_path(value, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} must be a path")
    path = Path(value.strip()).expanduser()
    if not path.is_absolute():
        raise ValueError(f"{key} must be an absolute path, got {value!r}")
    return os.path.normpath(path)


def _globs(value) -> list[str]:
    return _string_list(value, "excluded_filename_globs", str.strip)


def _check_not_watched(folders: list[dict], folder_path: str, own_id: str) -> None:
    wanted = os.path.realpath(folder_path)
    for other in folders:
        if other["id"] != own_id and os.path.realpath(other["folder_path"]) == wanted:
            raise ValueError(f"{folder_path} is already a watch folder ({other['id']})")


def _find(folders: list[dict], folder_id: str) -> dict:
    folder = _find_or_none(folders, folder_id)
    if folder is None:
        raise UnknownWatchFolder(folder_id)
    return folder


def _find_or_none(folders: list[dict], folder_id: str) -> dict | None:
    return next((f for f in folders if f.get("id") == folder_id), None)


# --- storage -------------------------------------------------------------------------------


def _path() -> Path:
    return load_settings().watch_folders_file


def _read(path: Path | None = None) -> dict:
    state = read_json(path or _path(), default=None)
    if not isinstance(state, dict) or not isinstance(state.get("folders"), list):
        return {"version": FORMAT_VERSION, "service_enabled": False, "folders": []}
    return state


@contextlib.contextmanager
def _locked() -> Iterator[dict]:
    """Yield the current state under an exclusive lock; write it back when the block succeeds."""
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _thread_lock, open(path.with_name(path.name + ".lock"), "a+") as lock_file:
        if fcntl is not None:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            state = _read(path)
            yield state
            state["version"] = FORMAT_VERSION
            atomic_write_json(path, state)
        finally:
            if fcntl is not None:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
