"""Every error leaves as ``{"error": "..."}`` with the right status; never a traceback."""

from __future__ import annotations

import logging
import traceback

import redis
from flask import Flask, jsonify
from kombu.exceptions import OperationalError as BrokerUnavailable
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from workers import messages

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


# How a task's problem (workers/messages.py) reads over HTTP; decided here and nowhere below.
OUTCOME_STATUS = {messages.INVALID: 400, messages.UNAVAILABLE: 400, messages.FAILED: 500}


def unwrap(outcome: messages.Outcome):
    """The outcome's value, or the ApiError its problem maps to."""
    if outcome.succeeded:
        return outcome.value
    raise ApiError(OUTCOME_STATUS.get(outcome.status, 500), outcome.error or outcome.status)


def describe_validation(messages, prefix: str = "") -> str:
    """Flatten marshmallow's nested messages into one sentence that names each field."""
    parts: list[str] = []
    if isinstance(messages, dict):
        for name, inner in messages.items():
            label = f"{prefix}.{name}" if prefix else str(name)
            if name == "_schema":
                label = prefix or "body"
            parts.append(describe_validation(inner, label))
    elif isinstance(messages, list):
        texts = [m for m in messages if isinstance(m, str)]
        if texts:
            parts.append(f"{prefix}: {' '.join(texts)}" if prefix else " ".join(texts))
        for inner in messages:
            if not isinstance(inner, str):
                parts.append(describe_validation(inner, prefix))
    else:
        parts.append(f"{prefix}: {messages}" if prefix else str(messages))
    return "; ".join(p for p in parts if p)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return jsonify({"error": exc.message, **exc.extra}), exc.status

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        return jsonify({"error": f"Invalid request: {describe_validation(exc.messages)}"}), 400

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        return jsonify({"error": exc.description or exc.name}), exc.code or 500

    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    @app.errorhandler(BrokerUnavailable)
    def _redis_down(exc):
        log.warning("Redis unavailable: %s", exc)
        return jsonify({"error": "The task queue (Redis) is unavailable; retry shortly"}), 503

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return _http(exc)
        if isinstance(exc, RecursionError) and _raised_by_json_decoder(exc):
            # Flask's get_json(silent=True) lets RecursionError (a body nested thousands deep)
            # through, since it is not a ValueError.
            return jsonify({"error": "Request body is not valid JSON (nested too deeply)"}), 400
        log.exception("unhandled error")
        return jsonify({"error": f"Internal server error ({exc.__class__.__name__})"}), 500


def _raised_by_json_decoder(exc: BaseException) -> bool:
    return any(frame.f_code.co_filename.endswith(("json/decoder.py", "json\\decoder.py"))
               for frame, _ in traceback.walk_tb(exc.__traceback__))
