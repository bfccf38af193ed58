"""Stereo files with a different speaker on each channel (one lavalier per speaker) against
stereo recordings of one voice: decoding channels apart and telling the two cases apart."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import DATA
from tests.media_factory import speech_samples, two_speaker_channels, write_flac
from tests.text_match import wer, words
from workers import transcripts
from workers.media.audio import decode_audio, decode_channels, distinct_channels, downmix
from workers.pipeline.speech import transcribe_file


def test_channels_decode_apart_and_mono_stays_one_channel(tmp_path):
    stereo = two_speaker_channels()
    decoded = decode_channels(write_flac(tmp_path / "interview.flac", stereo))
    assert decoded.shape == stereo.shape and decoded.dtype == np.float32
    assert np.abs(decoded - stereo).max() < 1e-3  # lossless apart from 16-bit rounding
    mono = decode_channels(write_flac(tmp_path / "mono.flac", stereo[0]))
    assert mono.shape == (1, stereo.shape[1])
    assert np.abs(mono[0] - decode_audio(tmp_path / "mono.flac")).max() == 0


@pytest.mark.parametrize("bleed", [0.0, 0.15, 0.3])
def test_one_speaker_per_channel_is_detected(tmp_path, bleed):
    """Even with the other speaker bleeding in at -16 dB or -10 dB, each channel carries speech
    of its own."""
    decoded = decode_channels(write_flac(tmp_path / "interview.flac", two_speaker_channels(bleed)))
    report = distinct_channels(decoded)
    assert report.distinct and report.speech_channels == [0, 1]
    assert min(report.own_speech_s) >= 0.5 and report.analysed_s == pytest.approx(11.0, abs=0.05)


def test_overlapping_speakers_are_still_two():
    report = distinct_channels(two_speaker_channels(bleed=0.2, offset_s=0.0))
    assert report.distinct and report.speech_channels == [0, 1]


def test_one_voice_on_two_channels_stays_one(tmp_path):
    """Duplicated mono, panned mono, and two spaced microphones (a delay and a level step) all
    carry one voice; the real jfk.flac is such a stereo file."""
    voice = speech_samples("jfk.flac")
    cases = {
        "duplicated": np.stack([voice, voice]),
        "panned": np.stack([voice, 0.3 * voice]),
        "spaced microphones": np.stack([voice, 0.7 * np.roll(voice, 16)]),
        "far microphone": np.stack([voice, 0.5 * np.roll(voice, 40)]),
    }
    for name, channels in cases.items():
        report = distinct_channels(decode_channels(write_flac(tmp_path / f"{name}.flac", channels)))
        assert not report.distinct, name
        assert len(report.speech_channels) == 1, name
    assert not distinct_channels(decode_channels(DATA / "jfk.flac")).distinct


def test_silent_or_single_channels_are_not_split():
    voice = speech_samples("jfk.flac")
    assert not distinct_channels(np.stack([voice, np.zeros_like(voice)])).distinct
    assert not distinct_channels(voice).distinct
    assert distinct_channels(voice[np.newaxis, :]).speech_channels == [0]


# --- transcription channel by channel (the real whisper-tiny.en) --------------------------------

MODEL = "whisper-tiny.en"
JFK_TEXT = json.loads((DATA / "transcripts.json").read_text())["jfk.flac"]["text"]


def _text(segments: list[dict]) -> str:
    return "".join(s["text"] for s in segments)


def _transcribe_alone(tmp_path, name: str, samples: np.ndarray, hash_str: str) -> str:
    path = write_flac(tmp_path / f"{name}.flac", samples)
    transcribe_file(str(path), tmp_path / "cache", hash_str, "en", MODEL)
    return _text(transcripts.load_transcript(tmp_path / "cache", hash_str)["segments"])


@pytest.mark.parametrize("bleed", [0.0, 0.15])
def test_one_speaker_per_channel_is_transcribed_channel_by_channel(tmp_path, bleed):
    """Each voice comes out on its own channel, in time order, at a word error rate no worse
    than faster-whisper's on that channel alone; with bleed (the other speaker at -16 dB),
    words heard only as bleed are dropped, which whisper on the channel alone cannot do."""
    stereo = two_speaker_channels(bleed)
    media = write_flac(tmp_path / "interview.flac", stereo)
    summary = transcribe_file(str(media), tmp_path / "cache", "00000000000000aa", "en", MODEL)
    assert summary["channels"] == [0, 1]
    stored = transcripts.load_transcript(tmp_path / "cache", "00000000000000aa")
    assert stored["channels"]["split"] is True and stored["channels"]["speech_channels"] == [0, 1]
    segments = stored["segments"]
    assert {s["channel"] for s in segments} == {0, 1}
    assert [s["start"] for s in segments] == sorted(s["start"] for s in segments)
    heard = {channel: _text([s for s in segments if s["channel"] == channel]) for channel in (0, 1)}

    # What each speaker said: JFK's reference text; for the other voice (no full reference
    # upstream), whisper's text of that voice recorded without bleed.
    truth = {0: JFK_TEXT, 1: _transcribe_alone(tmp_path, "clean1", two_speaker_channels(0.0)[1], "00000000000000c1")}
    alone = {c: _transcribe_alone(tmp_path, f"channel{c}", stereo[c], f"00000000000000b{c}") for c in (0, 1)}
    for channel in (0, 1):
        assert wer(truth[channel], heard[channel]) <= wer(truth[channel], alone[channel]), (heard, alone)
    assert "americans" in words(heard[0]) and "country" not in words(heard[1])
    if bleed == 0.0:
        assert wer(alone[0], heard[0]) == 0 and wer(alone[1], heard[1]) == 0
        assert wer(JFK_TEXT, heard[0]) == 0 and "comfy" in words(heard[1])
        # Both voices in one mix: the transcript of the downmix misses words of each.
        mix = _transcribe_alone(tmp_path, "mix", downmix(stereo), "00000000000000cc")
        assert wer(f"{heard[0]} {heard[1]}", mix) > 0.2
    else:
        assert wer(truth[1], heard[1]) < wer(truth[1], alone[1])  # the bleed words are gone


def test_one_voice_in_stereo_stays_one_transcript(tmp_path):
    """jfk.flac is itself stereo (the same voice on both channels), and so is a duplicated
    mono file: one transcript, without channels, as before."""
    voice = speech_samples("jfk.flac")
    for hash_str, media in (("000000000000000e", DATA / "jfk.flac"),
                            ("000000000000000f", write_flac(tmp_path / "duplicated.flac", np.stack([voice, voice])))):
        summary = transcribe_file(str(media), tmp_path / "cache", hash_str, "en", MODEL)
        assert summary["channels"] == []
        stored = transcripts.load_transcript(tmp_path / "cache", hash_str)
        assert stored["channels"]["count"] == 2 and stored["channels"]["split"] is False
        assert all("channel" not in s for s in stored["segments"])
        assert transcripts.segment_channels(stored) is None
        assert wer(JFK_TEXT, _text(stored["segments"])) == 0


def test_mono_files_have_no_channel_fields(tmp_path):
    media = write_flac(tmp_path / "mono.flac", speech_samples("hotwords.mp3"))
    transcribe_file(str(media), tmp_path / "cache", "00000000000000dd", "en", MODEL)
    stored = transcripts.load_transcript(tmp_path / "cache", "00000000000000dd")
    assert "channels" not in stored and all("channel" not in s for s in stored["segments"])


def test_a_surround_mix_is_downmixed_not_split(tmp_path):
    """5.1 keeps dialogue in the centre: even with different voices on its channels it is one
    transcript, as before."""
    import av

    left, right = two_speaker_channels()
    silent = np.zeros_like(left)
    planes = np.stack([left, right, silent, silent, silent, silent])  # FL FR FC LFE BL BR
    media = tmp_path / "film.flac"
    with av.open(str(media), "w") as container:
        stream = container.add_stream("flac", rate=16000, layout="5.1")
        frame = av.AudioFrame.from_ndarray((planes * 32767).astype(np.int16).T.reshape(1, -1).copy(),
                                           format="s16", layout="5.1")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    assert distinct_channels(decode_channels(media)).distinct  # the channels do differ ...
    transcribe_file(str(media), tmp_path / "cache", "0000000000000051", "en", MODEL)
    stored = transcripts.load_transcript(tmp_path / "cache", "0000000000000051")
    assert stored["channels"] == {"count": 6, "split": False, "speech_channels": [], "correlation": 1.0,
                                  "own_speech_s": [], "analysed_s": 0.0}  # ... but it is a film mix
    assert all("channel" not in s for s in stored["segments"])
