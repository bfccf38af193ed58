"""HDBSCAN over face embeddings, fast enough for 20k faces on two cores.

Jumper's parameters map onto hdbscan as follows:

- ``eps`` (default 0.48) becomes ``cluster_selection_epsilon`` after rescaling into the
  embedding model's distance unit: ``eps * match_threshold(model) / 0.48``, where
  ``match_threshold`` is the euclidean distance between two L2-normalised embeddings that
  deepface uses to verify a pair (0.40 for Dlib). So the default eps merges exactly what
  the model would call "same person", whichever model made the embeddings.
- ``min_samples`` ("minimum faces needed to form a cluster") becomes hdbscan's
  ``min_cluster_size``; hdbscan's own ``min_samples`` is one less because hdbscan counts a
  point among its own neighbours.

hdbscan's tree-based minimum spanning tree takes 25-50 s for 20k x 128 here: kd-trees
do not prune in 128 dimensions. Instead the mutual-reachability MST is built from an exact
k-nearest-neighbour graph (blocked matrix products) and the graph's components are then
joined by their closest member pairs, found between components whose centroids are near.
Edges inside a kNN neighbourhood are exact; only the joins above the kNN radius are
approximate, and those are far above any useful eps. hdbscan's own code then condenses
the tree and selects clusters, so the labels follow hdbscan's rules.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
from threadpoolctl import threadpool_limits

JUMPER_DEFAULT_EPS = 0.48
DEFAULT_MIN_SAMPLES = 5
# A cluster keeps its old uuid (and name) when its members overlap an old cluster's by at
# least this Jaccard index.
MATCH_JACCARD = 0.5

Progress = Callable[[float], None] | None


@dataclass(frozen=True)
class ClusterParams:
    eps: float = JUMPER_DEFAULT_EPS
    min_samples: int = DEFAULT_MIN_SAMPLES

    def validate(self) -> ClusterParams:
        if not np.isfinite(self.eps) or self.eps <= 0:
            raise ValueError(f"eps must be a positive number, got {self.eps!r}")
        if int(self.min_samples) != self.min_samples or self.min_samples < 1:
            raise ValueError(f"min_samples must be a positive integer, got {self.min_samples!r}")
        return ClusterParams(float(self.eps), int(self.min_samples))


def selection_epsilon(eps: float, match_threshold: float) -> float:
    """Jumper's ``eps`` in the embedding model's distance unit (see the module docstring)."""
    return float(eps) * float(match_threshold) / JUMPER_DEFAULT_EPS


def _hdbscan_min_samples(min_samples: int) -> int:
    return max(1, int(min_samples) - 1)


def _min_cluster_size(min_samples: int) -> int:
    return max(2, int(min_samples))


# --- nearest neighbours --------------------------------------------------------------------


def knn(x: np.ndarray, k: int, progress: Progress = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours (self excluded) of L2-normalised rows: (dist, idx), (n, k).

    On unit vectors the nearest rows are those with the largest dot product, so each block
    is one matrix product and one top-k, with no distance matrix materialised.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    k = max(0, min(int(k), n - 1))
    dist = np.zeros((n, k), dtype=np.float32)
    idx = np.zeros((n, k), dtype=np.int64)
    if k == 0:
        return dist, idx
    # ~64 MB of float32 per block keeps memory flat however many faces there are.
    block = int(max(64, min(n, 16_000_000 // max(n, 1))))
    buffer = np.empty((block, n), dtype=np.float32)
    topk = _topk_largest(n)
    for start in range(0, n, block):
        stop = min(n, start + block)
        sims = np.matmul(x[start:stop], x.T, out=buffer[: stop - start])
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        values, cols = topk(sims, k)
        dist[start:stop] = np.sqrt(np.maximum(2.0 - 2.0 * values, 0.0))
        idx[start:stop] = cols
        if progress:
            progress(stop / n)
    return dist, idx


def _topk_largest(n: int):
    """k largest per row, sorted. torch.topk is ~3x faster than np.argpartition on big
    jobs; small ones are not worth torch's import time."""
    torch = None
    if n >= 4096:
        try:
            import torch
        except ImportError:
            torch = None

    def numpy_topk(sims: np.ndarray, k: int):
        part = np.argpartition(sims, -k, axis=1)[:, -k:]
        values = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-values, axis=1)
        return np.take_along_axis(values, order, axis=1), np.take_along_axis(part, order, axis=1)

    def torch_topk(sims: np.ndarray, k: int):
        values, cols = torch.topk(torch.from_numpy(sims), k, dim=1, largest=True, sorted=True)
        return values.numpy(), cols.numpy()

    return torch_topk if torch is not None else numpy_topk


# --- minimum spanning tree of the mutual reachability graph -------------------------------


def _edges_to_mst(n: int, a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    keep = lo != hi
    lo, hi, w = lo[keep], hi[keep], w[keep]
    # scipy drops zero weights as "no edge": duplicate faces must still be connected.
    w = np.maximum(w.astype(np.float64), 1e-12)
    key = lo.astype(np.int64) * n + hi
    order = np.lexsort((w, key))
    key, lo, hi, w = key[order], lo[order], hi[order], w[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    graph = coo_matrix((w[first], (lo[first], hi[first])), shape=(n, n)).tocsr()
    tree = minimum_spanning_tree(graph).tocoo()
    return np.column_stack([tree.row, tree.col, tree.data]).astype(np.float64)


def mutual_reachability_mst(x: np.ndarray, min_samples: int, neighbours: tuple | None = None,
                            progress: Progress = None) -> np.ndarray:
    """The (n-1, 3) [from, to, weight] MST of the mutual reachability graph, hdbscan's
    ``min_samples`` convention (a point is its own first neighbour)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    if n < 2:
        return np.zeros((0, 3))
    hdb_ms = _hdbscan_min_samples(min_samples)
    if neighbours is None:
        neighbours = knn(x, max(hdb_ms, 15), progress)
    dist, idx = neighbours
    core_col = min(hdb_ms - 1, dist.shape[1]) - 1
    core = dist[:, core_col].astype(np.float64) if core_col >= 0 else np.zeros(n)
    rows = np.repeat(np.arange(n), dist.shape[1])
    cols = idx.ravel()
    weights = np.maximum(np.maximum(core[rows], core[cols]), dist.ravel())
    edges = (rows, cols, weights)
    mst = _edges_to_mst(n, *edges)
    while len(mst) < n - 1:
        # Many small products: BLAS threads cost more to wake than they save here.
        with threadpool_limits(1):
            joins = _join_components(x, core, mst, n)
        edges = tuple(np.concatenate([e, j]) for e, j in zip(
            (mst[:, 0].astype(np.int64), mst[:, 1].astype(np.int64), mst[:, 2]), joins, strict=True))
        mst = _edges_to_mst(n, *edges)
    return mst


def _join_components(x: np.ndarray, core: np.ndarray, mst: np.ndarray, n: int, near: int = 3):
    """Closest mutual-reachability edges between each component and its ``near`` nearest
    components by centroid: one Boruvka-like round over components, not points."""
    forest = coo_matrix((np.ones(len(mst)), (mst[:, 0].astype(np.int64), mst[:, 1].astype(np.int64))),
                        shape=(n, n))
    count, comp = connected_components(forest, directed=False)
    members = [np.flatnonzero(comp == c) for c in range(count)]
    centroids = np.stack([x[m].mean(axis=0) for m in members])
    csq = np.einsum("ij,ij->i", centroids, centroids)
    cd = csq[:, None] + csq[None, :] - 2.0 * centroids @ centroids.T
    np.fill_diagonal(cd, np.inf)
    nearest = np.argsort(cd, axis=1)[:, :min(near, count - 1)]
    pairs = {(min(a, b), max(a, b)) for a in range(count) for b in nearest[a]}
    src, dst, wts = [], [], []
    for a, b in pairs:
        ma, mb = members[a], members[b]
        d2 = (np.einsum("ij,ij->i", x[ma], x[ma])[:, None] + np.einsum("ij,ij->i", x[mb], x[mb])[None, :]
              - 2.0 * x[ma] @ x[mb].T)
        reach = np.maximum(np.sqrt(np.maximum(d2, 0.0)), np.maximum(core[ma][:, None], core[mb][None, :]))
        i, j = np.unravel_index(int(np.argmin(reach)), reach.shape)
        src.append(ma[i])
        dst.append(mb[j])
        wts.append(reach[i, j])
    return np.array(src, dtype=np.int64), np.array(dst, dtype=np.int64), np.array(wts, dtype=np.float64)


# --- labels ------------------------------------------------------------------------------


def labels_from_mst(mst: np.ndarray, n: int, min_samples: int, epsilon: float) -> np.ndarray:
    """hdbscan's condensed-tree cluster selection (eom) on a precomputed MST; -1 is noise.

    hdbscan never selects the root without ``allow_single_cluster``, so a job showing one
    person comes back split into pieces, or all noise. Allowing it everywhere lets the root
    swallow distinct people, though. So the single cluster is taken only when every edge
    inside it is within ``epsilon``: the one case where eps says "all the same person".
    """
    if n < _min_cluster_size(min_samples) or len(mst) == 0:
        return np.full(n, -1, dtype=np.int64)
    from hdbscan._hdbscan_linkage import label
    from hdbscan.hdbscan_ import _tree_to_labels

    ordered = np.ascontiguousarray(mst[np.argsort(mst[:, 2], kind="stable")], dtype=np.float64)
    tree = label(ordered)

    def select(single: bool) -> np.ndarray:
        labels = _tree_to_labels(None, tree, min_cluster_size=_min_cluster_size(min_samples),
                                 cluster_selection_method="eom", allow_single_cluster=single,
                                 match_reference_implementation=False,
                                 cluster_selection_epsilon=float(epsilon))[0]
        return np.asarray(labels, dtype=np.int64)

    single = select(True)
    if single.max(initial=-1) == 0:
        inside = (single[ordered[:, 0].astype(np.intp)] == 0) & (single[ordered[:, 1].astype(np.intp)] == 0)
        if not inside.any() or ordered[inside, 2].max() <= epsilon:
            return single
    return select(False)


def relative_validity(mst: np.ndarray, labels: np.ndarray, min_separation: float = 0.0) -> float:
    """hdbscan's ``relative_validity_``: a fast DBCV approximation read off the MST.

    ``min_separation``: a cluster whose nearest other cluster is closer than this counts as
    not separated at all (its separation is taken as 0, so it scores -1)."""
    labels = np.asarray(labels)
    sizes = np.bincount(labels + 1)
    cluster_size = sizes[1:]
    total = int(sizes.sum())
    num_clusters = len(cluster_size)
    if num_clusters == 0 or len(mst) == 0:
        return -1.0
    dsc = np.zeros(num_clusters)
    dspc = np.full(num_clusters, np.inf)
    a, b, w = mst[:, 0].astype(np.intp), mst[:, 1].astype(np.intp), mst[:, 2]
    la, lb = labels[a], labels[b]
    max_distance = w.max()
    one_noise = (la == -1) ^ (lb == -1)
    neither = (la != -1) & (lb != -1)
    min_outlier_sep = w[one_noise].min() if one_noise.any() else max_distance
    same = neither & (la == lb)
    diff = neither & (la != lb)
    np.maximum.at(dsc, la[same], w[same])
    np.minimum.at(dspc, la[diff], w[diff])
    np.minimum.at(dspc, lb[diff], w[diff])
    dspc[np.isinf(dspc)] = 2 * (max_distance if num_clusters > 1 else min_outlier_sep)
    dspc[dspc < min_separation] = 0.0
    denom = np.maximum(np.maximum(dspc, dsc), 1e-12)
    return float(np.sum(cluster_size * (dspc - dsc) / denom / total))


def cluster_embeddings(x: np.ndarray, params: ClusterParams, match_threshold: float,
                       progress: Progress = None) -> np.ndarray:
    """Cluster labels (n,) for L2-normalised embeddings; -1 for faces left unassigned."""
    params = params.validate()
    x = _normalised(x)
    if len(x) < _min_cluster_size(params.min_samples):
        return np.full(len(x), -1, dtype=np.int64)
    mst = mutual_reachability_mst(x, params.min_samples, progress=_scaled(progress, 0.0, 0.9))
    labels = labels_from_mst(mst, len(x), params.min_samples, selection_epsilon(params.eps, match_threshold))
    if progress:
        progress(1.0)
    return labels


AUTO_EPS_GRID = (0.30, 0.36, 0.42, 0.48, 0.54, 0.60)
AUTO_MIN_SAMPLES_GRID = (2, 3, 5, 8)
# DBCV has no separation term for a single cluster (hdbscan's approximation then reports
# ~0.5 whatever the data). One cluster is scored this instead: a split must be clearly
# separated to beat it. Splits of one person measure 0.00-0.05, four test people 0.46.
SINGLE_CLUSTER_SCORE = 0.3


def grid_score(mst: np.ndarray, labels: np.ndarray, match_threshold: float = 0.0) -> tuple[float, float]:
    """(validity, share of faces assigned) of one grid point; higher is better.

    Clusters closer to each other than ``match_threshold`` (the model's own same-person
    distance) do not count as separated. Video needs this: a shot gives many near-identical
    faces, and DBCV alone scores one cluster per shot (spread ~0, gap to the person's other
    shots ~0.3) far above one per person (spread ~0.38, gap ~0.46 with Dlib)."""
    clusters = int(labels.max(initial=-1)) + 1
    coverage = float(np.mean(labels >= 0)) if len(labels) else 0.0
    if clusters == 0:
        return -1.0, coverage
    score = relative_validity(mst, labels, min_separation=match_threshold)
    return (min(score, SINGLE_CLUSTER_SCORE) if clusters == 1 else score), coverage


def auto_detect_params(x: np.ndarray, match_threshold: float, eps_grid: Iterable[float] = AUTO_EPS_GRID,
                       min_samples_grid: Iterable[int] = AUTO_MIN_SAMPLES_GRID,
                       progress: Progress = None) -> tuple[ClusterParams, float, np.ndarray]:
    """The grid point with the best relative validity (hdbscan's DBCV approximation on
    the MST, clusters nearer than ``match_threshold`` not separated), then the most faces
    assigned, then the strictest; its score and labels.
    One kNN pass serves the whole grid; each min_samples costs one sparse MST."""
    x = _normalised(x)
    n = len(x)
    eps_grid, ms_grid = list(eps_grid), [m for m in min_samples_grid if _min_cluster_size(m) <= max(n, 2)]
    if not ms_grid or n < 2:
        params = ClusterParams(JUMPER_DEFAULT_EPS, DEFAULT_MIN_SAMPLES)
        return params, -1.0, np.full(n, -1, dtype=np.int64)
    neighbours = knn(x, max(max(_hdbscan_min_samples(m) for m in ms_grid), 15), _scaled(progress, 0.0, 0.6))
    best = None
    for i, ms in enumerate(ms_grid):
        mst = mutual_reachability_mst(x, ms, neighbours)
        for eps in eps_grid:
            labels = labels_from_mst(mst, n, ms, selection_epsilon(eps, match_threshold))
            key = grid_score(mst, labels, match_threshold)
            if best is None or key > best[0]:
                best = (key, ClusterParams(float(eps), int(ms)), labels)
        if progress:
            progress(0.6 + 0.4 * (i + 1) / len(ms_grid))
    (score, _), params, labels = best
    return params, score, labels


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-d array, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _scaled(progress: Progress, start: float, stop: float) -> Progress:
    if progress is None:
        return None
    return lambda fraction: progress(start + (stop - start) * float(fraction))


# --- stable cluster ids -------------------------------------------------------------------


def match_cluster_ids(old_members: dict[str, np.ndarray], new_labels: np.ndarray,
                      face_ids: np.ndarray, threshold: float = MATCH_JACCARD) -> dict[int, str]:
    """A uuid for each new label: the old cluster's uuid where the member face ids overlap
    by Jaccard >= ``threshold`` (best pairs first, each old uuid used once), else a new one."""
    new_labels = np.asarray(new_labels)
    face_ids = np.asarray(face_ids)
    new_sets = {int(lab): set(face_ids[new_labels == lab].tolist()) for lab in np.unique(new_labels) if lab >= 0}
    old_sets = {cid: set(np.asarray(ids).tolist()) for cid, ids in old_members.items()}
    candidates = []
    for lab, members in new_sets.items():
        for cid, old in old_sets.items():
            inter = len(members & old)
            if inter:
                jaccard = inter / len(members | old)
                if jaccard >= threshold:
                    candidates.append((jaccard, inter, lab, cid))
    candidates.sort(key=lambda c: (-c[0], -c[1], c[2], c[3]))
    mapping: dict[int, str] = {}
    used: set[str] = set()
    for _, _, lab, cid in candidates:
        if lab not in mapping and cid not in used:
            mapping[lab] = cid
            used.add(cid)
    for lab in sorted(new_sets):
        mapping.setdefault(lab, str(uuid.uuid4()))
    return mapping
