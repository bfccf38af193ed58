"""Two speakers on two channels: word error rate of our channel-by-channel transcript against
faster-whisper on each channel alone and on the mono downmix (what was transcribed before).

Builds the interview the tests use: JFK (tests/data/jfk.flac) on the left, the hotwords
speaker (tests/data/hotwords.mp3) on the right from 3 s (their speech overlaps), with the
other speaker bleeding in at ``--bleed`` levels. References: JFK's text (upstream), and for
the second voice (no upstream transcript) whisper's own text of that voice without bleed.
WER is per channel (words of that channel's segments against that channel's reference);
the downmix, which has no channels, is scored against both references joined. Also the
detection on one voice in stereo (must stay one transcript). Prints one JSON object.

    python bench/channels.py
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.media_factory import speech_samples, two_speaker_channels, write_flac  # noqa: E402
from tests.text_match import wer  # noqa: E402
from workers import transcripts  # noqa: E402
from workers.media.audio import decode_channels, distinct_channels, downmix  # noqa: E402
from workers.pipeline.speech import transcribe_file  # noqa: E402

JFK_TEXT = json.loads((ROOT / "tests" / "data" / "transcripts.json").read_text())["jfk.flac"]["text"]


def _transcribe(work: Path, name: str, samples: np.ndarray, model: str) -> list[dict]:
    path = write_flac(work / f"{name}.flac", samples)
    hash_str = f"{abs(hash(name)) % 16 ** 16:016x}"
    transcribe_file(str(path), work / "cache", hash_str, "en", model)
    return transcripts.load_transcript(work / "cache", hash_str)["segments"]


def _text(segments: list[dict]) -> str:
    return "".join(s["text"] for s in segments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="whisper-tiny.en")
    parser.add_argument("--bleed", type=float, nargs="*", default=[0.0, 0.15, 0.3])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-channels-"))
    truth = {0: JFK_TEXT, 1: _text(_transcribe(work, "clean-right", two_speaker_channels(0.0)[1], args.model))}
    cases = []
    for bleed in args.bleed:
        stereo = two_speaker_channels(bleed)
        report = distinct_channels(stereo)
        split = _transcribe(work, f"interview-{bleed}", stereo, args.model)
        case = {"bleed": bleed, "bleed_db": None if bleed == 0 else round(20 * np.log10(bleed), 1),
                "detected_distinct": report.distinct, "own_speech_s": report.own_speech_s}
        for channel in (0, 1):
            ours = _text([s for s in split if s.get("channel") == channel])
            alone = _text(_transcribe(work, f"alone-{bleed}-{channel}", stereo[channel], args.model))
            case[f"channel{channel}"] = {"wer_ours": round(wer(truth[channel], ours), 3),
                                         "wer_faster_whisper_channel_alone": round(wer(truth[channel], alone), 3)}
        mix = _text(_transcribe(work, f"mix-{bleed}", downmix(stereo), args.model))
        case["wer_mono_downmix_vs_both"] = round(wer(f"{truth[0]} {truth[1]}", mix), 3)
        ours_both = " ".join(_text([s for s in split if s.get("channel") == c]) for c in (0, 1))
        case["wer_ours_vs_both"] = round(wer(f"{truth[0]} {truth[1]}", ours_both), 3)
        cases.append(case)
    voice = speech_samples("jfk.flac")
    one_voice = {
        "jfk.flac (stereo, one voice)": distinct_channels(decode_channels(ROOT / "tests" / "data" / "jfk.flac")).distinct,
        "duplicated mono": distinct_channels(np.stack([voice, voice])).distinct,
        "spaced microphones (0.5 ms, -3 dB)": distinct_channels(np.stack([voice, 0.7 * np.roll(voice, 8)])).distinct,
    }
    print(json.dumps({"model": args.model, "cpu": platform.processor() or platform.machine(),
                      "two_speakers": cases, "one_voice_detected_distinct": one_voice}, indent=1))


if __name__ == "__main__":
    main()
