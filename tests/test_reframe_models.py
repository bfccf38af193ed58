"""The reframe pipeline's models on real recordings: GRID talking heads, pyannote's sample call."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from bench.reframe_models import build_two_person_clip, der, read_rttm, speaking_frame_scores
from tests.media_factory import write_audio, write_video
from workers.media.audio import NoAudioStream, decode_audio
from workers.pipeline import Cancelled
from workers.reframe.diarization import diarize
from workers.reframe.sampling import NoVideoStream
from workers.reframe.speaker import detect_active_speaker
from workers.reframe.tracking import track_faces

SPEAKERS = Path(__file__).resolve().parents[1] / ".." / "shared" / "testdata" / "speakers"
GRID = SPEAKERS / "talking_head"
DIAR = SPEAKERS / "diarization"
DELAY = 3.0

pytestmark = pytest.mark.skipif(not SPEAKERS.is_dir(), reason="../shared/testdata/speakers not present")


def _grid_truth() -> dict:
    return json.loads((GRID / "ground_truth.json").read_text())["files"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict:
    """bbaf2n on the left talks first, brbk7n on the right talks DELAY s later."""
    out = tmp_path_factory.mktemp("pair") / "pair.mp4"
    build_two_person_clip(GRID / "grid_bbaf2n.mpg", GRID / "grid_brbk7n.mpg", out, right_delay=DELAY)
    tracks = track_faces(out)
    return {"path": out, "tracks": tracks}


def _cnn_face(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """The largest face dlib's MMOD CNN finds (another model than the HOG tracker uses)."""
    from workers.reframe.models import face_detector

    found = face_detector("cnn")(rgb, 1)
    assert len(found) >= 1
    r = max(found, key=lambda d: d.rect.area()).rect
    return r.left(), r.top(), r.width(), r.height()


def _iou(a, b) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    w = max(0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    h = max(0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    return w * h / (aw * ah + bw * bh - w * h)


def _frame(path: Path, number: int) -> np.ndarray:
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == number:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError(f"no frame {number}")


def test_tracking_finds_the_grid_face_with_its_box_on_the_face():
    path = GRID / "grid_lwbsza.mpg"
    result = track_faces(path)
    assert result["model"] == "face_tracking_yolov8" and result["detector"] == "dlib_hog"
    assert result["video_fps"] == pytest.approx(25.0)
    assert 70 <= result["total_frames"] <= 76
    assert result["track_count"] == 1
    track = result["tracks"][0]
    # Tracked through the whole clip, at the sampled rate.
    assert track["first_seen"] <= 0.25 and track["last_seen"] >= 2.6
    assert len(track["boxes"]) >= 12
    box = next(b for b in track["boxes"] if b["frame_number"] >= 35)
    assert all(isinstance(box[k], int) for k in ("x", "y", "width", "height", "frame_number"))
    # An independent detector agrees on where the face is.
    assert _iou((box["x"], box["y"], box["width"], box["height"]),
                _cnn_face(_frame(path, box["frame_number"]))) > 0.4


def test_two_person_clip_gives_two_tracks_one_per_side(pair):
    tracks = pair["tracks"]
    assert tracks["track_count"] == 2
    centres = sorted(np.mean([b["x"] + b["width"] / 2 for b in t["boxes"]]) for t in tracks["tracks"])
    assert centres[0] < 360 < centres[1]
    for track in tracks["tracks"]:
        # Both faces are on screen for the whole ~6 s clip.
        assert track["last_seen"] - track["first_seen"] > 5.0


def test_a_face_back_after_a_cut_keeps_its_id(tmp_path):
    """Shots A | B | A: the tracks break at both cuts (found on the same decode when no shots
    are given) and re-identification gives A one face_id again."""
    import subprocess

    from bench.reframe_models import _ffmpeg

    a, b = GRID / "grid_bbaf2n.mpg", GRID / "grid_lwbsza.mpg"
    out = tmp_path / "cuts.mp4"
    subprocess.run([_ffmpeg(), "-v", "error", "-y", "-i", str(a), "-i", str(b), "-i", str(a), "-filter_complex",
                    "[0:v][0:a][1:v][1:a][2:v][2:a]concat=n=3:v=1:a=1[v][a]", "-map", "[v]", "-map", "[a]",
                    "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(out)], check=True)
    result = track_faces(out)
    assert result["track_count"] == 2
    first, second = result["tracks"]
    seen_first = {int(b["timestamp"] // 3) for b in first["boxes"]}
    seen_second = {int(b["timestamp"] // 3) for b in second["boxes"]}
    assert seen_first == {0, 2} and seen_second == {1}


def test_active_speaker_picks_whoever_talks(pair):
    result = detect_active_speaker(pair["path"], pair["tracks"])
    assert result["model"] == "active_speaker" and result["track_count"] == 2
    truth = _grid_truth()
    by_side = {}
    for track in result["tracks"]:
        face = next(t for t in pair["tracks"]["tracks"] if t["face_id"] == track["face_id"])
        side = "left" if np.mean([b["x"] for b in face["boxes"]]) < 300 else "right"
        by_side[side] = track
        assert set(track["scores"][0]) == {"timestamp", "frame_number", "score", "speaking"}
        assert 0.0 <= track["speaking_fraction"] <= 1.0
    left_speech = [tuple(x) for x in truth["grid_bbaf2n.mpg"]["active_speaker"]["face_0"]]
    right_speech = [(a + DELAY, b + DELAY) for a, b in truth["grid_brbk7n.mpg"]["active_speaker"]["face_0"]]

    def mean_score(track, a, b):
        return np.mean([s["score"] for s in track["scores"] if a <= s["timestamp"] <= b])

    # While the left person talks, the left face scores higher, and the other way round.
    (la, lb), (ra, rb) = left_speech[0], right_speech[0]
    assert mean_score(by_side["left"], la, lb) > mean_score(by_side["right"], la, lb) + 0.3
    assert mean_score(by_side["right"], ra, rb) > mean_score(by_side["left"], ra, rb) + 0.3
    assert speaking_frame_scores(by_side["left"], left_speech)["f1"] > 0.6
    assert speaking_frame_scores(by_side["right"], right_speech)["f1"] > 0.6

    # With diarization, each voice is tied to the mouth that moves with it, and that face
    # counts as speaking while its voice is heard.
    diarization = {"segments": [{"start": a, "end": b, "speaker": "L"} for a, b in left_speech]
                   + [{"start": a, "end": b, "speaker": "R"} for a, b in right_speech]}
    fused = detect_active_speaker(pair["path"], pair["tracks"], diarization=diarization)
    for track in fused["tracks"]:
        side = next(k for k, v in by_side.items() if v["face_id"] == track["face_id"])
        speech = left_speech if side == "left" else right_speech
        assert speaking_frame_scores(track, speech)["f1"] > 0.8


def test_diarization_finds_the_two_voices_of_the_sample_call():
    result = diarize(DIAR / "sample.wav")
    assert result["num_speakers"] == 2
    assert {s["speaker"] for s in result["segments"]} == {"SPEAKER_00", "SPEAKER_01"}
    hypothesis = [(s["start"], s["end"], s["speaker"]) for s in result["segments"]]
    scores = der(read_rttm(DIAR / "sample.rttm"), hypothesis, collar=0.25, uem=(0.0, 30.0))
    # pyannote 3.1 gets this file almost right; a d-vector + spectral pipeline should stay close.
    assert scores["der"] < 0.2


def test_a_two_channel_recording_is_split_by_channel(tmp_path):
    """One speaker per channel (as with lavaliers): each channel's speech is its speaker."""
    audio = decode_audio(DIAR / "sample.wav")
    reference = read_rttm(DIAR / "sample.rttm")
    left, right = np.zeros_like(audio), np.zeros_like(audio)
    for start, end, speaker in reference:
        a, b = int(start * 16000), int(end * 16000)
        target = left if speaker == "speaker90" else right
        target[a:b] = audio[a:b]
    path = write_audio(tmp_path / "two_track.wav", np.stack([left, right]), codec="pcm_s16le")
    result = diarize(path)
    assert result["model"] == "silero_vad+channel_split"
    assert result["num_speakers"] == 2
    hypothesis = [(s["start"], s["end"], s["speaker"]) for s in result["segments"]]
    assert der(reference, hypothesis, collar=0.25, uem=(0.0, 30.0))["der"] < 0.15


def test_der_matches_hand_worked_cases():
    ref = [(0.0, 10.0, "A"), (10.0, 20.0, "B")]
    assert der(ref, [(0.0, 10.0, "x"), (10.0, 20.0, "y")], collar=0.0)["der"] == 0.0
    # Everything attributed to one speaker: half the reference time is confusion.
    assert der(ref, [(0.0, 20.0, "x")], collar=0.0)["der"] == pytest.approx(0.5, abs=0.01)
    # Nothing found: all missed.
    assert der(ref, [], collar=0.0)["der"] == pytest.approx(1.0)
    # Overlap: two reference speakers at once, one found, counts one missed speaker-second per second.
    scores = der([(0.0, 10.0, "A"), (5.0, 10.0, "B")], [(0.0, 10.0, "x")], collar=0.0)
    assert scores["missed"] == pytest.approx(5.0, abs=0.05) and scores["der"] == pytest.approx(1 / 3, abs=0.01)
    # The collar forgives a boundary 0.2 s late.
    assert der(ref, [(0.0, 10.2, "x"), (10.2, 20.0, "y")], collar=0.25)["der"] == 0.0


def test_bad_input_is_a_clear_error(tmp_path):
    silent = tmp_path / "silent.mp4"
    write_video(silent, 2)
    with pytest.raises(NoAudioStream, match="no audio"):
        diarize(silent)
    with pytest.raises(NoAudioStream, match="no audio"):
        detect_active_speaker(silent, {"tracks": []})
    with pytest.raises(NoVideoStream, match="no video"):
        track_faces(DIAR / "sample.wav")
    with pytest.raises(ValueError, match="tracks"):
        detect_active_speaker(GRID / "grid_bbaf2n.mpg", {"faces": []})
    with pytest.raises(ValueError, match="num_speakers"):
        diarize(DIAR / "sample.wav", num_speakers=0)
    with pytest.raises(FileNotFoundError):
        track_faces(tmp_path / "missing.mp4")
    with pytest.raises(Cancelled):
        track_faces(GRID / "grid_bbaf2n.mpg", should_stop=lambda: True)
