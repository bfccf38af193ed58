"""The one cache of loaded models in a process (visual, speech, faces, the reframe models).

Entries are keyed by ``(kind, key, options)``: the catalogue kind, the model key and the
options the model was loaded with (device, runtime, models folder), so the same key loaded two
ways is two entries. Loading a model is slow and large, so:

- get-or-load is single-flight per entry: two threads asking for the same model at once load
  it once, while another model can load at the same time;
- each kind keeps at most ``KINDS[kind].max_loaded`` models (a worker switching speech models
  frees the previous one *before* loading the next, as it always did);
- the whole cache is bounded by an entry count and a byte budget (least recently used goes
  first), and an entry unused for ``idle_seconds`` is unloaded
  (``SIGHTLINE_MODEL_CACHE_MAX_ENTRIES`` / ``_MAX_GB`` / ``SIGHTLINE_MODEL_IDLE_SECONDS``,
  docs/settings.md; all off by default).

This is Immich's ``ModelCache`` idea (machine-learning/app/models/cache.py) without asyncio.
Torch-free and cheap to import.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from workers.engines.catalogue import FACES, SPEECH, VISUAL

REFRAME = "reframe"


@dataclass(frozen=True)
class KindPolicy:
    # How many models of this kind one process keeps loaded; 0 = no limit of its own.
    max_loaded: int
    description: str


# The model kinds a worker loads, in one table (what each keeps is the behaviour each had on its own).
KINDS: dict[str, KindPolicy] = {
    VISUAL: KindPolicy(2, "a worker serving /models/load switches keeps the previous model warm, not all"),
    SPEECH: KindPolicy(1, "one speech model; switching keys frees the previous one first"),
    FACES: KindPolicy(4, "face engines by (detector, model)"),
    REFRAME: KindPolicy(0, "dlib detectors, landmarks, embedder, Silero VAD, voice encoder: small, all kept"),
}

CacheKey = tuple[str, str, tuple]


def _freeze(options: Mapping[str, Any] | None) -> tuple:
    return tuple(sorted((name, value if isinstance(value, Hashable) else repr(value))
                        for name, value in (options or {}).items()))


@dataclass
class _Entry:
    value: Any
    size_bytes: int
    last_used: float


def _release(dropped: list) -> None:
    if dropped:
        dropped.clear()
        gc.collect()


class ModelCache:
    """Loaded models by ``(kind, key, options)``; thread-safe. ``clock`` is for tests."""

    def __init__(self, max_entries: int = 0, max_bytes: int = 0, idle_seconds: float = 0.0,
                 kinds: Mapping[str, KindPolicy] | None = None, clock: Callable[[], float] = time.monotonic,
                 reaper: bool = True):
        self.max_entries = max(0, int(max_entries))
        self.max_bytes = max(0, int(max_bytes))
        self.idle_seconds = max(0.0, float(idle_seconds))
        self.kinds = dict(KINDS if kinds is None else kinds)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._loading: dict[CacheKey, threading.Lock] = {}
        self._reaper_wanted = reaper
        self._reaper: threading.Thread | None = None

    # --- reading ----------------------------------------------------------------------------

    def get(self, kind: str, key: str, load: Callable[[], Any], options: Mapping[str, Any] | None = None,
            size_bytes: int = 0) -> Any:
        """The cached model, or ``load()``'s result, cached. ``size_bytes`` is what the model is
        expected to take (for the byte budget). An exception from ``load`` is raised and nothing
        is cached, so the next call tries again."""
        if kind not in self.kinds:
            raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(sorted(self.kinds))}")
        cache_key: CacheKey = (kind, key, _freeze(options))
        with self._lock:
            self._expire_locked()
            hit = self._hit_locked(cache_key)
            if hit is not None:
                return hit.value
            gate = self._loading.setdefault(cache_key, threading.Lock())
        with gate:
            try:
                with self._lock:
                    hit = self._hit_locked(cache_key)
                    if hit is not None:
                        return hit.value
                    # Room first: a worker switching models must not hold both at once.
                    dropped = self._make_room_locked(kind, size_bytes, keep=cache_key)
                _release(dropped)
                value = load()
                with self._lock:
                    self._entries[cache_key] = _Entry(value, max(0, int(size_bytes)), self._clock())
                    # Two different models loading at once may both have made room for one.
                    dropped = self._make_room_locked(kind, 0, keep=cache_key, adding=False)
                _release(dropped)
            finally:
                with self._lock:
                    if self._loading.get(cache_key) is gate:
                        del self._loading[cache_key]
        self._start_reaper()
        return value

    def peek(self, kind: str, key: str, options: Mapping[str, Any] | None = None) -> Any | None:
        """The cached model without loading or touching it; None when not loaded."""
        with self._lock:
            entry = self._entries.get((kind, key, _freeze(options)))
            return entry.value if entry is not None else None

    def loaded(self, kind: str | None = None) -> list[CacheKey]:
        """Keys held, least recently used first (for diagnostics and tests)."""
        with self._lock:
            return [k for k in self._entries if kind is None or k[0] == kind]

    # --- unloading --------------------------------------------------------------------------

    def clear(self, kind: str | None = None) -> int:
        """Unload every model (of ``kind``); returns how many."""
        with self._lock:
            gone = [k for k in self._entries if kind is None or k[0] == kind]
            for k in gone:
                del self._entries[k]
        if gone:
            gc.collect()
        return len(gone)

    def expire(self) -> int:
        """Unload the models idle for longer than ``idle_seconds``; returns how many."""
        with self._lock:
            gone = self._expire_locked()
        if gone:
            gc.collect()
        return gone

    # --- internals (call with self._lock held) ----------------------------------------------

    def _hit_locked(self, cache_key: CacheKey) -> _Entry | None:
        entry = self._entries.get(cache_key)
        if entry is not None:
            entry.last_used = self._clock()
            self._entries.move_to_end(cache_key)
        return entry

    def _expire_locked(self) -> int:
        if not self.idle_seconds:
            return 0
        cutoff = self._clock() - self.idle_seconds
        gone = [k for k, entry in self._entries.items() if entry.last_used < cutoff]
        for k in gone:
            del self._entries[k]
        return len(gone)

    def _make_room_locked(self, kind: str, size_bytes: int, keep: CacheKey, adding: bool = True) -> list:
        """Evict least recently used entries until one more (``adding``) of ``size_bytes`` fits.
        Returns the evicted values so the caller drops them outside the lock."""
        extra = 1 if adding else 0
        dropped = []

        def evict(candidates: list[CacheKey]) -> bool:
            for k in candidates:
                if k != keep:
                    dropped.append(self._entries.pop(k).value)
                    return True
            return False

        limit = self.kinds[kind].max_loaded
        while limit and sum(1 for k in self._entries if k[0] == kind) + extra > limit:
            if not evict([k for k in self._entries if k[0] == kind]):
                break
        while self.max_entries and len(self._entries) + extra > self.max_entries:
            if not evict(list(self._entries)):
                break
        while self.max_bytes and sum(e.size_bytes for e in self._entries.values()) + size_bytes > self.max_bytes:
            if not evict(list(self._entries)):
                break
        return dropped

    def _start_reaper(self) -> None:
        """Idle models are unloaded even when nothing asks for a model again."""
        if not (self.idle_seconds and self._reaper_wanted) or (self._reaper and self._reaper.is_alive()):
            return
        with self._lock:
            if self._reaper and self._reaper.is_alive():
                return
            self._reaper = threading.Thread(target=self._reap, name="model-cache-reaper", daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        interval = min(max(self.idle_seconds / 4, 0.5), 30.0)
        while True:
            time.sleep(interval)
            self.expire()
            with self._lock:
                if not self._entries:
                    self._reaper = None
                    return


_CACHE: ModelCache | None = None
_CACHE_LOCK = threading.Lock()


def model_cache() -> ModelCache:
    """This process's cache, bounded by the settings read when it is first used."""
    global _CACHE
    if _CACHE is None:
        with _CACHE_LOCK:
            if _CACHE is None:
                from workers.settings import load_settings

                settings = load_settings()
                _CACHE = ModelCache(max_entries=settings.model_cache_max_entries,
                                    max_bytes=gb_to_bytes(settings.model_cache_max_gb),
                                    idle_seconds=settings.model_idle_seconds)
    return _CACHE


def gb_to_bytes(size_gb: float) -> int:
    return int(max(0.0, size_gb) * 1024 ** 3)
