"""ONNX Runtime fast paths for the image tower of a CLIP / SigLIP checkpoint.

The vision tower (with its projection and the L2 normalisation) is exported once with
``torch.onnx.export`` to ``<checkpoint>/onnx/vision.onnx`` (float32) and quantized from
there to ``vision.int8.onnx`` (dynamic int8: int8 weights per output channel, activations
quantized per batch at run time, MatMuls only; the patch embedding is exported as a
MatMul so that it is one of them). Both are written to temporary names and
renamed, next to ``vision.json``, which records what they were made from (so a replaced
checkpoint is exported again), how closely each agrees with PyTorch on a calibration batch
and how fast each runtime was on this machine (so the choice is made once, not at every
load).
"""

from __future__ import annotations

import logging
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from workers.store import atomic_output, atomic_write_json, read_json

log = logging.getLogger(__name__)

ONNX_DIR = "onnx"
VISION_ONNX = "vision.onnx"
VISION_INT8 = "vision.int8.onnx"
VISION_META = "vision.json"
OPSET = 17
# Embeddings must agree with PyTorch's this closely (min cosine over the calibration batch)
# before an export is used: float32 differs only by rounding, int8 by quantization noise,
# which at 0.99 moves a frame's search score by less than the gap between near neighbours.
MIN_AGREEMENT = 0.999
MIN_INT8_AGREEMENT = 0.99
# 3: patch embeddings exported as a MatMul (quantized with the others), not a Conv.
EXPORT_FORMAT = 3
TORCH, ONNX_FP32, ONNX_INT8 = "torch", "onnx", "onnx-int8"
MODES = ("auto", ONNX_FP32, ONNX_INT8)
TIMING_BATCH = 8


def cpu_threads() -> int:
    """Cores this process may use (honours OMP_NUM_THREADS, cgroup/affinity limits)."""
    raw = os.environ.get("OMP_NUM_THREADS", "")
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def image_threads() -> int:
    """Threads of an image-tower session: half the cores (at least one).

    The 1 fps analysis decodes video beside the embedder; on 2 cores one thread each costs
    8-15 % less CPU than both stages fighting over both cores, for the same wall time
    (docs/visual-search.md). Embedding alone (from stored thumbnails) keeps every core
    busy with several batches in flight instead.
    """
    return max(1, cpu_threads() // 2)


def machine_id(threads: int | None = None) -> str:
    """The CPU model and thread count: the timings (int8 above all) hold for this pair only."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu} x{threads or cpu_threads()}"


def int8_weight_type() -> str:
    """``"s8"`` (signed int8 weights) where the CPU has VNNI, else ``"u8"``.

    Without VNNI, ONNX Runtime's u8 x s8 kernels add pairs of products in int16 and saturate.
    Measured on the tiny test CLIP / SigLIP, the same exports under qemu-user as a Haswell
    (AVX2): s8 weights agreed with PyTorch at 0.934 / 0.967 (refused), u8 at 0.9999 / 0.9998,
    as on AVX-512 VNNI. There s8 is the fast one (random ViT-B/32 on 2 threads: 5.8 images/s
    against 2.4 for u8 and 1.7 for float32), so each machine quantizes its own way.
    """
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "i386"):
        return "s8"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    except OSError:
        return "u8"  # unknown: u8 is exact everywhere, only slower with VNNI
    return "s8" if {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags) else "u8"


def checkpoint_fingerprint(folder: Path) -> list:
    """Names, sizes and mtimes of the weight and config files: changes when the checkpoint does."""
    entries = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and (path.suffix in (".safetensors", ".bin", ".pt") or path.name == "config.json"):
            stat = path.stat()
            entries.append([path.name, stat.st_size, stat.st_mtime_ns])
    return entries


def onnx_paths(folder: Path) -> tuple[Path, Path]:
    """The float32 export and the record, ``(vision.onnx, vision.json)``."""
    return folder / ONNX_DIR / VISION_ONNX, folder / ONNX_DIR / VISION_META


def int8_path(folder: Path) -> Path:
    return folder / ONNX_DIR / VISION_INT8


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


def _is_patch_conv(module) -> bool:
    """A Conv2d that cuts the image into non-overlapping patches (ViT's patch embedding)."""
    import torch

    return (isinstance(module, torch.nn.Conv2d) and tuple(module.kernel_size) == tuple(module.stride)
            and module.padding in ((0, 0), "valid") and tuple(module.dilation) == (1, 1)
            and module.groups == 1)


def _patch_matmul(conv):
    """The same product as a patch Conv2d, written as reshape + MatMul.

    ONNX Runtime ran ViT-B/32's patch Conv in float32 at 8 % of the image tower's time;
    as a MatMul with a constant weight it is quantized to int8 with the others (28.7 → 26.4
    ms an image on one core, agreement with PyTorch 0.99984 → 0.99981).
    """
    import torch

    class PatchMatMul(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.kh, self.kw = conv.kernel_size
            self.out_channels = conv.out_channels
            self.weight = torch.nn.Parameter(conv.weight.detach().reshape(conv.out_channels, -1).t().contiguous(),
                                             requires_grad=False)
            self.bias = None if conv.bias is None else torch.nn.Parameter(conv.bias.detach().clone(),
                                                                          requires_grad=False)

        def forward(self, pixels):
            n, c, h, w = pixels.shape
            rows, cols = h // self.kh, w // self.kw
            pixels = pixels[:, :, :rows * self.kh, :cols * self.kw]  # a Conv drops the remainder too
            patches = pixels.reshape(n, c, rows, self.kh, cols, self.kw).permute(0, 2, 4, 1, 3, 5)
            out = patches.reshape(n, rows * cols, c * self.kh * self.kw) @ self.weight
            if self.bias is not None:
                out = out + self.bias
            return out.transpose(1, 2).reshape(n, self.out_channels, rows, cols)

    return PatchMatMul()


@contextmanager
def _patches_as_matmuls(model) -> Iterator[None]:
    """Within the block, every patch Conv2d of ``model`` is its MatMul twin; restored after."""
    swapped = []
    for parent in list(model.modules()):  # the tree as it was: swapped children are not visited
        for name, child in list(parent.named_children()):
            if _is_patch_conv(child):
                setattr(parent, name, _patch_matmul(child))
                swapped.append((parent, name, child))
    try:
        yield
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def _write_atomically(target: Path, write: Callable[[str], None]) -> Path:
    """``write(tmp_path)`` through ``store.atomic_output``: no torn model file either way."""
    with atomic_output(target, suffix=".onnx.tmp") as tmp:
        write(str(tmp))
    return target


def export_vision(model, folder: Path, resolution: int) -> Path:
    """Export the image tower to ``<folder>/onnx/vision.onnx`` atomically; returns its path."""
    import torch

    tower = vision_tower(model)
    dummy = torch.zeros(2, 3, resolution, resolution, dtype=torch.float32)

    def write(tmp: str) -> None:
        # The TorchScript exporter: the torch.export-based default needs onnxscript, and the
        # tracer's warnings are about shapes that are fixed here (resolution, patch count);
        # the batch axis stays dynamic.
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings(), _patches_as_matmuls(tower):
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                tower, (dummy,), tmp,
                input_names=["pixel_values"], output_names=["image_embeds"],
                dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
                opset_version=OPSET, dynamo=False,
            )

    return _write_atomically(onnx_paths(folder)[0], write)


class _DropPreprocessHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize_vision(folder: Path, weights: str | None = None) -> Path:
    """Dynamic int8 copy of ``vision.onnx`` as ``vision.int8.onnx`` (atomically); returns its path.

    MatMuls only, 8-bit weights per output channel, signed or unsigned as ``weights`` (default
    :func:`int8_weight_type`, what this CPU computes exactly and fast): on ViTs the MatMuls are nearly all the
    time (the patch embedding is exported as one of them: :func:`_patch_matmul`), and
    quantizing Conv, Gather or attention ops as well was slower and less accurate
    (docs/visual-search.md). quantize_dynamic's own shape pre-processing changed
    neither speed nor accuracy, so its hint to run it is dropped from the log.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = onnx_paths(folder)[0]
    weights = weights or int8_weight_type()
    hint = _DropPreprocessHint()

    def write(tmp: str) -> None:
        logging.getLogger().addFilter(hint)
        try:
            quantize_dynamic(source, tmp, op_types_to_quantize=["MatMul"], per_channel=True,
                             weight_type=QuantType.QInt8 if weights == "s8" else QuantType.QUInt8)
        finally:
            logging.getLogger().removeFilter(hint)

    return _write_atomically(int8_path(folder), write)


def cpu_session(model_path: Path, threads: int | None = None):
    """An ONNX Runtime CPU session with every graph optimisation, ``threads`` intra-op threads
    (default: the cores) that sleep when idle, and ops run one after another."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or cpu_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle pool threads otherwise busy-wait for the next op, taking a core from the video
    # decoder that runs beside the embedder in the analysis pipeline, from the API beside a
    # search, and from other workers. Measured faster without spinning, alone and beside decoding.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


class OnnxVision:
    """An ONNX Runtime session over an exported tower: float32 NCHW pixels in, unit rows out."""

    def __init__(self, model_path: Path, threads: int | None = None):
        self.path = Path(model_path)
        self.session = cpu_session(model_path, threads)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(pixels, dtype=np.float32)})[0]


def calibration_images(count: int = 16, size: tuple[int, int] = (240, 320), seed: int = 0) -> list[np.ndarray]:
    """Varied HxWx3 uint8 images for the agreement check: flat, graded, patterned, smooth
    random colour fields (photo-like low frequencies), sharp noise and mixtures.

    int8 error grows with activation outliers, which flat or saturated images, hard edges
    and noise provoke in different layers; one kind of image would miss some of them.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    height, width = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)

    def smooth(cells: int) -> np.ndarray:
        small = rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
        return np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC))

    makers = [
        lambda: np.zeros((height, width, 3), np.uint8),
        lambda: np.full((height, width, 3), 255, np.uint8),
        lambda: np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (height, width, 3)).copy(),
        lambda: np.stack([x / width * 255, y / height * 255, (1 - x / width) * 255], axis=2).astype(np.uint8),
        lambda: (((x // 20 + y // 20) % 2)[:, :, None] * rng.integers(0, 256, 3)).astype(np.uint8),
        lambda: smooth(3),
        lambda: smooth(8),
        lambda: smooth(24),
        lambda: rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
        lambda: np.clip(smooth(6).astype(np.int16) + rng.integers(-40, 41, (height, width, 3)), 0, 255
                        ).astype(np.uint8),
        lambda: ((np.sin(x / 7) * np.cos(y / 11) > 0)[:, :, None] * np.array([250, 240, 30])).astype(np.uint8),
        lambda: (smooth(4) * (((x - width / 2) ** 2 + (y - height / 2) ** 2) < (height / 3) ** 2)[:, :, None]
                 ).astype(np.uint8),
    ]
    return [makers[i % len(makers)]() for i in range(count)]


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


def min_cosine(rows: np.ndarray, reference: np.ndarray) -> float:
    """The worst cosine between matching rows of two arrays."""
    rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    reference = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    return float(np.min(np.sum(rows * reference, axis=1)))


def choose_runtime(meta: dict, mode: str = "auto") -> str:
    """The runtime a record says to use.

    ``"auto"``: the fastest of those whose embeddings agree with PyTorch's. Forced choices:
    ``"onnx"`` is float32 whenever it exported; ``"onnx-int8"`` is int8 when it passed the
    agreement check, else float32 (the check is never skipped).
    """
    runtimes = meta.get("runtimes", {})
    if mode == ONNX_INT8 and runtimes.get(ONNX_INT8, {}).get("agrees"):
        return ONNX_INT8
    if mode in (ONNX_FP32, ONNX_INT8):
        return ONNX_FP32 if ONNX_FP32 in runtimes else TORCH
    agreeing = [name for name, rec in runtimes.items() if rec.get("agrees")] or [TORCH]
    return max(agreeing, key=lambda name: runtimes.get(name, {}).get("images_per_s", 0.0))


def _session_path(folder: Path, runtime: str) -> Path:
    return int8_path(folder) if runtime == ONNX_INT8 else onnx_paths(folder)[0]


def _measure(folder: Path, sessions: dict[str, OnnxVision], torch_run: Callable[[np.ndarray], np.ndarray],
             calibration: np.ndarray) -> dict[str, dict]:
    reference = torch_run(calibration)
    runtimes: dict[str, dict] = {TORCH: {"agrees": True}}
    for name, session in sessions.items():
        agreement = min_cosine(session(calibration), reference)
        floor = MIN_INT8_AGREEMENT if name == ONNX_INT8 else MIN_AGREEMENT
        runtimes[name] = {"min_cosine_vs_torch": round(agreement, 7), "agrees": bool(agreement >= floor),
                          "file": _session_path(folder, name).name}
    speed = compare_speed({TORCH: torch_run, **sessions}, calibration[:TIMING_BATCH])
    for name, images_per_s in speed.items():
        runtimes[name]["images_per_s"] = round(images_per_s, 2)
    return runtimes


def _open_or_make(path: Path, make: Callable[[], None], threads: int | None, reuse: bool) -> OnnxVision:
    """A session over ``path``; the file is (re)made first unless ``reuse`` and it opens."""
    if reuse and path.exists():
        try:
            return OnnxVision(path, threads)
        except Exception as exc:  # a truncated or foreign file: make it again
            log.warning("cannot open %s (%s); making it again", path, exc)
    make()
    return OnnxVision(path, threads)


def prepare(model, folder: Path, resolution: int, torch_run: Callable[[np.ndarray], np.ndarray],
            calibration: np.ndarray, threads: int | None = None,
            mode: str = "auto") -> tuple[OnnxVision | None, str, dict]:
    """Export and quantize (once), check and time the ONNX vision towers against PyTorch.

    ``calibration``: preprocessed pixels (N, 3, H, W) of varied images (``calibration_images``).
    Returns the session to use (None for PyTorch), its runtime name (``"torch"``, ``"onnx"``,
    ``"onnx-int8"``: ``choose_runtime``) and the record kept in ``vision.json``. Never raises
    for a failed export or quantization: the caller falls back to float32 or PyTorch.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    machine = machine_id(threads)
    weights = int8_weight_type()
    meta = read_meta(folder)
    # Records written before the weight type was recorded hold s8 weights.
    same_weights = meta is not None and meta.get("int8_weights", "s8") == weights
    if meta is not None and meta.get("machine") == machine and same_weights:
        runtime = choose_runtime(meta, mode)
        if runtime == TORCH:
            return None, TORCH, meta
        try:
            return OnnxVision(_session_path(folder, runtime), threads), runtime, meta
        except Exception as exc:  # a truncated or foreign file: export again below
            log.warning("cannot open the %s export in %s (%s); exporting again", runtime, folder, exc)
            meta = None
    # A record made on another machine (a models folder shared between workers) keeps its
    # exports: only the timing is redone, since int8's gain depends on the CPU.
    record: dict = {"format": EXPORT_FORMAT, "fingerprint": checkpoint_fingerprint(folder), "opset": OPSET}
    if meta is not None:
        record["export_seconds"] = meta.get("export_seconds")
        record["quantize_seconds"] = meta.get("quantize_seconds")

    def export() -> None:
        started = time.perf_counter()
        export_vision(model, folder, resolution)
        record["export_seconds"] = round(time.perf_counter() - started, 2)

    def quantize() -> None:
        started = time.perf_counter()
        quantize_vision(folder, weights)
        record["quantize_seconds"] = round(time.perf_counter() - started, 2)

    sessions: dict[str, OnnxVision] = {}
    try:
        sessions[ONNX_FP32] = _open_or_make(onnx_paths(folder)[0], export, threads, reuse=meta is not None)
    except Exception as exc:
        log.warning("ONNX export of %s failed, using PyTorch: %s", folder, exc)
        return None, TORCH, {"runtime": TORCH, "error": str(exc)}
    try:
        # The int8 file is reused only when quantized the way this CPU needs (see int8_weight_type).
        sessions[ONNX_INT8] = _open_or_make(int8_path(folder), quantize, threads, reuse=same_weights)
        record["int8_weights"] = weights
    except Exception as exc:
        log.warning("int8 quantization of %s failed, float32 only: %s", folder, exc)
        record["int8_error"] = str(exc)
    record["runtimes"] = _measure(folder, sessions, torch_run, calibration)
    record["calibration_images"] = int(len(calibration))
    record["machine"] = machine
    record["threads"] = threads or cpu_threads()
    record["runtime"] = choose_runtime(record)
    try:
        atomic_write_json(onnx_paths(folder)[1], record)
    except OSError as exc:
        log.warning("cannot record the ONNX export choice in %s: %s", onnx_paths(folder)[1], exc)
    runtime = choose_runtime(record, mode)
    return sessions.get(runtime), runtime, record
