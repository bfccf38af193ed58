"""How well a clustering matches known identities: pairwise and BCubed precision / recall.

A face left unassigned (label -1, the API's "noise") counts as a cluster of its own: it
is joined to nobody, so it never costs precision and always costs the recall of its
person's other faces. Used by bench/faces.py and the tests; no model, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Quality:
    pairwise_precision: float
    pairwise_recall: float
    pairwise_f1: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float
    clusters: int
    noise: int

    def rounded(self, digits: int = 3) -> dict:
        return {k: (round(v, digits) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _singletons(labels: np.ndarray) -> np.ndarray:
    out = np.asarray(labels, dtype=np.int64).copy()
    noise = np.flatnonzero(out < 0)
    out[noise] = out.max(initial=-1) + 1 + np.arange(len(noise))
    return out


def clustering_quality(truth: Sequence, labels: Sequence[int]) -> Quality:
    """Pairwise (over all pairs of faces) and BCubed (per face, averaged) scores of
    ``labels`` (-1 = unassigned) against ``truth`` (any hashable identity per face)."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(truth) != len(labels):
        raise ValueError(f"{len(truth)} identities for {len(labels)} labels")
    _, t = np.unique(np.asarray(truth, dtype=object).astype(str), return_inverse=True)
    c = _singletons(labels)
    _, c = np.unique(c, return_inverse=True)
    table = np.zeros((c.max(initial=-1) + 1, t.max(initial=-1) + 1), dtype=np.int64)
    np.add.at(table, (c, t), 1)
    pairs = lambda m: float((m * (m - 1) // 2).sum())  # noqa: E731
    together, same, both = pairs(table.sum(axis=1)), pairs(table.sum(axis=0)), pairs(table)
    precision = both / together if together else 1.0
    recall = both / same if same else 1.0
    # BCubed: for each face, the share of its cluster that is its person (precision) and
    # the share of its person that is in its cluster (recall).
    cell = table[c, t].astype(np.float64)
    b_precision = float(np.mean(cell / table.sum(axis=1)[c])) if len(c) else 1.0
    b_recall = float(np.mean(cell / table.sum(axis=0)[t])) if len(c) else 1.0
    return Quality(precision, recall, _f1(precision, recall), b_precision, b_recall, _f1(b_precision, b_recall),
                   len(np.unique(labels[labels >= 0])), int((labels < 0).sum()))
