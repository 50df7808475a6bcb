"""Assembling a generated vector map, and the lane relations the traffic model needs.

Layout builders (:mod:`.roads`, :mod:`.junctions`) add lanes, lines, edges and areas to a
:class:`MapBuilder`; :meth:`MapBuilder.build` turns them into the scene model's
:class:`~cordillera.scene.model.RoadMap` plus a :class:`Layout` that keeps what only the generator
needs: each lane's :class:`~.paths.Path`, its right-of-way rank, signal groups, pedestrian
crossings and the precomputed lane-pair geometry (where lanes cross, how long merging lanes run
side by side).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cordillera.scene.generate.paths import (
    F64,
    Path,
    distance_to_polyline,
    first_crossing,
    strip_polygon,
)
from cordillera.scene.model import RoadMap
from cordillera.scene.polylines import Polylines
from cordillera.scene.types import LaneType, RoadLineType

LANE_WIDTH_M = 3.5
CONFLICT_TOL_M = 3.0
"""Lanes closer than this anywhere are checked for merge / diverge geometry."""
PROBE_STEP_M = 0.5


@dataclass(frozen=True)
class Crossing:
    """A pedestrian crossing line from curb ``a_xy`` to curb ``b_xy`` (either direction).

    ``walk_group`` is the signal group whose green lets pedestrians walk (``None``: unsignalised).
    """

    a_xy: tuple[float, float]
    b_xy: tuple[float, float]
    walk_group: str | None


@dataclass(frozen=True)
class SignalHead:
    """One signal head: it controls ``lane`` (a junction connector) from its start point."""

    lane: int
    group: str


@dataclass(frozen=True, eq=False)
class Layout:
    """A built map plus what the traffic model needs about it.

    Attributes:
        name: layout kind (``straight``, ``intersection``...).
        road_map: the scene model's map.
        lane_paths: ``L`` centrelines as paths (same geometry as ``road_map.lanes``).
        lane_rank: ``(L,)`` right-of-way rank (higher goes first at an unsignalised conflict).
        lane_junction: ``(L,)`` whether the lane lies inside a junction.
        named: lane name -> index, for scenario design.
        heads: signal heads (empty without signals).
        crossings: pedestrian crossing lines (on crosswalks).
        sidewalks: sidewalk centrelines (pedestrians walk them in either direction).
        parking: centrelines of parking strips (parked cars stand on them).
        stop_sign_lanes: lane index -> arc length of its stop line on that lane.
        lane_cross: ``(a, b)`` -> ``(s_a, s_b, angle_rad)`` where lanes ``a`` and ``b`` cross.
        merge_gap: ``(a, b)`` -> ``(K,)`` distance from lane ``a`` to lane ``b`` at
            :data:`PROBE_STEP_M` steps back from ``a``'s end (they share a successor).
        diverge_gap: ``(a, b)`` -> the same from ``a``'s start (they share a predecessor).
            :func:`side_by_side` turns either into the length two given widths overlap.
        phase_plan: signal group -> list of ``(state, duration_s)`` forming one cycle.
    """

    name: str
    road_map: RoadMap
    lane_paths: list[Path]
    lane_rank: F64
    lane_junction: npt.NDArray[np.bool_]
    named: dict[str, int]
    heads: list[SignalHead]
    crossings: list[Crossing]
    sidewalks: list[Path]
    parking: list[Path]
    stop_sign_lanes: dict[int, float]
    lane_cross: dict[tuple[int, int], tuple[float, float, float]]
    merge_gap: dict[tuple[int, int], F64]
    diverge_gap: dict[tuple[int, int], F64]
    phase_plan: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def successors(self, lane: int) -> list[int]:
        """Successor lanes of ``lane`` in index order."""
        e = self.road_map.lane_successors
        return sorted(int(b) for b in e[e[:, 0] == lane, 1])


@dataclass
class _Lane:
    """A lane as the builder collects it."""

    lane_id: str
    path: Path
    lane_type: LaneType
    speed_mps: float
    rank: float
    junction: bool


class MapBuilder:
    """Collects map features; :meth:`build` validates them into a :class:`Layout`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lanes: list[_Lane] = []
        self._succ: list[tuple[int, int]] = []
        self._left: dict[int, int] = {}
        self._lines: list[tuple[F64, RoadLineType]] = []
        self._edges: list[F64] = []
        self._areas: list[F64] = []
        self._crosswalks: list[F64] = []
        self._stop_lines: list[tuple[F64, int]] = []
        self._signs: list[tuple[tuple[float, float], int]] = []
        self.heads: list[SignalHead] = []
        self.crossings: list[Crossing] = []
        self.sidewalks: list[Path] = []
        self.parking: list[Path] = []
        self.named: dict[str, int] = {}
        self.phase_plan: dict[str, list[tuple[int, float]]] = {}

    def lane(
        self,
        lane_id: str,
        path: Path,
        speed_mps: float,
        *,
        rank: float = 1.0,
        junction: bool = False,
        lane_type: LaneType = LaneType.VEHICLE,
    ) -> int:
        """Add a lane centreline (ordered in the direction of travel); returns its index."""
        self._lanes.append(_Lane(lane_id, path, lane_type, speed_mps, rank, junction))
        self.named[lane_id] = len(self._lanes) - 1
        return len(self._lanes) - 1

    def path(self, lane: int) -> Path:
        """Centreline of lane ``lane``."""
        return self._lanes[lane].path

    def connect(self, a: int, b: int) -> None:
        """``b`` is a successor of ``a``."""
        self._succ.append((a, b))

    def neighbours(self, left: int, right: int) -> None:
        """``left`` is the left neighbour of ``right`` (same direction of travel)."""
        self._left[right] = left

    def line(self, pts: npt.ArrayLike, kind: RoadLineType) -> None:
        """A painted line ``(n, 2|3)`` of type ``kind``."""
        self._lines.append((np.asarray(pts, np.float64), kind))

    def edge(self, pts: npt.ArrayLike) -> None:
        """A road edge (curb) polyline."""
        self._edges.append(np.asarray(pts, np.float64))

    def area(self, ring: npt.ArrayLike) -> None:
        """A drivable-area polygon (ring without the closing point)."""
        self._areas.append(np.asarray(ring, np.float64))

    def crosswalk(
        self,
        ring: npt.ArrayLike,
        a_xy: Sequence[float],
        b_xy: Sequence[float],
        walk_group: str | None,
    ) -> None:
        """A crosswalk polygon and the curb-to-curb line pedestrians walk on it."""
        self._crosswalks.append(np.asarray(ring, np.float64))
        self.crossings.append(
            Crossing((float(a_xy[0]), float(a_xy[1])), (float(b_xy[0]), float(b_xy[1])), walk_group)
        )

    def stop_line(self, pts: npt.ArrayLike, lane: int) -> None:
        """A stop line across the end of ``lane``."""
        self._stop_lines.append((np.asarray(pts, np.float64), lane))

    def stop_sign(self, xy: Sequence[float], lane: int) -> None:
        """A stop sign at ``xy`` controlling ``lane`` (one row per controlled lane)."""
        self._signs.append(((float(xy[0]), float(xy[1])), lane))

    def signal(self, lane: int, group: str) -> None:
        """A signal head for connector ``lane``, switching with phase group ``group``."""
        self.heads.append(SignalHead(lane, group))

    def build(self) -> Layout:
        """The validated map and the lane relations the traffic model needs."""
        lanes = self._lanes
        n = len(lanes)
        left = np.full(n, -1, np.int32)
        right = np.full(n, -1, np.int32)
        for r, lft in sorted(self._left.items()):
            left[r], right[lft] = lft, r
        succ = np.array(sorted(set(self._succ)), np.int32).reshape(-1, 2)
        signs = sorted(self._signs, key=lambda t: t[1])
        road_map = RoadMap(
            lane_id=np.array([ln.lane_id for ln in lanes], dtype=str),
            lanes=Polylines.from_list([ln.path.xyz() for ln in lanes]),
            lane_type=np.array([int(ln.lane_type) for ln in lanes], np.int8),
            lane_speed_limit_mps=np.array([ln.speed_mps for ln in lanes], np.float64),
            lane_successors=succ,
            lane_left=left,
            lane_right=right,
            road_lines=Polylines.from_list([p for p, _ in self._lines]),
            road_line_type=np.array([int(k) for _, k in self._lines], np.int8),
            road_edges=Polylines.from_list(self._edges),
            drivable_areas=Polylines.from_list(self._areas),
            crosswalks=Polylines.from_list(self._crosswalks),
            stop_lines=Polylines.from_list([p for p, _ in self._stop_lines]),
            stop_line_lane=np.array([ln for _, ln in self._stop_lines], np.int32),
            stop_sign_xyz_m=np.array([[x, y, 2.0] for (x, y), _ in signs], np.float64).reshape(
                -1, 3
            ),
            stop_sign_lane=np.array([ln for _, ln in signs], np.int32),
        )
        road_map.validate()
        paths = [ln.path for ln in lanes]
        cross, merge, diverge = _lane_relations(
            paths, succ, left, right, np.array([ln.junction for ln in lanes])
        )
        return Layout(
            name=self.name,
            road_map=road_map,
            lane_paths=paths,
            lane_rank=np.array([ln.rank for ln in lanes], np.float64),
            lane_junction=np.array([ln.junction for ln in lanes], bool),
            named=dict(self.named),
            heads=list(self.heads),
            crossings=list(self.crossings),
            sidewalks=list(self.sidewalks),
            parking=list(self.parking),
            stop_sign_lanes={ln: paths[ln].length_m for _, ln in signs},
            lane_cross=cross,
            merge_gap=merge,
            diverge_gap=diverge,
            phase_plan=dict(self.phase_plan),
        )


def _lane_relations(
    paths: list[Path],
    succ: npt.NDArray[np.int32],
    left: npt.NDArray[np.int32],
    right: npt.NDArray[np.int32],
    junction: npt.NDArray[np.bool_],
) -> tuple[
    dict[tuple[int, int], tuple[float, float, float]],
    dict[tuple[int, int], F64],
    dict[tuple[int, int], F64],
]:
    """Lane-pair geometry: crossings (junction lanes only), merge and diverge lengths."""
    n = len(paths)
    succ_of: list[set[int]] = [set() for _ in range(n)]
    pred_of: list[set[int]] = [set() for _ in range(n)]
    for a, b in succ.tolist():
        succ_of[a].add(b)
        pred_of[b].add(a)
    merge: dict[tuple[int, int], F64] = {}
    diverge: dict[tuple[int, int], F64] = {}
    cross: dict[tuple[int, int], tuple[float, float, float]] = {}
    lo = np.array([p.xy_m.min(0) for p in paths]).reshape(-1, 2)
    hi = np.array([p.xy_m.max(0) for p in paths]).reshape(-1, 2)
    for a in range(n):
        for b in range(a + 1, n):
            if np.any(lo[a] > hi[b] + CONFLICT_TOL_M) or np.any(lo[b] > hi[a] + CONFLICT_TOL_M):
                continue
            if succ_of[a] & succ_of[b]:
                merge[a, b] = _gap_profile(paths[a], paths[b], from_end=True)
                merge[b, a] = _gap_profile(paths[b], paths[a], from_end=True)
            if pred_of[a] & pred_of[b]:
                diverge[a, b] = _gap_profile(paths[a], paths[b], from_end=False)
                diverge[b, a] = _gap_profile(paths[b], paths[a], from_end=False)
            related = (
                b in succ_of[a]
                or a in succ_of[b]
                or succ_of[a] & succ_of[b]
                or pred_of[a] & pred_of[b]
                or left[a] == b
                or right[a] == b
            )
            if related or not (junction[a] or junction[b]):
                continue
            hit = first_crossing(paths[a], paths[b])
            if hit is not None:
                cross[a, b] = hit
                cross[b, a] = (hit[1], hit[0], hit[2])
    return cross, merge, diverge


def _gap_profile(a: Path, b: Path, *, from_end: bool) -> F64:
    """Distance from ``a`` to ``b`` every :data:`PROBE_STEP_M` from ``a``'s end or start."""
    probe = np.arange(0.0, min(a.length_m, 60.0), PROBE_STEP_M)
    s = a.length_m - probe if from_end else probe
    return distance_to_polyline(a.position(s), b)


def side_by_side(gap_profile: F64, clearance_m: float) -> float:
    """Length over which two lanes stay closer than ``clearance_m`` (from a gap profile)."""
    near = gap_profile < clearance_m
    run = int(np.argmin(near)) if not near.all() else len(near)
    return run * PROBE_STEP_M


def road_section(
    mb: MapBuilder,
    ref: Path,
    prefix: str,
    n_fwd: int,
    n_bwd: int,
    speed_mps: float,
    *,
    strip_m: float = 0.0,
    strip: str = "none",
    sidewalk_m: float = 3.0,
    width_m: float = LANE_WIDTH_M,
    edges: bool = True,
    lines: bool = True,
) -> tuple[list[int], list[int]]:
    """A straight-or-curved two-way road along ``ref`` (its centre line, forward direction).

    Forward lanes lie right of ``ref`` (right-hand traffic), innermost first; backward lanes
    left of it, travelling against ``ref``. ``strip`` adds an outer strip of ``strip_m`` on
    both sides: ``"bike"`` (a bike lane), ``"parking"`` (parking, drivable, not a lane) or
    ``"none"``. Adds lines (double yellow centre, dashed white between lanes, solid white
    outer), curbs, the drivable area and sidewalk centrelines. Returns (forward, backward) lane
    indices, innermost first.
    """
    fwd, bwd = [], []
    for k in range(n_fwd):
        fwd.append(mb.lane(f"{prefix}_f{k}", ref.offset(-(k + 0.5) * width_m), speed_mps))
    for k in range(n_bwd):
        bwd.append(mb.lane(f"{prefix}_b{k}", ref.offset((k + 0.5) * width_m).reversed(), speed_mps))
    for group in (fwd, bwd):
        for k in range(len(group) - 1):
            mb.neighbours(group[k], group[k + 1])
    half_r, half_l = n_fwd * width_m, n_bwd * width_m
    if lines:
        if n_fwd and n_bwd:
            mb.line(ref.xyz(), RoadLineType.DOUBLE_SOLID_YELLOW)
        for k in range(1, n_fwd):
            mb.line(ref.offset(-k * width_m).xyz(), RoadLineType.DASHED_WHITE)
        for k in range(1, n_bwd):
            mb.line(ref.offset(k * width_m).xyz(), RoadLineType.DASHED_WHITE)
        mb.line(ref.offset(-half_r).xyz(), RoadLineType.SOLID_WHITE)
        if n_bwd:
            mb.line(ref.offset(half_l).xyz(), RoadLineType.SOLID_WHITE)
    out_r, out_l = half_r + strip_m, (half_l + strip_m if n_bwd else 0.0)
    if strip == "bike":
        for side, sign, group in ((f"{prefix}_bike_f", -1.0, fwd), (f"{prefix}_bike_b", 1.0, bwd)):
            if not group:
                continue
            p = ref.offset(sign * ((half_r if sign < 0 else half_l) + strip_m / 2))
            mb.lane(side, p if sign < 0 else p.reversed(), 6.0, lane_type=LaneType.BIKE)
    elif strip == "parking":
        mb.parking.append(ref.offset(-(half_r + strip_m / 2)))
        if n_bwd:
            mb.parking.append(ref.offset(half_l + strip_m / 2).reversed())
    if edges:
        mb.edge(ref.offset(-out_r).xyz())
        mb.edge(ref.offset(out_l).xyz() if n_bwd else ref.xyz())
        if sidewalk_m > 0:
            mb.sidewalks.append(ref.offset(-(out_r + sidewalk_m / 2)))
            if n_bwd:
                mb.sidewalks.append(ref.offset(out_l + sidewalk_m / 2).reversed())
    mb.area(strip_polygon(ref, out_l, out_r))
    return fwd, bwd


def chain(mb: MapBuilder, sections: Sequence[Sequence[int]], *, reverse: bool = False) -> None:
    """Connect lane k of each section to lane k of the next (``reverse``: against the order)."""
    seq = list(sections)[::-1] if reverse else list(sections)
    for a, b in itertools.pairwise(seq):
        for la, lb in zip(a, b, strict=True):
            mb.connect(la, lb)
