"""Transcript exports read back with each format's own tools: python-docx, pypdf, csv, and
SRT/WebVTT parsed by their grammar."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from workers.exports.transcript import (
    FONT_PATH,
    FORMATS,
    PDF_ROWS_PER_PAGE,
    SILENCE_TEXT,
    default_output_path,
    export_transcript,
)

SEGMENTS = [
    [0.32, " Hello world.", 5.84],
    [5.84, " Grüße aus München, ça va?", 11.2],
    [14.0, "=HYPERLINK(\"http://evil\")", 15.5],  # 2.8 s gap before: a silence row
    [15.5, "-5 degrees outside", 3725.25],
]


def _cues(text: str, separator: str) -> list[tuple[str, str, str]]:
    pattern = re.compile(rf"(\d\d:\d\d:\d\d{re.escape(separator)}\d{{3}}) --> (\d\d:\d\d:\d\d{re.escape(separator)}\d{{3}})\n(.+)")
    return pattern.findall(text)


def test_txt_lists_segments_and_silences(tmp_path):
    result = export_transcript(SEGMENTS, "txt", tmp_path / "t.txt", display_name="Interview")
    assert result == {"output_path": str(tmp_path / "t.txt"), "format": "txt", "row_count": 5}
    lines = (tmp_path / "t.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "Interview"
    assert "[00:00:00 - 00:00:05] Hello world." in lines
    assert f"[00:00:11 - 00:00:14] {SILENCE_TEXT}" in lines
    assert "[00:00:15 - 01:02:05] -5 degrees outside" in lines

    quiet = export_transcript(SEGMENTS, "txt", tmp_path / "q.txt", include_silences=False)
    assert quiet["row_count"] == 4 and SILENCE_TEXT not in (tmp_path / "q.txt").read_text()


def test_csv_round_trips_and_defuses_formulas(tmp_path):
    export_transcript(SEGMENTS, "csv", tmp_path / "t.csv", include_silences=False)
    with open(tmp_path / "t.csv", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["text"] for r in rows] == ["Hello world.", "Grüße aus München, ça va?",
                                         "'=HYPERLINK(\"http://evil\")", "'-5 degrees outside"]
    assert [float(r["start_seconds"]) for r in rows] == [0.32, 5.84, 14.0, 15.5]
    assert rows[3]["end"] == "01:02:05" and float(rows[3]["end_seconds"]) == 3725.25


def test_docx_holds_every_segment(tmp_path):
    from docx import Document

    result = export_transcript(SEGMENTS, "docx", tmp_path / "t.docx", display_name="Mein Transkript")
    document = Document(str(tmp_path / "t.docx"))
    text = "\n".join(p.text for p in document.paragraphs)
    assert document.paragraphs[0].text == "Mein Transkript"
    for _, segment_text, _ in SEGMENTS:
        assert segment_text.strip() in text
    assert SILENCE_TEXT in text and result["row_count"] == 5


def test_pdf_has_forty_rows_a_page_and_extractable_umlauts(tmp_path):
    from pypdf import PdfReader

    assert FONT_PATH.is_file()
    segments = [[i * 2.0, f"Zeile {i}: Grüße aus Köln", i * 2.0 + 1.5] for i in range(2 * PDF_ROWS_PER_PAGE + 5)]
    result = export_transcript(segments, "pdf", tmp_path / "t.pdf", display_name="Übersicht")
    reader = PdfReader(str(tmp_path / "t.pdf"))
    assert result["row_count"] == len(segments)
    assert len(reader.pages) == 3
    first = reader.pages[0].extract_text()
    assert "Übersicht" in first and "Zeile 0: Grüße aus Köln" in first
    assert f"Zeile {PDF_ROWS_PER_PAGE - 1}:" in first and f"Zeile {PDF_ROWS_PER_PAGE}:" not in first
    assert f"Zeile {len(segments) - 1}: Grüße" in reader.pages[2].extract_text()


def test_srt_and_vtt_parse_back_with_matching_times(tmp_path):
    export_transcript(SEGMENTS, "srt", tmp_path / "t.srt")
    export_transcript(SEGMENTS, "vtt", tmp_path / "t.vtt")
    srt = _cues((tmp_path / "t.srt").read_text(encoding="utf-8"), ",")
    vtt_text = (tmp_path / "t.vtt").read_text(encoding="utf-8")
    vtt = _cues(vtt_text, ".")
    assert vtt_text.startswith("WEBVTT\n")
    expected = [("00:00:00{s}320", "00:00:05{s}840", "Hello world."),
                ("00:00:05{s}840", "00:00:11{s}200", "Grüße aus München, ça va?"),
                ("00:00:14{s}000", "00:00:15{s}500", "=HYPERLINK(\"http://evil\")"),
                ("00:00:15{s}500", "01:02:05{s}250", "-5 degrees outside")]
    assert srt == [tuple(part.format(s=",") for part in cue) for cue in expected]  # no silence cues
    assert vtt == [tuple(part.format(s=".") for part in cue) for cue in expected]
    assert (tmp_path / "t.srt").read_text().startswith("1\n00:00:00,320 --> ")


def test_bad_requests_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="txt, csv, docx, pdf, srt, vtt"):
        export_transcript(SEGMENTS, "xls", tmp_path / "t.xls")
    with pytest.raises(ValueError, match=r"segments\[1\]"):
        export_transcript([[0, "ok", 1], [2, "bad"]], "txt", tmp_path / "t.txt")
    with pytest.raises(ValueError, match=r"segments\[0\].*before it starts"):
        export_transcript([[5, "backwards", 1]], "txt", tmp_path / "t.txt")
    with pytest.raises(ValueError, match="folder"):
        export_transcript(SEGMENTS, "txt", tmp_path)
    blocker = tmp_path / "a file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot write the transcript"):
        export_transcript(SEGMENTS, "pdf", blocker / "t.pdf")
    assert not list(tmp_path.rglob("*.tmp"))


def test_export_replaces_an_existing_file_whole(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("old content " * 1000)
    export_transcript(SEGMENTS[:1], "txt", target)
    assert target.read_text(encoding="utf-8") == "Transcript\n\n[00:00:00 - 00:00:05] Hello world.\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]


def test_default_output_path_prefers_the_desktop(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_output_path("My Transcript", "pdf") == str(tmp_path / "My Transcript.pdf")
    (tmp_path / "Desktop").mkdir()
    assert default_output_path("a/b: c", "docx") == str(tmp_path / "Desktop" / "a_b_ c.docx")
    result = export_transcript(SEGMENTS, "srt", None, display_name="Interview")
    assert Path(result["output_path"]) == tmp_path / "Desktop" / "Interview.srt"
    assert set(FORMATS) == {"txt", "csv", "docx", "pdf", "srt", "vtt"}


# One speaker per channel (an interview on two lavaliers): rows overlap and carry a channel.
INTERVIEW = [[0.0, " So, where did it start?", 2.5], [2.0, " In Berlin, in 1989.", 6.0],
             [4.0, " Really?", 4.6], [9.0, " Yes.", 9.5]]
CHANNELS = [0, 1, 0, 1]


def test_every_format_says_which_channel_spoke(tmp_path):
    from docx import Document
    from pypdf import PdfReader

    for fmt in FORMATS:
        export_transcript(INTERVIEW, fmt, tmp_path / f"i.{fmt}", channels=CHANNELS)
    txt = (tmp_path / "i.txt").read_text(encoding="utf-8").splitlines()
    assert "[00:00:00 - 00:00:02] Channel 1: So, where did it start?" in txt
    assert "[00:00:02 - 00:00:06] Channel 2: In Berlin, in 1989." in txt
    # The gap on channel 1 while channel 2 speaks is no silence; the one after everyone is.
    assert [line for line in txt if SILENCE_TEXT in line] == [f"[00:00:06 - 00:00:09] {SILENCE_TEXT}"]
    with open(tmp_path / "i.csv", encoding="utf-8-sig", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["text"] != SILENCE_TEXT]
    assert [(r["text"], r["channel"]) for r in rows] == [("So, where did it start?", "1"), ("In Berlin, in 1989.", "2"),
                                                          ("Really?", "1"), ("Yes.", "2")]
    docx_text = "\n".join(p.text for p in Document(str(tmp_path / "i.docx")).paragraphs)
    assert "Channel 2: In Berlin, in 1989." in docx_text
    assert "Channel 1: Really?" in PdfReader(str(tmp_path / "i.pdf")).pages[0].extract_text()
    assert [c[2] for c in _cues((tmp_path / "i.srt").read_text(encoding="utf-8"), ",")][:2] == [
        "Channel 1: So, where did it start?", "Channel 2: In Berlin, in 1989."]
    vtt = _cues((tmp_path / "i.vtt").read_text(encoding="utf-8"), ".")
    assert vtt[1] == ("00:00:02.000", "00:00:06.000", "<v Channel 2>In Berlin, in 1989.")


def test_without_channels_the_files_are_as_before(tmp_path):
    export_transcript(INTERVIEW, "csv", tmp_path / "plain.csv")
    with open(tmp_path / "plain.csv", encoding="utf-8-sig", newline="") as handle:
        assert next(csv.reader(handle)) == ["start", "end", "start_seconds", "end_seconds", "text"]
    export_transcript(INTERVIEW, "txt", tmp_path / "plain.txt", channels=[None] * 4)
    assert "Channel" not in (tmp_path / "plain.txt").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="one channel"):
        export_transcript(INTERVIEW, "txt", tmp_path / "x.txt", channels=[0, 1])
    with pytest.raises(ValueError, match=r"channels\[1\]"):
        export_transcript(INTERVIEW, "txt", tmp_path / "x.txt", channels=[0, "left", 0, 1])
