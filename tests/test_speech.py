"""Transcription below HTTP: decoding any container, the real whisper-tiny.en model, storage,
/transcriptions rows, /search/transcript matching, cancellation, and the openai-whisper engine
on a small checkpoint built here (no openai-whisper weights exist offline)."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.text_match import TIME_TOLERANCE_S, wer, words
from workers import transcripts
from workers.engines import catalogue
from workers.engines.base import ModelUnavailable
from workers.engines.speech import (
    FasterWhisperEngine,
    OpenAIWhisperEngine,
    check_language,
    load_speech_engine,
    normalize_language,
)
from workers.media.audio import AudioDecodeError, NoAudioStream, decode_audio
from workers.pipeline import Cancelled
from workers.pipeline.speech import get_speech_engine, transcribe_file
from workers.store import hash_file

DATA = Path(__file__).resolve().parent / "data"
JFK = DATA / "jfk.flac"
REFERENCE = json.loads((DATA / "transcripts.json").read_text())["jfk.flac"]
MODEL = "whisper-tiny.en"


def _write_mp4(path: Path, with_audio: bool, seconds: float = 11.0) -> None:
    """A solid-colour MPEG-4 video, with the JFK speech as an AAC track when asked."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio_stream = None
        if with_audio:
            audio_stream = container.add_stream("aac", rate=44100, layout="stereo")
        for index in range(int(seconds * 10)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), (30, 90, 160), np.uint8), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 10)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if audio_stream is not None:
            speech = decode_audio(JFK, sample_rate=44100)
            pcm = np.repeat(speech[None, :], 2, axis=0).astype(np.float32)
            step = audio_stream.codec_context.frame_size or 1024
            for start in range(0, pcm.shape[1], step):
                chunk = np.ascontiguousarray(pcm[:, start:start + step])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                frame.sample_rate, frame.pts = 44100, start
                for packet in audio_stream.encode(frame):
                    container.mux(packet)
            for packet in audio_stream.encode(None):
                container.mux(packet)


@pytest.fixture(scope="module")
def engine() -> FasterWhisperEngine:
    return get_speech_engine(MODEL)


# --- decoding ------------------------------------------------------------------------------


def test_flac_24bit_stereo_decodes_to_16k_mono_float():
    with av.open(str(JFK)) as container:
        stream = container.streams.audio[0]
        assert stream.channels == 2 and stream.rate == 44100  # the hard case the test is about
    audio = decode_audio(JFK)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) / 16000 - REFERENCE["duration_s"]) < 0.05
    assert 0.1 < np.abs(audio).max() <= 1.0
    assert abs(len(decode_audio(JFK, sample_rate=8000)) - len(audio) / 2) < 50


def test_video_without_audio_raises_no_audio_stream(tmp_path):
    silent = tmp_path / "silent video.mp4"
    _write_mp4(silent, with_audio=False, seconds=1)
    with pytest.raises(NoAudioStream, match="silent video.mp4"):
        decode_audio(silent)
    # The pipeline surfaces the same error and stores nothing for the file.
    with pytest.raises(NoAudioStream):
        transcribe_file(str(silent), tmp_path / "cache", hash_file(silent), "english", MODEL)
    assert not transcripts.has_transcript(tmp_path / "cache", hash_file(silent))


def test_corrupt_and_missing_files_fail_alone(tmp_path):
    junk = tmp_path / "broken.mp3"
    junk.write_bytes(np.random.default_rng(1).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises((AudioDecodeError, NoAudioStream)) as error:
        decode_audio(junk)
    assert isinstance(error.value, ValueError) and "broken.mp3" in str(error.value)
    with pytest.raises(FileNotFoundError, match="nowhere.wav"):
        decode_audio(tmp_path / "nowhere.wav")


# --- the real model --------------------------------------------------------------------------


def test_jfk_transcribes_to_the_reference_text_with_word_times(tmp_path, engine):
    media = tmp_path / "jfk.flac"
    shutil.copy(JFK, media)
    hash_str = hash_file(media)
    seen: list[float] = []
    summary = transcribe_file(str(media), tmp_path, hash_str, "english", MODEL, progress=seen.append,
                              should_cancel=lambda: False)

    assert summary["segments"] >= 1 and summary["language"] == "en"
    assert abs(summary["duration"] - REFERENCE["duration_s"]) < 0.05
    assert seen[0] == 0.0 and seen[-1] == 100.0 and seen == sorted(seen)

    stored = transcripts.load_transcript(tmp_path, hash_str)
    assert stored["model_key"] == MODEL and stored["format_version"] == transcripts.TRANSCRIPT_FORMAT_VERSION
    # The words, not the punctuation or the segmentation: both differ between instruction sets
    # (this CPU's int8 kernels drop the commas and cut a second segment at "ask").
    text = "".join(s["text"] for s in stored["segments"])
    assert wer(REFERENCE["text"], text) == 0, text
    timed = [w for s in stored["segments"] for w in s["words"]]
    assert words(" ".join(w["word"] for w in timed)) == words(REFERENCE["text"])
    assert all(w["start"] <= w["end"] for w in timed)
    assert [w["start"] for w in timed] == sorted(w["start"] for w in timed)
    americans = [w for w in timed if words(w["word"]) == ["americans"]]
    must_cover = REFERENCE["timing"]["must_cover_s"]
    assert len(americans) == 1
    assert americans[0]["start"] - TIME_TOLERANCE_S <= must_cover <= americans[0]["end"] + TIME_TOLERANCE_S
    assert 10 < stored["segments"][-1]["end"] <= 11

    # /transcriptions rows: [start, text as Whisper gives it, end, media_path].
    rows = transcripts.segments_as_rows(stored, str(media))
    assert rows[0][1].startswith(" ") and rows[0][3] == str(media)
    assert transcripts.has_transcript(tmp_path, hash_str)
    assert [h for h, _ in transcripts.list_transcripts(tmp_path)] == [hash_str]

    loaded = transcripts.load_transcript_rows(tmp_path)
    matches = transcripts.search_segments(loaded, "AMERICANS", max_results=10)
    assert len(matches) == 1
    match = matches[0]
    assert match["media_path"] == str(media) and match["hash_str"] == hash_str
    assert match["start_seconds"] - TIME_TOLERANCE_S <= must_cover <= match["end_seconds"] + TIME_TOLERANCE_S
    assert match["start_timestamp"] == transcripts.format_hms(match["start_seconds"]) == "00:00:00"
    assert match["end_timestamp"] == transcripts.format_hms(match["end_seconds"])
    assert match["text"] == match["text"].strip() and "fellow americans" in " ".join(words(match["text"]))


def test_mp4_video_with_aac_audio_transcribes(tmp_path, engine):
    media = tmp_path / "interview.mp4"
    _write_mp4(media, with_audio=True)
    summary = transcribe_file(str(media), tmp_path, hash_file(media), None, MODEL)
    assert summary["language"] == "en"
    stored = transcripts.load_transcript(tmp_path, hash_file(media))
    assert wer(REFERENCE["text"], "".join(s["text"] for s in stored["segments"])) == 0


def test_long_file_is_decoded_in_batches_and_cut_into_sentences(tmp_path, engine):
    """Past one 30 s window the batched decoder runs; its chunks come back sentence-sized,
    with each repeat of the speech at its own time."""
    speech = decode_audio(JFK)
    gap = np.zeros(16000 * 4, np.float32)
    media = tmp_path / "three times.flac"
    pcm = (np.concatenate([speech, gap, speech, gap, speech]) * 32767).astype(np.int16)
    with av.open(str(media), "w") as container:
        stream = container.add_stream("flac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    assert engine.use_batched(len(pcm) / 16000)

    transcribe_file(str(media), tmp_path, "000000000000bbbb", "en", MODEL)
    segments = transcripts.load_transcript(tmp_path, "000000000000bbbb")["segments"]
    assert words("".join(s["text"] for s in segments)) == words(REFERENCE["text"]) * 3
    assert len(segments) >= 3 and all(s["end"] - s["start"] <= 25 for s in segments)
    period = (len(speech) + len(gap)) / 16000
    americans = [w for s in segments for w in s["words"] if words(w["word"]) == ["americans"]]
    assert len(americans) == 3
    for repeat, word in enumerate(americans):
        expected = REFERENCE["timing"]["must_cover_s"] + repeat * period
        assert word["start"] - TIME_TOLERANCE_S <= expected <= word["end"] + TIME_TOLERANCE_S


def test_cancel_stops_the_job_and_stores_nothing(tmp_path, engine):
    polls = []

    def should_cancel() -> bool:
        polls.append(1)
        return len(polls) >= 2  # let it start, then cancel once the audio is decoded

    with pytest.raises(Cancelled):
        transcribe_file(str(JFK), tmp_path, "0123456789abcdef", "en", MODEL, should_cancel=should_cancel)
    assert not transcripts.has_transcript(tmp_path, "0123456789abcdef")
    assert not list(tmp_path.rglob("*.tmp"))


def test_engine_is_loaded_once_per_process(engine):
    engine = get_speech_engine(MODEL)
    assert get_speech_engine(MODEL) is engine
    assert engine.compute_type == ("int8" if engine.device == "cpu" else "float16")


# --- languages and model keys ----------------------------------------------------------------


@pytest.mark.parametrize("given, code", [
    ("english", "en"), ("English", "en"), ("german", "de"), ("de", "de"), ("EN", "en"), ("pt-BR", "pt"),
    ("castilian", "es"), (None, None), ("auto", None), ("", None),
])
def test_language_names_and_codes_normalise(given, code):
    assert normalize_language(given) == code


def test_bad_language_and_english_only_model_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="klingon"):
        normalize_language("klingon")
    with pytest.raises(ValueError, match="only transcribes English"):
        check_language(MODEL, "german")
    assert check_language(MODEL, "english") == "en"
    with pytest.raises(ValueError, match="klingon"):
        transcribe_file(str(JFK), tmp_path, "0123456789abcdef", "klingon", MODEL)


# --- openai-whisper on a checkpoint saved by the test -----------------------------------------


def _save_small_whisper_checkpoint(folder: Path) -> None:
    """A 1-layer, 64-wide English Whisper in ``whisper.load_model``'s format. Its decoder's
    final LayerNorm outputs a constant and the ``<|0.00|>`` and end-of-text embeddings are
    aligned with it, so every window decodes confidently to ``<|0.00|><|endoftext|>``: the
    real decode loop runs (in about a second), and no temperature fallback ever samples."""
    import torch
    from whisper.model import ModelDimensions, Whisper
    from whisper.tokenizer import get_tokenizer

    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=1,
                           n_vocab=51864, n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=1)
    torch.manual_seed(0)
    model = Whisper(dims)
    with torch.no_grad():
        # Whisper allocates this with torch.empty (checkpoints fill it): uninitialised memory
        # would make decoding NaN now and then.
        model.decoder.positional_embedding.normal_(0.0, 0.02)
        model.decoder.ln.weight.zero_()
        model.decoder.ln.bias.fill_(1.0)
        tokenizer = get_tokenizer(False)
        model.decoder.token_embedding.weight[tokenizer.timestamp_begin] = 3.0
        model.decoder.token_embedding.weight[tokenizer.eot] = 4.0
    folder.mkdir(parents=True)
    torch.save({"dims": asdict(dims), "model_state_dict": model.state_dict()}, folder / "small-whisper.pt")


def test_openai_whisper_checkpoint_loads_and_decodes_without_ffmpeg(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg anywhere: the engine must not need one
    models = tmp_path / "models"
    _save_small_whisper_checkpoint(tmp_path / "checkpoint")
    catalogue.register_import(catalogue.ModelSpec("small-whisper", catalogue.SPEECH, "openai-whisper",
                                                  str(tmp_path / "checkpoint")), base=models)
    speech = load_speech_engine("small-whisper", device="cpu", base=models)
    assert isinstance(speech, OpenAIWhisperEngine)
    assert speech.model.dims.n_text_state == 64 and not speech.multilingual

    fractions: list[float] = []
    result = speech.transcribe_detailed(decode_audio(JFK)[: 16000 * 3], "english", fractions.append)
    assert result.language == "en" and abs(result.duration - 3.0) < 0.01
    assert fractions and fractions[-1] == pytest.approx(1.0) and fractions == sorted(fractions)
    assert all(s.text.strip() and 0 <= s.start <= s.end for s in result.segments)

    summary = transcribe_file(str(JFK), tmp_path / "cache", "00000000000000aa", "en", "small-whisper",
                              models_base=models, device="cpu")
    assert transcripts.load_transcript(tmp_path / "cache", "00000000000000aa")["model_key"] == "small-whisper"
    assert summary["duration"] == pytest.approx(11.0, abs=0.05)

    # A damaged checkpoint is a clear "model unavailable", not a crash deep inside torch.
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "model.pt").write_bytes(b"not a checkpoint")
    catalogue.register_import(catalogue.ModelSpec("damaged-whisper", catalogue.SPEECH, "openai-whisper",
                                                  str(tmp_path / "damaged")), base=models)
    with pytest.raises(ModelUnavailable, match="damaged-whisper"):
        load_speech_engine("damaged-whisper", device="cpu", base=models)


# --- /search/transcript semantics --------------------------------------------------------------


def test_search_is_case_insensitive_substring_across_files_with_limits():
    loaded = {
        "/a.mp4": ("aaaaaaaaaaaaaaaa", [[3725.5, " Grüße aus der STRASSE", 3731.9, "/a.mp4"],
                                        [1.0, " Hello world", 2.0, "/a.mp4"]]),
        "/b.mp3": ("bbbbbbbbbbbbbbbb", [[0.0, " hello again", 1.5, "/b.mp3"]]),
    }
    found = transcripts.search_segments(loaded, "HELLO", max_results=50)
    assert [(m["media_path"], m["text"]) for m in found] == [("/a.mp4", "Hello world"), ("/b.mp3", "hello again")]
    assert transcripts.search_segments(loaded, "hello", max_results=1) == found[:1]
    assert transcripts.search_segments(loaded, "hello", media_paths=["/b.mp3"])[0]["hash_str"] == "b" * 16
    street = transcripts.search_segments(loaded, "straße")
    assert street[0]["start_timestamp"] == "01:02:05" and street[0]["end_timestamp"] == "01:02:11"
    assert street[0]["start_seconds"] == 3725.5
    assert transcripts.search_segments(loaded, "nothing like this") == []
    with pytest.raises(ValueError):
        transcripts.search_segments(loaded, "  ")
    with pytest.raises(ValueError):
        transcripts.search_segments(loaded, "hello", max_results=0)


def test_hash_str_cannot_escape_the_cache_dir(tmp_path):
    with pytest.raises(ValueError, match="hash_str"):
        transcripts.save_transcript(tmp_path, "../../etc", "/x.mp4", MODEL, "en", [])
    assert transcripts.load_transcript(tmp_path, "ffffffffffffffff") is None
