"""Speech benchmark: real-time factors of our transcription path against faster-whisper's own.

Builds an N-minute FLAC of varied English speech with 1-4 s gaps of silence: sentences from
Python's own documentation (``pydoc_data``) spoken by ``espeak-ng`` when it is installed
(``apt-get install espeak-ng``). Without it, the JFK clip (tests/data/jfk.flac) repeated; that
fallback is pathological for the sequential decoder (text repeated within a 30 s window trips
Whisper's compression-ratio check and every temperature fallback runs), so the JSON says
which source was used. Then times, on the same model and file in the same process:

- ``faster_whisper_own``: ``WhisperModel.transcribe(path)`` with the options our engine uses
  (beam 5, Silero VAD, word timestamps), generator consumed; the baseline.
- ``transcribe_file_sequential``: ``workers.pipeline.speech.transcribe_file`` end to end
  (decode with PyAV, transcribe, save JSON), sequential decoder. ``overhead`` compares it
  with the baseline (target ≤ 5 %).
- ``batched_own`` / ``transcribe_file_batched``: the same with ``BatchedInferencePipeline``.
- openai-whisper on a same-size checkpoint when ``--openai-checkpoint`` gives one (none
  exists offline here: it would be downloaded, so the figure is null with the reason).

Each figure is the best of ``--repeats`` runs; runs are interleaved so a noisy neighbour
hurts all modes alike. WER is against the text that was spoken. Prints one JSON object.

    python bench/speech.py --minutes 10
    python bench/speech.py --minutes 1 --repeats 1      # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.text_match import wer  # noqa: E402  (the tests' normalisation and WER)
from workers.engines.speech import SAMPLE_RATE  # noqa: E402
from workers.media.audio import decode_audio  # noqa: E402
from workers.pipeline import speech as pipeline  # noqa: E402

JFK = ROOT / "tests" / "data" / "jfk.flac"
JFK_TEXT = ("And so my fellow Americans, ask not what your country can do for you, "
            "ask what you can do for your country.")


def _documentation_sentences() -> list[str]:
    from pydoc_data.topics import topics

    sentences, seen = [], set()
    for key in sorted(topics):
        for sentence in re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", topics[key])):
            sentence = sentence.strip()
            if (re.fullmatch(r"[A-Z][A-Za-z ,'-]+[.]", sentence) and 8 <= len(sentence.split()) <= 30
                    and sentence not in seen):
                seen.add(sentence)
                sentences.append(sentence)
    return sentences


def _spoken(text: str, speed: int, work: Path) -> np.ndarray:
    wav = work / "utterance.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", str(speed), "-w", str(wav), text], check=True,
                   capture_output=True)
    return decode_audio(wav)


def build_audio(path: Path, minutes: float) -> tuple[str, str]:
    """Write the test file; returns (source description, the text spoken)."""
    rng = np.random.default_rng(0)
    target = int(minutes * 60 * SAMPLE_RATE)
    pieces, spoken, total = [], [], 0
    if shutil.which("espeak-ng"):
        source = "espeak-ng reading pydoc_data sentences"
        sentences = _documentation_sentences()
        position = 0
        while total < target and position < len(sentences):
            text = " ".join(sentences[position:position + 3])
            position += 3
            pieces.append(_spoken(text, int(rng.integers(150, 176)), path.parent))
            spoken.append(text)
            pieces.append(np.zeros(int(rng.uniform(1.0, 4.0) * SAMPLE_RATE), dtype=np.float32))
            total += len(pieces[-1]) + len(pieces[-2])
    else:
        source = "jfk.flac repeated (espeak-ng not installed; pathological for the sequential decoder)"
        clip = decode_audio(JFK)
        while total < target:
            pieces += [clip, np.zeros(int(rng.uniform(2.0, 6.0) * SAMPLE_RATE), dtype=np.float32)]
            spoken.append(JFK_TEXT)
            total += len(pieces[-1]) + len(pieces[-2])
    audio = np.concatenate(pieces)
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("flac", rate=SAMPLE_RATE, layout="mono")
        for start in range(0, len(pcm), SAMPLE_RATE * 10):
            frame = av.AudioFrame.from_ndarray(pcm[None, start:start + SAMPLE_RATE * 10], format="s16",
                                               layout="mono")
            frame.sample_rate = SAMPLE_RATE
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return source, " ".join(spoken)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--model", default="whisper-tiny.en")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--openai-checkpoint", default=None,
                        help="a same-size openai-whisper .pt (e.g. tiny.en.pt) to compare with")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="speech-bench-"))
    media = work / "bench.flac"
    source, reference = build_audio(media, args.minutes)
    duration = len(decode_audio(media)) / SAMPLE_RATE

    engine = pipeline.get_speech_engine(args.model)
    model = engine.model
    engine.BATCH_SIZE = args.batch_size
    options = dict(language="en" if not engine.multilingual else None, beam_size=engine.beam_size,
                   vad_filter=True, word_timestamps=True)

    def own_sequential():
        segments, _ = model.transcribe(str(media), **options)
        return "".join(s.text for s in segments)

    def own_batched():
        segments, _ = engine._pipeline.transcribe(str(media), batch_size=args.batch_size,
                                                  without_timestamps=True, **options)
        return "".join(s.text for s in segments)

    def ours(batched: bool):
        def run():
            engine.batched = batched
            pipeline.transcribe_file(str(media), work / "cache", "bench000000000000", "english", args.model)
            from workers.transcripts import load_transcript

            return "".join(s["text"] for s in load_transcript(work / "cache", "bench000000000000")["segments"])
        return run

    modes = {
        "faster_whisper_own": own_sequential,
        "transcribe_file_sequential": ours(False),
        "batched_own": own_batched,
        "transcribe_file_batched": ours(True),
    }
    # Warm-up: first calls pay for ONNX (VAD) session creation and allocator growth.
    model.transcribe(decode_audio(JFK), **options)[0].__iter__().__next__()

    best: dict[str, float] = {}
    cpu: dict[str, float] = {}
    texts: dict[str, str] = {}
    for _ in range(max(1, args.repeats)):
        for name, run in modes.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            texts[name] = run()
            elapsed, cpu_used = time.perf_counter() - started, time.process_time() - cpu_started
            best[name] = min(best.get(name, elapsed), elapsed)
            cpu[name] = min(cpu.get(name, cpu_used), cpu_used)

    def figure(name: str) -> dict:
        # CPU seconds (all threads) are the steadier figure on a machine shared with other work.
        return {"seconds": round(best[name], 2), "cpu_seconds": round(cpu[name], 2),
                "rtf": round(best[name] / duration, 4), "x_realtime": round(duration / best[name], 1),
                "wer": round(wer(reference, texts[name]), 4)}

    def overhead(ours_name: str, theirs: str) -> dict:
        return {"wall": round(best[ours_name] / best[theirs] - 1, 4), "cpu": round(cpu[ours_name] / cpu[theirs] - 1, 4)}

    result = {
        "audio_minutes": round(duration / 60, 2),
        "audio_source": source,
        "model": args.model,
        "device": engine.device,
        "compute_type": engine.compute_type,
        "cpu_threads": os.cpu_count(),
        "machine": platform.machine(),
        "repeats": args.repeats,
        "batch_size": args.batch_size,
        "figures": {name: figure(name) for name in modes},
        "overhead_sequential": overhead("transcribe_file_sequential", "faster_whisper_own"),
        "overhead_batched": overhead("transcribe_file_batched", "batched_own"),
        "batched_speedup": {
            "wall": round(best["transcribe_file_sequential"] / best["transcribe_file_batched"], 3),
            "cpu": round(cpu["transcribe_file_sequential"] / cpu["transcribe_file_batched"], 3),
        },
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "engine_batch_min_seconds": engine.BATCH_MIN_SECONDS,
    }
    result["openai_whisper"] = openai_figure(args, media, duration, reference)
    print(json.dumps(result, indent=1))


def openai_figure(args, media: Path, duration: float, reference: str) -> dict | None:
    if not args.openai_checkpoint:
        return {"rtf": None, "reason": "no same-size openai-whisper checkpoint is available offline "
                                          "(openai-whisper downloads tiny.en.pt at run time, which is not "
                                          "allowed here); pass --openai-checkpoint PATH to measure it"}
    from workers.engines.speech import OpenAIWhisperEngine

    engine = OpenAIWhisperEngine("openai-bench", args.openai_checkpoint)
    engine.load()
    audio = decode_audio(media)
    started = time.perf_counter()
    segments = engine.transcribe(audio, "en")
    elapsed = time.perf_counter() - started
    return {"seconds": round(elapsed, 2), "rtf": round(elapsed / duration, 4),
            "wer": round(wer(reference, "".join(s.text for s in segments)), 4)}


if __name__ == "__main__":
    main()
