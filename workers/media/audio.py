"""Decode the audio track of any file PyAV reads into 16 kHz mono float32, without an ffmpeg binary.

Torch-free. Speech engines take the array this returns (openai-whisper would otherwise shell
out to an ``ffmpeg`` on PATH).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import av
import numpy as np

from workers.media.probe import MediaError

SAMPLE_RATE = 16000


class NoAudioStream(MediaError):
    """The file has no audio track to transcribe."""


class AudioDecodeError(MediaError):
    """The file's audio cannot be decoded (corrupt, truncated, or not media at all)."""


def audio_channel_count(path: str | os.PathLike) -> int:
    """Channels of the first audio track (0 when there is none or the file cannot be read)."""
    return audio_channels(path)[0]


def audio_channels(path: str | os.PathLike) -> tuple[int, bool]:
    """``(channels, surround)`` of the first audio track; ``surround`` when its layout has an
    LFE channel (5.1, 7.1: a film mix, dialogue in the centre, not one speaker per channel).
    ``(0, False)`` when there is no audio track or the file cannot be read."""
    try:
        with av.open(os.fspath(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                return 0, False
            stream = container.streams.audio[0]
            count = int(stream.codec_context.channels or 0)
            try:
                names = {channel.name for channel in stream.layout.channels}
            except (AttributeError, ValueError):
                names = set()
            return count, "LFE" in names
    except (av.error.FFmpegError, OSError):
        return 0, False


def downmix(channels: np.ndarray) -> np.ndarray:
    """Mono from ``(channels, samples)``, as :func:`decode_audio` would give it: for stereo
    libswresample's (L + R) / sqrt(2), clipped (measured equal to 1e-7 on the test files);
    otherwise the mean."""
    channels = np.asarray(channels, dtype=np.float32)
    if channels.ndim == 1:
        return channels
    if channels.shape[0] == 1:
        return channels[0]
    if channels.shape[0] == 2:
        mono = (channels[0] + channels[1]) * np.float32(np.sqrt(0.5))
    else:
        mono = channels.mean(axis=0, dtype=np.float32)
    return np.clip(mono, -1.0, 1.0, out=mono)


def decode_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The first audio track of ``path`` as mono float32 in [-1, 1] at ``sample_rate`` Hz.

    Stereo and multichannel tracks are downmixed. Damaged packets are skipped so a file with
    a few bad frames still decodes; a file that is not media raises :class:`AudioDecodeError`,
    one with no audio track :class:`NoAudioStream`. A missing file raises FileNotFoundError.
    """
    return _decode(path, sample_rate, "mono")[0]


def decode_channels(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The first audio track of ``path`` as ``(channels, samples)`` float32 at ``sample_rate`` Hz,
    each channel kept apart (what faster-whisper's ``decode_audio(split_stereo=True)`` does for
    two channels, for any count). Errors as :func:`decode_audio`."""
    return np.ascontiguousarray(_decode(path, sample_rate, None))


def _decode(path: str | os.PathLike, sample_rate: int, layout: str | None) -> np.ndarray:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"media file not found: {path}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise AudioDecodeError(f"cannot read {path}: {exc}") from exc
    channels = 1
    with container:
        if not container.streams:
            raise AudioDecodeError(f"{path} is not a media file (no streams found)")
        if not container.streams.audio:
            raise NoAudioStream(f"{path} has no audio stream to transcribe")
        stream = container.streams.audio[0]
        # Decoding into a bytearray and viewing it with frombuffer avoids the extra copy
        # that concatenating a list of chunks would need (a 2-hour file is ~460 MB).
        buffer = bytearray()
        # layout None keeps the stream's own channels, interleaved ("flt" is packed).
        resampler = av.audio.resampler.AudioResampler(format="flt", layout=layout, rate=sample_rate)
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
                        channels = out.layout.nb_channels
                        buffer += out.to_ndarray().tobytes()
            for out in resampler.resample(None):
                channels = out.layout.nb_channels
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
    usable = len(audio) - len(audio) % channels
    return audio[:usable].reshape(-1, channels).T


# Channel analysis works on Silero VAD's own frame (512 samples = 32 ms at 16 kHz).
_FRAME = 512
# A channel "owns" a frame of speech when it is this much louder than every other channel: a
# lavalier is ~10-20 dB louder for its wearer than the other speaker's bleed, while one voice
# picked up by two microphones (or panned) differs by a steady few dB.
_DOMINANCE_DB = 6.0
# Owned frames count only in runs this long (~130 ms, about a syllable): single frames where a
# reverberant tail or a comb-filter notch tips the balance are not a second speaker.
_MIN_RUN_FRAMES = 4
# Channels this correlated carry one signal (duplicated or panned mono): no VAD needed.
_SAME_SIGNAL_CORRELATION = 0.9
# Loudness envelopes this correlated over speech rise and fall together: one voice, however
# the microphones colour or delay it (two speakers taking turns measured -0.3 to 0.6 here).
_SAME_VOICE_ENVELOPE = 0.85
# At most this much audio is analysed, spread over the file, so a two-hour file costs seconds.
_MAX_ANALYSED_S = 300.0
_WINDOW_S = 30.0


@dataclass
class ChannelReport:
    """What :func:`distinct_channels` found.

    ``distinct``: the channels carry different speech (one speaker per channel) and should be
    transcribed (or diarized) one by one; ``speech_channels`` are those channels' indexes (when
    not distinct, the one channel that best stands for the file). ``correlation`` is the lowest
    zero-lag Pearson correlation between two channels (1.0 for a mono file); ``own_speech_s``
    per channel the seconds of the analysed audio where that channel's speaker talks and the
    others' channels are quiet; ``analysed_s`` how much audio was looked at.
    """

    channels: int
    distinct: bool
    speech_channels: list[int] = field(default_factory=list)
    correlation: float = 1.0
    own_speech_s: list[float] = field(default_factory=list)
    analysed_s: float = 0.0


def _analysis_excerpt(channels: np.ndarray, sample_rate: int) -> np.ndarray:
    """Evenly spread windows of at most ``_MAX_ANALYSED_S`` in total, all channels alike."""
    total = channels.shape[1]
    budget = int(_MAX_ANALYSED_S * sample_rate)
    if total <= budget:
        return channels
    window = int(_WINDOW_S * sample_rate)
    starts = np.linspace(0, total - window, budget // window).astype(int)
    return np.concatenate([channels[:, s:s + window] for s in starts], axis=1)


def _speech_probabilities(audio: np.ndarray) -> np.ndarray:
    # faster-whisper's Silero VAD (an ONNX model in its wheel), imported here so the API
    # process, which uses this module to probe files, never loads ctranslate2.
    from faster_whisper.vad import get_vad_model

    padded = np.pad(np.ascontiguousarray(audio, dtype=np.float32), (0, (-len(audio)) % _FRAME))
    return np.asarray(get_vad_model()(padded)).reshape(-1)


def _long_runs(mask: np.ndarray, min_length: int) -> np.ndarray:
    """``mask`` with its runs of True shorter than ``min_length`` cleared."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    kept = np.zeros_like(mask, dtype=bool)
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if stop - start >= min_length:
            kept[start:stop] = True
    return kept


def distinct_channels(channels: np.ndarray, sample_rate: int = SAMPLE_RATE, *,
                      min_own_speech_s: float = 0.5, vad_threshold: float = 0.5) -> ChannelReport:
    """Whether the channels of ``channels`` (``(channels, samples)`` float32 at 16 kHz, as
    :func:`decode_channels` gives) carry different speakers, as with one lavalier per channel.

    The channels must not be one signal (zero-lag correlation below 0.9 rules out duplicated
    and panned mono cheaply), their loudness must not rise and fall together over speech (one
    voice through two microphones does, whatever the delay or colouring), and at least two
    channels must each have speech they alone carry: Silero VAD hears speech and the channel
    is 6 dB louder than every other, for ``min_own_speech_s`` and 5 % of all speech. A stereo
    recording of one voice stays one.
    """
    channels = np.asarray(channels, dtype=np.float32)
    if channels.ndim == 1:
        channels = channels[np.newaxis, :]
    count = int(channels.shape[0])
    if count < 2 or channels.shape[1] < _FRAME:
        return ChannelReport(count, False, [0] if count else [], 1.0, [0.0] * count)
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"distinct_channels needs {SAMPLE_RATE} Hz audio (Silero VAD's rate), got {sample_rate}")
    excerpt = _analysis_excerpt(channels, sample_rate)
    analysed_s = round(excerpt.shape[1] / sample_rate, 3)

    centred = excerpt - excerpt.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    loudest = int(np.argmax(norms))
    live = norms > 1e-6  # a silent channel correlates with nothing and carries no one
    correlation = 1.0
    if live.sum() >= 2:
        unit = centred[live] / norms[live, np.newaxis]
        correlation = float((unit @ unit.T)[np.triu_indices(len(unit), 1)].min())
    same = ChannelReport(count, False, [loudest], round(correlation, 4), [0.0] * count, analysed_s)
    if live.sum() < 2 or correlation >= _SAME_SIGNAL_CORRELATION:
        return same

    frames = excerpt.shape[1] // _FRAME
    framed = excerpt[:, : frames * _FRAME].reshape(count, frames, _FRAME).astype(np.float64)
    level_db = 10.0 * np.log10(np.mean(framed**2, axis=2) + 1e-10)
    speech = np.stack([_speech_probabilities(excerpt[c])[:frames] >= vad_threshold for c in range(count)])
    any_speech = speech.any(axis=0)
    if np.count_nonzero(any_speech) < 2:
        return same
    heard = np.flatnonzero(live)  # silent channels have a flat envelope: no correlation to take
    envelopes = np.corrcoef(level_db[heard][:, any_speech])
    if np.nanmin(envelopes[np.triu_indices(len(heard), 1)]) >= _SAME_VOICE_ENVELOPE:
        return same
    own = np.zeros(count)
    for c in range(count):
        others = [o for o in range(count) if o != c]
        louder = level_db[c] - level_db[others].max(axis=0) >= _DOMINANCE_DB
        own[c] = np.count_nonzero(_long_runs(speech[c] & louder, _MIN_RUN_FRAMES)) * _FRAME / sample_rate
    needed = max(min_own_speech_s, 0.05 * np.count_nonzero(any_speech) * _FRAME / sample_rate)
    owners = [c for c in range(count) if own[c] >= needed]
    own_s = [round(float(x), 3) for x in own]
    if len(owners) < 2:
        return ChannelReport(count, False, owners or [loudest], round(correlation, 4), own_s, analysed_s)
    return ChannelReport(count, True, owners, round(correlation, 4), own_s, analysed_s)
