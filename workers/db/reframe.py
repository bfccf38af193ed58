"""Tables of the reframe pipeline (API v2): ingested videos, the steps run on them, the index
of their stored outputs, and the credit charges made when an output is first downloaded.

Outputs themselves are files under ``data_dir`` (written atomically); the tables say which
file answers which ``(video, suffix)`` and which parameters produced it, so a repeated step
with the same parameters reuses its result.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from workers.db.models import Base, utcnow


class Video(Base):
    """One ingest: the source the key asked for and, once fetched, the stored media file."""

    __tablename__ = "reframe_videos"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64), index=True)
    source_url: Mapped[str] = mapped_column(Text)
    media_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    fps: Mapped[float | None] = mapped_column(Float, nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total_frames: Mapped[int | None] = mapped_column(Integer, nullable=True)
    has_audio: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Step(Base):
    """One run of a step (ingest, an analysis, a transform) on a video.

    ``requested`` is False for the inputs a step ran for itself (face tracking before
    active_speaker): ``/status`` describes the most recent requested step.
    """

    __tablename__ = "reframe_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    video_id: Mapped[str] = mapped_column(ForeignKey("reframe_videos.id", ondelete="CASCADE"), index=True)
    step: Mapped[str] = mapped_column(String(40))
    params_key: Mapped[str] = mapped_column(Text, default="{}")
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    requested: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Output(Base):
    """Which file answers ``/download/{video_id}?suffix=...`` (the newest of that kind)."""

    __tablename__ = "reframe_outputs"
    __table_args__ = (UniqueConstraint("video_id", "suffix", name="uq_reframe_outputs_video_suffix"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    video_id: Mapped[str] = mapped_column(ForeignKey("reframe_videos.id", ondelete="CASCADE"))
    suffix: Mapped[str] = mapped_column(String(40))
    path: Mapped[str] = mapped_column(Text)
    step_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    meta: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Charge(Base):
    """Usage: the one charge for a key's first download of a video's reframed output.

    The unique pair is what makes two concurrent downloads charge once: the second insert
    fails and its transaction (its credit deduction included) rolls back.
    """

    __tablename__ = "reframe_charges"
    __table_args__ = (UniqueConstraint("key_id", "video_id", name="uq_reframe_charges_key_video"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(64))
    video_id: Mapped[str] = mapped_column(String(32))
    credits: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)
    metered: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
