"""The one place that reaches into hdbscan's private modules.

hdbscan's public ``HDBSCAN.fit`` builds its own minimum spanning tree (68 s for 20k faces
here; see ``workers.faces.clustering``), and fitting a sparse "precomputed" copy of our tree
re-runs scipy's MST, whose tie-breaking among equal mutual-reachability weights gives a
different condensed tree. So the tree we build goes straight into hdbscan's own
single-linkage labelling and cluster selection, through these two private functions.
``tests/test_faces.py::test_hdbscan_adapter_matches_the_library`` fails loudly when a new
hdbscan release moves or changes them (the pin is in requirements.lock.txt).
"""

from __future__ import annotations

import numpy as np

try:
    from hdbscan._hdbscan_linkage import label as _label
    from hdbscan.hdbscan_ import _tree_to_labels
except ImportError as exc:  # pragma: no cover - only on an incompatible hdbscan release
    raise ImportError(
        f"this hdbscan release no longer has the functions workers.faces.hdbscan_adapter uses ({exc}); "
        "pin the version in requirements.lock.txt or update the adapter"
    ) from exc


def select_clusters(mst: np.ndarray, min_cluster_size: int, epsilon: float, allow_single_cluster: bool) -> np.ndarray:
    """hdbscan's labels (-1 noise) for an (n-1, 3) [from, to, weight] spanning tree:
    condensed tree, excess-of-mass selection, ``cluster_selection_epsilon``."""
    ordered = np.ascontiguousarray(mst[np.argsort(mst[:, 2], kind="stable")], dtype=np.float64)
    tree = _label(ordered)
    labels = _tree_to_labels(None, tree, min_cluster_size=int(min_cluster_size), cluster_selection_method="eom",
                             allow_single_cluster=bool(allow_single_cluster), match_reference_implementation=False,
                             cluster_selection_epsilon=float(epsilon))[0]
    return np.asarray(labels, dtype=np.int64)
