"""Image embedding throughput: PyTorch eager vs the ONNX Runtime export, ViT-B/32-sized CLIP.

    python bench/visual_engine.py [--model-dir DIR] [--batch 16] [--rounds 4]

Builds a randomly initialised CLIP with ViT-B/32's shapes (tests/tiny_models.py) on first
use (no download: speed does not depend on the weights' values), exports it the way the
engine does, and prints one JSON object: preprocessing cost for 1280x720 frames and the
model's images/s on each runtime, rounds interleaved so machine load hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.tiny_models import build_clip_vit_b32  # noqa: E402
from workers.engines.catalogue import VISUAL, ModelSpec  # noqa: E402
from workers.engines.onnx_visual import compare_speed  # noqa: E402
from workers.engines.visual import TransformersVisualEngine, preprocess  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/sightline-bench/clip-vit-b32-random"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    if not (args.model_dir / "config.json").exists():
        build_clip_vit_b32(args.model_dir)
    spec = ModelSpec("bench-clip-b32", VISUAL, "clip", "bench")
    engine = TransformersVisualEngine(spec, args.model_dir, runtime="onnx")
    started = time.perf_counter()
    engine.load()
    load_s = time.perf_counter() - started

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8) for _ in range(args.batch)]
    started = time.perf_counter()
    pixels = preprocess(frames, engine._prep)
    prep_ms = (time.perf_counter() - started) * 1000 / len(frames)

    speed = compare_speed({"torch": engine._vision_torch, "onnx": engine._onnx}, pixels, rounds=args.rounds)
    agreement = float(np.min(np.sum(engine._vision_torch(pixels) * engine._onnx(pixels), axis=1)))
    print(json.dumps({
        "model": "CLIP ViT-B/32 shapes (random weights)",
        "cpu_threads": len(os.sched_getaffinity(0)),
        "batch": args.batch,
        "load_s_including_first_export": round(load_s, 1),
        "export_record": engine.onnx_meta,
        "preprocess_ms_per_1280x720_frame": round(prep_ms, 2),
        "torch_eager_images_per_s": round(speed["torch"], 1),
        "onnx_images_per_s": round(speed["onnx"], 1),
        "onnx_speedup": round(speed["onnx"] / speed["torch"], 2),
        "min_cosine_onnx_vs_torch": agreement,
    }, indent=1))


if __name__ == "__main__":
    main()
