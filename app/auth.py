"""Licence check on every ``/api/...`` route but the public ones: 401 without a key or with
an unknown one, 403 for a key whose tier the area does not admit.

The key comes in ``X-License-Key``, a JSON body field ``license_key`` or a ``license_key``
query parameter; it is never logged. The key's record is kept in ``flask.g.licence`` for the
request (``current_key()``), so routes can scope what they show to the key that asks.

Which paths are open and which tiers an area admits is declared here, in one place:
``PUBLIC_PATHS`` (exact), ``PUBLIC_PREFIXES`` (signed URLs carry their own proof), and
``AREA_TIERS`` (longest prefix wins).
"""

from __future__ import annotations

from flask import Flask, current_app, g, request

from app.errors import ApiError
from app.licences import KeyRecord, KeyStore
from workers.settings import API_PREFIX

PUBLIC_PATHS = {f"{API_PREFIX}/health", f"{API_PREFIX}/openapi.json", "/api/health", "/api/v2/openapi.json",
                "/api/openapi.json"}
# Signed URLs (uploads, previews) are checked by their signature, not a key.
PUBLIC_PREFIXES: tuple[str, ...] = ("/api/signed/",)
# Prefix → tiers admitted; the longest matching prefix decides.
AREA_TIERS: dict[str, tuple[str, ...]] = {
    "/api/": ("pro", "basic"),
    f"{API_PREFIX}/": ("pro",),
    "/api/v2/": ("pro",),
}


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


def _tiers_for(path: str) -> tuple[str, ...] | None:
    best = None
    for prefix in AREA_TIERS:
        if path.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return AREA_TIERS[best] if best else None


def current_key() -> KeyRecord:
    """The licence key record of the request being served (after the check passed)."""
    return g.licence


def install_licence_check(app: Flask, store: KeyStore) -> None:
    app.extensions["sightline_keys"] = store

    @app.before_request
    def _check_licence():
        path = request.path
        if request.method == "OPTIONS" or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return None
        tiers = _tiers_for(path)
        if tiers is None:
            return None
        key = _presented_key()
        if not key:
            raise ApiError(401, "No license key provided (send the X-License-Key header)")
        record = current_app.extensions["sightline_keys"].record_of(key)
        if record is None:
            raise ApiError(401, "Unknown or revoked license key")
        if record.tier not in tiers:
            raise ApiError(403, "This endpoint requires a Pro license key")
        g.licence = record
        return None
