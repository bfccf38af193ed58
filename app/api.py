"""One decorator binds a route to its schemas: it validates the request (body or query) with
the request schema, shapes the reply with the response schema, and records the operation for
the OpenAPI document — so the contract and the code cannot drift apart."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field

from flask import Blueprint, Response, request
from marshmallow import Schema

from app.errors import ApiError
from app.paths import check_request_paths
from workers.settings import API_PREFIX


@dataclass
class Operation:
    path: str
    method: str
    summary: str
    tag: str
    body: type[Schema] | None
    query: type[Schema] | None
    response: type[Schema] | None
    status: int
    errors: tuple[int, ...]
    public: bool = False
    path_params: tuple[str, ...] = field(default_factory=tuple)


OPERATIONS: list[Operation] = []


def _not_json_number(text: str):
    raise ValueError(f"{text} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _lone_surrogate_at(body) -> str | None:
    """Where the first string holding a lone UTF-16 surrogate is (``"\\ud800"`` is valid JSON
    syntax but not Unicode text: paths, tokenizers and encoders cannot take it); None if none."""
    stack: list[tuple[object, str]] = [(body, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, dict):
            for key, inner in value.items():
                stack.append((key, where or "body"))
                stack.append((inner, f"{where}.{key}" if where else str(key)))
        elif isinstance(value, list):
            stack.extend((inner, f"{where}.{index}" if where else str(index)) for index, inner in enumerate(value))
        elif isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return where or "body"
    return None


def parse_json(data: bytes):
    """Strict JSON: NaN, Infinity and numbers beyond float range (1e400) are refused, as is
    text with lone surrogates, so no route ever sees a value JSON cannot carry. ValueError if not."""
    try:
        body = json.loads(data, parse_constant=_not_json_number, parse_float=_finite)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    where = _lone_surrogate_at(body)
    if where is not None:
        raise ValueError(f"{where}: a string holds a lone UTF-16 surrogate (not Unicode text)")
    return body


def json_body() -> dict:
    """The request's JSON object; {} for an empty body; 400 for anything that is not JSON."""
    data = request.get_data(cache=True)
    if not data:
        return {}
    # Clients that forget the Content-Type header still mean JSON, so the header is not checked.
    try:
        body = parse_json(data)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors too
        raise ApiError(400, f"Request body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return body


def json_parts_response(*parts: bytes, status: int = 200) -> Response:
    """A JSON reply whose text is already made (``parts`` joined): a search's matches come
    from the query worker as JSON text, which is sent as it is, without a copy of its
    megabyte of thumbnails (each copy costs ~2 ms here)."""
    response = Response(list(parts), status=status, mimetype="application/json")
    # eventlet's WSGI server joins small pieces up to this size before sending: 0 sends each
    # as it is, so the big one is never copied into a join.
    request.environ["eventlet.minimum_write_chunk_size"] = 0
    return response


def endpoint(bp: Blueprint, rule: str, method: str, *, summary: str, tag: str,
             body: type[Schema] | None = None, query: type[Schema] | None = None,
             response: type[Schema] | None = None, status: int = 200,
             errors: tuple[int, ...] = (400,), public: bool = False, prefix: str = API_PREFIX):
    """``prefix``: the URL prefix the blueprint is mounted at (its area's line in ``AREAS``)."""
    path_params = tuple(part[1:-1].split(":")[-1] for part in rule.split("/") if part.startswith("<"))
    openapi_path = prefix + "/".join(
        "{" + part[1:-1].split(":")[-1] + "}" if part.startswith("<") else part for part in rule.split("/"))
    operation = Operation(openapi_path, method.lower(), summary, tag, body, query, response, status,
                          errors, public, path_params)
    OPERATIONS.append(operation)
    body_schema = body() if body else None
    query_schema = query() if query else None
    response_schema = response() if response else None

    def decorate(view):
        @functools.wraps(view)
        def wrapper(**url_params):
            kwargs = dict(url_params)
            # Roots first: a path the request may not touch is refused before anything else.
            if body_schema is not None:
                raw = json_body()
                check_request_paths(body_schema, raw)
                kwargs["data"] = body_schema.load(raw)
            elif query_schema is not None:
                raw = request.args.to_dict()
                check_request_paths(query_schema, raw)
                kwargs["data"] = query_schema.load(raw)
            result = view(**kwargs)
            if isinstance(result, Response):  # a file (downloads): status and headers are its own
                return result
            code, headers = status, {}
            if isinstance(result, tuple):  # (body, status) or (body, status, headers)
                result, code, *rest = result
                headers = rest[0] if rest else {}
            if response_schema is not None:
                result = response_schema.dump(result)
            return result, code, headers

        bp.add_url_rule(rule, endpoint=view.__name__, view_func=wrapper, methods=[method.upper()])
        wrapper.public = public
        wrapper.operation = operation
        return wrapper

    return decorate
