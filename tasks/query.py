"""Low-latency tasks on the ``query`` queue: warm a model, embed a query, run a search.

The query worker keeps the active visual model and the loaded embeddings in memory, so a
search costs one text encoding and one matrix product.
"""

from __future__ import annotations

import logging

from tasks import state
from tasks.celery_app import celery_app
from workers.messages import FAILED, INVALID, UNAVAILABLE, Outcome, SearchQuery

log = logging.getLogger(__name__)


@celery_app.task(name="sightline.query.warm_visual")
def warm_visual(model_key: str) -> dict:
    """Load ``model_key`` into this worker; clears the loading flag the API set."""
    try:
        from workers.engines.visual import load_visual_engine

        engine = load_visual_engine(model_key)
        return {"model_key": model_key, "dim": engine.dim}
    except Exception as exc:  # noqa: BLE001 - reported to the API through Redis
        log.exception("loading %s failed", model_key)
        state.set_model_error("visual", str(exc) or exc.__class__.__name__)
        return {"model_key": model_key, "error": str(exc)}
    finally:
        state.set_model_loading("visual", None)


@celery_app.task(name="sightline.query.load")
def load(cache_dir: str, model_key: str) -> dict:
    """Read the loaded files' embeddings of ``cache_dir`` into this worker's memory."""
    from workers.search.service import sync

    entry = sync(cache_dir, model_key, state.loaded("visual", cache_dir), state.loaded_generation("visual"),
                 build_now=True)
    return {"files": len(entry.meta), "frames": len(entry.index)}


# No STARTED state: it would cost the search a second result write and wake-up of the API.
@celery_app.task(name="sightline.query.search", track_started=False)
def search(encoded_query: dict) -> dict:
    """One visual search of an encoded ``SearchQuery``; answers an encoded ``Outcome`` whose
    value is the encoded matches. Problems a user can fix are ``invalid``."""
    from workers.engines.base import ModelUnavailable
    from workers.search.service import SearchError
    from workers.search.service import search as run_search

    try:
        hits = run_search(SearchQuery.decode(encoded_query), state.loaded_generation("visual"))
        return Outcome.ok([hit.encode() for hit in hits]).encode()
    except (SearchError, ValueError) as exc:
        return Outcome.problem(INVALID, str(exc)).encode()
    except ModelUnavailable as exc:
        return Outcome.problem(UNAVAILABLE, str(exc)).encode()
    except Exception as exc:  # noqa: BLE001 - the API turns this into a clean 500
        log.exception("search failed")
        return Outcome.problem(FAILED, f"search failed: {exc.__class__.__name__}: {exc}").encode()
