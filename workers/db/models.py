"""The declarative base and the tables shared by every area.

Areas (reframe, editor) keep their tables in their own modules (``workers/db/reframe.py``,
``workers/db/editor.py``) and are imported at the bottom of this file so that
``Base.metadata`` — what Alembic compares against — holds every table.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class KeyAccount(Base):
    """A licence key's credit balance. No row, or ``credits`` NULL, means unmetered."""

    __tablename__ = "key_accounts"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    credits: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


# Areas' tables (imported last: they subclass Base above).
from workers.db import editor as _editor  # noqa: E402, F401
from workers.db import reframe as _reframe  # noqa: E402, F401
