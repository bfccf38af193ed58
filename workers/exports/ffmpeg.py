"""Running the ffmpeg binary. Sources are probed with ``workers.media.probe`` (PyAV), the
same probe analysis uses.

Arguments always travel as a list, never through a shell, so file names with spaces,
quotes or ``$`` are just names. Callers pass absolute paths: ffmpeg reads ``name:rest`` as
a protocol, and an absolute path can never look like one.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import threading
from collections.abc import Callable
from functools import lru_cache

_STDERR_TAIL_LINES = 20


class FFmpegError(RuntimeError):
    """ffmpeg is missing, failed, or ran past its time limit; the message says which and why."""


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """The ``ffmpeg`` on PATH when there is one, else the binary imageio-ffmpeg ships."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise FFmpegError("no ffmpeg found: install ffmpeg or `pip install imageio-ffmpeg`") from exc
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise FFmpegError(f"no ffmpeg found: {exc}") from exc


def run_ffmpeg(
    args: list[str],
    timeout: float | None = None,
    progress: Callable[[float], None] | None = None,
    duration: float | None = None,
) -> None:
    """Run ffmpeg with ``args`` (everything after the program name).

    With ``progress`` and a known output ``duration`` (seconds), ``progress(fraction)`` is
    called as ffmpeg reports its position (0..1, finishing with 1.0). ``progress`` may raise
    to cancel: ffmpeg is killed and the exception propagates. Raises :class:`FFmpegError`
    with the tail of ffmpeg's stderr on a non-zero exit, or when ``timeout`` seconds pass.
    """
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise TypeError("ffmpeg arguments must be a list of strings")
    command = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error",
               "-progress", "pipe:1", *args]
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, encoding="utf-8", errors="replace",
    )
    tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL_LINES)
    # stderr is drained on its own thread so a chatty ffmpeg never blocks on a full pipe.
    drain = threading.Thread(target=lambda: tail.extend(process.stderr), daemon=True)
    drain.start()
    timed_out = threading.Event()

    def _expire() -> None:
        timed_out.set()
        process.kill()

    timer = threading.Timer(timeout, _expire) if timeout else None
    if timer:
        timer.daemon = True
        timer.start()
    try:
        _follow_progress(process.stdout, progress, duration)
        returncode = process.wait()
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        if timer:
            timer.cancel()
        drain.join(timeout=5)
        process.stdout.close()
        process.stderr.close()
    if timed_out.is_set():
        raise FFmpegError(f"ffmpeg ran past its {timeout:g} s time limit and was stopped")
    if returncode != 0:
        detail = " | ".join(line.strip() for line in tail if line.strip()) or "no error output"
        raise FFmpegError(f"ffmpeg failed (exit status {returncode}): {detail}")
    if progress and duration:
        progress(1.0)


def _follow_progress(stream, progress: Callable[[float], None] | None, duration: float | None) -> None:
    """Read ``-progress pipe:1`` key=value lines until ffmpeg closes stdout."""
    last = -1.0
    for line in stream:
        if not (progress and duration and duration > 0):
            continue
        key, _, value = line.strip().partition("=")
        # out_time_ms is microseconds too (a long-standing ffmpeg misnomer); prefer out_time_us.
        if key not in ("out_time_us", "out_time_ms"):
            continue
        try:
            seconds = int(value) / 1_000_000
        except ValueError:  # "N/A" before the first frame is out
            continue
        fraction = min(max(seconds / duration, 0.0), 1.0)
        if fraction > last:
            last = fraction
            progress(fraction)
