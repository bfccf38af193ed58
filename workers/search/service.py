"""Visual search inside a query worker: the loaded embeddings stay in memory per cache_dir
and model, the query is encoded by the active model, and matches come back in the shape of
the Jumper search endpoints (``frame_idx`` as a string, base64 JPEG, scene bounds)."""

from __future__ import annotations

import base64
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps

from workers import scenes, store
from workers.media.frames import frame_at
from workers.media.probe import MediaError, probe
from workers.messages import SearchHit, SearchQuery
from workers.search import SearchIndex, visual_search
from workers.search.index import ANN_MIN_ROWS
from workers.settings import load_settings
from workers.timecode import hhmmss


class SearchError(ValueError):
    """A search that cannot run as asked; the message is for the user (a 400)."""


@dataclass
class _Loaded:
    generation: int
    index: SearchIndex = field(default_factory=lambda: SearchIndex(spill_dir=_spill_dir()))
    meta: dict[str, dict] = field(default_factory=dict)  # hash → {"scenes", "media_path"}


def _spill_dir() -> str:
    """Where a large index keeps its float16 rows: the server's home, on disk (the system's
    temporary folder may be a RAM disk, which would defeat the point)."""
    folder = load_settings().home / "search-index"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


_loaded: dict[tuple[str, str], _Loaded] = {}
_lock = threading.Lock()


def sync(cache_dir: str, model_key: str, hashes: dict[str, str], generation: int,
         build_now: bool = False) -> _Loaded:
    """Make sure every file in ``hashes`` (hash → media path) is in this worker's index.

    A large index gets its approximate first pass built in the background (searches are
    exact meanwhile), or before returning with ``build_now`` (the explicit load).
    """
    with _lock:
        entry = _loaded.get((cache_dir, model_key))
        if entry is None or entry.generation != generation:
            entry = _loaded[(cache_dir, model_key)] = _Loaded(generation)
        manifests = {}
        for hash_str in hashes:
            if hash_str not in entry.meta:
                manifest = store.embedded_manifest(cache_dir, hash_str, model_key)
                if manifest:
                    manifests[hash_str] = manifest
        dim = next((m["embeddings"][model_key].get("dim") for m in manifests.values()), None)
        if dim and (entry.index.dim in (None, dim)):
            # One allocation for the whole load: growing by copies would briefly need 2.5x.
            entry.index.reserve(sum(int(m.get("frame_count") or 0) for m in manifests.values()), dim)
        for hash_str, manifest in manifests.items():
            embeddings = np.load(store.embeddings_file(cache_dir, hash_str, model_key))
            entry.index.add(hash_str, embeddings, timestamps=np.arange(len(embeddings), dtype=np.float32))
            entry.meta[hash_str] = {"scenes": manifest.get("scenes") or [], "media_path": manifest.get("media_path")}
    if manifests and len(entry.index) >= ANN_MIN_ROWS:
        if build_now:
            entry.index.build_ann()
        else:
            entry.index.build_ann_in_background()
    return entry


class TextBatcher:
    """Concurrent searches share text-encoder passes: a query that arrives while the encoder
    is busy waits for it and goes into the next pass with every other waiting one. An idle
    encoder starts at once, so a lone search waits for nothing. On 2 cores one pass of 8
    short texts costs far less than 8 passes of one (and 8 threads fighting over 2 cores)."""

    def __init__(self, encode: Callable[[list[str]], np.ndarray], max_batch: int = 16):
        self._encode = encode
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: list[_Slot] = []
        self._running = False

    def embed(self, text: str) -> np.ndarray:
        result = self.embed_many([text])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def embed_many(self, texts: list[str]) -> list[np.ndarray | Exception]:
        """One vector per text, or the exception that text raised (it fails alone)."""
        slots = [_Slot(text) for text in texts]
        with self._cond:
            self._queue.extend(slots)
            while not all(slot.done for slot in slots):
                if self._running:
                    self._cond.wait()
                    continue
                self._running = True
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
                self._cond.release()
                try:
                    self._run(batch)
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._cond.notify_all()
        return [slot.error if slot.error is not None else slot.vector for slot in slots]

    def _run(self, batch: list[_Slot]) -> None:
        try:
            vectors = self._encode([slot.text for slot in batch])
            for slot, vector in zip(batch, vectors, strict=True):
                slot.vector = vector
        except Exception as exc:  # noqa: BLE001 - handed to the waiting searches
            if len(batch) == 1:
                batch[0].error = exc
            else:  # one bad text must not fail its neighbours
                for slot in batch:
                    self._run([slot])
        for slot in batch:
            slot.done = True


class _Slot:
    __slots__ = ("text", "vector", "error", "done")

    def __init__(self, text: str):
        self.text, self.vector, self.error, self.done = text, None, None, False


_batchers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _text_batcher(engine) -> TextBatcher:
    with _lock:
        batcher = _batchers.get(engine)
        if batcher is None:
            batcher = _batchers[engine] = TextBatcher(engine.embed_texts)
        return batcher


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


def _thumbnails(cache_dir: str, matches: list[dict]) -> list[str | None]:
    """The base64 JPEG of each match, each file's pack read once."""
    wanted: dict[str, list[int]] = {}
    for position, match in enumerate(matches):
        wanted.setdefault(match["hash_str"], []).append(position)
    out: list[str | None] = [None] * len(matches)
    for hash_str, positions in wanted.items():
        jpegs = store.read_frame_jpegs(store.visual_dir(cache_dir, hash_str),
                                       [matches[p]["frame_idx"] for p in positions])
        for position, jpeg in zip(positions, jpegs, strict=True):
            out[position] = base64.b64encode(jpeg).decode("ascii") if jpeg else None
    return out


def search_batch(queries: list[SearchQuery], generation: int) -> Iterator[list[SearchHit] | Exception]:
    """Each query's hits (or the exception it failed with), in order as each is ready. The
    texts of the batch are encoded together first: one encoder pass for N texts costs far
    less than N passes, and each text's vector is the one it gets alone."""
    from workers.engines.visual import load_visual_engine

    engines: dict[str, object] = {}  # model key → engine, or the exception loading it raised
    for model_key in {query.model_key for query in queries}:
        try:
            engines[model_key] = load_visual_engine(model_key)
        except Exception as exc:  # noqa: BLE001 - each of its searches reports it
            engines[model_key] = exc
    vectors: dict[int, np.ndarray | Exception] = {}
    by_model: dict[str, list[int]] = {}
    for position, query in enumerate(queries):
        if query.query and not isinstance(engines[query.model_key], Exception):
            by_model.setdefault(query.model_key, []).append(position)
    for model_key, positions in by_model.items():
        results = _text_batcher(engines[model_key]).embed_many([queries[p].query for p in positions])
        vectors.update(zip(positions, results, strict=True))
    for position, query in enumerate(queries):
        engine, vector = engines[query.model_key], vectors.get(position)
        failed = engine if isinstance(engine, Exception) else vector if isinstance(vector, Exception) else None
        if failed is not None:
            yield failed
            continue
        try:
            yield search(query, generation, text_vector=vector, engine=engine)
        except Exception as exc:  # noqa: BLE001 - one failed search must not fail its neighbours
            yield exc


def search(query: SearchQuery, generation: int, text_vector: np.ndarray | None = None,
           engine=None) -> list[SearchHit]:
    """Run one visual search over the files of ``query`` (loaded on first use); ``text_vector``
    and ``engine``: the query text's embedding and the model's engine when already at hand."""
    from workers.engines.visual import load_visual_engine

    cache_dir, model_key, hashes = query.cache_dir, query.model_key, query.hashes
    entry = sync(cache_dir, model_key, hashes, generation)
    searchable = [h for h in hashes if h in entry.meta]
    if not searchable:
        raise SearchError("none of the searched files has analysis data for the active visual model")
    engine = engine or load_visual_engine(model_key)

    text = text_vector
    if text is None and query.query:
        text = _text_batcher(engine).embed(query.query)
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
    for match, image in zip(grouped, _thumbnails(cache_dir, grouped), strict=True):
        hash_str, frame_idx = match["hash_str"], match["frame_idx"]
        start, end = scenes.scene_for(entry.meta[hash_str]["scenes"], frame_idx)
        hits.append(SearchHit(
            frame_idx=frame_idx, timestamp=hhmmss(frame_idx), image=image,
            scene_start_timestamp=hhmmss(start), scene_end_timestamp=hhmmss(end),
            original_index=match["original_index"], hash_str=hash_str,
            video_path=hashes.get(hash_str) or entry.meta[hash_str]["media_path"]))
    return hits
