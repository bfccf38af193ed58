"""Stereo files with a different speaker on each channel (one lavalier per speaker) against
stereo recordings of one voice: decoding channels apart and telling the two cases apart."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import DATA
from tests.media_factory import speech_samples, two_speaker_channels, write_flac
from workers.media.audio import decode_audio, decode_channels, distinct_channels


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
