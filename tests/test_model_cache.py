"""The one model cache (workers/engines/cache.py): bounds, idle expiry, options in the key,
single-flight loading; and the engines really share it."""

import threading
import time

import pytest

from workers.engines.cache import KINDS, KindPolicy, ModelCache, model_cache


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _loader(name, calls):
    def load():
        calls.append(name)
        return object()
    return load


def test_each_kind_keeps_its_own_bound_and_evicts_least_recently_used():
    cache = ModelCache(reaper=False)
    calls = []
    a = cache.get("visual", "a", _loader("a", calls))
    cache.get("visual", "b", _loader("b", calls))
    assert cache.get("visual", "a", _loader("a", calls)) is a  # a is now the most recent
    cache.get("visual", "c", _loader("c", calls))  # visual keeps 2: b goes, not a
    assert [k for _, k, _ in cache.loaded("visual")] == ["a", "c"]
    assert calls == ["a", "b", "c"]
    # One speech model: switching frees the previous one, and other kinds are untouched.
    cache.get("speech", "s1", _loader("s1", calls))
    cache.get("speech", "s2", _loader("s2", calls))
    assert [k for _, k, _ in cache.loaded("speech")] == ["s2"]
    assert len(cache.loaded("visual")) == 2


def test_switching_speech_models_frees_the_old_one_before_loading():
    cache = ModelCache(reaper=False)
    cache.get("speech", "old", lambda: "old model")
    seen = []
    cache.get("speech", "new", lambda: seen.append(cache.loaded("speech")) or "new model")
    assert seen == [[]]


def test_global_entry_count_and_byte_budget():
    cache = ModelCache(max_entries=3, reaper=False, kinds={"k": KindPolicy(0, "")})
    for name in "abcd":
        cache.get("k", name, lambda name=name: name)
    assert [k for _, k, _ in cache.loaded()] == ["b", "c", "d"]

    cache = ModelCache(max_bytes=100, reaper=False, kinds={"k": KindPolicy(0, "")})
    cache.get("k", "big", lambda: 1, size_bytes=60)
    cache.get("k", "small", lambda: 2, size_bytes=30)
    cache.get("k", "more", lambda: 3, size_bytes=50)  # 140 > 100: the oldest (big) goes
    assert [k for _, k, _ in cache.loaded()] == ["small", "more"]
    cache.get("k", "huge", lambda: 4, size_bytes=500)  # over budget alone: loads, alone
    assert [k for _, k, _ in cache.loaded()] == ["huge"]


def test_idle_models_are_unloaded_and_use_keeps_them():
    clock = Clock()
    cache = ModelCache(idle_seconds=60, clock=clock, reaper=False)
    calls = []
    first = cache.get("faces", "Dlib", _loader("Dlib", calls))
    cache.get("visual", "v", _loader("v", calls))
    clock.now += 40
    assert cache.get("faces", "Dlib", _loader("Dlib", calls)) is first  # used: stays
    clock.now += 40  # v idle 80 s, Dlib 40 s
    assert cache.expire() == 1
    assert [k for _, k, _ in cache.loaded()] == ["Dlib"]
    clock.now += 61
    assert cache.get("faces", "Dlib", _loader("Dlib", calls)) is not first  # expired, loaded again
    assert calls == ["Dlib", "v", "Dlib"]


def test_the_reaper_thread_unloads_without_another_request():
    cache = ModelCache(idle_seconds=0.2)
    cache.get("visual", "v", lambda: object())
    deadline = time.monotonic() + 10
    while cache.loaded() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cache.loaded() == []


def test_options_are_part_of_the_key():
    cache = ModelCache(reaper=False)
    cpu = cache.get("faces", "Dlib", object, {"detector": "dlib"})
    other = cache.get("faces", "Dlib", object, {"detector": "opencv"})
    assert cpu is not other
    assert cache.get("faces", "Dlib", object, {"detector": "dlib"}) is cpu
    assert cache.peek("faces", "Dlib", {"detector": "opencv"}) is other
    assert cache.peek("faces", "Dlib") is None


def test_two_threads_asking_at_once_load_once_and_a_failure_is_not_cached():
    cache = ModelCache(reaper=False)
    calls = []
    started = threading.Event()

    def slow():
        calls.append(1)
        started.set()
        time.sleep(0.3)
        return object()

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("visual", "v", slow))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1
    assert len(results) == 4 and all(r is results[0] for r in results)

    def broken():
        raise OSError("weights are truncated")

    with pytest.raises(OSError, match="truncated"):
        cache.get("speech", "s", broken)
    assert cache.get("speech", "s", lambda: "fixed") == "fixed"


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown model kind"):
        ModelCache(reaper=False).get("llm", "x", object)
    assert set(KINDS) >= {"visual", "speech", "faces", "reframe"}


def test_face_engine_and_reframe_models_live_in_the_process_cache():
    from workers.engines.faces import load_face_engine
    from workers.reframe.models import face_detector, loaded

    engine = load_face_engine("dlib", "Dlib")
    assert load_face_engine("dlib", "Dlib") is engine
    assert model_cache().peek("faces", "Dlib", {"detector": "dlib"}) is engine
    hog = face_detector("hog")
    assert face_detector("hog") is hog
    assert "face_detector:hog" in loaded()
