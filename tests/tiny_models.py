"""Build small randomly initialised CLIP / SigLIP / SigLIP2 checkpoints on disk, offline.

Each builder writes a folder laid out exactly like a hub checkpoint (config.json, weights,
tokenizer files, preprocessor_config.json) so it can go through ``import_model`` and the
real loading code. The tokenizers are real BPE tokenizers whose vocabulary is built here
from bytes plus merges for a few words, so any text tokenizes without an unknown token.

Not a test module: tests and benchmarks import it.
"""

from __future__ import annotations

import json
from pathlib import Path

WORDS = (
    "a photo of the dog cat on beach water swimming pool car street red blue green forest "
    "leaf rock deer tyre black man woman waving hands sky tree night city person face"
).split()


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2/CLIP byte-level alphabet: every byte maps to a printable character.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, [chr(c) for c in chars], strict=True))


def _word_merges(symbols: list[str], vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
    """Merge a word's symbols left to right, recording each new merge and token."""
    while len(symbols) > 1:
        pair = (symbols[0], symbols[1])
        merged = symbols[0] + symbols[1]
        if pair not in merges:
            merges.append(pair)
        vocab.setdefault(merged, len(vocab))
        symbols = [merged] + symbols[2:]


def clip_tokenizer():
    """A byte-level BPE CLIPTokenizer with ~560 tokens; eos is the last id, as in OpenAI's."""
    from transformers import CLIPTokenizer

    alphabet = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for ch in alphabet:
        vocab[ch] = len(vocab)
    for ch in alphabet:
        vocab[ch + "</w>"] = len(vocab)
    merges: list[tuple[str, str]] = []
    for word in WORDS:
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        _word_merges(symbols, vocab, merges)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def gemma_tokenizer(cls_name: str = "GemmaTokenizer", max_length: int = 16):
    """A Gemma-style BPE tokenizer with byte fallback (what SigLIP2 checkpoints ship)."""
    import transformers

    cls = getattr(transformers, cls_name)
    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for ch in "▁abcdefghijklmnopqrstuvwxyz0123456789":
        vocab.setdefault(ch, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in WORDS:
        _word_merges(["▁", *word], vocab, merges)
    # SigLIP pools the last position and was trained on right-padded, fixed-length text.
    return cls(vocab=vocab, merges=merges, model_max_length=max_length, padding_side="right")


def _vision_kwargs(image_size: int, patch: int, hidden: int = 32, layers: int = 2, heads: int = 2) -> dict:
    return dict(hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                num_attention_heads=heads, image_size=image_size, patch_size=patch)


def _text_kwargs(vocab_size: int, max_pos: int, hidden: int = 32, layers: int = 2, heads: int = 2) -> dict:
    return dict(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=hidden * 2,
                num_hidden_layers=layers, num_attention_heads=heads, max_position_embeddings=max_pos)


def _save(model, tokenizer, image_processor, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    image_processor.save_pretrained(folder)
    return folder


def build_tiny_clip(folder: str | Path, image_size: int = 32, seed: int = 0) -> Path:
    """A ~0.1 M-parameter CLIP (projection dim 16) with the OpenAI CLIP preprocessing."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    torch.manual_seed(seed)
    tok = clip_tokenizer()
    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config = CLIPConfig(
        text_config={**_text_kwargs(len(tok), 77), **ids},
        vision_config=_vision_kwargs(image_size, 8),
        projection_dim=16,
    )
    model = CLIPModel(config).eval()
    processor = CLIPImageProcessorPil(size={"shortest_edge": image_size},
                                      crop_size={"height": image_size, "width": image_size})
    return _save(model, tok, processor, Path(folder))


def build_tiny_siglip(folder: str | Path, image_size: int = 32, seed: int = 0) -> Path:
    """A tiny fixed-resolution SigLIP (``model_type: siglip``, Gemma tokenizer), the layout of
    the SigLIP2 "FixRes" checkpoints that back Jumper's v2 keys."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel

    torch.manual_seed(seed)
    tok = gemma_tokenizer()
    config = SiglipConfig(
        text_config={**_text_kwargs(len(tok), 16), "projection_size": 32,
                     "pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id,
                     "eos_token_id": tok.eos_token_id},
        vision_config=_vision_kwargs(image_size, 8),
    )
    model = SiglipModel(config).eval()
    processor = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    return _save(model, tok, processor, Path(folder))


def build_tiny_siglip2(folder: str | Path, seed: int = 0) -> Path:
    """A tiny NaFlex SigLIP2 (``model_type: siglip2``, variable aspect ratio patches)."""
    import torch
    from transformers import Siglip2Config, Siglip2ImageProcessorPil, Siglip2Model

    torch.manual_seed(seed)
    tok = gemma_tokenizer("Siglip2Tokenizer")
    vision = _vision_kwargs(32, 8)
    vision.pop("image_size")
    config = Siglip2Config(
        text_config={**_text_kwargs(len(tok), 16), "projection_size": 32,
                     "pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id,
                     "eos_token_id": tok.eos_token_id},
        vision_config={**vision, "num_patches": 16},
    )
    model = Siglip2Model(config).eval()
    processor = Siglip2ImageProcessorPil(patch_size=8, max_num_patches=16)
    return _save(model, tok, processor, Path(folder))


def build_clip_vit_b32(folder: str | Path, seed: int = 0) -> Path:
    """A randomly initialised CLIP with ViT-B/32's shapes (88 M-parameter vision tower), for
    benchmarks: the speed of a real checkpoint without downloading one."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    torch.manual_seed(seed)
    tok = clip_tokenizer()
    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config = CLIPConfig(
        text_config={**_text_kwargs(len(tok), 77, hidden=512, layers=12, heads=8), **ids},
        vision_config=_vision_kwargs(224, 32, hidden=768, layers=12, heads=12) | {"intermediate_size": 3072},
        projection_dim=512,
    )
    config.text_config.intermediate_size = 2048
    model = CLIPModel(config).eval()
    return _save(model, tok, CLIPImageProcessorPil(), Path(folder))


def empty_tokenizer_copy(source: str | Path, folder: str | Path) -> Path:
    """A copy of a checkpoint whose tokenizer has lost its vocabulary: what transformers 5
    silently hands back for an offline hub id (docs/architecture.md, Known traps)."""
    import shutil

    source, folder = Path(source), Path(folder)
    shutil.copytree(source, folder, dirs_exist_ok=True)
    tok_file = folder / "tokenizer.json"
    data = json.loads(tok_file.read_text())
    data["model"]["vocab"] = {}
    data["model"]["merges"] = []
    data["added_tokens"] = []
    tok_file.write_text(json.dumps(data))
    for name in ("vocab.json", "merges.txt"):
        (folder / name).unlink(missing_ok=True)
    return folder
