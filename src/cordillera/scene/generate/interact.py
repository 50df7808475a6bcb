"""Pairwise relations between agents' paths, computed once per plan (before the time loop).

The simulator's step is vectorised over agent pairs, so every geometric question it asks must be
an ``(N, N)`` array lookup. Three relations matter:

* **shared lanes** (following): when two paths share a run of lanes, an arc length on one maps
  to the other by a constant offset; a merge (different lanes before the run) or a diverge
  (different lanes after it) extends the run by the length over which the lanes run side by
  side, so bodies are never ignored while they still overlap.
* **conflicts**: an interval of each path where the two bodies could overlap — where paths
  cross in a junction (from the layout's lane-pair crossings), where a pedestrian's crossing line
  cuts a lane, and the approach to a merge. Entry is measured at the front bumper, exit at the
  rear bumper.
* **control**: the signal heads and stop signs along each path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cordillera.scene.generate.agents import Agent, ScenePlan
from cordillera.scene.generate.mapbuild import Layout, side_by_side
from cordillera.scene.generate.paths import F64, first_crossing

I32 = npt.NDArray[np.int32]
BOOL = npt.NDArray[np.bool_]

NONE, CROSS, MERGE, PED = 0, 1, 2, 3
"""Conflict kinds in :attr:`Relations.cf_kind`."""

MAX_HEADS = 2
VEHICLE_MARGIN_M = 0.5
SIDE_MARGIN_M = 0.5  # lateral clearance below which side-by-side boxes count as in conflict
PEDESTRIAN_MARGIN_M = 1.0


@dataclass(frozen=True, eq=False)
class Relations:
    """Pair relations of N agents. ``[i, j]`` entries are in agent ``i``'s path coordinates.

    Attributes:
        off: ``(N, N)`` add to ``s_j`` to get it in ``i``'s coordinates; NaN: no shared lanes.
        lo, hi: ``(N, N)`` start / end of the shared run on ``i``'s path.
        conv: ``(N, N)`` merge approach length before ``lo`` on ``i``'s path (0: no merge).
        div: ``(N, N)`` diverge length after ``hi`` on ``i``'s path (0: no diverge).
        merge: ``(N, N)`` the run starts with a merge.
        cf_kind: ``(N, N)`` int8 conflict kind (:data:`NONE`, :data:`CROSS`, :data:`MERGE`,
            :data:`PED`).
        cf_enter: ``(N, N)`` front-bumper arc length where ``i`` enters the conflict.
        cf_exit: ``(N, N)`` rear-bumper arc length where ``i`` has left it.
        cf_rank: ``(N, N)`` right-of-way rank of ``i``'s lane at the conflict.
        head: ``(N, MAX_HEADS)`` signal head index along the path (-1: none).
        head_s: ``(N, MAX_HEADS)`` front-bumper arc length of that head's stop point.
        stop_sign_s: ``(N,)`` front-bumper arc length of a stop-sign line (NaN: none).
        curb_s: ``(N,)`` pedestrians: arc length where a signalised crossing starts (NaN: none).
        walk_group: ``(N,)`` index into the plan's walk groups for ``curb_s`` (-1: none).
    """

    off: F64
    lo: F64
    hi: F64
    conv: F64
    div: F64
    merge: BOOL
    cf_kind: npt.NDArray[np.int8]
    cf_enter: F64
    cf_exit: F64
    cf_rank: F64
    head: I32
    head_s: F64
    stop_sign_s: F64
    curb_s: F64
    walk_group: I32


def relations(plan: ScenePlan) -> Relations:
    """All pair relations of ``plan``'s agents (Python loops here run once, not per step)."""
    lay = plan.layout
    agents = plan.agents
    n = len(agents)
    nan = np.full((n, n), np.nan)
    r = Relations(
        off=nan.copy(),
        lo=nan.copy(),
        hi=nan.copy(),
        conv=np.zeros((n, n)),
        div=np.zeros((n, n)),
        merge=np.zeros((n, n), bool),
        cf_kind=np.zeros((n, n), np.int8),
        cf_enter=nan.copy(),
        cf_exit=nan.copy(),
        cf_rank=np.zeros((n, n)),
        head=np.full((n, MAX_HEADS), -1, np.int32),
        head_s=np.full((n, MAX_HEADS), np.nan),
        stop_sign_s=np.full(n, np.nan),
        curb_s=np.full(n, np.nan),
        walk_group=np.full(n, -1, np.int32),
    )
    lane_len = np.array([p.length_m for p in lay.lane_paths])
    starts = [dict(zip(a.lanes, a.lane_start_m, strict=True)) for a in agents]
    moving = [a.behaviour != "static" for a in agents]
    for i in range(n):
        for j in range(i + 1, n):
            ai, aj = agents[i], agents[j]
            if ai.lanes and aj.lanes:
                _shared(r, i, j, ai, aj, lay, lane_len)
                if moving[i] and moving[j] and r.cf_kind[i, j] == NONE:
                    _crossing(r, i, j, ai, aj, starts, lay.lane_cross, lay.lane_rank)
    _pedestrian_conflicts(r, plan, starts)
    head_of_lane = {h.lane: k for k, h in enumerate(lay.heads)}
    groups = sorted(plan.walk)
    for i, a in enumerate(agents):
        ks = [
            (head_of_lane[ln], s)
            for ln, s in zip(a.lanes, a.lane_start_m, strict=True)
            if ln in head_of_lane
        ][:MAX_HEADS]
        for k, (h, s) in enumerate(ks):
            r.head[i, k], r.head_s[i, k] = h, s
        signs = [
            s + lay.stop_sign_lanes[ln]
            for ln, s in zip(a.lanes, a.lane_start_m, strict=True)
            if ln in lay.stop_sign_lanes
        ]
        if signs:
            r.stop_sign_s[i] = signs[0]
        walk = [c for c in a.crossings if c.walk_group is not None]
        if walk and walk[0].walk_group in plan.walk:
            r.curb_s[i] = walk[0].s_curb_m
            r.walk_group[i] = groups.index(str(walk[0].walk_group))
    return r


def _shared(r: Relations, i: int, j: int, ai: Agent, aj: Agent, lay: Layout, lane_len: F64) -> None:
    """Shared-lane run of ``i`` and ``j``: offsets, and merge / diverge zone lengths."""
    common = set(ai.lanes) & set(aj.lanes)
    if not common:
        return
    ki = next(k for k, ln in enumerate(ai.lanes) if ln in common)
    kj = aj.lanes.index(ai.lanes[ki])
    run = 0
    while (
        ki + run < len(ai.lanes)
        and kj + run < len(aj.lanes)
        and ai.lanes[ki + run] == aj.lanes[kj + run]
    ):
        run += 1
    last = ai.lanes[ki + run - 1]
    clear = (ai.size_lwh_m[1] + aj.size_lwh_m[1]) / 2 + SIDE_MARGIN_M
    for a, b, ka, kb in ((i, j, ki, kj), (j, i, kj, ki)):
        agent, other = (ai, aj) if a == i else (aj, ai)
        r.lo[a, b] = agent.lane_start_m[ka]
        r.hi[a, b] = agent.lane_start_m[ka + run - 1] + lane_len[last]
        prev = agent.lanes[ka - 1] if ka > 0 else None
        oprev = other.lanes[kb - 1] if kb > 0 else None
        # A merge needs both to arrive from different lanes; one starting on the shared lane
        # is simply ahead of (or behind) the other there.
        if prev is not None and oprev is not None and prev != oprev:
            r.merge[a, b] = True
            r.conv[a, b] = side_by_side(lay.merge_gap[prev, oprev], clear)
        nxt = agent.lanes[ka + run] if ka + run < len(agent.lanes) else None
        onxt = other.lanes[kb + run] if kb + run < len(other.lanes) else None
        if nxt is not None and onxt is not None and nxt != onxt:
            r.div[a, b] = side_by_side(lay.diverge_gap[nxt, onxt], clear)
    r.off[i, j] = r.lo[i, j] - r.lo[j, i]
    r.off[j, i] = -r.off[i, j]
    if r.merge[i, j] and ai.behaviour != "static" and aj.behaviour != "static":
        for a, b, agent, k in ((i, j, ai, ki), (j, i, aj, kj)):
            r.cf_kind[a, b] = MERGE
            r.cf_enter[a, b] = r.lo[a, b] - r.conv[a, b]
            r.cf_exit[a, b] = r.lo[a, b]
            r.cf_rank[a, b] = (
                lay.lane_rank[agent.lanes[k - 1]] if k > 0 else lay.lane_rank[agent.lanes[k]]
            )


def _crossing(
    r: Relations,
    i: int,
    j: int,
    ai: Agent,
    aj: Agent,
    starts: list[dict[int, float]],
    lane_cross: dict[tuple[int, int], tuple[float, float, float]],
    rank: F64,
) -> None:
    """The first place (along ``i``) where the two paths cross outside their shared lanes."""
    shared = set(ai.lanes) & set(aj.lanes)
    best: tuple[float, float, float, int, int] | None = None
    for la in ai.lanes:
        if la in shared:
            continue
        for lb in aj.lanes:
            hit = lane_cross.get((la, lb))
            if hit is None or lb in shared:
                continue
            si, sj = starts[i][la] + hit[0], starts[j][lb] + hit[1]
            if best is None or si < best[0]:
                best = (si, sj, hit[2], la, lb)
    if best is None:
        return
    si, sj, ang, la, lb = best
    _set_conflict(
        r,
        i,
        j,
        si,
        sj,
        ang,
        ai.size_lwh_m[1],
        aj.size_lwh_m[1],
        CROSS,
        VEHICLE_MARGIN_M,
        VEHICLE_MARGIN_M,
    )
    r.cf_rank[i, j], r.cf_rank[j, i] = rank[la], rank[lb]


def _set_conflict(
    r: Relations,
    i: int,
    j: int,
    si: float,
    sj: float,
    angle: float,
    wi: float,
    wj: float,
    kind: int,
    margin_i: float,
    margin_j: float,
) -> None:
    """Conflict intervals around crossing points ``si``/``sj`` at ``angle`` (radians)."""
    sin = max(abs(np.sin(angle)), 0.35)
    cot = abs(np.cos(angle)) / sin
    half_i = (wj / 2 + margin_i) / sin + wi / 2 * cot
    half_j = (wi / 2 + margin_j) / sin + wj / 2 * cot
    r.cf_kind[i, j] = r.cf_kind[j, i] = kind
    r.cf_enter[i, j], r.cf_exit[i, j] = si - half_i, si + half_i
    r.cf_enter[j, i], r.cf_exit[j, i] = sj - half_j, sj + half_j


def _pedestrian_conflicts(r: Relations, plan: ScenePlan, starts: list[dict[int, float]]) -> None:
    """Where each pedestrian's road crossings cut each vehicle's lanes."""
    lay = plan.layout
    cache: dict[tuple[int, int, int], tuple[float, float, float] | None] = {}
    for p, ped in enumerate(plan.agents):
        if ped.behaviour != "walk":
            continue
        pieces = [
            ped.path.sub(c.s_curb_m, c.s_far_m)
            if c.s_far_m > c.s_curb_m
            else ped.path.sub(c.s_far_m, c.s_curb_m)
            for c in ped.crossings
        ]
        for i, veh in enumerate(plan.agents):
            if not veh.lanes or veh.behaviour == "static":
                continue
            best: tuple[float, float, float] | None = None
            for k, (c, piece) in enumerate(zip(ped.crossings, pieces, strict=True)):
                for ln in veh.lanes:
                    key = (p, k, ln)
                    if key not in cache:
                        cache[key] = first_crossing(lay.lane_paths[ln], piece)
                    hit = cache[key]
                    if hit is None:
                        continue
                    si = starts[i][ln] + hit[0]
                    sp = min(c.s_curb_m, c.s_far_m) + hit[1]
                    if best is None or si < best[0]:
                        best = (si, sp, hit[2])
            if best is not None:
                _set_conflict(
                    r,
                    i,
                    p,
                    best[0],
                    best[1],
                    best[2],
                    veh.size_lwh_m[1],
                    ped.size_lwh_m[1],
                    PED,
                    PEDESTRIAN_MARGIN_M,
                    VEHICLE_MARGIN_M,
                )
