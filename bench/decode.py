"""Decode benchmark: our 1 fps frames + thumbnails vs ``ffmpeg -vf fps=1 -f null -``.

    python bench/decode.py [FILE] [--minutes 10]

Without FILE, generates a 720p30 H.264 file at 5.8 Mb/s (x264 veryfast: B-frames, keyframe
every 250 frames) of the given length first (kept in /tmp/sightline-bench for the next run). Prints one JSON object. Target: ours ≤ 1.0 × ffmpeg's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workers import store  # noqa: E402
from workers.exports.ffmpeg import ffmpeg_exe  # noqa: E402
from workers.media.probe import probe  # noqa: E402
from workers.pipeline.visual import analyze_visual  # noqa: E402

BITRATE = "5.8M"  # the reference file: 720p30 H.264 at 5.8 Mb/s


def generate(path: Path, minutes: float, bitrate: str = BITRATE) -> None:
    """A 720p30 H.264 file (x264 veryfast: B-frames, keyframe every 250 frames) at ``bitrate``
    (average, with a VBV cap so no stretch runs far above it), with a tone on the audio track."""
    seconds = int(minutes * 60)
    rate = float(bitrate.rstrip("Mk")) * (1e6 if bitrate.endswith("M") else 1e3)
    tmp = path.with_name(path.name + ".part.mp4")
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=1280x720:rate=30:duration={seconds}", "-f", "lavfi", "-i",
                    f"sine=frequency=440:duration={seconds}", "-c:v", "libx264", "-preset", "veryfast",
                    "-b:v", bitrate, "-maxrate", f"{int(rate * 1.2)}", "-bufsize", f"{int(rate * 2)}",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(tmp)], check=True)
    tmp.rename(path)


def cached_video(minutes: float, bitrate: str = BITRATE, folder: Path = Path("/tmp/sightline-bench")) -> Path:
    """The generated file, made once per length and bitrate (encoding 10 minutes takes minutes)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"testsrc2_720p30_{minutes:g}min_{bitrate}.mp4"
    if not path.exists():
        generate(path, minutes, bitrate)
    return path


def time_ffmpeg(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-vf", "fps=1",
                    "-f", "null", "-"], check=True)
    return time.perf_counter() - started


def time_ours(path: Path, mode: str) -> tuple[float, dict]:
    import workers.media.frames as frames

    info = probe(path)
    with tempfile.TemporaryDirectory() as cache:
        original = frames.iter_frames
        if mode != "auto":
            frames_iter = lambda info, should_stop=None, mode=mode, **kw: original(info, should_stop, mode, **kw)  # noqa: E731
            import workers.pipeline.visual as visual

            visual.iter_frames = frames_iter
        started = time.perf_counter()
        result = analyze_visual(info, cache, store.hash_file(path), engine=None)
        seconds = time.perf_counter() - started
        size = sum(f.stat().st_size for f in Path(cache).rglob("*") if f.is_file())
        if mode != "auto":
            import workers.pipeline.visual as visual

            visual.iter_frames = original
    result["cache_bytes"] = size
    return seconds, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", nargs="?")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--modes", default="auto", help="comma-separated: auto,decode,seek")
    args = parser.parse_args()
    path = Path(args.file) if args.file else cached_video(args.minutes)
    info = probe(path)
    ffmpeg_seconds = time_ffmpeg(path)
    report = {"file": str(path), "duration_s": round(info.duration, 1), "cpu_count": os.cpu_count(),
              "load_average": [round(x, 2) for x in os.getloadavg()], "ffmpeg_fps1_s": round(ffmpeg_seconds, 2)}
    for mode in args.modes.split(","):
        seconds, result = time_ours(path, mode)
        report[f"ours_{mode}_s"] = round(seconds, 2)
        report[f"ours_{mode}_vs_ffmpeg"] = round(seconds / ffmpeg_seconds, 3)
        report[f"ours_{mode}_frames"] = result["frames"]
        report[f"ours_{mode}_shots"] = result.get("shots")
        report[f"ours_{mode}_cache_mb_per_hour"] = round(
            result["cache_bytes"] / 1e6 * 3600 / max(info.duration, 1), 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
