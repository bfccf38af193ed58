"""ONNX Runtime fast path for the text tower of a CLIP / SigLIP checkpoint.

A search waits on one text encoding. On these 2 cores ONNX Runtime ran the ViT-B/32 text
tower 2-3x faster than PyTorch eager (one text 11 ms against 35 ms, eight 40 against 78;
docs/visual-search.md, "Through HTTP"), so the tower (with its projection) is exported once
to ``<checkpoint>/onnx/text.onnx``, batch and sequence length dynamic, next to ``text.json``,
which records what it was made from and whether it agreed with PyTorch on texts of several
lengths, alone and batched. An export that does not agree, or cannot be made, is recorded
as such and PyTorch keeps the texts.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from workers.engines.onnx_visual import ONNX_DIR, OPSET, checkpoint_fingerprint, cpu_session, min_cosine
from workers.store import atomic_output, atomic_write_json, read_json

log = logging.getLogger(__name__)

TEXT_ONNX = "text.onnx"
TEXT_META = "text.json"
EXPORT_FORMAT = 1
# Float32 differs from PyTorch by rounding only; anything further off is a broken export.
MIN_AGREEMENT = 0.9999
CHECK_TEXTS = ["a", "a photo of a dog", "two people talking in a kitchen at night, seen from the door",
               "red", "ein Hund im Schnee", "the sea"]

Tokens = Mapping[str, np.ndarray]


def text_paths(folder: Path) -> tuple[Path, Path]:
    return folder / ONNX_DIR / TEXT_ONNX, folder / ONNX_DIR / TEXT_META


def _text_tower(model, with_mask: bool):
    import torch

    class TextTower(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask=None):
            out = self.inner.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
            return out if torch.is_tensor(out) else out.pooler_output

    tower = TextTower(model).eval()
    if with_mask:
        return tower

    class IdsOnly(torch.nn.Module):  # SigLIP: fixed-length padding, no mask
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids):
            return self.inner(input_ids)

    return IdsOnly(tower).eval()


def export_text(model, folder: Path, sample: Tokens) -> Path:
    """Export the text tower to ``<folder>/onnx/text.onnx`` atomically; returns its path."""
    import torch

    names = list(sample)
    tower = _text_tower(model, "attention_mask" in names)
    args = tuple(torch.from_numpy(np.asarray(sample[name])) for name in names)
    target = text_paths(folder)[0]
    with atomic_output(target, suffix=".onnx.tmp") as tmp, torch.inference_mode(False), torch.no_grad(), \
            warnings.catch_warnings():
        # The TorchScript exporter, as for the image tower (the default needs onnxscript).
        warnings.simplefilter("ignore")
        torch.onnx.export(tower, args, str(tmp), input_names=names, output_names=["text_embeds"],
                          dynamic_axes={**{name: {0: "batch", 1: "sequence"} for name in names},
                                        "text_embeds": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
    return target


class OnnxText:
    """An ONNX Runtime session over the exported text tower: tokens in, raw features out."""

    def __init__(self, model_path: Path, threads: int | None = None):
        self.session = cpu_session(model_path, threads)
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, tokens: Tokens) -> np.ndarray:
        return self.session.run(None, {name: np.asarray(tokens[name], dtype=np.int64) for name in self.inputs})[0]


def _agreement(session: OnnxText, tokenize: Callable[[list[str]], Tokens],
               torch_run: Callable[[Tokens], np.ndarray]) -> float:
    """Worst cosine between ONNX and PyTorch over the check texts, batched and one by one."""
    worst = min_cosine(session(tokenize(CHECK_TEXTS)), torch_run(tokenize(CHECK_TEXTS)))
    for text in CHECK_TEXTS[:3]:
        worst = min(worst, min_cosine(session(tokenize([text])), torch_run(tokenize([text]))))
    return worst


def prepare_text(model, folder: Path, tokenize: Callable[[list[str]], Tokens],
                 torch_run: Callable[[Tokens], np.ndarray], threads: int | None = None) -> OnnxText | None:
    """The ONNX text session for the checkpoint in ``folder``, exported and checked on first
    use; None when it cannot be made or does not agree with PyTorch (texts stay on PyTorch)."""
    model_path, meta_path = text_paths(folder)
    fingerprint = checkpoint_fingerprint(folder)
    meta = read_json(meta_path)
    fresh = (isinstance(meta, dict) and meta.get("format") == EXPORT_FORMAT
             and meta.get("fingerprint") == fingerprint)
    if fresh and not meta.get("agrees"):
        return None
    try:
        if not (fresh and model_path.exists()):
            export_text(model, folder, tokenize(CHECK_TEXTS[:2]))
        session = OnnxText(model_path, threads)
        if fresh:
            return session
        agreement = _agreement(session, tokenize, torch_run)
    except Exception as exc:  # noqa: BLE001 - any failure leaves the texts on PyTorch
        log.warning("text tower of %s: no ONNX export (%s); texts run on PyTorch", folder, exc)
        agreement = None
        session = None
    agrees = agreement is not None and agreement >= MIN_AGREEMENT
    try:
        atomic_write_json(meta_path, {"format": EXPORT_FORMAT, "fingerprint": fingerprint, "agrees": agrees,
                                      "min_cosine": agreement})
    except OSError as exc:  # a read-only models folder: decided again at the next load
        log.warning("cannot record the text export of %s: %s", folder, exc)
    if not agrees:
        if agreement is not None:
            log.warning("text tower of %s: ONNX agrees with PyTorch only to %.6f; texts run on PyTorch",
                        folder, agreement)
        return None
    return session
