"""Searches go from the API to a query worker over two Redis lists, not through Celery.

A search is the one call where the user waits on the answer, and a Celery round trip (a
broker message, a result-backend write and the API's pub/sub result drainer) cost the API
process more CPU than the search itself (docs/visual-search.md, "Through HTTP"). Here the
API pushes the encoded ``SearchQuery`` and the name of a reply list onto one request list;
a query worker's server threads pop it (taking every other request already waiting, so one
text-encoder pass serves them all), and push the encoded ``Outcome`` onto the reply list,
which expires if nobody reads it; a search's matches follow as their JSON text, which the
API passes to the client as it is. Only Redis lies between the two, so the API and the query
workers may run on different machines, exactly as with Celery; long work (loading data,
warming a model) stays a Celery task.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from functools import lru_cache

import redis

from workers.messages import FAILED, Outcome, SearchQuery

log = logging.getLogger(__name__)

REQUESTS = "sightline:search:requests"
REPLY_PREFIX = "sightline:search:reply:"
REPLY_TTL_SECONDS = 60
MAX_BATCH = 16
POP_TIMEOUT_SECONDS = 1  # how often an idle server thread checks whether it should stop


@lru_cache(maxsize=8)
def _client(url: str, wait_seconds: float) -> redis.Redis:
    # The socket timeout outlasts the longest blocking pop, which would otherwise read as a
    # dead Redis; connecting fails fast so a missing Redis is a quick 503.
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=wait_seconds + 10,
                                health_check_interval=30)


def client(wait_seconds: float, url: str | None = None) -> redis.Redis:
    from workers.settings import redis_url

    return _client(url or redis_url(), float(wait_seconds))


# --- the API side -------------------------------------------------------------------------


def call(query: SearchQuery, timeout: float, url: str | None = None) -> Outcome | None:
    """The query worker's answer to ``query``, or None when none answered within ``timeout``.
    A successful outcome's value is the JSON text (bytes) of the encoded matches, as the worker
    wrote it: the API hands it to the client without decoding and re-encoding ~1 MB of base64.

    Under eventlet (the API process) the blocking pop is green: other requests go on meanwhile.
    """
    r = client(timeout, url)
    reply = REPLY_PREFIX + uuid.uuid4().hex
    request = json.dumps({"reply": reply, "query": query.encode()}, separators=(",", ":"))
    r.lpush(REQUESTS, request)
    answer = r.brpop([reply], timeout=max(1, round(timeout)))
    if answer is None:
        # Nobody took it: take it back, so a worker that starts later does not run a search
        # whose caller is gone. (If a worker took it just now, its reply simply expires.)
        r.lrem(REQUESTS, 1, request)
        return None
    header = json.loads(answer[1])
    value = r.rpop(reply) if header.pop("value_follows", False) else header.get("value")
    return Outcome.decode({**header, "value": value})


# --- the query worker side ----------------------------------------------------------------

Handler = Callable[[list[SearchQuery]], Iterable[Outcome]]


class SearchServer:
    """``threads`` threads answering search requests with ``handle`` (a batch of queries in,
    one outcome per query out, in order, as each is ready). Each thread pops one request, blocking, then up to
    ``MAX_BATCH - 1`` more that are already waiting; several threads let a slow search (a frame
    decoded from a video) run beside the text searches instead of in front of them."""

    def __init__(self, handle: Handler, threads: int = 4, url: str | None = None):
        self.handle = handle
        self.redis = client(POP_TIMEOUT_SECONDS, url)
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._serve, name=f"search-rpc-{i}", daemon=True)
                        for i in range(threads)]

    def start(self) -> SearchServer:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout)

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                self._answer_one_batch()
            except redis.exceptions.RedisError as exc:
                log.warning("search server: Redis unavailable (%s); retrying", exc)
                self.stopping.wait(1.0)
            except Exception:  # noqa: BLE001 - a server thread must outlive any one batch
                log.exception("search server: a batch failed")

    def _answer_one_batch(self) -> None:
        first = self.redis.brpop([REQUESTS], timeout=POP_TIMEOUT_SECONDS)
        if first is None:
            return
        replies, queries = [], []
        for item in [first[1]] + self._waiting():
            try:
                request = json.loads(item)
                reply = request["reply"]
                query = SearchQuery.decode(request["query"])
            except (ValueError, KeyError, TypeError) as exc:
                log.error("search server: dropped an unreadable request (%s)", exc)
                continue
            replies.append(reply)
            queries.append(query)
        answered = 0
        try:
            # Each answer goes out as soon as it is ready, not when the whole batch is.
            for outcome in self.handle(queries):
                self._reply(replies[answered], outcome)
                answered += 1
        except Exception as exc:  # noqa: BLE001 - every waiting caller hears about it
            log.exception("search batch failed")
            failed = Outcome.problem(FAILED, f"search failed: {exc.__class__.__name__}: {exc}")
            for reply in replies[answered:]:
                self._reply(reply, failed)

    def _waiting(self) -> list[bytes]:
        """Up to ``MAX_BATCH - 1`` requests already waiting, oldest first, taken atomically
        (LRANGE + LTRIM in MULTI: RPOP with a count needs Redis 6.2)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrange(REQUESTS, -(MAX_BATCH - 1), -1)
        pipe.ltrim(REQUESTS, 0, -MAX_BATCH)
        taken, _ = pipe.execute()
        return taken[::-1]

    def _reply(self, reply: str, outcome: Outcome) -> None:
        """The outcome, and its value as a second element when that is JSON text already
        (bytes): the header is popped first, both are pushed at once."""
        pipe = self.redis.pipeline(transaction=False)
        if isinstance(outcome.value, bytes):
            header = {"status": outcome.status, "error": outcome.error, "value_follows": True}
            pipe.lpush(reply, json.dumps(header, separators=(",", ":")), outcome.value)
        else:
            pipe.lpush(reply, json.dumps(outcome.encode(), separators=(",", ":")))
        pipe.expire(reply, REPLY_TTL_SECONDS)
        pipe.execute()
