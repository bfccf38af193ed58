"""Visual search over loaded analysis data: the index (``index.py``) and the ranking maths
(``ranking.py``). ``visual_search`` is what the /search/text, /search/image and /search/frame
tasks call once they have embedded the query."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from workers.search.index import SearchIndex
from workers.search.ranking import EXCLUDE_WEIGHT, SIGMA_SAMPLE, combine_query, group_by_video

__all__ = ["SearchIndex", "visual_search"]


def visual_search(index: SearchIndex, text_vec: np.ndarray | None = None, image_vec: np.ndarray | None = None,
                  exclude_vecs: np.ndarray | Sequence[np.ndarray] | None = None, text_weight: float = 1.0,
                  hash_filter: Iterable[str] | None = None, frame_mask: Mapping[str, Iterable[int]] | None = None,
                  max_results: int = 50, exclude_weight: float = EXCLUDE_WEIGHT, exact: bool = False) -> list[dict]:
    """Ranked, per-video grouped matches for one query.

    ``text_vec`` / ``image_vec``: the embedded query text and reference image or frame (either
    or both); ``exclude_vecs``: embedded ``exclude`` texts (soft push-down). ``hash_filter``:
    the files of ``media_paths`` (None with ``search_all``); ``frame_mask``: allowed frame
    indices per file (people filter); ``exact``: skip the approximate first pass of a large
    index. Returns dicts with ``hash_str``, ``frame_idx`` (int),
    ``time_seconds``, ``score`` and ``original_index``, in Jumper's grouped order.
    """
    if max_results < 0:
        raise ValueError("max_results must be zero or more")
    hash_filter = None if hash_filter is None else list(hash_filter)
    sample = index.sample(SIGMA_SAMPLE, hash_filter)
    if len(sample) == 0:
        return []
    query = combine_query(sample, text=text_vec, image=image_vec, exclude=exclude_vecs,
                          text_weight=text_weight, exclude_weight=exclude_weight)
    hits = index.search(query.vector, int(max_results), hash_filter=hash_filter, frame_mask=frame_mask,
                        offset=query.offset, exact=exact)
    return group_by_video([
        {"hash_str": h.hash_str, "frame_idx": h.frame_idx, "time_seconds": h.time_seconds, "score": h.score}
        for h in hits
    ])
