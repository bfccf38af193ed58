"""The one HH:MM:SS formatter and parser of the server (Jumper's timestamps)."""

from __future__ import annotations


def hhmmss(seconds: float, nearest: bool = False) -> str:
    """``HH:MM:SS``. Seconds are truncated (12.9 → 00:00:12), as Jumper's frame and transcript
    timestamps are; ``nearest`` rounds instead (a duration: 12.9 s reads 00:00:13)."""
    total = max(0, int(round(float(seconds))) if nearest else int(float(seconds)))
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def parse_hhmmss(value: str | float | int) -> float:
    """'HH:MM:SS', 'MM:SS', 'SS(.sss)' or a number → seconds. Raises ValueError."""
    if isinstance(value, (int, float)):
        return float(value)
    parts = str(value).strip().split(":")
    if not 1 <= len(parts) <= 3:
        raise ValueError(f"not a time: {value!r} (expected HH:MM:SS)")
    total = 0.0
    for part in parts:
        total = total * 60 + float(part)
    if total < 0:
        raise ValueError(f"time must not be negative: {value!r}")
    return total
