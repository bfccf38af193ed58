"""Scene detection on the 1 fps grid, checked against the ground truth of a real clip."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from tests.scene_clips import HARD_CUTS, MOVING_CUTS, SHARED_VIDEO, moving_shots_clip
from workers import scenes
from workers.media.probe import MediaError

DATA = Path(__file__).resolve().parent / "data"


def frames_at_1fps(path: Path, max_side: int = 384) -> list[np.ndarray]:
    """Frame i is the first frame shown at or after i seconds, as a thumbnail (the decoder's grid)."""
    out: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if float(frame.pts * stream.time_base) + 1e-6 >= len(out):
                image = frame.to_image()
                image.thumbnail((max_side, max_side))
                out.append(np.asarray(image))
    return out


@pytest.fixture(scope="module")
def testvideo_scenes() -> list[tuple[int, int]]:
    features = np.stack([scenes.frame_features(f) for f in frames_at_1fps(DATA / "testvideo.mp4")])
    return scenes.detect_scenes(features)


def test_hard_cuts_are_found_within_a_second(testvideo_scenes):
    truth = json.loads((DATA / "ground_truth.json").read_text())["testvideo.mp4"]["derived"]["hard_cuts_s"]
    starts = [start for start, _ in testvideo_scenes[1:]]  # scene starts are cuts, in seconds at 1 fps
    for cut in truth:
        assert min(abs(start - cut) for start in starts) <= 1.0, (cut, starts)


def test_scenes_cover_the_clip_and_keep_a_static_shot_whole(testvideo_scenes):
    assert testvideo_scenes[0][0] == 0 and testvideo_scenes[-1][1] == 23  # 24 s clip: frames 0..23
    for (_, end), (start, _) in zip(testvideo_scenes, testvideo_scenes[1:], strict=False):
        assert start == end + 1
    # The leaf on a rock runs 1.0-6.0 s: a match at 3 s sits in one scene spanning it.
    assert scenes.scene_for(testvideo_scenes, 3) == (1, 5)
    assert len(testvideo_scenes) <= 12  # no scene per second


def test_scene_lookup_at_the_edges():
    found = [(0, 4), (5, 9), (10, 10)]
    assert scenes.scene_for(found, 0) == (0, 4)
    assert scenes.scene_for(found, 5) == (5, 9)
    assert scenes.scene_for(found, 10) == (10, 10)
    assert scenes.scene_for(found, 99) == (10, 10)
    assert scenes.scene_for([], 7) == (7, 7)


def test_a_single_colour_change_is_one_cut():
    red, blue = np.zeros((36, 64, 3), np.uint8), np.zeros((36, 64, 3), np.uint8)
    red[..., 0], blue[..., 2] = 200, 200
    features = np.stack([scenes.frame_features(f) for f in [red] * 4 + [blue] * 3])
    assert scenes.detect_scenes(features) == [(0, 3), (4, 6)]
    assert scenes.detect_scenes(features[:1]) == [(0, 0)]
    assert scenes.detect_scenes(np.zeros((0, features.shape[1]))) == []


def test_scenes_from_embeddings():
    a, b = np.eye(8, dtype=np.float32)[:2]
    drift = np.stack([a + 0.01 * i * b for i in range(5)])  # one shot, slowly changing
    emb = np.concatenate([drift, np.stack([b] * 3)])
    assert scenes.detect_scenes_from_embeddings(emb) == [(0, 4), (5, 7)]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        scenes.frame_features(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="matrix"):
        scenes.detect_scenes(np.zeros(5))


# --- frame-accurate shots on PySceneDetect's own material (../shared/testdata/video) --------

def _cut_frames(shots: list[scenes.Shot]) -> list[int]:
    return [shot.start_frame for shot in shots[1:]]


def _assert_cover(shots: list[scenes.Shot], frames: int, duration: float) -> None:
    assert shots[0].start == 0.0 and shots[0].start_frame == 0
    assert shots[-1].end_frame == frames
    assert shots[-1].end == pytest.approx(duration, abs=0.05)
    for before, after in zip(shots, shots[1:], strict=False):
        assert before.end_frame == after.start_frame and before.end == after.start
        assert after.start_frame > before.start_frame


@pytest.mark.parametrize("name", sorted(HARD_CUTS))
def test_hard_cuts_are_frame_accurate_and_fades_are_not_cuts(name):
    path = SHARED_VIDEO / name
    shots = scenes.detect_shots(path)
    cuts = _cut_frames(shots)
    truth = HARD_CUTS[name]
    assert len(cuts) == len(truth), (name, cuts)
    for found, expected in zip(cuts, truth, strict=True):
        assert abs(found - expected) <= 1, (name, cuts)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        rate = float(stream.average_rate)
    _assert_cover(shots, frames, frames / rate)
    for shot in shots:  # a shot's time is its first frame's time
        assert shot.start == pytest.approx(shot.start_frame / rate, abs=0.5 / rate)


def test_ground_truth_files_agree_with_the_cuts_used_here():
    truth = json.loads((SHARED_VIDEO / "ground_truth.json").read_text())
    seconds = truth["testvideo.mp4"]["derived"]["hard_cuts_s"]
    assert [round(s * 30000 / 1001) for s in seconds] == HARD_CUTS["testvideo.mp4"]
    golden = json.loads((SHARED_VIDEO / "pyscenedetect_goldens" / "fades.mp4.AdaptiveDetector.default.json").read_text())
    assert golden["cuts"] == HARD_CUTS["fades.mp4"]


@pytest.fixture(scope="module")
def moving_clip(tmp_path_factory) -> Path:
    return moving_shots_clip(tmp_path_factory.mktemp("moving"))


def test_motion_light_and_fade_in_are_not_cuts(moving_clip):
    shots = scenes.detect_shots(moving_clip)
    cuts = _cut_frames(shots)
    assert len(cuts) == len(MOVING_CUTS) and all(abs(a - b) <= 1 for a, b in zip(cuts, MOVING_CUTS, strict=True)), cuts
    assert shots[-1].end == pytest.approx(10.0, abs=0.05) and shots[-1].end_frame == 300


def test_progress_and_stop(moving_clip):
    seen: list[float] = []
    shots = scenes.detect_shots(moving_clip, progress=seen.append)
    assert seen[-1] == 100.0 and seen == sorted(seen) and len(seen) > 5
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 40

    partial = scenes.detect_shots(moving_clip, should_stop=stop)
    assert partial[-1].end_frame < shots[-1].end_frame  # stopped early, still covering what it saw
    assert partial[0].start_frame == 0


def _yuv(rgb: np.ndarray) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p")


def _shots_of(pictures: list[np.ndarray], fps: float = 25.0) -> list[scenes.Shot]:
    detector = scenes.ShotDetector()
    for number, picture in enumerate(pictures):
        detector.add(_yuv(picture), number, number / fps)
    return detector.shots()


def test_a_flash_is_not_a_cut_and_flat_cards_still_cut():
    rng = np.random.default_rng(7)
    texture = rng.integers(0, 255, (9, 16, 3), dtype=np.uint8).repeat(20, 0).repeat(20, 1)
    white = np.full_like(texture, 255)
    black = np.zeros_like(texture)
    flash = [texture] * 20 + [white] + [texture] * 20
    assert _cut_frames(_shots_of(flash)) == []
    cards = [black] * 20 + [white] * 20 + [black] * 20
    assert _cut_frames(_shots_of(cards)) == [20, 40]
    shots = _shots_of(cards)
    assert shots[-1].end_frame == 60 and shots[-1].end == pytest.approx(60 / 25)


@pytest.mark.parametrize("pixel_format", ["rgb24", "yuv444p", "yuv422p", "gray"])
def test_frames_in_other_pixel_formats(pixel_format):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)
    b = rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)
    detector = scenes.ShotDetector()
    for number in range(30):
        frame = av.VideoFrame.from_ndarray(a if number < 15 else b, format="rgb24")
        detector.add(frame.reformat(format=pixel_format), number, number / 30)
    assert _cut_frames(detector.shots()) == [15]


def test_a_file_without_video_is_refused(tmp_path):
    with pytest.raises(MediaError):
        scenes.detect_shots(DATA / "jfk.flac")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    with pytest.raises(MediaError):
        scenes.detect_shots(broken)


def test_grid_view_of_shots():
    # Cuts at 1.001 s and 6.006 s (29.97 fps): grid frame 1 is the first frame at/after 1 s,
    # i.e. the cut frame itself: the second scene starts at grid 1, the third at grid 6.
    shots = [scenes.Shot(0.0, 1.001, 0, 30), scenes.Shot(1.001, 6.006, 30, 180), scenes.Shot(6.006, 24.0, 180, 720)]
    assert scenes.grid_scenes(shots, 25, 30000 / 1001) == [(0, 0), (1, 5), (6, 24)]
    short = [scenes.Shot(0.0, 2.2, 0, 22), scenes.Shot(2.2, 2.6, 22, 26), scenes.Shot(2.6, 5.0, 26, 50)]
    assert scenes.grid_scenes(short, 6, 10.0) == [(0, 2), (3, 5)]  # 2.2-2.6 holds no grid frame
    assert scenes.grid_scenes([], 0, 30.0) == []
    assert scenes.Shot.from_dict(shots[1].as_dict()) == shots[1]


# --- shots in the stored analysis --------------------------------------------------------

@pytest.mark.parametrize("name", ["testvideo.mp4", "counter.mp4", "fades.mp4"])
def test_analysis_stores_frame_accurate_shots_and_their_grid_view(tmp_path, name):
    from workers import store
    from workers.media.probe import probe
    from workers.pipeline.visual import analyze_visual

    info = probe(SHARED_VIDEO / name)
    result = analyze_visual(info, str(tmp_path), "h", engine=None)
    manifest = store.read_visual_manifest(tmp_path, "h")
    shots = scenes.stored_shots(manifest)
    # The 1 fps decode skips frames nobody references; the cuts are still exact.
    assert _cut_frames(shots) == HARD_CUTS[name]
    assert shots == scenes.detect_shots(SHARED_VIDEO / name)
    assert result["shots"] == len(shots)
    grid = [tuple(s) for s in manifest["scenes"]]
    assert grid == scenes.grid_scenes(shots, manifest["frame_count"], info.fps)
    assert grid[-1][1] == manifest["frame_count"] - 1


def test_caches_without_shots_still_answer_and_get_shots_once(tmp_path):
    from workers import store
    from workers.media.probe import probe
    from workers.pipeline.visual import analyze_visual

    path = SHARED_VIDEO / "testvideo.mp4"
    analyze_visual(probe(path), str(tmp_path), "h", engine=None)
    manifest_file = store.visual_dir(tmp_path, "h") / store.MANIFEST
    old = json.loads(manifest_file.read_text())
    new_grid = old["scenes"]
    del old["shots"]
    old["scenes"] = [[0, 5], [6, 24]]  # what an analysis from before shots stored
    store.atomic_write_json(manifest_file, old)

    manifest = store.read_visual_manifest(tmp_path, "h")
    assert manifest is not None and scenes.stored_shots(manifest) is None  # still a valid cache
    assert scenes.scene_for(manifest["scenes"], 3) == (0, 5)

    shots = scenes.shots_for(tmp_path, "h", path)
    assert _cut_frames(shots) == [30, 180]
    updated = store.read_visual_manifest(tmp_path, "h")
    assert scenes.stored_shots(updated) == shots and updated["scenes"] == new_grid
    assert scenes.scene_for(updated["scenes"], 3) == (1, 5)  # the leaf shot, 1.001-6.006 s
    path_gone = tmp_path / "moved.mp4"
    assert scenes.shots_for(tmp_path, "h", path_gone) == shots  # stored: the file is not read again
