"""Clip export with the real ffmpeg on counter.mp4 (10 fps, 30 numbered frames)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import av
import numpy as np
import pytest

from workers.exports.clips import export_clips
from workers.exports.ffmpeg import FFmpegError, ffmpeg_exe, run_ffmpeg

DATA = Path(__file__).resolve().parent / "data"
COUNTER = DATA / "counter.mp4"
GOP_SECONDS = 3.0  # counter.mp4 has a single keyframe, at frame 0


def _small_gray(frame: av.VideoFrame) -> np.ndarray:
    return frame.reformat(width=192, height=108, format="gray").to_ndarray().astype(np.int16)


@pytest.fixture(scope="module")
def source_frames() -> list[np.ndarray]:
    with av.open(str(COUNTER)) as container:
        frames = [_small_gray(f) for f in container.decode(video=0)]
    assert len(frames) == 30
    return frames


def frame_numbers(path: str | Path, source_frames: list[np.ndarray]) -> list[int]:
    """Which source frame (0-based) each decoded frame of ``path`` shows, by pixel comparison."""
    numbers = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            pixels = _small_gray(frame)
            distances = [float(np.abs(pixels - ref).mean()) for ref in source_frames]
            best, second = sorted(distances)[:2]
            assert best < second / 2, "decoded frame matches no source frame clearly"
            numbers.append(int(np.argmin(distances)))
    return numbers


@pytest.fixture()
def source(tmp_path) -> str:
    folder = tmp_path / "media"
    folder.mkdir()
    return str(shutil.copy(COUNTER, folder / "counter.mp4"))


@pytest.fixture()
def out_dir(tmp_path) -> Path:
    return tmp_path / "exports"


def leftovers(folder: Path) -> list[str]:
    """Hidden temp files an export could leave behind."""
    return [p.name for p in folder.rglob(".*")]


def test_reencoded_clip_starts_and_ends_on_the_requested_frames(source, out_dir, source_frames):
    result = export_clips([{"source_path": source, "start_seconds": 1.0, "end_seconds": 2.0}],
                          str(out_dir), copy_codec=False)

    assert result == {
        "results": [{"success": True, "output_path": str(out_dir / "counter_1-2.mp4")}],
        "summary": "1/1 clips exported successfully",
    }
    assert frame_numbers(out_dir / "counter_1-2.mp4", source_frames) == list(range(10, 20))
    with av.open(str(out_dir / "counter_1-2.mp4")) as container:
        first = next(container.decode(video=0))
        assert float(first.time) == pytest.approx(0.0, abs=1e-3)


def test_reencode_snaps_a_mid_frame_start_to_the_frame_on_screen(source, out_dir, source_frames):
    result = export_clips([{"source_path": source, "start_seconds": 1.05, "end_seconds": 1.55}],
                          str(out_dir), copy_codec=False)

    path = out_dir / "counter_1.05-1.55.mp4"
    assert result["results"] == [{"success": True, "output_path": str(path)}]
    # 1.05 s shows frame 10; the last frame starting before 1.55 s is frame 15.
    assert frame_numbers(path, source_frames) == list(range(10, 16))


def test_copy_codec_clip_plays_and_covers_the_range_within_a_gop(source, out_dir, source_frames):
    result = export_clips([{"source_path": source, "start_seconds": 1, "end_seconds": 2}], str(out_dir))

    path = Path(result["results"][0]["output_path"])
    assert path == out_dir / "counter_1-2.mp4"
    numbers = frame_numbers(path, source_frames)
    assert set(range(10, 20)) <= set(numbers)
    with av.open(str(path)) as container:
        duration = container.duration / 1_000_000
    assert 1.0 - 1e-3 <= duration <= 1.0 + GOP_SECONDS


def test_spec_example_names_and_subfolders(source, out_dir):
    result = export_clips(
        [
            {"source_path": source, "start_seconds": 0, "end_seconds": 1},
            {"source_path": source, "start_seconds": 1.5, "end_seconds": 2.5, "subfolder": "highlights/day 1"},
        ],
        str(out_dir),
    )

    assert result == {
        "results": [
            {"success": True, "output_path": str(out_dir / "counter_0-1.mp4")},
            {"success": True, "output_path": str(out_dir / "highlights" / "day 1" / "counter_1.5-2.5.mp4")},
        ],
        "summary": "2/2 clips exported successfully",
    }
    for entry in result["results"]:
        with av.open(entry["output_path"]) as container:
            assert next(container.decode(video=0)).width == 1920
    assert leftovers(out_dir) == []


def test_existing_files_are_never_overwritten(source, out_dir):
    out_dir.mkdir()
    (out_dir / "counter_1-2.mp4").write_bytes(b"the editor's own file")
    clip = {"source_path": source, "start_seconds": 1, "end_seconds": 2}

    first = export_clips([clip], str(out_dir))
    second = export_clips([clip, clip], str(out_dir))

    assert (out_dir / "counter_1-2.mp4").read_bytes() == b"the editor's own file"
    assert first["results"][0]["output_path"] == str(out_dir / "counter_1-2 (1).mp4")
    assert [r["output_path"] for r in second["results"]] == [
        str(out_dir / "counter_1-2 (2).mp4"), str(out_dir / "counter_1-2 (3).mp4"),
    ]


def test_a_bad_clip_fails_alone(source, out_dir, tmp_path):
    corrupt = tmp_path / "media" / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    outside = tmp_path / "outside"
    clips = [
        {"source_path": str(tmp_path / "media" / "missing.mp4"), "start_seconds": 0, "end_seconds": 1},
        {"source_path": str(corrupt), "start_seconds": 0, "end_seconds": 1},
        {"source_path": source, "start_seconds": 2, "end_seconds": 2},
        {"source_path": source, "start_seconds": 5, "end_seconds": 6},
        {"source_path": source, "start_seconds": 0, "end_seconds": 1, "subfolder": "../outside"},
        {"source_path": source, "start_seconds": 0, "end_seconds": 1, "subfolder": str(outside)},
        {"source_path": source, "start_seconds": 0, "end_seconds": 1},
    ]

    result = export_clips(clips, str(out_dir), copy_codec=False)

    results = result["results"]
    assert result["summary"] == "1/7 clips exported successfully"
    assert [r["success"] for r in results] == [False] * 6 + [True]
    for clip, entry in zip(clips[:6], results[:6], strict=True):
        assert entry["source_path"] == clip["source_path"]
        assert entry["error"]
    assert "not found" in results[0]["error"] and "missing.mp4" in results[0]["error"]
    assert "corrupt.mp4" in results[1]["error"]
    assert "greater than start_seconds" in results[2]["error"]
    assert "past the end" in results[3]["error"]
    assert "inside output_dir" in results[4]["error"]
    assert "inside output_dir" in results[5]["error"]
    assert not outside.exists()
    assert results[6]["output_path"] == str(out_dir / "counter_0-1.mp4")
    assert sorted(p.name for p in out_dir.iterdir()) == ["counter_0-1.mp4"]


def test_names_with_spaces_and_non_ascii(tmp_path, out_dir, source_frames):
    folder = tmp_path / "my clips" / "été"
    folder.mkdir(parents=True)
    source = shutil.copy(COUNTER, folder / "Интервью & 'take' 2.mp4")

    result = export_clips([{"source_path": str(source), "start_seconds": 2, "end_seconds": 3}],
                          str(out_dir / "sortie finale"), copy_codec=False)

    path = out_dir / "sortie finale" / "Интервью & 'take' 2_2-3.mp4"
    assert result["results"] == [{"success": True, "output_path": str(path)}]
    assert frame_numbers(path, source_frames) == list(range(20, 30))


def test_a_cancelled_export_leaves_no_file_under_the_final_name(source, out_dir):
    class Cancelled(Exception):
        pass

    calls = []

    def progress(fraction: float, path: str) -> None:
        calls.append(fraction)
        if len(calls) > 1:  # the first call comes before ffmpeg starts
            raise Cancelled

    with pytest.raises(Cancelled):
        export_clips([{"source_path": source, "start_seconds": 0, "end_seconds": 3}], str(out_dir),
                     copy_codec=False, progress=progress)

    assert list(out_dir.iterdir()) == []


def test_progress_rises_to_one(source, out_dir):
    seen: list[tuple[float, str]] = []
    export_clips(
        [{"source_path": source, "start_seconds": 0, "end_seconds": 1},
         {"source_path": source, "start_seconds": 1, "end_seconds": 3}],
        str(out_dir), copy_codec=False, progress=lambda f, p: seen.append((f, p)),
    )

    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert any(0.0 < f < 1.0 for f in fractions)
    assert {p for _, p in seen} == {source}


def test_bad_output_dir_is_a_clear_error(source, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    clip = {"source_path": source, "start_seconds": 0, "end_seconds": 1}
    with pytest.raises(ValueError, match="absolute"):
        export_clips([clip], "relative/exports")
    with pytest.raises(ValueError, match="not a folder"):
        export_clips([clip], str(a_file))
    with pytest.raises(ValueError, match="non-empty"):
        export_clips([], str(tmp_path))


def _make_media(path: Path, *inputs: str, extra: tuple[str, ...] = ()) -> str:
    subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", *inputs, *extra, str(path)],
                   check=True, timeout=120)
    return str(path)


def test_audio_is_kept_and_audio_only_sources_stay_audio(tmp_path, out_dir):
    with_audio = _make_media(
        tmp_path / "tone and bars.mov",
        "-f", "lavfi", "-i", "testsrc=size=322x241:rate=30000/1001",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        extra=("-t", "4", "-ac", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"),
    )
    voice = _make_media(tmp_path / "voice.wav", "-f", "lavfi", "-i", "sine=frequency=300:sample_rate=16000",
                        extra=("-t", "3",))
    clips = [
        {"source_path": with_audio, "start_seconds": 1, "end_seconds": 3},
        {"source_path": voice, "start_seconds": 0.5, "end_seconds": 2},
    ]

    for copy_codec in (False, True):
        result = export_clips(clips, str(out_dir / str(copy_codec)), copy_codec=copy_codec)
        assert result["summary"] == "2/2 clips exported successfully", result
        video_clip, audio_clip = (Path(r["output_path"]) for r in result["results"])
        assert (video_clip.name, audio_clip.name) == ("tone and bars_1-3.mov", "voice_0.5-2.wav")
        with av.open(str(video_clip)) as container:
            assert len(container.streams.audio) == 1
            assert container.streams.audio[0].codec_context.channels == 2
            frames = sum(1 for _ in container.decode(video=0))
        with av.open(str(audio_clip)) as container:
            assert not container.streams.video
            seconds = sum(f.samples for f in container.decode(audio=0)) / 16000
        if not copy_codec:
            # Every frame on screen during 1-3 s at 29.97 fps: frames 29 (from 0.968 s) to 89
            # (from 2.970 s). The odd 322x241 frame was cropped to even for 4:2:0.
            assert frames == 61
            assert seconds == pytest.approx(1.5, abs=0.01)
        else:
            assert frames >= 59
            assert seconds == pytest.approx(1.5, abs=0.05)


def test_run_ffmpeg_reports_progress_errors_and_time_limits(tmp_path):
    fractions: list[float] = []
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-t", "2", "-f", "null", "-"],
               timeout=60, progress=fractions.append, duration=2.0)
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)

    with pytest.raises(FFmpegError, match="No such file"):
        run_ffmpeg(["-i", str(tmp_path / "absent.mp4"), "-f", "null", "-"], timeout=60)

    started = time.monotonic()
    with pytest.raises(FFmpegError, match="time limit"):
        run_ffmpeg(["-re", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-f", "null", "-"], timeout=1)
    assert time.monotonic() - started < 10
