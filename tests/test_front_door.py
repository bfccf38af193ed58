"""``workers.analyze_file``: one file analysed as a library call, no Celery, Redis or HTTP."""

import pytest

from tests.conftest import DATA
from workers import AnalysisOptions, analyze_file, store
from workers.media.probe import MediaError
from workers.messages import SpeechJob


def test_a_video_gets_thumbnails_and_scenes_and_a_failed_part_is_reported(tmp_path):
    seen = []
    result = analyze_file(str(DATA / "counter.mp4"), str(tmp_path),
                          AnalysisOptions(speech=SpeechJob("en"), speech_model="whisper-tiny.en"),
                          progress=lambda part, percent: seen.append((part, percent)))
    assert result.parts == ("video", "speech")
    assert store.has_frames(tmp_path, result.hash_str)  # thumbnails and scenes are there
    assert ("video", 100.0) in seen
    # The test video is silent: transcribing it fails, and that part alone.
    assert [(f.part, f.error) for f in result.failures] == [("speech", "file has no audio stream to transcribe")]


def test_a_file_whose_every_part_fails_raises(tmp_path):
    with pytest.raises(MediaError, match="no video stream"):
        analyze_file(str(DATA / "jfk.flac"), str(tmp_path), AnalysisOptions())
