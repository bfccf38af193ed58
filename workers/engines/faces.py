"""Face detection + embedding: dlib's public API for the default pair, deepface for the rest.

The detector and the recognition model are picked by name (settings ``face_detector`` /
``face_model``; defaults ``dlib`` / ``Dlib``). The default pair runs on dlib itself
(``get_frontal_face_detector``, ``shape_predictor``, ``face_recognition_model_v1``) with the
weights the ``face-recognition-models`` package ships, exactly as deepface's ``dlib``
backend and ``Dlib`` model run them (same boxes, scores and embeddings as stored before).
Other names go through ``DeepFace.build_model``; what deepface offers no public hook for
(no silent downloads, embedding an already found face) is in
:mod:`workers.engines.deepface_adapter`. Weights are looked for in
``$DEEPFACE_HOME/.deepface/weights/``; a missing file is a :class:`ModelUnavailable` that
names the file and where it goes, unless the engine is built with ``allow_download=True``.

Embeddings are L2-normalised float32. With the ``Dlib`` recogniser every face is aligned
with dlib's own 5-landmark chip (the alignment the ResNet was trained on), whichever
detector found it; other models use deepface's eye-line alignment.
"""

from __future__ import annotations

import io
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from workers.engines.base import Face, ModelUnavailable
from workers.engines.cache import model_cache
from workers.engines.catalogue import FACES

DLIB_RECOGNIZER_FILE = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"

# Files shipped in the face-recognition-models wheel, by the deepface model that needs them.
_PACKAGED_WEIGHTS = {
    ("facial_recognition", "Dlib"): (DLIB_RECOGNIZER_FILE, DLIB_LANDMARKS_FILE),
    ("face_detector", "dlib"): (DLIB_LANDMARKS_FILE,),
}

# dlib's HOG scores are unbounded (deepface clips them to [0, 1]); real faces score ~1+,
# the false positives it does report sit near 0. Learned detectors report probabilities.
_DEFAULT_MIN_SCORE = {"dlib": 0.3, "opencv": 0.0, "ssd": 0.5, "centerface": 0.5, "yunet": 0.6}
_FALLBACK_MIN_SCORE = 0.8

# Jumper's eps is tuned around 0.48; each model's distance scale differs, so the
# euclidean-on-unit-vectors threshold from deepface's verification table rescales it.
_L2_THRESHOLDS_FALLBACK = {"Dlib": 0.4, "ArcFace": 1.13, "Facenet": 0.80, "Facenet512": 1.04,
                           "SFace": 1.055, "Buffalo_L": 1.1, "GhostFaceNet": 1.10}


def deepface_home() -> Path:
    """``$DEEPFACE_HOME`` when set, else ``<settings.home>/deepface``."""
    env = os.environ.get("DEEPFACE_HOME")
    if env:
        return Path(env).expanduser()
    from workers.settings import load_settings

    return load_settings().home / "deepface"


def weights_dir(home: Path | None = None) -> Path:
    return (home or deepface_home()) / ".deepface" / "weights"


def _packaged_weights_source() -> Path | None:
    from workers.engines.catalogue import get_spec, local_path

    spec = get_spec("Dlib")
    if spec is None:
        return None
    path = local_path(spec)
    return path if path.is_dir() else None


def _place(source: Path, target: Path) -> None:
    """Symlink ``source`` at ``target`` (a copy where links are not allowed), idempotently."""
    if target.is_file():  # already there (ours, or a file the user put in place)
        return
    if target.is_symlink() or target.exists():
        target.unlink()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        os.symlink(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def prepare_weights(home: Path | None = None) -> Path:
    """Place the packaged dlib weights in deepface's weights folder; returns that folder.

    Sets ``DEEPFACE_HOME`` for this process (deepface reads it whenever it looks for a file).
    """
    home = home or deepface_home()
    os.environ["DEEPFACE_HOME"] = str(home)
    folder = weights_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    source = _packaged_weights_source()
    if source is not None:
        for names in _PACKAGED_WEIGHTS.values():
            for name in names:
                if (source / name).is_file():
                    _place(source / name, folder / name)
    return folder


def _missing_weight_error(file_name: str) -> ModelUnavailable:
    folder = weights_dir()
    hint = ""
    if file_name in (DLIB_RECOGNIZER_FILE, DLIB_LANDMARKS_FILE):
        hint = " It ships in the `face-recognition-models` package: pip install face-recognition-models."
    return ModelUnavailable(
        f"face model weight file {file_name!r} is missing: put it at {folder / file_name} "
        f"(deepface's weights folder, $DEEPFACE_HOME/.deepface/weights).{hint}"
    )


def _install_offline_guard(allow_download: bool) -> None:
    from workers.engines.deepface_adapter import install_offline_guard

    install_offline_guard(allow_download, lambda name: (weights_dir() / name).is_file(), _missing_weight_error)


def match_threshold(model_name: str) -> float:
    """The euclidean distance between two L2-normalised embeddings of the same person
    that deepface uses to verify ``model_name``; the unit of a job's clustering eps."""
    try:
        from deepface.config.threshold import thresholds

        return float(thresholds[model_name]["euclidean_l2"])
    except (ImportError, KeyError):
        return _L2_THRESHOLDS_FALLBACK.get(model_name, 0.4)


@dataclass(frozen=True)
class _Region:
    """A detected face in deepface's FacialAreaRegion shape (what ``detect`` reads)."""

    x: int
    y: int
    w: int
    h: int
    confidence: float
    left_eye: tuple[int, int] | None = None
    right_eye: tuple[int, int] | None = None


class _DlibDetector:
    """dlib's HOG detector, run as deepface's ``dlib`` backend runs it (one upsampling,
    boxes clipped to the image, scores clipped to [0, 1], eyes from the 5 landmarks), so
    faces stored before keep their boxes and scores."""

    def __init__(self, shape_predictor=None):
        import dlib

        self._hog = dlib.get_frontal_face_detector()
        self._shape_predictor = shape_predictor

    def detect_faces(self, image: np.ndarray) -> list[_Region]:
        rects, scores, _ = self._hog.run(image, 1)
        height, width = image.shape[:2]
        regions = []
        for rect, score in zip(rects, scores, strict=True):
            y, x = int(max(0, rect.top())), int(max(0, rect.left()))
            h, w = int(min(rect.bottom(), height) - y), int(min(rect.right(), width) - x)
            eyes = (None, None)
            if self._shape_predictor is not None:
                shape = self._shape_predictor(image, rect)
                eyes = tuple((int((shape.part(a).x + shape.part(b).x) // 2), int((shape.part(a).y + shape.part(b).y) // 2))
                             for a, b in ((0, 1), (2, 3)))
            regions.append(_Region(x, y, w, h, min(max(0.0, float(score)), 1.0), *eyes))
        return regions


def dlib_detector(shape_predictor=None) -> _DlibDetector:
    return _DlibDetector(shape_predictor)


class _DlibRecognizer:
    """dlib's ResNet (``dlib.face_recognition_model_v1``) on 150 px, 5-landmark face chips."""

    output_shape = 128

    def __init__(self):
        import dlib

        path = weights_dir() / DLIB_RECOGNIZER_FILE
        if not path.is_file():
            raise _missing_weight_error(DLIB_RECOGNIZER_FILE)
        self.model = dlib.face_recognition_model_v1(str(path))


class DeepFaceEngine:
    """Detects faces in an RGB image and returns each with its box, score, embedding and crop."""

    def __init__(self, detector: str = "dlib", model: str = "Dlib", *, min_face_px: int = 40,
                 min_score: float | None = None, detect_max_side: int = 1280, crop_px: int = 112,
                 allow_download: bool = False):
        if min_face_px < 1 or detect_max_side < 64 or crop_px < 16:
            raise ValueError("min_face_px >= 1, detect_max_side >= 64 and crop_px >= 16 are required")
        self.detector_name = detector
        self.model_name = model
        self.key = model
        self.dim = 0
        self.min_face_px = min_face_px
        self.min_score = _DEFAULT_MIN_SCORE.get(detector, _FALLBACK_MIN_SCORE) if min_score is None else min_score
        self.detect_max_side = detect_max_side
        self.crop_px = crop_px
        self.allow_download = allow_download
        self._detector = None
        self._recognizer = None
        self._shape_predictor = None
        self._lock = threading.Lock()

    @property
    def match_threshold(self) -> float:
        return match_threshold(self.model_name)

    def load(self) -> None:
        with self._lock:
            if self._recognizer is not None:
                return
            prepare_weights()
            if self.detector_name == "dlib" or self.model_name == "Dlib":
                import dlib

                landmarks = weights_dir() / DLIB_LANDMARKS_FILE
                if not landmarks.is_file():
                    raise _missing_weight_error(DLIB_LANDMARKS_FILE)
                self._shape_predictor = dlib.shape_predictor(str(landmarks))
            if self.detector_name != "dlib" or self.model_name != "Dlib":
                _install_offline_guard(self.allow_download)
            from workers.engines.deepface_adapter import build

            # dlib's own public detector and recogniser for the default pair: the same HOG
            # run and 5-landmark chips deepface's wrappers make, without their internals.
            eyes = self._shape_predictor if self.model_name != "Dlib" else None  # deepface aligns on them
            detector = dlib_detector(eyes) if self.detector_name == "dlib" else build("face_detector", self.detector_name)
            recognizer = _DlibRecognizer() if self.model_name == "Dlib" else build("facial_recognition", self.model_name)
            self.dim = int(getattr(recognizer, "output_shape", 0) or 0)
            self._detector = detector
            self._recognizer = recognizer

    # --- detection -------------------------------------------------------------------

    def detect(self, image: np.ndarray) -> list[Face]:
        rgb = _check_image(image)
        self.load()
        height, width = rgb.shape[:2]
        scale = min(1.0, self.detect_max_side / max(height, width))
        small = rgb if scale == 1.0 else _resize(rgb, round(width * scale), round(height * scale))
        # deepface's detectors take BGR, the way cv2.imread gives it.
        areas = self._detector.detect_faces(np.ascontiguousarray(small[:, :, ::-1]))
        kept = []
        for area in areas:
            score = float(area.confidence or 0.0)
            x0, y0 = max(0.0, area.x / scale), max(0.0, area.y / scale)
            x1, y1 = min(float(width), (area.x + area.w) / scale), min(float(height), (area.y + area.h) / scale)
            if score < self.min_score or min(x1 - x0, y1 - y0) < self.min_face_px:
                continue
            eyes = tuple(None if eye is None else (eye[0] / scale, eye[1] / scale)
                         for eye in (area.left_eye, area.right_eye))
            kept.append(((int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0))), score, eyes))
        if not kept:
            return []
        embeddings = self._embed(rgb, kept)
        return [Face(box=box, score=score, embedding=embedding, crop_jpeg=self._crop(rgb, box))
                for (box, score, _), embedding in zip(kept, embeddings, strict=True)]

    def _embed(self, rgb: np.ndarray, kept: list) -> np.ndarray:
        if isinstance(self._recognizer, _DlibRecognizer):
            vectors = self._embed_dlib(rgb, [box for box, _, _ in kept])
        else:
            vectors = self._embed_deepface(rgb, kept)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(kept), -1)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def _embed_dlib(self, rgb: np.ndarray, boxes: list) -> list:
        import dlib

        chips = []
        for x, y, w, h in boxes:
            shape = self._shape_predictor(rgb, dlib.rectangle(x, y, x + w, y + h))
            chips.append(dlib.get_face_chip(rgb, shape, size=150, padding=0.25))
        return [np.asarray(v) for v in self._recognizer.model.compute_face_descriptor(chips)]

    def _embed_deepface(self, rgb: np.ndarray, kept: list) -> list:
        from workers.engines.deepface_adapter import embed_regions

        return embed_regions(self._recognizer, self.detector_name, np.ascontiguousarray(rgb[:, :, ::-1]), kept)

    def _crop(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> bytes:
        """A square JPEG thumbnail around the face, with a margin, ``crop_px`` on a side."""
        x, y, w, h = box
        side = int(max(w, h) * 1.3)
        cx, cy = x + w / 2, y + h / 2
        x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        x1, y1 = int(min(rgb.shape[1], cx + side / 2)), int(min(rgb.shape[0], cy + side / 2))
        patch = Image.fromarray(rgb[y0:y1, x0:x1])
        patch.thumbnail((self.crop_px, self.crop_px), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        patch.save(buffer, format="JPEG", quality=85)
        return buffer.getvalue()


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image array, got {getattr(image, 'shape', type(image))}")
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise ValueError(f"image too small for face detection: {image.shape[1]}x{image.shape[0]}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    return np.ascontiguousarray(image)


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    return cv2.resize(rgb, (max(1, width), max(1, height)), interpolation=cv2.INTER_AREA)


def load_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode a photo by its content (a WebP named .jpg works), EXIF rotation applied."""
    from PIL import ImageOps

    try:
        with Image.open(path) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot decode image {os.fspath(path)!r}: {exc}") from exc


def load_face_engine(detector: str | None = None, model: str | None = None) -> DeepFaceEngine:
    """The process's face engine for the configured (or given) detector and model, loaded once
    (kept in workers/engines/cache.py, at most ``KINDS["faces"].max_loaded`` pairs)."""
    from workers.settings import load_settings

    settings = load_settings()
    detector, model = detector or settings.face_detector, model or settings.face_model

    def load() -> DeepFaceEngine:
        engine = DeepFaceEngine(detector=detector, model=model)
        engine.load()
        return engine

    return model_cache().get(FACES, model, load, {"detector": detector})
