"""The OpenAPI 3 document, generated from the same schemas the routes validate with."""

from __future__ import annotations

from functools import lru_cache

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, jsonify

from app.api import OPERATIONS
from schemas.common import Error

bp = Blueprint("openapi", __name__)

ERROR_TEXT = {
    400: "Bad request (missing or invalid parameters)",
    401: "No license key provided, or an unknown key",
    403: "Key is valid but not a Pro license, or a path outside the allowed roots",
    404: "Resource not found",
    409: "Another analysis task is still stopping or already active",
    500: "Server error",
    503: "Models still loading, or the task queue is unavailable — retry shortly",
}


@lru_cache(maxsize=1)
def build_spec() -> dict:
    spec = APISpec(
        title="sightline — Jumper Public API v1",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Self-hosted media analysis. Every endpoint except /health needs a Pro "
                             "licence key in the X-License-Key header (or a license_key JSON field)."},
        servers=[{"url": "/"}],
    )
    spec.components.security_scheme("LicenseKey", {"type": "apiKey", "in": "header", "name": "X-License-Key"})
    spec.components.schema("Error", schema=Error)
    paths: dict[str, dict] = {}
    for op in OPERATIONS:
        operation: dict = {"summary": op.summary, "tags": [op.tag], "operationId": f"{op.method}_{op.path}",
                           "responses": {}}
        success: dict = {"description": "OK"}
        if op.response is not None:
            success["content"] = {"application/json": {"schema": op.response}}
        operation["responses"][str(op.status)] = success
        codes = set(op.errors) | ({400} if op.body or op.query else set())
        if not op.public:
            codes |= {401, 403, 503}
            operation["security"] = [{"LicenseKey": []}]
        else:
            operation["security"] = []
        for code in sorted(codes):
            operation["responses"][str(code)] = {
                "description": ERROR_TEXT.get(code, "Error"),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
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
