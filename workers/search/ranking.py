"""The ranking maths of the visual search endpoints (/search/text, /search/image, /search/frame).

Pure numpy, no I/O. The score of a frame embedding ``f`` (unit rows, like every query
vector) is a weighted sum of *standardised* similarities::

    z_v(f)  = (f·v − μ_v) / σ_v          μ_v, σ_v: mean and std of f·v over the searched frames
    score(f) = w_image · z_image(f) + text_weight · z_text(f) − λ · mean_j z_exclude_j(f)

- Standardising puts the signals on one scale: CLIP/SigLIP image-to-image similarities run
  far higher than text-to-image ones (the "modality gap"), so a raw sum would let the
  image drown the text. A z-score says "how unusual is this frame for this signal".
- ``exclude`` is a soft push-down, never a filter: a frame that matches an excluded
  concept loses λ (default 0.5) times its mean z-score against the excluded texts, so a
  frame that matches the query strongly enough still ranks.
- Every term is linear in ``f``, so the whole score is one dot product with one combined
  vector ``q = Σ w_v · v / σ_v`` minus a constant: any index that ranks by inner product
  (exact brute force or an ANN) ranks by this score exactly.

μ and σ are estimated from an evenly spaced sample of the searched frames (all of them
when there are at most ``SIGMA_SAMPLE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

EXCLUDE_WEIGHT = 0.5  # λ
IMAGE_WEIGHT = 1.0
SIGMA_SAMPLE = 8192
_MIN_SIGMA = 1e-6


@dataclass(frozen=True)
class CombinedQuery:
    """``score(f) = f · vector − offset``."""

    vector: np.ndarray  # (d,) float32
    offset: float

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        return np.asarray(embeddings, dtype=np.float32) @ self.vector - np.float32(self.offset)


def _unit(vec: np.ndarray, what: str, dim: int | None) -> np.ndarray:
    vec = np.asarray(vec, dtype=np.float32).reshape(-1)
    if dim is not None and vec.shape[0] != dim:
        raise ValueError(f"{what} vector has {vec.shape[0]} dimensions, the analysis data {dim}: "
                         "was it embedded with another visual model?")
    norm = float(np.linalg.norm(vec))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError(f"{what} vector is zero or not finite")
    return vec / norm


def combine_query(sample: np.ndarray, text: np.ndarray | None = None, image: np.ndarray | None = None,
                  exclude: np.ndarray | Sequence[np.ndarray] | None = None, text_weight: float = 1.0,
                  exclude_weight: float = EXCLUDE_WEIGHT, image_weight: float = IMAGE_WEIGHT) -> CombinedQuery:
    """Fold the query signals into one vector (see the module docstring for the maths).

    ``sample``: (n, d) embeddings of (a sample of) the frames being searched; ``text``,
    ``image``: (d,) vectors; ``exclude``: (k, d) text vectors to push down.
    """
    sample = np.asarray(sample, dtype=np.float32)
    if sample.ndim != 2 or sample.shape[0] == 0:
        raise ValueError("cannot rank: there are no frames to search")
    dim = sample.shape[1]
    terms: list[tuple[float, np.ndarray]] = []
    if image is not None:
        terms.append((float(image_weight), _unit(image, "image", dim)))
    if text is not None:
        terms.append((float(text_weight), _unit(text, "text", dim)))
    if not terms:
        raise ValueError("a search needs a text query, an image or a frame")
    excluded = [] if exclude is None else list(np.asarray(exclude, dtype=np.float32).reshape(-1, dim))
    for vec in excluded:
        terms.append((-float(exclude_weight) / len(excluded), _unit(vec, "exclude", dim)))
    vector = np.zeros(dim, dtype=np.float64)
    offset = 0.0
    for weight, vec in terms:
        sims = sample @ vec
        sigma = max(float(sims.std()), _MIN_SIGMA)
        vector += weight * vec / sigma
        offset += weight * float(sims.mean()) / sigma
    return CombinedQuery(vector.astype(np.float32), offset)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest finite scores, best first; ties go to the lower index."""
    scores = np.asarray(scores)
    finite = np.flatnonzero(np.isfinite(scores))
    if k <= 0 or finite.size == 0:
        return np.zeros(0, dtype=np.int64)
    if finite.size > k:
        part = np.argpartition(-scores[finite], k - 1)[:k]
        # argpartition splits ties at the k-th score arbitrarily; keep every tie, sort, then cut.
        kth = scores[finite[part]].min()
        finite = finite[scores[finite] >= kth]
    order = np.lexsort((finite, -scores[finite]))
    return finite[order][:k].astype(np.int64)


def group_by_video(matches: Sequence[dict]) -> list[dict]:
    """Jumper's per-video grouping of a best-first ranking.

    Each match gets ``original_index``: its position in the global ranking. Videos are then
    ordered by their best match and each video's matches by score, so a client that shows
    results per video sees its best videos first, and one that wants the global order can
    sort by ``original_index``.
    """
    groups: dict[str, list[dict]] = {}
    for position, match in enumerate(matches):
        groups.setdefault(match["hash_str"], []).append({**match, "original_index": position})
    grouped: list[dict] = []
    for members in groups.values():  # dicts keep first-seen order: by each video's best match
        grouped.extend(sorted(members, key=lambda m: (-m["score"], m["original_index"])))
    return grouped


def rank_frames(embeddings: np.ndarray, hash_strs: Sequence[str], frame_idxs: Sequence[int],
                text: np.ndarray | None = None, image: np.ndarray | None = None,
                exclude: np.ndarray | None = None, text_weight: float = 1.0,
                exclude_weight: float = EXCLUDE_WEIGHT, allowed: np.ndarray | None = None,
                max_results: int = 50) -> list[dict]:
    """Exact search over a plain matrix: score every row, keep the allowed ones, take the
    best ``max_results`` and group them by video. ``allowed``: boolean row mask (people filter)."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if len(hash_strs) != len(embeddings) or len(frame_idxs) != len(embeddings):
        raise ValueError("hash_strs and frame_idxs must have one entry per embedding row")
    query = combine_query(embeddings, text=text, image=image, exclude=exclude, text_weight=text_weight,
                          exclude_weight=exclude_weight)
    scores = query.scores(embeddings)
    if allowed is not None:
        scores = np.where(np.asarray(allowed, dtype=bool), scores, -np.inf)
    rows = top_k(scores, int(max_results))
    ranked = [{"hash_str": hash_strs[r], "frame_idx": int(frame_idxs[r]), "score": float(scores[r])} for r in rows]
    return group_by_video(ranked)
