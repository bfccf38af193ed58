"""The query worker: low-latency tasks on the ``query`` queue (warm a model, load a cache
folder's embeddings) and the search server (tasks/search_rpc.py) that answers searches.

The query worker keeps the active visual model and the loaded embeddings in memory, so a
search costs one text encoding and one matrix product.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from celery.signals import worker_ready, worker_shutdown

from tasks import state
from tasks.celery_app import QUERY_QUEUE, celery_app
from workers.messages import FAILED, INVALID, UNAVAILABLE, Outcome, SearchQuery, hits_json

log = logging.getLogger(__name__)

# Server threads answering searches: a slow one (a frame decoded from a video) runs beside
# the text searches; the text ones share encoder passes whichever thread took them.
SEARCH_THREADS = 4


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


def answer_searches(queries: list[SearchQuery]) -> Iterator[Outcome]:
    """Visual searches, one ``Outcome`` each (its value the JSON text of the encoded matches),
    in order as each is ready; their texts share one encoder pass. Problems a user can fix are
    ``invalid``."""
    from workers.engines.base import ModelUnavailable
    from workers.search.service import SearchError, search_batch

    for result in search_batch(queries, state.loaded_generation("visual")):
        if not isinstance(result, Exception):
            yield Outcome.ok(hits_json(result))
        elif isinstance(result, SearchError | ValueError):
            yield Outcome.problem(INVALID, str(result))
        elif isinstance(result, ModelUnavailable):
            yield Outcome.problem(UNAVAILABLE, str(result))
        else:
            log.error("search failed", exc_info=result)
            yield Outcome.problem(FAILED, f"search failed: {result.__class__.__name__}: {result}")


_server = None


@worker_ready.connect
def _start_search_server(sender, **_) -> None:
    """The worker that consumes the ``query`` queue also answers searches (tasks/search_rpc.py),
    in its own process, where the models and the loaded embeddings live."""
    global _server
    if QUERY_QUEUE not in sender.app.amqp.queues.consume_from:
        return
    from tasks.search_rpc import SearchServer

    _server = SearchServer(answer_searches, threads=SEARCH_THREADS).start()
    log.info("answering searches with %d threads", SEARCH_THREADS)


@worker_shutdown.connect
def _stop_search_server(**_) -> None:
    if _server is not None:
        _server.stop()
