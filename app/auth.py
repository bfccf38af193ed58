"""Licence check on every route but /health: 401 without a key or with an unknown one,
403 for a key that is not Pro. The key comes in ``X-License-Key`` or a JSON body field
``license_key``; it is never logged."""

from __future__ import annotations

from flask import Flask, current_app, request

from app.errors import ApiError
from app.licences import KeyStore
from app.settings import API_PREFIX

PUBLIC_PATHS = {f"{API_PREFIX}/health", f"{API_PREFIX}/openapi.json"}


def _presented_key() -> str | None:
    key = request.headers.get("X-License-Key")
    if key:
        return key.strip()
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and request.get_data(cache=True):
        body = request.get_json(force=True, silent=True, cache=True)
        if isinstance(body, dict) and isinstance(body.get("license_key"), str):
            return body["license_key"].strip() or None
    key = request.args.get("license_key")
    return key.strip() if key else None


def install_licence_check(app: Flask, store: KeyStore) -> None:
    app.extensions["sightline_keys"] = store

    @app.before_request
    def _check_licence():
        if request.method == "OPTIONS" or request.path in PUBLIC_PATHS:
            return None
        if not request.path.startswith(API_PREFIX + "/"):
            return None
        key = _presented_key()
        if not key:
            raise ApiError(401, "No license key provided (send the X-License-Key header)")
        tier = current_app.extensions["sightline_keys"].tier_of(key)
        if tier is None:
            raise ApiError(401, "Unknown or revoked license key")
        if tier != "pro":
            raise ApiError(403, "This endpoint requires a Pro license key")
        return None
