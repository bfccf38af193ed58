"""Visual analysis of one file: 1 fps frames → thumbnails, shots, embeddings, faces.

One decode feeds every consumer. Embedding runs in a second thread on the previous batch
while this one decodes the next, so decode and inference overlap. Every frame the decoder
produces (not only the 1 fps ones) feeds the shot detector, so shots come frame-accurate
at ~0.2 ms a frame (workers/scenes.py). A file whose thumbnails
are already stored is embedded by a new model from those thumbnails, without decoding the
video again.
"""

from __future__ import annotations

import io
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import av
import numpy as np
from PIL import Image

from workers import scenes, store
from workers.engines.base import VisualEngine
from workers.engines.onnx_visual import cpu_threads
from workers.media.frames import Frame, iter_frames
from workers.media.probe import MediaError, MediaInfo
from workers.pipeline import Cancelled
from workers.settings import load_settings

BATCH = 16
log = logging.getLogger(__name__)


# Storage budget: 40 MB per hour of footage at 1 fps is 11.1 kB a second, of which the
# embeddings take 1-2.3 kB (float16, 512-1152 dimensions). A thumbnail above this size is
# encoded again at a lower quality: typical frames (4-9 kB at 384 px, quality 65) are
# untouched, detailed ones (foliage, crowds, noise: 12-20 kB) stay sharp enough for a grid.
THUMBNAIL_MAX_BYTES = 9_000
THUMBNAIL_MIN_QUALITY = 40


def encode_thumbnail(rgb: np.ndarray, quality: int, max_bytes: int = THUMBNAIL_MAX_BYTES) -> bytes:
    """A stored thumbnail's JPEG: ``quality``, or lower (down to THUMBNAIL_MIN_QUALITY) while it
    is above ``max_bytes``."""
    image = Image.fromarray(rgb)
    while True:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality, optimize=True)
        if buffer.tell() <= max_bytes or quality <= THUMBNAIL_MIN_QUALITY:
            return buffer.getvalue()
        quality = max(THUMBNAIL_MIN_QUALITY, quality - 12)


class _Embedder:
    """Embeds batches (and encodes their thumbnails, with ``encode``) in background threads,
    at most ``in_flight`` batches at a time; results come back in order.

    Items are what ``thumbnail`` turns into HxWx3 RGB (default: they are already). Scaling
    and encoding the thumbnails here instead of in the decode loop balances the two cores:
    on 2 cores the decode loop (decoding and shots) is the longer of the two stages.
    """

    def __init__(self, engine: VisualEngine | None, in_flight: int = 1,
                 encode: Callable[[np.ndarray], bytes] | None = None,
                 thumbnail: Callable[[object], np.ndarray] | None = None):
        self.engine = engine
        self.encode = encode
        self.thumbnail = thumbnail or (lambda item: item)
        self.in_flight = max(1, in_flight)
        self.pool = ThreadPoolExecutor(max_workers=self.in_flight) if engine else None
        self.pending: deque[Future] = deque()
        self.batch: list[np.ndarray] = []
        self.rows: list[np.ndarray] = []
        self.jpegs: list[bytes] = []

    @property
    def active(self) -> bool:
        return self.engine is not None or self.encode is not None

    def add(self, item) -> None:
        if self.engine is None:
            if self.encode is not None:
                self.jpegs.append(self.encode(self.thumbnail(item)))
            return
        self.batch.append(item)
        if len(self.batch) >= BATCH:
            self._submit()

    def _work(self, batch: list) -> tuple[np.ndarray, list[bytes]]:
        thumbs = [self.thumbnail(item) for item in batch]
        jpegs = [self.encode(rgb) for rgb in thumbs] if self.encode is not None else []
        return self.engine.embed_images(thumbs), jpegs

    def _collect(self) -> None:
        rows, jpegs = self.pending.popleft().result()
        self.rows.append(rows)
        self.jpegs.extend(jpegs)

    def _submit(self) -> None:
        while len(self.pending) >= self.in_flight:
            self._collect()
        if self.batch:
            self.pending.append(self.pool.submit(self._work, self.batch))
        self.batch = []

    def finish(self) -> np.ndarray | None:
        if self.engine is None:
            return None
        self._submit()
        while self.pending:
            self._collect()
        self.pool.shutdown(wait=True)
        if not self.rows:
            return np.zeros((0, self.engine.dim), dtype=np.float16)
        matrix = np.concatenate(self.rows).astype(np.float32)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        return matrix.astype(np.float16)

    def abort(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


HELD_FRAME_PIXELS = 1920 * 1088


class _Scaled:
    """A thumbnail already scaled in the decode loop, standing in for its frame."""

    def __init__(self, rgb: np.ndarray):
        self.array = rgb

    def rgb(self, max_side: int | None = None) -> np.ndarray:
        return self.array


def _expected_frames(info: MediaInfo) -> int:
    return 1 if info.kind == "image" else max(1, int(info.duration + 1e-6) + 1)


def analyze_visual(
    info: MediaInfo,
    cache_dir: str,
    hash_str: str,
    engine: VisualEngine | None,
    face_sink: Callable[[Frame], None] | None = None,
    progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> dict:
    """Analyse one image or video into ``<cache_dir>/<hash_str>/``. Returns a summary dict.

    ``face_sink`` receives every 1 fps frame (full resolution on demand) for face detection.
    ``progress`` gets a percentage; ``should_cancel`` is polled between frames.
    """
    started = time.monotonic()
    folder = store.visual_dir(cache_dir, hash_str)
    manifest = store.read_visual_manifest(cache_dir, hash_str) or {}
    model_key = getattr(engine, "key", None)
    have_frames = bool(manifest.get("frames_complete"))
    have_embeddings = model_key is None or model_key in manifest.get("embeddings", {})

    if have_frames and have_embeddings and face_sink is None:
        if progress:
            progress(100.0)
        return {"frames": manifest.get("frame_count", 0), "cached": True, "seconds": 0.0}
    if have_frames and face_sink is None:
        result = _embed_from_thumbnails(folder, manifest, engine, progress, should_cancel)
    else:
        result = _decode_pass(info, folder, manifest, engine, face_sink, progress, should_cancel,
                              keep_frames=have_frames)
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


class _Shots:
    """Shot detection riding along the 1 fps decode: every decoded frame feeds the detector."""

    def __init__(self, info: MediaInfo, wanted: bool):
        self.info = info
        self.detector = scenes.ShotDetector() if wanted and info.kind == "video" else None
        self.rate = info.fps or 30.0
        self.modes: list[str] = []

    def on_decoded(self, frame, seconds: float) -> None:
        self.detector.add(frame, round(seconds * self.rate), seconds)

    def finish(self, should_cancel) -> list[scenes.Shot] | None:
        if self.detector is None:
            return None
        try:
            if self.modes != ["decode"] or not self.detector.frames:
                # Seeking saw a few frames a second: shots need their own pass over every frame.
                return scenes.detect_shots(self.info.path, should_stop=should_cancel)
            frames, times = self.detector.frames, self.detector.times
            end_frame, end_time = frames[-1] + 1, times[-1] + 1.0 / self.rate
            # Trailing frames nobody references were skipped: the file's duration covers them.
            tail = round(self.info.duration * self.rate) - end_frame
            if 0 < tail <= 8:
                end_frame, end_time = end_frame + tail, max(end_time, self.info.duration)
            refiner = scenes.Refiner(self.info.path)
            try:
                return self.detector.shots(end_time=end_time, end_frame=end_frame, refine=refiner)
            finally:
                refiner.close()
        except (MediaError, av.FFmpegError, OSError) as exc:
            # Scenes fall back to the 1 fps histograms; the analysis itself stands.
            log.warning("shot detection failed for %s: %s", self.info.path, exc)
            return None


def _decoder_threads(engine: VisualEngine | None) -> int | None:
    """The decoder's share of the cores when the embedder runs beside it (None: all of them).

    Frame threads cost CPU (on 2 cores, 720p H.264 on two frame threads takes 25 % more CPU
    than on one), and beside an embedder every core is busy anyway.
    """
    if engine is None:
        return None
    return max(1, cpu_threads() - int(getattr(engine, "image_threads", None) or cpu_threads()))


def _decode_pass(info, folder, manifest, engine, face_sink, progress, should_cancel, keep_frames) -> dict:
    settings = load_settings()
    expected = _expected_frames(info)
    quality, max_side = settings.thumbnail_quality, settings.thumbnail_max_side
    # Frames go to the embedding thread whole (the decoder's buffers are reference-counted):
    # it scales them (one swscale call to the thumbnail size), encodes and embeds them.
    embedder = _Embedder(engine if (engine and engine.key not in manifest.get("embeddings", {})) else None,
                         encode=None if keep_frames else lambda rgb: encode_thumbnail(rgb, quality),
                         thumbnail=lambda frame: frame.rgb(max_side))
    shots = _Shots(info, wanted=not keep_frames or "shots" not in manifest)
    try:
        for frame in iter_frames(info, should_stop=should_cancel, decoded_modes=shots.modes,
                                 on_decoded=shots.on_decoded if shots.detector else None,
                                 threads=_decoder_threads(embedder.engine)):
            if should_cancel and should_cancel():
                raise Cancelled()
            if embedder.active:
                # A batch or two of frames up to 1080p is held whole (<= 100 MB); bigger
                # ones are scaled here, so that memory does not grow with the resolution.
                width, height = frame.size
                embedder.add(frame if width * height <= HELD_FRAME_PIXELS else _Scaled(frame.rgb(max_side)))
            if face_sink is not None:
                face_sink(frame)
            if progress:
                progress(min(99.0, 100.0 * (frame.index + 1) / expected))
        if should_cancel and should_cancel():
            raise Cancelled()
        embeddings = embedder.finish()
        jpegs = embedder.jpegs
        shot_list = shots.finish(should_cancel)
        if should_cancel and should_cancel():
            raise Cancelled()
    except BaseException:
        embedder.abort()
        raise

    if not keep_frames:
        if not jpegs:
            raise MediaError("no frames could be decoded")
        store.write_frames_pack(folder, jpegs)
        manifest = {
            "format_version": store.VISUAL_FORMAT_VERSION,
            "hash_str": manifest.get("hash_str") or folder.name,
            "media_path": info.path,
            "kind": info.kind,
            "duration": info.duration,
            "fps": info.fps,
            "width": info.width,
            "height": info.height,
            "frame_count": len(jpegs),
            "frames_complete": True,
            "scenes": None,  # the grid view of the shots, below
            "embeddings": manifest.get("embeddings", {}),
        }
    if shot_list:
        scenes.put_shots(manifest, shot_list)
    if manifest.get("scenes") is None:
        manifest["scenes"] = _histogram_scenes(jpegs)
    frame_count = manifest["frame_count"]
    if embeddings is not None:
        _store_embeddings(folder, manifest, engine, embeddings[:frame_count])
    else:
        store.atomic_write_json(folder / store.MANIFEST, manifest)
    if progress:
        progress(100.0)
    return {"frames": frame_count, "cached": False, "reused_frames": keep_frames,
            "scenes": len(manifest.get("scenes", [])), "shots": len(manifest.get("shots") or [])}


def _histogram_scenes(jpegs: list[bytes]) -> list[list[int]]:
    """Scenes on the 1 fps grid from the thumbnails' colour histograms: for images, and for a
    video whose shot detection failed (the rule scenes had before shots)."""
    features = np.stack([scenes.frame_features(np.asarray(Image.open(io.BytesIO(j)).convert("RGB")))
                         for j in jpegs])
    return [list(map(int, s)) for s in scenes.detect_scenes(features)]


def _embed_from_thumbnails(folder, manifest, engine, progress, should_cancel) -> dict:
    count = manifest["frame_count"]
    # Nothing decodes beside: as many batches in flight as the cores hold sessions' threads.
    embedder = _Embedder(engine, in_flight=cpu_threads() // int(getattr(engine, "image_threads", None) or cpu_threads()))
    try:
        for index in range(count):
            if should_cancel and should_cancel():
                raise Cancelled()
            jpeg = store.read_frame_jpeg(folder, index)
            embedder.add(np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")))
            if progress:
                progress(min(99.0, 100.0 * (index + 1) / count))
        embeddings = embedder.finish()
    except BaseException:
        embedder.abort()
        raise
    _store_embeddings(folder, manifest, engine, embeddings)
    if progress:
        progress(100.0)
    return {"frames": count, "cached": False, "reused_frames": True, "scenes": len(manifest.get("scenes", []))}


def _store_embeddings(folder, manifest, engine, embeddings: np.ndarray) -> None:
    path = store.embeddings_file(folder.parent, folder.name, engine.key)
    store.atomic_save_npy(path, embeddings)
    manifest.setdefault("embeddings", {})[engine.key] = {"file": path.name, "dim": int(embeddings.shape[1])}
    store.atomic_write_json(folder / store.MANIFEST, manifest)
