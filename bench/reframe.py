"""Reframe pipeline benchmark: seconds per step and × real time on a 720p two-person clip,
and the one-pass reframe render against a plain ``ffmpeg -vf crop`` static-crop encode of the
same file (same encoder settings, same run). Prints one JSON object.

    PYTHONPATH=$PWD .venv/bin/python bench/reframe.py [--minutes 10] [--keep DIR] [--no-accuracy]

The clip is built from the GRID talking heads in ../shared/testdata/speakers/talking_head
(two people side by side at 1280x720, 25 fps, taking turns every 3 s: left speaks, then
right), repeated to the requested length. Steps run in-process through the same functions
the Celery tasks call (``workers.reframe.steps.run``). Goal: render ≤ 1.3 × the static crop.

With ``bench/reframe_models.py`` present, its diarization error rate and active-speaker
accuracy on the annotated material are included (``accuracy``), with its reference figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workers.exports.ffmpeg import ffmpeg_exe  # noqa: E402
from workers.media.probe import probe  # noqa: E402
from workers.reframe import camera  # noqa: E402
from workers.reframe.render import render, render_static  # noqa: E402
from workers.reframe.steps import Media, run  # noqa: E402

TALKING = ROOT.parent / "shared" / "testdata" / "speakers" / "talking_head"
TURN = 3.0


def build_clip(out: Path, minutes: float) -> None:
    """Left talks 3 s (right still), then right talks 3 s (left still), repeated; 1280x720."""
    repeats = max(1, int(round(minutes * 60 / (2 * TURN))))
    panel = "fps=25,setpts=PTS-STARTPTS,scale=-2:720,crop=640:720"
    graph = (
        f"[0:v]{panel},tpad=stop_mode=clone:stop_duration={TURN}[l];"
        f"[1:v]{panel},tpad=start_mode=clone:start_duration={TURN}[r];"
        f"[l][r]hstack=inputs=2,trim=duration={2 * TURN},setpts=PTS-STARTPTS,"
        f"loop=loop={repeats - 1}:size={int(2 * TURN * 25)}:start=0,setpts=N/25/TB[v];"
        f"[0:a]aresample=16000,asetpts=PTS-STARTPTS,apad=whole_dur={2 * TURN}[la];"
        f"[1:a]aresample=16000,asetpts=PTS-STARTPTS,adelay={int(TURN * 1000)}:all=1,apad=whole_dur={2 * TURN}[ra];"
        f"[la][ra]amix=inputs=2:normalize=0,atrim=duration={2 * TURN},"
        f"aloop=loop={repeats - 1}:size={int(2 * TURN * 16000)},atrim=duration={2 * TURN * repeats}[a]"
    )
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i",
                    str(TALKING / "grid_bbaf2n.mpg"), "-i", str(TALKING / "grid_lwbsza.mpg"), "-filter_complex",
                    graph, "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt",
                    "yuv420p", "-c:a", "aac", "-t", str(2 * TURN * repeats), str(out)], check=True)


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--keep", help="keep the clip and outputs in this folder")
    parser.add_argument("--no-accuracy", action="store_true", help="skip bench/reframe_models.py's figures")
    args = parser.parse_args(argv)
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-reframe-"))
    folder.mkdir(parents=True, exist_ok=True)
    clip = folder / "two-person-720p.mp4"
    _, build_seconds = timed(lambda: build_clip(clip, args.minutes))
    info = probe(clip)
    media = Media(str(clip), info.fps, int(round(info.duration * info.fps)), info.width, info.height,
                  info.duration, info.has_audio)
    inputs: dict[str, dict] = {}
    steps: dict[str, dict] = {}
    for name in ("scene_detection", "diarization", "transcription", "face_tracking_yolov8", "active_speaker",
                 "reframe"):
        output, seconds = timed(lambda name=name: run(name, media, {}, inputs, folder / name))
        inputs[name] = output.result
        steps[name] = {"seconds": round(seconds, 2), "x_realtime": round(seconds / media.duration, 4)}
    # The render alone (the camera path is planned inside the reframe step; time it apart too).
    path, plan_seconds = timed(lambda: camera.plan(
        fps=media.fps, total_frames=media.total_frames, src_w=media.width, src_h=media.height,
        aspect_ratio="9:16", scenes=inputs["scene_detection"]["scenes"], face_tracks=inputs["face_tracking_yolov8"],
        active_speaker=inputs["active_speaker"]))
    _, render_seconds = timed(lambda: render(clip, folder / "reframe-again.mp4", path, fps=media.fps,
                                             duration=media.duration))
    centre_x = (media.width - path.size.width) // 2 // 2 * 2
    _, static_seconds = timed(lambda: render_static(clip, folder / "static.mp4", path.size, centre_x,
                                                    duration=media.duration))
    out = probe(folder / "reframe-again.mp4")
    report = {
        "clip": {"seconds": round(media.duration, 2), "width": media.width, "height": media.height,
                 "fps": media.fps, "built_in_seconds": round(build_seconds, 1)},
        "steps": steps,
        "pipeline_seconds": round(sum(s["seconds"] for s in steps.values()), 2),
        "models": {name: inputs[name].get("model") for name in inputs},
        "face_detector": inputs["face_tracking_yolov8"].get("detector"),
        "camera": {"plan_seconds": round(plan_seconds, 3), **path.stats(media.fps)},
        "render_vs_static_crop": {
            "reframe_render_seconds": round(render_seconds, 2),
            "static_crop_seconds": round(static_seconds, 2),
            "ratio": round(render_seconds / static_seconds, 3),
            "goal": "<= 1.3",
            "output": {"width": out.width, "height": out.height, "fps": out.fps, "seconds": round(out.duration, 3)},
            "baseline": "ffmpeg -i clip -filter_complex crop=W:H:X:0 (fixed centre) with the same libx264 "
                        "veryfast crf 20 settings and audio copy",
        },
    }
    if not args.no_accuracy:
        try:
            from bench import reframe_models
        except ImportError:
            report["accuracy"] = "bench/reframe_models.py is not here"
        else:
            data = ROOT.parent / "shared" / "testdata" / "speakers"
            report["accuracy"] = {"diarization": reframe_models.bench_diarization(data),
                                  "active_speaker": reframe_models.bench_speaker(data),
                                  "reference": getattr(reframe_models, "REFERENCE_FIGURES", None)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
