"""Concurrent searches share text-encoder passes, and each still gets its own text's vector."""

import threading
import time

import numpy as np

from workers.search.service import TextBatcher


def test_concurrent_texts_share_passes_and_keep_their_own_vectors():
    calls = []

    def encode(texts):
        calls.append(list(texts))
        time.sleep(0.05)  # a busy encoder: the others queue up meanwhile
        if "bad" in texts:
            raise ValueError("bad text")
        return np.stack([np.full(4, float(t.split()[-1])) for t in texts])

    batcher = TextBatcher(encode)
    results, errors = {}, {}

    def search(i):
        text = "bad" if i == 5 else f"query {i}"
        try:
            results[i] = batcher.embed(text)
        except ValueError as exc:
            errors[i] = exc

    threads = [threading.Thread(target=search, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(errors) == {5}  # a bad text fails its own search only
    assert all(results[i][0] == i for i in results) and len(results) == 7
    assert sum(len(c) > 1 for c in calls) >= 1  # some pass encoded several texts
    assert batcher.embed("query 3")[0] == 3.0  # an idle encoder answers a lone text at once
