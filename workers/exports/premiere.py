"""A Premiere Pro / Final Cut 7 XML (XMEML v4) sequence from a list of clips
(``POST /export/premiere-xml``). DaVinci Resolve and Avid import the same file.

Clips sit back to back on the timeline. Each clipitem carries its source's own frame rate:
``in``/``out`` count source frames and ``start``/``end`` count sequence frames, so a 29.97
clip keeps its exact frames in a 24 fps sequence. The XML is built with ElementTree, which
escapes every name, and written atomically.
"""

from __future__ import annotations

import math
import os
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from workers.exports.clips import parse_clip, probe_source
from workers.media.probe import MediaInfo
from workers.store import atomic_write_bytes

_HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE xmeml>\n'
_DEFAULT_FRAME = (1920, 1080)
_AUDIO_RATE = 48000
# Characters XML 1.0 cannot hold at all (control characters, lone surrogates from
# undecodable file names); ElementTree would write them and produce a broken file.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class Rate:
    """An FCP XML rate: integer ``timebase`` plus the ``ntsc`` flag (x 1000/1001)."""

    timebase: int
    ntsc: bool

    @property
    def fps(self) -> Fraction:
        return Fraction(self.timebase * 1000, 1001) if self.ntsc else Fraction(self.timebase)


def rate_for_fps(fps: float | Fraction) -> Rate:
    """24 -> (24, FALSE); 29.97 or 30000/1001 -> (30, TRUE); 23.976 -> (24, TRUE)."""
    fps = Fraction(fps)
    if fps <= 0:
        raise ValueError(f"frame rate must be positive, got {float(fps):g}")
    nominal = round(fps * Fraction(1001, 1000))
    is_ntsc = (
        nominal > 0
        and abs(fps - Fraction(nominal * 1000, 1001)) < Fraction(1, 200)
        and abs(fps - round(fps)) >= Fraction(1, 200)
    )
    if is_ntsc:
        return Rate(int(nominal), True)
    return Rate(max(1, round(fps)), False)


def export_premiere_xml(
    clips: list[dict],
    output_path: str,
    sequence_name: str = "Untitled Sequence",
    timebase: float = 24,
) -> dict:
    """Write the sequence and return ``{output_path, clip_count, total_duration_seconds}``.

    ``timebase`` is the sequence rate (24, 25, 30, or an NTSC rate such as 29.97). Raises
    ValueError for a bad argument or a clip whose source is missing or unreadable (the
    message names it); an ``end_seconds`` past the end of its source is trimmed to it.
    """
    if not isinstance(clips, list) or not clips:
        raise ValueError("clips must be a non-empty list")
    target = _output_file(output_path)
    sequence_rate = _sequence_rate(timebase)
    if sequence_name is None or (isinstance(sequence_name, str) and not sequence_name.strip()):
        sequence_name = "Untitled Sequence"
    if not isinstance(sequence_name, str):
        raise ValueError("sequence_name must be a string")

    placed = _place_clips(clips, sequence_rate)
    root = _build_document(placed, sequence_name, sequence_rate)
    ET.indent(root, space="  ")
    xml_text = _HEADER + ET.tostring(root, encoding="unicode") + "\n"
    atomic_write_bytes(target, xml_text.encode("utf-8"))
    total_frames = placed[-1].seq_end
    return {
        "output_path": str(target),
        "clip_count": len(placed),
        "total_duration_seconds": round(float(total_frames / sequence_rate.fps), 3),
    }


# --- validation and timing -----------------------------------------------------------------


def _output_file(output_path) -> Path:
    if not isinstance(output_path, str | os.PathLike) or not os.fspath(output_path):
        raise ValueError("output_path is required")
    path = Path(output_path).expanduser()
    if not path.is_absolute():
        raise ValueError(f"output_path must be an absolute path, got {os.fspath(output_path)!r}")
    if path.is_dir():
        raise ValueError(f"output_path is a folder, not a file: {path}")
    return path


def _sequence_rate(timebase) -> Rate:
    if isinstance(timebase, bool) or not isinstance(timebase, int | float) or not math.isfinite(timebase):
        raise ValueError(f"timebase must be a frame rate such as 24, 25 or 29.97, got {timebase!r}")
    if not 1 <= timebase <= 240:
        raise ValueError(f"timebase must be between 1 and 240, got {timebase!r}")
    return rate_for_fps(Fraction(timebase).limit_denominator(1001))


@dataclass(frozen=True)
class _Placed:
    source: str
    info: MediaInfo
    rate: Rate  # the clipitem's rate: the source's own, or the sequence's for audio-only
    media_frames: int  # the whole source, in `rate` frames
    src_in: int
    src_out: int
    seq_start: int
    seq_end: int


def _frames(seconds: float | Fraction, fps: Fraction) -> int:
    # Round half up: Python's round() goes to even, which would move 10.5 and 11.5 differently.
    return math.floor(Fraction(seconds) * fps + Fraction(1, 2))


def _place_clips(clips: list[dict], sequence_rate: Rate) -> list[_Placed]:
    placed: list[_Placed] = []
    cursor = 0
    for number, clip in enumerate(clips, start=1):
        try:
            source, start, end, _ = parse_clip(clip)
        except ValueError as exc:
            raise ValueError(f"clip {number}: {exc}") from exc
        if not os.path.isfile(source):
            raise ValueError(f"clip {number}: source file not found: {source}")
        try:
            info = probe_source(source)
        except ValueError as exc:
            raise ValueError(f"clip {number}: {exc}") from None
        still = info.kind == "image"
        if info.duration and not still:
            if start >= info.duration:
                raise ValueError(
                    f"clip {number}: start_seconds ({start:g}) is at or past the end of {source} "
                    f"({info.duration:g} s)"
                )
            end = min(end, info.duration)
        rate = rate_for_fps(info.frame_rate) if not still and info.frame_rate else sequence_rate
        src_in = _frames(start, rate.fps)
        src_out = max(_frames(end, rate.fps), src_in + 1)
        length = max(1, _frames(Fraction(src_out - src_in) / rate.fps, sequence_rate.fps))
        if info.duration and not still:
            media_frames = max(_frames(info.duration, rate.fps), src_out)
        else:
            media_frames = src_out
        placed.append(_Placed(source, info, rate, media_frames, src_in, src_out, cursor, cursor + length))
        cursor += length
    return placed


# --- the document --------------------------------------------------------------------------


def _text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def _sub(parent: ET.Element, tag: str, text: str | int | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = _text(str(text))
    return element


def _add_rate(parent: ET.Element, rate: Rate) -> None:
    element = _sub(parent, "rate")
    _sub(element, "timebase", rate.timebase)
    _sub(element, "ntsc", "TRUE" if rate.ntsc else "FALSE")


def _add_timecode(parent: ET.Element, rate: Rate) -> None:
    timecode = _sub(parent, "timecode")
    _add_rate(timecode, rate)
    _sub(timecode, "string", "00:00:00:00")
    _sub(timecode, "frame", 0)
    _sub(timecode, "displayformat", "NDF")


def _add_video_characteristics(parent: ET.Element, rate: Rate, width: int, height: int) -> None:
    characteristics = _sub(parent, "samplecharacteristics")
    _add_rate(characteristics, rate)
    _sub(characteristics, "width", width)
    _sub(characteristics, "height", height)
    _sub(characteristics, "anamorphic", "FALSE")
    _sub(characteristics, "pixelaspectratio", "square")
    _sub(characteristics, "fielddominance", "none")


def _add_audio_characteristics(parent: ET.Element, sample_rate: int) -> None:
    characteristics = _sub(parent, "samplecharacteristics")
    _sub(characteristics, "depth", 16)
    _sub(characteristics, "samplerate", sample_rate)


class _Files:
    """The first reference to a source carries its full <file>; later ones only its id."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}
        self._written: set[str] = set()

    def file_id(self, source: str) -> str:
        return self._ids.setdefault(source, f"file-{len(self._ids) + 1}")

    def add(self, parent: ET.Element, clip: _Placed) -> None:
        file_id = self.file_id(clip.source)
        element = _sub(parent, "file", id=file_id)
        if file_id in self._written:
            return
        self._written.add(file_id)
        info = clip.info
        _sub(element, "name", Path(clip.source).name)
        # as_uri() percent-encodes spaces and non-ASCII bytes, so every NLE reads the path back.
        _sub(element, "pathurl", Path(clip.source).as_uri())
        _add_rate(element, clip.rate)
        _sub(element, "duration", clip.media_frames)
        media = _sub(element, "media")
        if info.has_video:
            video = _sub(media, "video")
            width, height = info.width or _DEFAULT_FRAME[0], info.height or _DEFAULT_FRAME[1]
            _add_video_characteristics(video, clip.rate, width, height)
        if info.audio_channels:
            audio = _sub(media, "audio")
            _add_audio_characteristics(audio, info.audio_sample_rate or _AUDIO_RATE)
            _sub(audio, "channelcount", info.audio_channels)


@dataclass
class _Item:
    """One clipitem to be written: which clip, on which track, at which index."""

    clip: _Placed
    element_id: str
    media_type: str  # "video" | "audio"
    track_index: int  # 1-based, within its media type
    clip_index: int  # 1-based position on its track
    source_track: int = 1  # the audio channel this item plays


def _plan_items(placed: list[_Placed], audio_tracks: int) -> tuple[list[_Item], dict[int, list[_Item]]]:
    """Every clipitem up front, so each can link to its siblings of the same clip."""
    items: list[_Item] = []
    by_clip: dict[int, list[_Item]] = {}
    counters: dict[tuple[str, int], int] = {}

    def new_item(position: int, clip: _Placed, media_type: str, track: int) -> None:
        counters[(media_type, track)] = counters.get((media_type, track), 0) + 1
        item = _Item(clip, f"clipitem-{len(items) + 1}", media_type, track,
                     counters[(media_type, track)], source_track=track)
        items.append(item)
        by_clip.setdefault(position, []).append(item)

    # Document order: the video track first, then each audio track, so a file's first
    # (full) <file> element comes before its id-only references.
    for position, clip in enumerate(placed):
        if clip.info.has_video:
            new_item(position, clip, "video", 1)
    for track in range(1, audio_tracks + 1):
        for position, clip in enumerate(placed):
            if clip.info.audio_channels >= track:
                new_item(position, clip, "audio", track)
    return items, by_clip


def _build_document(placed: list[_Placed], sequence_name: str, rate: Rate) -> ET.Element:
    root = ET.Element("xmeml", version="4")
    sequence = _sub(root, "sequence", id="sequence-1")
    _sub(sequence, "uuid", str(uuid.uuid4()))
    _sub(sequence, "duration", placed[-1].seq_end)
    _add_rate(sequence, rate)
    _sub(sequence, "name", sequence_name)
    media = _sub(sequence, "media")

    first_video = next((c.info for c in placed if c.info.has_video), None)
    width = (first_video.width if first_video else None) or _DEFAULT_FRAME[0]
    height = (first_video.height if first_video else None) or _DEFAULT_FRAME[1]
    # Stereo sources go on a pair of tracks, one channel each, as Premiere itself writes them.
    audio_tracks = min(max((c.info.audio_channels for c in placed), default=0), 2)
    items, by_clip = _plan_items(placed, audio_tracks)
    sibling_of = {item.element_id: by_clip[position] for position, group in by_clip.items() for item in group}

    video = _sub(media, "video")
    video_format = _sub(video, "format")
    _add_video_characteristics(video_format, rate, width, height)
    video_track = _sub(video, "track")

    audio = _sub(media, "audio")
    _sub(audio, "numOutputChannels", 2)
    audio_format = _sub(audio, "format")
    _add_audio_characteristics(audio_format, _AUDIO_RATE)
    audio_track_elements = {}
    for track in range(1, audio_tracks + 1):
        attrib = {"premiereTrackType": "Stereo" if audio_tracks == 2 else "Mono"}
        if audio_tracks == 2:
            attrib |= {"currentExplodedTrackIndex": str(track - 1), "totalExplodedTrackCount": "2"}
        audio_track_elements[track] = _sub(audio, "track", **attrib)

    files = _Files()
    for item in items:
        parent = video_track if item.media_type == "video" else audio_track_elements[item.track_index]
        _add_clipitem(parent, item, sibling_of[item.element_id], files)

    for track_element in [video_track, *audio_track_elements.values()]:
        _sub(track_element, "enabled", "TRUE")
        _sub(track_element, "locked", "FALSE")
    _add_timecode(sequence, rate)
    return root


def _add_clipitem(parent: ET.Element, item: _Item, siblings: list[_Item], files: _Files) -> None:
    clip = item.clip
    element = _sub(parent, "clipitem", id=item.element_id)
    _sub(element, "masterclipid", f"masterclip-{files.file_id(clip.source).removeprefix('file-')}")
    _sub(element, "name", Path(clip.source).name)
    _sub(element, "enabled", "TRUE")
    _sub(element, "duration", clip.media_frames)
    _add_rate(element, clip.rate)
    _sub(element, "start", clip.seq_start)
    _sub(element, "end", clip.seq_end)
    _sub(element, "in", clip.src_in)
    _sub(element, "out", clip.src_out)
    if item.media_type == "video":
        _sub(element, "alphatype", "none")
    files.add(element, clip)
    if item.media_type == "audio":
        source_track = _sub(element, "sourcetrack")
        _sub(source_track, "mediatype", "audio")
        _sub(source_track, "trackindex", item.source_track)
    if len(siblings) > 1:
        for sibling in siblings:
            link = _sub(element, "link")
            _sub(link, "linkclipref", sibling.element_id)
            _sub(link, "mediatype", sibling.media_type)
            _sub(link, "trackindex", sibling.track_index)
            _sub(link, "clipindex", sibling.clip_index)
