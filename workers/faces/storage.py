"""On-disk store of one face clustering job (``face_storage_version: 2``, packed).

Layout, in ``<cache_dir>/faces/<safe_name(job)>/``::

    job.json                  name, generation, model, params, clusters (uuid -> name),
                              label_uuids (label -> uuid), media hashes, statistics, and
                              the data files of this generation
    seg-g<n>-<k>.npz          a batch of faces: emb (c, D) float16 L2-normalised,
                              face_id int64, media int32 (index into the segment's
                              media_hashes in job.json), time float64 seconds, frame int32
                              (1 fps grid), box int32 (c, 4) x/y/w/h, score float32,
                              crop_index int64 (c, 2) = (offset, length) in the .crops file
    seg-g<n>-<k>.crops        the faces' JPEG crops back to back
    labels-g<n>.npy           int32 per face, in segment order: index into label_uuids,
                              -1 = unassigned (noise)

Every data file is written once under a new name (the generation is in the name) and never
changed; ``job.json`` is swapped last, atomically, so a reader sees one whole generation or
the one before. The previous generation's files are kept for readers mid-read; older ones
are deleted. Adding a media file writes one new segment (its faces only); re-adding a media
hash drops its old rows (rewriting a shared segment without them). Past
``MAX_SEGMENTS`` segments the smaller half is merged into one, so a library of thousands of
photos stays a few dozen files. Writers hold an exclusive lock on ``.lock`` meanwhile.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from workers.store import atomic_save_npy, atomic_write_bytes, atomic_write_json, read_json, safe_name

FACE_STORAGE_VERSION = 2
JOB_FILE = "job.json"
LOCK_FILE = ".lock"
_MEDIA_HASH = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DATA_FILE = re.compile(r"^(seg-g\d+-\d+\.(npz|crops)|labels-g\d+\.npy)$")
# What numpy raises on a truncated or garbled .npz / .npy (a vanished file is not one of them:
# readers retry a newer generation on FileNotFoundError).
_UNREADABLE = (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile)


class UnknownJob(LookupError):
    """No face clustering job by that name under this cache_dir."""


class CorruptJob(RuntimeError):
    """A job's files cannot be read; the message names the file."""


@dataclass
class MediaFaces:
    """One media file's faces, ready to store (rows in the same order in every array)."""

    media_hash: str
    face_id: np.ndarray  # int64 (c,)
    emb: np.ndarray  # (c, D), L2-normalised
    time: np.ndarray  # float64 seconds
    frame: np.ndarray  # int32 frame index on the 1 fps grid
    box: np.ndarray  # int32 (c, 4) x, y, w, h
    score: np.ndarray  # float32
    crops: list[bytes]
    # Cluster label per face (index into label_uuids), for faces that keep the cluster of the
    # stored face they re-detect; None: all unassigned (-1).
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.face_id)


def faces_root(cache_dir: str | os.PathLike) -> Path:
    return Path(cache_dir) / "faces"


def job_folder(cache_dir: str | os.PathLike, job_name: str) -> Path:
    if not isinstance(job_name, str) or not job_name.strip():
        raise ValueError("cluster_job_name must be a non-empty string")
    return faces_root(cache_dir) / safe_name(job_name)


def check_media_hash(media_hash: str) -> str:
    if not isinstance(media_hash, str) or not _MEDIA_HASH.match(media_hash):
        raise ValueError(f"media hash must be 1-64 characters of [A-Za-z0-9_-], got {media_hash!r}")
    return media_hash


def read_meta(folder: Path) -> dict | None:
    meta = read_json(folder / JOB_FILE)
    if not isinstance(meta, dict) or meta.get("face_storage_version") != FACE_STORAGE_VERSION:
        return None
    return meta


# --- reading ---------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def _load_segment(path: str, mtime_ns: int, size: int) -> dict[str, np.ndarray]:
    """Every array of a segment but the embeddings (read on demand); files never change
    under one name, the stat in the key only guards against a job deleted and recreated."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files if key != "emb"}


def _segment_arrays(path: Path) -> dict[str, np.ndarray]:
    stat = path.stat()
    try:
        return _load_segment(str(path), stat.st_mtime_ns, stat.st_size)
    except FileNotFoundError:
        raise
    except _UNREADABLE as exc:
        raise CorruptJob(f"cannot read face segment {path}: {exc}") from exc


def _segment_embeddings(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as data:
            return np.asarray(data["emb"], dtype=np.float32)
    except FileNotFoundError:
        raise
    except _UNREADABLE as exc:
        raise CorruptJob(f"cannot read embeddings in {path}: {exc}") from exc


@dataclass
class JobData:
    """One generation of a job, read whole (metadata arrays concatenated in segment order)."""

    folder: Path
    meta: dict
    labels: np.ndarray
    face_id: np.ndarray
    media: np.ndarray  # row -> index into meta["media_hashes"]
    time: np.ndarray
    frame: np.ndarray
    box: np.ndarray
    score: np.ndarray
    segment_of: np.ndarray  # row -> segment number
    row_in_segment: np.ndarray
    _embeddings: np.ndarray | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def segments(self) -> list[dict]:
        return self.meta["segments"]

    @property
    def label_uuids(self) -> list[str]:
        return self.meta["label_uuids"]

    def media_hash(self, row: int) -> str:
        return self.meta["media_hashes"][int(self.media[row])]

    def embeddings(self) -> np.ndarray:
        """(N, D) float32, read from disk on first use."""
        if self._embeddings is None:
            dim = int(self.meta.get("dim") or 0)
            parts = [_segment_embeddings(self.folder / seg["file"]) for seg in self.segments]
            self._embeddings = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
        return self._embeddings

    def crop(self, row: int) -> bytes:
        seg = self.segments[int(self.segment_of[row])]
        arrays = _segment_arrays(self.folder / seg["file"])
        offset, length = (int(v) for v in arrays["crop_index"][int(self.row_in_segment[row])])
        if length == 0:
            return b""
        with open(self.folder / seg["crops"], "rb") as handle:
            handle.seek(offset)
            return handle.read(length)

    def members(self) -> dict[str, np.ndarray]:
        """cluster uuid -> face ids currently assigned to it."""
        return {cid: self.face_id[self.labels == i] for i, cid in enumerate(self.label_uuids)}


def read_job(cache_dir: str | os.PathLike, job_name: str) -> JobData:
    folder = job_folder(cache_dir, job_name)
    # A writer may delete the generation before last between our reading job.json and its
    # files; reading job.json again then gives the newer, complete generation.
    for attempt in range(5):
        meta = read_meta(folder)
        if meta is None or meta.get("name") != job_name:
            raise UnknownJob(f"no face clustering job named {job_name!r} in {Path(cache_dir)}")
        try:
            return _read_generation(folder, meta)
        except FileNotFoundError:
            if attempt == 4:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def _read_generation(folder: Path, meta: dict) -> JobData:
    keys = ("face_id", "time", "frame", "box", "score")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    segment_of, row_in_segment, media = [], [], []
    media_number = {h: i for i, h in enumerate(meta.get("media_hashes", []))}
    for number, seg in enumerate(meta["segments"]):
        arrays = _segment_arrays(folder / seg["file"])
        count = len(arrays["face_id"])
        if count != seg["count"]:
            raise CorruptJob(f"{folder / seg['file']} holds {count} faces, job.json says {seg['count']}")
        for key in keys:
            parts[key].append(arrays[key])
        local = np.array([media_number[h] for h in seg["media_hashes"]], dtype=np.int32)
        media.append(local[arrays["media"]] if count else np.zeros(0, np.int32))
        segment_of.append(np.full(count, number, dtype=np.int32))
        row_in_segment.append(np.arange(count, dtype=np.int32))
    total = sum(seg["count"] for seg in meta["segments"])
    if meta.get("labels_file"):
        try:
            labels = np.load(folder / meta["labels_file"], allow_pickle=False).astype(np.int64)
        except FileNotFoundError:
            raise
        except _UNREADABLE as exc:
            raise CorruptJob(f"cannot read {folder / meta['labels_file']}: {exc}") from exc
        if len(labels) != total:
            raise CorruptJob(f"{folder / meta['labels_file']} has {len(labels)} labels for {total} faces")
    else:
        labels = np.full(total, -1, dtype=np.int64)

    def cat(items, dtype, shape=(0,)):
        return np.concatenate(items) if items else np.zeros(shape, dtype)

    return JobData(folder=folder, meta=meta, labels=labels, face_id=cat(parts["face_id"], np.int64),
                   media=cat(media, np.int32), time=cat(parts["time"], np.float64),
                   frame=cat(parts["frame"], np.int32), box=cat(parts["box"], np.int32, (0, 4)),
                   score=cat(parts["score"], np.float32), segment_of=cat(segment_of, np.int32),
                   row_in_segment=cat(row_in_segment, np.int32))


def list_metas(cache_dir: str | os.PathLike) -> list[dict]:
    """job.json of every readable v2 job under cache_dir, by name; unreadable ones are skipped."""
    root = faces_root(cache_dir)
    if not root.is_dir():
        return []
    metas = [meta for folder in root.iterdir() if folder.is_dir() and (meta := read_meta(folder))]
    return sorted(metas, key=lambda m: m.get("name", ""))


# --- writing ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: single-writer is the caller's business there
        fcntl = None
    with open(folder / LOCK_FILE, "a+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


MAX_SEGMENTS = 64
_ROW_KEYS = ("emb", "face_id", "time", "frame", "box", "score")


@dataclass
class _Piece:
    """A segment of the generation being written: an existing file kept as it is
    (``entry``), or rows to write (``rows``: arrays + media_hashes + crops)."""

    labels: np.ndarray
    entry: dict | None = None
    rows: dict | None = None

    @property
    def count(self) -> int:
        return len(self.labels)


def _rows_from_media(faces: MediaFaces) -> dict:
    return {"emb": np.asarray(faces.emb, dtype=np.float32).reshape(len(faces), -1),
            "face_id": np.asarray(faces.face_id, np.int64), "time": np.asarray(faces.time, np.float64),
            "frame": np.asarray(faces.frame, np.int32), "box": np.asarray(faces.box, np.int32).reshape(-1, 4),
            "score": np.asarray(faces.score, np.float32), "media": np.zeros(len(faces), np.int32),
            "media_hashes": [faces.media_hash], "crops": list(faces.crops),
            "labels": (np.full(len(faces), -1, np.int64) if faces.labels is None
                       else np.asarray(faces.labels, np.int64).reshape(len(faces)))}


def _rows_from_file(folder: Path, entry: dict) -> dict:
    path = folder / entry["file"]
    arrays = _segment_arrays(path)
    pack = (folder / entry["crops"]).read_bytes()
    crops = [pack[int(o):int(o) + int(n)] for o, n in arrays["crop_index"]]
    rows = {key: arrays[key] for key in _ROW_KEYS if key != "emb"}
    rows.update(emb=_segment_embeddings(path), media=arrays["media"],
                media_hashes=list(entry["media_hashes"]), crops=crops)
    return rows


def _select(rows: dict, keep: np.ndarray) -> dict:
    out = {key: rows[key][keep] for key in (*_ROW_KEYS, "media")}
    out["crops"] = [c for c, k in zip(rows["crops"], keep, strict=True) if k]
    used = sorted(set(out["media"].tolist()))
    remap = np.zeros(len(rows["media_hashes"]), dtype=np.int32)
    remap[used] = np.arange(len(used), dtype=np.int32)
    out["media"] = remap[out["media"]] if len(out["media"]) else out["media"]
    out["media_hashes"] = [rows["media_hashes"][i] for i in used]
    return out


def _concat(all_rows: list[dict]) -> dict:
    hashes = list(dict.fromkeys(h for rows in all_rows for h in rows["media_hashes"]))
    number = {h: i for i, h in enumerate(hashes)}
    out = {key: np.concatenate([rows[key] for rows in all_rows]) for key in _ROW_KEYS}
    out["media"] = np.concatenate([np.array([number[h] for h in rows["media_hashes"]], dtype=np.int32)[rows["media"]]
                                   if len(rows["media"]) else np.zeros(0, np.int32) for rows in all_rows])
    out["media_hashes"] = hashes
    out["crops"] = [c for rows in all_rows for c in rows["crops"]]
    return out


class JobUpdate:
    """A locked read-modify-write of one job; see :func:`update_job`.

    Stage changes with :meth:`replace_media` and by assigning ``labels`` (one per current
    face, in :class:`JobData` row order) or editing ``meta``; they are written as a new
    generation when the ``with`` block ends without an error.
    """

    def __init__(self, folder: Path, meta: dict, data: JobData | None):
        self.folder = folder
        self.meta = meta
        self.data = data
        self.labels = data.labels.copy() if data is not None else np.zeros(0, dtype=np.int64)
        self._staged: dict[str, MediaFaces] = {}
        self._keep = np.ones(len(self.labels), dtype=bool)

    def replace_media(self, faces: MediaFaces) -> None:
        """Stage one media file's faces, replacing any stored for the same hash; they arrive
        with ``faces.labels`` (default: unassigned, -1) until the job is clustered again."""
        check_media_hash(faces.media_hash)
        if self.data is not None and faces.media_hash in self.meta.get("media_hashes", []):
            self._keep &= self.data.media != self.meta["media_hashes"].index(faces.media_hash)
        self._staged[faces.media_hash] = faces

    def stored_media(self, media_hash: str) -> dict[str, np.ndarray]:
        """The faces stored now for one media hash: face_id, frame, box, label (row order)."""
        hashes = self.meta.get("media_hashes", [])
        if self.data is None or media_hash not in hashes:
            return {"face_id": np.zeros(0, np.int64), "frame": np.zeros(0, np.int32),
                    "box": np.zeros((0, 4), np.int32), "label": np.zeros(0, np.int64)}
        rows = np.flatnonzero(self.data.media == hashes.index(media_hash))
        return {"face_id": self.data.face_id[rows], "frame": self.data.frame[rows], "box": self.data.box[rows],
                "label": np.asarray(self.labels, np.int64)[rows]}

    def next_face_ids(self, count: int) -> np.ndarray:
        start = int(self.meta.get("next_face_id", 0))
        self.meta["next_face_id"] = start + count
        return np.arange(start, start + count, dtype=np.int64)

    def _pieces(self) -> list[_Piece]:
        labels = np.asarray(self.labels, dtype=np.int64)
        if len(labels) != len(self._keep):
            raise ValueError(f"labels cover {len(labels)} faces, the job holds {len(self._keep)}")
        pieces = []
        for number, entry in enumerate(self.meta.get("segments", [])):
            rows = np.flatnonzero(self.data.segment_of == number)
            keep = self._keep[rows]
            if keep.all():
                pieces.append(_Piece(labels[rows], entry=entry))
            elif keep.any():
                pieces.append(_Piece(labels[rows][keep], rows=_select(_rows_from_file(self.folder, entry), keep)))
        staged = [_rows_from_media(faces) for faces in self._staged.values() if len(faces)]
        if staged:
            pieces.append(_Piece(np.concatenate([rows["labels"] for rows in staged]), rows=_concat(staged)))
        if len(pieces) > MAX_SEGMENTS:
            order = sorted(range(len(pieces)), key=lambda i: pieces[i].count)
            small = set(order[: len(pieces) // 2])
            group = [pieces[i] for i in sorted(small)]
            rows = _concat([p.rows if p.rows is not None else _rows_from_file(self.folder, p.entry) for p in group])
            pieces = [p for i, p in enumerate(pieces) if i not in small]
            pieces.append(_Piece(np.concatenate([p.labels for p in group]), rows=rows))
        return pieces

    def commit(self) -> None:
        generation = int(self.meta.get("generation", 0)) + 1
        pieces = self._pieces()
        segments = []
        for k, piece in enumerate(pieces):
            segments.append(piece.entry if piece.entry is not None else self._write_segment(piece.rows, generation, k))
        labels = np.concatenate([p.labels for p in pieces]) if pieces else np.zeros(0, dtype=np.int64)
        labels, label_uuids = _compact(labels, list(self.meta.get("label_uuids", [])))
        labels_file = f"labels-g{generation}.npy"
        atomic_save_npy(self.folder / labels_file, labels.astype(np.int32))
        old = self.meta.get("segments", [])
        previous = [seg["file"] for seg in old] + [seg["crops"] for seg in old] + \
                   ([self.meta["labels_file"]] if self.meta.get("labels_file") else [])
        clusters = self.meta.get("clusters", {})
        with_faces = list(dict.fromkeys(h for seg in segments for h in seg["media_hashes"]))
        # Media analysed without a face still belong to the job (Jumper lists them).
        faceless = [h for h in dict.fromkeys([*self.meta.get("faceless_media", []), *self._staged])
                    if h not in with_faces]
        media_hashes = with_faces + faceless
        sizes = np.bincount(labels[labels >= 0], minlength=len(label_uuids)) if label_uuids else []
        self.meta.update({
            "face_storage_version": FACE_STORAGE_VERSION,
            "generation": generation,
            "segments": segments,
            "labels_file": labels_file,
            "label_uuids": label_uuids,
            "clusters": {cid: {"name": (clusters.get(cid) or {}).get("name")} for cid in label_uuids},
            "media_hashes": media_hashes,
            "faceless_media": faceless,
            "total_entries": int(len(labels)),
            "noise_entries": int(np.sum(labels < 0)),
            "num_clusters": len(label_uuids),
            "cluster_sizes": {cid: int(size) for cid, size in zip(label_uuids, sizes, strict=True)},
            "updated_at": time.time(),
            "previous_files": previous,
        })
        atomic_write_json(self.folder / JOB_FILE, self.meta)
        self._collect_garbage()

    def _write_segment(self, rows: dict, generation: int, k: int) -> dict:
        stem = f"seg-g{generation}-{k}"
        crop_index = np.zeros((len(rows["crops"]), 2), dtype=np.int64)
        position = 0
        for i, blob in enumerate(rows["crops"]):
            crop_index[i] = (position, len(blob))
            position += len(blob)
        atomic_write_bytes(self.folder / f"{stem}.crops", b"".join(rows["crops"]))
        buffer = io.BytesIO()
        np.savez(buffer, emb=np.asarray(rows["emb"], dtype=np.float16), face_id=rows["face_id"].astype(np.int64),
                 media=rows["media"].astype(np.int32), time=rows["time"].astype(np.float64),
                 frame=rows["frame"].astype(np.int32), box=rows["box"].astype(np.int32).reshape(-1, 4),
                 score=rows["score"].astype(np.float32), crop_index=crop_index)
        atomic_write_bytes(self.folder / f"{stem}.npz", buffer.getvalue())
        return {"file": f"{stem}.npz", "crops": f"{stem}.crops", "count": int(len(rows["face_id"])),
                "media_hashes": list(rows["media_hashes"])}

    def _collect_garbage(self) -> None:
        live = {seg["file"] for seg in self.meta["segments"]} | {seg["crops"] for seg in self.meta["segments"]}
        live |= {self.meta["labels_file"], *self.meta.get("previous_files", [])}
        for path in self.folder.iterdir():
            if _DATA_FILE.match(path.name) and path.name not in live:
                with contextlib.suppress(OSError):
                    path.unlink()


def _compact(labels: np.ndarray, label_uuids: list[str]) -> tuple[np.ndarray, list[str]]:
    """Drop clusters left without faces; renumber labels 0..K-1 in uuid-list order."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) and labels.max(initial=-1) >= len(label_uuids):
        raise ValueError("a label points past the job's cluster list")
    used = np.zeros(len(label_uuids), dtype=bool)
    used[labels[labels >= 0]] = True
    remap = np.full(len(label_uuids) + 1, -1, dtype=np.int64)
    remap[:-1][used] = np.arange(int(used.sum()))
    out = np.where(labels >= 0, remap[np.where(labels >= 0, labels, len(label_uuids))], -1)
    return out, [cid for cid, keep in zip(label_uuids, used, strict=True) if keep]


@contextlib.contextmanager
def update_job(cache_dir: str | os.PathLike, job_name: str, create: dict | None = None) -> Iterator[JobUpdate]:
    """Lock a job, read its current generation, yield a :class:`JobUpdate`, commit on success.

    ``create``: the initial job.json fields when the job may not exist yet; without it a
    missing job raises :class:`UnknownJob`.
    """
    folder = job_folder(cache_dir, job_name)
    if create is None and read_meta(folder) is None:
        raise UnknownJob(f"no face clustering job named {job_name!r} in {Path(cache_dir)}")
    with _locked(folder):
        meta = read_meta(folder)
        if meta is not None and meta.get("name") != job_name:
            raise ValueError(f"job folder {folder} belongs to job {meta.get('name')!r}")
        if meta is None:
            if create is None:
                raise UnknownJob(f"no face clustering job named {job_name!r} in {Path(cache_dir)}")
            meta = {"face_storage_version": FACE_STORAGE_VERSION, "name": job_name, "generation": 0,
                    "segments": [], "labels_file": None, "label_uuids": [], "clusters": {},
                    "next_face_id": 0, **create}
            data = None
        else:
            data = _read_generation(folder, meta)
        update = JobUpdate(folder, meta, data)
        yield update
        update.commit()


def job_has_media(cache_dir: str | os.PathLike, job_name: str, hash_str: str) -> bool:
    """Whether clustering job ``job_name`` already holds the faces of file ``hash_str``."""
    meta = read_meta(job_folder(cache_dir, job_name)) or {}
    return hash_str in meta.get("media_hashes", [])
