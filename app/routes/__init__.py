"""HTTP routes, one module per API area. Each route reads top to bottom:
route → schema → service/task → engine → store."""

from __future__ import annotations

import importlib

from flask import Flask

from app.settings import API_PREFIX

AREAS = ("health", "models", "media", "analyze", "analysis_data", "search", "transcriptions", "thumbnails",
         "faces", "watch_folders", "export", "openapi")


def register_routes(app: Flask) -> None:
    for area in AREAS:
        try:
            module = importlib.import_module(f"app.routes.{area}")
        except ModuleNotFoundError as exc:
            if exc.name == f"app.routes.{area}":
                continue
            raise
        app.register_blueprint(module.bp, url_prefix=API_PREFIX)
