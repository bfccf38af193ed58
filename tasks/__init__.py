"""Celery tasks: thin wrappers that turn a message into calls of workers/ functions and
report progress. Plain values in, plain values out."""
