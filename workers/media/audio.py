"""Decode the audio track of any file PyAV reads into 16 kHz mono float32, without an ffmpeg binary.

Torch-free. Speech engines take the array this returns (openai-whisper would otherwise shell
out to an ``ffmpeg`` on PATH).
"""

from __future__ import annotations

import os

import av
import numpy as np

from workers.media.probe import MediaError

SAMPLE_RATE = 16000


class NoAudioStream(MediaError):
    """The file has no audio track to transcribe."""


class AudioDecodeError(MediaError):
    """The file's audio cannot be decoded (corrupt, truncated, or not media at all)."""


def has_audio_stream(path: str | os.PathLike) -> bool:
    try:
        with av.open(os.fspath(path), metadata_errors="ignore") as container:
            return bool(container.streams.audio)
    except av.error.FFmpegError:
        return False


def decode_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The first audio track of ``path`` as mono float32 in [-1, 1] at ``sample_rate`` Hz.

    Stereo and multichannel tracks are downmixed. Damaged packets are skipped so a file with
    a few bad frames still decodes; a file that is not media raises :class:`AudioDecodeError`,
    one with no audio track :class:`NoAudioStream`. A missing file raises FileNotFoundError.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"media file not found: {path}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise AudioDecodeError(f"cannot read {path}: {exc}") from exc
    with container:
        if not container.streams:
            raise AudioDecodeError(f"{path} is not a media file (no streams found)")
        if not container.streams.audio:
            raise NoAudioStream(f"{path} has no audio stream to transcribe")
        stream = container.streams.audio[0]
        # Decoding into a bytearray and viewing it with frombuffer avoids the extra copy
        # that concatenating a list of chunks would need (a 2-hour file is ~460 MB).
        buffer = bytearray()
        resampler = av.audio.resampler.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        bad_packets = 0
        decoded_any = False
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    bad_packets += 1
                    continue
                for frame in frames:
                    decoded_any = True
                    # Resampling by sample count, not pts: gaps or jumps in timestamps from a
                    # damaged or edited file must not make the resampler drop or pad audio.
                    frame.pts = None
                    for out in resampler.resample(frame):
                        buffer += out.to_ndarray().tobytes()
            for out in resampler.resample(None):
                buffer += out.to_ndarray().tobytes()
        except av.error.FFmpegError as exc:
            if not decoded_any:
                raise AudioDecodeError(f"cannot decode the audio of {path}: {exc}") from exc
            # A truncated file: keep what was decoded before the damage.
        del resampler
    if not decoded_any and bad_packets:
        raise AudioDecodeError(f"cannot decode the audio of {path}: every audio packet is damaged")
    audio = np.frombuffer(buffer, dtype=np.float32)
    # The resampler's filter can overshoot full scale slightly; keep the documented range.
    np.clip(audio, -1.0, 1.0, out=audio)
    return audio
