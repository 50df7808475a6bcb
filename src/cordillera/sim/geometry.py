"""Batched planar geometry for the simulator's checks: boxes, grids, polylines, lane points.

Every function is a pure torch function over leading batch dimensions: float32 in, no Python
loops over agents, objects or points (only over fixed-size chunks), no host syncs, any device.

Conventions: positions are metres in a scene's local frame, headings are radians CCW from +x,
a box is ``(centre xy, heading, length-width)`` with its length along the heading.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from cordillera.sim.lane_index import SEARCH_RADIUS_M, lane_index_for, query_candidates

LANE_HALF_SEGMENT_M = 0.5
"""Half-length of the tangent segment through a lane sample used for lateral distance: half the
(at most 1 m) sample spacing, so a point between samples gets its perpendicular distance and a
point beyond a lane's end gets its true distance to the end."""
_CHUNK_ELEMENTS = 1 << 22
"""Largest (query × segment) block materialised at once in :func:`project_onto_polyline`."""
_EPS = 1e-9


def wrap_angle(angle_rad: torch.Tensor) -> torch.Tensor:
    """Angles wrapped into ``[-pi, pi)``."""
    return torch.remainder(angle_rad + math.pi, 2.0 * math.pi) - math.pi


def box_corners(xy: torch.Tensor, heading: torch.Tensor, lw: torch.Tensor) -> torch.Tensor:
    """``(..., 4, 2)`` corners of boxes ``xy (..., 2)``, ``heading (...)``, ``lw (..., 2)``.

    Order (counter-clockwise): front-left, rear-left, rear-right, front-right — so corners 0
    and 3 are the front bumper, as in nuPlan/NAVSIM's box polygons.
    """
    c, s = torch.cos(heading).unsqueeze(-1), torch.sin(heading).unsqueeze(-1)
    sign_l = xy.new_tensor([1.0, -1.0, -1.0, 1.0])
    sign_w = xy.new_tensor([1.0, 1.0, -1.0, -1.0])
    lx = 0.5 * lw[..., 0:1] * sign_l
    ly = 0.5 * lw[..., 1:2] * sign_w
    x = xy[..., 0:1] + c * lx - s * ly
    y = xy[..., 1:2] + s * lx + c * ly
    return torch.stack([x, y], dim=-1)


Axis = tuple[torch.Tensor, torch.Tensor]


def _sat_terms(
    heading_a: torch.Tensor, lw_a: torch.Tensor, heading_b: torch.Tensor, lw_b: torch.Tensor
) -> tuple[list[Axis], list[torch.Tensor]]:
    """The four separating axes of two boxes (unit vectors as ``(x, y)`` component pairs, so
    no ``(..., 2)`` temporaries) and the sum of the boxes' projected half-extents on each.

    On box A's own axes A's half-extent is its half length / width and B's is
    ``hl_b |cos Δ| + hw_b |sin Δ|`` (or swapped), Δ being the heading difference.
    """
    ca, sa = torch.cos(heading_a), torch.sin(heading_a)
    cb, sb = torch.cos(heading_b), torch.sin(heading_b)
    hla, hwa = 0.5 * lw_a[..., 0], 0.5 * lw_a[..., 1]
    hlb, hwb = 0.5 * lw_b[..., 0], 0.5 * lw_b[..., 1]
    cd = (ca * cb + sa * sb).abs()
    sd = (ca * sb - sa * cb).abs()
    axes = [(ca, sa), (-sa, ca), (cb, sb), (-sb, cb)]
    radii = [
        hla + hlb * cd + hwb * sd,
        hwa + hlb * sd + hwb * cd,
        hlb + hla * cd + hwa * sd,
        hwb + hla * sd + hwa * cd,
    ]
    return axes, radii


def boxes_overlap(
    xy_a: torch.Tensor,
    heading_a: torch.Tensor,
    lw_a: torch.Tensor,
    xy_b: torch.Tensor,
    heading_b: torch.Tensor,
    lw_b: torch.Tensor,
) -> torch.Tensor:
    """Bool ``(...)``: do oriented boxes A and B intersect (touching counts)? Broadcasts.

    Exact by the separating-axis theorem: two convex rectangles are disjoint iff their centre
    offset projected on one of the four edge normals exceeds the sum of projected half-extents.
    Zero-size boxes are segments or points and work too.
    """
    dx, dy = xy_b[..., 0] - xy_a[..., 0], xy_b[..., 1] - xy_a[..., 1]
    axes, radii = _sat_terms(heading_a, lw_a, heading_b, lw_b)
    overlap = torch.ones_like(radii[0], dtype=torch.bool)
    for (ux, uy), radius in zip(axes, radii, strict=True):
        overlap = overlap & ((dx * ux + dy * uy).abs() <= radius)
    return overlap


def swept_boxes_contact(
    xy_a: torch.Tensor,
    heading_a: torch.Tensor,
    lw_a: torch.Tensor,
    vel_a: torch.Tensor,
    xy_b: torch.Tensor,
    heading_b: torch.Tensor,
    lw_b: torch.Tensor,
    vel_b: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Contact interval ``(t_enter, t_exit)`` in seconds of two boxes translating at constant
    velocities ``vel (..., 2)`` m/s without rotating. Broadcasts.

    The boxes overlap exactly for ``t in [t_enter, t_exit]`` (empty when ``t_enter >
    t_exit``). Without rotation every SAT inequality ``|p0 + v t| <= R`` holds on one interval
    ``-p0 / v ± R / |v|``, so this is the closed-form version of NAVSIM's sampled
    time-to-collision and never misses a contact between samples. Relative motion parallel to
    an axis (``v = 0``) is treated as ``|v| = 1e-9`` m/s: the interval then lies ~1e9 s away
    (disjoint) or spans all relevant times (overlapping), as it should.
    """
    dx, dy = xy_b[..., 0] - xy_a[..., 0], xy_b[..., 1] - xy_a[..., 1]
    wx, wy = vel_b[..., 0] - vel_a[..., 0], vel_b[..., 1] - vel_a[..., 1]
    axes, radii = _sat_terms(heading_a, lw_a, heading_b, lw_b)
    t_enter = t_exit = torch.empty(0)
    for i, ((ux, uy), radius) in enumerate(zip(axes, radii, strict=True)):
        pv = wx * ux + wy * uy
        pv = torch.where(pv.abs() < _EPS, torch.where(pv < 0, -_EPS, _EPS), pv)
        centre = -(dx * ux + dy * uy) / pv
        half = radius / pv.abs()
        lo, hi = centre - half, centre + half
        t_enter = lo if i == 0 else torch.maximum(t_enter, lo)
        t_exit = hi if i == 0 else torch.minimum(t_exit, hi)
    return t_enter, t_exit


def grid_lookup(
    grid_flat: torch.Tensor,
    grid_offset: torch.Tensor,
    grid_hw: torch.Tensor,
    grid_origin_xy_m: torch.Tensor,
    resolution_m: float,
    scene_of: torch.Tensor,
    xy: torch.Tensor,
) -> torch.Tensor:
    """Bool ``(B, ...)``: the cell of each scene's grid under each point ``xy (B, ..., 2)``.

    The U grids are stored flat one after another (``grid_flat``), grid ``u`` starting at
    ``grid_offset[u]`` with ``grid_hw[u] = (H, W)`` cells, row-major. Rollout ``b`` reads scene
    ``scene_of[b]``'s grid; cell ``(row, col)`` covers ``origin + [col, col + 1) * res`` in x
    and ``origin + [row, row + 1) * res`` in y (the layout of :mod:`cordillera.sim.grids`).
    Points outside the grid (and NaN) read False.
    """
    b = xy.shape[0]
    pts = xy.reshape(b, -1, 2)
    origin = grid_origin_xy_m.index_select(0, scene_of).unsqueeze(1)
    hw = grid_hw.index_select(0, scene_of)
    h, w = hw[:, 0:1], hw[:, 1:2]
    cell = torch.floor((pts - origin) / resolution_m)
    col, row = cell[..., 0], cell[..., 1]
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    col_i = torch.where(inside, col, 0).long()
    row_i = torch.where(inside, row, 0).long()
    flat = grid_offset.index_select(0, scene_of).unsqueeze(1) + row_i * w + col_i
    value = grid_flat[flat] & inside
    return value.reshape(xy.shape[:-1])


def _rows(scene_of: torch.Tensor | None, b: int, device: torch.device) -> torch.Tensor:
    """Row of the (U- or B-indexed) map tensors that rollout ``b`` reads."""
    return scene_of if scene_of is not None else torch.arange(b, device=device)


def project_onto_polyline(
    points: torch.Tensor,
    line_xy: torch.Tensor,
    line_s: torch.Tensor,
    line_valid: torch.Tensor,
    *,
    scene_of: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact projection of ``points (B, M, 2)`` onto one polyline per row.

    Args:
        points: query points.
        line_xy: ``(B, P, 2)`` vertices (or ``(U, P, 2)`` with ``scene_of``).
        line_s: ``(B, P)`` arc length of each vertex (any non-decreasing parametrisation;
            positions between vertices interpolate it linearly).
        line_valid: ``(B, P)``; valid vertices must form a prefix (padding at the end).
        scene_of: ``(B,)`` row of the line tensors each query row reads, when they are
            indexed by unique scene.

    Returns:
        ``s_m (B, M)`` arc length of the closest point, ``signed_lateral_m (B, M)`` distance
        to it (positive left of the direction of travel), ``tangent_heading_rad (B, M)`` of
        the closest segment. Rows without a valid vertex give zeros.
    """
    b, m, _ = points.shape
    rows = _rows(scene_of, b, points.device)
    p = line_valid.shape[-1]
    if p == 0:
        z = points.new_zeros(b, m)
        return z, z.clone(), z.clone()
    line_xy, line_s, line_valid = (t.index_select(0, rows) for t in (line_xy, line_s, line_valid))
    # Segment i runs from vertex i to vertex i + 1; a last valid vertex becomes a zero-length
    # segment so single-point lines still project (onto the point).
    nxt = torch.cat([line_xy[:, 1:], line_xy[:, -1:]], 1)
    nxt_ok = torch.cat([line_valid[:, 1:], line_valid.new_zeros(b, 1)], 1)
    a = line_xy
    ab = torch.where(nxt_ok.unsqueeze(-1), nxt - a, torch.zeros_like(a))
    s0 = line_s
    s1 = torch.where(nxt_ok, torch.cat([line_s[:, 1:], line_s[:, -1:]], 1), line_s)
    len2 = (ab * ab).sum(-1).clamp_min(_EPS)

    best_d2 = points.new_full((b, m), math.inf)
    best_i = torch.zeros(b, m, dtype=torch.long, device=points.device)
    # Component-wise (no (..., 2) temporaries) and with invalid segments pushed far away.
    inv_len2 = 1.0 / len2
    ax = torch.where(line_valid, a[..., 0], math.inf).unsqueeze(1)
    ay = a[..., 1].unsqueeze(1)
    abx, aby = ab[..., 0].unsqueeze(1), ab[..., 1].unsqueeze(1)
    px, py = points[..., 0:1], points[..., 1:2]
    step = max(1, _CHUNK_ELEMENTS // max(1, b * m))
    for lo in range(0, p, step):  # chunks bound memory; a loop over blocks, not over points
        hi = min(p, lo + step)
        apx, apy = px - ax[..., lo:hi], py - ay[..., lo:hi]
        sx, sy = abx[..., lo:hi], aby[..., lo:hi]
        t = ((apx * sx + apy * sy) * inv_len2[:, None, lo:hi]).clamp(0.0, 1.0)
        ex, ey = apx - t * sx, apy - t * sy
        d2 = torch.nan_to_num(ex * ex + ey * ey, nan=math.inf)
        d2_min, i_min = d2.min(-1)
        better = d2_min < best_d2
        best_d2 = torch.where(better, d2_min, best_d2)
        best_i = torch.where(better, i_min + lo, best_i)

    def pick(x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            return torch.gather(x, 1, best_i.unsqueeze(-1).expand(b, m, 2))
        return torch.gather(x, 1, best_i)

    a_b, ab_b, s0_b, s1_b, len2_b = pick(a), pick(ab), pick(s0), pick(s1), pick(len2)
    ap = points - a_b
    t = ((ap * ab_b).sum(-1) / len2_b).clamp(0.0, 1.0)
    off = ap - t.unsqueeze(-1) * ab_b
    cross = ab_b[..., 0] * off[..., 1] - ab_b[..., 1] * off[..., 0]
    dist = off.norm(dim=-1)
    found = torch.isfinite(best_d2)
    s = torch.where(found, s0_b + t * (s1_b - s0_b), 0.0)
    lateral = torch.where(found, torch.where(cross < 0, -dist, dist), 0.0)
    tangent = torch.where(found, torch.atan2(ab_b[..., 1], ab_b[..., 0]), 0.0)
    return s, lateral, tangent


HeadingRange = tuple[float, float]
"""``(lo, hi]`` bounds on |heading difference| in radians; ``lo < 0`` includes 0."""


class LaneCandidates(NamedTuple):
    """Lane samples gathered for each query point: ``idx (B, M, C)`` into Lp, positions
    ``xy (B, M, C, 2)``, headings ``(B, M, C)``, ``ok (B, M, C)`` real and valid."""

    idx: torch.Tensor
    xy: torch.Tensor
    heading: torch.Tensor
    ok: torch.Tensor


def lane_candidates(
    xy: torch.Tensor,
    heading: torch.Tensor,
    lane_xy: torch.Tensor,
    lane_heading: torch.Tensor,
    lane_valid: torch.Tensor,
    search_ranges: list[HeadingRange],
    *,
    scene_of: torch.Tensor | None = None,
) -> list[LaneCandidates]:
    """Per heading range, the lane samples worth testing for ``xy (B, M, 2)`` (see
    :mod:`cordillera.sim.lane_index`; one index and one cell-list read serve every range)."""
    b = xy.shape[0]
    lp = lane_valid.shape[-1]
    rows = _rows(scene_of, b, xy.device)
    index = lane_index_for(lane_xy, lane_heading, lane_valid)
    out = []
    for idx, ok in query_candidates(index, rows, xy, heading, search_ranges):
        idx = idx.clamp(max=max(lp - 1, 0))
        flat = rows.view(b, 1, 1) * lp + idx
        if lp:
            cxy, ch = lane_xy.reshape(-1, 2)[flat], lane_heading.reshape(-1)[flat]
            ok = ok & lane_valid.reshape(-1)[flat]
        else:
            cxy, ch = xy.new_zeros(*idx.shape, 2), xy.new_zeros(idx.shape)
        out.append(LaneCandidates(idx, cxy, ch, ok))
    return out


def nearest_in_range(
    xy: torch.Tensor, heading: torch.Tensor, cand: LaneCandidates, heading_range: HeadingRange
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest (Euclidean) candidate whose |heading difference| lies in ``heading_range``:
    ``index (B, M)`` (-1), ``lateral_distance_m`` (inf), ``lane_heading`` (0), ``found``.

    Lateral distance is to the candidate's ±0.5 m tangent segment. Results farther than the
    index's search radius (10 m) count as not found, so the contract does not depend on how
    full a cell was.
    """
    if cand.idx.shape[-1] == 0:
        none = torch.zeros_like(xy[..., 0])
        return none.long() - 1, none + math.inf, none, none.bool()
    lo, hi = heading_range
    dh = wrap_angle(cand.heading - heading.unsqueeze(-1)).abs()
    mask = cand.ok & (dh > lo) & (dh <= hi)
    dx = xy[..., 0:1] - cand.xy[..., 0]
    dy = xy[..., 1:2] - cand.xy[..., 1]
    j = torch.where(mask, dx * dx + dy * dy, math.inf).argmin(-1, keepdim=True)
    qx = torch.gather(dx, 2, j).squeeze(-1)
    qy = torch.gather(dy, 2, j).squeeze(-1)
    qh = torch.gather(cand.heading, 2, j).squeeze(-1)
    c, s = torch.cos(qh), torch.sin(qh)
    excess = (qx * c + qy * s).abs().sub(LANE_HALF_SEGMENT_M).clamp_min(0.0)
    perp = qy * c - qx * s
    lateral = torch.sqrt(excess * excess + perp * perp)
    found = mask.any(-1) & (lateral <= SEARCH_RADIUS_M)
    index = torch.where(found, torch.gather(cand.idx, 2, j).squeeze(-1), -1)
    return index, torch.where(found, lateral, math.inf), torch.where(found, qh, 0.0), found


def nearest_lane_point_classes(
    xy: torch.Tensor,
    heading: torch.Tensor,
    lane_xy: torch.Tensor,
    lane_heading: torch.Tensor,
    lane_valid: torch.Tensor,
    heading_ranges: list[HeadingRange],
    *,
    scene_of: torch.Tensor | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """:func:`nearest_lane_point` for several |heading difference| ranges ``(lo, hi]``."""
    cands = lane_candidates(
        xy, heading, lane_xy, lane_heading, lane_valid, heading_ranges, scene_of=scene_of
    )
    return [nearest_in_range(xy, heading, c, r) for c, r in zip(cands, heading_ranges, strict=True)]


def nearest_lane_point(
    xy: torch.Tensor,
    heading: torch.Tensor,
    lane_xy: torch.Tensor,
    lane_heading: torch.Tensor,
    lane_valid: torch.Tensor,
    max_heading_diff_rad: float,
    *,
    scene_of: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest lane sample whose heading is within ``max_heading_diff_rad`` of ``heading``,
    searched within :data:`~cordillera.sim.lane_index.SEARCH_RADIUS_M` (10 m) of the point.

    Args:
        xy: ``(B, M, 2)`` query points; heading ``(B, M)`` their headings.
        lane_xy: ``(B, Lp, 2)`` lane centreline samples (~1 m apart; or ``(U, Lp, 2)`` with
            ``scene_of``); lane_heading ``(B, Lp)`` their tangent headings; lane_valid
            ``(B, Lp)``.
        max_heading_diff_rad: largest accepted |heading difference| (pi accepts any).
        scene_of: ``(B,)`` row of the lane tensors each query row reads.

    Returns:
        ``index (B, M)`` of the sample in ``Lp`` (-1 if none), ``lateral_distance_m (B, M)``
        from the point to the sample's ±0.5 m tangent segment (the perpendicular distance
        for points alongside the lane; +inf if none), ``lane_heading (B, M)`` of that
        sample, ``found (B, M)``.
    """
    (res,) = nearest_lane_point_classes(
        xy,
        heading,
        lane_xy,
        lane_heading,
        lane_valid,
        [(-1.0, max_heading_diff_rad)],
        scene_of=scene_of,
    )
    return res
