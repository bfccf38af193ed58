"""The 1 fps analysis pass: what it stores stays within budget and as sharp as before."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tests.scene_clips import HIDDEN_CUT, MOVING_CUTS, SHARED_VIDEO, hidden_cut_clip, moving_shots_clip
from workers import scenes, store
from workers.media import frames as frames_module
from workers.media.probe import probe
from workers.pipeline import visual


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return moving_shots_clip(tmp_path_factory.mktemp("clip"))


def test_detailed_thumbnails_stay_within_the_storage_budget():
    with av.open(str(SHARED_VIDEO / "testvideo.mp4")) as container:
        tyre = next(f for n, f in enumerate(container.decode(video=0)) if n == 600)
    rng = np.random.default_rng(0)
    texture = tyre.reformat(width=384, height=216, format="rgb24", interpolation="AREA").to_ndarray()
    grainy = np.clip(texture + rng.normal(0, 10, texture.shape), 0, 255).astype(np.uint8)  # film grain
    plain = io.BytesIO()
    Image.fromarray(grainy).save(plain, "JPEG", quality=65, optimize=True)
    assert plain.tell() > visual.THUMBNAIL_MAX_BYTES
    heavy = visual.encode_thumbnail(grainy, 65)
    assert len(heavy) <= visual.THUMBNAIL_MAX_BYTES
    decoded = np.asarray(Image.open(io.BytesIO(heavy)).convert("RGB"), dtype=np.float64)
    assert decoded.shape == (216, 384, 3)
    assert 10 * np.log10(255 ** 2 / np.mean((decoded - texture) ** 2)) > 28  # dB: still the picture

    smooth = np.broadcast_to(np.linspace(0, 255, 384, dtype=np.uint8)[None, :, None], (216, 384, 3)).copy()
    plain = io.BytesIO()
    Image.fromarray(smooth).save(plain, "JPEG", quality=65, optimize=True)
    assert visual.encode_thumbnail(smooth, 65) == plain.getvalue()  # a typical frame is untouched


def test_high_bitrate_video_skips_deblocking_without_visible_change(clip, tmp_path, monkeypatch):
    info = probe(clip)
    with av.open(str(clip)) as container:
        assert frames_module.bits_per_pixel(container.streams.video[0]) >= frames_module.SKIP_LOOP_FILTER_MIN_BPP
    fast = [frame.rgb(384) for frame in frames_module.iter_frames(info, mode="decode")]
    monkeypatch.setattr(frames_module, "SKIP_LOOP_FILTER_MIN_BPP", float("inf"))
    full = [frame.rgb(384) for frame in frames_module.iter_frames(info, mode="decode")]
    assert len(fast) == len(full) == 10
    for a, b in zip(fast, full, strict=True):
        mse = np.mean((a.astype(np.float64) - b) ** 2)
        assert 10 * np.log10(255 ** 2 / max(mse, 1e-9)) > 38  # dB: no visible difference

    monkeypatch.undo()
    result = visual.analyze_visual(info, str(tmp_path), "h", engine=None)
    manifest = store.read_visual_manifest(tmp_path, "h")
    shots = scenes.stored_shots(manifest)
    assert [s.start_frame for s in shots[1:]] == MOVING_CUTS
    assert result["frames"] == manifest["frame_count"] == 10
    assert not (store.visual_dir(tmp_path, "h") / "features.npy").exists()  # no longer stored
    assert manifest["scenes"] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]


def test_a_cut_on_a_skipped_frame_is_found_exactly(tmp_path):
    path = hidden_cut_clip(tmp_path / "clip")
    info = probe(path)
    seen: list[float] = []
    list(frames_module.iter_frames(info, mode="decode", on_decoded=lambda frame, t: seen.append(round(t * 30))))
    assert HIDDEN_CUT not in seen and HIDDEN_CUT - 2 in seen  # the 1 fps decode never sees the cut frame
    visual.analyze_visual(info, str(tmp_path), "h", engine=None)
    shots = scenes.stored_shots(store.read_visual_manifest(tmp_path, "h"))
    assert [(s.start_frame, s.end_frame) for s in shots] == [(0, HIDDEN_CUT), (HIDDEN_CUT, HIDDEN_CUT + 60)]
    assert shots[1].start == pytest.approx(HIDDEN_CUT / 30, abs=1e-3)
