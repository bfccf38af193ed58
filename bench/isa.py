"""What differs between instruction sets: run natively, then under another CPU, and compare.

    python bench/isa.py --prepare /tmp/isa                       # natively, once (needs torch)
    python bench/isa.py --onnx /tmp/isa > native.json
    qemu-x86_64 -cpu Haswell .venv/bin/python bench/isa.py --onnx /tmp/isa > haswell.json
    (AVX2, no AVX-512; apt-get install qemu-user; about 4 minutes under emulation)

Prints one JSON object: the CPU's model and SIMD flags (as the process sees them: qemu-user
reports the host's /proc/cpuinfo, but the kernels the libraries pick follow the emulated
CPUID), whisper-tiny.en's int8 transcript of tests/data/jfk.flac (text and word times) and,
when ``--onnx DIR`` names a folder that ``prepare`` filled natively (see the docstring of
``int8_agreement``), ONNX Runtime's int8 agreement with the saved PyTorch embeddings. What the
tests may compare follows from the differences: words after normalisation, times within
``tests/text_match.py``'s tolerance, int8 embeddings within the agreement floor.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cpu() -> dict:
    info = Path("/proc/cpuinfo").read_text(errors="replace").splitlines() if Path("/proc/cpuinfo").exists() else []
    model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), None)
    flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    return {"model": model, "simd": sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "f16c")))}


def whisper(model_key: str) -> dict:
    from workers.media.audio import decode_audio
    from workers.pipeline.speech import get_speech_engine

    engine = get_speech_engine(model_key, device="cpu")
    segments = engine.transcribe(decode_audio(ROOT / "tests" / "data" / "jfk.flac"), "en")
    return {"segments": [{"start": round(s.start, 2), "end": round(s.end, 2), "text": s.text,
                          "words": [[w.word, round(w.start, 2), round(w.end, 2)] for w in s.words]}
                         for s in segments]}


def prepare(folder: Path) -> None:
    """The tiny test CLIP and SigLIP exported to ONNX and quantized both ways (signed and
    unsigned int8 weights, as ``workers.engines.onnx_visual`` does), with PyTorch's embeddings
    of the calibration batch, into ``folder``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from tests.tiny_models import build_tiny_clip, build_tiny_siglip
    from workers.engines import catalogue
    from workers.engines.onnx_visual import calibration_images, onnx_paths
    from workers.engines.visual import TransformersVisualEngine, preprocess
    from workers.models_admin import import_model

    models = folder / "models"
    for key, build in (("tiny-clip", build_tiny_clip), ("tiny-siglip", build_tiny_siglip)):
        import_model(key, build(folder / "src" / key), models_dir=models)
        spec = catalogue.get_spec(key, models)
        onnx = TransformersVisualEngine(spec, catalogue.local_path(spec, models), runtime="onnx")
        onnx.load()
        reference = TransformersVisualEngine(spec, catalogue.local_path(spec, models), runtime="torch")
        images = calibration_images(16)
        np.savez(folder / f"{key}.npz", pixels=preprocess(images, onnx._prep), ref=reference.embed_images(images))
        source = onnx_paths(catalogue.local_path(spec, models))[0]
        for name, weights in (("s8", QuantType.QInt8), ("u8", QuantType.QUInt8)):
            quantize_dynamic(source, folder / f"{key}.{name}.onnx", op_types_to_quantize=["MatMul"],
                             per_channel=True, weight_type=weights)


def int8_agreement(folder: Path) -> dict:
    """Each ``<key>.<weights>.onnx`` of :func:`prepare` against its ``<key>.npz`` reference;
    only ONNX Runtime runs here, so the (emulated) CPU decides its kernels."""
    import onnxruntime as ort

    out = {}
    for model in sorted(folder.glob("*.*8.onnx")):
        data = np.load(folder / (model.name.split(".")[0] + ".npz"))
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        rows = session.run(None, {session.get_inputs()[0].name: data["pixels"].astype(np.float32)})[0]
        rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        out[model.name] = round(float(np.min(np.sum(rows * data["ref"], axis=1))), 5)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="whisper-tiny.en")
    parser.add_argument("--prepare", type=Path, help="write the int8 exports and references here, and stop")
    parser.add_argument("--onnx", type=Path, help="folder --prepare wrote: measure its int8 agreement")
    args = parser.parse_args()
    if args.prepare:
        args.prepare.mkdir(parents=True, exist_ok=True)
        prepare(args.prepare)
        return
    report = {"cpu": cpu(), "whisper": whisper(args.model)}
    if args.onnx:
        report["int8_min_cosine_vs_torch"] = int8_agreement(args.onnx)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
