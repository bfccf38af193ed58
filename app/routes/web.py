"""The web page at ``/``: static files (plain ES modules and vendored libraries, no build step).
Outside ``/api`` there is no licence check: the page asks for the key and sends it with every
API call. Every file carries an ETag; the page's own files are revalidated on each load (an
upgrade shows at once, an unchanged file costs a 304), vendored ones are cached for a day."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, send_from_directory

WEB = Path(__file__).resolve().parent.parent / "web"

bp = Blueprint("web", __name__)


def _static(name: str):
    response = send_from_directory(WEB, name, conditional=True, etag=True)
    if name.startswith("vendor/"):
        response.headers["Cache-Control"] = "public, max-age=86400"
    else:
        response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/")
def index():
    return _static("index.html")


@bp.get("/ui/<path:name>")
def asset(name: str):
    return _static(name)
