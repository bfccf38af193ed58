"""Atomic outputs for writers we don't hold the handle of (ffmpeg, downloads): a reader sees
the old file or the whole new one, never a torn one, and a failed write leaves nothing behind."""

from __future__ import annotations

import pytest

from workers.store import atomic_output


def test_atomic_output_replaces_the_target_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "out" / "render.mp4"
    with atomic_output(target, ".mp4") as temp:
        assert temp.parent == target.parent and temp.suffix == ".mp4" and temp != target
        temp.write_bytes(b"first")
    assert target.read_bytes() == b"first"

    with pytest.raises(RuntimeError), atomic_output(target, ".mp4") as temp:
        temp.write_bytes(b"half")
        raise RuntimeError("the encoder died")
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["render.mp4"]
