"""Image embedding throughput: PyTorch eager vs the ONNX Runtime exports (float32 and dynamic
int8), ViT-B/32-sized CLIP.

    python bench/visual_engine.py [--model-dir DIR] [--batch 16] [--rounds 4]

Builds a randomly initialised CLIP with ViT-B/32's shapes (tests/tiny_models.py) on first
use (no download: speed does not depend on the weights' values), exports and quantizes it
the way the engine does, and prints one JSON object: preprocessing cost for 1280x720
frames, each runtime's images/s (rounds interleaved so machine load hits all alike), and
how closely each export's embeddings agree with PyTorch's on the calibration batch and on
real video frames when ``--video`` is given.
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
from workers.engines.onnx_visual import (  # noqa: E402
    ONNX_FP32,
    ONNX_INT8,
    OnnxVision,
    compare_speed,
    int8_path,
    min_cosine,
    onnx_paths,
)
from workers.engines.visual import TransformersVisualEngine, preprocess  # noqa: E402


def _video_frames(path: Path, count: int, max_side: int = 384) -> list[np.ndarray]:
    """``count`` thumbnails spread over the first minutes of a video, as the pipeline makes them."""
    from workers.media.frames import iter_frames
    from workers.media.probe import probe

    out = []
    for frame in iter_frames(probe(path)):
        if frame.index % 7 == 0:
            out.append(frame.rgb(max_side))
        if len(out) == count:
            break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/sightline-bench/clip-vit-b32-random"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--video", type=Path, help="also check agreement on thumbnails of this video")
    args = parser.parse_args()
    if not (args.model_dir / "config.json").exists():
        build_clip_vit_b32(args.model_dir)
    spec = ModelSpec("bench-clip-b32", VISUAL, "clip", "bench")
    engine = TransformersVisualEngine(spec, args.model_dir, runtime="auto")
    started = time.perf_counter()
    engine.load()
    load_s = time.perf_counter() - started

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8) for _ in range(args.batch)]
    started = time.perf_counter()
    pixels = preprocess(frames, engine._prep)
    prep_ms = (time.perf_counter() - started) * 1000 / len(frames)

    runners = {"torch": engine._vision_torch, ONNX_FP32: OnnxVision(onnx_paths(args.model_dir)[0])}
    if int8_path(args.model_dir).exists():
        runners[ONNX_INT8] = OnnxVision(int8_path(args.model_dir))
    speed = compare_speed(runners, pixels, rounds=args.rounds)
    report = {
        "model": "CLIP ViT-B/32 shapes (random weights)",
        "cpu_threads": len(os.sched_getaffinity(0)),
        "batch": args.batch,
        "load_s_including_first_export": round(load_s, 1),
        "engine_runtime": engine.active_runtime,
        "export_record": {k: v for k, v in engine.onnx_meta.items() if k != "fingerprint"},
        "preprocess_ms_per_1280x720_frame": round(prep_ms, 2),
        "images_per_s": {name: round(ips, 1) for name, ips in speed.items()},
        "speedup_vs_torch": {name: round(ips / speed["torch"], 2) for name, ips in speed.items() if name != "torch"},
    }
    if args.video:
        thumbs = preprocess(_video_frames(args.video, args.batch), engine._prep)
        reference = engine._vision_torch(thumbs)
        report["min_cosine_vs_torch_on_video_thumbnails"] = {
            name: round(min_cosine(run(thumbs), reference), 7) for name, run in runners.items() if name != "torch"}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
