"""Model families in one table: what each is, which engine class loads it, where its weights
sit in a model folder and how an import checks it.

A catalogue entry (workers/engines/catalogue.py) names its family; everything that used to
branch on the family string (is it downloaded, which engine loads it, how `models import`
validates it) looks the family up here instead, as PySceneDetect's ``AVAILABLE_BACKENDS`` and
Immich's ``get_model_class()`` do. To add an engine, add a row to ``FAMILIES``.

Engine classes and checks are named as ``"module:attribute"`` and imported on first use, so
importing this module stays cheap (the API process lists models and never imports torch).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VISUAL = "visual"
SPEECH = "speech"
FACES = "faces"


def _holding(name: str) -> Callable[[Path], Path | None]:
    def weights(folder: Path) -> Path | None:
        return folder if (folder / name).exists() else None

    return weights


def _whisper_checkpoint(path: Path) -> Path | None:
    # A path may be the .pt itself (an absolute import source) or a folder holding one.
    if path.is_file() and path.suffix == ".pt":
        return path
    if path.is_dir():
        found = sorted(path.glob("*.pt"))
        if found:
            return found[0]
    return None


def _any_file(folder: Path) -> Path | None:
    return folder if folder.is_dir() and any(folder.iterdir()) else None


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # visual | speech | faces
    engine: str  # "module:Class"; the class is built the same way for every family of a kind
    # What the engine is given to load from a model's local path (the folder, or the checkpoint
    # file in it); None when the weights are not there.
    weights: Callable[[Path], Path | None]
    # "module:function(folder, key) -> image resolution (0: not fixed)": what `models import`
    # runs before filing a checkpoint; empty when the family cannot be imported.
    check: str = ""
    # The transformers config.json ``model_type`` that means this family (visual checkpoints).
    model_type: str = ""
    # Whether a hub download is checked like an import (an openai-whisper .pt is never pulled).
    check_pulled: bool = True

    def engine_class(self) -> type:
        return _resolve(self.engine)

    def check_folder(self, folder: Path, key: str) -> int:
        if not self.check:
            raise ValueError(f"{self.name} models cannot be imported")
        return _resolve(self.check)(folder, key)


_VISUAL_ENGINE = "workers.engines.visual:TransformersVisualEngine"
_CHECK_VISUAL = "workers.models_admin:check_visual"

FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family("clip", VISUAL, _VISUAL_ENGINE, _holding("config.json"), _CHECK_VISUAL, model_type="clip"),
        Family("siglip", VISUAL, _VISUAL_ENGINE, _holding("config.json"), _CHECK_VISUAL, model_type="siglip"),
        Family("siglip2", VISUAL, _VISUAL_ENGINE, _holding("config.json"), _CHECK_VISUAL, model_type="siglip2"),
        Family("faster-whisper", SPEECH, "workers.engines.speech:FasterWhisperEngine", _holding("model.bin"),
               "workers.models_admin:check_faster_whisper"),
        Family("openai-whisper", SPEECH, "workers.engines.speech:OpenAIWhisperEngine", _whisper_checkpoint,
               "workers.models_admin:check_openai_whisper", check_pulled=False),
        Family("deepface", FACES, "workers.engines.faces:DeepFaceEngine", _any_file),
    )
}

# A visual checkpoint's config.json model_type -> the family whose text/image conventions apply.
VISUAL_MODEL_TYPES = {f.model_type: f.name for f in FAMILIES.values() if f.model_type}


class UnknownFamily(ValueError):
    """A catalogue entry names a family no row of ``FAMILIES`` describes."""


def family(name: str, kind: str | None = None) -> Family:
    """The row for ``name`` (which must be a ``kind`` family when ``kind`` is given)."""
    row = FAMILIES.get(name)
    if row is None or (kind is not None and row.kind != kind):
        known = sorted(f.name for f in FAMILIES.values() if kind is None or f.kind == kind)
        what = f"{kind} model family" if kind else "model family"
        raise UnknownFamily(f"unknown {what} {name!r}; this sightline has engines for: {', '.join(known)}")
    return row


def _resolve(target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)
