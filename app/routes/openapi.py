"""The OpenAPI 3 document, generated from the same schemas the routes validate with."""

from __future__ import annotations

import re
from functools import lru_cache

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, jsonify
from marshmallow import fields

from app.api import OPERATIONS, Operation
from schemas.common import Error

bp = Blueprint("openapi", __name__)

ERROR_TEXT = {
    400: "Bad request (missing or invalid parameters)",
    402: "Not enough credits for this download",
    401: "No license key provided, or an unknown key",
    403: "Key is valid but not a Pro license, or a path outside the allowed roots",
    404: "Resource not found",
    409: "Another analysis task is still stopping or already active",
    413: "Request body over 64 MiB",
    414: "Request URL too long (over 8 KiB): send shorter query or path parameters",
    500: "Server error",
    503: "Models still loading, or the task queue is unavailable — retry shortly",
}


def _pointer_to(response, param: str) -> str | None:
    """Where a reply of this schema carries a value for path parameter ``param``: a field of that
    name (``task_id``), or the ``id`` of a nested object named for it (``watch_folder.id``)."""
    declared = response().fields
    if param in declared:
        return f"/{param}"
    nested = declared.get(param.removesuffix("_id"))
    if isinstance(nested, fields.Nested) and "id" in nested.schema.fields:
        return f"/{nested.name}/id"
    return None


def _links(op: Operation, prefix: str, exclude: tuple[str, ...] = ()) -> dict:
    """OpenAPI links from this operation's reply to the operations that take what it returns
    (a started task → its status; a new watch folder → update, delete)."""
    links = {}
    for target in OPERATIONS:
        if (op.response is None or not target.path_params or target is op or not target.path.startswith(prefix)
                or target.path.startswith(exclude)):
            continue
        pointers = {param: _pointer_to(op.response, param) for param in target.path_params}
        if all(pointers.values()):
            name = re.sub(r"[^A-Za-z0-9]+", "_", f"{target.method}_{target.path}").strip("_")
            links[name] = {"operationId": f"{target.method}_{target.path}",
                           "parameters": {p: f"$response.body#{ptr}" for p, ptr in pointers.items()}}
    return links


@lru_cache(maxsize=4)
def build_spec(prefix: str = "/api/v1/", title: str = "sightline — Jumper Public API v1",
               version: str = "1.0.0", exclude: tuple[str, ...] = (), description: str | None = None) -> dict:
    """The document of the operations under ``prefix`` but not under any of ``exclude`` (each API
    has its own document; the editor's ``/api/`` holds neither ``/api/v1/`` nor ``/api/v2/``)."""
    spec = APISpec(
        title=title,
        version=version,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": description or "Self-hosted media analysis. Every endpoint except /health needs a "
                             "Pro licence key in the X-License-Key header (or a license_key JSON field)."},
        servers=[{"url": "/"}],
    )
    spec.components.security_scheme("LicenseKey", {"type": "apiKey", "in": "header", "name": "X-License-Key"})
    spec.components.schema("Error", schema=Error)
    paths: dict[str, dict] = {}
    for op in OPERATIONS:
        if not op.path.startswith(prefix) or op.path.startswith(exclude):
            continue
        operation: dict = {"summary": op.summary, "tags": [op.tag], "operationId": f"{op.method}_{op.path}",
                           "responses": {}}
        success: dict = {"description": "OK"}
        if op.response is not None:
            success["content"] = {"application/json": {"schema": op.response}}
            if links := _links(op, prefix, exclude):
                success["links"] = links
        operation["responses"][str(op.status)] = success
        codes = set(op.errors) | ({400} if op.body or op.query else set()) | ({413} if op.body else set())
        if not op.public:
            # 500: any unexpected failure still answers {"error": ...}; 503: Redis unreachable.
            codes |= {401, 403, 500, 503}
            operation["security"] = [{"LicenseKey": []}]
        else:
            operation["security"] = []
        for code in sorted(codes):
            operation["responses"][str(code)] = {
                "description": ERROR_TEXT.get(code, "Error"),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        if op.path_params or op.query is not None:
            # The HTTP server (eventlet) refuses a request line over 8 KiB before Flask sees it:
            # no JSON body then.
            operation["responses"]["414"] = {"description": ERROR_TEXT[414]}
        if op.body is not None:
            operation["requestBody"] = {"required": True,
                                        "content": {"application/json": {"schema": op.body}}}
        parameters = [{"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
                      for name in op.path_params]
        if op.query is not None:
            parameters.append({"in": "query", "schema": op.query})
        if parameters:
            operation["parameters"] = parameters
        paths.setdefault(op.path, {})[op.method] = operation
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(build_spec())
