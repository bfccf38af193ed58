"""The one place that reaches into openai-whisper's internals.

``whisper.transcribe`` has no progress callback: it reports progress only through a tqdm bar
made by its ``transcribe`` module (``tqdm.tqdm(total=..., ...)``). ``whisper_progress`` swaps
the ``tqdm`` that module sees, for one call. tests/test_whisper_adapter.py fails loudly if a
whisper release stops making that bar.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


class whisper_progress:
    """openai-whisper reports progress only through a tqdm bar; swap the ``tqdm`` that its
    transcribe module sees (that module only, for one call) for one that forwards to us.

    Raising from ``update`` (a cancel) propagates out of ``whisper.transcribe``.
    """

    def __init__(self, report: Callable[[float], None], duration: float):
        self.report = report
        self.duration = duration
        self.module = importlib.import_module("whisper.transcribe")
        self.saved = None

    def __enter__(self):
        report, duration = self.report, self.duration

        class _Bar:
            def __init__(self, total=None, **_kwargs):
                self.total = total or 1
                self.n = 0

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def update(self, n=1):
                self.n += n
                report(duration * self.n / self.total)

        class _Shim:
            tqdm = _Bar

        self.saved = self.module.tqdm
        self.module.tqdm = _Shim
        return self

    def __exit__(self, *exc):
        self.module.tqdm = self.saved
        return False
