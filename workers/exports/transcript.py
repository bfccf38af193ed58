"""Transcript export (``POST /export/transcript``): txt, csv, docx, pdf, srt, vtt.

Input is what clients hold: ``[[start_seconds, text, end_seconds], ...]`` (a fourth item, the
media path of /transcriptions rows, is ignored). With ``include_silences`` a ``[silence]``
row marks every gap of at least ``SILENCE_MIN_SECONDS`` between two segments, in the
document formats; subtitles (srt, vtt) never show silences. Every file is built in memory
and written atomically (temp + rename), so a failed export leaves no half file behind.

The PDF embeds DejaVu Sans (``workers/fonts/``), so umlauts, accents, Greek and Cyrillic
render; fpdf2's built-in fonts are Latin-1 only.

``channels`` (optional, one per segment: the 0-based audio channel /transcriptions reports for
files with one speaker per channel) labels each row "Channel N": a ``channel`` column in csv, a
"Channel N:" prefix in txt, docx, pdf and srt, a WebVTT voice tag (``<v Channel N>``) in vtt.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from workers.store import atomic_write_bytes
from workers.timecode import hhmmss

FORMATS = ("txt", "csv", "docx", "pdf", "srt", "vtt")
SILENCE_MIN_SECONDS = 1.0
SILENCE_TEXT = "[silence]"
PDF_ROWS_PER_PAGE = 40
FONT_PATH = Path(__file__).resolve().parent.parent / "fonts" / "DejaVuSans.ttf"

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Control characters and lone surrogates: no document format can hold them (docx/XML refuse).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f/\\:*?"<>|]+')


@dataclass(frozen=True)
class Row:
    start: float
    end: float
    text: str
    silence: bool = False
    channel: int | None = None

    @property
    def speaker(self) -> str:
        return "" if self.channel is None else f"Channel {self.channel + 1}"

    @property
    def labelled(self) -> str:
        return f"{self.speaker}: {self.text}" if self.speaker else self.text


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where} must be a number of seconds, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{where} must be a finite, non-negative number of seconds, got {value!r}")
    return value


def _clean(text: str) -> str:
    return " ".join(_UNPRINTABLE.sub("", text).split())


def parse_segments(segments, channels: Sequence | None = None) -> list[Row]:
    """Validate ``[[start, text, end], ...]`` (and ``channels``, one per segment); the message
    names the first bad row."""
    if not isinstance(segments, list | tuple):
        raise ValueError("segments must be a list of [start_seconds, text, end_seconds] arrays")
    if channels is not None:
        if not isinstance(channels, list | tuple) or len(channels) != len(segments):
            raise ValueError(f"channels must hold one channel (or null) per segment: {len(segments)} segments, "
                             f"got {len(channels) if isinstance(channels, list | tuple) else channels!r}")
        for index, channel in enumerate(channels):
            if channel is not None and (isinstance(channel, bool) or not isinstance(channel, int) or channel < 0):
                raise ValueError(f"channels[{index}] must be a channel number (0-based) or null, got {channel!r}")
    rows = []
    for index, segment in enumerate(segments):
        where = f"segments[{index}]"
        if not isinstance(segment, list | tuple) or len(segment) < 3:
            raise ValueError(f"{where} must be [start_seconds, text, end_seconds], got {segment!r}")
        start = _number(segment[0], f"{where} start")
        end = _number(segment[2], f"{where} end")
        if end < start:
            raise ValueError(f"{where} ends ({end:g} s) before it starts ({start:g} s)")
        text = segment[1]
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise ValueError(f"{where} text must be a string, got {type(text).__name__}")
        rows.append(Row(start, end, _clean(text), channel=None if channels is None else channels[index]))
    return rows


def with_silences(rows: list[Row], min_gap: float = SILENCE_MIN_SECONDS) -> list[Row]:
    out: list[Row] = []
    # Measured from the latest end so far: with one speaker per channel, rows overlap, and a
    # gap on one channel while the other speaks is not a silence.
    heard_until = None
    for row in rows:
        if heard_until is not None and row.start - heard_until >= min_gap:
            out.append(Row(heard_until, row.start, SILENCE_TEXT, silence=True))
        out.append(row)
        heard_until = row.end if heard_until is None else max(heard_until, row.end)
    return out


_hms = hhmmss


def _clock(seconds: float, separator: str) -> str:
    millis = int(round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _span(row: Row) -> str:
    return f"{_hms(row.start)} - {_hms(row.end)}"


# --- writers: each returns the file's bytes and how many rows it holds ----------------------


def _txt(rows: list[Row], title: str) -> tuple[bytes, int]:
    lines = [title, ""] + [f"[{_span(row)}] {row.labelled}" for row in rows]
    return ("\n".join(lines) + "\n").encode("utf-8"), len(rows)


def _csv_cell(text: str) -> str:
    # A spreadsheet runs a cell that starts with = + - @ (or tab/CR before one) as a formula.
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv(rows: list[Row], title: str) -> tuple[bytes, int]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    # The channel column appears only for transcripts made channel by channel, so the usual
    # five columns stay what spreadsheets and scripts already read.
    by_channel = any(row.channel is not None for row in rows)
    writer.writerow(["start", "end", "start_seconds", "end_seconds", "text"] + (["channel"] if by_channel else []))
    for row in rows:
        cells = [_hms(row.start), _hms(row.end), f"{row.start:.3f}", f"{row.end:.3f}", _csv_cell(row.text)]
        if by_channel:
            cells.append("" if row.channel is None else str(row.channel + 1))
        writer.writerow(cells)
    # The BOM makes Excel read the file as UTF-8 (umlauts intact); csv readers use utf-8-sig.
    return buffer.getvalue().encode("utf-8-sig"), len(rows)


def _docx(rows: list[Row], title: str) -> tuple[bytes, int]:
    from docx import Document
    from docx.shared import Pt, RGBColor

    document = Document()
    document.core_properties.title = title
    document.add_heading(title, level=1)
    for row in rows:
        paragraph = document.add_paragraph()
        paragraph.paragraph_format.space_after = Pt(2)
        stamp = paragraph.add_run(_span(row) + "\t")
        stamp.bold = True
        stamp.font.size = Pt(9)
        if row.speaker:
            paragraph.add_run(row.speaker + ": ").bold = True
        run = paragraph.add_run(row.text)
        if row.silence:
            run.italic = True
            run.font.color.rgb = RGBColor(0x80, 0x80, 0x80)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue(), len(rows)


def _pdf(rows: list[Row], title: str) -> tuple[bytes, int]:
    from fpdf import FPDF
    from fpdf.enums import MethodReturnValue, XPos, YPos

    margin, header_h, line_h = 15.0, 10.0, 5.0

    class _Document(FPDF):
        def header(self):
            self.set_font("body", size=12)
            self.set_text_color(0)
            self.cell(0, header_h - 2, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.ln(2)

        def footer(self):
            self.set_y(-margin + 3)
            self.set_font("body", size=8)
            self.set_text_color(120)
            self.cell(0, 5, f"{self.page_no()}/{{nb}}", align="C")

    pdf = _Document(format="A4", unit="mm")
    pdf.set_title(title)
    pdf.set_creator("sightline")
    pdf.add_font("body", fname=str(FONT_PATH))
    pdf.set_margins(margin, margin, margin)
    pdf.set_auto_page_break(True, margin=margin)
    # Row pitch chosen so PDF_ROWS_PER_PAGE one-line rows fill the space between header and footer.
    body_h = pdf.h - 2 * margin - header_h
    pitch = math.floor(body_h / PDF_ROWS_PER_PAGE * 100) / 100
    padding = max(0.0, pitch - line_h)
    time_w = 36.0
    text_w = pdf.w - 2 * margin - time_w
    pdf.add_page()
    for row in rows:
        pdf.set_font("body", size=9)
        lines = pdf.multi_cell(text_w, line_h, row.labelled or " ", dry_run=True, output=MethodReturnValue.LINES)
        height = max(1, len(lines)) * line_h + padding
        if pdf.get_y() + height > pdf.page_break_trigger and height < body_h:
            pdf.add_page()
        top, page = pdf.get_y(), pdf.page_no()
        pdf.set_text_color(90)
        pdf.set_font("body", size=8)
        pdf.cell(time_w, line_h, _span(row))
        pdf.set_font("body", size=9)
        pdf.set_text_color(128 if row.silence else 0)
        pdf.set_xy(margin + time_w, top)
        pdf.multi_cell(text_w, line_h, row.labelled or " ", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        # A row taller than a page breaks inside multi_cell; then only the padding is added.
        pdf.set_y(top + height if pdf.page_no() == page else pdf.get_y() + padding)
    return bytes(pdf.output()), len(rows)


def _subtitle_text(text: str) -> str:
    return text.replace("-->", "->").strip()


def _srt(rows: list[Row], title: str) -> tuple[bytes, int]:
    cues = [row for row in rows if not row.silence and row.text.strip()]
    blocks = [f"{n}\n{_clock(row.start, ',')} --> {_clock(row.end, ',')}\n{_subtitle_text(row.labelled)}\n"
              for n, row in enumerate(cues, 1)]
    return "\n".join(blocks).encode("utf-8"), len(cues)


def _vtt(rows: list[Row], title: str) -> tuple[bytes, int]:
    cues = [row for row in rows if not row.silence and row.text.strip()]
    blocks = ["WEBVTT\n"]
    for row in cues:
        text = _subtitle_text(row.text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        if row.speaker:
            text = f"<v {row.speaker}>{text}"
        blocks.append(f"{_clock(row.start, '.')} --> {_clock(row.end, '.')}\n{text}\n")
    return "\n".join(blocks).encode("utf-8"), len(cues)


_WRITERS = {"txt": _txt, "csv": _csv, "docx": _docx, "pdf": _pdf, "srt": _srt, "vtt": _vtt}


def normalize_format(fmt: str) -> str:
    cleaned = fmt.strip().lower().lstrip(".") if isinstance(fmt, str) else ""
    if cleaned not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; allowed: {', '.join(FORMATS)}")
    return cleaned


def _display_name(display_name) -> str:
    if display_name is None:
        return "Transcript"
    if not isinstance(display_name, str):
        raise ValueError(f"display_name must be a string, got {type(display_name).__name__}")
    return _clean(display_name) or "Transcript"


def default_output_path(display_name: str, fmt: str) -> str:
    """``~/Desktop/{display_name}.{fmt}``, or the home folder when there is no Desktop."""
    fmt = normalize_format(fmt)
    stem = _UNSAFE_FILENAME.sub("_", _display_name(display_name)).strip(" .") or "Transcript"
    home = Path.home()
    folder = home / "Desktop" if (home / "Desktop").is_dir() else home
    return str(folder / f"{stem[:200]}.{fmt}")


def render_transcript(segments: Sequence, fmt: str = "txt", display_name: str = "Transcript",
                      include_silences: bool = True, channels: Sequence | None = None) -> tuple[bytes, int]:
    """The file's bytes and its row count, in memory (the CLI prints them; the API writes them)."""
    fmt = normalize_format(fmt)
    rows = parse_segments(segments, channels)
    if include_silences:
        rows = with_silences(rows)
    return _WRITERS[fmt](rows, _display_name(display_name))


def export_transcript(segments: Sequence, fmt: str = "txt", output_path: str | os.PathLike | None = None,
                      display_name: str = "Transcript", include_silences: bool = True,
                      channels: Sequence | None = None) -> dict:
    """Write ``segments`` as ``fmt`` to ``output_path``; returns ``{output_path, format, row_count}``.

    ``row_count`` counts the rows in the file, silence rows included (subtitle formats: cues).
    Bad input raises ValueError; a path that cannot be written raises OSError naming it.
    """
    fmt = normalize_format(fmt)
    title = _display_name(display_name)
    data, count = render_transcript(segments, fmt, title, include_silences, channels)
    if output_path is None or (isinstance(output_path, str) and not output_path.strip()):
        output_path = default_output_path(title, fmt)
    path = Path(output_path).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    if path.is_dir():
        raise ValueError(f"output_path {str(path)!r} is a folder; give a file name such as {title}.{fmt}")
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write the transcript to {path}: {exc.strerror or exc}") from exc
    return {"output_path": str(path), "format": fmt, "row_count": count}
