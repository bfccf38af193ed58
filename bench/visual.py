"""Visual analysis benchmark: our pipeline end to end vs its parts vs a naive pipeline.

    python bench/visual.py [FILE] [--minutes 10] [--model-dir DIR]

Without FILE, generates a 720p H.264 video of the given length (bench/decode.py). The model
is a randomly initialised CLIP with ViT-B/32's shapes (speed does not depend on weights).
Prints JSON:
- ``end_to_end_s``: ``analyze_visual`` (decode, thumbnails, scene features, embeddings, store)
- ``decode_only_s``: the same frames decoded and scaled, nothing else
- ``embed_only_s``: the same number of frames embedded from memory
- ``naive_s``: ``ffmpeg -vf fps=1`` to JPEG files, then PIL + the transformers processor +
  the same model in PyTorch eager (what a first script does)
- ``images_per_s``: the first 128 thumbnails embedded by each runtime (PyTorch eager, ONNX
  float32, ONNX int8), for the record of what ``runtime`` (the engine's choice) buys
Targets: end to end ≤ 1.1 × (decode + embed); ≥ 3 × faster than naive.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.decode import generate  # noqa: E402
from tests.tiny_models import build_clip_vit_b32  # noqa: E402
from workers import store  # noqa: E402
from workers.engines.catalogue import VISUAL, ModelSpec  # noqa: E402
from workers.engines.visual import TransformersVisualEngine  # noqa: E402
from workers.exports.ffmpeg import ffmpeg_exe  # noqa: E402
from workers.media.frames import iter_frames  # noqa: E402
from workers.media.probe import probe  # noqa: E402
from workers.pipeline.visual import BATCH, analyze_visual  # noqa: E402


def _engine(model_dir: Path, runtime: str) -> TransformersVisualEngine:
    if not (model_dir / "config.json").exists():
        build_clip_vit_b32(model_dir)
    engine = TransformersVisualEngine(ModelSpec("bench-clip-b32", VISUAL, "clip", "bench"), model_dir,
                                      runtime=runtime)
    engine.load()
    return engine


def _decode_only(info, max_side: int) -> tuple[float, list[np.ndarray]]:
    started = time.perf_counter()
    frames = [frame.rgb(max_side) for frame in iter_frames(info)]
    return time.perf_counter() - started, frames


def _embed_only(engine, frames: list[np.ndarray]) -> float:
    started = time.perf_counter()
    for i in range(0, len(frames), BATCH):
        engine.embed_images(frames[i:i + BATCH])
    return time.perf_counter() - started


def _naive(model_dir: Path, path: Path) -> float:
    """What a script would do: ffmpeg writes 1 fps JPEGs, then the transformers processor and
    the PyTorch model embed them, one step after the other."""
    import torch
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-vf", "fps=1",
                        "-q:v", "3", f"{folder}/%06d.jpg"], check=True)
        files = sorted(Path(folder).glob("*.jpg"))
        with torch.inference_mode():
            for i in range(0, len(files), BATCH):
                images = [Image.open(f).convert("RGB") for f in files[i:i + BATCH]]
                inputs = processor(images=images, return_tensors="pt")
                model.get_image_features(**inputs)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", nargs="?")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/sightline-bench/clip-vit-b32-random"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.file) if args.file else Path(tmp) / "bench_720p.mp4"
        if not args.file:
            generate(path, args.minutes)
        info = probe(path)
        engine = _engine(args.model_dir, "auto")
        from workers.settings import load_settings

        decode_s, frames = _decode_only(info, load_settings().thumbnail_max_side)
        embed_s = _embed_only(engine, frames)
        with tempfile.TemporaryDirectory() as cache:
            started = time.perf_counter()
            result = analyze_visual(info, cache, store.hash_file(path), engine)
            end_to_end = time.perf_counter() - started
        naive = _naive(args.model_dir, path)
        sample = frames[:128]
        per_runtime = {runtime: len(sample) / _embed_only(_engine(args.model_dir, runtime), sample)
                       for runtime in ("torch", "onnx", "onnx-int8")}
    report = {
        "video": str(path) if args.file else f"generated {args.minutes:g} min 720p H.264",
        "duration_s": round(info.duration, 1),
        "frames": result["frames"],
        "runtime": engine.active_runtime,
        "end_to_end_s": round(end_to_end, 2),
        "decode_only_s": round(decode_s, 2),
        "embed_only_s": round(embed_s, 2),
        "end_to_end_vs_decode_plus_embed": round(end_to_end / (decode_s + embed_s), 3),
        "naive_s": round(naive, 2),
        "speedup_vs_naive": round(naive / end_to_end, 2),
        "images_per_s": {runtime: round(speed, 1) for runtime, speed in per_runtime.items()},
        "agreement_vs_torch": {name: rec.get("min_cosine_vs_torch")
                               for name, rec in engine.onnx_meta.get("runtimes", {}).items() if name != "torch"},
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
