"""Face benchmark: detection + embedding throughput on the test photos, and clustering
time for synthetic jobs of 2k and 20k faces. Prints one JSON object.

    python bench/faces.py [--threads 2] [--sizes 2000,20000] [--reference]

``--reference`` also times hdbscan's own HDBSCAN(...).fit on the same data (slow at 20k).
Synthetic faces: 200 identities, unit vectors at Dlib-like distances (same person ~0.25,
different people ~0.55 apart).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def synthetic_faces(n: int, identities: int = 200, dim: int = 128, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    base = rng.normal(size=dim)
    directions = rng.normal(size=(identities, dim))
    centers = base / np.linalg.norm(base) + 0.4 * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    truth = rng.integers(0, identities, n)
    x = centers[truth] + rng.normal(scale=0.0156, size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), truth


def bench_detection() -> dict:
    from workers.engines.faces import DeepFaceEngine, load_image_rgb

    photos = sorted((ROOT / "tests" / "data" / "faces").glob("*.jpg"))
    started = time.perf_counter()
    engine = DeepFaceEngine()
    engine.load()
    load_seconds = time.perf_counter() - started
    images = [(p.name, load_image_rgb(p)) for p in photos]
    started = time.perf_counter()
    faces = 0
    for _, image in images:
        faces += len(engine.detect(image))
    seconds = time.perf_counter() - started
    return {"engine": f"{engine.detector_name}+{engine.model_name}", "load_seconds": round(load_seconds, 2),
            "photos": len(images), "megapixels": round(sum(i.shape[0] * i.shape[1] for _, i in images) / 1e6, 1),
            "faces": faces, "seconds": round(seconds, 2),
            "faces_per_second": round(faces / seconds, 2), "photos_per_second": round(len(images) / seconds, 2)}


def bench_clustering(n: int, reference: bool) -> dict:
    from sklearn.metrics import adjusted_rand_score

    from workers.faces.clustering import ClusterParams, cluster_embeddings, knn

    x, truth = synthetic_faces(n)
    cluster_embeddings(x[:500], ClusterParams(), 0.4)  # imports, first-call costs
    started = time.perf_counter()
    knn(x, 15)
    knn_seconds = time.perf_counter() - started
    started = time.perf_counter()
    labels = cluster_embeddings(x, ClusterParams(), 0.4)
    seconds = time.perf_counter() - started
    out = {"faces": n, "seconds": round(seconds, 2), "knn_seconds": round(knn_seconds, 2),
           "clusters": int(labels.max() + 1), "noise": int((labels < 0).sum()),
           "adjusted_rand_vs_truth": round(float(adjusted_rand_score(truth, labels)), 4)}
    if reference:
        import hdbscan

        started = time.perf_counter()
        ref = hdbscan.HDBSCAN(min_cluster_size=5, min_samples=4, cluster_selection_epsilon=0.4,
                              core_dist_n_jobs=int(os.environ.get("OMP_NUM_THREADS", "2"))).fit(x).labels_
        out["hdbscan_library_seconds"] = round(time.perf_counter() - started, 2)
        out["adjusted_rand_vs_hdbscan_library"] = round(float(adjusted_rand_score(ref, labels)), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="BLAS / torch threads (the target box has 2 cores)")
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--reference", action="store_true")
    parser.add_argument("--skip-detection", action="store_true")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    result = {"threads": args.threads, "cpu_count": os.cpu_count(), "loadavg_before": list(os.getloadavg())}
    with threadpool_limits(args.threads):
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            pass
        if not args.skip_detection:
            result["detection"] = bench_detection()
        result["clustering"] = [bench_clustering(int(n), args.reference) for n in args.sizes.split(",") if n]
    result["loadavg_after"] = list(os.getloadavg())
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
