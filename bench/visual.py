"""Visual analysis benchmark: ours end to end against ffmpeg's 1 fps decode and a naive pipeline.

    python bench/visual.py [FILE] [--minutes 10] [--parts]

Without FILE, uses a generated 10-minute 720p30 H.264 file at 5.8 Mb/s (bench/decode.py; made
once, kept in /tmp/sightline-bench). The model is a randomly initialised CLIP with ViT-B/32's
shapes (speed does not depend on the weights), imported the way a user does
(``sightline models import``: workers.models_admin.import_model) and loaded through the
engine catalogue, so the runtime the engine picks (PyTorch, ONNX float32 or ONNX int8, by
agreement with PyTorch and speed on this machine) is the one measured. Prints JSON, all
figures from this one run:
- ``ours_s``: ``analyze_visual`` end to end (decode, thumbnails, shots, embeddings, store),
  wall and CPU seconds, and ``x_realtime`` (video seconds per wall second; target ≥ 30)
- ``ffmpeg_fps1_null_s``: ``ffmpeg -i FILE -vf fps=1 -f null -`` (decode only, all threads)
- ``naive_s``: ``ffmpeg -vf fps=1`` to JPEG files, then PIL + the transformers processor +
  the same model in PyTorch eager (what a first script does)
- ``cache``: bytes stored per file (thumbnails, embeddings, manifest) and ``mb_per_hour``
  (target ≤ 40, thumbnails included), with the thumbnail size and JPEG quality used
- with ``--parts``: decode-only and embed-only seconds, and images/s per runtime
- ``decode_plan``: H.264 pictures in the file, those a NONREF decode decodes, and those
  the B-reference plan (workers/media/h264refs.py) leaves to decode
- ``load_average`` before and after: the machine is shared, so wall figures are noisy
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

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.decode import cached_video  # noqa: E402
from tests.tiny_models import build_clip_vit_b32  # noqa: E402
from workers import store  # noqa: E402
from workers.exports.ffmpeg import ffmpeg_exe  # noqa: E402
from workers.media import h264refs  # noqa: E402
from workers.media.frames import iter_frames  # noqa: E402
from workers.media.probe import probe  # noqa: E402
from workers.pipeline.visual import BATCH, analyze_visual  # noqa: E402
from workers.settings import load_settings  # noqa: E402

MODEL_KEY = "bench-clip-b32"


def _partial(name: str, value) -> None:
    """Each figure as soon as it is measured (stderr), so a long run cut short still says something."""
    print(json.dumps({name: value}, default=str), file=sys.stderr, flush=True)


def _cpu() -> float:
    """CPU seconds of this process and its finished children (ffmpeg), all threads."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _timed(run):
    wall, cpu = time.perf_counter(), _cpu()
    result = run()
    return result, round(time.perf_counter() - wall, 2), round(_cpu() - cpu, 2)


def _engine(checkpoint: Path, models_dir: Path, runtime: str = "auto"):
    from workers.engines.visual import load_visual_engine
    from workers.models_admin import import_model

    if not (checkpoint / "config.json").exists():
        build_clip_vit_b32(checkpoint)
    if not (models_dir / MODEL_KEY / "config.json").exists():
        import_model(MODEL_KEY, checkpoint, kind="visual", models_dir=models_dir)
    engine = load_visual_engine(MODEL_KEY, models_dir=models_dir, runtime=runtime)
    engine.load()
    return engine


def _ffmpeg_null(path: Path) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-vf", "fps=1",
                    "-f", "null", "-"], check=True)


def _naive(checkpoint: Path, path: Path) -> None:
    """What a script would do: ffmpeg writes 1 fps JPEGs, then the transformers processor and
    the PyTorch model embed them, one step after the other."""
    import torch
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(checkpoint).eval()
    processor = AutoProcessor.from_pretrained(checkpoint)
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-vf", "fps=1",
                        "-q:v", "3", f"{folder}/%06d.jpg"], check=True)
        files = sorted(Path(folder).glob("*.jpg"))
        with torch.inference_mode():
            for i in range(0, len(files), BATCH):
                images = [Image.open(f).convert("RGB") for f in files[i:i + BATCH]]
                model.get_image_features(**processor(images=images, return_tensors="pt"))


def _cache_report(folder: Path, duration: float) -> dict:
    sizes: dict[str, int] = {}
    for file in folder.rglob("*"):
        if file.is_file():
            sizes[file.name] = sizes.get(file.name, 0) + file.stat().st_size
    total = sum(sizes.values())
    settings = load_settings()
    frames = store.read_visual_manifest(folder.parent, folder.name)["frame_count"]
    return {"bytes": sizes, "total_mb": round(total / 1e6, 2),
            "mb_per_hour": round(total / 1e6 * 3600 / max(duration, 1e-6), 1),
            "thumbnail_max_side": settings.thumbnail_max_side, "thumbnail_quality": settings.thumbnail_quality,
            "thumbnail_kb_mean": round(sizes.get(store.FRAMES_PACK, 0) / max(1, frames) / 1024, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", nargs="?")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/sightline-bench"),
                        help="keeps the random checkpoint and its ONNX exports between runs")
    parser.add_argument("--parts", action="store_true", help="also time decode only, embed only, each runtime")
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()
    path = Path(args.file) if args.file else cached_video(args.minutes)
    info = probe(path)
    checkpoint, models_dir = args.work / "clip-vit-b32-random", args.work / "models"
    engine = _engine(checkpoint, models_dir)
    report: dict = {"video": str(path), "duration_s": round(info.duration, 1),
                    "size_mb": round(path.stat().st_size / 1e6, 1),
                    "bitrate_mbps": round(path.stat().st_size * 8 / 1e6 / max(info.duration, 1e-6), 2),
                    "cpu_count": os.cpu_count(), "model": f"{MODEL_KEY} (random ViT-B/32 CLIP)",
                    "runtime": engine.active_runtime,
                    "agreement_vs_torch": {name: rec.get("min_cosine_vs_torch") for name, rec in
                                           engine.onnx_meta.get("runtimes", {}).items() if name != "torch"},
                    "load_average_before": [round(x, 2) for x in os.getloadavg()]}

    try:
        steps = [step for _, step in h264refs.plan_file(str(path))]
        report["decode_plan"] = {"pictures": len(steps),
                                 "nonref_decodes": sum(s.reference for s in steps),
                                 "planned_decodes": sum(s.reference and s.skip_frame == "NONREF" for s in steps)}
    except h264refs.Unsupported as exc:
        report["decode_plan"] = f"none ({exc})"
    with tempfile.TemporaryDirectory() as cache:
        result, wall, cpu = _timed(lambda: analyze_visual(info, cache, "bench", engine))
        report["ours_s"] = {"wall": wall, "cpu": cpu, "frames": result["frames"], "shots": result.get("shots"),
                            "x_realtime": round(info.duration / wall, 1)}
        report["cache"] = _cache_report(Path(cache) / "bench", info.duration)
        _partial("ours_s", report["ours_s"])
        _partial("cache", report["cache"])
    _, wall, cpu = _timed(lambda: _ffmpeg_null(path))
    report["ffmpeg_fps1_null_s"] = {"wall": wall, "cpu": cpu}
    _partial("ffmpeg_fps1_null_s", report["ffmpeg_fps1_null_s"])
    if not args.skip_naive:
        _, wall, cpu = _timed(lambda: _naive(checkpoint, path))
        report["naive_s"] = {"wall": wall, "cpu": cpu}
        _partial("naive_s", report["naive_s"])
    # CPU seconds are the steadier comparison on a shared machine; wall is what a user waits.
    for name in ("ffmpeg_fps1_null_s", "naive_s"):
        if name in report:
            report[f"ours_vs_{name[:-2]}"] = {k: round(report["ours_s"][k] / report[name][k], 3)
                                              for k in ("wall", "cpu")}
    report["ours_s"]["x_realtime_if_cpu_bound_on_2_idle_cores"] = round(
        info.duration / (report["ours_s"]["cpu"] / 2), 1)

    if args.parts:
        size = load_settings().thumbnail_max_side
        frames, wall, cpu = _timed(lambda: [frame.rgb(size) for frame in iter_frames(info)])
        report["decode_only_s"] = {"wall": wall, "cpu": cpu}

        def embed(e, images):
            for i in range(0, len(images), BATCH):
                e.embed_images(images[i:i + BATCH])

        _, wall, cpu = _timed(lambda: embed(engine, frames))
        report["embed_only_s"] = {"wall": wall, "cpu": cpu}
        sample = frames[:128]
        report["images_per_s"] = {}
        for runtime in ("torch", "onnx", "onnx-int8"):
            other = _engine(checkpoint, models_dir, runtime)
            _, wall, _ = _timed(lambda e=other: embed(e, sample))
            report["images_per_s"][runtime] = round(len(sample) / wall, 1)
        del frames
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=1, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o)))


if __name__ == "__main__":
    main()
