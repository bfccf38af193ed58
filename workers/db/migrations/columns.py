"""Column factories the migrations share (ids, owners, timestamps, runs of plain columns).

A revision records what it did to a database, so what these return must never change once a
revision uses it: a different column is a new factory (and a new revision), not an edit here.
"""

from __future__ import annotations

import sqlalchemy as sa

ID = sa.String(32)  # uuid4().hex
KEY_ID = sa.String(64)  # a licence key's id


def string_id() -> sa.Column:
    return sa.Column("id", ID, primary_key=True)


def serial_id() -> sa.Column:
    return sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True)


def key_id(index: bool = False) -> sa.Column:
    return sa.Column("key_id", KEY_ID, nullable=False, index=index or None)


def owner(name: str, target: str, index: bool = False) -> sa.Column:
    """A row's parent: deleting the parent deletes the row."""
    return sa.Column(name, ID, sa.ForeignKey(target, ondelete="CASCADE"), nullable=False, index=index or None)


def when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def required(**types: sa.types.TypeEngine) -> list[sa.Column]:
    """NOT NULL columns, one per ``name=type``, in order."""
    return [sa.Column(name, type_, nullable=False) for name, type_ in types.items()]


def optional(**types: sa.types.TypeEngine) -> list[sa.Column]:
    """Nullable columns, one per ``name=type``, in order."""
    return [sa.Column(name, type_, nullable=True) for name, type_ in types.items()]


def probed() -> list[sa.Column]:
    """What probing a media file gives: duration, fps, width, height (unknown until probed)."""
    return optional(duration=sa.Float(), fps=sa.Float(), width=sa.Integer(), height=sa.Integer())
