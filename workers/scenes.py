"""Scene boundaries on the 1 fps grid, from cheap colour-histogram features.

Each 1 fps frame gets an HSV histogram (computed during decoding, on the thumbnail). A cut
is where consecutive histograms differ a lot in absolute terms, or clearly more than their
neighbours do (so slow pans and fades don't cut, a hard cut in a dark scene still does).
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


def frame_features(rgb: np.ndarray) -> np.ndarray:
    """A normalised HSV histogram of one frame (colour bins + grey-by-brightness bins, sum 1)."""
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


def frame_distances(features: np.ndarray) -> np.ndarray:
    """d[i] = half the L1 distance between frames i-1 and i (d[0] = 0), in [0, 1]."""
    features = np.asarray(features, dtype=np.float32)
    if len(features) < 2:
        return np.zeros(len(features), dtype=np.float32)
    distances = 0.5 * np.abs(np.diff(features, axis=0)).sum(axis=1)
    return np.concatenate([[0.0], distances]).astype(np.float32)


def detect_scenes(features: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (start, end) frame indices of each scene, covering every frame."""
    count = len(features)
    if count == 0:
        return []
    distances = frame_distances(features)
    cuts = []
    for i in range(1, count):
        window = np.concatenate([distances[max(1, i - 3):i], distances[i + 1:i + 4]])
        local = float(np.median(window)) if len(window) else 0.0
        # A fade changes every frame a lot, evenly: only a jump that stands out from its
        # neighbours is a cut.
        big = distances[i] >= ABSOLUTE_CUT and distances[i] >= 1.5 * local
        standout = distances[i] >= RELATIVE_CUT and distances[i] >= RELATIVE_FACTOR * max(local, 0.02)
        if big or standout:
            cuts.append(i)
    starts = [0, *cuts]
    ends = [c - 1 for c in cuts] + [count - 1]
    return list(zip(starts, ends, strict=True))


def scene_for(scenes: list[tuple[int, int]] | list[list[int]], frame_idx: int) -> tuple[int, int]:
    """The scene that holds ``frame_idx`` (binary search over sorted scenes)."""
    if not scenes:
        return frame_idx, frame_idx
    starts = [s[0] for s in scenes]
    position = int(np.searchsorted(starts, frame_idx, side="right")) - 1
    start, end = scenes[max(0, min(position, len(scenes) - 1))]
    return int(start), int(end)
