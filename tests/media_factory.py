"""Small media files that tests build on the fly (with PyAV), so no test ships them."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from tests.conftest import DATA


def write_video(path: Path, seconds: int, size=(160, 96), rate=4, audio: np.ndarray | None = None,
                 codec="mpeg4") -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        audio_stream = container.add_stream("aac", rate=16000) if audio is not None else None
        for i in range(seconds * rate):
            pixels = np.full((size[1], size[0], 3), ((i * 7) % 255, 90, 200), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            _mux_audio(container, audio_stream, audio, 16000)


def distinct_copy(source: Path, target: Path, n: int) -> Path:
    """A playable copy of ``source`` with its own content hash: one byte differs in a part
    players ignore (the encoder tag, or a ``free`` box)."""
    data = bytearray(source.read_bytes())
    at = data.find(b"Lavf")
    if at < 0:
        at = data.find(b"free") + 4
    data[at] = ord("a") + n
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(bytes(data))
    return target


def jfk_samples(repeats: int = 1) -> np.ndarray:
    from workers.media.audio import decode_audio

    speech = decode_audio(str(DATA / "jfk.flac"))
    return np.concatenate([speech] * repeats).astype(np.float32)


def _pcm(channels: np.ndarray) -> tuple[np.ndarray, str]:
    """(channels, samples) or (samples,) float32 in [-1, 1] → one interleaved s16 plane and its layout."""
    pcm = np.atleast_2d(np.asarray(channels, dtype=np.float32))
    interleaved = (np.clip(pcm, -1, 1) * 32767).astype(np.int16).T.reshape(1, -1)
    return np.ascontiguousarray(interleaved), {1: "mono", 2: "stereo"}[pcm.shape[0]]


def _mux_audio(container, stream, channels: np.ndarray, rate: int) -> None:
    interleaved, layout = _pcm(channels)
    frame = av.AudioFrame.from_ndarray(interleaved, format="s16", layout=layout)
    frame.sample_rate = rate
    for packet in [*stream.encode(frame), *stream.encode(None)]:
        container.mux(packet)


def write_audio(path: Path, channels: np.ndarray, rate: int = 16000, codec: str = "flac") -> Path:
    """``channels`` ((channels, samples) or (samples,) float32 in [-1, 1]) as an audio file in
    ``codec`` (the container follows the file name)."""
    with av.open(str(path), "w") as container:
        _mux_audio(container, container.add_stream(codec, rate=rate, layout=_pcm(channels)[1]), channels, rate)
    return path


def write_flac(path: Path, channels: np.ndarray, rate: int = 16000) -> Path:
    """A 16-bit FLAC file: lossless, so decoding gives back exactly these samples (to 16-bit precision)."""
    return write_audio(path, channels, rate, "flac")


def speech_samples(name: str) -> np.ndarray:
    """A recording in tests/data as 16 kHz mono float32."""
    from workers.media.audio import decode_audio

    return decode_audio(str(DATA / name))


def two_speaker_channels(bleed: float = 0.0, offset_s: float = 3.0) -> np.ndarray:
    """An interview as two lavaliers record it: JFK on the left, the hotwords speaker (another
    voice) on the right from ``offset_s``, each channel hearing the other at ``bleed``."""
    left = speech_samples("jfk.flac")
    other = speech_samples("hotwords.mp3")
    right = np.zeros_like(left)
    start = int(offset_s * 16000)
    right[start:start + len(other)] = other[: len(left) - start]
    return np.stack([left + bleed * right, right + bleed * left]) / (1 + bleed)
