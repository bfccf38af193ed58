"""Shared state in Redis: the running analysis task, cancel flags, heartbeats, last progress
events, model loading flags and which analysis data is loaded.

Both the API processes and the workers use this module, so every API process sees the same
answers (docs/architecture.md, "Storage"). Values are plain JSON; nothing here knows about HTTP.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache

import redis

PREFIX = "sightline:"
CURRENT_TASK = PREFIX + "current_task"
EVENT_TTL = 7 * 24 * 3600


@lru_cache(maxsize=8)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5, health_check_interval=10
    )


def client(url: str | None = None) -> redis.Redis:
    from workers.settings import redis_url

    return _client(url or redis_url())


def _task_key(task_id: str) -> str:
    return f"{PREFIX}task:{task_id}"


# --- the analysis task (Jumper runs one at a time) ----------------------------------------


def create_task(task_id: str, kind: str, total: int, files: list[str], extra: dict | None = None) -> bool:
    """Register a new task as the current one. False when another task holds the slot."""
    r = client()
    now = time.time()
    if not r.set(CURRENT_TASK, task_id, nx=True):
        return False
    record = {
        "task_id": task_id,
        "kind": kind,
        "state": "queued",
        "total": total,
        "finished": 0,
        "failed": 0,
        "cancelled": 0,
        "created": now,
        "heartbeat": 0,
        "files": json.dumps(files),
        "extra": json.dumps(extra or {}),
    }
    pipe = r.pipeline()
    pipe.hset(_task_key(task_id), mapping=record)
    pipe.expire(_task_key(task_id), EVENT_TTL)
    pipe.execute()
    return True


def get_task(task_id: str) -> dict | None:
    record = client().hgetall(_task_key(task_id))
    if not record:
        return None
    for name in ("total", "finished", "failed", "cancelled"):
        record[name] = int(record.get(name, 0))
    for name in ("created", "heartbeat"):
        record[name] = float(record.get(name, 0) or 0)
    record["files"] = json.loads(record.get("files") or "[]")
    record["extra"] = json.loads(record.get("extra") or "{}")
    record["errors"] = json.loads(record.get("errors") or "[]")
    record["cancel_requested"] = bool(client().exists(_cancel_key(task_id)))
    return record


def current_task_id() -> str | None:
    return client().get(CURRENT_TASK)


def heartbeat(task_id: str) -> None:
    client().hset(_task_key(task_id), mapping={"heartbeat": time.time(), "state": "running"})


def record_file_result(task_id: str, status: str, error: dict | None = None) -> tuple[int, int]:
    """Count one finished file; returns (finished, total). Atomic across workers."""
    r = client()
    key = _task_key(task_id)
    pipe = r.pipeline()
    pipe.hincrby(key, "finished", 1)
    if status == "failed":
        pipe.hincrby(key, "failed", 1)
    elif status == "cancelled":
        pipe.hincrby(key, "cancelled", 1)
    pipe.hget(key, "total")
    results = pipe.execute()
    if error:
        # Read-modify-write is fine here: errors are informational and files finish seconds apart.
        errors = json.loads(r.hget(key, "errors") or "[]")
        errors.append(error)
        r.hset(key, "errors", json.dumps(errors[-200:]))
    return int(results[0]), int(results[-1] or 0)


def claim_finalize(task_id: str) -> bool:
    """Exactly one process finalizes a task (the one that finished its last file)."""
    return bool(client().hsetnx(_task_key(task_id), "finalized", "1"))


def release_current(task_id: str, final_state: str) -> None:
    r = client()
    r.hset(_task_key(task_id), mapping={"state": final_state, "ended": time.time()})
    # Only clear the slot if it still names this task (a new task may already hold it).
    script = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
    r.eval(script, 1, CURRENT_TASK, task_id)


def _cancel_key(task_id: str) -> str:
    return f"{PREFIX}cancel:{task_id}"


def request_cancel(task_id: str) -> None:
    client().set(_cancel_key(task_id), "1", ex=EVENT_TTL)


def is_cancelled(task_id: str) -> bool:
    return bool(client().exists(_cancel_key(task_id)))


# --- progress replay ---------------------------------------------------------------------


HISTORY_LIMIT = 1000


def _significant(event: dict) -> bool:
    return bool(event.get("done") or event.get("status") or event.get("error")
                or event.get("progress") in (100, 100.0))


def store_last_event(task_id: str, event: dict) -> None:
    """Keep the task's last event, and its significant ones (a file done or failed, the
    end) in order, so a client that joins late still learns every file's outcome."""
    encoded = json.dumps(event)
    pipe = client().pipeline()
    pipe.set(f"{PREFIX}last_event:{task_id}", encoded, ex=EVENT_TTL)
    if _significant(event):
        key = f"{PREFIX}events:{task_id}"
        pipe.rpush(key, encoded)
        pipe.ltrim(key, -HISTORY_LIMIT, -1)
        pipe.expire(key, EVENT_TTL)
    pipe.execute()


def event_history(task_id: str) -> list[dict]:
    """The significant events so far, then the last event if it is not among them."""
    history = [json.loads(raw) for raw in client().lrange(f"{PREFIX}events:{task_id}", 0, -1)]
    last = last_event(task_id)
    if last is not None and (not history or history[-1] != last):
        history.append(last)
    return history


def last_event(task_id: str) -> dict | None:
    raw = client().get(f"{PREFIX}last_event:{task_id}")
    return json.loads(raw) if raw else None


# --- models ------------------------------------------------------------------------------


def set_model_loading(kind: str, key: str | None) -> None:
    name = f"{PREFIX}model_loading:{kind}"
    if key:
        client().set(name, key, ex=600)
    else:
        client().delete(name)


def model_loading(kind: str) -> str | None:
    return client().get(f"{PREFIX}model_loading:{kind}")


# --- loaded analysis data (shared by every API and query worker) -------------------------


def _loaded_key(kind: str, cache_dir: str) -> str:
    return f"{PREFIX}loaded:{kind}:{cache_dir}"


def mark_loaded(kind: str, cache_dir: str, entries: dict[str, str]) -> None:
    """``entries`` maps hash_str → media path."""
    if entries:
        client().hset(_loaded_key(kind, cache_dir), mapping=entries)
    client().sadd(f"{PREFIX}loaded_dirs:{kind}", cache_dir)


def loaded(kind: str, cache_dir: str) -> dict[str, str]:
    return client().hgetall(_loaded_key(kind, cache_dir))


def clear_loaded(kind: str) -> None:
    r = client()
    for cache_dir in r.smembers(f"{PREFIX}loaded_dirs:{kind}"):
        r.delete(_loaded_key(kind, cache_dir))
    r.delete(f"{PREFIX}loaded_dirs:{kind}")
    r.incr(f"{PREFIX}loaded_generation:{kind}")


def loaded_generation(kind: str) -> int:
    return int(client().get(f"{PREFIX}loaded_generation:{kind}") or 0)


def set_model_error(kind: str, message: str) -> None:
    client().set(f"{PREFIX}model_error:{kind}", message, ex=600)


def clear_model_error(kind: str) -> None:
    client().delete(f"{PREFIX}model_error:{kind}")


def model_error(kind: str) -> str | None:
    return client().get(f"{PREFIX}model_error:{kind}")


def register_task(task_id: str, kind: str) -> None:
    """Record a task that does not take the analysis slot (a recluster, say)."""
    key = _task_key(task_id)
    client().hset(key, mapping={"task_id": task_id, "kind": kind, "state": "queued", "total": 1,
                                "finished": 0, "failed": 0, "cancelled": 0, "created": time.time(),
                                "heartbeat": 0, "files": "[]", "extra": "{}"})
    client().expire(key, EVENT_TTL)


# --- files in flight (so a killed worker's file is noticed) --------------------------------


def _inflight_key(task_id: str) -> str:
    return f"{PREFIX}inflight:{task_id}"


def mark_inflight(task_id: str, index: int, path: str) -> None:
    key = _inflight_key(task_id)
    client().hset(key, str(index), json.dumps([path, time.time()]))
    client().expire(key, EVENT_TTL)


def beat_inflight(task_id: str, index: int, path: str) -> None:
    client().hset(_inflight_key(task_id), str(index), json.dumps([path, time.time()]))


def clear_inflight(task_id: str, index: int) -> bool:
    """True if this call removed the entry (so exactly one party accounts for the file)."""
    return bool(client().hdel(_inflight_key(task_id), str(index)))


def inflight(task_id: str) -> dict[int, tuple[str, float]]:
    raw = client().hgetall(_inflight_key(task_id))
    return {int(k): tuple(json.loads(v)) for k, v in raw.items()}


def is_active(task_id: str) -> bool:
    record = client().hget(_task_key(task_id), "state")
    return record in ("queued", "running")
