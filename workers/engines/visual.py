"""The visual embedding engine: CLIP / SigLIP / SigLIP2 checkpoints loaded with transformers.

Frames and texts go into one space; rows come out L2-normalised float32. Images are
preprocessed here with PIL + numpy, mirroring the checkpoint's own image processor (its
``preprocessor_config.json``): the PIL resize it would do, CLIP's center crop, the
rescale and mean/std. That avoids transformers' torchvision backend (not installed) and
a per-image Python round trip through the processor.

The image tower runs on ONNX Runtime, float32 or dynamic int8, when an export beside the
checkpoint agrees with PyTorch and is faster on this machine
(``workers/engines/onnx_visual.py``), else on PyTorch eager. Texts run on ONNX Runtime
float32 when that export agrees with PyTorch (``workers/engines/onnx_text.py``: 2-3x faster
for a search's one or few short texts), else on PyTorch.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workers.engines import catalogue
from workers.engines.base import ModelUnavailable
from workers.engines.cache import gb_to_bytes, model_cache

log = logging.getLogger(__name__)

FAMILIES = catalogue.VISUAL_FAMILIES
MODEL_TYPES = catalogue.VISUAL_MODEL_TYPES
IMAGE_BATCH = 16
TEXT_BATCH = 64

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class TokenizerError(ModelUnavailable):
    """The checkpoint's tokenizer is empty or does not fit the model's vocabulary."""


# --- image preprocessing ---------------------------------------------------------------------


@dataclass(frozen=True)
class ImagePrep:
    """What a checkpoint's image processor does, read from ``preprocessor_config.json``."""

    shortest_edge: int | None  # resize keeping aspect ratio (CLIP) ...
    size: tuple[int, int] | None  # ... or straight to (height, width) (SigLIP)
    crop: tuple[int, int] | None  # center crop (height, width), CLIP only
    resample: int
    rescale: float
    mean: np.ndarray
    std: np.ndarray

    @property
    def out_hw(self) -> tuple[int, int]:
        if self.crop:
            return self.crop
        if self.size:
            return self.size
        raise ValueError("a shortest-edge resize without a crop has no fixed output size")


def _hw(value, square_default: bool) -> tuple[str, tuple[int, int] | int]:
    """Normalise the ``size`` / ``crop_size`` spellings transformers has used over the years."""
    if isinstance(value, int):
        return ("hw", (value, value)) if square_default else ("short", value)
    if isinstance(value, (list, tuple)):
        return "hw", (int(value[0]), int(value[1]))
    if isinstance(value, dict):
        if value.get("height") and value.get("width"):
            return "hw", (int(value["height"]), int(value["width"]))
        if value.get("shortest_edge"):
            return "short", int(value["shortest_edge"])
    raise ValueError(f"unsupported image size setting {value!r}")


def read_image_prep(folder: Path, family: str) -> ImagePrep:
    """The preprocessing recorded in a checkpoint, with the family's defaults for gaps."""
    try:
        raw = json.loads((folder / "preprocessor_config.json").read_text())
    except FileNotFoundError:
        raw = {}
    clip = family == "clip"
    default_size = {"shortest_edge": 224} if clip else {"height": 224, "width": 224}
    kind, size = _hw(raw.get("size", default_size) if raw.get("do_resize", True) else default_size, False)
    crop = None
    if raw.get("do_center_crop", clip):
        crop = _hw(raw.get("crop_size", {"height": 224, "width": 224}), True)[1]
    mean = raw.get("image_mean", OPENAI_CLIP_MEAN if clip else (0.5, 0.5, 0.5))
    std = raw.get("image_std", OPENAI_CLIP_STD if clip else (0.5, 0.5, 0.5))
    if not raw.get("do_normalize", True):
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    rescale = float(raw.get("rescale_factor", 1 / 255)) if raw.get("do_rescale", True) else 1.0
    return ImagePrep(
        shortest_edge=size if kind == "short" else None,
        size=size if kind == "hw" else None,
        crop=crop,
        resample=int(raw.get("resample", 3)),  # bicubic, both families' default
        rescale=rescale,
        mean=np.asarray(mean, dtype=np.float32).reshape(1, 1, 1, 3),
        std=np.asarray(std, dtype=np.float32).reshape(1, 1, 1, 3),
    )


def as_rgb(image: np.ndarray, index: int = 0) -> np.ndarray:
    """Check one input frame; grey and RGBA are converted, anything else is refused."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image {index}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image {index}: expected uint8 pixels, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image {index}: expected an HxWx3 RGB array, got shape {image.shape}")
    return image[:, :, :3]


def _resize_crop(image: np.ndarray, prep: ImagePrep) -> np.ndarray:
    from PIL import Image

    height, width = image.shape[:2]
    if prep.shortest_edge:
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(prep.shortest_edge * long / short)  # transformers truncates, so do we
        new_h, new_w = (new_long, prep.shortest_edge) if width <= height else (prep.shortest_edge, new_long)
    else:
        new_h, new_w = prep.size
    if (new_h, new_w) != (height, width):
        image = np.asarray(Image.fromarray(image).resize((new_w, new_h), resample=prep.resample))
    if prep.crop:
        crop_h, crop_w = prep.crop
        if new_h < crop_h or new_w < crop_w:  # pad with black like transformers does, then crop
            padded = np.zeros((max(new_h, crop_h), max(new_w, crop_w), 3), dtype=np.uint8)
            top, left = -(-(padded.shape[0] - new_h) // 2), -(-(padded.shape[1] - new_w) // 2)
            padded[top:top + new_h, left:left + new_w] = image
            image, new_h, new_w = padded, padded.shape[0], padded.shape[1]
        top, left = (new_h - crop_h) // 2, (new_w - crop_w) // 2
        image = image[top:top + crop_h, left:left + crop_w]
    return image


def preprocess(images: list[np.ndarray], prep: ImagePrep) -> np.ndarray:
    """HxWx3 uint8 frames -> (N, 3, H, W) float32 pixels, as the checkpoint's processor makes them."""
    batch = np.stack([_resize_crop(as_rgb(img, i), prep) for i, img in enumerate(images)])
    # A 256-entry table per channel holds (v * rescale - mean) / std, computed in float32 as
    # the arithmetic on the whole batch was (bit-identical), gathered straight into NCHW:
    # 40 % less preprocessing than converting, scaling and transposing the batch.
    table = (np.arange(256, dtype=np.float32)[:, None] * np.float32(prep.rescale)
             - prep.mean.reshape(1, 3)) / prep.std.reshape(1, 3)
    pixels = np.empty((batch.shape[0], 3, batch.shape[1], batch.shape[2]), dtype=np.float32)
    for channel in range(3):
        np.take(table[:, channel], batch[..., channel], out=pixels[:, channel])
    return pixels


# --- tokenizer check ---------------------------------------------------------------------------


def check_tokenizer(tokenizer, vocab_size: int, folder: Path, key: str) -> None:
    """Refuse a tokenizer that would silently embed every text the same way.

    transformers 5 can hand back a tokenizer with no vocabulary instead of failing
    (docs/architecture.md, Known traps); its ids then say nothing about the text.
    """
    size = len(tokenizer)
    fix = catalogue.fix_command(key)
    if size == 0 or not tokenizer.get_vocab():
        raise TokenizerError(f"the tokenizer in {folder} has an empty vocabulary; fix: {fix}")
    if size > vocab_size:
        raise TokenizerError(
            f"the tokenizer in {folder} has {size} tokens but the model only {vocab_size}; fix: {fix}")
    if size < vocab_size // 2:
        raise TokenizerError(
            f"the tokenizer in {folder} has only {size} tokens for a model with {vocab_size}: an empty or "
            f"wrong vocabulary; fix: {fix}")
    special = set(tokenizer.all_special_ids)
    probe = tokenizer("a photo of a dog", add_special_tokens=False)["input_ids"]
    words = [i for i in probe if i not in special and i != tokenizer.unk_token_id]
    if not words:
        raise TokenizerError(f"the tokenizer in {folder} turns text into no known tokens; fix: {fix}")


# --- the engine -------------------------------------------------------------------------------


def _features(out):
    import torch

    # transformers 5: get_*_features returns an output object with the projection in pooler_output.
    return out if torch.is_tensor(out) else out.pooler_output


def _unit_rows(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, 1e-12)


class TransformersVisualEngine:
    """A CLIP / SigLIP / SigLIP2 checkpoint in a local folder.

    ``runtime``: ``"auto"`` (the fastest of PyTorch, ONNX float32 and ONNX int8 among those
    whose image embeddings agree with PyTorch's, exported and measured on first load),
    ``"onnx"`` (float32 ONNX whenever it exports cleanly), ``"onnx-int8"`` (int8 when it
    passes the agreement check, else float32) or ``"torch"``.
    ``active_runtime`` says which one embeds images, ``text_runtime`` which one embeds texts
    (ONNX float32 whenever ``runtime`` is not ``"torch"`` and its export agrees).
    """

    RUNTIMES = ("auto", "onnx", "onnx-int8", "torch")

    def __init__(self, spec: catalogue.ModelSpec, path: str | Path, runtime: str = "auto",
                 threads: int | None = None):
        if runtime not in self.RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(self.RUNTIMES)}, not {runtime!r}")
        self.spec = spec
        self.key = spec.key
        self.path = Path(path)
        self.runtime = runtime
        self.threads = threads
        self.dim = 0
        self.resolution = spec.resolution
        self.family = spec.family
        self.model_type = ""
        self.active_runtime = "torch"
        self.onnx_meta: dict = {}
        self._model = None
        self._tokenizer = None
        self._prep: ImagePrep | None = None
        self._hf_image_processor = None  # SigLIP2 NaFlex only: variable patch grids
        self._onnx = None
        self._onnx_text = None
        self.text_runtime = "torch"
        self._lock = threading.Lock()
        self.image_threads = threads  # ONNX sessions' threads; None: onnx_visual.image_threads()

    # loading

    def load(self) -> None:
        with self._lock:
            if self._model is None:
                self._load()

    def _load(self) -> None:
        import torch
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        from workers.engines.onnx_visual import calibration_images, cpu_threads, image_threads, prepare

        if not (self.path / "config.json").exists():
            raise ModelUnavailable(
                f"visual model {self.key!r} is not on this machine (no {self.path / 'config.json'}); "
                f"run: {catalogue.fix_command(self.key)}")
        torch.set_num_threads(self.threads or cpu_threads())
        self.image_threads = self.threads or image_threads()
        config = AutoConfig.from_pretrained(self.path, local_files_only=True)
        if config.model_type not in MODEL_TYPES:
            raise ModelUnavailable(
                f"{self.path} holds a {config.model_type!r} model; visual models must be CLIP, SigLIP or SigLIP2")
        self.model_type = config.model_type
        # A SigLIP2 FixRes checkpoint says model_type "siglip": the catalogue's family wins for
        # text conventions (lower-casing), the model_type for the architecture.
        if self.family not in FAMILIES:
            self.family = MODEL_TYPES[config.model_type]
        tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        check_tokenizer(tokenizer, config.text_config.vocab_size, self.path, self.key)
        model = AutoModel.from_pretrained(self.path, local_files_only=True, dtype=torch.float32).eval()
        self._tokenizer = tokenizer
        self._text_len = int(config.text_config.max_position_embeddings)
        if self.model_type == "siglip2":
            from transformers import AutoImageProcessor

            self._hf_image_processor = AutoImageProcessor.from_pretrained(self.path, local_files_only=True)
            self.resolution = self.resolution or int(
                (self._hf_image_processor.max_num_patches ** 0.5) * self._hf_image_processor.patch_size)
        else:
            self._prep = read_image_prep(self.path, "clip" if self.model_type == "clip" else "siglip")
            self.resolution = self._prep.out_hw[0]
        self._model = model
        self.dim = int(self._embed_text_batch(["a"]).shape[1])
        self.active_runtime = "torch"
        if self.runtime != "torch":
            from workers.engines.onnx_text import prepare_text

            self._onnx_text = prepare_text(model, self.path, self._tokenize, self._text_torch, threads=self.threads)
            self.text_runtime = "onnx" if self._onnx_text is not None else "torch"
        if self._hf_image_processor is None and self.runtime != "torch":
            calibration = preprocess(calibration_images(IMAGE_BATCH), self._prep)
            self._onnx, self.active_runtime, self.onnx_meta = prepare(
                model, self.path, self.resolution, self._vision_torch, calibration,
                threads=self.image_threads, mode=self.runtime)
        log.info("visual model %s loaded from %s (%s, dim %d, images on %s, texts on %s)", self.key, self.path,
                 self.model_type, self.dim, self.active_runtime, self.text_runtime)

    # images

    def _vision_torch(self, pixels: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = _features(self._model.get_image_features(pixel_values=torch.from_numpy(pixels)))
            return _unit_rows(out.numpy())

    def _vision_naflex(self, images: list[np.ndarray]) -> np.ndarray:
        import torch

        inputs = self._hf_image_processor(images=images, return_tensors="pt")
        with torch.inference_mode():
            out = _features(self._model.get_image_features(**inputs))
            return _unit_rows(out.numpy())

    def embed_images(self, images: list[np.ndarray]) -> np.ndarray:
        """HxWx3 uint8 RGB frames of any size -> (N, dim) float32 unit rows."""
        self.load()
        images = [as_rgb(img, i) for i, img in enumerate(images)]
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        for start in range(0, len(images), IMAGE_BATCH):
            chunk = images[start:start + IMAGE_BATCH]
            if self._hf_image_processor is not None:
                parts.append(self._vision_naflex(chunk))
                continue
            pixels = preprocess(chunk, self._prep)
            parts.append(_unit_rows(self._onnx(pixels)) if self._onnx is not None else self._vision_torch(pixels))
        return np.concatenate(parts).astype(np.float32, copy=False)

    # texts

    def _tokenize(self, texts: list[str]) -> dict[str, np.ndarray]:
        if self.family == "siglip2":
            texts = [t.lower() for t in texts]  # SigLIP2 was trained on lower-cased text
        if self.model_type == "clip":
            enc = self._tokenizer(texts, padding=True, truncation=True, max_length=self._text_len,
                                  return_tensors="np")
            return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        # SigLIP pools the last position and was trained on fixed-length padded text
        # without an attention mask (transformers' SigLIP docs: padding="max_length").
        enc = self._tokenizer(texts, padding="max_length", truncation=True, max_length=self._text_len,
                              return_tensors="np")
        return {"input_ids": enc["input_ids"]}

    def _text_torch(self, tokens: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            inputs = {name: torch.from_numpy(np.asarray(value, dtype=np.int64)) for name, value in tokens.items()}
            return _features(self._model.get_text_features(**inputs)).numpy()

    def _embed_text_batch(self, texts: list[str]) -> np.ndarray:
        tokens = self._tokenize(texts)
        return _unit_rows(self._onnx_text(tokens) if self._onnx_text is not None else self._text_torch(tokens))

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Texts -> (N, dim) float32 unit rows, in the same space as the images."""
        self.load()
        if isinstance(texts, str):
            raise ValueError("embed_texts takes a list of strings, not one string")
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise ValueError(f"texts must be strings; item {bad[0]} is {type(texts[bad[0]]).__name__}")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [self._embed_text_batch(texts[i:i + TEXT_BATCH]) for i in range(0, len(texts), TEXT_BATCH)]
        return np.concatenate(parts)


# --- per-process cache (workers/engines/cache.py keeps at most KINDS["visual"].max_loaded) -------


def load_visual_engine(model_key: str, models_dir: Path | None = None, runtime: str = "auto"):
    """The loaded engine for a visual ``model_key`` (alias or imported key), cached per process.

    Raises ValueError for a key that is not a visual model, ModelUnavailable (whose message
    carries the fix command) when its files are not on this machine or are broken.
    """
    spec = catalogue.require_spec(model_key, catalogue.VISUAL, models_dir)

    def load() -> TransformersVisualEngine:
        if not catalogue.is_downloaded(spec, models_dir):
            raise ModelUnavailable(
                f"visual model {model_key!r} is not downloaded (expected in "
                f"{catalogue.local_path(spec, models_dir)}); run: {catalogue.fix_command(model_key)}")
        engine = catalogue.family_of(spec).engine_class()(spec, catalogue.local_path(spec, models_dir),
                                                          runtime=runtime)
        engine.load()
        return engine

    return model_cache().get(catalogue.VISUAL, model_key, load,
                             {"models_dir": str(models_dir) if models_dir else None, "runtime": runtime},
                             size_bytes=gb_to_bytes(spec.size_gb))


def unload_visual_engines() -> None:
    model_cache().clear(catalogue.VISUAL)
