"""Visual search latency over synthetic loaded embeddings: 100 h and 1,000 h of footage.

    python bench/search.py                 # both sizes (needs ~10 GB RAM for 1,000 h)
    python bench/search.py --hours 100     # one size

Prints one JSON object. Latency is the whole ``visual_search`` call the query worker
makes after embedding the text (sampling for the score scale, combining, the index
search, per-video grouping); text encoding is excluded. Embeddings are synthetic but
shaped like real ones: 1 fps shots of ~12 near-identical frames around a few thousand
topics, every frame sharing an "image modality" offset, and text queries that share a
different one (CLIP's modality gap), 512-d, loaded from float16 like the files on disk.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workers.search import SearchIndex, visual_search  # noqa: E402

DIM = 512
FILE_SECONDS = 1800  # 30-minute files
SHOT = 12
TOPICS = 3000


def _unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    return x


class Footage:
    """Deterministic synthetic frame embeddings, one file at a time."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.image_offset = _unit(rng.standard_normal(DIM).astype(np.float32))
        self.text_offset = _unit(rng.standard_normal(DIM).astype(np.float32))
        self.topics = _unit(rng.standard_normal((TOPICS, DIM)).astype(np.float32))
        self.noise = _unit(rng.standard_normal((65536, DIM)).astype(np.float32))
        self.rng = rng

    def file(self, frames: int) -> np.ndarray:
        rng, shots = self.rng, frames // SHOT + 1
        content = _unit(self.topics[rng.integers(0, TOPICS, shots)]
                        + 0.9 * self.noise[rng.integers(0, len(self.noise), shots)])
        frame = np.repeat(content, SHOT, axis=0)[:frames] + 0.3 * self.noise[rng.integers(0, len(self.noise), frames)]
        return _unit(0.9 * self.image_offset + _unit(frame)).astype(np.float16)

    def texts(self, count: int) -> np.ndarray:
        topics = self.topics[self.rng.integers(0, TOPICS, count)]
        wording = 0.8 * self.noise[self.rng.integers(0, len(self.noise), count)]
        return _unit(0.9 * self.text_offset + _unit(topics + wording))


def rss_gb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1e6, 2)
    return 0.0


def percentiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "queries": len(ms)}


def timed(index: SearchIndex, queries: np.ndarray, **kwargs) -> tuple[dict, list[list[dict]]]:
    visual_search(index, text_vec=queries[0], **kwargs)  # warm-up
    seconds, results = [], []
    for query in queries:
        start = time.perf_counter()
        results.append(visual_search(index, text_vec=query, **kwargs))
        seconds.append(time.perf_counter() - start)
    return percentiles(seconds), results


def recall(got: list[list[dict]], want: list[list[dict]]) -> float:
    hits = sum(len({(m["hash_str"], m["frame_idx"]) for m in g} & {(m["hash_str"], m["frame_idx"]) for m in w})
               for g, w in zip(got, want, strict=True))
    return round(hits / max(1, sum(len(w) for w in want)), 4)


def run(hours: int, queries: int, exact_queries: int) -> dict:
    frames = hours * 3600
    footage = Footage()
    index = SearchIndex()
    index.reserve(frames, DIM)
    started = time.perf_counter()
    files = []
    for number in range(0, frames, FILE_SECONDS):
        name = f"{number // FILE_SECONDS:016x}"
        index.add(name, footage.file(min(FILE_SECONDS, frames - number)))
        files.append(name)
    load_s = time.perf_counter() - started
    texts = footage.texts(queries)
    excludes = footage.texts(3)
    out: dict = {"hours": hours, "frames": len(index), "files": len(files), "dim": DIM,
                 "load_generate_and_add_s": round(load_s, 1)}

    exact_stats, exact_results = timed(index, texts[:exact_queries], max_results=50)
    out["exact_all_frames"] = exact_stats
    subset = files[:20]  # a media_paths filter of 20 files (10 h): always exact
    out["exact_media_paths_20_files"], _ = timed(index, texts, max_results=50, hash_filter=subset)

    started = time.perf_counter()
    built = index.build_ann()
    out["ann_build_s"] = round(time.perf_counter() - started, 1) if built else None
    if built:
        out["ann_all_frames"], ann_results = timed(index, texts, max_results=50)
        out["ann_recall_at_50_vs_exact"] = recall(ann_results[:exact_queries], exact_results)
        out["ann_with_3_excludes"], _ = timed(index, texts, max_results=50, exclude_vecs=excludes)
    out["index_memory_gb"] = round(index.memory_bytes() / 1e9, 2)
    out["process_rss_gb"] = rss_gb()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--exact-queries", type=int, default=10)
    args = parser.parse_args()
    report = {"cpu_threads": len(os.sched_getaffinity(0)), "runs": []}
    try:
        import faiss

        report["faiss"] = faiss.__version__
    except ImportError:
        report["faiss"] = None
    for hours in args.hours:
        report["runs"].append(run(hours, args.queries, args.exact_queries))
        print(json.dumps(report["runs"][-1]), file=sys.stderr, flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
