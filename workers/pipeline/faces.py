"""Faces during analysis: detect on the 1 fps frames the visual pass already decoded, store
them per clustering job, and cluster once the batch is done."""

from __future__ import annotations

import logging

from workers.engines.base import Face
from workers.media.frames import Frame

log = logging.getLogger(__name__)

# Faces are looked for on frames this big at most: enough for a face of ~40 px in a wide shot.
DETECT_MAX_SIDE = 1280


class FaceCollector:
    """The visual pipeline's face sink: one detection per 1 fps frame, kept until stored."""

    def __init__(self):
        from workers.engines.faces import load_face_engine

        self.engine = load_face_engine()
        self.faces: list[tuple[float, Face]] = []

    def __call__(self, frame: Frame) -> None:
        for face in self.engine.detect(frame.rgb(DETECT_MAX_SIDE)):
            self.faces.append((frame.time, face))

    def store(self, cache_dir: str, face_job: dict, hash_str: str) -> dict:
        from workers.faces.service import add_faces

        return add_faces(cache_dir, face_job["cluster_job_name"], hash_str, self.faces,
                         eps=face_job.get("eps"), min_samples=face_job.get("min_samples"))


def cluster_after_batch(cache_dir: str, face_job: dict, reporter) -> dict | None:
    """Cluster one job after a batch, with clustering progress events (Jumper's fields)."""
    from workers.faces.service import cluster_job
    from workers.faces.storage import UnknownJob

    name = face_job["cluster_job_name"]
    base = {"video_path": None, "done": False, "type": "faces", "is_cluster_job": True, "cluster_job_name": name}
    reporter.emit({**base, "progress": 0}, force=True)
    try:
        summary = cluster_job(cache_dir, name, eps=face_job.get("eps"), min_samples=face_job.get("min_samples"),
                              progress=lambda f: reporter.emit({**base, "progress": round(100 * f, 1)}))
    except UnknownJob:
        # No face was found in any file of the batch: nothing to cluster.
        reporter.emit({**base, "progress": 100, "num_clusters": 0, "cluster_media_hashes": []}, force=True)
        return None
    reporter.emit({**base, "progress": 100, "num_clusters": summary["num_clusters"],
                   "cluster_media_hashes": summary["cluster_media_hashes"]}, force=True)
    return summary
