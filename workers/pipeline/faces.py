"""Faces during analysis: detect on the 1 fps frames the visual pass already decoded, store
them per clustering job, and cluster once the batch is done."""

from __future__ import annotations

import logging
from dataclasses import replace

from workers.engines.base import Face
from workers.media.frames import Frame
from workers.messages import ProgressEvent

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
        rgb = frame.rgb(DETECT_MAX_SIDE)
        width, height = frame.size
        sx, sy = width / rgb.shape[1], height / rgb.shape[0]
        for face in self.engine.detect(rgb):
            # Boxes are stored in the frame's own pixels (1920x1080 for HD), not the copy searched.
            if (sx, sy) != (1.0, 1.0):
                x, y, w, h = face.box
                face = replace(face, box=(round(x * sx), round(y * sy), round(w * sx), round(h * sy)))
            self.faces.append((frame.time, face))

    def store(self, cache_dir: str, face_job: dict, hash_str: str) -> dict:
        from workers.faces.service import add_faces

        # Analysing a file again must keep the names and ids its faces already have.
        return add_faces(cache_dir, face_job["cluster_job_name"], hash_str, self.faces,
                         eps=face_job.get("eps"), min_samples=face_job.get("min_samples"), keep_identity=True)


def cluster_after_batch(cache_dir: str, face_job: dict, reporter) -> dict | None:
    """Cluster one job after a batch, with clustering progress events (Jumper's fields)."""
    from workers.faces.service import cluster_job
    from workers.faces.storage import UnknownJob

    name, task_id = face_job["cluster_job_name"], reporter.task_id
    reporter.emit(ProgressEvent.cluster(task_id, name, 0), force=True)
    try:
        summary = cluster_job(cache_dir, name, eps=face_job.get("eps"), min_samples=face_job.get("min_samples"),
                              progress=lambda f: reporter.emit(ProgressEvent.cluster(task_id, name, round(100 * f, 1))))
    except UnknownJob:
        # No face was found in any file of the batch: nothing to cluster.
        reporter.emit(ProgressEvent.cluster(task_id, name, 100, num_clusters=0, cluster_media_hashes=[]), force=True)
        return None
    reporter.emit(ProgressEvent.cluster(task_id, name, 100, num_clusters=summary["num_clusters"],
                                        cluster_media_hashes=summary["cluster_media_hashes"]), force=True)
    return summary
