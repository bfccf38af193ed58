"""Face benchmark: detection + embedding throughput on the test photos, clustering time
for synthetic jobs of 2k and 20k faces, and clustering quality on labelled faces, side by
side with dlib's chinese_whispers and an Immich-style incremental clusterer on the same
embeddings. Prints one JSON object.

    python bench/faces.py [--threads 2] [--sizes 2000,20000] [--reference] [--faces DIR]
                          [--skip-detection] [--skip-quality] [--skip-video]

``--reference`` also times hdbscan's own HDBSCAN(...).fit on the same data (slow at 20k).
Synthetic faces: 200 identities, unit vectors at Dlib-like distances (same person ~0.25,
different people ~0.55 apart).

Quality (``--faces``, default ../shared/testdata/faces: photos + labels.csv) on three sets,
each embedded once per run with the dlib + Dlib engine:

- ``photos``: one face per labelled photo; ours with the defaults, with min_samples 2 (the
  setting for photo sets) and with auto_detect_params;
- ``photos_hard``: the photos plus three degraded copies of each (face ~45-80 px, blur, JPEG
  quality 30-60, as a far or soft video frame) plus the strangers of the crowd photo in
  ``detection/`` (each its own identity): the faces that chain people together;
- ``video``: every photo shown for 2 s in a 2 fps H.264 video (PyAV), faces detected on the
  decoded 1 fps frames as analysis does; ours with the defaults.

Scores: pairwise precision / recall / F1 and BCubed F1 (workers/faces/quality.py; a face
left unassigned counts as its own cluster). References: ``dlib.chinese_whispers_clustering``
at dlib's clustering distance (0.5 on dlib's raw descriptors, 0.333 on unit vectors) and an
Immich-style clusterer (each face in turn joins the person of its nearest face within
``max_distance`` among its ``min_faces`` nearest, a face with ``min_faces`` such neighbours
starts a new person, the others are retried last; max_distance = Dlib's verification
distance 0.40 on unit vectors, Immich's default min_faces 3, and 2 for photos).
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


# --- clustering quality ------------------------------------------------------------------


def chinese_whispers(x, threshold: float):
    import dlib
    import numpy as np

    return np.asarray(dlib.chinese_whispers_clustering([dlib.vector(row.tolist()) for row in x], float(threshold)))


def immich_style(x, max_distance: float, min_faces: int):
    """Immich's facial-recognition job (server person.service handleRecognizeFaces) over an
    in-memory index: faces in order, non-core faces deferred to the end."""
    import numpy as np

    d = np.sqrt(np.maximum(2.0 - 2.0 * (x @ x.T), 0.0))
    person = np.full(len(x), -1)
    queue = [(i, False) for i in range(len(x))]
    people = 0
    while queue:
        i, deferred = queue.pop(0)
        order = np.argsort(d[i], kind="stable")
        matches = [j for j in order[:min_faces] if d[i, j] <= max_distance]  # the face itself included
        if min_faces > 1 and len(matches) <= 1:
            continue
        core = len(matches) >= min_faces
        if not core and not deferred:
            queue.append((i, True))
            continue
        pid = next((person[j] for j in matches if person[j] >= 0), -1)
        if pid < 0:
            assigned = [j for j in order if person[j] >= 0 and d[i, j] <= max_distance]
            pid = person[assigned[0]] if assigned else -1
        if core and pid < 0:
            pid, people = people, people + 1
        if pid >= 0:
            person[i] = pid
    return person


def _rows(folder: Path) -> list[tuple[str, str]]:
    import csv

    with open(folder / "labels.csv", newline="") as handle:
        return [(row["filename"], row["person"]) for row in csv.DictReader(handle)]


def _degraded(rgb, face_width: int, target: int, blur: float, quality: int):
    """The photo scaled so its face is ``target`` px wide, blurred, JPEG'd, then upscaled
    2x the way a player shows a small source (the detector needs ~80 px)."""
    import io

    import numpy as np
    from PIL import Image, ImageFilter

    scale = target / face_width
    image = Image.fromarray(rgb).resize((max(8, int(rgb.shape[1] * scale)), max(8, int(rgb.shape[0] * scale))),
                                        Image.Resampling.BILINEAR)
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    image = Image.open(buffer).convert("RGB")
    return np.asarray(image.resize((image.width * 2, image.height * 2), Image.Resampling.BILINEAR))


def embed_sets(folder: Path, video: bool) -> dict:
    """{set name: (embeddings, identities)}; every face embedded once in this run."""
    import numpy as np

    from workers.engines.faces import DeepFaceEngine, load_image_rgb

    engine = DeepFaceEngine()
    photos, hard = ([], []), ([], [])
    for name, person in _rows(folder):
        rgb = load_image_rgb(folder / name)
        faces = engine.detect(rgb)
        if not faces:
            continue
        face = max(faces, key=lambda f: f.box[2])
        for group in (photos, hard):
            group[0].append(face.embedding)
            group[1].append(person)
        for target, blur, quality in ((60, 0.0, 60), (45, 1.0, 40), (80, 2.0, 30)):
            found = engine.detect(_degraded(rgb, face.box[2], target, blur, quality))
            if found:
                hard[0].append(max(found, key=lambda f: f.box[2]).embedding)
                hard[1].append(person)
    crowd = folder / "detection" / "crowd_retinaface_img3.jpg"
    if crowd.is_file():
        small = DeepFaceEngine(min_face_px=12, detect_max_side=2000)
        rgb = load_image_rgb(crowd)
        rgb = np.asarray(__import__("PIL.Image", fromlist=["Image"]).fromarray(rgb).resize(
            (rgb.shape[1] * 2, rgb.shape[0] * 2)))
        for k, face in enumerate(small.detect(rgb)):
            hard[0].append(face.embedding)
            hard[1].append(f"crowd_{k}")
    sets = {"photos": photos, "photos_hard": hard}
    if video:
        sets["video"] = _video_faces(folder, engine)
    return {name: (np.asarray(x, dtype=np.float32), list(truth)) for name, (x, truth) in sets.items()}


def _video_faces(folder: Path, engine) -> tuple[list, list]:
    """Each photo for 2 s (2 fps, 640x480 H.264), faces found on the 1 fps frames."""
    import tempfile

    import av
    import numpy as np
    from PIL import Image

    rows = _rows(folder)
    shown = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "people.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=2)
            stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
            stream.options = {"crf": "18", "preset": "veryfast"}
            from workers.engines.faces import load_image_rgb

            for name, person in rows:
                photo = Image.fromarray(load_image_rgb(folder / name))
                photo.thumbnail((640, 480), Image.Resampling.LANCZOS)
                canvas = Image.new("RGB", (640, 480), (16, 16, 16))
                canvas.paste(photo, ((640 - photo.width) // 2, (480 - photo.height) // 2))
                frame = av.VideoFrame.from_ndarray(np.asarray(canvas), format="rgb24")
                for _ in range(4):
                    shown.append(person)
                    for packet in stream.encode(frame):
                        container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        x, truth = [], []
        with av.open(str(path)) as container:
            for k, frame in enumerate(container.decode(video=0)):
                if k % 2:
                    continue  # the 1 fps grid
                for face in engine.detect(frame.to_ndarray(format="rgb24")):
                    x.append(face.embedding)
                    truth.append(shown[k])
    return x, truth


def bench_quality(folder: Path, video: bool) -> dict:
    from workers.engines.faces import match_threshold
    from workers.faces.clustering import (
        ClusterParams,
        auto_detect_params,
        cluster_embeddings,
        selection_epsilon,
    )
    from workers.faces.quality import clustering_quality

    threshold = match_threshold("Dlib")
    started = time.perf_counter()
    sets = embed_sets(folder, video)
    out = {"embedding_seconds": round(time.perf_counter() - started, 1), "match_threshold": threshold,
           "link_distance": round(selection_epsilon(0.48, threshold), 3)}
    for name, (x, truth) in sets.items():
        def score(labels, truth=truth) -> dict:
            return clustering_quality(truth, labels).rounded()

        runs = {"ours_defaults": score(cluster_embeddings(x, ClusterParams(), threshold))}
        if name != "video":
            runs["ours_min_samples_2"] = score(cluster_embeddings(x, ClusterParams(min_samples=2), threshold))
        params, _, labels = auto_detect_params(x, threshold)
        runs["ours_auto_detect_params"] = {**score(labels), "eps": params.eps, "min_samples": params.min_samples}
        runs["dlib_chinese_whispers"] = score(chinese_whispers(x, selection_epsilon(0.48, threshold)))
        runs["immich_style_min_faces_3"] = score(immich_style(x, threshold, 3))
        if name != "video":
            runs["immich_style_min_faces_2"] = score(immich_style(x, threshold, 2))
        out[name] = {"faces": len(x), "identities": len(set(truth)), **runs}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="BLAS / torch threads (the target box has 2 cores)")
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--reference", action="store_true")
    parser.add_argument("--skip-detection", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-video", action="store_true", help="quality on photos only (no video to decode)")
    parser.add_argument("--faces", type=Path, default=ROOT.parent / "shared" / "testdata" / "faces",
                        help="labelled photos (labels.csv: filename,person)")
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
        if not args.skip_quality:
            result["quality"] = bench_quality(args.faces, not args.skip_video)
        result["clustering"] = [bench_clustering(int(n), args.reference) for n in args.sizes.split(",") if n]
    result["loadavg_after"] = list(os.getloadavg())
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
