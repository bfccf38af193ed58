"""Full-reference scores of a rendered variant against the range it would replace.

VMAF (libvmaf's built-in v0.6.1 model) when this ffmpeg has the ``libvmaf`` filter, and
SSIM and PSNR always, each the mean over the frames. The caller says in words which ran.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from workers.editor.render import SourceInfo, frame_index, frames_between, seek_time
from workers.exports.ffmpeg import ffmpeg_exe, run_ffmpeg


@lru_cache(maxsize=1)
def has_vmaf() -> bool:
    listing = subprocess.run([ffmpeg_exe(), "-hide_banner", "-filters"], capture_output=True, text=True,
                             timeout=30).stdout
    return bool(re.search(r"^\s*\S+\s+libvmaf\s", listing, re.MULTILINE))


def _mean_of(path: Path, key: str) -> float | None:
    values = []
    for line in path.read_text().splitlines():
        match = re.search(rf"\b{key}:([0-9.]+|inf)", line)
        if match and match.group(1) != "inf":
            values.append(float(match.group(1)))
    return sum(values) / len(values) if values else None


def full_reference(distorted: SourceInfo, reference: SourceInfo, start: float, end: float) -> dict:
    """Scores of ``distorted`` against ``reference``'s ``[start, end)``; keys vmaf (or None), ssim, psnr, frames."""
    count = min(frames_between(start, end, reference.fps), distorted.frame_count)
    with tempfile.TemporaryDirectory(prefix="sightline-score-") as tmp:
        folder = Path(tmp)
        scale = f"scale={reference.width}:{reference.height}:flags=bicubic,format=yuv420p,setpts=PTS-STARTPTS"
        graph = (f"[0:v]{scale},split=3[d1][d2][d3];[1:v]format=yuv420p,setpts=PTS-STARTPTS,split=3[r1][r2][r3];"
                 f"[d1][r1]ssim=stats_file={folder / 'ssim.log'}:shortest=1[o1];"
                 f"[d2][r2]psnr=stats_file={folder / 'psnr.log'}:shortest=1[o2]")
        outputs = ["[o1]", "[o2]"]
        vmaf = has_vmaf()
        if vmaf:
            graph += f";[d3][r3]libvmaf=log_path={folder / 'vmaf.json'}:log_fmt=json:shortest=1[o3]"
            outputs.append("[o3]")
        else:
            graph += ";[d3]nullsink;[r3]nullsink"
        args = ["-y", "-i", distorted.path, "-ss", f"{seek_time(frame_index(start, reference.fps), reference.fps):.6f}",
                "-i", reference.path, "-filter_complex", graph]
        for label in outputs:
            args += ["-map", label, "-frames:v", str(count), "-f", "null", "-"]
        run_ffmpeg(args, timeout=1800)
        result = {"ssim": _mean_of(folder / "ssim.log", "All"), "psnr": _mean_of(folder / "psnr.log", "psnr_avg"),
                  "vmaf": None, "frames": count}
        if vmaf:
            pooled = json.loads((folder / "vmaf.json").read_text()).get("pooled_metrics", {})
            result["vmaf"] = pooled.get("vmaf", {}).get("mean")
        return result
