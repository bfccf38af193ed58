"""Every operation behind Jumper's face clustering endpoints, as plain functions.

Values in, JSON-ready dicts out; no HTTP, Celery or Flask. Bad input raises ``ValueError``
(a 400); a job, cluster, person or face that does not exist raises a ``LookupError``
subclass (:class:`UnknownJob`, :class:`UnknownCluster`, :class:`UnknownPerson`,
:class:`UnknownFace`; a 404). Mutations validate everything before writing anything.

The special cluster id ``"noise"`` names the unassigned faces in ``cluster_faces`` and in
``modify`` moves; ``"new"`` as a move target splits the faces out into a new cluster.
"""

from __future__ import annotations

import base64
import math
import os
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from workers.engines.base import Face
from workers.faces import clustering
from workers.faces.storage import (
    FACE_STORAGE_VERSION,
    JobData,
    MediaFaces,
    UnknownJob,
    check_media_hash,
    list_metas,
    read_job,
    update_job,
)

NOISE_ID = "noise"
NEW_ID = "new"
MAX_PAGE = 2000
MAX_NAME_LENGTH = 200

__all__ = [
    "UnknownJob", "UnknownCluster", "UnknownPerson", "UnknownFace",
    "add_faces", "cluster_job", "list_jobs", "cluster_samples", "cluster_faces",
    "set_names", "modify", "people_frames", "frame_index",
]


class UnknownCluster(LookupError):
    """A cluster id that the job does not have."""


class UnknownPerson(LookupError):
    """No cluster of the job carries that person name."""


class UnknownFace(LookupError):
    """A face id that the job does not have."""


def frame_index(time_seconds: float) -> int:
    """The frame on the 1 fps grid a time falls in: frame k covers [k, k+1) seconds."""
    return max(0, int(math.floor(float(time_seconds) + 1e-6)))


def _b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode("ascii")


def _read(cache_dir, job_name: str, work: Callable[[JobData], Any]) -> Any:
    """Run ``work`` on the current generation, again on a newer one if two writers in a row
    removed the files under our feet (crops are read after job.json)."""
    for attempt in range(4):
        data = read_job(cache_dir, job_name)
        try:
            return work(data)
        except FileNotFoundError:
            if attempt == 3:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def _int_arg(name: str, value, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise ValueError(f"{name} must be at least {minimum}{upper}, got {value}")
    return int(value)


# --- storing and clustering -----------------------------------------------------------------


def add_faces(cache_dir: str | os.PathLike, job_name: str, media_hash: str,
              faces: Iterable[tuple[float, Face]], eps: float | None = None,
              min_samples: int | None = None, model: str | None = None, keep_identity: bool = False) -> dict:
    """Store one media file's faces in a job (created on first use); no clustering.

    ``faces``: (time_seconds, Face) pairs; photos use time 0. Adding a media hash again
    replaces its faces; they wait unassigned for the next clustering, under new face ids,
    unless ``keep_identity``: then a face found again where a stored face of that file was
    (same frame, boxes overlapping) keeps its face id and cluster, so analysing a file again
    renames, renumbers and unassigns nobody. ``eps`` / ``min_samples`` become the job's parameters for the next
    :func:`cluster_job` when given (a new job starts with Jumper's 0.48 / 5). ``model`` is the
    recognition model that made the embeddings (default: settings ``face_model``); a job
    never mixes models. Returns {cluster_job_name, media_hash, faces_added, total_entries}.
    """
    check_media_hash(media_hash)
    faces = list(faces)
    if eps is not None or min_samples is not None:
        clustering.ClusterParams(eps if eps is not None else clustering.JUMPER_DEFAULT_EPS,
                                 min_samples if min_samples is not None else clustering.DEFAULT_MIN_SAMPLES
                                 ).validate()
    if model is None:
        from workers.settings import load_settings

        model = load_settings().face_model
    rows = _face_rows(faces)
    dim = rows["emb"].shape[1] if len(faces) else None
    create = {"model": model, "dim": dim, "match_threshold": _match_threshold(model),
              "params": {"eps": clustering.JUMPER_DEFAULT_EPS, "min_samples": clustering.DEFAULT_MIN_SAMPLES},
              "created_at": time.time(), "clustered": False}
    with update_job(cache_dir, job_name, create=create) as job:
        if job.meta.get("model") != model:
            raise ValueError(f"job {job_name!r} holds {job.meta.get('model')} embeddings; "
                             f"faces from {model} cannot be clustered with them")
        if dim is not None:
            if job.meta.get("dim") is None:
                job.meta["dim"] = int(dim)
            elif int(job.meta["dim"]) != int(dim):
                raise ValueError(f"job {job_name!r} holds {job.meta['dim']}-d embeddings, got {dim}-d")
        params = dict(job.meta.get("params") or {})
        if eps is not None:
            params["eps"] = float(eps)
        if min_samples is not None:
            params["min_samples"] = int(min_samples)
        job.meta["params"] = params
        if keep_identity:
            face_id, labels = _carry_identity(job, media_hash, rows["frame"], rows["box"])
        else:
            face_id, labels = job.next_face_ids(len(faces)), None
        job.replace_media(MediaFaces(media_hash=media_hash, face_id=face_id, labels=labels, **rows))
    return {"cluster_job_name": job_name, "media_hash": media_hash, "faces_added": len(faces),
            "total_entries": int(job.meta["total_entries"])}


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[0] + box[2], boxes[:, 0] + boxes[:, 2])
    y2 = np.minimum(box[1] + box[3], boxes[:, 1] + boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None).astype(np.float64) * np.clip(y2 - y1, 0, None)
    union = float(box[2]) * box[3] + boxes[:, 2].astype(np.float64) * boxes[:, 3] - inter
    return inter / np.maximum(union, 1.0)


def _carry_identity(job, media_hash: str, frames: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Face ids and labels for a media file's new faces: one found again where a stored face
    of the file was (same frame, IoU >= 0.5, best overlaps first) keeps that face's id and
    cluster; others get new ids and wait unassigned (-1)."""
    stored = job.stored_media(media_hash)
    face_id = np.full(len(frames), -1, dtype=np.int64)
    labels = np.full(len(frames), -1, dtype=np.int64)
    if len(stored["face_id"]) and len(frames):
        pairs = []
        for i in range(len(frames)):
            same_frame = np.flatnonzero(stored["frame"] == frames[i])
            if len(same_frame):
                overlap = _iou(boxes[i], stored["box"][same_frame])
                pairs.extend((float(o), i, int(j)) for o, j in zip(overlap, same_frame, strict=True) if o >= 0.5)
        used_new, used_old = set(), set()
        for _, i, j in sorted(pairs, reverse=True):  # best overlaps first, each face once
            if i not in used_new and j not in used_old:
                used_new.add(i)
                used_old.add(j)
                face_id[i] = stored["face_id"][j]
                labels[i] = stored["label"][j]
    fresh = np.flatnonzero(face_id < 0)
    face_id[fresh] = job.next_face_ids(len(fresh))
    return face_id, labels


def _face_rows(faces: list) -> dict:
    times, embs, boxes, scores, crops = [], [], [], [], []
    for item in faces:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], Face)):
            raise ValueError("faces must be (time_seconds, Face) pairs")
        seconds, face = item
        if not isinstance(seconds, (int, float, np.integer, np.floating)) or not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"a face's time must be a non-negative number of seconds, got {seconds!r}")
        emb = np.asarray(face.embedding, dtype=np.float32).ravel()
        if emb.size == 0 or not np.all(np.isfinite(emb)):
            raise ValueError("a face embedding is empty or not finite")
        times.append(float(seconds))
        embs.append(emb / max(float(np.linalg.norm(emb)), 1e-12))
        boxes.append([int(v) for v in face.box])
        scores.append(float(face.score))
        crops.append(bytes(face.crop_jpeg or b""))
    if len({e.size for e in embs}) > 1:
        raise ValueError("faces of one media file have embeddings of different sizes")
    return {"emb": np.stack(embs) if embs else np.zeros((0, 0), np.float32),
            "time": np.array(times, dtype=np.float64),
            "frame": np.array([frame_index(t) for t in times], dtype=np.int32),
            "box": np.array(boxes, dtype=np.int32).reshape(-1, 4),
            "score": np.array(scores, dtype=np.float32), "crops": crops}


def _match_threshold(model: str) -> float:
    from workers.engines.faces import match_threshold

    return match_threshold(model)


def cluster_job(cache_dir: str | os.PathLike, job_name: str, eps: float | None = None,
                min_samples: int | None = None, auto_detect_params: bool = False,
                clear_names: bool = False, progress: Callable[[float], None] | None = None) -> dict:
    """(Re)cluster every face of a job and store the labels.

    Parameters left ``None`` come from the job. Clusters whose members overlap an old
    cluster's (Jaccard >= 0.5) keep its uuid and name; ``clear_names`` drops every name.
    ``progress(fraction)`` is called as work advances. Returns a summary with
    ``cluster_media_hashes`` (the job's media hashes) for the completion event.
    """
    started = time.monotonic()
    data = read_job(cache_dir, job_name)
    stored = data.meta.get("params") or {}
    params = clustering.ClusterParams(
        eps if eps is not None else stored.get("eps", clustering.JUMPER_DEFAULT_EPS),
        min_samples if min_samples is not None else stored.get("min_samples", clustering.DEFAULT_MIN_SAMPLES),
    ).validate()
    threshold = float(data.meta.get("match_threshold") or _match_threshold(data.meta.get("model", "Dlib")))
    embeddings = data.embeddings()
    validity = None
    if auto_detect_params and len(embeddings):
        params, validity, labels = clustering.auto_detect_params(embeddings, threshold, progress=_part(progress, 0.9))
    elif len(embeddings):
        labels = clustering.cluster_embeddings(embeddings, params, threshold, progress=_part(progress, 0.9))
    else:
        labels = np.zeros(0, dtype=np.int64)
    mapping = clustering.match_cluster_ids(data.members(), labels, data.face_id)
    by_face = dict(zip(data.face_id.tolist(), labels.tolist(), strict=True))

    with update_job(cache_dir, job_name) as job:
        # Faces added while we computed arrive unassigned; faces removed are simply gone.
        current = job.data.face_id.tolist() if job.data is not None else []
        job.labels = np.array([by_face.get(fid, -1) for fid in current], dtype=np.int64)
        label_uuids = [mapping[lab] for lab in sorted(mapping)]
        old_names = {cid: (info or {}).get("name") for cid, info in job.meta.get("clusters", {}).items()}
        job.meta["label_uuids"] = label_uuids
        job.meta["clusters"] = {cid: {"name": None if clear_names else old_names.get(cid)} for cid in label_uuids}
        job.meta["params"] = {"eps": params.eps, "min_samples": params.min_samples}
        job.meta["clustered"] = True
    if progress:
        progress(1.0)
    meta = job.meta
    kept = sum(1 for cid in meta["label_uuids"] if cid in data.meta.get("label_uuids", []))
    return {
        "cluster_job_name": job_name,
        "num_clusters": meta["num_clusters"],
        "noise_entries": meta["noise_entries"],
        "total_entries": meta["total_entries"],
        "cluster_ids": list(meta["label_uuids"]),
        "kept_cluster_ids": kept,
        "eps": params.eps,
        "min_samples": params.min_samples,
        "auto_detect_params": bool(auto_detect_params),
        "relative_validity": validity,
        "cluster_media_hashes": list(meta["media_hashes"]),
        "seconds": round(time.monotonic() - started, 3),
    }


def _part(progress, share: float):
    return None if progress is None else (lambda fraction: progress(share * float(fraction)))


# --- reading -------------------------------------------------------------------------------


def list_jobs(cache_dir: str | os.PathLike) -> dict:
    """The body of GET /faces/clusters."""
    jobs = [{
        "name": meta["name"],
        "total_entries": int(meta.get("total_entries", 0)),
        "num_clusters": int(meta.get("num_clusters", 0)),
        "noise_entries": int(meta.get("noise_entries", 0)),
        "cluster_ids": list(meta.get("label_uuids", [])),
        "face_storage_version": FACE_STORAGE_VERSION,
        "media_hashes": list(meta.get("media_hashes", [])),
    } for meta in list_metas(cache_dir) if isinstance(meta.get("name"), str)]
    return {"cluster_jobs": [job["name"] for job in jobs], "jobs": jobs}


def _sample_rows(data: JobData, rows: np.ndarray, limit: int) -> np.ndarray:
    """The clearest faces first: detector score, then face size."""
    if limit <= 0 or len(rows) == 0:
        return rows[:0]
    area = data.box[rows, 2].astype(np.int64) * data.box[rows, 3]
    order = np.lexsort((rows, -area, -data.score[rows]))
    return rows[order[:limit]]


def cluster_samples(cache_dir: str | os.PathLike, job_name: str, limit_per_cluster: int = 12,
                    min_cluster_size: int = 1, max_cluster_size: int = 1_000_000_000,
                    max_clusters: int = 100, include_noise: bool = False) -> dict:
    """The body of POST /faces/clusters/samples: biggest clusters first, base64 JPEG crops.

    ``num_clusters_after_filter`` counts the clusters within the size bounds, before
    ``max_clusters`` cuts the list. With ``include_noise`` the unassigned faces come last as
    a cluster with id ``"noise"`` (not counted in ``num_clusters``).
    """
    limit_per_cluster = _int_arg("limit_per_cluster", limit_per_cluster)
    min_cluster_size = _int_arg("min_cluster_size", min_cluster_size)
    max_cluster_size = _int_arg("max_cluster_size", max_cluster_size)
    max_clusters = _int_arg("max_clusters", max_clusters)

    def work(data: JobData) -> dict:
        sizes = np.bincount(data.labels[data.labels >= 0], minlength=len(data.label_uuids))
        names = data.meta.get("clusters", {})
        fitting = [i for i in range(len(data.label_uuids)) if min_cluster_size <= sizes[i] <= max_cluster_size]
        fitting.sort(key=lambda i: (-int(sizes[i]), data.label_uuids[i]))
        clusters = []
        for i in fitting[:max_clusters]:
            rows = _sample_rows(data, np.flatnonzero(data.labels == i), limit_per_cluster)
            cid = data.label_uuids[i]
            clusters.append({"cluster_id": cid, "name": (names.get(cid) or {}).get("name"), "size": int(sizes[i]),
                             "sample_faces": [_b64(data.crop(r)) for r in rows]})
        if include_noise:
            rows = np.flatnonzero(data.labels < 0)
            clusters.append({"cluster_id": NOISE_ID, "name": None, "size": int(len(rows)),
                             "sample_faces": [_b64(data.crop(r)) for r in _sample_rows(data, rows, limit_per_cluster)]})
        return {"cluster_job_name": job_name, "num_clusters": len(data.label_uuids),
                "num_clusters_after_filter": len(fitting), "total_entries": int(len(data.labels)),
                "clusters": clusters}

    return _read(cache_dir, job_name, work)


def _label_of(data: JobData, cluster_id: str) -> int:
    if cluster_id == NOISE_ID:
        return -1
    try:
        return data.label_uuids.index(cluster_id)
    except ValueError:
        raise UnknownCluster(f"job {data.name!r} has no cluster {cluster_id!r}") from None


def cluster_faces(cache_dir: str | os.PathLike, job_name: str, cluster_ids: list[str],
                  limit: int = 500, offset: int = 0) -> dict:
    """The body of POST /faces/clusters/faces: one page of the faces of the given clusters
    (``"noise"`` for the unassigned ones), cluster by cluster, each in media and time order.

    Each face: {face_id, cluster_id, name, media_hash, time_seconds, frame_idx,
    box: [x, y, w, h], score, image (base64 JPEG)}. ``face_id`` is what ``modify`` moves take.
    """
    limit = _int_arg("limit", limit, 1, MAX_PAGE)
    offset = _int_arg("offset", offset)
    if isinstance(cluster_ids, str) or not isinstance(cluster_ids, (list, tuple)) or not cluster_ids:
        raise ValueError("cluster_ids must be a non-empty list of cluster ids")
    if not all(isinstance(c, str) for c in cluster_ids):
        raise ValueError("cluster ids must be strings")
    wanted = list(dict.fromkeys(cluster_ids))

    def work(data: JobData) -> dict:
        labels = [_label_of(data, cid) for cid in wanted]
        names = data.meta.get("clusters", {})
        ordered = []
        for label in labels:
            rows = np.flatnonzero(data.labels == label)
            ordered.append(rows[np.lexsort((data.face_id[rows], data.time[rows], data.media[rows]))])
        rows = np.concatenate(ordered) if ordered else np.zeros(0, dtype=np.int64)
        page = rows[offset:offset + limit]
        faces = []
        for r in page:
            label = int(data.labels[r])
            cid = NOISE_ID if label < 0 else data.label_uuids[label]
            faces.append({
                "face_id": int(data.face_id[r]), "cluster_id": cid,
                "name": None if label < 0 else (names.get(cid) or {}).get("name"),
                "media_hash": data.media_hash(r), "time_seconds": float(data.time[r]),
                "frame_idx": int(data.frame[r]), "box": [int(v) for v in data.box[r]],
                "score": round(float(data.score[r]), 4), "image": _b64(data.crop(r)),
            })
        return {"cluster_job_name": job_name, "cluster_ids": wanted, "total": int(len(rows)),
                "offset": offset, "limit": limit, "faces": faces}

    return _read(cache_dir, job_name, work)


# --- editing -------------------------------------------------------------------------------


def set_names(cache_dir: str | os.PathLike, job_name: str, assignments: list[dict]) -> dict:
    """Name clusters: ``[{cluster_id, name}]``; a null or empty name clears it.
    Returns {updated, changes: {cluster_id: name}}; nothing is written if any id is unknown."""
    if not isinstance(assignments, (list, tuple)):
        raise ValueError("assignments must be a list of {cluster_id, name}")
    changes: dict[str, str | None] = {}
    for item in assignments:
        if not isinstance(item, dict) or not isinstance(item.get("cluster_id"), str):
            raise ValueError("each assignment needs a string cluster_id and a name")
        name = item.get("name")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"name for {item['cluster_id']!r} must be a string or null")
        name = (name or "").strip() or None
        if name is not None and len(name) > MAX_NAME_LENGTH:
            raise ValueError(f"names are at most {MAX_NAME_LENGTH} characters")
        changes[item["cluster_id"]] = name
    with update_job(cache_dir, job_name) as job:
        unknown = [cid for cid in changes if cid not in job.meta["label_uuids"]]
        if unknown:
            raise UnknownCluster(f"job {job_name!r} has no cluster {', '.join(map(repr, unknown))}")
        for cid, name in changes.items():
            job.meta["clusters"].setdefault(cid, {})["name"] = name
    return {"updated": len(changes), "changes": changes}


def modify(cache_dir: str | os.PathLike, job_name: str, merges: list[dict] | None = None,
           moves: list[dict] | None = None) -> dict:
    """Merge clusters and move faces, all or nothing.

    ``merges``: ``[{cluster_ids: [...], target_cluster_id}]``; every listed cluster's faces go
    to the target (which need not be listed), the others disappear; the target keeps its
    name, or takes the first name among the merged ones if it had none.
    ``moves``: ``[{face_ids: [...], target_cluster_id}]`` with ids from ``cluster_faces``;
    the target is an existing cluster id, ``"new"`` (a new cluster, its id in
    ``created_cluster_ids``) or ``"noise"`` (unassign). Merges apply first, in order, then
    moves. A cluster left without faces is removed.
    """
    merges = [] if merges is None else merges
    moves = [] if moves is None else moves
    if not isinstance(merges, (list, tuple)) or not isinstance(moves, (list, tuple)):
        raise ValueError("merges and moves must be lists")
    for merge in merges:
        if (not isinstance(merge, dict) or not isinstance(merge.get("target_cluster_id"), str)
                or not isinstance(merge.get("cluster_ids"), (list, tuple)) or not merge["cluster_ids"]
                or not all(isinstance(c, str) for c in merge["cluster_ids"])):
            raise ValueError("each merge needs cluster_ids (a non-empty list of ids) and a target_cluster_id")
    for move in moves:
        ids = move.get("face_ids") if isinstance(move, dict) else None
        if (not isinstance(ids, (list, tuple)) or not ids or not isinstance(move.get("target_cluster_id"), str)
                or not all(isinstance(f, (int, np.integer)) and not isinstance(f, bool) for f in ids)):
            raise ValueError("each move needs face_ids (a non-empty list of integer face ids) and a target_cluster_id")

    with update_job(cache_dir, job_name) as job:
        labels = job.labels.copy()
        uuids = list(job.meta["label_uuids"])
        names = {cid: (info or {}).get("name") for cid, info in job.meta["clusters"].items()}
        alive = set(uuids)

        def label_of(cid: str) -> int:
            if cid not in alive:
                raise UnknownCluster(f"job {job_name!r} has no cluster {cid!r}")
            return uuids.index(cid)

        merged = 0
        for merge in merges:
            target = label_of(merge["target_cluster_id"])
            for cid in dict.fromkeys(merge["cluster_ids"]):
                source = label_of(cid)
                if source == target:
                    continue
                labels[labels == source] = target
                if not names.get(uuids[target]) and names.get(cid):
                    names[uuids[target]] = names[cid]
                alive.discard(cid)
                merged += 1
        face_ids = job.data.face_id if job.data is not None else np.zeros(0, dtype=np.int64)
        row_of = {int(fid): row for row, fid in enumerate(face_ids.tolist())}
        created, moved = [], 0
        for move in moves:
            rows = []
            for fid in move["face_ids"]:
                if int(fid) not in row_of:
                    raise UnknownFace(f"job {job_name!r} has no face {int(fid)}")
                rows.append(row_of[int(fid)])
            target_id = move["target_cluster_id"]
            if target_id == NOISE_ID:
                target = -1
            elif target_id == NEW_ID:
                new_id = str(uuid.uuid4())
                uuids.append(new_id)
                alive.add(new_id)
                created.append(new_id)
                target = len(uuids) - 1
            else:
                target = label_of(target_id)
            labels[rows] = target
            moved += len(rows)
        # Merged-away clusters have no faces left, so compaction at commit drops them.
        job.labels = labels
        job.meta["label_uuids"] = uuids
        job.meta["clusters"] = {cid: {"name": names.get(cid)} for cid in uuids}
    remaining = job.meta["label_uuids"]
    return {"merged": merged, "moved": moved, "created_cluster_ids": [c for c in created if c in remaining],
            "removed_cluster_ids": [c for c in uuids if c not in remaining],
            "num_clusters": len(remaining), "cluster_ids": list(remaining)}


# --- people filter for search ---------------------------------------------------------------


def people_frames(cache_dir: str | os.PathLike, people_filter: list[dict], mode: str = "and") -> dict[str, set[int]]:
    """Frames (1 fps grid) showing the selected people, by media hash.

    Each filter item is ``{cluster_job_name, person_name}`` (every cluster of the job with
    that name, case-insensitive) or ``{cluster_job_name, cluster_id}``. ``mode="and"``: frames
    where every selected person appears; ``"or"``: frames where any does.
    """
    if mode not in ("and", "or"):
        raise ValueError(f"people_filter_mode must be 'and' or 'or', got {mode!r}")
    if not isinstance(people_filter, (list, tuple)) or not people_filter:
        raise ValueError("people_filter must be a non-empty list")
    jobs: dict[str, JobData] = {}
    per_person: list[dict[str, set[int]]] = []
    for item in people_filter:
        if not isinstance(item, dict) or not isinstance(item.get("cluster_job_name"), str):
            raise ValueError("each people_filter item needs a cluster_job_name")
        person, cluster_id = item.get("person_name"), item.get("cluster_id")
        if not isinstance(person, str) and not isinstance(cluster_id, str):
            raise ValueError("each people_filter item needs a person_name or a cluster_id")
        job_name = item["cluster_job_name"]
        if job_name not in jobs:
            jobs[job_name] = read_job(cache_dir, job_name)
        data = jobs[job_name]
        if isinstance(cluster_id, str):
            labels = [_label_of(data, cluster_id)]
        else:
            wanted = person.strip().casefold()
            labels = [i for i, cid in enumerate(data.label_uuids)
                      if ((data.meta["clusters"].get(cid) or {}).get("name") or "").strip().casefold() == wanted]
            if not wanted or not labels:
                raise UnknownPerson(f"no cluster of job {job_name!r} is named {person!r}")
        rows = np.flatnonzero(np.isin(data.labels, labels))
        frames: dict[str, set[int]] = {}
        for r in rows:
            frames.setdefault(data.media_hash(r), set()).add(int(data.frame[r]))
        per_person.append(frames)
    if mode == "or":
        out: dict[str, set[int]] = {}
        for frames in per_person:
            for media, idx in frames.items():
                out.setdefault(media, set()).update(idx)
        return out
    common = set(per_person[0])
    for frames in per_person[1:]:
        common &= set(frames)
    out = {}
    for media in common:
        idx = set.intersection(*(frames[media] for frames in per_person))
        if idx:
            out[media] = idx
    return out
