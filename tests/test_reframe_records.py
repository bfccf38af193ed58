"""The pipeline's state on both databases: a killed worker's step is failed by /status's
stale check, and the once-per-video charge holds under many concurrent first downloads."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from workers.db import credits, migrate, session_scope
from workers.db.reframe import Charge, Step
from workers.reframe import records


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'state.db'}" if request.param == "sqlite" else \
        request.getfixturevalue("postgres").url()
    monkeypatch.setenv("SIGHTLINE_DATABASE_URL", url)
    monkeypatch.setenv("SIGHTLINE_DATA_DIR", str(tmp_path / "data"))
    migrate(url)
    return url


def test_a_step_whose_worker_died_is_failed(db):
    video_id, step_id = records.new_video("key-a", "/media/a.mp4")
    records.update_step(step_id, status="running")
    fresh = records.fail_if_stale(records.get_step(step_id), 60)
    assert fresh.status == "running"
    with session_scope() as session:
        session.get(Step, step_id).updated_at = datetime.now(UTC) - timedelta(minutes=5)
    records.touch_step(step_id + 1000)  # another step's beat changes nothing here
    stale = records.fail_if_stale(records.latest_step(video_id), 60)
    assert stale.status == "failed" and "worker" in stale.error
    assert records.get_step(step_id).status == "failed"


def test_many_concurrent_first_downloads_charge_once(db):
    video_id, _ = records.new_video("key-b", "/media/b.mp4")
    with session_scope() as session:
        credits.set_credits(session, "key-b", 100)
    outcomes = []
    barrier = threading.Barrier(8)

    def download():
        barrier.wait()
        outcomes.append(records.charge_once("key-b", video_id, 30, 30.7))

    threads = [threading.Thread(target=download) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(o.allowed for o in outcomes)
    assert sorted(o.charged for o in outcomes) == [0] * 7 + [30]
    with session_scope() as session:
        assert credits.balance(session, "key-b") == 70
        assert session.query(Charge).filter_by(key_id="key-b").count() == 1


def test_too_few_credits_take_nothing_and_unmetered_keys_pay_nothing(db):
    video_id, _ = records.new_video("key-c", "/media/c.mp4")
    with session_scope() as session:
        credits.set_credits(session, "key-c", 5)
    refused = records.charge_once("key-c", video_id, 6, 6.2)
    assert not refused.allowed and refused.credits_left == 5
    with session_scope() as session:
        assert session.query(Charge).count() == 0
    free = records.charge_once("key-unmetered", video_id, 6, 6.2)
    assert free.allowed and free.charged == 0 and free.credits_left is None
