"""Shared bits of the benchmark scripts: where the real data lives, and timing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def best_rate(fn: Callable[[], int], repeats: int = 3, min_seconds: float = 0.5) -> float:
    """Best items-per-second of ``fn`` (which returns how many items it processed).

    Each repeat calls ``fn`` until ``min_seconds`` have passed; the best repeat counts, so a
    busy neighbour process inflates the figure less.
    """
    best = 0.0
    for _ in range(repeats):
        items, start = 0, time.perf_counter()
        while True:
            items += fn()
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        best = max(best, items / elapsed)
    return best
