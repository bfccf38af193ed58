"""Scene boundaries on the 1 fps grid, from cheap colour-histogram features.

Each 1 fps frame gets an HSV histogram (computed during decoding, on the thumbnail). A cut
is where consecutive histograms differ a lot in absolute terms, or clearly more than their
neighbours do (so slow pans and fades don't cut, a hard cut in a dark scene still does).

Distances are half the L1 distance between consecutive histograms: 0 for identical colour
distributions, 1 for disjoint ones. On tests/data/testvideo.mp4 at 1 fps, frames within a
shot differ by 0.00-0.02 and hard cuts by 0.65-0.95; one second of sampling puts every
boundary within a second of the real cut.

``detect_scenes_from_embeddings`` applies the same rule to the visual model's frame
embeddings (cosine distance), for files whose colour features are missing: it sees content
changes a histogram misses and is blind to colour changes the model ignores.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

H_BINS, S_BINS, V_BINS = 16, 4, 4
GREY_BINS = 8  # near-grey pixels have no meaningful hue: they are binned by brightness alone
GREY_SATURATION, DARK_VALUE = 40, 40
ABSOLUTE_CUT = 0.45
RELATIVE_CUT = 0.20
RELATIVE_FACTOR = 3.0


EMBEDDING_ABSOLUTE_CUT = 0.25
EMBEDDING_RELATIVE_CUT = 0.10


def frame_features(rgb: np.ndarray) -> np.ndarray:
    """A normalised HSV histogram of one frame (colour bins + grey-by-brightness bins, sum 1)."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(f"expected an HxWx3 uint8 RGB frame, got {rgb.dtype} array of shape {rgb.shape}")
    image = Image.fromarray(rgb)
    if max(image.size) > 96:
        image.thumbnail((96, 96), Image.Resampling.BILINEAR)
    hsv = np.asarray(image.convert("HSV"), dtype=np.uint16).reshape(-1, 3)
    h = hsv[:, 0] * H_BINS // 256
    s = hsv[:, 1] * S_BINS // 256
    v = hsv[:, 2] * V_BINS // 256
    colour_bins = H_BINS * S_BINS * V_BINS
    bins = (h * S_BINS + s) * V_BINS + v
    grey = (hsv[:, 1] < GREY_SATURATION) | (hsv[:, 2] < DARK_VALUE)
    bins = np.where(grey, colour_bins + hsv[:, 2] * GREY_BINS // 256, bins)
    hist = np.bincount(bins, minlength=colour_bins + GREY_BINS).astype(np.float32)
    return hist / max(1.0, float(hist.sum()))


def _matrix(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"{name} must be a (frames, dim) matrix, got shape {values.shape}")
    return values


def frame_distances(features: np.ndarray) -> np.ndarray:
    """d[i] = half the L1 distance between frames i-1 and i (d[0] = 0), in [0, 1]."""
    features = _matrix(features, "features")
    if len(features) < 2:
        return np.zeros(len(features), dtype=np.float32)
    distances = 0.5 * np.abs(np.diff(features, axis=0)).sum(axis=1)
    return np.concatenate([[0.0], distances]).astype(np.float32)


def _scenes_from_distances(distances: np.ndarray, absolute: float, relative: float) -> list[tuple[int, int]]:
    count = len(distances)
    if count == 0:
        return []
    cuts = []
    for i in range(1, count):
        window = np.concatenate([distances[max(1, i - 3):i], distances[i + 1:i + 4]])
        local = float(np.median(window)) if len(window) else 0.0
        # A fade changes every frame a lot, evenly: only a jump that stands out from its
        # neighbours is a cut.
        big = distances[i] >= absolute and distances[i] >= 1.5 * local
        standout = distances[i] >= relative and distances[i] >= RELATIVE_FACTOR * max(local, 0.02)
        if big or standout:
            cuts.append(i)
    starts = [0, *cuts]
    ends = [c - 1 for c in cuts] + [count - 1]
    return list(zip(starts, ends, strict=True))


def detect_scenes(features: np.ndarray, threshold: float = ABSOLUTE_CUT,
                  relative_threshold: float = RELATIVE_CUT) -> list[tuple[int, int]]:
    """Inclusive (start, end) frame indices of each scene, covering every frame.

    ``features``: (frames, dim) rows of ``frame_features``. A cut goes before frame i when
    its distance to frame i-1 reaches ``threshold`` (and 1.5x its neighbours' median), or
    reaches ``relative_threshold`` and 3x that median.
    """
    return _scenes_from_distances(frame_distances(features), threshold, relative_threshold)


def detect_scenes_from_embeddings(embeddings: np.ndarray, threshold: float = EMBEDDING_ABSOLUTE_CUT,
                                  relative_threshold: float = EMBEDDING_RELATIVE_CUT) -> list[tuple[int, int]]:
    """Scenes from the visual model's frame embeddings, by the cosine distance of consecutive
    frames and the same absolute/relative rule as ``detect_scenes``."""
    emb = _matrix(embeddings, "embeddings")
    if len(emb) == 0:
        return []
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    distances = np.concatenate([[0.0], 1.0 - np.sum(emb[1:] * emb[:-1], axis=1)]).astype(np.float32)
    return _scenes_from_distances(distances, threshold, relative_threshold)


def scene_for(scenes: list[tuple[int, int]] | list[list[int]], frame_idx: int) -> tuple[int, int]:
    """The scene that holds ``frame_idx`` (binary search over sorted scenes)."""
    if not scenes:
        return frame_idx, frame_idx
    starts = [s[0] for s in scenes]
    position = int(np.searchsorted(starts, frame_idx, side="right")) - 1
    start, end = scenes[max(0, min(position, len(scenes) - 1))]
    return int(start), int(end)
