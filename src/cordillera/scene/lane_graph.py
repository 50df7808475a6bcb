"""Lane connectivity: from the ids a source gives, or inferred from geometry where it gives none.

nuScenes maps as converted by ScenarioNet hold only lane centerlines (lanes and lane connectors,
all ``LANE_SURFACE_STREET``) without entry/exit or neighbour ids. The simulator and the route
code need a lane graph, so it is rebuilt here from geometry alone:

* **successors**: lane ``j`` follows lane ``i`` when ``i``'s last point lies within
  :data:`SUCCESSOR_GAP_M` of ``j``'s first point and their headings there agree within
  :data:`HEADING_TOLERANCE_RAD`. In nuScenes a lane and the connector after it share the end
  pose to centimetres; 1 m absorbs discretisation while staying far below the ≥ 2.5 m spacing
  of parallel lanes, so a lane is never joined to the lane beside its true successor.
* **left / right neighbours**: lane ``j`` is beside lane ``i`` when the point of ``j`` closest
  to ``i``'s arc-length midpoint lies abeam of it (within :data:`NEIGHBOUR_MAX_ALONG_M` along
  ``i``'s heading), :data:`NEIGHBOUR_MIN_OFFSET_M` to :data:`NEIGHBOUR_MAX_OFFSET_M` to the
  side (one lane width: nuScenes and Waymo lanes are 2.7-4 m wide), and ``j`` runs the same
  way within the heading tolerance. Of several candidates on one side the nearest wins.

Everything is vectorised over lanes and segments (the only Python loop walks fixed-size chunks
of query lanes to bound memory). All inputs are metres in the world frame; only x, y are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from cordillera.scene.model import NO_INDEX
from cordillera.scene.polylines import Polylines

Float64Array = npt.NDArray[np.float64]
Int32Array = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]

SUCCESSOR_GAP_M = 1.0
"""Largest distance from a lane's end to its successor's start, metres."""
HEADING_TOLERANCE_RAD = float(np.deg2rad(30.0))
"""Largest heading difference between connected or neighbouring lanes, radians."""
NEIGHBOUR_MIN_OFFSET_M = 2.5
"""Smallest lateral centerline distance of a neighbour lane, metres."""
NEIGHBOUR_MAX_OFFSET_M = 5.0
"""Largest lateral centerline distance of a neighbour lane, metres."""
NEIGHBOUR_MAX_ALONG_M = 1.0
"""Largest along-track offset of the neighbour's closest point from the midpoint, metres."""
_MIN_SEGMENT_M = 1e-6  # shorter segments (repeated points) have no direction
_CHUNK_ELEMENTS = 2_000_000  # bound on (lanes x lanes) temporaries


class LaneGraph(NamedTuple):
    """Lane connectivity in :class:`~cordillera.scene.model.RoadMap` conventions.

    Attributes:
        successors: ``(E, 2)`` int32 edges ``[from_lane, to_lane]``, sorted, no duplicates.
        left: ``(L,)`` int32 index of the left neighbour lane, or -1.
        right: ``(L,)`` int32 index of the right neighbour lane, or -1.
    """

    successors: Int32Array
    left: Int32Array
    right: Int32Array


def graph_from_ids(
    lane_ids: Sequence[str],
    entries: Sequence[Sequence[str]],
    exits: Sequence[Sequence[str]],
    left: Sequence[str | None],
    right: Sequence[str | None],
) -> LaneGraph:
    """The lane graph a source states by lane id (Waymo's entry/exit lanes and neighbours).

    Args:
        lane_ids: ``L`` lane ids, in lane-index order.
        entries, exits: per lane, the ids of the lanes entering / leaving it.
        left, right: per lane, the id of its left / right neighbour, or ``None``.

    Ids not among ``lane_ids`` (maps are cropped around the scene) are dropped; an entry lane
    ``k`` of lane ``i`` is the edge ``[k, i]``, merged with the exit edges without duplicates.
    """
    index = {lid: i for i, lid in enumerate(lane_ids)}
    succ = [(i, index[j]) for i, ids in enumerate(exits) for j in ids if j in index]
    succ += [(index[j], i) for i, ids in enumerate(entries) for j in ids if j in index]
    edges = np.unique(np.array(succ, np.int32).reshape(-1, 2), axis=0).astype(np.int32)
    side = [
        np.array([index.get(j or "", NO_INDEX) for j in ids], np.int32) for ids in (left, right)
    ]
    return LaneGraph(edges.reshape(-1, 2), side[0].reshape(-1), side[1].reshape(-1))


def infer_lane_graph(lanes: Polylines) -> LaneGraph:
    """Successor edges and left/right neighbours of ``lanes`` from their geometry alone.

    Args:
        lanes: L centerlines, each ordered in the direction of travel (world frame, metres).
            Lanes with fewer than two distinct points take part in nothing.

    Returns:
        The inferred :class:`LaneGraph` (thresholds in this module's constants).
    """
    n = len(lanes)
    empty = LaneGraph(
        np.zeros((0, 2), np.int32), np.full(n, NO_INDEX, np.int32), np.full(n, NO_INDEX, np.int32)
    )
    starts, ends, owner = lanes.segments()
    seg = ends[:, :2] - starts[:, :2]
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    keep = seg_len > _MIN_SEGMENT_M
    a, d, owner, seg_len = starts[keep, :2], seg[keep], owner[keep], seg_len[keep]
    if n == 0 or len(owner) == 0:
        return empty
    heading = np.arctan2(d[:, 1], d[:, 0])
    # Segments are grouped by lane in order: the first/last of each group give end headings.
    lane_idx, first = np.unique(owner, return_index=True)
    last = np.r_[first[1:], len(owner)] - 1
    successors = _successors(lanes, lane_idx, heading[first], heading[last])
    left, right = _neighbours(n, lane_idx, first, a, d, seg_len, heading, owner)
    return LaneGraph(successors, left, right)


def _angle_diff(x: Float64Array, y: Float64Array) -> Float64Array:
    """``|x - y|`` wrapped to ``[0, pi]``."""
    return np.abs(np.mod(x - y + np.pi, 2 * np.pi) - np.pi)


def _successors(
    lanes: Polylines, lane_idx: Int64Array, start_heading: Float64Array, end_heading: Float64Array
) -> Int32Array:
    """``(E, 2)`` edges between lanes (``lane_idx``) whose end meets another's start."""
    first_pt = lanes.points_m[lanes.offsets[lane_idx], :2]
    last_pt = lanes.points_m[lanes.offsets[lane_idx + 1] - 1, :2]
    m = len(lane_idx)
    rows: list[Int64Array] = []
    cols: list[Int64Array] = []
    chunk = max(1, _CHUNK_ELEMENTS // m)
    for lo in range(0, m, chunk):
        hi = min(lo + chunk, m)
        gap = np.linalg.norm(last_pt[lo:hi, None, :] - first_pt[None, :, :], axis=-1)
        turn = _angle_diff(end_heading[lo:hi, None], start_heading[None, :])
        ok = (gap <= SUCCESSOR_GAP_M) & (turn <= HEADING_TOLERANCE_RAD)
        # A lane is not its own successor: short lanes would otherwise loop onto themselves.
        ok[np.arange(hi - lo), np.arange(lo, hi)] = False
        r, c = np.nonzero(ok)
        rows.append(r + lo)
        cols.append(c)
    edges = np.stack([lane_idx[np.concatenate(rows)], lane_idx[np.concatenate(cols)]], axis=1)
    return np.unique(edges, axis=0).astype(np.int32).reshape(-1, 2)


def _neighbours(
    n: int,
    lane_idx: Int64Array,
    first: Int64Array,
    a: Float64Array,
    d: Float64Array,
    seg_len: Float64Array,
    heading: Float64Array,
    owner: Int64Array,
) -> tuple[Int32Array, Int32Array]:
    """Left and right neighbour of each of ``n`` lanes (see the module docstring).

    ``a``/``d``/``seg_len``/``heading``/``owner`` describe the S non-degenerate segments
    (start ``(S, 2)``, direction ``(S, 2)``, length, heading, lane), grouped by lane; ``first``
    is the first segment of each lane in ``lane_idx``.
    """
    s = len(owner)
    count = np.diff(np.r_[first, s])  # segments per lane in lane_idx
    # Arc-length midpoint of every lane: the segment where half the length is reached.
    cum = np.cumsum(seg_len)
    base = cum[first] - seg_len[first]
    half = base + 0.5 * (cum[first + count - 1] - base)
    mid_seg = np.minimum(np.searchsorted(cum, half), first + count - 1)
    frac = np.clip((half - (cum[mid_seg] - seg_len[mid_seg])) / seg_len[mid_seg], 0.0, 1.0)
    mid = a[mid_seg] + frac[:, None] * d[mid_seg]
    tangent = d[mid_seg] / seg_len[mid_seg, None]

    # Candidate (query lane, other lane) pairs: the midpoint lies in the other lane's bounding
    # box grown by the search radius. This keeps the point-segment work local to each lane.
    reach = NEIGHBOUR_MAX_OFFSET_M + NEIGHBOUR_MAX_ALONG_M
    lo = np.minimum(np.minimum.reduceat(a, first), np.minimum.reduceat(a + d, first)) - reach
    hi = np.maximum(np.maximum.reduceat(a, first), np.maximum.reduceat(a + d, first)) + reach
    inside = np.all((mid[:, None, :] >= lo[None]) & (mid[:, None, :] <= hi[None]), axis=-1)
    np.fill_diagonal(inside, False)
    qi, lj = np.nonzero(inside)
    left = np.full(n, NO_INDEX, np.int32)
    right = np.full(n, NO_INDEX, np.int32)
    if len(qi) == 0:
        return left, right

    # Every segment of every candidate lane, flattened: pair p owns segments pair_start[p]...
    reps = count[lj]
    pair_start = np.r_[0, np.cumsum(reps)[:-1]]
    seg = np.repeat(first[lj] - pair_start, reps) + np.arange(reps.sum())
    pair = np.repeat(np.arange(len(qi)), reps)
    p = mid[qi][pair]
    t = np.clip(((p - a[seg]) * d[seg]).sum(-1) / seg_len[seg] ** 2, 0.0, 1.0)
    closest = a[seg] + t[:, None] * d[seg]
    dist = np.linalg.norm(closest - p, axis=-1)
    # The closest point of each pair, and the first segment that reaches it.
    best = np.minimum.reduceat(dist, pair_start)
    k = np.minimum.reduceat(np.where(dist == best[pair], np.arange(len(seg)), len(seg)), pair_start)
    off = closest[k] - mid[qi]
    tq = tangent[qi]
    along = (off * tq).sum(-1)
    lateral = tq[:, 0] * off[:, 1] - tq[:, 1] * off[:, 0]  # > 0: to the left of the query lane
    ok = _angle_diff(heading[seg[k]], heading[mid_seg[qi]]) <= HEADING_TOLERANCE_RAD
    ok &= np.abs(along) <= NEIGHBOUR_MAX_ALONG_M
    ok &= (np.abs(lateral) >= NEIGHBOUR_MIN_OFFSET_M) & (np.abs(lateral) <= NEIGHBOUR_MAX_OFFSET_M)
    for side, sign in ((left, 1.0), (right, -1.0)):
        sel = np.nonzero(ok & (sign * lateral > 0))[0]
        # Nearest candidate per query lane: sort by (query, |lateral|), keep each first.
        sel = sel[np.lexsort((np.abs(lateral[sel]), qi[sel]))]
        _, first_of_q = np.unique(qi[sel], return_index=True)
        sel = sel[first_of_q]
        side[lane_idx[qi[sel]]] = lane_idx[lj[sel]]
    return left, right
