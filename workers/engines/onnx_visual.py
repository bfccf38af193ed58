"""ONNX Runtime fast path for the image tower of a CLIP / SigLIP checkpoint.

The vision tower (with its projection and the L2 normalisation) is exported once with
``torch.onnx.export`` to ``<checkpoint>/onnx/vision.onnx``, written to a temporary name and
renamed, next to ``vision.json`` which records what it was exported from (so a replaced
checkpoint is re-exported) and how fast each runtime was measured on this machine (so
the choice is made once, not at every load).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from workers.store import atomic_write_json, read_json

log = logging.getLogger(__name__)

ONNX_DIR = "onnx"
VISION_ONNX = "vision.onnx"
VISION_META = "vision.json"
OPSET = 17
# Embeddings from the two runtimes must agree this closely before the export is trusted.
MIN_AGREEMENT = 0.999
EXPORT_FORMAT = 1


def cpu_threads() -> int:
    """Cores this process may use (honours OMP_NUM_THREADS, cgroup/affinity limits)."""
    raw = os.environ.get("OMP_NUM_THREADS", "")
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def checkpoint_fingerprint(folder: Path) -> list:
    """Names, sizes and mtimes of the weight and config files: changes when the checkpoint does."""
    entries = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and (path.suffix in (".safetensors", ".bin", ".pt") or path.name == "config.json"):
            stat = path.stat()
            entries.append([path.name, stat.st_size, stat.st_mtime_ns])
    return entries


def onnx_paths(folder: Path) -> tuple[Path, Path]:
    return folder / ONNX_DIR / VISION_ONNX, folder / ONNX_DIR / VISION_META


def read_meta(folder: Path) -> dict | None:
    """The export record when it matches the checkpoint as it is now, else None."""
    model_path, meta_path = onnx_paths(folder)
    meta = read_json(meta_path)
    if not isinstance(meta, dict) or not model_path.exists():
        return None
    if meta.get("format") != EXPORT_FORMAT or meta.get("fingerprint") != checkpoint_fingerprint(folder):
        return None
    return meta


def vision_tower(model):
    """The part of ``model`` that maps pixels to a unit-norm embedding, as one nn.Module."""
    import torch

    class VisionTower(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values):
            out = self.inner.get_image_features(pixel_values=pixel_values)
            # transformers 5 returns an output object here, older versions a tensor.
            if not torch.is_tensor(out):
                out = out.pooler_output
            return torch.nn.functional.normalize(out, dim=-1)

    return VisionTower(model).eval()


def export_vision(model, folder: Path, resolution: int) -> Path:
    """Export the image tower to ``<folder>/onnx/vision.onnx`` atomically; returns its path."""
    import torch

    model_path, _ = onnx_paths(folder)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    tower = vision_tower(model)
    dummy = torch.zeros(2, 3, resolution, resolution, dtype=torch.float32)
    fd, tmp = tempfile.mkstemp(prefix=".vision.", suffix=".onnx.tmp", dir=model_path.parent)
    os.close(fd)
    try:
        # The TorchScript exporter: the torch.export-based default needs onnxscript, and the
        # tracer's warnings are about shapes that are fixed here (resolution, patch count);
        # the batch axis stays dynamic.
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                tower, (dummy,), tmp,
                input_names=["pixel_values"], output_names=["image_embeds"],
                dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
                opset_version=OPSET, dynamo=False,
            )
        os.replace(tmp, model_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return model_path


class OnnxVision:
    """An ONNX Runtime session over ``vision.onnx``: float32 NCHW pixels in, unit rows out."""

    def __init__(self, model_path: Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or cpu_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(pixels, dtype=np.float32)})[0]


def compare_speed(runs: dict[str, Callable[[np.ndarray], np.ndarray]], pixels: np.ndarray,
                  rounds: int = 3) -> dict[str, float]:
    """Images per second of each runner, best of ``rounds``.

    Rounds are interleaved so that a burst of load from another process on a shared
    machine slows every runner alike instead of deciding the comparison.
    """
    for run in runs.values():
        run(pixels)  # warm-up: first calls allocate and pick kernels
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run(pixels)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: len(pixels) / seconds for name, seconds in best.items()}


def prepare(model, folder: Path, resolution: int, torch_run: Callable[[np.ndarray], np.ndarray],
            threads: int | None = None, batch: int = 8) -> tuple[OnnxVision | None, dict]:
    """Export (once), check and time the ONNX vision tower against PyTorch.

    Returns the session when ONNX agrees with PyTorch and is at least as fast, else None;
    and the record kept in ``vision.json``. Never raises for a failed export: the caller
    falls back to PyTorch.
    """
    model_path, meta_path = onnx_paths(folder)
    meta = read_meta(folder)
    if meta is not None:
        if not meta.get("use_onnx"):
            return None, meta
        try:
            return OnnxVision(model_path, threads), meta
        except Exception as exc:  # a truncated or foreign file: re-export below
            log.warning("cannot open %s (%s); exporting again", model_path, exc)
    try:
        started = time.perf_counter()
        export_vision(model, folder, resolution)
        export_s = time.perf_counter() - started
        session = OnnxVision(model_path, threads)
    except Exception as exc:
        log.warning("ONNX export of %s failed, using PyTorch: %s", folder, exc)
        return None, {"use_onnx": False, "error": str(exc)}
    rng = np.random.default_rng(0)
    pixels = rng.standard_normal((batch, 3, resolution, resolution)).astype(np.float32)
    reference = torch_run(pixels)
    agreement = float(np.min(np.sum(session(pixels) * reference, axis=1)))
    speed = compare_speed({"torch": torch_run, "onnx": session}, pixels)
    torch_ips, onnx_ips = speed["torch"], speed["onnx"]
    meta = {
        "format": EXPORT_FORMAT,
        "fingerprint": checkpoint_fingerprint(folder),
        "opset": OPSET,
        "export_seconds": round(export_s, 2),
        "min_cosine_vs_torch": agreement,
        "torch_images_per_s": round(torch_ips, 2),
        "onnx_images_per_s": round(onnx_ips, 2),
        "threads": threads or cpu_threads(),
        "use_onnx": bool(agreement >= MIN_AGREEMENT and onnx_ips >= torch_ips),
    }
    try:
        atomic_write_json(meta_path, meta)
    except OSError as exc:
        log.warning("cannot record the ONNX export choice in %s: %s", meta_path, exc)
    return (session if meta["use_onnx"] else None), meta
