"""Where analysis results live on disk, and how they are written.

Layout under a request's ``cache_dir`` (Jumper's layout, docs/architecture.md "Storage")::

    <cache_dir>/<hash_str>/            visual analysis of one file
        manifest.json                  format version, probe facts, frame times, scenes, models done
        frames.pack + frames.idx.npy   1 fps JPEG thumbnails, packed, with an offset index
        emb-<model_key>.npy            float16 L2-normalised embeddings, one row per frame
    <cache_dir>/<hash_str>_audio/      transcription of one file
    <cache_dir>/faces/<job>/           one face clustering job

Every file is written to a temporary name in the same folder and renamed into place, so a
killed worker never leaves a torn file behind. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

VISUAL_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FRAMES_PACK = "frames.pack"
FRAMES_INDEX = "frames.idx.npy"

_SAMPLE = 64 * 1024


def _read_umask() -> int:
    # There is no read-only umask call; this runs once, at import, before any thread starts.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Files we write get the permissions any new file of this user gets (mkstemp makes 0600):
# analysis data on a shared NAS is read by workers on other machines, exports by editors.
FILE_MODE = 0o666 & ~_read_umask()


def hash_file(path: str | os.PathLike) -> str:
    """16 hex chars from the file's size and three sampled 64 KiB blocks (start, middle, end).

    Depends on content only, never on the path: a moved or renamed file keeps its analysis,
    and a 50 GB file hashes in milliseconds.
    """
    size = os.path.getsize(path)
    digest = hashlib.blake2b(digest_size=8)
    digest.update(size.to_bytes(8, "little"))
    with open(path, "rb") as handle:
        if size <= 3 * _SAMPLE:
            digest.update(handle.read())
        else:
            for offset in (0, size // 2 - _SAMPLE // 2, size - _SAMPLE):
                handle.seek(offset)
                digest.update(handle.read(_SAMPLE))
    return digest.hexdigest()


def visual_dir(cache_dir: str | os.PathLike, hash_str: str) -> Path:
    return Path(cache_dir) / hash_str


def audio_dir(cache_dir: str | os.PathLike, hash_str: str) -> Path:
    return Path(cache_dir) / f"{hash_str}_audio"


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A file-system-safe, stable folder name for a user-given label (a model key, a job name)."""
    cleaned = _UNSAFE.sub("_", name).strip("._") or "unnamed"
    digest = hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
    return f"{cleaned[:60]}-{digest}"


def embeddings_file(cache_dir: str | os.PathLike, hash_str: str, model_key: str) -> Path:
    return visual_dir(cache_dir, hash_str) / f"emb-{safe_name(model_key)}.npy"


# --- atomic writes -----------------------------------------------------------------------


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.chmod(tmp, FILE_MODE)
        except OSError:
            pass  # some network shares refuse chmod; the data is what matters
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer whose handle we do not hold (ffmpeg, a
    download): renamed over ``path`` when the block ends without error, removed otherwise. The
    suffix lets such a writer infer the format (``.mp4``, ``.jpg``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with contextlib.suppress(OSError):  # some network shares refuse chmod
            os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, ensure_ascii=False).encode("utf-8"))


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())


def read_json(path: str | os.PathLike, default=None):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return default


# --- packed thumbnails -------------------------------------------------------------------


def write_frames_pack(folder: Path, jpegs: Iterable[bytes]) -> int:
    """Write JPEG blobs into one pack file plus an (N, 2) int64 offset/length index."""
    blobs = list(jpegs)
    offsets = np.zeros((len(blobs), 2), dtype=np.int64)
    position = 0
    for i, blob in enumerate(blobs):
        offsets[i] = (position, len(blob))
        position += len(blob)
    atomic_write_bytes(folder / FRAMES_PACK, b"".join(blobs))
    atomic_save_npy(folder / FRAMES_INDEX, offsets)
    return len(blobs)


def read_frame_jpeg(folder: Path, index: int) -> bytes | None:
    """One thumbnail by its 1 fps frame index, or None when there is none."""
    return read_frame_jpegs(folder, [index])[0]


def read_frame_jpegs(folder: Path, indices: Sequence[int]) -> list[bytes | None]:
    """Several thumbnails of one file (indices clamped to the frames there are): the offset
    index is read once and the pack opened once, not once per thumbnail (a search answer
    carries 50)."""
    try:
        offsets = np.load(folder / FRAMES_INDEX)
    except (FileNotFoundError, ValueError):
        return [None] * len(indices)
    if len(offsets) == 0:
        return [None] * len(indices)
    with open(folder / FRAMES_PACK, "rb") as handle:
        fd = handle.fileno()
        out: list[bytes | None] = []
        for index in indices:
            start, length = (int(v) for v in offsets[min(max(int(index), 0), len(offsets) - 1)])
            out.append(os.pread(fd, length, start))
        return out


def frame_count(folder: Path) -> int:
    try:
        return int(np.load(folder / FRAMES_INDEX, mmap_mode="r").shape[0])
    except (FileNotFoundError, ValueError):
        return 0


# --- manifests ---------------------------------------------------------------------------


def read_visual_manifest(cache_dir: str | os.PathLike, hash_str: str) -> dict | None:
    manifest = read_json(visual_dir(cache_dir, hash_str) / MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format_version") != VISUAL_FORMAT_VERSION:
        return None
    return manifest


def has_frames(cache_dir: str | os.PathLike, hash_str: str) -> bool:
    manifest = read_visual_manifest(cache_dir, hash_str)
    return bool(manifest and manifest.get("frames_complete"))


def embedded_manifest(cache_dir: str | os.PathLike, hash_str: str, model_key: str) -> dict | None:
    """The file's manifest when it holds embeddings of ``model_key``, else None."""
    manifest = read_visual_manifest(cache_dir, hash_str)
    return manifest if manifest and model_key in manifest.get("embeddings", {}) else None


def has_embeddings(cache_dir: str | os.PathLike, hash_str: str, model_key: str) -> bool:
    return embedded_manifest(cache_dir, hash_str, model_key) is not None
