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
do not prune in 128 dimensions. Instead the mutual-reachability MST is exact Prim on the
dense matrix up to :data:`DENSE_LIMIT` faces; above it, the MST of an exact
k-nearest-neighbour graph (blocked matrix products) whose components are then joined by
their exact closest pairs (one blocked pass over each pair of row blocks). hdbscan's own
code then condenses the tree and selects clusters, so the labels follow hdbscan's rules.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
from scipy.spatial.distance import pdist

from workers.faces.hdbscan_adapter import select_clusters

JUMPER_DEFAULT_EPS = 0.48
# dlib links faces for clustering at 0.5 where it verifies a pair at 0.6 (dlib's
# face_clustering example vs its LFW threshold): linking is stricter than verifying because
# a chain of links joins everything along it.
LINK_RATIO = 0.5 / 0.6
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
    """Jumper's ``eps`` as hdbscan's ``cluster_selection_epsilon``, in the embedding model's
    distance unit: faces linked closer than this are never split apart (see the module
    docstring; Dlib at eps 0.48: 0.333, dlib's own clustering distance)."""
    return float(eps) * float(match_threshold) * LINK_RATIO / JUMPER_DEFAULT_EPS


def max_link(eps: float, match_threshold: float) -> float:
    """The longest link a cluster may contain, and the average-linkage distance of the purity
    split: the model's own same-person distance (Dlib: 0.40), more for an eps above 0.48.
    A stricter eps links less but never splits faces the model itself would verify."""
    return float(match_threshold) * max(1.0, float(eps) / JUMPER_DEFAULT_EPS)


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
    ``min_samples`` convention (a point is its own first neighbour).

    Exact (Prim on the dense matrix) up to :data:`DENSE_LIMIT` faces. Above it: the MST of
    the kNN graph, whose components are then joined by their exact closest pairs (one
    blocked pass over all pairs, minima per component pair)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    if n < 2:
        return np.zeros((0, 3))
    hdb_ms = _hdbscan_min_samples(min_samples)
    if n <= DENSE_LIMIT:
        return _dense_mst(x, hdb_ms)
    if neighbours is None:
        neighbours = knn(x, max(hdb_ms, 15), progress)
    dist, idx = neighbours
    core_col = min(hdb_ms - 1, dist.shape[1]) - 1
    core = dist[:, core_col].astype(np.float64) if core_col >= 0 else np.zeros(n)
    rows = np.repeat(np.arange(n), dist.shape[1])
    cols = idx.ravel()
    weights = np.maximum(np.maximum(core[rows], core[cols]), dist.ravel())
    mst = _edges_to_mst(n, rows, cols, weights)
    if len(mst) < n - 1:
        joins = _join_components(x, core, mst, n)
        mst = _edges_to_mst(n, *(np.concatenate([e, j]) for e, j in zip(
            (mst[:, 0].astype(np.int64), mst[:, 1].astype(np.int64), mst[:, 2]), joins, strict=True)))
    return mst


# Up to this many faces the MST is computed exactly from the dense matrix (64 MB float32).
DENSE_LIMIT = 4096


def _dense_mst(x: np.ndarray, hdb_ms: int) -> np.ndarray:
    """Prim's algorithm on the dense mutual reachability matrix."""
    n = len(x)
    d = np.sqrt(np.maximum(2.0 - 2.0 * (x @ x.T), 0.0, dtype=np.float32))
    np.fill_diagonal(d, 0.0)
    # The point itself is its first neighbour (distance 0), hence the hdb_ms - 1 index.
    core = np.partition(d, hdb_ms - 1, axis=1)[:, hdb_ms - 1] if hdb_ms > 1 else np.zeros(n, np.float32)
    np.maximum(d, core[:, None], out=d)
    np.maximum(d, core[None, :], out=d)
    in_tree = np.zeros(n, dtype=bool)
    best = np.full(n, np.inf, dtype=np.float32)
    parent = np.zeros(n, dtype=np.int64)
    edges = np.zeros((n - 1, 3))
    current = 0
    for step in range(n - 1):
        in_tree[current] = True
        row = d[current]
        better = (row < best) & ~in_tree
        best[better] = row[better]
        parent[better] = current
        candidates = np.where(in_tree, np.inf, best)
        nxt = int(np.argmin(candidates))
        edges[step] = (parent[nxt], nxt, candidates[nxt])
        current = nxt
    return edges


def _join_components(x: np.ndarray, core: np.ndarray, mst: np.ndarray, n: int):
    """The exact lightest mutual-reachability edges that join the components of ``mst``
    into one tree: one blocked pass gives the minimum between every pair of components,
    Prim on that small matrix picks the joins, and each join's endpoints are found among
    the two components' members."""
    forest = coo_matrix((np.ones(len(mst)), (mst[:, 0].astype(np.int64), mst[:, 1].astype(np.int64))),
                        shape=(n, n))
    count, comp = connected_components(forest, directed=False)
    order = np.argsort(comp, kind="stable")
    xs, cs, cores = x[order], comp[order], core[order].astype(np.float32)
    starts = np.flatnonzero(np.r_[True, cs[1:] != cs[:-1]])
    # The pass works on squared distances: max(sqrt(a), c) == sqrt(max(a, c * c)) holds
    # bit for bit in IEEE binary arithmetic, and sqrt is monotone, so the square root and
    # the row cores wait until the (count, count) minima: three in-place passes over each
    # block instead of seven allocating ones. A pair's minimum is symmetric, so each row
    # block only meets the columns from its own start on: half the products.
    squared_cores = cores * cores
    between = np.full((count, count), np.inf, dtype=np.float32)
    block = int(max(64, min(n, 16_000_000 // max(n, 1))))
    buffer = np.empty(block * n, dtype=np.float32)
    for a in range(0, n, block):
        b = min(n, a + block)
        sq = np.matmul(xs[a:b], xs[a:].T, out=buffer[: (b - a) * (n - a)].reshape(b - a, n - a))
        np.multiply(sq, 2.0, out=sq)
        np.subtract(2.0, sq, out=sq)
        # Cores are >= 0, so this max also clamps rounding below zero.
        np.maximum(sq, squared_cores[None, a:], out=sq)
        col_starts = np.r_[0, starts[starts > a] - a]
        per_comp = np.minimum.reduceat(sq, col_starts, axis=1)
        np.maximum(per_comp, squared_cores[a:b, None], out=per_comp)
        run = np.flatnonzero(np.r_[True, cs[a + 1:b] != cs[a:b - 1]])
        rows, cols = cs[a:b][run], cs[a + col_starts]
        pair = np.minimum.reduceat(per_comp, run, axis=0)
        between[np.ix_(rows, cols)] = np.minimum(between[np.ix_(rows, cols)], pair)
        between[np.ix_(cols, rows)] = np.minimum(between[np.ix_(cols, rows)], pair.T)
    np.sqrt(between, out=between)
    np.fill_diagonal(between, np.inf)
    members = [order[starts[c]:(starts[c + 1] if c + 1 < count else n)] for c in range(count)]
    src, dst, wts = [], [], []
    for a, b, _ in _dense_prim(between):
        ma, mb = members[int(a)], members[int(b)]
        reach = np.sqrt(np.maximum(2.0 - 2.0 * (x[ma] @ x[mb].T), 0.0))
        reach = np.maximum(reach, np.maximum(core[ma][:, None], core[mb][None, :]))
        i, j = np.unravel_index(int(np.argmin(reach)), reach.shape)
        src.append(ma[i])
        dst.append(mb[j])
        wts.append(reach[i, j])
    return np.array(src, dtype=np.int64), np.array(dst, dtype=np.int64), np.array(wts, dtype=np.float64)


def _dense_prim(w: np.ndarray) -> np.ndarray:
    n = len(w)
    in_tree = np.zeros(n, dtype=bool)
    best = np.full(n, np.inf)
    parent = np.zeros(n, dtype=np.int64)
    edges, current = [], 0
    for _ in range(n - 1):
        in_tree[current] = True
        better = (w[current] < best) & ~in_tree
        best[better] = w[current][better]
        parent[better] = current
        nxt = int(np.argmin(np.where(in_tree, np.inf, best)))
        edges.append((parent[nxt], nxt, best[nxt]))
        current = nxt
    return np.array(edges).reshape(-1, 3)


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
    single = select_clusters(mst, _min_cluster_size(min_samples), epsilon, True)
    if single.max(initial=-1) == 0:
        a, b = mst[:, 0].astype(np.intp), mst[:, 1].astype(np.intp)
        inside = (single[a] == 0) & (single[b] == 0)
        if not inside.any() or mst[inside, 2].max() <= epsilon:
            return single
    return select_clusters(mst, _min_cluster_size(min_samples), epsilon, False)


def capped_labels(x: np.ndarray, mst: np.ndarray, n: int, min_samples: int, epsilon: float, max_link: float) -> np.ndarray:
    """:func:`labels_from_mst` where no cluster spans an MST edge longer than ``max_link``:
    the tree is cut there and each piece selects its own clusters. Without the cut, excess
    of mass happily keeps a cluster that two people join at any distance."""
    # The cut is on the faces' own distance: a mutual-reachability weight above it only
    # says a face is in a sparse spot, which excess of mass already weighs.
    a, b = mst[:, 0].astype(np.intp), mst[:, 1].astype(np.intp)
    long = np.sqrt(np.maximum(2.0 - 2.0 * np.einsum("ij,ij->i", x[a], x[b]), 0.0)) > max_link
    if not long.any():
        return labels_from_mst(mst, n, min_samples, epsilon)
    kept = mst[~long]
    forest = coo_matrix((np.ones(len(kept)), (kept[:, 0].astype(np.int64), kept[:, 1].astype(np.int64))),
                        shape=(n, n))
    count, comp = connected_components(forest, directed=False)
    sizes = np.bincount(comp, minlength=count)
    labels = np.full(n, -1, dtype=np.int64)
    edge_comp = comp[kept[:, 0].astype(np.int64)]
    order = np.argsort(edge_comp, kind="stable")
    bounds = np.searchsorted(edge_comp[order], np.arange(count + 1))
    local = np.zeros(n, dtype=np.int64)
    next_label = 0
    for c in np.flatnonzero(sizes >= _min_cluster_size(min_samples)):
        members = np.flatnonzero(comp == c)
        local[members] = np.arange(len(members))
        sub = kept[order[bounds[c]:bounds[c + 1]]].copy()
        sub[:, 0], sub[:, 1] = local[sub[:, 0].astype(np.int64)], local[sub[:, 1].astype(np.int64)]
        piece = labels_from_mst(sub, len(members), min_samples, epsilon)
        found = piece >= 0
        labels[members[found]] = piece[found] + next_label
        next_label += int(piece.max(initial=-1)) + 1
    return labels


# Average linkage over at most this many faces of one cluster (the rest follow their
# nearest sampled face): O(m^2) memory stays under ~40 MB.
PURITY_SAMPLE = 2500


def purity_split(x: np.ndarray, labels: np.ndarray, max_distance: float, min_samples: int,
                 seed: int = 0) -> np.ndarray:
    """Split each cluster by average linkage at ``max_distance``: a cluster whose groups are
    on average farther apart than the model's same-person distance holds several people
    (single-linkage chains do that through one blurred or half-turned face). Pieces
    smaller than a cluster become noise; labels are renumbered from 0."""
    labels = np.asarray(labels, dtype=np.int64)
    out = np.full(len(labels), -1, dtype=np.int64)
    rng = np.random.default_rng(seed)
    next_label = 0
    for lab in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == lab)
        groups = np.ones(len(members), dtype=np.int64)
        if len(members) > 2:
            sample = members if len(members) <= PURITY_SAMPLE else np.sort(
                rng.choice(members, PURITY_SAMPLE, replace=False))
            found = fcluster(linkage(pdist(x[sample]), "average"), max_distance, "distance")
            if len(sample) == len(members):
                groups = found
            else:
                nearest = np.argmax(x[members] @ x[sample].T, axis=1)
                groups = found[nearest]
        for g in np.unique(groups):
            part = members[groups == g]
            if len(part) >= _min_cluster_size(min_samples):
                out[part] = next_label
                next_label += 1
    return out


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
    labels = _labels(x, mst, params, match_threshold)
    if progress:
        progress(1.0)
    return labels


def _labels(x: np.ndarray, mst: np.ndarray, params: ClusterParams, match_threshold: float) -> np.ndarray:
    cap = max_link(params.eps, match_threshold)
    labels = capped_labels(x, mst, len(x), params.min_samples, selection_epsilon(params.eps, match_threshold), cap)
    labels = purity_split(x, labels, cap, params.min_samples)
    return attach_border_faces(x, labels, selection_epsilon(params.eps, match_threshold))


def attach_border_faces(x: np.ndarray, labels: np.ndarray, link: float) -> np.ndarray:
    """A face left out whose nearest face is in a cluster, within the link distance, joins
    that cluster: DBSCAN's border points, which hdbscan leaves as noise when they sit just
    outside a cluster's density (a person's sixth photo 0.29 from another of theirs). Immich's
    deferred faces join their nearest person the same way."""
    labels = np.asarray(labels, dtype=np.int64).copy()
    noise, clustered = np.flatnonzero(labels < 0), np.flatnonzero(labels >= 0)
    if not len(noise) or not len(clustered):
        return labels
    for start in range(0, len(noise), 1024):
        rows = noise[start:start + 1024]
        sims = x[rows] @ x.T
        sims[np.arange(len(rows)), rows] = -np.inf
        nearest = np.argmax(sims, axis=1)
        close = np.sqrt(np.maximum(2.0 - 2.0 * sims[np.arange(len(rows)), nearest], 0.0)) <= link
        joins = close & (labels[nearest] >= 0)
        labels[rows[joins]] = labels[nearest[joins]]
    return labels


AUTO_EPS_GRID = (0.48,)
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
    tried = []
    for i, ms in enumerate(ms_grid):
        mst = mutual_reachability_mst(x, ms, neighbours)
        for eps in eps_grid:
            labels = _labels(x, mst, ClusterParams(float(eps), int(ms)), match_threshold)
            tried.append((grid_score(mst, labels, match_threshold), ClusterParams(float(eps), int(ms)), labels))
        if progress:
            progress(0.6 + 0.4 * (i + 1) / len(ms_grid))
    # Validity alone prefers leaving sparse faces out (a person seen twice is noise to a
    # min_samples of 8); the max-link cut and the purity split already guard against mixed
    # clusters. So a grid point must assign at least as many faces as the defaults do.
    baseline = next((cov for (_, cov), p, _ in tried if p == ClusterParams()), 0.0)
    eligible = [t for t in tried if t[0][1] >= baseline - 1e-9] or tried
    (score, _), params, labels = max(eligible, key=lambda t: (t[0][0], t[0][1], -t[1].eps))
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
