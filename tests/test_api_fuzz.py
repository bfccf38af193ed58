"""The API against its own OpenAPI document: schemathesis sends a few hundred generated requests
(fixed seed) to a real server whose media and export roots are temp folders, and every answer
must be a documented status with a documented body and content type — never a 5xx.

The full run (>= 1,000 requests, every schemathesis phase) is ``make fuzz`` (bench/fuzz_api.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import fuzz_api  # noqa: E402


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, tiny_model_dir):
    """A server of its own: the fuzzer adds watch folders, switches models and starts tasks."""
    server, dirs = fuzz_api.start_fuzz_server(tmp_path_factory.mktemp("fuzz"), model_dir=tiny_model_dir)
    try:
        fuzz_api.analyse_library(server, dirs, speech=False)
        yield server, dirs
    finally:
        server.stop()


def test_generated_requests_get_documented_answers_and_no_server_errors(fuzz_server, tmp_path):
    server, dirs = fuzz_server
    summary = fuzz_api.run_schemathesis(server.api, server.pro_key, dirs, max_examples=12, seed=1234,
                                        workdir=tmp_path, phases="fuzzing", workers=1, timeout=600)
    report = json.dumps({k: summary[k] for k in ("failures_by_check", "failure_samples", "errors", "output_tail")},
                        indent=1)
    print({k: summary[k] for k in ("requests", "operations_tested", "seconds")})
    assert summary["requests"] >= 200, summary
    assert summary["operations_tested"] >= 30, summary
    assert fuzz_api.passed(summary), report
    assert "unhandled error" not in server.log, server.log[-5000:]


def test_the_document_marks_paths_and_documents_every_error_shape(fuzz_server):
    server, _ = fuzz_server
    document = requests.get(f"{server.api}/openapi.json", timeout=10).json()
    scene = document["components"]["schemas"]["SceneRequest"]["properties"]
    assert scene["media_path"]["format"] == "path"
    assert {branch["type"] for branch in scene["start_time"]["oneOf"]} == {"number", "string"}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if operation["security"]:
                assert {"401", "403", "500", "503"} <= set(operation["responses"]), (method, path)
            if "{" in path:
                assert "414" in operation["responses"], (method, path)


@pytest.mark.parametrize("body", [
    b'{"cache_dir": "/x", "media_paths": [NaN]}',
    b'{"cache_dir": "/x", "media_paths": [], "n": 1e400}',
    b'{"cache_dir": "/x\\ud800", "media_paths": []}',
    b"[" * 50000 + b"]" * 50000,
    b'{"cache_dir": "\xff"}',
])
def test_bodies_json_cannot_carry_are_clear_400s(fuzz_server, body):
    server, _ = fuzz_server
    response = server.post("/media/metadata", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("Request body is not valid JSON")


def test_deep_json_without_a_key_header_is_a_400_not_a_crash(fuzz_server):
    server, _ = fuzz_server
    response = requests.post(f"{server.api}/media/metadata", data=b"[" * 50000 + b"]" * 50000, timeout=30)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("start_time", ["nan", "inf", "-5", " 3", "1:2:3:4", -1, 1e308, True])
def test_scene_times_that_are_not_times_are_400s(fuzz_server, start_time):
    server, dirs = fuzz_server
    response = server.post("/thumbnails/scene", {"cache_dir": str(dirs.cache),
                                                 "media_path": str(dirs.media / "counter.mp4"),
                                                 "start_time": start_time, "end_time": "00:00:02"})
    assert response.status_code == 400, response.text
    assert "start_time" in response.json()["error"]


def test_scene_times_as_seconds_or_hhmmss_give_the_same_strip(fuzz_server):
    server, dirs = fuzz_server
    body = {"cache_dir": str(dirs.cache), "media_path": str(dirs.media / "counter.mp4")}
    numbers = server.post("/thumbnails/scene", {**body, "start_time": 0, "end_time": 2.5}).json()
    strings = server.post("/thumbnails/scene", {**body, "start_time": "00:00:00", "end_time": "0:02.5"}).json()
    assert [t for _, t in numbers["scene_thumbnails"]] == ["00:00:00", "00:00:01", "00:00:02"]
    assert numbers == strings


def test_nul_in_a_path_is_named_in_the_400(fuzz_server):
    server, dirs = fuzz_server
    response = server.get("/faces/clusters", params={"cache_dir": f"{dirs.cache}/\x00"})
    assert response.status_code == 400
    assert "cache_dir" in response.json()["error"] and "NUL" in response.json()["error"]
