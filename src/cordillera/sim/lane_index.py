"""A spatial index of lane centreline samples for batched nearest-lane queries.

Maps hold thousands of lane samples (one per metre of lane), and every step asks, for every
agent of interest, for the nearest lane in a heading range. A dense ``(B, M, Lp)`` search
would dominate a step, so samples are grouped into short runs of one lane (at most
:data:`GROUP_SIZE` consecutive samples, split where the lane breaks) summarised by a bounding
circle and a heading span, and the groups are bucketed in a uniform grid per scene: every cell
lists the groups that come within :data:`SEARCH_RADIUS_M` of it. A query reads its cell's
list (at most :data:`CELL_CAP` groups), keeps the :data:`GROUPS_KEPT` with the smallest
lower-bound distance among those whose headings can match, and tests their samples exactly.

Built once per set of lane tensors and cached (keyed by tensor identity, dropped with them).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch

GROUP_SIZE = 8
"""Samples per group (at ~1 m spacing, a group spans at most ~7 m of one lane)."""
GROUPS_KEPT = 8
"""Groups tested exactly per query and heading range."""
SEARCH_RADIUS_M = 10.0
"""Lane samples farther than this from the query are never returned."""
CELL_M = 10.0
CELL_CAP = 128
"""Largest group list read per cell; denser cells keep the groups nearest their centre."""
BREAK_GAP_M = 2.0
"""Consecutive samples farther apart than this (or turning by > 45°) start a new lane run."""


def _wrap(a: torch.Tensor) -> torch.Tensor:
    return torch.remainder(a + math.pi, 2.0 * math.pi) - math.pi


@dataclass(frozen=True, eq=False)
class LaneIndex:
    """Lane-sample groups of R map rows (scenes), bucketed in a grid per row.

    Attributes:
        group_start: ``(R, G)`` long first sample of each group; group_len ``(R, G)`` long
            (0 for padding groups).
        group_geometry: ``(R, G, 5)`` bounding-circle centre x, y and radius, mean heading,
            and the largest deviation of a member's heading from it (packed so that a query
            reads them in one gather).
        grid_origin_xy_m: ``(R, 2)`` corner of each row's grid; grid_hw ``(H, W)`` cells.
        cell_offset: ``(R * H * W + 1,)`` long start of each cell's list in ``cell_group``.
        cell_group: ``(P,)`` long group ids (within the row), sorted by cell, nearest first.
        cap: list length read per query (the longest list, at most :data:`CELL_CAP`).
    """

    group_start: torch.Tensor
    group_len: torch.Tensor
    group_geometry: torch.Tensor
    grid_origin_xy_m: torch.Tensor
    grid_hw: tuple[int, int]
    cell_offset: torch.Tensor
    cell_group: torch.Tensor
    cap: int


def _groups(
    xy: torch.Tensor, heading: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """Split each row's samples into lane runs of at most GROUP_SIZE; summarise them."""
    r, lp = valid.shape
    dev = xy.device
    i = torch.arange(lp, device=dev).expand(r, lp)
    gap = torch.zeros(r, lp, device=dev)
    gap[:, 1:] = (xy[:, 1:] - xy[:, :-1]).norm(dim=-1)
    turn = torch.zeros(r, lp, device=dev)
    turn[:, 1:] = _wrap(heading[:, 1:] - heading[:, :-1]).abs()
    prev_ok = torch.cat([torch.zeros_like(valid[:, :1]), valid[:, :-1]], 1)
    brk = valid & (~prev_ok | (gap > BREAK_GAP_M) | (turn > math.pi / 4))
    run_start = torch.where(brk, i, -1).cummax(1).values
    new = valid & ((i - run_start) % GROUP_SIZE == 0)
    gid = torch.where(valid, torch.cumsum(new.long(), 1) - 1, 0)
    g = max(1, int(new.sum(1).max()))  # build time only
    rows = torch.arange(r, device=dev).unsqueeze(1).expand(r, lp)
    start = torch.zeros(r, g, dtype=torch.long, device=dev)
    start[rows[new], gid[new]] = i[new]
    count = torch.zeros(r, g, device=dev).index_put_(
        (rows[valid], gid[valid]), torch.ones_like(gid[valid], dtype=xy.dtype), accumulate=True
    )
    flat = rows * g + gid

    def seg_sum(x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(r * g, *x.shape[2:], device=dev, dtype=x.dtype)
        return out.index_add_(0, flat[valid], x[valid]).view(r, g, *x.shape[2:])

    def seg_max(x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(r * g, device=dev, dtype=x.dtype)
        return out.scatter_reduce_(0, flat[valid], x[valid], "amax").view(r, g)

    centre = seg_sum(xy) / count.clamp_min(1).unsqueeze(-1)
    member_centre = centre.view(r * g, 2)[flat]
    radius = seg_max((xy - member_centre).norm(dim=-1))
    unit = seg_sum(torch.stack([torch.cos(heading), torch.sin(heading)], -1))
    mean_h = torch.atan2(unit[..., 1], unit[..., 0])
    spread = seg_max(_wrap(heading - mean_h.view(-1)[flat]).abs())
    spread = torch.where(unit.norm(dim=-1) > 1e-6, spread, math.pi)
    return start, count.long(), centre, radius, mean_h, spread


def build_lane_index(
    lane_xy: torch.Tensor, lane_heading: torch.Tensor, lane_valid: torch.Tensor
) -> LaneIndex:
    """Index lane samples ``(R, Lp, 2)``, headings ``(R, Lp)``, validity ``(R, Lp)``."""
    start, length, centre, radius, mean_h, spread = _groups(lane_xy, lane_heading, lane_valid)
    r, g = length.shape
    dev = lane_xy.device
    live = length > 0
    reach = radius + SEARCH_RADIUS_M
    big = torch.full_like(reach, math.inf)
    lo = torch.where(live.unsqueeze(-1), centre - reach.unsqueeze(-1), big.unsqueeze(-1))
    hi = torch.where(live.unsqueeze(-1), centre + reach.unsqueeze(-1), -big.unsqueeze(-1))
    origin = lo.amin(1)
    origin = torch.where(torch.isfinite(origin), origin, 0.0)
    size = ((hi.amax(1) - origin) / CELL_M).ceil().clamp_min(1)
    h, w = (int(v) for v in size.amax(0).flip(0).tolist())  # build time only
    c0 = torch.floor((lo - origin.unsqueeze(1)) / CELL_M).long()
    c1 = torch.floor((hi - origin.unsqueeze(1)) / CELL_M).long()
    span = int((c1 - c0 + 1).clamp_min(0)[live].max()) if bool(live.any()) else 1
    d = torch.arange(span, device=dev)
    cx = (c0[..., 0:1] + d).unsqueeze(-2)  # (R, G, 1, S)
    cy = (c0[..., 1:2] + d).unsqueeze(-1)  # (R, G, S, 1)
    ok = live[..., None, None] & (cx <= c1[..., 0, None, None]) & (cy <= c1[..., 1, None, None])
    ok = ok & (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
    row = torch.arange(r, device=dev).view(r, 1, 1, 1)
    cell = (row * h + cy) * w + cx
    # Nearest groups first within a cell, so an overfull cell drops the farthest.
    cell_centre = origin.view(r, 1, 1, 1, 2) + CELL_M * (
        torch.stack(torch.broadcast_tensors(cx, cy), -1) + 0.5
    )
    dist = (cell_centre - centre.view(r, g, 1, 1, 2)).norm(dim=-1)
    group = torch.arange(g, device=dev).view(1, g, 1, 1).expand_as(cell)
    cell, dist, group = cell[ok], dist[ok], group[ok]
    order = torch.argsort(dist, stable=True)
    order = order[torch.argsort(cell[order], stable=True)]
    counts = torch.bincount(cell, minlength=r * h * w)
    offset = torch.cat([torch.zeros(1, dtype=torch.long, device=dev), counts.cumsum(0)])
    cap = min(CELL_CAP, int(counts.max())) if len(counts) else 0
    geometry = torch.cat([centre, torch.stack([radius, mean_h, spread], -1)], -1)
    return LaneIndex(start, length, geometry, origin, (h, w), offset, group[order], max(cap, 1))


_CACHE: dict[tuple[int, int, int], tuple[weakref.ref[torch.Tensor], tuple[int, ...], LaneIndex]]
_CACHE = {}


def lane_index_for(
    lane_xy: torch.Tensor, lane_heading: torch.Tensor, lane_valid: torch.Tensor
) -> LaneIndex:
    """The index of these lane tensors, built on first use and cached while they live."""
    key = (id(lane_xy), id(lane_heading), id(lane_valid))
    version = (lane_xy._version, lane_heading._version, lane_valid._version)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is lane_xy and hit[1] == version:
        return hit[2]
    index = build_lane_index(lane_xy, lane_heading, lane_valid)
    _CACHE[key] = (weakref.ref(lane_xy), version, index)
    weakref.finalize(lane_xy, _CACHE.pop, key, None)
    return index


def query_candidates(
    index: LaneIndex,
    rows: torch.Tensor,
    xy: torch.Tensor,
    heading: torch.Tensor,
    heading_ranges: list[tuple[float, float]],
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each |heading difference| range ``(lo, hi]``: sample indices ``(B, M, C)`` worth
    testing for points ``xy (B, M, 2)`` / ``heading (B, M)`` reading map rows ``rows (B,)``,
    and whether each is a real candidate. The cell lists are read once for all ranges."""
    b = xy.shape[0]
    h, w = index.grid_hw
    cell = torch.floor((xy - index.grid_origin_xy_m.index_select(0, rows).unsqueeze(1)) / CELL_M)
    inside = (cell[..., 0] >= 0) & (cell[..., 0] < w) & (cell[..., 1] >= 0) & (cell[..., 1] < h)
    cell = torch.where(inside.unsqueeze(-1), cell, 0.0).long()
    flat = (rows.view(b, 1) * h + cell[..., 1]) * w + cell[..., 0]
    first = index.cell_offset[flat]
    count = torch.where(inside, index.cell_offset[flat + 1] - first, 0)
    slot = torch.arange(index.cap, device=xy.device)
    listed = slot < count.unsqueeze(-1)
    pos = (first.unsqueeze(-1) + slot).clamp(max=max(len(index.cell_group) - 1, 0))
    gid = index.cell_group[pos] if len(index.cell_group) else torch.zeros_like(pos)
    g = index.group_start.shape[1]
    gflat = rows.view(b, 1, 1) * g + gid
    geo = index.group_geometry.reshape(-1, 5)[gflat]  # one gather: (B, M, cap, 5)
    lower = (xy.unsqueeze(2) - geo[..., 0:2]).norm(dim=-1) - geo[..., 2]
    listed = listed & (lower <= SEARCH_RADIUS_M)
    dh = _wrap(geo[..., 3] - heading.unsqueeze(-1)).abs()
    dh_lo = (dh - geo[..., 4]).clamp_min(0.0)
    dh_hi = (dh + geo[..., 4]).clamp_max(math.pi)
    k = min(GROUPS_KEPT, index.cap)
    offs = torch.arange(GROUP_SIZE, device=xy.device)
    out = []
    for lo, hi in heading_ranges:
        feasible = listed & (dh_lo <= hi + 1e-4) & (dh_hi > lo - 1e-4)
        key = torch.where(feasible, lower, math.inf)
        key_k, pick = torch.topk(key, k, dim=-1, largest=False, sorted=False)
        chosen = torch.gather(gflat, 2, pick)
        start = index.group_start.reshape(-1)[chosen]
        length = index.group_len.reshape(-1)[chosen]
        idx = (start.unsqueeze(-1) + offs).flatten(2)
        ok = (torch.isfinite(key_k).unsqueeze(-1) & (offs < length.unsqueeze(-1))).flatten(2)
        out.append((idx, ok))
    return out
