"""Visual search inside a query worker: the loaded embeddings stay in memory per cache_dir
and model, the query is encoded by the active model, and matches come back in the shape of
the Jumper search endpoints (``frame_idx`` as a string, base64 JPEG, scene bounds)."""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps

from workers import scenes, store
from workers.media.frames import frame_at
from workers.media.probe import MediaError, hhmmss, probe
from workers.messages import SearchHit, SearchQuery
from workers.search import SearchIndex, visual_search
from workers.search.index import ANN_MIN_ROWS


class SearchError(ValueError):
    """A search that cannot run as asked; the message is for the user (a 400)."""


@dataclass
class _Loaded:
    generation: int
    index: SearchIndex = field(default_factory=SearchIndex)
    meta: dict[str, dict] = field(default_factory=dict)  # hash → {"scenes", "media_path"}


_loaded: dict[tuple[str, str], _Loaded] = {}
_lock = threading.Lock()


def sync(cache_dir: str, model_key: str, hashes: dict[str, str], generation: int) -> _Loaded:
    """Make sure every file in ``hashes`` (hash → media path) is in this worker's index."""
    with _lock:
        entry = _loaded.get((cache_dir, model_key))
        if entry is None or entry.generation != generation:
            entry = _loaded[(cache_dir, model_key)] = _Loaded(generation)
        missing = [h for h in hashes if h not in entry.meta]
        for hash_str in missing:
            manifest = store.read_visual_manifest(cache_dir, hash_str)
            if not manifest or model_key not in manifest.get("embeddings", {}):
                continue
            embeddings = np.load(store.embeddings_file(cache_dir, hash_str, model_key))
            entry.index.add(hash_str, embeddings, timestamps=np.arange(len(embeddings), dtype=np.float32))
            entry.meta[hash_str] = {"scenes": manifest.get("scenes") or [], "media_path": manifest.get("media_path")}
        if missing and len(entry.index) >= ANN_MIN_ROWS:
            entry.index.build_ann_in_background()
        return entry


def _image_vector(engine, path: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad files
        raise SearchError(f"image_path: not a readable image ({exc})") from None
    return engine.embed_images([rgb])[0]


def _frame_vector(engine, cache_dir: str, model_key: str, path: str, seconds: float,
                  entry: _Loaded) -> np.ndarray:
    """The stored embedding of the frame at ``seconds`` when the file is analysed, else a fresh one."""
    try:
        hash_str = store.hash_file(path)
    except OSError as exc:
        raise SearchError(f"media_path: cannot read {path}: {exc.strerror}") from None
    index = int(seconds)
    if hash_str in entry.index:
        stored = entry.index.embeddings(hash_str)
        return stored[min(index, len(stored) - 1)].astype(np.float32)
    if store.has_embeddings(cache_dir, hash_str, model_key):
        stored = np.load(store.embeddings_file(cache_dir, hash_str, model_key), mmap_mode="r")
        return np.asarray(stored[min(index, len(stored) - 1)], dtype=np.float32)
    try:
        rgb = frame_at(probe(path), seconds, 1024)
    except MediaError as exc:
        raise SearchError(f"media_path: {exc}") from None
    if rgb is None:
        raise SearchError("media_path: has no video frames (an audio file?)")
    return engine.embed_images([rgb])[0]


def _thumbnail(cache_dir: str, hash_str: str, frame_idx: int) -> str | None:
    jpeg = store.read_frame_jpeg(store.visual_dir(cache_dir, hash_str), frame_idx)
    return base64.b64encode(jpeg).decode("ascii") if jpeg else None


def search(query: SearchQuery, generation: int) -> list[SearchHit]:
    """Run one visual search over the files of ``query`` (loaded on first use)."""
    from workers.engines.visual import load_visual_engine

    cache_dir, model_key, hashes = query.cache_dir, query.model_key, query.hashes
    entry = sync(cache_dir, model_key, hashes, generation)
    searchable = [h for h in hashes if h in entry.meta]
    if not searchable:
        raise SearchError("none of the searched files has analysis data for the active visual model")
    engine = load_visual_engine(model_key)

    text = engine.embed_texts([query.query])[0] if query.query else None
    image = None
    if query.kind == "image":
        image = _image_vector(engine, query.image_path)
    elif query.kind == "frame":
        image = _frame_vector(engine, cache_dir, model_key, query.media_path, query.time_seconds, entry)
    exclude = engine.embed_texts(list(query.exclude)) if query.exclude else None

    hash_filter = None if len(searchable) == len(entry.meta) else searchable
    frame_mask = query.frame_mask
    if frame_mask is not None:
        hash_filter = [h for h in searchable if h in frame_mask]
    grouped = visual_search(entry.index, text_vec=text, image_vec=image, exclude_vecs=exclude,
                            text_weight=float(query.text_weight), hash_filter=hash_filter,
                            frame_mask=frame_mask, max_results=int(query.max_results))
    hits = []
    for match in grouped:
        hash_str, frame_idx = match["hash_str"], match["frame_idx"]
        start, end = scenes.scene_for(entry.meta[hash_str]["scenes"], frame_idx)
        hits.append(SearchHit(
            frame_idx=frame_idx, timestamp=hhmmss(frame_idx), image=_thumbnail(cache_dir, hash_str, frame_idx),
            scene_start_timestamp=hhmmss(start), scene_end_timestamp=hhmmss(end),
            original_index=match["original_index"], hash_str=hash_str,
            video_path=hashes.get(hash_str) or entry.meta[hash_str]["media_path"]))
    return hits
