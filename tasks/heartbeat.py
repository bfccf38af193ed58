"""A beat on a daemon thread while a long block runs, so the API can tell work in progress
from work whose worker was killed (a model load or a decode reports no progress for a while)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Heartbeat:
    """Calls ``beat`` every ``every`` seconds until the ``with`` block ends (``immediately``:
    once at the start too). A beat that raises is logged and the next one retries: Redis or the
    database may blink without the work being lost."""

    def __init__(self, beat: Callable[[], None], every: float, what: str, immediately: bool = True):
        self.beat, self.every, self.what, self.immediately = beat, every, what, immediately
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if self.immediately:
            self._beat_once()
        while not self._stop.wait(self.every):
            self._beat_once()

    def _beat_once(self) -> None:
        try:
            self.beat()
        except Exception:  # noqa: BLE001 - the next beat retries
            log.warning("heartbeat of %s failed", self.what)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
