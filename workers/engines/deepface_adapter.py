"""Everything sightline needs from deepface beyond its public ``DeepFace.build_model``.

Only the non-default detectors and models come here (``dlib`` + ``Dlib`` run on dlib's
public API in ``workers.engines.faces``). deepface has no public hook for two things we
need, so they live in this one module:

- **No silent downloads.** deepface (and the retina-face package it uses) fetch a missing
  weight file from ``download_weights_if_necessary`` in ``<package>.commons.weight_utils``;
  :func:`install_offline_guard` wraps those functions so a missing file raises instead.
- **Embedding faces we already found.** ``DeepFace.represent`` detects again; aligning and
  preprocessing a known region goes through ``deepface.modules.detection.extract_face`` and
  ``deepface.modules.preprocessing``.

``tests/test_faces.py::test_deepface_adapter_finds_what_it_uses`` fails loudly when a
deepface release moves any of them (the pin is in requirements.lock.txt).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from workers.engines.base import ModelUnavailable

# Modules whose ``download_weights_if_necessary(file_name, ...)`` fetches into deepface's
# weights folder: deepface's own, and the retina-face package that its retinaface uses.
DOWNLOADERS = ("deepface.commons.weight_utils", "retinaface.commons.weight_utils")

_lock = threading.Lock()
_download_allowed = False


def install_offline_guard(allow_download: bool, is_present: Callable[[str], bool],
                          missing: Callable[[str], Exception]) -> None:
    """Make deepface's downloaders raise ``missing(file_name)`` instead of fetching a file
    that ``is_present(file_name)`` says is not there (unless ``allow_download``)."""
    global _download_allowed
    with _lock:
        _download_allowed = allow_download
        for name in DOWNLOADERS:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            original = module.download_weights_if_necessary
            if getattr(original, "_sightline_offline", False):
                continue

            def offline_only(file_name: str, *args, _original=original, **kwargs) -> str:
                if is_present(file_name) or _download_allowed:
                    return _original(file_name, *args, **kwargs)
                raise missing(file_name)

            offline_only._sightline_offline = True
            module.download_weights_if_necessary = offline_only


def build(task: str, name: str) -> Any:
    """``DeepFace.build_model`` (public); an unknown or unloadable name is ModelUnavailable."""
    try:
        from deepface import DeepFace
        from deepface.modules.exceptions import UnimplementedError
    except ImportError as exc:
        raise ModelUnavailable(f"deepface is not installed ({exc}): pip install deepface") from exc
    try:
        return DeepFace.build_model(model_name=name, task=task)
    except ModelUnavailable:
        raise
    except (UnimplementedError, ImportError, ModuleNotFoundError, ValueError) as exc:
        raise ModelUnavailable(f"face {task.replace('_', ' ')} {name!r} cannot be loaded: {exc}") from exc


def embed_regions(recognizer: Any, detector_name: str, bgr: np.ndarray, kept: list) -> list:
    """deepface embeddings of known faces: ``kept`` = [((x, y, w, h), score, (left_eye,
    right_eye)), ...] in ``bgr``'s pixels; each aligned on its eyes the way deepface does."""
    from deepface.models.Detector import FacialAreaRegion
    from deepface.modules import detection, preprocessing

    target = recognizer.input_shape
    batch = []
    for (x, y, w, h), score, (left_eye, right_eye) in kept:
        region = FacialAreaRegion(
            x=x, y=y, w=w, h=h, confidence=score,
            left_eye=None if left_eye is None else (int(left_eye[0]), int(left_eye[1])),
            right_eye=None if right_eye is None else (int(right_eye[0]), int(right_eye[1])))
        face = detection.extract_face(region, bgr, True, 0, 0, 0, detector_name).img
        face = preprocessing.resize_image(face, (target[1], target[0]))
        batch.append(preprocessing.normalize_input(face, "base"))
    out = recognizer.forward(np.concatenate(batch, axis=0))
    return [out] if len(kept) == 1 else list(out)
