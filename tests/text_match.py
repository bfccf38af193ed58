"""Comparing a model's text and times in a way that holds on any x86-64 CPU.

CTranslate2 picks different int8 kernels per instruction set (AVX2, AVX-512, VNNI), so
whisper's punctuation, casing and the last decimals of its timestamps differ between machines
while the words stay the same. Tests compare normalised words (word error rate) and times
within a tolerance. (jiwer computes the same WER but would add two pinned dependencies for
twenty lines.)
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

# Times a model gives are compared this loosely. Measured on jfk.flac with whisper-tiny.en
# int8: segment ends move by 0.04 s and one word start ("my", after a comma that only some
# instruction sets produce) by 0.32 s between AVX-512 and AVX2 (a Haswell under qemu-user).
TIME_TOLERANCE_S = 0.5


def words(text: str) -> list[str]:
    """Lower-case words, punctuation stripped ("Americans," → "americans"; "don't" kept)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w\s']|_", " ", text)
    return [w.strip("'") for w in text.split() if w.strip("'")]


def word_errors(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Substitutions + deletions + insertions (word-level Levenshtein distance)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp in enumerate(hypothesis, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp))
        previous = current
    return previous[-1]


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference``, after :func:`words`."""
    ref, hyp = words(reference), words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return word_errors(ref, hyp) / len(ref)


def same_words(reference: str, hypothesis: str) -> bool:
    return words(reference) == words(hypothesis)
