"""The typed messages encode to the exact shapes clients already see (Socket.IO progress
events, search matches) and survive the trip through Celery's JSON unchanged."""

import json

import pytest

from workers.messages import (
    INVALID,
    FaceJob,
    FileJob,
    ModelChoice,
    Outcome,
    ProgressEvent,
    SearchHit,
    SearchQuery,
    SpeechJob,
    hits_json,
)


def _wire(message):
    return type(message).decode(json.loads(json.dumps(message.encode())))


def test_progress_events_keep_jumpers_fields():
    assert ProgressEvent.file_progress("t", "/a.mp4", "video", 12.5).encode() == {
        "task_id": "t", "progress": 12.5, "video_path": "/a.mp4", "done": False, "type": "video"}
    assert ProgressEvent.file_failed("t", "/a.mp4", "boom", "speech").encode() == {
        "task_id": "t", "progress": 100, "video_path": "/a.mp4", "done": False, "type": "speech",
        "status": "failed", "error": "boom"}
    done = ProgressEvent.task_done("t", "completed", files_total=2, files_failed=0).with_extra(worker="w1")
    assert done.encode() == {"task_id": "t", "worker": "w1", "files_total": 2, "files_failed": 0, "progress": 100,
                             "video_path": None, "done": True, "type": "video", "status": "completed"}
    cluster = ProgressEvent.cluster("t", "job", 40.0).encode()
    assert cluster["type"] == "faces" and cluster["is_cluster_job"] and cluster["cluster_job_name"] == "job"
    assert "status" not in cluster and "error" not in cluster


def test_messages_round_trip_through_json():
    job = FileJob("/a.mp4", 3, True, SpeechJob("de"), (FaceJob("people", 0.3, 2),))
    assert _wire(job) == job and job.kind == "video"
    assert FileJob("/b.wav", speech=SpeechJob()).kind == "speech"
    assert _wire(ModelChoice("clip", None)) == ModelChoice("clip", None)
    query = SearchQuery("text", "/c", "clip", {"ab": "/a.mp4"}, 50, query="dog", exclude=("cat",),
                        frame_mask={"ab": [1, 2]})
    assert _wire(query) == query
    event = ProgressEvent.task_done("t", "failed", error="lost", files_total=1)
    assert _wire(event) == event
    assert _wire(Outcome.problem(INVALID, "bad")) == Outcome.problem(INVALID, "bad")


def test_search_hit_encodes_a_match():
    hit = SearchHit(7, "00:00:07", "aGk=", "00:00:05", "00:00:09", 0, "ab", "/a.mp4")
    assert hit.encode()["frame_idx"] == "7" and _wire(hit) == hit


def test_hits_json_is_the_json_of_the_encoded_hits():
    hits = [SearchHit(7, "00:00:07", "aGk=" * 900, "00:00:05", "00:00:09", 0, "ab", '/odd "name" \\ é.mp4'),
            SearchHit(8, "00:00:08", None, "00:00:05", "00:00:09", 1, "ab", None)]
    assert json.loads(hits_json(hits)) == [hit.encode() for hit in hits]
    assert json.loads(hits_json([])) == []
    with pytest.raises(ValueError):
        hits_json([SearchHit(1, "00:00:01", 'a"b', "00:00:00", "00:00:01", 0, "ab", None)])
