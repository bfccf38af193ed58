"""Premiere XML export, read back with OpenTimelineIO's FCP XML adapter (as an NLE would)."""

from __future__ import annotations

import shutil
import subprocess
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path

import opentimelineio as otio
import pytest

from workers.exports.ffmpeg import ffmpeg_exe
from workers.exports.premiere import export_premiere_xml

DATA = Path(__file__).resolve().parent / "data"
COUNTER = DATA / "counter.mp4"  # 10 fps, 3 s, no audio


@pytest.fixture()
def counter(tmp_path) -> str:
    return str(shutil.copy(COUNTER, tmp_path / "counter.mp4"))


@pytest.fixture(scope="module")
def ntsc_stereo(tmp_path_factory) -> str:
    """A 4 s 29.97 fps clip with a stereo 48 kHz tone, made by the real ffmpeg."""
    path = tmp_path_factory.mktemp("ntsc") / "ntsc stereo.mov"
    subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-loglevel", "error",
         "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30000/1001",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", "4", "-ac", "2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-c:a", "aac", str(path)],
        check=True, timeout=120,
    )
    return str(path)


def read_timeline(path: str) -> otio.schema.Timeline:
    return otio.adapters.read_from_file(path, adapter_name="fcp_xml")


def url_path(url: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlparse(url).path)


def test_sequence_opens_with_the_requested_clips_ranges_and_rate(counter, tmp_path):
    output = tmp_path / "exports" / "highlights.xml"
    clips = [
        {"source_path": counter, "start_seconds": 1, "end_seconds": 2.5},
        {"source_path": counter, "start_seconds": 0, "end_seconds": 1},
    ]

    result = export_premiere_xml(clips, str(output), sequence_name="Interview Highlights", timebase=24)

    assert result == {"output_path": str(output), "clip_count": 2, "total_duration_seconds": 2.5}
    timeline = read_timeline(str(output))
    assert timeline.name == "Interview Highlights"
    assert timeline.global_start_time.rate == 24
    video = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video]
    assert len(video) == 1
    found = list(video[0].find_clips())
    assert len(found) == 2
    for clip, wanted in zip(found, clips, strict=True):
        assert clip.name == "counter.mp4"
        assert clip.source_range.start_time.rate == 10  # in/out at the source's own rate
        assert clip.source_range.start_time.to_seconds() == pytest.approx(wanted["start_seconds"])
        assert clip.source_range.duration.to_seconds() == pytest.approx(
            wanted["end_seconds"] - wanted["start_seconds"])
        assert url_path(clip.media_reference.target_url) == counter
    ranges = [video[0].range_of_child_at_index(i) for i in range(2)]
    assert [(r.start_time.to_seconds(), r.duration.to_seconds()) for r in ranges] == [(0, 1.5), (1.5, 1.0)]
    # Back to back on the 24 fps timeline: 36 frames, then 24.
    items = ET.parse(output).getroot().findall("./sequence/media/video/track/clipitem")
    assert [(int(i.findtext("start")), int(i.findtext("end"))) for i in items] == [(0, 36), (36, 60)]


def test_ntsc_source_and_sequence_rates(ntsc_stereo, tmp_path):
    output = tmp_path / "ntsc.xml"

    result = export_premiere_xml(
        [{"source_path": ntsc_stereo, "start_seconds": 1, "end_seconds": 3}], str(output), timebase=29.97)

    assert result["clip_count"] == 1
    assert result["total_duration_seconds"] == pytest.approx(2.0, abs=1 / 29.97)
    root = ET.parse(output).getroot()
    assert root.tag == "xmeml" and root.get("version") == "4"
    sequence_rate = root.find("./sequence/rate")
    assert (sequence_rate.findtext("timebase"), sequence_rate.findtext("ntsc")) == ("30", "TRUE")
    video_item = root.find("./sequence/media/video/track/clipitem")
    assert (video_item.findtext("rate/timebase"), video_item.findtext("rate/ntsc")) == ("30", "TRUE")
    assert (int(video_item.findtext("in")), int(video_item.findtext("out"))) == (30, 90)
    characteristics = video_item.find("file/media/video/samplecharacteristics")
    assert (characteristics.findtext("width"), characteristics.findtext("height")) == ("320", "240")
    assert video_item.findtext("file/media/audio/channelcount") == "2"

    timeline = read_timeline(str(output))
    assert timeline.global_start_time.rate == pytest.approx(30000 / 1001)
    clip = timeline.tracks[0].find_clips()[0]
    assert clip.source_range.start_time.to_seconds() == pytest.approx(1.0, abs=1 / 29.97)
    assert clip.source_range.duration.to_seconds() == pytest.approx(2.0, abs=1 / 29.97)


def test_stereo_audio_sits_under_its_video_and_is_linked(ntsc_stereo, counter, tmp_path):
    output = tmp_path / "mixed.xml"
    export_premiere_xml(
        [{"source_path": counter, "start_seconds": 0, "end_seconds": 2},
         {"source_path": ntsc_stereo, "start_seconds": 0, "end_seconds": 2}],
        str(output), timebase=25,
    )

    root = ET.parse(output).getroot()
    audio_tracks = root.findall("./sequence/media/audio/track")
    assert len(audio_tracks) == 2  # one per stereo channel
    video_items = root.findall("./sequence/media/video/track/clipitem")
    ntsc_video = video_items[1]
    for channel, track in enumerate(audio_tracks, start=1):
        (item,) = track.findall("clipitem")  # counter.mp4 has no audio
        assert item.findtext("start") == ntsc_video.findtext("start") == "50"
        assert item.findtext("end") == ntsc_video.findtext("end")
        assert item.findtext("sourcetrack/trackindex") == str(channel)
        # The second reference to a file carries only its id.
        assert item.find("file").get("id") == ntsc_video.find("file").get("id")
        assert item.find("file/pathurl") is None
    linked = {link.findtext("linkclipref") for link in ntsc_video.findall("link")}
    assert linked == {ntsc_video.get("id"), *(t.find("clipitem").get("id") for t in audio_tracks)}

    timeline = read_timeline(str(output))
    audio = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Audio]
    assert len(audio) == 1  # the adapter folds the stereo pair into one track
    assert [c.name for c in audio[0].find_clips()] == ["ntsc stereo.mov"]


def test_hostile_and_non_ascii_names_round_trip(tmp_path):
    folder = tmp_path / "Project <2024> & co" / "été"
    folder.mkdir(parents=True)
    source = str(shutil.copy(COUNTER, folder / 'Интервью "take" #1 %20 & <b>.mp4'))
    output = tmp_path / "out dir" / "séquence.xml"
    name = 'Cut </name><script>alert(1)</script> & "more"'

    export_premiere_xml([{"source_path": source, "start_seconds": 0, "end_seconds": 1}], str(output),
                        sequence_name=name)

    timeline = read_timeline(str(output))
    assert timeline.name == name
    (clip,) = list(timeline.tracks[0].find_clips())
    assert clip.name == Path(source).name
    assert clip.media_reference.target_url.startswith("file:///")
    assert " " not in clip.media_reference.target_url
    assert url_path(clip.media_reference.target_url) == source


def test_missing_source_names_it_and_keeps_the_old_file(counter, tmp_path):
    output = tmp_path / "seq.xml"
    export_premiere_xml([{"source_path": counter, "start_seconds": 0, "end_seconds": 1}], str(output))
    before = output.read_bytes()
    missing = str(tmp_path / "gone" / "lost take.mp4")

    with pytest.raises(ValueError, match="lost take.mp4"):
        export_premiere_xml(
            [{"source_path": counter, "start_seconds": 0, "end_seconds": 1},
             {"source_path": missing, "start_seconds": 0, "end_seconds": 1}], str(output))

    assert output.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter.mp4", "seq.xml"]


def test_bad_arguments_are_clear_errors(counter, tmp_path):
    clip = {"source_path": counter, "start_seconds": 0, "end_seconds": 1}
    with pytest.raises(ValueError, match="greater than start_seconds"):
        export_premiere_xml([{**clip, "end_seconds": 0}], str(tmp_path / "a.xml"))
    with pytest.raises(ValueError, match="timebase"):
        export_premiere_xml([clip], str(tmp_path / "a.xml"), timebase=0)
    with pytest.raises(ValueError, match="absolute"):
        export_premiere_xml([clip], "relative.xml")
    with pytest.raises(ValueError, match="non-empty"):
        export_premiere_xml([], str(tmp_path / "a.xml"))
    assert not (tmp_path / "a.xml").exists()


def test_end_past_the_source_is_trimmed(counter, tmp_path):
    result = export_premiere_xml([{"source_path": counter, "start_seconds": 2, "end_seconds": 60}],
                                 str(tmp_path / "a.xml"), timebase=25)
    assert result["total_duration_seconds"] == 1.0
