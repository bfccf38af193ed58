"""HTTP routes, one module per API area. Each route reads top to bottom:
route → schema → service/task → engine → store.

``AREAS`` pairs each area's module (it defines ``bp``) with the URL prefix it is mounted at;
a new API area adds its line here.
"""

from __future__ import annotations

import importlib

from flask import Flask

from workers.settings import API_PREFIX

AREAS: tuple[tuple[str, str], ...] = (
    ("health", API_PREFIX), ("models", API_PREFIX), ("media", API_PREFIX), ("analyze", API_PREFIX),
    ("analysis_data", API_PREFIX), ("search", API_PREFIX), ("transcriptions", API_PREFIX),
    ("thumbnails", API_PREFIX), ("faces", API_PREFIX), ("watch_folders", API_PREFIX), ("export", API_PREFIX),
    ("openapi", API_PREFIX), ("reframe", "/api/v2"), ("editor", "/api"), ("web", ""),
)


def register_routes(app: Flask) -> None:
    for area, prefix in AREAS:
        module = importlib.import_module(f"app.routes.{area}")
        app.register_blueprint(module.bp, url_prefix=prefix)
