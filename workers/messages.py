"""What crosses a process boundary, typed: the API sends these to Celery tasks, tasks and
workers send progress events to Socket.IO rooms through Redis, and workers answer with an
outcome that ``app/`` alone turns into an HTTP status.

Every message is a frozen dataclass with ``encode()`` (plain JSON-able values, what Celery's
JSON serializer and Redis carry) and ``decode()`` (the inverse). The encoded shapes are the
wire and API shapes clients already see: a progress event encodes to exactly the Jumper
``progress`` payload, a search hit to one element of ``matches``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# --- search -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchQuery:
    """One visual search (/search/text, /search/image, /search/frame), as the query worker gets it.

    ``hashes``: the searched files (hash → media path); ``frame_mask``: allowed frame indices
    per file (the people filter), None for no filter.
    """

    kind: str  # "text" | "image" | "frame"
    cache_dir: str
    model_key: str
    hashes: Mapping[str, str]
    max_results: int
    query: str | None = None
    exclude: tuple[str, ...] = ()
    text_weight: float = 1.0
    frame_mask: Mapping[str, Sequence[int]] | None = None
    image_path: str | None = None
    media_path: str | None = None
    time_seconds: float | None = None

    def encode(self) -> dict:
        return {
            "kind": self.kind, "cache_dir": self.cache_dir, "model_key": self.model_key,
            "hashes": dict(self.hashes), "max_results": int(self.max_results), "query": self.query,
            "exclude": list(self.exclude), "text_weight": float(self.text_weight),
            "frame_mask": None if self.frame_mask is None else {h: list(v) for h, v in self.frame_mask.items()},
            "image_path": self.image_path, "media_path": self.media_path, "time_seconds": self.time_seconds,
        }

    @classmethod
    def decode(cls, data: Mapping[str, Any]) -> SearchQuery:
        return cls(
            kind=data["kind"], cache_dir=data["cache_dir"], model_key=data["model_key"],
            hashes=dict(data["hashes"]), max_results=int(data["max_results"]), query=data.get("query"),
            exclude=tuple(data.get("exclude") or ()), text_weight=float(data.get("text_weight", 1.0)),
            frame_mask=data.get("frame_mask"), image_path=data.get("image_path"),
            media_path=data.get("media_path"), time_seconds=data.get("time_seconds"),
        )


@dataclass(frozen=True)
class SearchHit:
    """One element of a visual search answer's ``matches`` (Jumper's field names and types)."""

    frame_idx: int
    timestamp: str
    image: str | None  # base64 JPEG thumbnail
    scene_start_timestamp: str
    scene_end_timestamp: str
    original_index: int
    hash_str: str
    video_path: str | None

    def encode(self) -> dict:
        return {
            "frame_idx": str(self.frame_idx), "timestamp": self.timestamp, "image": self.image,
            "scene_start_timestamp": self.scene_start_timestamp, "scene_end_timestamp": self.scene_end_timestamp,
            "original_index": self.original_index, "hash_str": self.hash_str, "video_path": self.video_path,
        }

    @classmethod
    def decode(cls, data: Mapping[str, Any]) -> SearchHit:
        return cls(int(data["frame_idx"]), data["timestamp"], data.get("image"), data["scene_start_timestamp"],
                   data["scene_end_timestamp"], int(data["original_index"]), data["hash_str"],
                   data.get("video_path"))


def hits_json(hits: Sequence[SearchHit]) -> bytes:
    """The JSON text of ``[hit.encode() for hit in hits]`` (compact, a hit's ``image`` last).

    An answer carries ~1 MB of base64 thumbnails: ``json.dumps`` scanning them for characters
    to escape took 4-7 ms a search here, and each extra copy of a megabyte ~2 ms. Base64 has
    nothing to escape, so the thumbnails go in as they are, in one join.
    """
    parts = [b"["]
    for number, hit in enumerate(hits):
        encoded = hit.encode()
        image = encoded.pop("image")
        parts.append((b"," if number else b"") + json.dumps(encoded, separators=(",", ":"))[:-1].encode())
        if image is None:
            parts.append(b',"image":null}')
        else:
            if not (image.isascii() and '"' not in image and "\\" not in image):
                raise ValueError("a search hit's image must be base64 text")
            parts.extend((b',"image":"', image.encode("ascii"), b'"}'))
    parts.append(b"]")
    return b"".join(parts)


# --- analysis jobs ------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceJob:
    """One face clustering job of an /analyze request."""

    cluster_job_name: str
    eps: float | None = None
    min_samples: int | None = None

    def encode(self) -> dict:
        return {"cluster_job_name": self.cluster_job_name, "eps": self.eps, "min_samples": self.min_samples}

    @classmethod
    def decode(cls, data: Mapping[str, Any]) -> FaceJob:
        return cls(data["cluster_job_name"], data.get("eps"), data.get("min_samples"))


@dataclass(frozen=True)
class SpeechJob:
    language: str | None = None

    def encode(self) -> dict:
        return {"language": self.language}

    @classmethod
    def decode(cls, data: Mapping[str, Any] | None) -> SpeechJob | None:
        return None if data is None else cls(data.get("language"))


@dataclass(frozen=True)
class FileJob:
    """One file of an /analyze batch, with every part asked of it (visual, speech, faces)."""

    path: str
    index: int = 0
    visual: bool = False
    speech: SpeechJob | None = None
    face_jobs: tuple[FaceJob, ...] = ()

    @property
    def kind(self) -> str:
        """The ``type`` its whole-file events carry."""
        return "video" if (self.visual or self.face_jobs) else "speech"

    def encode(self) -> dict:
        return {"path": self.path, "index": self.index, "visual": self.visual,
                "speech": None if self.speech is None else self.speech.encode(),
                "face_jobs": [f.encode() for f in self.face_jobs]}

    @classmethod
    def decode(cls, data: Mapping[str, Any]) -> FileJob:
        return cls(data["path"], int(data.get("index", 0)), bool(data.get("visual")),
                   SpeechJob.decode(data.get("speech")),
                   tuple(FaceJob.decode(f) for f in data.get("face_jobs") or ()))


@dataclass(frozen=True)
class ModelChoice:
    """The model keys an analysis batch runs with (``visual`` None: no embeddings)."""

    visual: str | None
    speech: str | None

    def encode(self) -> dict:
        return {"visual": self.visual, "speech": self.speech}

    @classmethod
    def decode(cls, data: Mapping[str, Any]) -> ModelChoice:
        return cls(data.get("visual"), data.get("speech"))


# --- progress -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProgressEvent:
    """One Socket.IO ``progress`` event of a task's room.

    ``status`` and ``error`` are left out of the encoded event when None (a plain progress
    tick has neither); ``extra`` carries the fields some events add (``worker``, the task's
    counters, a clustering job's summary).
    """

    task_id: str
    type: str  # "video" | "speech" | "faces" | "export"
    progress: float
    video_path: str | None = None
    done: bool = False
    status: str | None = None
    error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def file_progress(cls, task_id: str, path: str | None, kind: str, percent: float, **extra) -> ProgressEvent:
        return cls(task_id, kind, percent, path, extra=extra)

    @classmethod
    def file_failed(cls, task_id: str, path: str | None, error: str, kind: str = "video") -> ProgressEvent:
        return cls(task_id, kind, 100, path, status="failed", error=error)

    @classmethod
    def file_cancelled(cls, task_id: str, path: str | None, kind: str = "video") -> ProgressEvent:
        return cls(task_id, kind, 0, path, status="cancelled")

    @classmethod
    def task_done(cls, task_id: str, status: str, error: str | None = None, kind: str = "video",
                  **extra) -> ProgressEvent:
        return cls(task_id, kind, 100, None, done=True, status=status, error=error, extra=extra)

    @classmethod
    def cluster(cls, task_id: str, job_name: str, progress: float, done: bool = False, status: str | None = None,
                error: str | None = None, **extra) -> ProgressEvent:
        """A face clustering job's event (after a batch, or a recluster task of its own)."""
        return cls(task_id, "faces", progress, None, done=done, status=status, error=error,
                   extra={"is_cluster_job": True, "cluster_job_name": job_name, **extra})

    @classmethod
    def reframe_step(cls, video_id: str, step: str, status: str, percent: float, error: str | None = None,
                     **extra) -> ProgressEvent:
        """A reframe pipeline (API v2) step's event, in the room named by its video id."""
        return cls(video_id, "reframe", percent, None, done=status in ("completed", "failed"), status=status,
                   error=error, extra={"video_id": video_id, "step": step, **extra})

    def with_extra(self, **extra) -> ProgressEvent:
        return dataclasses.replace(self, extra={**extra, **self.extra})

    def encode(self) -> dict:
        event = {"task_id": self.task_id, **self.extra, "progress": self.progress,
                 "video_path": self.video_path, "done": self.done, "type": self.type}
        if self.status is not None:
            event["status"] = self.status
        if self.error is not None:
            event["error"] = self.error
        return event

    @classmethod
    def decode(cls, data: Mapping[str, Any]) -> ProgressEvent:
        known = {"task_id", "type", "progress", "video_path", "done", "status", "error"}
        return cls(data["task_id"], data["type"], data["progress"], data.get("video_path"), bool(data.get("done")),
                   data.get("status"), data.get("error"), {k: v for k, v in data.items() if k not in known})


# --- outcomes -----------------------------------------------------------------------------

OK = "ok"
INVALID = "invalid"  # the request cannot run as asked; the message says why (the user can fix it)
UNAVAILABLE = "unavailable"  # a model or worker the request needs is not there
FAILED = "failed"  # something broke that the user cannot fix


@dataclass(frozen=True)
class Outcome:
    """What a task answers: a value, or a problem of one of the kinds above. Only ``app/``
    maps a problem to an HTTP status."""

    status: str
    value: Any = None
    error: str | None = None

    @classmethod
    def ok(cls, value: Any = None) -> Outcome:
        return cls(OK, value)

    @classmethod
    def problem(cls, status: str, error: str) -> Outcome:
        return cls(status, None, error)

    @property
    def succeeded(self) -> bool:
        return self.status == OK

    def encode(self) -> dict:
        return {"status": self.status, "value": self.value, "error": self.error}

    @classmethod
    def decode(cls, data: Mapping[str, Any]) -> Outcome:
        return cls(data["status"], data.get("value"), data.get("error"))
