"""The editor's tables: projects, assets, segments, jobs, variants, exports, AI operations.

A project belongs to the licence key that made it (``key_id``); every lookup a route makes
goes through it, so another key's rows are simply not found. A segment is a range of one
asset's source (``start_ts``/``end_ts`` in that file's time); the timeline is the project's
active segments in ``order_index`` order. Edits never rewrite a segment's range in place except
trim: split, grade and accept deactivate the original and insert new rows, so what was there
stays recoverable.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from workers.db.models import Base, utcnow


def new_id() -> str:
    return uuid.uuid4().hex


class _ProjectRow:
    """A row a project owns: its own id, the project's, and when it was made (the ids first, as
    in the tables the migrations create)."""

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, sort_order=-2)
    project_id: Mapped[str] = mapped_column(ForeignKey("editor_projects.id", ondelete="CASCADE"), index=True,
                                            sort_order=-1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class _Finishes:
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class EditorProject(Base):
    __tablename__ = "editor_projects"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    key_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class EditorAsset(_ProjectRow, Base):
    """A media file the project holds: ingested, uploaded, or rendered (graded, variant)."""

    __tablename__ = "editor_assets"

    origin: Mapped[str] = mapped_column(String(16))  # url | path | upload | graded | variant
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|uploading|ready|failed
    file_name: Mapped[str] = mapped_column(String(500), default="")
    content_type: Mapped[str] = mapped_column(String(200), default="")
    source_url: Mapped[str] = mapped_column(Text, default="")
    path: Mapped[str] = mapped_column(Text, default="")
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    received: Mapped[int] = mapped_column(BigInteger, default=0)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    fps: Mapped[float | None] = mapped_column(Float, nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    has_audio: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class EditorSegment(_ProjectRow, Base):
    __tablename__ = "editor_segments"

    asset_id: Mapped[str] = mapped_column(ForeignKey("editor_assets.id", ondelete="CASCADE"))
    start_ts: Mapped[float] = mapped_column(Float)
    end_ts: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16), default="original")  # original | graded | variant
    variant_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    parent_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    grade: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    order_index: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class EditorJob(_ProjectRow, _Finishes, Base):
    """A generate, grade or ingest job (exports have their own table, as in the contract)."""

    __tablename__ = "editor_jobs"

    kind: Mapped[str] = mapped_column(String(16))  # generate | grade | ingest
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    params: Mapped[dict] = mapped_column(JSON, default=dict)


class EditorVariant(_ProjectRow, Base):
    __tablename__ = "editor_variants"

    job_id: Mapped[str] = mapped_column(ForeignKey("editor_jobs.id", ondelete="CASCADE"), index=True)
    asset_id: Mapped[str] = mapped_column(ForeignKey("editor_assets.id", ondelete="CASCADE"))
    # What the variant replaces: a range of one segment's source.
    segment_id: Mapped[str] = mapped_column(String(32))
    start_ts: Mapped[float] = mapped_column(Float)
    end_ts: Mapped[float] = mapped_column(Float)
    label: Mapped[str] = mapped_column(String(200), default="")
    preview_path: Mapped[str] = mapped_column(Text, default="")
    accepted: Mapped[bool] = mapped_column(Boolean, default=False)


class EditorExport(_ProjectRow, _Finishes, Base):
    __tablename__ = "editor_exports"

    status: Mapped[str] = mapped_column(String(16), default="pending")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    format: Mapped[str] = mapped_column(String(16), default="mp4")
    path: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    details: Mapped[dict] = mapped_column(JSON, default=dict)


class EditorAiOperation(Base):
    """One AI operation (generate, score) for ``/api/ai/timeline``."""

    __tablename__ = "editor_ai_operations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    key_id: Mapped[str] = mapped_column(String(64), index=True)
    project_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="running")
    subject_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    duration_ms: Mapped[float | None] = mapped_column(Float, nullable=True)


class EditorSignedUse(Base):
    """Single-use signed URLs already spent (an upload URL is dead once its file is in)."""

    __tablename__ = "editor_signed_uses"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def active_segments(session, project_id: str) -> list[EditorSegment]:
    """The timeline: a project's active segments in order."""
    from sqlalchemy import select

    return list(session.scalars(select(EditorSegment).where(EditorSegment.project_id == project_id,
                                                            EditorSegment.active.is_(True))
                                .order_by(EditorSegment.order_index, EditorSegment.created_at)))


def reindex(session, project_id: str, ordered: list[EditorSegment] | None = None) -> None:
    """Make ``order_index`` dense (0, 1, 2, ...) over the active segments, in ``ordered``'s order."""
    for index, segment in enumerate(ordered if ordered is not None else active_segments(session, project_id)):
        segment.order_index = index
    session.flush()


def replace_segment(session, old: EditorSegment, pieces: list[EditorSegment]) -> None:
    """Take ``old`` off the timeline and put ``pieces`` where it was (one transaction: the caller's)."""
    ordered = active_segments(session, old.project_id)
    position = ordered.index(old)
    session.add_all(pieces)
    old.active = False
    ordered[position:position + 1] = pieces
    reindex(session, old.project_id, ordered)
