"""The pipeline's relational state, one short transaction per call: videos, steps, the
outputs index and the once-per-video credit charge. Used by the API (services) and the
workers (tasks); both see the same database.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from workers.db import credits, session_scope
from workers.db.models import utcnow
from workers.db.reframe import Charge, Output, Step, Video
from workers.settings import load_settings


def params_key(params: dict) -> str:
    """Canonical text of a step's parameters: equal parameters give equal keys."""
    return json.dumps(params or {}, sort_keys=True, separators=(",", ":"))


def step_folder(video_id: str, step: str, key: str) -> Path:
    digest = hashlib.blake2b(key.encode(), digest_size=5).hexdigest()
    return load_settings().data_dir / "reframe" / video_id / f"{step}-{digest}"


def new_video(key_id: str, source_url: str) -> tuple[str, int]:
    """A video and its queued ingest step, in one transaction: (video_id, step_id)."""
    video_id = uuid.uuid4().hex
    with session_scope() as session:
        session.add(Video(id=video_id, key_id=key_id, source_url=source_url))
        session.flush()
        step = Step(video_id=video_id, step="ingest", params_key="{}", status="queued", requested=True)
        session.add(step)
        session.flush()
        return video_id, step.id


def video_of(key_id: str, video_id: str) -> Video | None:
    """The key's video; None for an unknown id and for another key's video alike."""
    if not isinstance(video_id, str) or not 0 < len(video_id) <= 32:
        return None
    with session_scope() as session:
        video = session.get(Video, video_id)
        return video if video is not None and video.key_id == key_id else None


def _get(model, row_id):
    with session_scope() as session:
        return session.get(model, row_id)


def _update(model, row_id, fields: dict) -> None:
    with session_scope() as session:
        row = session.get(model, row_id)
        for name, value in fields.items():
            setattr(row, name, value)


def get_video(video_id: str) -> Video | None:
    return _get(Video, video_id)


def update_video(video_id: str, **fields) -> None:
    _update(Video, video_id, fields)


def new_step(video_id: str, step: str, params: dict, *, requested: bool = True, status: str = "queued") -> int:
    with session_scope() as session:
        row = Step(video_id=video_id, step=step, params_key=params_key(params), status=status,
                   requested=requested)
        session.add(row)
        session.flush()
        return row.id


def get_step(step_id: int) -> Step | None:
    return _get(Step, step_id)


def update_step(step_id: int, **fields) -> None:
    _update(Step, step_id, fields)


def touch_step(step_id: int) -> None:
    """A running step's heartbeat: its row's ``updated_at`` moves on."""
    with session_scope() as session:
        step = session.get(Step, step_id)
        if step is not None and step.status == "running":
            step.updated_at = utcnow()


def fail_if_stale(step: Step, stale_seconds: float) -> Step:
    """A running step whose worker stopped beating is failed (a killed worker cannot say so)."""
    if step.status != "running" or step.updated_at is None:
        return step
    beat = step.updated_at if step.updated_at.tzinfo else step.updated_at.replace(tzinfo=UTC)
    if (utcnow() - beat).total_seconds() <= stale_seconds:
        return step
    with session_scope() as session:
        row = session.get(Step, step.id)
        if row.status == "running":
            row.status, row.error = "failed", "the worker running this step stopped; run the step again"
        return row


def latest_step(video_id: str) -> Step | None:
    """The most recent step the client asked for (not the inputs steps ran for themselves)."""
    with session_scope() as session:
        return session.scalars(select(Step).where(Step.video_id == video_id, Step.requested.is_(True))
                               .order_by(Step.id.desc()).limit(1)).first()


def ingest_step(video_id: str) -> Step | None:
    with session_scope() as session:
        return session.scalars(select(Step).where(Step.video_id == video_id, Step.step == "ingest")
                               .order_by(Step.id.desc()).limit(1)).first()


def completed(video_id: str, step: str, key: str | None = None) -> Step | None:
    """The newest completed run of ``step`` (with exactly these parameters when ``key`` is
    given) on this video's content — this video or another ingest of the same file — whose
    result file is still there."""
    with session_scope() as session:
        video = session.get(Video, video_id)
        same_content = [video_id]
        if video is not None and video.content_hash:
            same_content = list(session.scalars(select(Video.id).where(Video.content_hash == video.content_hash)))
        query = select(Step).where(Step.video_id.in_(same_content), Step.step == step, Step.status == "completed")
        if key is not None:
            query = query.where(Step.params_key == key)
        for row in session.scalars(query.order_by(Step.id.desc()).limit(20)):
            if row.result_path and Path(row.result_path).is_file():
                return row
    return None


def set_output(video_id: str, suffix: str, path: str, step_id: int, meta: dict | None = None) -> None:
    """Point ``suffix`` at ``path`` (insert or replace the index row)."""
    for _attempt in range(3):
        try:
            with session_scope() as session:
                row = session.scalars(select(Output).where(Output.video_id == video_id,
                                                           Output.suffix == suffix)).first()
                if row is None:
                    session.add(Output(video_id=video_id, suffix=suffix, path=path, step_id=step_id, meta=meta))
                else:
                    row.path, row.step_id, row.meta = path, step_id, meta
            return
        except IntegrityError:  # a concurrent first insert won: update that row instead
            continue


def output_of(video_id: str, suffix: str) -> Output | None:
    with session_scope() as session:
        return session.scalars(select(Output).where(Output.video_id == video_id, Output.suffix == suffix)).first()


@dataclass
class ChargeOutcome:
    allowed: bool
    charged: int
    credits_left: int | None


class _TooFew(Exception):
    pass


def charge_once(key_id: str, video_id: str, amount: int, seconds: float) -> ChargeOutcome:
    """Charge ``amount`` for the key's first download of the video, in one transaction.

    The usage row is inserted first: its (key, video) unique constraint decides which of two
    concurrent downloads pays. The loser's insert fails (PostgreSQL waits for the winner's
    commit; SQLite serialises writers), its transaction rolls back, and it is told the video is
    already paid for. Too few credits: nothing is written and ``allowed`` is False.
    """
    try:
        with session_scope() as session:
            # The insert comes before any read, so on SQLite this transaction holds the write
            # lock from its first statement (no read-then-upgrade conflict).
            row = Charge(key_id=key_id, video_id=video_id, credits=amount, seconds=seconds, metered=True)
            session.add(row)
            session.flush()
            if credits.balance(session, key_id) is None:
                row.credits, row.metered = 0, False
            elif not credits.try_charge(session, key_id, amount):
                raise _TooFew()
            charged, left = row.credits, credits.balance(session, key_id)
        return ChargeOutcome(True, charged, left)
    except IntegrityError:
        with session_scope() as session:
            return ChargeOutcome(True, 0, credits.balance(session, key_id))
    except _TooFew:
        with session_scope() as session:
            return ChargeOutcome(False, 0, credits.balance(session, key_id))
