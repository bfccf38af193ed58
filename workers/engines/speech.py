"""Speech-to-text engines behind the ``SpeechEngine`` protocol, picked by catalogue key.

- :class:`FasterWhisperEngine` (default): CTranslate2, int8 on CPU and float16 on CUDA, Silero
  VAD in front (``vad_filter=True``) so silence is skipped rather than hallucinated over, word
  timestamps on. Long audio goes through faster-whisper's ``BatchedInferencePipeline`` where
  that measurably wins (see ``docs/speech.md``).
- :class:`OpenAIWhisperEngine`: openai-whisper, for ``.pt`` checkpoints. It is always fed a
  decoded array, so it never shells out to an ``ffmpeg`` binary.

Importing this module is cheap (no torch, no CTranslate2): the API process uses
:func:`normalize_language` and :func:`check_language` to validate requests. The heavy
libraries are imported when an engine loads.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workers.engines import catalogue
from workers.engines.base import ModelUnavailable, Segment, Word
from workers.engines.whisper_adapter import whisper_progress

SAMPLE_RATE = 16000

Progress = Callable[[float], None] | None

# Whisper's language table (code → English name), as in openai-whisper's tokenizer.
LANGUAGES: dict[str, str] = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian", "ko": "korean",
    "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan",
    "nl": "dutch", "ar": "arabic", "sv": "swedish", "it": "italian", "id": "indonesian", "hi": "hindi",
    "fi": "finnish", "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin",
    "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak", "te": "telugu", "fa": "persian",
    "lv": "latvian", "bn": "bengali", "sr": "serbian", "az": "azerbaijani", "sl": "slovenian",
    "kn": "kannada", "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque",
    "is": "icelandic", "hy": "armenian", "ne": "nepali", "mn": "mongolian", "bs": "bosnian",
    "kk": "kazakh", "sq": "albanian", "sw": "swahili", "gl": "galician", "mr": "marathi", "pa": "punjabi",
    "si": "sinhala", "km": "khmer", "sn": "shona", "yo": "yoruba", "so": "somali", "af": "afrikaans",
    "oc": "occitan", "ka": "georgian", "be": "belarusian", "tg": "tajik", "sd": "sindhi", "gu": "gujarati",
    "am": "amharic", "yi": "yiddish", "lo": "lao", "uz": "uzbek", "fo": "faroese", "ht": "haitian creole",
    "ps": "pashto", "tk": "turkmen", "nn": "nynorsk", "mt": "maltese", "sa": "sanskrit",
    "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan", "tl": "tagalog", "mg": "malagasy",
    "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala", "ha": "hausa", "ba": "bashkir",
    "jw": "javanese", "su": "sundanese", "yue": "cantonese",
}
_BY_NAME: dict[str, str] = {name: code for code, name in LANGUAGES.items()} | {
    "burmese": "my", "valencian": "ca", "flemish": "nl", "haitian": "ht", "letzeburgesch": "lb",
    "pushto": "ps", "panjabi": "pa", "moldavian": "ro", "moldovan": "ro", "sinhalese": "si",
    "castilian": "es", "mandarin": "zh", "jv": "jw", "deutsch": "de",
}
_AUTO = {"", "auto", "autodetect", "auto-detect", "detect", "none", "null"}


def normalize_language(language: str | None) -> str | None:
    """A Whisper language code for a name ("english", "German"), a code ("en", "de-AT",
    "pt_BR"), or None for auto-detection (None, "", "auto"). Raises ValueError otherwise."""
    if language is None:
        return None
    if not isinstance(language, str):
        raise ValueError(f"language must be a string such as 'english' or 'en', got {language!r}")
    cleaned = language.strip().lower()
    if cleaned in _AUTO:
        return None
    if cleaned in LANGUAGES:
        return cleaned
    if cleaned in _BY_NAME:
        return _BY_NAME[cleaned]
    # A regional tag ("en-US", "pt_BR") names its base language.
    base = re.split(r"[-_]", cleaned, maxsplit=1)[0]
    if base != cleaned and base in LANGUAGES:
        return base
    raise ValueError(
        f"unknown language {language!r}: use a name such as 'english' or 'german', an ISO 639-1 "
        f"code such as 'en' or 'de', or 'auto' to detect it"
    )


def check_language(model_key: str, language: str | None, base: Path | None = None) -> str | None:
    """Validate a transcription request without loading anything: the normalised language,
    or ValueError when the key is not a speech model or an English-only model is asked for
    another language (it would silently transcribe as English)."""
    code = normalize_language(language)
    spec = _speech_spec(model_key, base)
    if not spec.multilingual and code not in (None, "en"):
        raise ValueError(
            f"speech model {model_key!r} only transcribes English, but language {language!r} was "
            f"asked for; choose a multilingual speech model (for example whisper-base) for it"
        )
    return code


def _speech_spec(model_key: str, base: Path | None = None) -> catalogue.ModelSpec:
    return catalogue.require_spec(model_key, catalogue.SPEECH, base)


def _checked_input(key: str, multilingual: bool, audio: np.ndarray,
                   language: str | None) -> tuple[str | None, np.ndarray, float]:
    """The language code, float32 samples and duration of one transcription; ValueError for
    a language an English-only model cannot transcribe."""
    code = normalize_language(language)
    if not multilingual and code not in (None, "en"):
        raise ValueError(f"speech model {key!r} only transcribes English, not {language!r}")
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    return code, audio, len(audio) / SAMPLE_RATE


@dataclass
class Transcription:
    segments: list[Segment]
    language: str
    duration: float
    language_probability: float = 1.0
    extra: dict = field(default_factory=dict)


class _ProgressReporter:
    """Turns segment end times into monotonic fractions of the audio's duration."""

    def __init__(self, progress: Progress, duration: float):
        self.progress = progress
        self.duration = duration
        self.last = 0.0

    def __call__(self, seconds: float) -> None:
        if self.progress is None or self.duration <= 0:
            return
        fraction = min(max(seconds / self.duration, self.last), 1.0)
        self.last = fraction
        self.progress(fraction)


def _resolve_device(device: str) -> tuple[str, int]:
    """("cpu" | "cuda", device index) for "auto", "cpu", "cuda" or "cuda:N"."""
    device = (device or "auto").strip().lower()
    if device in ("cpu", "mps"):  # CTranslate2 has no Apple-GPU backend: mps means CPU here
        return "cpu", 0
    match = re.fullmatch(r"cuda(?::(\d+))?", device)
    if match:
        return "cuda", int(match.group(1) or 0)
    if device in ("auto", "gpu"):
        try:
            import ctranslate2

            return ("cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"), 0
        except Exception:  # noqa: BLE001 - a broken CUDA runtime means CPU, not a crash
            return "cpu", 0
    raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")


def _cpu_threads() -> int:
    # CTranslate2 defaults to 4 threads whatever the machine has; OMP_NUM_THREADS wins if set.
    if os.environ.get("OMP_NUM_THREADS"):
        return 0
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class FasterWhisperEngine:
    """A CTranslate2 Whisper model folder (``model.bin``, ``config.json``, ``tokenizer.json``)."""

    # Measured with whisper-tiny.en on 2 CPU cores (bench/speech.py, docs/speech.md): on audio
    # longer than one 30 s window, batched decoding of VAD chunks took ~0.6x the CPU time of the
    # sequential decoder at a lower word error rate. Within one window there is nothing to
    # batch, and the sequential decoder's output is the reference one (tests pin it).
    BATCH_MIN_SECONDS = 30.0
    BATCH_SIZE = 8

    def __init__(self, key: str, model_dir: str | os.PathLike, device: str = "auto",
                 compute_type: str | None = None, batched: bool | None = None, beam_size: int = 5):
        self.key = key
        self.model_dir = Path(model_dir)
        self.device, self.device_index = _resolve_device(device)
        self.compute_type = compute_type or ("float16" if self.device == "cuda" else "int8")
        self.batched = batched  # None: decide by duration
        self.beam_size = beam_size
        self.model = None
        self._pipeline = None
        self.multilingual = True

    def load(self) -> None:
        if self.model is not None:
            return
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        try:
            self.model = WhisperModel(str(self.model_dir), device=self.device, device_index=self.device_index,
                                      compute_type=self.compute_type,
                                      cpu_threads=_cpu_threads() if self.device == "cpu" else 0,
                                      local_files_only=True)
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelUnavailable(
                f"speech model {self.key!r} at {self.model_dir} cannot be loaded ({exc}); "
                f"fix: {catalogue.fix_command(self.key)}"
            ) from exc
        self._pipeline = BatchedInferencePipeline(model=self.model)
        self.multilingual = bool(self.model.model.is_multilingual)

    def use_batched(self, duration: float) -> bool:
        return self.batched if self.batched is not None else duration >= self.BATCH_MIN_SECONDS

    def transcribe(self, audio: np.ndarray, language: str | None = None, progress: Progress = None) -> list[Segment]:
        return self.transcribe_detailed(audio, language, progress).segments

    def transcribe_detailed(self, audio: np.ndarray, language: str | None = None,
                            progress: Progress = None) -> Transcription:
        self.load()
        code, audio, duration = _checked_input(self.key, self.multilingual, audio, language)
        if len(audio) == 0:
            return Transcription([], code or "en", 0.0)
        common = dict(language=code, beam_size=self.beam_size, vad_filter=True, word_timestamps=True)
        batched = self.use_batched(duration)
        if batched:
            # Text-only decoding per VAD chunk: measured more accurate than with timestamp tokens
            # (which dropped whole phrases); the chunk is cut into sentences by word times below.
            pieces, info = self._pipeline.transcribe(audio, batch_size=self.BATCH_SIZE,
                                                     without_timestamps=True, **common)
        else:
            pieces, info = self.model.transcribe(audio, **common)
        report = _ProgressReporter(progress, duration)
        segments: list[Segment] = []
        # The generator decodes lazily: each segment is reported (and a cancel can be raised by
        # the callback) as soon as it exists.
        for piece in pieces:
            report(float(piece.end))
            words = [Word(float(w.start), float(w.end), w.word, float(w.probability)) for w in (piece.words or [])]
            if batched and words:
                for part in split_into_sentences(words):
                    _append(segments, part[0].start, part[-1].end, "".join(w.word for w in part), part)
            else:
                _append(segments, float(piece.start), float(piece.end), piece.text, words)
        return Transcription(segments, info.language, duration, float(info.language_probability),
                             extra={"batched": batched})


class OpenAIWhisperEngine:
    """An openai-whisper ``.pt`` checkpoint (``{"dims": ..., "model_state_dict": ...}``)."""

    _transcribe_lock = threading.Lock()

    def __init__(self, key: str, checkpoint: str | os.PathLike, device: str = "auto"):
        self.key = key
        self.checkpoint = Path(checkpoint)
        self.device_request = device
        self.device = "cpu"
        self.model = None

    def load(self) -> None:
        if self.model is not None:
            return
        import torch
        import whisper

        wanted = (self.device_request or "auto").lower()
        if wanted in ("auto", "gpu"):
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        elif wanted == "mps":  # never tested on Apple GPUs here; CPU is known to work
            self.device = "cpu"
        elif wanted == "cpu" or re.fullmatch(r"cuda(:\d+)?", wanted):
            self.device = wanted
        else:
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device_request!r}")
        try:
            self.model = whisper.load_model(str(self.checkpoint), device=self.device)
        except Exception as exc:  # noqa: BLE001 - torch.load raises many kinds for a bad file
            raise ModelUnavailable(
                f"speech model {self.key!r}: {self.checkpoint} is not a loadable openai-whisper checkpoint "
                f"({exc}); fix: {catalogue.fix_command(self.key)}"
            ) from exc

    @property
    def multilingual(self) -> bool:
        self.load()
        return bool(self.model.is_multilingual)

    def transcribe(self, audio: np.ndarray, language: str | None = None, progress: Progress = None) -> list[Segment]:
        return self.transcribe_detailed(audio, language, progress).segments

    def transcribe_detailed(self, audio: np.ndarray, language: str | None = None,
                            progress: Progress = None) -> Transcription:
        self.load()
        import whisper

        code, audio, duration = _checked_input(self.key, self.model.is_multilingual, audio, language)
        if len(audio) == 0:
            return Transcription([], code or "en", 0.0)
        report = _ProgressReporter(progress, duration)
        with self._transcribe_lock, whisper_progress(report, duration):
            result = whisper.transcribe(self.model, audio, language=code, word_timestamps=True,
                                        fp16=self.device.startswith("cuda"), verbose=None)
        segments = []
        for piece in result.get("segments", []):
            words = [Word(float(w["start"]), float(w["end"]), w["word"], float(w.get("probability", 0.0)))
                     for w in piece.get("words", [])]
            _append(segments, float(piece["start"]), float(piece["end"]), piece["text"], words)
        return Transcription(segments, result.get("language") or code or "en", duration)


_SENTENCE_END = re.compile(r"[.!?…。？！][\"')\]»”’]*$")


def split_into_sentences(words: list[Word], pause: float = 1.0, soft_limit: float = 12.0,
                         hard_limit: float = 25.0) -> list[list[Word]]:
    """Cut a long run of words (one ~30 s chunk of batched decoding) into subtitle-sized
    segments: after a sentence end, at a pause of ``pause`` seconds, after a comma once the
    part is longer than ``soft_limit`` seconds, and anywhere past ``hard_limit``."""
    parts: list[list[Word]] = []
    current: list[Word] = []
    for index, word in enumerate(words):
        current.append(word)
        following = words[index + 1] if index + 1 < len(words) else None
        length = word.end - current[0].start
        text = word.word.strip()
        cut = (
            following is None
            or _SENTENCE_END.search(text) is not None
            or following.start - word.end >= pause
            or (length >= soft_limit and text.endswith((",", ";", ":")))
            or length >= hard_limit
        )
        if cut:
            parts.append(current)
            current = []
    return parts


def _append(segments: list[Segment], start: float, end: float, text: str, words: list[Word]) -> None:
    # Whisper emits empty segments for stretches it decodes to nothing; they are not speech.
    if not text.strip():
        return
    start = max(0.0, start)
    segments.append(Segment(start, max(start, end), text, words))


def load_speech_engine(model_key: str, device: str = "auto", base: Path | None = None,
                       load: bool = True) -> FasterWhisperEngine | OpenAIWhisperEngine:
    """The engine for a catalogue key, loaded. ``base`` is the models folder (default: settings).

    Unknown key, not a speech key or a family without an engine: ValueError. Weights not on this
    machine: ModelUnavailable, whose message carries the command that fixes it.
    """
    spec = _speech_spec(model_key, base)
    family = catalogue.family_of(spec)
    path = catalogue.local_path(spec, base)
    weights = family.weights(path)
    if weights is None:
        raise ModelUnavailable(
            f"speech model {model_key!r} is not on this machine (looked in {path}); "
            f"fix: {catalogue.fix_command(model_key)}"
        )
    engine = family.engine_class()(model_key, weights, device=device)
    if load:
        engine.load()
    return engine
