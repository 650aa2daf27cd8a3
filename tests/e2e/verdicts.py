"""Reading the verdict of a soak or burst run from its output."""

from __future__ import annotations

VIOLATION_MARK = "✗"


def failures(output: str) -> str:
    """Every violation line a run printed, wherever it is: the tail of a long run's output may not hold them."""
    lines = [line.strip() for line in output.splitlines() if VIOLATION_MARK in line]
    return "\n".join(["violations printed:", *lines]) if lines else "no violation printed"
