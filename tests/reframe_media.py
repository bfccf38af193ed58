"""A two-person talking clip built from real recordings (GRID corpus talking heads in
../shared/testdata/speakers/talking_head): the left person speaks first, the right one
second, each face still while the other talks; H.264 + AAC, 25 fps."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import ROOT

TALKING = ROOT.parent / "shared" / "testdata" / "speakers" / "talking_head"
LEFT, RIGHT = TALKING / "grid_bbaf2n.mpg", TALKING / "grid_lwbsza.mpg"
CLIP_SECONDS = 3.0  # each GRID clip is 2.98 s


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def two_person_clip(out: Path, repeats: int = 1) -> Path:
    """``repeats`` × (left talks 3 s, then right talks 3 s): 6 s per repeat, 720x288."""
    turn = CLIP_SECONDS
    graph = (
        f"[0:v]fps=25,setpts=PTS-STARTPTS,tpad=stop_mode=clone:stop_duration={turn}[l];"
        f"[1:v]fps=25,setpts=PTS-STARTPTS,tpad=start_mode=clone:start_duration={turn}[r];"
        f"[l][r]hstack=inputs=2,trim=duration={2 * turn},setpts=PTS-STARTPTS,"
        f"loop=loop={repeats - 1}:size={int(2 * turn * 25)}:start=0,setpts=N/25/TB[v];"
        f"[0:a]aresample=16000,asetpts=PTS-STARTPTS,apad=whole_dur={2 * turn}[la];"
        f"[1:a]aresample=16000,asetpts=PTS-STARTPTS,adelay={int(turn * 1000)}:all=1,"
        f"apad=whole_dur={2 * turn}[ra];"
        f"[la][ra]amix=inputs=2:normalize=0,atrim=duration={2 * turn},aloop=loop={repeats - 1}:"
        f"size={int(2 * turn * 16000)},atrim=duration={2 * turn * repeats}[a]"
    )
    subprocess.run([ffmpeg(), "-y", "-loglevel", "error", "-i", str(LEFT), "-i", str(RIGHT),
                    "-filter_complex", graph, "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset",
                    "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ar", "16000", "-t",
                    str(2 * turn * repeats), str(out)], check=True, timeout=300)
    return out
