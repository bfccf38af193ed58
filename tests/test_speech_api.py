"""Speech issue through HTTP: transcription jobs, /transcriptions, transcript loading and search."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from tests.conftest import DATA
from tests.media_factory import jfk_samples, write_video
from tests.text_match import wer, words

HHMMSS = re.compile(r"^\d\d:\d\d:\d\d$")


@pytest.fixture(scope="module")
def transcribed(server, tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    jfk = root / "jfk speech.flac"
    shutil.copy(DATA / "jfk.flac", jfk)
    video = root / "with_audio.mp4"
    write_video(video, 11, size=(96, 64), rate=2, audio=jfk_samples())
    cache = root / "cache"
    server.wait_idle()
    _, events = server.analyze({"cache_dir": str(cache),
                                "transcription_jobs": [{"path": str(jfk), "language": "english"},
                                                       {"path": str(video), "language": "en"}]})
    assert events[-1]["status"] == "completed", events[-1]
    return {"jfk": str(jfk), "video": str(video), "cache": str(cache), "events": events}


def test_progress_events_are_typed_speech(transcribed):
    speech = [e for e in transcribed["events"] if e["type"] == "speech"]
    assert {e["video_path"] for e in speech} == {transcribed["jfk"], transcribed["video"]}
    assert all(e["progress"] <= 100 for e in speech)


def test_transcriptions_have_the_reference_text_and_shape(server, transcribed):
    reference = json.loads((DATA / "transcripts.json").read_text())["jfk.flac"]["text"]
    response = server.post("/transcriptions", {"cache_dir": transcribed["cache"],
                                               "media_paths": [transcribed["jfk"], transcribed["video"]]})
    assert response.status_code == 200
    rows = response.json()["transcriptions"]
    jfk_rows = rows[transcribed["jfk"]]
    for start, text, end, media_path in jfk_rows:
        assert isinstance(start, float) and isinstance(end, float) and start <= end
        assert media_path == transcribed["jfk"] and isinstance(text, str)
    # Words, not punctuation: whisper's commas differ between CPUs' int8 kernels.
    assert wer(reference, " ".join(r[1] for r in jfk_rows)) == 0
    assert all(r[1].startswith(" ") for r in jfk_rows)  # the text as Whisper writes it
    assert [r[0] for r in jfk_rows] == sorted(r[0] for r in jfk_rows)
    assert wer(reference, " ".join(r[1] for r in rows[transcribed["video"]])) == 0
    meta = server.post("/media/metadata", {"cache_dir": transcribed["cache"], "media_paths": [transcribed["jfk"]]})
    assert meta.json()["media_properties"][transcribed["jfk"]]["audio_cached"] is True


def test_transcript_search_after_loading(server, transcribed):
    loaded = server.post("/analysis-data/load-transcriptions", {"cache_dir": transcribed["cache"]})
    assert loaded.status_code == 200
    assert re.match(r"^Loaded 2 transcriptions in \d+\.\d\ds$", loaded.json()["message"])
    response = server.post("/search/transcript", {"query": "AMERICANS", "cache_dir": transcribed["cache"]})
    assert response.status_code == 200
    matches = response.json()["matches"]
    assert {m["media_path"] for m in matches} == {transcribed["jfk"], transcribed["video"]}
    for match in matches:
        assert "americans" in words(match["text"])
        assert HHMMSS.match(match["start_timestamp"]) and HHMMSS.match(match["end_timestamp"])
        assert match["start_seconds"] <= 1.8 <= match["end_seconds"] or match["start_seconds"] < 2
        assert len(match["hash_str"]) == 16
    only = server.post("/search/transcript", {"query": "country", "cache_dir": transcribed["cache"],
                                              "media_paths": [transcribed["jfk"]], "max_results": 1}).json()
    assert len(only["matches"]) == 1 and only["matches"][0]["media_path"] == transcribed["jfk"]
    none = server.post("/search/transcript", {"query": "zebra crossing", "cache_dir": transcribed["cache"]})
    assert none.json()["matches"] == []


def test_english_only_model_refuses_another_language(server, tmp_path):
    response = server.post("/analyze", {"cache_dir": str(tmp_path / "c"),
                                        "transcription_jobs": [{"path": str(DATA / "jfk.flac"), "language": "german"}]})
    assert response.status_code == 400
    assert "English" in response.json()["error"]


def test_video_without_audio_gets_a_clear_error_and_the_batch_goes_on(server, tmp_path, transcribed):
    silent = tmp_path / "silent.mp4"
    shutil.copy(DATA / "counter.mp4", silent)
    jfk = tmp_path / "jfk.flac"
    shutil.copy(DATA / "jfk.flac", jfk)
    server.wait_idle()
    _, events = server.analyze({"cache_dir": transcribed["cache"],
                                "transcription_jobs": [{"path": str(silent)}, {"path": str(jfk)}]})
    errors = [e for e in events if e.get("video_path") == str(silent) and e.get("status") == "failed"]
    assert errors and "no audio stream" in errors[0]["error"]
    assert any(e.get("video_path") == str(jfk) and e["progress"] == 100 and not e.get("error") for e in events)
    assert events[-1]["files_failed"] == 1


def test_an_interview_on_two_channels_comes_back_with_each_rows_channel(server, tmp_path):
    """Jumper's rows keep their shape; which channel each row was heard on rides alongside,
    and an export given those channels labels every row."""
    from tests.media_factory import two_speaker_channels, write_flac

    interview = write_flac(tmp_path / "interview.flac", two_speaker_channels())
    mono = write_flac(tmp_path / "mono.flac", jfk_samples())
    cache = tmp_path / "cache"
    server.wait_idle()
    _, events = server.analyze({"cache_dir": str(cache), "transcription_jobs": [{"path": str(interview)},
                                                                                 {"path": str(mono)}]})
    assert events[-1]["status"] == "completed", events[-1]
    body = server.post("/transcriptions", {"cache_dir": str(cache),
                                           "media_paths": [str(interview), str(mono)]}).json()
    rows = body["transcriptions"][str(interview)]
    assert all(len(row) == 4 and row[3] == str(interview) for row in rows)
    channels = body["channels"][str(interview)]
    assert len(channels) == len(rows) and set(channels) == {0, 1}
    assert str(mono) not in body["channels"]  # one voice: no channels, as before
    jfk = " ".join(row[1] for row, channel in zip(rows, channels, strict=True) if channel == 0)
    other = " ".join(row[1] for row, channel in zip(rows, channels, strict=True) if channel == 1)
    reference = json.loads((DATA / "transcripts.json").read_text())["jfk.flac"]["text"]
    assert wer(reference, jfk) == 0 and "comfy" in words(other) and "americans" not in words(other)

    output = tmp_path / "interview.vtt"
    exported = server.post("/export/transcript", {"segments": rows, "channels": channels, "format": "vtt",
                                                  "output_path": str(output)})
    assert exported.status_code == 200, exported.text
    vtt = output.read_text(encoding="utf-8")
    assert "<v Channel 1> And so" in vtt or "<v Channel 1>And so" in vtt
    assert "<v Channel 2>" in vtt
    mismatch = server.post("/export/transcript", {"segments": rows, "channels": channels[:1], "format": "txt",
                                                  "output_path": str(tmp_path / "x.txt")})
    assert mismatch.status_code == 400 and "channel" in mismatch.json()["error"]
