"""The visual search maths, proven on hand-made embeddings whose right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from workers.search import SearchIndex, visual_search
from workers.search.ranking import EXCLUDE_WEIGHT, combine_query, group_by_video, rank_frames, top_k


def unit(*values: float) -> np.ndarray:
    vec = np.asarray(values, dtype=np.float32)
    return vec / np.linalg.norm(vec)


E1, E2, E3, E4 = np.eye(4, dtype=np.float32)


def z(matrix: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """Standardised similarity, written out independently of the code under test."""
    sims = matrix.astype(np.float64) @ vec.astype(np.float64)
    return (sims - sims.mean()) / sims.std()


def keys(matches: list[dict]) -> list[tuple[str, int]]:
    return [(m["hash_str"], m["frame_idx"]) for m in matches]


# Two "videos": a beach clip and a street clip; each row is one 1 fps frame.
BEACH = np.stack([unit(1, 0, 0, 0), unit(1, 1, 0, 0), unit(0, 1, 0, 0), unit(1, 0, 1, 0)])
STREET = np.stack([unit(0, 0, 1, 0), unit(0.9, 0, 0, 1), unit(0, 0, 0, 1)])


def flat():
    emb = np.concatenate([BEACH, STREET])
    hashes = ["beach"] * len(BEACH) + ["street"] * len(STREET)
    frames = list(range(len(BEACH))) + list(range(len(STREET)))
    return emb, hashes, frames


def loaded_index(**kwargs) -> SearchIndex:
    index = SearchIndex(**kwargs)
    index.add("beach", BEACH.astype(np.float16))
    index.add("street", STREET.astype(np.float16))
    return index


def test_text_search_ranks_frames_by_similarity_then_groups_them_by_video():
    emb, hashes, frames = flat()
    matches = rank_frames(emb, hashes, frames, text=E1, max_results=4)
    # Global ranking by cosine to E1: beach0 (1.0), street1 (0.9/1.345=0.669), beach1 (0.707), beach3 (0.707)
    # -> beach0, beach1, beach3 (tie broken by row order), street1.
    sims = emb @ E1
    assert sims[1] == pytest.approx(sims[3])
    assert keys(matches) == [("beach", 0), ("beach", 1), ("beach", 3), ("street", 1)]
    assert [m["original_index"] for m in matches] == [0, 1, 2, 3]
    # Scores are the standardised similarity of each frame.
    expected = z(emb, E1)
    assert [m["score"] for m in matches] == pytest.approx([expected[0], expected[1], expected[3], expected[5]],
                                                          abs=1e-5)


def test_grouping_orders_videos_by_best_match_and_keeps_the_global_position():
    ranked = [
        {"hash_str": "b", "frame_idx": 7, "score": 0.9},
        {"hash_str": "a", "frame_idx": 1, "score": 0.8},
        {"hash_str": "b", "frame_idx": 2, "score": 0.7},
        {"hash_str": "c", "frame_idx": 0, "score": 0.6},
        {"hash_str": "a", "frame_idx": 5, "score": 0.5},
    ]
    grouped = group_by_video(ranked)
    assert keys(grouped) == [("b", 7), ("b", 2), ("a", 1), ("a", 5), ("c", 0)]
    assert [m["original_index"] for m in grouped] == [0, 2, 1, 4, 3]
    assert sorted(grouped, key=lambda m: m["original_index"]) == [
        {**m, "original_index": i} for i, m in enumerate(ranked)]


def test_max_results_caps_the_matches():
    emb, hashes, frames = flat()
    assert len(rank_frames(emb, hashes, frames, text=E1, max_results=2)) == 2
    assert len(rank_frames(emb, hashes, frames, text=E1, max_results=100)) == len(emb)
    assert rank_frames(emb, hashes, frames, text=E1, max_results=0) == []


def test_text_weight_trades_the_text_against_the_reference_image():
    emb, hashes, frames = flat()
    image, text = E2, E3  # the image looks like beach frame 2, the text describes street frame 0
    for weight in (0.2, 1.0, 5.0):
        matches = rank_frames(emb, hashes, frames, text=text, image=image, text_weight=weight, max_results=len(emb))
        expected = z(emb, image) + weight * z(emb, text)
        by_rank = sorted(matches, key=lambda m: m["original_index"])
        assert [m["score"] for m in by_rank] == pytest.approx(sorted(expected, reverse=True), abs=1e-5)
    low = rank_frames(emb, hashes, frames, text=text, image=image, text_weight=0.2, max_results=1)
    high = rank_frames(emb, hashes, frames, text=text, image=image, text_weight=5.0, max_results=1)
    assert keys(low) == [("beach", 2)]
    assert keys(high) == [("street", 0)]


def test_exclude_pushes_matching_frames_down_without_removing_them():
    # Query "beach" (E1); exclude "water" (E3). Frame 0 is a beach with water, frame 1 a dry
    # beach, frames 2 and 3 something else.
    emb = np.stack([unit(1, 0, 0.4, 0), unit(1, 0.6, 0, 0), unit(0, 1, 0, 0), unit(0, 0, 0, 1)])
    hashes, frames = ["v"] * 4, [0, 1, 2, 3]
    plain = rank_frames(emb, hashes, frames, text=E1, max_results=4)
    assert keys(plain)[0] == ("v", 0)  # the watery beach is the best plain match
    pushed = rank_frames(emb, hashes, frames, text=E1, exclude=[E3], max_results=4)
    assert keys(pushed)[0] == ("v", 1)  # the dry beach now wins ...
    assert ("v", 0) in keys(pushed)  # ... and the watery beach is still there, not filtered
    assert keys(pushed)[1] == ("v", 0)  # still above the frames that do not match the query
    expected = z(emb, E1) - EXCLUDE_WEIGHT * z(emb, E3)
    assert sorted(m["score"] for m in pushed) == pytest.approx(sorted(expected), abs=1e-5)


def test_several_excludes_share_the_push_down():
    emb = np.stack([unit(1, 0, 0.5, 0.5), unit(1, 0.3, 0, 0), unit(0, 1, 0, 0), unit(0, 0, 1, 1)])
    query = combine_query(emb, text=E1, exclude=[E3, E4])
    expected = z(emb, E1) - EXCLUDE_WEIGHT * (z(emb, E3) + z(emb, E4)) / 2
    assert query.scores(emb) == pytest.approx(expected, abs=1e-5)


def test_the_people_mask_keeps_only_allowed_frames():
    emb, hashes, frames = flat()
    allowed = np.zeros(len(emb), dtype=bool)
    allowed[[2, 4]] = True  # beach frame 2 and street frame 0 show the person
    matches = rank_frames(emb, hashes, frames, text=E1, allowed=allowed, max_results=10)
    assert sorted(keys(matches)) == [("beach", 2), ("street", 0)]


def test_top_k_breaks_ties_by_position_and_ignores_masked_rows():
    scores = np.array([0.5, 0.9, 0.5, -np.inf, 0.9, 0.1])
    assert top_k(scores, 3).tolist() == [1, 4, 0]
    assert top_k(scores, 10).tolist() == [1, 4, 0, 2, 5]
    assert top_k(np.full(3, -np.inf), 2).tolist() == []


def test_a_query_from_another_model_is_refused():
    emb, hashes, frames = flat()
    with pytest.raises(ValueError, match="dimensions"):
        rank_frames(emb, hashes, frames, text=np.ones(8, dtype=np.float32))
    with pytest.raises(ValueError, match="text query, an image or a frame"):
        rank_frames(emb, hashes, frames)


# --- the index ------------------------------------------------------------------------------


def test_index_search_equals_the_plain_ranking():
    emb, hashes, frames = flat()
    index = loaded_index()
    for kwargs in ({"text_vec": E1}, {"text_vec": E3, "image_vec": E2, "text_weight": 2.0},
                   {"text_vec": E1, "exclude_vecs": [E3]}):
        got = visual_search(index, max_results=5, **kwargs)
        want = rank_frames(emb.astype(np.float16).astype(np.float32), hashes, frames, max_results=5,
                           text=kwargs["text_vec"], image=kwargs.get("image_vec"),
                           exclude=kwargs.get("exclude_vecs"), text_weight=kwargs.get("text_weight", 1.0))
        assert keys(got) == keys(want)
        assert [m["original_index"] for m in got] == [m["original_index"] for m in want]


def test_index_filters_by_file_and_by_frame_mask():
    index = loaded_index()
    only_street = visual_search(index, text_vec=E1, hash_filter=["street"], max_results=10)
    assert {m["hash_str"] for m in only_street} == {"street"}
    assert keys(only_street)[0] == ("street", 1)
    masked = visual_search(index, text_vec=E1, frame_mask={"beach": [3], "street": [0, 2]}, max_results=10)
    assert sorted(keys(masked)) == [("beach", 3), ("street", 0), ("street", 2)]
    assert visual_search(index, text_vec=E1, hash_filter=["not-loaded"]) == []
    assert visual_search(index, text_vec=E1, frame_mask={"beach": [99]}) == []


def test_index_remove_and_replace_a_file():
    index = loaded_index()
    assert index.remove("beach") and not index.remove("beach")
    assert {m["hash_str"] for m in visual_search(index, text_vec=E1, max_results=10)} == {"street"}
    index.add("street", BEACH, timestamps=[0.0, 1.0, 2.0, 3.5])  # re-analysed: replaces the old rows
    matches = visual_search(index, text_vec=E1, max_results=10)
    assert len(matches) == len(BEACH) and index.frames("street") == len(BEACH)
    assert matches[0]["frame_idx"] == 0 and matches[-1]["time_seconds"] in (1.0, 2.0, 3.5)


def test_index_refuses_bad_embeddings():
    index = loaded_index()
    with pytest.raises(ValueError, match="dimensions"):
        index.add("other-model", np.ones((3, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        index.add("broken", np.full((2, 4), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="timestamps"):
        index.add("short", BEACH, timestamps=[0.0])
    assert set(index.hashes()) == {"beach", "street"}  # a bad file fails alone


def _clustered(rows: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dim)).astype(np.float32)
    data = centres[rng.integers(0, 50, rows)] + 0.5 * rng.standard_normal((rows, dim)).astype(np.float32)
    return data / np.linalg.norm(data, axis=1, keepdims=True)


def test_large_indexes_rerank_approximate_candidates_exactly():
    pytest.importorskip("faiss")
    data = _clustered(40_000)
    index = SearchIndex(exact_max_rows=1_000, ann_min_rows=10_000, candidates=400)
    for start in range(0, len(data), 4_000):
        index.add(f"file{start:05d}", data[start:start + 4_000])
    exact = SearchIndex(exact_max_rows=10**9)
    for name in index.hashes():
        exact.add(name, index.embeddings(name))
    assert index.build_ann() and index.ann_rows == len(data)
    queries = _clustered(10, seed=1)
    found = 0
    for query in queries:
        got = index.search(query, 20)
        want = exact.search(query, 20)
        found += len({(h.hash_str, h.frame_idx) for h in got} & {(h.hash_str, h.frame_idx) for h in want})
        for hit in got:  # candidates are approximate, scores are not
            row = index.embeddings(hit.hash_str)[hit.frame_idx]
            assert hit.score == pytest.approx(float(row @ query), abs=1e-5)
    assert found / (20 * len(queries)) >= 0.9
    # A file added after the build is searched exactly and found at once.
    index.add("fresh", queries[:1])
    assert index.search(queries[0], 1)[0].hash_str == "fresh"


def test_a_spilled_index_answers_like_one_in_memory_and_holds_less():
    pytest.importorskip("faiss")
    data = _clustered(12_000).astype(np.float16)  # what the files on disk hold
    memory = SearchIndex(exact_max_rows=1_000, ann_min_rows=5_000, candidates=400, spill_rows=10**9)
    spilled = SearchIndex(exact_max_rows=1_000, ann_min_rows=5_000, candidates=400, spill_rows=2_000)
    for index in (memory, spilled):
        for start in range(0, len(data), 1_500):
            index.add(f"file{start:05d}", data[start:start + 1_500])
        index.remove("file01500")  # compaction keeps the rows where they belong
        assert index.build_ann()
    assert spilled.spilled and not memory.spilled
    assert spilled.memory_bytes() < memory.memory_bytes() / 4
    for query in _clustered(5, seed=2):
        for kwargs in ({}, {"exact": True}, {"hash_filter": ["file00000", "file06000"]}):
            got, want = spilled.search(query, 20, **kwargs), memory.search(query, 20, **kwargs)
            assert [(h.hash_str, h.frame_idx) for h in got] == [(h.hash_str, h.frame_idx) for h in want]
            assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)
