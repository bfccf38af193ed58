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
            frame = av.AudioFrame.from_ndarray((audio * 32767).astype(np.int16).reshape(1, -1), format="s16",
                                               layout="mono")
            frame.sample_rate = 16000
            for packet in audio_stream.encode(frame):
                container.mux(packet)
            for packet in audio_stream.encode():
                container.mux(packet)


def jfk_samples(repeats: int = 1) -> np.ndarray:
    from workers.media.audio import decode_audio

    speech = decode_audio(str(DATA / "jfk.flac"))
    return np.concatenate([speech] * repeats).astype(np.float32)
