"""Roots first: with SIGHTLINE_MEDIA_ROOTS / SIGHTLINE_EXPORT_ROOTS set, a request naming a path
outside them gets 403 before any other check, on every route and for every path-taking field,
so it learns nothing else about the server (not whether a model is here, a file exists, a
watch folder id is known or another field is wrong).

The routes and their path fields are read from the running code (every route bound with
``app.api.endpoint``, every ``schemas.common.Path`` field in its request schema), so a route
added later is covered without editing this file."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import pytest
import requests
from flask import Flask
from marshmallow import Schema, fields
from PIL import Image

from app.routes import register_routes
from schemas.common import Path as PathField
from tests.conftest import DATA, start_server


def _path_fields(schema: Schema, prefix: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """(where in the body, roots kind) of every Path field; a "[]" step is a list."""
    for name, field in schema.load_fields.items():
        yield from _walk(field, (*prefix, field.data_key or name))


def _walk(field: fields.Field, where: tuple) -> Iterator[tuple[tuple, str]]:
    if isinstance(field, PathField):
        yield where, field.roots
    elif isinstance(field, fields.List):
        yield from _walk(field.inner, (*where, "[]"))
    elif isinstance(field, fields.Nested):
        steps = (*where, "[]") if field.many else where
        yield from _path_fields(field.schema, steps)


def _body(where: tuple, value: str):
    """The smallest JSON body that carries ``value`` at ``where`` and nothing else."""
    if not where:
        return value
    head, rest = where[0], where[1:]
    return [_body(rest, value)] if head == "[]" else {head: _body(rest, value)}


def _path_taking_operations() -> list[tuple[str, str, bool, tuple, str]]:
    """(method, url under the server, in query?, where, roots) for every path field of every route."""
    app = Flask("roots-audit")
    register_routes(app)
    found = []
    for rule in app.url_map.iter_rules():
        operation = getattr(app.view_functions[rule.endpoint], "operation", None)
        if operation is None:
            continue
        schema_class = operation.body or operation.query
        if schema_class is None:
            continue
        url = re.sub(r"<(?:[^:>]+:)?[^>]+>", "not-a-known-id", rule.rule)
        for where, roots in _path_fields(schema_class()):
            found.append((operation.method.upper(), url, operation.body is None, where, roots))
    return found


OPERATIONS = _path_taking_operations()


@pytest.fixture(scope="module")
def fenced(tmp_path_factory):
    """A server that may read only under media/ and write only under exports/, with no visual
    model on the machine (so the search routes have a 400 of their own to give too early)."""
    root = tmp_path_factory.mktemp("roots")
    folders = {name: root / name for name in ("media", "exports", "outside")}
    for folder in folders.values():
        folder.mkdir()
    for folder in (folders["media"], folders["outside"]):
        shutil.copy(DATA / "counter.mp4", folder / "counter.mp4")
        Image.new("RGB", (64, 48), (200, 120, 30)).save(folder / "still.png")
    srv = start_server(root / "server", {"SIGHTLINE_MEDIA_ROOTS": str(folders["media"]),
                                         "SIGHTLINE_EXPORT_ROOTS": str(folders["exports"])})
    yield srv, folders
    srv.stop()


def _outside(folders: dict, roots: str) -> str:
    # Existing files and folders, so "not found" can never be the reason for the refusal.
    return str(folders["outside"] / "counter.mp4") if roots == "media" else str(folders["outside"])


def test_the_audit_sees_every_path_taking_route():
    urls = {(method, url) for method, url, *_ in OPERATIONS}
    for expected in [("POST", "/api/v1/search/image"), ("POST", "/api/v1/search/frame"),
                     ("POST", "/api/v1/search/text"), ("POST", "/api/v1/analyze"),
                     ("POST", "/api/v1/export/clips"), ("POST", "/api/v1/export/premiere-xml"),
                     ("POST", "/api/v1/transcriptions"), ("POST", "/api/v1/media/metadata"),
                     ("POST", "/api/v1/thumbnails"), ("POST", "/api/v1/watch-folders"),
                     ("POST", "/api/v1/analysis-data/load")]:
        assert expected in urls, expected
    kinds = {(url, where[-1] if where[-1] != "[]" else where[-2]): roots for _, url, _, where, roots in OPERATIONS}
    assert kinds[("/api/v1/export/clips", "output_dir")] == "export"
    assert kinds[("/api/v1/export/clips", "source_path")] == "media"
    assert kinds[("/api/v1/search/image", "cache_dir")] == "cache"


@pytest.mark.parametrize("method, url, in_query, where, roots", OPERATIONS,
                         ids=[f"{m} {u} {'.'.join(w)}" for m, u, _, w, _ in OPERATIONS])
def test_a_path_outside_the_roots_is_403_before_anything_else(fenced, method, url, in_query, where, roots):
    srv, folders = fenced
    outside = _outside(folders, roots)
    body = _body(where, outside)  # every other field missing: any other check would answer 400
    if in_query:
        response = srv.request(method, url.removeprefix("/api/v1"), params=body)
    else:
        response = srv.request(method, url.removeprefix("/api/v1"), json=body)
    assert response.status_code == 403, response.text
    field = [step for step in where if step != "[]"][-1]
    assert field in response.json()["error"] and "outside the allowed" in response.json()["error"]


def test_search_by_image_or_frame_outside_the_roots_is_403_not_model_missing(fenced):
    srv, folders = fenced
    cache = str(folders["exports"] / "cache")
    for route, field, name in (("/search/image", "image_path", "still.png"),
                               ("/search/frame", "media_path", "counter.mp4")):
        body = {"cache_dir": cache, field: str(folders["outside"] / name), "time_seconds": 1}
        refused = srv.post(route, body)
        assert refused.status_code == 403, refused.text
        assert field in refused.json()["error"] and "visual model" not in refused.json()["error"]
        # The same request inside the roots gets the model's answer: the 403 was the path's.
        allowed = srv.post(route, {**body, field: str(folders["media"] / name)})
        assert allowed.status_code == 400 and "visual model" in allowed.json()["error"], allowed.text


def test_other_fields_errors_come_after_the_roots(fenced):
    srv, folders = fenced
    outside = str(folders["outside"] / "counter.mp4")
    inside_cache = str(folders["exports"] / "cache")
    cases = [
        ("/thumbnails", {"cache_dir": inside_cache, "requests": [{"media_path": outside, "time_seconds": "soon"}]}),
        ("/analyze", {"cache_dir": inside_cache, "visual_media_paths": [str(folders["media"] / "counter.mp4"),
                                                                        outside], "face_clustering_jobs": "x"}),
        ("/export/clips", {"clips": [{"source_path": outside, "start_seconds": -5, "end_seconds": 1}],
                           "output_dir": str(folders["exports"])}),
        ("/transcriptions", {"cache_dir": inside_cache, "media_paths": [outside, 7]}),
    ]
    for route, body in cases:
        response = srv.post(route, body)
        assert response.status_code == 403, (route, response.text)
    unknown = srv.request("PUT", "/watch-folders/no-such-folder", json={"folder_path": str(folders["outside"])})
    assert unknown.status_code == 403, unknown.text
    # Inside the roots the same mistakes are the 400s and 404s they were.
    assert srv.post("/export/clips", {"clips": [{"source_path": str(folders["media"] / "counter.mp4"),
                                                 "start_seconds": -5, "end_seconds": 1}],
                                      "output_dir": str(folders["exports"])}).status_code == 400
    assert srv.request("PUT", "/watch-folders/no-such-folder",
                       json={"folder_path": str(folders["media"])}).status_code == 404


def test_reframe_ingest_of_a_local_file_outside_the_roots_is_403(fenced):
    """/api/v2/ingest takes a URL or a path in one string field: a local one is a path too."""
    srv, folders = fenced
    outside = folders["outside"] / "counter.mp4"
    for url in (str(outside), outside.as_uri(), f"{folders['media']}/../outside/counter.mp4"):
        response = requests.post(f"{srv.base}/api/v2/ingest", json={"url": url}, timeout=60,
                                 headers={"X-License-Key": srv.pro_key})
        assert response.status_code == 403, (url, response.text)
        assert "url" in response.json()["error"]


def test_editor_project_from_a_local_file_outside_the_roots_is_403(fenced):
    """/api/project takes ``video_url``: a local path or file:// URL is a path too."""
    srv, folders = fenced
    outside = folders["outside"] / "counter.mp4"
    for url in (str(outside), outside.as_uri(), f"{folders['media']}/../outside/counter.mp4"):
        response = requests.post(f"{srv.base}/api/project", json={"name": "p", "video_url": url}, timeout=60,
                                 headers={"X-License-Key": srv.pro_key})
        assert response.status_code == 403, (url, response.text)
        assert "video_url" in response.json()["error"]
