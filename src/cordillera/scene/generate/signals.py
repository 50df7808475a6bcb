"""Signal timelines: per-head states at every step from a layout's fixed-time phase plan."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cordillera.scene.generate.mapbuild import Layout
from cordillera.scene.types import SignalState

WALK_WINDOW_S = 4.0
"""Pedestrians may *start* crossing only this long after their parallel green begins, so that
at 1.2 m/s they are off a 15 m road before the conflicting phase's green."""


def cycle_length_s(layout: Layout) -> float:
    """Length of the layout's signal cycle (0 without signals)."""
    if not layout.phase_plan:
        return 0.0
    return float(sum(d for _, d in next(iter(layout.phase_plan.values()))))


def group_states(
    layout: Layout, num_steps: int, dt_s: float, offset_s: float
) -> dict[str, npt.NDArray[np.int8]]:
    """``(T,)`` state of every signal group; the cycle is at ``offset_s`` into it at step 0."""
    cycle = cycle_length_s(layout)
    if cycle <= 0:
        return {}
    t = (np.arange(num_steps) * dt_s + offset_s) % cycle
    out = {}
    for group, segments in sorted(layout.phase_plan.items()):
        ends = np.cumsum([d for _, d in segments])
        k = np.minimum(np.searchsorted(ends, t, side="right"), len(segments) - 1)
        out[group] = np.array([s for s, _ in segments], np.int8)[k]
    return out


def head_states(
    layout: Layout, num_steps: int, dt_s: float, offset_s: float
) -> npt.NDArray[np.int8]:
    """``(S, T)`` int8 :class:`SignalState` of every signal head of ``layout``."""
    if not layout.heads:
        return np.zeros((0, num_steps), np.int8)
    groups = group_states(layout, num_steps, dt_s, offset_s)
    return np.stack([groups[h.group] for h in layout.heads]).astype(np.int8)


def walk_windows(
    layout: Layout, num_steps: int, dt_s: float, offset_s: float
) -> dict[str, npt.NDArray[np.bool_]]:
    """Walk group -> ``(T,)`` whether a pedestrian may step onto a crossing of that group."""
    groups = group_states(layout, num_steps, dt_s, offset_s)
    cycle = cycle_length_s(layout)
    out = {}
    for g in sorted({c.walk_group for c in layout.crossings if c.walk_group is not None}):
        segs = layout.phase_plan[g]
        k = next(i for i, (s, _) in enumerate(segs) if s == SignalState.GREEN)
        green_at = sum(d for _, d in segs[:k])
        since = (np.arange(num_steps) * dt_s + offset_s - green_at) % cycle
        out[g] = (groups[g] == SignalState.GREEN) & (since < WALK_WINDOW_S)
    return out
