"""Per-file analysis pipelines: plain functions the Celery tasks call."""


class Cancelled(Exception):
    """The user asked the task to stop; raised between frames or segments."""
