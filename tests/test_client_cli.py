"""``sightline analyze | search | transcript`` against a real server: the progress it prints,
its exit codes and its JSON. The server and key come from the environment (SIGHTLINE_SERVER,
SIGHTLINE_KEY) or from --server / --key, as a user would give them."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import BIN


def run(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")}
    # A wide, plain terminal so rich's table cells are not cut; no colour codes in the output.
    base.update({"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb", **(env or {})})
    return subprocess.run([str(BIN / "sightline"), *args], env=base, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def client_env(web_server):
    server, _, _ = web_server
    return {"SIGHTLINE_SERVER": server.base, "SIGHTLINE_KEY": server.pro_key}


@pytest.fixture(scope="module")
def analysed(web_server, client_env):
    """Two files analysed by the CLI (visual), and jfk.flac transcribed: (cache, result)."""
    server, media_root, export_root = web_server
    cache = export_root / "cli-cache"
    server.wait_idle()
    result = run("analyze", str(media_root / "counter.mp4"), str(media_root / "fades.mp4"), "--cache-dir", str(cache),
                 env=client_env)
    return cache, result


def test_analyze_prints_progress_per_file_and_a_summary(analysed):
    _, result = analysed
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for name in ("counter.mp4", "fades.mp4"):
        assert f"✓ {name} (visual): done" in out, out
        assert f"{name} (visual)" in out and "100%" in out
    assert "Analysis completed: 2 files, 0 failed" in out
    assert out.count(" ok") >= 2


def test_analyze_exits_non_zero_when_a_file_fails(web_server, client_env, tmp_path):
    server, media_root, export_root = web_server
    broken = media_root / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    try:
        server.wait_idle()
        result = run("analyze", str(media_root / "counter.mp4"), str(broken), "--cache-dir",
                     str(export_root / "cli-broken"), env=client_env)
    finally:
        broken.unlink()
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "✗ broken.mp4 (visual): failed" in out, out
    assert "✓ counter.mp4 (visual): done" in out
    assert "1 failed" in out
    summary = out[out.index("Analysis completed"):]
    assert "broken.mp4" in summary and "failed:" in summary


def test_analyze_refuses_clearly(web_server, client_env, tmp_path):
    server, media_root, export_root = web_server
    wrong = run("analyze", str(media_root / "counter.mp4"), "--cache-dir", str(export_root / "x"),
                env={**client_env, "SIGHTLINE_KEY": "sl-pro-wrong"})
    assert wrong.returncode == 2
    assert "401" in wrong.stderr and "Unknown or revoked license key" in wrong.stderr
    down = run("analyze", str(media_root / "counter.mp4"), "--cache-dir", str(export_root / "x"),
               "--server", "http://127.0.0.1:9", "--key", server.pro_key)
    assert down.returncode == 2 and "cannot reach the server at http://127.0.0.1:9" in down.stderr
    outside = run("analyze", str(tmp_path), "--cache-dir", str(tmp_path / "cache"), env=client_env)
    assert outside.returncode == 2 and "no media files" in outside.stderr
    assert run("analyze", "--help").returncode == 0


def test_search_prints_a_table_and_json(analysed, web_server, client_env):
    cache, _ = analysed
    _, media_root, _ = web_server
    table = run("search", "a counter", "--cache-dir", str(cache), "--max-results", "5", env=client_env)
    assert table.returncode == 0, table.stderr
    assert "5 moments for “a counter”" in table.stdout
    for column in ("File", "Timestamp", "Scene"):
        assert column in table.stdout
    assert str(media_root / "counter.mp4") in table.stdout or str(media_root / "fades.mp4") in table.stdout

    as_json = run("search", "a counter", "--cache-dir", str(cache), "--max-results", "40", "--json",
                  "--server", client_env["SIGHTLINE_SERVER"], "--key", client_env["SIGHTLINE_KEY"])
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert body["query"] == "a counter"
    files = {m["video_path"] for m in body["matches"]}
    assert files == {str(media_root / "counter.mp4"), str(media_root / "fades.mp4")}
    # counter.mp4 is 3 s, fades.mp4 10 s: one match per second of footage at most.
    assert len(body["matches"]) <= 14
    for match in body["matches"]:
        assert "image" not in match
        assert set(match) >= {"timestamp", "scene_start_timestamp", "scene_end_timestamp", "video_path"}
        assert match["scene_start_timestamp"] <= match["timestamp"] <= match["scene_end_timestamp"]


def test_transcript_prints_subtitles(web_server, client_env, tmp_path):
    server, media_root, export_root = web_server
    cache = export_root / "cli-speech"
    server.wait_idle()
    analysed = run("analyze", str(media_root / "jfk.flac"), "--cache-dir", str(cache), "--speech", "en",
                   "--no-visual", env=client_env)
    assert analysed.returncode == 0, analysed.stdout + analysed.stderr
    assert "✓ jfk.flac (speech): done" in analysed.stdout

    srt = run("transcript", str(media_root / "jfk.flac"), "--cache-dir", str(cache), "--format", "srt", env=client_env)
    assert srt.returncode == 0, srt.stderr
    assert srt.stdout.startswith("1\n00:00:00,000 --> ")
    assert "country" in srt.stdout.lower()
    vtt = run("transcript", str(media_root / "jfk.flac"), "--cache-dir", str(cache), "--format", "VTT", env=client_env)
    assert vtt.stdout.startswith("WEBVTT")

    binary = run("transcript", str(media_root / "jfk.flac"), "--cache-dir", str(cache), "--format", "docx",
                 env=client_env)
    assert binary.returncode == 2 and "--output" in binary.stderr
    docx = tmp_path / "jfk.docx"
    written = run("transcript", str(media_root / "jfk.flac"), "--cache-dir", str(cache), "--format", "docx",
                  "--output", str(docx), env=client_env)
    assert written.returncode == 0 and docx.read_bytes()[:2] == b"PK"

    missing = run("transcript", str(media_root / "counter.mp4"), "--cache-dir", str(cache), "--format", "srt",
                  env=client_env)
    assert missing.returncode == 1 and "has no transcript" in missing.stderr
