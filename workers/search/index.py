"""An in-process index over many files' frame embeddings, searched by inner product.

Rows live in one growing matrix: float32 in memory while the index is small (at most
``spill_rows`` rows, 300 MB for 512-d), then float16 (what the files on disk hold, so no
precision is lost) in a memory-mapped temporary file, read through the page cache. At
1,000 h (3.6 M frames) the index then holds in its own memory only the 64-byte fast-scan
code of each row and 12 bytes of bookkeeping (~0.3 GB instead of 7.4 GB of float32).
Two ways to search it:

- **exact**: one BLAS mat-vec over the rows in scope and a partial top-k
  (``np.argpartition``). Used whenever the rows in scope number at most
  ``exact_max_rows`` (a ``media_paths`` subset, a small library), so results there are exact.
- **approximate first pass + exact re-rank**: above that, a faiss 4-bit PQ fast-scan code
  of every row (64 bytes per row) proposes ``candidates`` rows, which are then re-scored
  exactly from the float32 matrix. Exact brute force over 3.6 M rows (1,000 h) costs
  0.3-0.8 s on 2 cores, memory-bound; the fast-scan pass ~20 ms. Only the choice of
  candidates is approximate: every returned score is exact. Rows added after the code was
  built are searched exactly and merged, so a new file is findable at once.

The code is built by ``build_ann()`` (seconds to a minute for 1,000 h; the caller runs it
in a background thread after loading); until then every search is exact. Without faiss
installed every search is exact.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from workers.search.ranking import top_k

log = logging.getLogger(__name__)

EXACT_MAX_ROWS = 150_000  # about 42 h of footage: brute force stays around 30 ms on 2 cores
ANN_MIN_ROWS = 150_000
SPILL_ROWS = 150_000  # above this many rows, rows are float16 in a memory-mapped file
_CHUNK = 65_536  # rows converted from float16 at a time (a few MB: stays in cache)
CANDIDATES = 2000
PQ_SUBQUANTIZERS = 128  # 4 dims per 4-bit code for 512-d: 64 bytes per row
TRAIN_ROWS = 50_000


@dataclass(frozen=True)
class Hit:
    hash_str: str
    frame_idx: int
    time_seconds: float
    score: float


class _Ann:
    """PQ fast-scan codes of rows [0, rows) as they were at build time."""

    def __init__(self, matrix: np.ndarray, generation: int):
        import faiss

        # One OpenMP thread: the build runs beside searches (and other work) on few cores,
        # where OpenMP's spinning threads make it many times slower, not faster.
        faiss.omp_set_num_threads(1)
        dim = matrix.shape[1]
        subq = PQ_SUBQUANTIZERS if dim % PQ_SUBQUANTIZERS == 0 else next(
            m for m in (64, 32, 16, 8, 4, 2, 1) if dim % m == 0)
        index = faiss.IndexPQFastScan(dim, subq, 4, faiss.METRIC_INNER_PRODUCT)
        step = max(1, len(matrix) // TRAIN_ROWS)
        index.train(np.ascontiguousarray(matrix[::step][:TRAIN_ROWS], dtype=np.float32))
        for start in range(0, len(matrix), 200_000):
            index.add(np.ascontiguousarray(matrix[start:start + 200_000], dtype=np.float32))
        self.index = index
        self.rows = len(matrix)
        self.generation = generation

    def candidates(self, query: np.ndarray, count: int) -> np.ndarray:
        import faiss

        faiss.omp_set_num_threads(1)  # one query per search thread: parallelism is across searches
        _, ids = self.index.search(query.reshape(1, -1), min(count, self.rows))
        ids = ids[0]
        return ids[ids >= 0]

    @property
    def nbytes(self) -> int:
        return int(self.index.ntotal * self.index.code_size)


class SearchIndex:
    """Frame embeddings of many files, keyed by ``hash_str``; see the module docstring."""

    def __init__(self, dim: int | None = None, exact_max_rows: int = EXACT_MAX_ROWS,
                 ann_min_rows: int = ANN_MIN_ROWS, candidates: int = CANDIDATES, spill_rows: int = SPILL_ROWS,
                 spill_dir: str | None = None):
        self.dim = dim
        self.exact_max_rows, self.ann_min_rows, self.candidates = exact_max_rows, ann_min_rows, candidates
        self.spill_rows, self.spill_dir = spill_rows, spill_dir
        self._lock = threading.RLock()
        self._emb = np.zeros((0, dim or 0), dtype=np.float32)
        self._file = np.zeros(0, dtype=np.int32)  # file ordinal of each row, -1 once removed
        self._frame = np.zeros(0, dtype=np.int32)
        self._time = np.zeros(0, dtype=np.float32)
        self._n = 0
        self._files: dict[str, tuple[int, int, int]] = {}  # hash -> (ordinal, start, stop)
        self._hash_of: list[str] = []
        self._dead = 0
        self._generation = 0  # bumped when rows move (compaction): an older ANN is void
        self._ann: _Ann | None = None
        self._building = False
        self._sample_cache: tuple[tuple, np.ndarray] | None = None

    # --- contents ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._n - self._dead

    def __contains__(self, hash_str: str) -> bool:
        return hash_str in self._files

    def hashes(self) -> list[str]:
        return list(self._files)

    def frames(self, hash_str: str) -> int:
        entry = self._files.get(hash_str)
        return 0 if entry is None else entry[2] - entry[1]

    def embeddings(self, hash_str: str) -> np.ndarray:
        """A read-only view of one file's rows (e.g. the reference frame of /search/frame)."""
        _, start, stop = self._files[hash_str]
        view = self._emb[start:stop]
        view.flags.writeable = False
        return view

    @property
    def spilled(self) -> bool:
        """True when the rows live in a memory-mapped file (float16), not in memory."""
        return isinstance(self._emb, np.memmap)

    def memory_bytes(self) -> int:
        """What the index holds in its own memory (the rows' file pages, when spilled, are
        the page cache's to keep or drop)."""
        ann = self._ann.nbytes if self._ann is not None else 0
        rows = 0 if self.spilled else self._emb.nbytes
        return int(rows + self._file.nbytes + self._frame.nbytes + self._time.nbytes + ann)

    def _new_matrix(self, rows: int) -> np.ndarray:
        if rows <= self.spill_rows:
            return np.empty((rows, self.dim), dtype=np.float32)
        # An unlinked temporary file: it goes away with the process, whatever happens.
        with tempfile.TemporaryFile(prefix="sightline-index-", dir=self.spill_dir) as handle:
            handle.truncate(rows * self.dim * 2)
            return np.memmap(handle, dtype=np.float16, mode="r+", shape=(rows, self.dim))

    def _dot(self, start: int, stop: int, query: np.ndarray) -> np.ndarray:
        """Scores of rows [start, stop); float16 rows are converted a chunk at a time."""
        if self._emb.dtype == np.float32:
            return self._emb[start:stop] @ query
        out = np.empty(stop - start, dtype=np.float32)
        for first in range(start, stop, _CHUNK):
            last = min(stop, first + _CHUNK)
            out[first - start:last - start] = self._emb[first:last].astype(np.float32) @ query
        return out

    def _gather_dot(self, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        if self._emb.dtype == np.float32:
            return self._emb[rows] @ query
        out = np.empty(len(rows), dtype=np.float32)
        for first in range(0, len(rows), _CHUNK):
            out[first:first + _CHUNK] = self._emb[rows[first:first + _CHUNK]].astype(np.float32) @ query
        return out

    def reserve(self, rows: int, dim: int | None = None) -> None:
        """Make room for ``rows`` more frames in one allocation (a loader that knows the frame
        counts up front avoids the growth copies, which briefly need 2.5x the memory)."""
        with self._lock:
            if self.dim is None:
                if dim is None:
                    raise ValueError("reserve on an empty index needs the embedding dimension")
                self.dim = int(dim)
                self._emb = np.zeros((0, self.dim), dtype=np.float32)
            self._reserve(rows, exact=True)

    def _reserve(self, extra: int, exact: bool = False) -> None:
        need = self._n + extra
        if need <= len(self._emb):
            return
        capacity = need if exact else max(need, int(len(self._emb) * 1.5), 1024)
        grown = self._new_matrix(capacity)
        for first in range(0, self._n, _CHUNK):
            grown[first:min(self._n, first + _CHUNK)] = self._emb[first:min(self._n, first + _CHUNK)]
        self._emb = grown
        for name, dtype in (("_file", np.int32), ("_frame", np.int32), ("_time", np.float32)):
            grown = np.empty(capacity, dtype=dtype)
            grown[:self._n] = getattr(self, name)[:self._n]
            setattr(self, name, grown)

    def add(self, hash_str: str, embeddings: np.ndarray, timestamps: Iterable[float] | None = None) -> None:
        """Add (or replace) one file's frames: row i is frame_idx i on the 1 fps grid.

        ``embeddings``: (N, d) float16/float32 unit rows; ``timestamps``: N seconds (default i).
        """
        emb = np.asarray(embeddings)
        if emb.ndim != 2 or emb.shape[0] == 0:
            raise ValueError(f"{hash_str}: embeddings must be a non-empty (frames, dim) matrix, got {emb.shape}")
        if not np.issubdtype(emb.dtype, np.floating):
            raise ValueError(f"{hash_str}: embeddings must be floating point, got {emb.dtype}")
        times = (np.arange(len(emb), dtype=np.float32) if timestamps is None
                 else np.asarray(list(timestamps), dtype=np.float32))
        if times.shape != (len(emb),):
            raise ValueError(f"{hash_str}: {len(times)} timestamps for {len(emb)} frames")
        emb = emb.astype(np.float32)
        if not np.all(np.isfinite(emb)):
            raise ValueError(f"{hash_str}: embeddings contain NaN or infinite values")
        with self._lock:
            if self.dim is None or (self._n == 0 and emb.shape[1] != self.dim):
                self.dim = emb.shape[1]  # an empty index takes the first file's dimension
                self._emb = np.zeros((0, self.dim), dtype=np.float32)
            if emb.shape[1] != self.dim:
                raise ValueError(f"{hash_str}: embeddings have {emb.shape[1]} dimensions, the index {self.dim}: "
                                 "all loaded files must come from one visual model")
            self.remove(hash_str)
            self._reserve(len(emb))
            start, stop = self._n, self._n + len(emb)
            ordinal = len(self._hash_of)
            self._hash_of.append(hash_str)
            self._emb[start:stop] = emb
            self._file[start:stop] = ordinal
            self._frame[start:stop] = np.arange(len(emb), dtype=np.int32)
            self._time[start:stop] = times
            self._n = stop
            self._files[hash_str] = (ordinal, start, stop)

    def remove(self, hash_str: str) -> bool:
        """Drop one file's frames; returns whether it was there. Rows are reclaimed lazily."""
        with self._lock:
            entry = self._files.pop(hash_str, None)
            if entry is None:
                return False
            _, start, stop = entry
            self._file[start:stop] = -1
            self._dead += stop - start
            if self._dead > max(self._n // 4, 50_000) or not self._files:
                self._compact()
            return True

    def clear(self) -> None:
        with self._lock:
            self.__init__(self.dim, self.exact_max_rows, self.ann_min_rows, self.candidates, self.spill_rows,
                          self.spill_dir)

    def _compact(self) -> None:
        keep = np.flatnonzero(self._file[:self._n] >= 0)
        emb = self._new_matrix(len(keep))
        for first in range(0, len(keep), _CHUNK):
            emb[first:first + _CHUNK] = self._emb[keep[first:first + _CHUNK]]
        self._emb = emb
        for name in ("_file", "_frame", "_time"):
            setattr(self, name, getattr(self, name)[:self._n][keep].copy())
        self._n = len(keep)
        self._dead = 0
        # Surviving rows keep their order, so each file stays one contiguous run.
        by_start = sorted(self._files.items(), key=lambda item: item[1][1])
        self._hash_of = [hash_str for hash_str, _ in by_start]
        self._files = {}
        position = 0
        for ordinal, (hash_str, (_, start, stop)) in enumerate(by_start):
            self._files[hash_str] = (ordinal, position, position + stop - start)
            self._file[position:position + stop - start] = ordinal
            position += stop - start
        self._generation += 1
        self._ann = None

    # --- the approximate first pass -------------------------------------------------------------

    def build_ann(self, force: bool = False) -> bool:
        """Build the fast-scan code over the current rows (slow: call it off the request path).

        Returns False when faiss is missing or the index is too small to need one.
        """
        try:
            import faiss  # noqa: F401
        except ImportError:
            return False
        with self._lock:
            if self._dead:
                self._compact()
            if self._n < self.ann_min_rows and not force:
                return False
            matrix, generation = self._emb[:self._n], self._generation
        ann = _Ann(matrix, generation)  # rows below _n are never rewritten in place, only by compaction
        with self._lock:
            if self._generation != generation:
                return False
            self._ann = ann
        return True

    def build_ann_in_background(self) -> threading.Thread | None:
        """Start ``build_ann`` in a daemon thread when the index is big enough and the current
        code is missing or misses more than a tenth of the rows; searches stay exact meanwhile."""
        with self._lock:
            live = self._n - self._dead
            stale = self._ann is None or (self._n - self._ann.rows) > live // 10 or self._dead > live // 10
            if live < self.ann_min_rows or not stale or self._building:
                return None
            self._building = True

        def run():
            try:
                self.build_ann()
            except Exception:  # a failed build leaves exact search in place
                log.exception("building the approximate search index failed")
            finally:
                self._building = False

        thread = threading.Thread(target=run, name="search-index-ann", daemon=True)
        thread.start()
        return thread

    @property
    def ann_rows(self) -> int:
        return self._ann.rows if self._ann is not None else 0

    # --- search ----------------------------------------------------------------------------------

    def _scope(self, hash_filter: Iterable[str] | None, frame_mask: Mapping[str, Iterable[int]] | None):
        """The files in scope, each with its allowed frame indices (None: all)."""
        names = list(self._files) if hash_filter is None else [h for h in dict.fromkeys(hash_filter)
                                                                 if h in self._files]
        scope = []
        for hash_str in names:
            allowed = None
            if frame_mask is not None:
                if hash_str not in frame_mask:
                    continue
                ordinal, start, stop = self._files[hash_str]
                allowed = np.unique(np.asarray(list(frame_mask[hash_str]), dtype=np.int64))
                allowed = allowed[(allowed >= 0) & (allowed < stop - start)]
                if allowed.size == 0:
                    continue
            scope.append((hash_str, allowed))
        return scope

    def sample(self, count: int = 8192, hash_filter: Iterable[str] | None = None) -> np.ndarray:
        """Evenly spaced rows of the files in scope (for the score standardisation)."""
        with self._lock:
            spans = [self._files[h][1:] for h, _ in self._scope(hash_filter, None)]
            total = sum(stop - start for start, stop in spans)
            if total == 0:
                return np.zeros((0, self.dim or 0), dtype=np.float32)
            if hash_filter is None and not self._dead:
                # Every search of the whole library standardises against the same rows: gathered
                # from a spilled index they cost ~12 ms a search at 3.6 M rows (8192 scattered
                # pages, then float16 → float32), so they are kept until the rows change.
                key = (self._generation, self._n, count, id(self._emb))
                if self._sample_cache is None or self._sample_cache[0] != key:
                    rows = self._emb[:self._n][np.linspace(0, self._n - 1, min(count, self._n)).astype(np.int64)]
                    rows = np.asarray(rows, dtype=np.float32)
                    rows.flags.writeable = False
                    self._sample_cache = (key, rows)
                return self._sample_cache[1]
            rows = np.concatenate([np.arange(start, stop) for start, stop in spans])
            return self._emb[rows[np.linspace(0, total - 1, min(count, total)).astype(np.int64)]]

    def search(self, query_vec: np.ndarray, k: int, hash_filter: Iterable[str] | None = None,
               frame_mask: Mapping[str, Iterable[int]] | None = None, offset: float = 0.0,
               exact: bool = False) -> list[Hit]:
        """The ``k`` rows with the highest ``row · query_vec − offset``, best first.

        ``hash_filter``: only these files (None: all). ``frame_mask``: allowed frame indices per
        file; files missing from it are left out (the people filter). ``exact``: never the
        approximate first pass (what recall is measured against).
        """
        query = np.asarray(query_vec, dtype=np.float32).reshape(-1)
        if self.dim is not None and query.shape[0] != self.dim:
            raise ValueError(f"query vector has {query.shape[0]} dimensions, the index {self.dim}")
        if k <= 0:
            return []
        with self._lock:
            scope = self._scope(hash_filter, frame_mask)
            rows_in_scope = sum(
                (self._files[h][2] - self._files[h][1]) if allowed is None else allowed.size for h, allowed in scope)
            if rows_in_scope == 0:
                return []
            rows, scores = None, None
            if not exact and self._ann is not None and rows_in_scope > self.exact_max_rows:
                rows, scores = self._search_ann(query, k, scope, rows_in_scope)
            if rows is None:
                rows, scores = self._search_exact(query, k, scope, whole=hash_filter is None and frame_mask is None)
            return [Hit(self._hash_of[self._file[r]], int(self._frame[r]), float(self._time[r]),
                        float(s) - offset) for r, s in zip(rows, scores, strict=True)]

    def _search_exact(self, query: np.ndarray, k: int, scope, whole: bool):
        if whole:
            scores = self._dot(0, self._n, query)
            if self._dead:
                scores[self._file[:self._n] < 0] = -np.inf
            best = top_k(scores, k)
            return best, scores[best]
        # Whole files next to each other in row order are scored in one mat-vec: fewer, larger
        # BLAS calls (each call has a fixed threading cost that dominates for short files).
        spans: list[tuple[int, int]] = []
        picked: list[np.ndarray] = []
        for hash_str, allowed in scope:
            _, start, stop = self._files[hash_str]
            if allowed is not None:
                picked.append(start + allowed)
            elif spans and spans[-1][1] == start:
                spans[-1] = (spans[-1][0], stop)
            else:
                spans.append((start, stop))
        row_parts = [np.arange(start, stop) for start, stop in spans]
        score_parts = [self._dot(start, stop, query) for start, stop in spans]
        if picked:
            rows = np.concatenate(picked)
            row_parts.append(rows)
            score_parts.append(self._gather_dot(rows, query))
        rows = np.concatenate(row_parts)
        scores = np.concatenate(score_parts)
        best = top_k(scores, k)
        return rows[best], scores[best]

    def _allowed_rows(self, rows: np.ndarray, scope) -> np.ndarray:
        keep = np.zeros(len(rows), dtype=bool)
        file_of = self._file[rows]
        for hash_str, allowed in scope:
            ordinal, start, _ = self._files[hash_str]
            mine = file_of == ordinal
            if allowed is None:
                keep |= mine
            else:
                keep |= mine & np.isin(rows - start, allowed)
        return keep

    def _search_ann(self, query: np.ndarray, k: int, scope, rows_in_scope: int):
        ann = self._ann
        live = self._n - self._dead
        # A filtered scope keeps a fraction of the candidates: ask for proportionally more.
        want = int(max(self.candidates, 4 * k) * max(1.0, live / rows_in_scope))
        if want > ann.rows // 4:
            return None, None  # so many candidates that scanning exactly is as cheap
        rows = ann.candidates(query, want)
        if len(scope) < len(self._files) or self._dead:
            rows = rows[self._allowed_rows(rows, scope)] if len(rows) else rows
        tail = np.arange(ann.rows, self._n)  # added since the build: searched exactly
        if tail.size:
            tail = tail[self._allowed_rows(tail, scope)]
            rows = np.concatenate([rows, tail])
        if len(rows) < min(k, rows_in_scope):
            return None, None
        rows = np.sort(rows)  # the re-rank reads rows in file order when they are on disk
        scores = self._gather_dot(rows, query)
        best = top_k(scores, k)
        return rows[best], scores[best]
