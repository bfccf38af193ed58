"""The small interfaces every engine implements. Engines take and return plain values
(numpy arrays, dataclasses); they never see HTTP, Redis or Celery."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class VisualEngine(Protocol):
    """Embeds frames and texts into one space; rows are L2-normalised float32."""

    key: str
    dim: int
    resolution: int

    def load(self) -> None: ...

    def embed_images(self, images: list[np.ndarray]) -> np.ndarray:
        """``images``: HxWx3 uint8 RGB arrays of any size; returns (N, dim) float32."""

    def embed_texts(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class Word:
    start: float
    end: float
    word: str
    probability: float = 0.0


@dataclass
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    # The audio channel (0-based) the segment was heard on, when a file with one speaker per
    # channel was transcribed channel by channel; None for a mono or downmixed transcript.
    channel: int | None = None


class SpeechEngine(Protocol):
    key: str

    def load(self) -> None: ...

    def transcribe(self, audio: np.ndarray, language: str | None = None, progress=None) -> list[Segment]:
        """``audio``: 16 kHz mono float32. ``progress(fraction)`` is called as work advances."""


@dataclass
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h in the frame's pixels
    score: float
    embedding: np.ndarray  # (dim,) float32
    crop_jpeg: bytes = b""


class FaceEngine(Protocol):
    key: str
    dim: int

    def load(self) -> None: ...

    def detect(self, image: np.ndarray) -> list[Face]:
        """``image``: HxWx3 uint8 RGB. Returns the faces found, embedded."""


class ModelUnavailable(RuntimeError):
    """A model's files are not on this machine; the message says how to get them."""
