"""Helpers for property-based tests that mutate real inputs (used with hypothesis).

The property every reader must keep: any input either reads into a valid scene or raises
:class:`SceneFormatError` (naming the file) — never another exception, a hang or a crash.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

from cordillera.errors import SceneFormatError
from cordillera.scene.model import Scene
from cordillera.scene.readers import read_scene


@st.composite
def mutated_bytes(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` truncated, with bytes flipped, spliced with garbage, or emptied."""
    kind = draw(st.sampled_from(["truncate", "flip", "splice", "empty", "garbage"]))
    n = len(original)
    if kind == "truncate":
        return original[: draw(st.integers(0, max(n - 1, 0)))]
    if kind == "flip":
        data = bytearray(original)
        for _ in range(draw(st.integers(1, 16))):
            i = draw(st.integers(0, n - 1))
            data[i] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "splice":
        i = draw(st.integers(0, n))
        return original[:i] + draw(st.binary(min_size=1, max_size=64)) + original[i:]
    if kind == "empty":
        return b""
    return draw(st.binary(min_size=1, max_size=512))


def assert_reads_or_format_error(path: Path, fmt: str | None = None) -> Scene | None:
    """Read ``path``; a :class:`SceneFormatError` naming the file is the only allowed failure."""
    try:
        return read_scene(path, fmt)
    except SceneFormatError as e:
        assert e.path is not None, f"error does not name the file: {e}"
        return None
