"""The Celery application shared by the API (which only sends tasks) and the workers.

Two queues (docs/architecture.md): ``analysis`` for long jobs, one at a time per worker, and ``query``
for low-latency searches. Task modules are imported by the worker only, so the API process
never imports torch.
"""

from __future__ import annotations

from celery import Celery

from workers.settings import redis_url

ANALYSIS_QUEUE = "analysis"
QUERY_QUEUE = "query"


def make_celery() -> Celery:
    # Importing the app must work before Redis is known (the CLI, the OpenAPI doc); a task sent
    # then fails to connect instead of failing the import.
    url = redis_url(default="redis://")
    celery = Celery("sightline", broker=url, backend=url)
    celery.conf.update(
        task_default_queue=QUERY_QUEUE,
        task_routes={
            "sightline.analyze_file": {"queue": ANALYSIS_QUEUE},
            "sightline.recluster": {"queue": ANALYSIS_QUEUE},
            "sightline.finalize": {"queue": ANALYSIS_QUEUE},
            "sightline.reframe.*": {"queue": ANALYSIS_QUEUE},
            "sightline.query.*": {"queue": QUERY_QUEUE},
            # Variant scores want the visual model the query worker holds; renders are long jobs.
            "sightline.editor.score": {"queue": QUERY_QUEUE},
            "sightline.editor.*": {"queue": ANALYSIS_QUEUE},
        },
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=3600,
        # A worker takes one long analysis file at a time, so a second worker can take the next.
        worker_prefetch_multiplier=1,
        # Acknowledge a file when it is done, so a worker holds exactly one file at a time and a
        # killed worker loses only the file it was on (the watchdog fails it; the rest goes on).
        # A file that crashes its pool child is not redelivered: it fails alone.
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        task_track_started=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 24 * 3600, "socket_connect_timeout": 3},
        # While Redis is down the API must answer 503 quickly, not hang on publish retries.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5,
                                   "interval_max": 1},
        redis_socket_connect_timeout=3,
        redis_retry_on_timeout=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        imports=("tasks.analyze", "tasks.query", "tasks.recluster", "tasks.reframe", "tasks.editor"),
    )
    return celery


celery_app = make_celery()
