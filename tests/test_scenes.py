"""Scene detection on the 1 fps grid, checked against the ground truth of a real clip."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from workers import scenes

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
