"""The 1 fps decode skips H.264 B references nobody needs, and the grid stays what it was."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from tests.scene_clips import SHARED_VIDEO
from workers.exports.ffmpeg import ffmpeg_exe
from workers.media import frames as frames_module
from workers.media import h264refs
from workers.media.probe import probe

# x264 settings: veryfast's pyramid at one reference (P-frames never predict from a B
# reference, so those can go), the same at three (they may: the replay must see it), a
# strict pyramid, and baseline (picture order count type 2: no plan, the plain decode).
ENCODINGS = {
    "veryfast": ["-preset", "veryfast"],
    "ref3": ["-preset", "medium", "-x264-params", "ref=3"],
    "strict": ["-preset", "medium", "-x264-params", "b-pyramid=strict:ref=4"],
    "slices": ["-preset", "veryfast", "-x264-params", "slices=3:weightp=2"],
    "baseline": ["-preset", "veryfast", "-profile:v", "baseline"],
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("plan")
    out = {}
    for name, args in ENCODINGS.items():
        path = folder / f"{name}.mp4"
        subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i",
                        str(SHARED_VIDEO / "testvideo.mp4"), "-t", "8", "-vf", "scale=320:180", "-an",
                        "-c:v", "libx264", *args, "-pix_fmt", "yuv420p", str(path)], check=True)
        out[name] = path
    return out


def _grid(path: Path, plan: bool, monkeypatch) -> tuple[list[np.ndarray], int]:
    if not plan:
        monkeypatch.setattr(frames_module, "_planner", lambda *args: None)
    seen: list[float] = []
    thumbs = [frame.rgb(384) for frame in frames_module.iter_frames(
        probe(path), mode="decode", on_decoded=lambda frame, t: seen.append(t))]
    monkeypatch.undo()
    return thumbs, len(seen)


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_grid_frames_are_the_same_with_and_without_the_plan(clips, name, monkeypatch):
    planned, seen_planned = _grid(clips[name], True, monkeypatch)
    plain, seen_plain = _grid(clips[name], False, monkeypatch)
    assert len(planned) == len(plain) == 8
    for a, b in zip(planned, plain, strict=True):
        assert np.array_equal(a, b)  # bit for bit: what is stored does not change
    assert seen_planned <= seen_plain
    if name in ("veryfast", "strict"):
        assert seen_planned < 0.8 * seen_plain  # B references that nothing needs were skipped


def _pictures(path: Path) -> list[h264refs.Picture]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        replay = h264refs.StreamReplay(stream.codec_context.extradata)
        for packet in container.demux(stream):
            if packet.size:
                replay.add(packet, packet.pts)
    return replay.pictures


def test_the_plan_follows_references_a_p_frame_takes_from_a_b_frame(clips):
    path = clips["ref3"]
    pictures = _pictures(path)
    steps = [step for _, step in h264refs.plan_file(str(path))]
    assert len(steps) == len(pictures)
    # With three references some P-frames predict from B references: those are decoded
    # (NONREF, and exact) though no grid frame is one of them.
    used = {ref for picture in pictures if not picture.bidir for ref in picture.refs if pictures[ref].bidir}
    assert used
    assert all(steps[ref].skip_frame == "NONREF" and steps[ref].exact for ref in used)
    # At ref=1 (veryfast) no P-frame does, and most B references are skipped.
    pictures = _pictures(clips["veryfast"])
    assert not {ref for picture in pictures if not picture.bidir for ref in picture.refs if pictures[ref].bidir}
    steps = [step for _, step in h264refs.plan_file(str(clips["veryfast"]))]
    b_refs = [i for i, picture in enumerate(pictures) if picture.bidir and picture.reference]
    assert sum(steps[i].skip_frame == "BIDIR" for i in b_refs) > 0.5 * len(b_refs)


def test_streams_the_replay_does_not_model_are_decoded_the_plain_way(clips, tmp_path):
    with pytest.raises(h264refs.Unsupported):
        h264refs.plan_file(str(clips["baseline"]))
    mpeg4 = SHARED_VIDEO / "fades.mp4"  # not H.264 at all
    with pytest.raises(h264refs.Unsupported):
        h264refs.plan_file(str(mpeg4))
    assert len(list(frames_module.iter_frames(probe(mpeg4), mode="decode"))) > 0
    # Baseline: no plan, and the grid comes from the plain decode all the same.
    assert len(list(frames_module.iter_frames(probe(clips["baseline"]), mode="decode"))) == 8


def test_a_gop_longer_than_the_planner_holds_is_decoded_plainly(clips, monkeypatch):
    monkeypatch.setattr(h264refs, "MAX_GOP_PACKETS", 20)
    steps = [step for _, step in h264refs.plan_file(str(clips["veryfast"]))]
    assert all(step.skip_frame == "NONREF" for step in steps[:21])
    planned, _ = _grid(clips["veryfast"], True, monkeypatch)
    plain, _ = _grid(clips["veryfast"], False, monkeypatch)
    assert all(np.array_equal(a, b) for a, b in zip(planned, plain, strict=True))


def test_a_damaged_stream_still_gives_its_grid(clips, tmp_path):
    data = bytearray(clips["veryfast"].read_bytes())
    rng = np.random.default_rng(1)
    for offset in (len(data) // 3, len(data) // 2, 2 * len(data) // 3):  # packet bytes, past the header
        data[offset:offset + 400] = rng.integers(0, 256, 400, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    grid = list(frames_module.iter_frames(probe(damaged), mode="decode"))
    assert len(grid) == 8
