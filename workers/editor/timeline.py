"""The cut written out through OpenTimelineIO, so an NLE opens what was edited here.

One video track; each active segment is a clip whose source range is the segment's range in
its file, at the file's own rate. ``otio`` is OTIO's JSON; ``fcp_xml`` is Final Cut Pro 7 XML
(the otio-fcp-adapter plugin), which Premiere and Resolve import too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import opentimelineio as otio

FORMATS = {"otio": "otio_json", "fcp_xml": "fcp_xml"}


@dataclass(frozen=True)
class TimelineClip:
    path: str
    name: str
    start: float
    end: float
    fps: float
    media_duration: float
    source: str = "original"


SMPTE_RATES = (24, 25, 30, 48, 50, 60, 120)


def _timecode_rate(fps: float) -> float:
    """FCP XML needs a SMPTE timecode rate: a rate like 10 fps is written at the smallest SMPTE
    rate it divides (10 → 30), so every frame still lands on a whole tick."""
    if otio.opentime.RationalTime.is_smpte_timecode_rate(fps):
        return fps
    for rate in SMPTE_RATES:
        if abs(rate / fps - round(rate / fps)) < 1e-6:
            return float(rate)
    return 30.0


def build_timeline(name: str, clips: list[TimelineClip], smpte: bool = False) -> otio.schema.Timeline:
    timeline = otio.schema.Timeline(name=name)
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    for clip in clips:
        rate = _timecode_rate(clip.fps) if smpte else clip.fps
        reference = otio.schema.ExternalReference(
            target_url=Path(clip.path).as_uri(),
            available_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate),
                                                    otio.opentime.RationalTime(round(clip.media_duration * rate), rate)))
        first = round(clip.start * rate)
        frames = max(1, round(clip.end * rate) - first)
        track.append(otio.schema.Clip(
            name=clip.name, media_reference=reference,
            source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(first, rate),
                                                 otio.opentime.RationalTime(frames, rate)),
            metadata={"sightline": {"source": clip.source}}))
    return timeline


def write_timeline(name: str, clips: list[TimelineClip], fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown timeline format {fmt!r}; use one of {', '.join(FORMATS)}")
    return otio.adapters.write_to_string(build_timeline(name, clips, smpte=fmt == "fcp_xml"), FORMATS[fmt])
