"""CommonRoad lanelet network → :class:`RoadMap`, :class:`TrafficSignals` and a goal route.

Used by :mod:`cordillera.scene.readers.commonroad`; everything here works on objects that
commonroad-io has already parsed. Coordinates are CommonRoad's own 2D world frame in metres
(z = 0); lane centerlines run in the lanelet's direction of travel.

Mapping rules (CommonRoad → Cordillera):

* **lanes**: every lanelet that is neither a crosswalk nor a sidewalk, ordered by lanelet id;
  ``lane_id = str(lanelet_id)``. Bicycle lanes are ``BIKE``, bus lanes / bus stops ``BUS``,
  everything else ``VEHICLE``.
* **successors**: a lanelet's ``successor`` list united with its successors' ``predecessor``
  lists (files do not always fill both sides), restricted to lanes.
* **neighbours**: ``adj_left`` / ``adj_right`` only when marked same-direction and a lane.
* **speed limits**: the smallest ``MAX_SPEED`` traffic-sign value (m/s, as CommonRoad stores it)
  among the signs a lanelet references; NaN where none. 2018b files' ``speedLimit`` elements
  arrive here as such signs (commonroad-io converts them).
* **road lines**: both bounds of every lane with their line marking, deduplicated by geometry
  where neighbours share a bound. CommonRoad carries no paint colour, so painted lines map to
  the white types; ``no_marking`` and curbs are ``VIRTUAL``, ``unknown`` / absent ``UNKNOWN``.
* **road edges**: bounds with no adjacent drivable lanelet on that side (in either direction),
  and curb-marked bounds.
* **drivable areas**: one polygon per lane, in lane order (left bound + reversed right bound).
* **crosswalks**: polygons of crosswalk-type lanelets.
* **stop lines**: ``lanelet.stop_line`` (start → end; the lanelet's end when it has no points).
* **stop signs**: signs with a ``STOP`` element of any country's enum (DE ``206``, USA ``R1-1``,
  ...), one row per referencing lane, at the sign's position or, lacking one, at the end of the
  first referencing lane.
* **traffic lights**: one signal row per (light, referencing lane); the state at every step
  follows the light's cycle (see :func:`light_states`); the stop point is the lane's stop-line
  midpoint, or the end of its centerline.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from commonroad.scenario.traffic_sign import TrafficSignID, TrafficSignIDCountries
from shapely.errors import GEOSException

from cordillera.errors import SceneFormatError
from cordillera.scene import derive
from cordillera.scene.model import RoadMap, Route, TrafficSignals
from cordillera.scene.polylines import Polylines
from cordillera.scene.types import LaneType, RoadLineType, SignalState

Float64Array = npt.NDArray[np.float64]


def _members_named(name: str) -> frozenset[Enum]:
    """Every traffic-sign enum member called ``name`` across commonroad-io's country tables.

    Sign ids differ per country (the stop sign is ``206`` in Germany and ``R1-1`` in the USA);
    the reader stores the country's enum member, so matching on members is country-proof.
    """
    tables: list[Iterable[Enum]] = [*TrafficSignIDCountries.values(), TrafficSignID]
    return frozenset(m for table in tables for m in table if m.name == name)


MAX_SPEED_IDS = _members_named("MAX_SPEED")
STOP_IDS = _members_named("STOP")

# Keyed by enum *name* so that markings a given commonroad-io version lacks do not break import.
_LINE_TYPE = {
    "SOLID": RoadLineType.SOLID_WHITE,
    "BROAD_SOLID": RoadLineType.SOLID_WHITE,
    "DASHED": RoadLineType.DASHED_WHITE,
    "BROAD_DASHED": RoadLineType.DASHED_WHITE,
    "SOLID_SOLID": RoadLineType.DOUBLE_SOLID_WHITE,
    "DASHED_DASHED": RoadLineType.DASHED_WHITE,
    # Mixed lines: crossing is forbidden from one side, so treat as solid (the safe reading).
    "SOLID_DASHED": RoadLineType.SOLID_WHITE,
    "DASHED_SOLID": RoadLineType.SOLID_WHITE,
    "CURB": RoadLineType.VIRTUAL,
    "LOWERED_CURB": RoadLineType.VIRTUAL,
    "NO_MARKING": RoadLineType.VIRTUAL,
    "UNKNOWN": RoadLineType.UNKNOWN,
}
_CURBS = {"CURB", "LOWERED_CURB"}
_NOT_LANES = {"CROSSWALK", "SIDEWALK"}

# CommonRoad light colours; RED_YELLOW (the German "get ready") still means stop.
_LIGHT_STATE = {
    "RED": SignalState.RED,
    "RED_YELLOW": SignalState.RED,
    "YELLOW": SignalState.YELLOW,
    "GREEN": SignalState.GREEN,
    "INACTIVE": SignalState.UNKNOWN,
}

MAX_COORD_M = 1e7
"""Largest coordinate magnitude accepted (10 000 km): beyond it a file is nonsense, and squares
of such values overflow in geometry code."""
LANE_CHANGE_COST_M = 20.0
"""Extra cost of a lane change in route search, so that staying in lane wins on ties."""
LANE_CHANGE_LENGTH_M = 15.0
"""Longitudinal distance over which a route's reference path moves to the neighbour lane."""


@dataclass(frozen=True)
class ConvertedMap:
    """A converted lanelet network plus the lookups the rest of the reader needs.

    Attributes:
        road_map: the map.
        lane_of_lanelet: lanelet id → lane index (lanes only).
        lane_polygons: shapely polygon of each lane, in lane order (for point-in-lane tests).
    """

    road_map: RoadMap
    lane_of_lanelet: dict[int, int]
    lane_polygons: list[shapely.Polygon]


def _polyline(value: Any, field: str) -> Float64Array:
    """A CommonRoad polyline as a finite ``(n, 2)`` float64 array with n >= 2."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise SceneFormatError(f"not a polyline: {e}", field=field) from None
    if a.ndim != 2 or a.shape[1] < 2 or a.shape[0] < 2:
        raise SceneFormatError(f"polyline of shape {a.shape}, expected (n >= 2, 2)", field=field)
    a = a[:, :2]
    if not np.all(np.isfinite(a)):
        bad = a[~np.isfinite(a).all(axis=1)][0]
        raise SceneFormatError(f"non-finite vertex {bad.tolist()}", field=field)
    if np.abs(a).max() > MAX_COORD_M:
        raise SceneFormatError(f"vertex beyond ±{MAX_COORD_M:g} m", field=field)
    return np.ascontiguousarray(a)


def _ring(left: Float64Array, right: Float64Array) -> Float64Array:
    """Polygon ring ``(n, 2)`` of a lanelet: left bound forward, right bound backward."""
    ring = np.concatenate([left, right[::-1]], axis=0)
    if len(ring) > 1 and np.array_equal(ring[0], ring[-1]):
        ring = ring[:-1]  # the model stores rings without the repeated closing point
    return ring


def _geometry_key(line: Float64Array) -> bytes:
    """Direction-independent key of a polyline, at 1 cm resolution (neighbours share bounds)."""
    q = np.round(line * 100.0).astype(np.int64)
    fwd, rev = q.tobytes(), q[::-1].copy().tobytes()
    return min(fwd, rev)


def _marking_name(marking: Any) -> str:
    return str(getattr(marking, "name", "UNKNOWN"))


def _names(values: Iterable[Any] | None) -> set[str]:
    return {str(getattr(v, "name", v)) for v in (values or ())}


def _speed_limit(sign: Any) -> float | None:
    """The smallest ``MAX_SPEED`` value (m/s) on ``sign``, or ``None`` if it sets no limit."""
    best: float | None = None
    for element in sign.traffic_sign_elements or ():
        if element.traffic_sign_element_id not in MAX_SPEED_IDS:
            continue
        values = element.additional_values or []
        if not values:
            continue
        field = f"trafficSign[id={sign.traffic_sign_id}]/additionalValue"
        try:
            v = float(values[0])
        except (TypeError, ValueError):
            raise SceneFormatError(
                f"speed limit {values[0]!r} is not a number", field=field
            ) from None
        if not math.isfinite(v) or v < 0:
            raise SceneFormatError(f"speed limit {v} m/s", field=field)
        best = v if best is None else min(best, v)
    return best


def _is_stop_sign(sign: Any) -> bool:
    return any(e.traffic_sign_element_id in STOP_IDS for e in sign.traffic_sign_elements or ())


class _Lines:
    """Polylines deduplicated by geometry, keeping the most informative line type."""

    def __init__(self) -> None:
        self.lines: list[Float64Array] = []
        self.types: list[RoadLineType] = []
        self._index: dict[bytes, int] = {}

    def add(self, line: Float64Array, kind: RoadLineType = RoadLineType.UNKNOWN) -> None:
        key = _geometry_key(line)
        k = self._index.get(key)
        if k is None:
            self._index[key] = len(self.lines)
            self.lines.append(line)
            self.types.append(kind)
        elif self.types[k] in (RoadLineType.UNKNOWN, RoadLineType.VIRTUAL) and kind not in (
            RoadLineType.UNKNOWN,
            RoadLineType.VIRTUAL,
        ):
            # Two lanelets describe one shared bound; one may mark the paint, the other not.
            self.types[k] = kind


def convert_map(network: Any) -> ConvertedMap:
    """Convert a commonroad-io ``LaneletNetwork`` (see the module docstring for the rules)."""
    lanelets = sorted(network.lanelets, key=lambda ll: int(ll.lanelet_id))
    geometry: dict[int, tuple[Float64Array, Float64Array, Float64Array]] = {}
    for ll in lanelets:
        where = f"lanelet[id={ll.lanelet_id}]"
        left = _polyline(ll.left_vertices, f"{where}/leftBound")
        right = _polyline(ll.right_vertices, f"{where}/rightBound")
        center = _polyline(ll.center_vertices, f"{where}/centerVertices")
        geometry[int(ll.lanelet_id)] = (left, center, right)

    lane_lls = [ll for ll in lanelets if not (_names(ll.lanelet_type) & _NOT_LANES)]
    lane_of = {int(ll.lanelet_id): k for k, ll in enumerate(lane_lls)}
    signs = {int(s.traffic_sign_id): s for s in network.traffic_signs}
    for kind, items in (
        ("trafficSign", network.traffic_signs),
        ("trafficLight", network.traffic_lights),
    ):
        for item in items:
            _check_position(item, kind)
    sign_limit = {sid: _speed_limit(s) for sid, s in signs.items()}

    centerlines, lane_types, limits, rings = [], [], [], []
    left_nb, right_nb = [], []
    edges: set[tuple[int, int]] = set()
    road_lines, road_edges = _Lines(), _Lines()
    stop_lines: list[Float64Array] = []
    stop_line_lane: list[int] = []
    for k, ll in enumerate(lane_lls):
        lid = int(ll.lanelet_id)
        left, center, right = geometry[lid]
        centerlines.append(center)
        types = _names(ll.lanelet_type)
        if "BICYCLE_LANE" in types:
            lane_types.append(LaneType.BIKE)
        elif types & {"BUS_LANE", "BUS_STOP"}:
            lane_types.append(LaneType.BUS)
        else:
            lane_types.append(LaneType.VEHICLE)
        refs = [sign_limit.get(int(s)) for s in ll.traffic_signs or ()]
        vals = [v for v in refs if v is not None]
        limits.append(min(vals) if vals else math.nan)
        for s in ll.successor or ():
            if int(s) in lane_of:
                edges.add((k, lane_of[int(s)]))
        for p in ll.predecessor or ():
            if int(p) in lane_of:
                edges.add((lane_of[int(p)], k))
        left_nb.append(_neighbour(ll.adj_left, ll.adj_left_same_direction, lane_of))
        right_nb.append(_neighbour(ll.adj_right, ll.adj_right_same_direction, lane_of))
        rings.append(_ring(left, right))
        for bound, marking, adj in (
            (left, ll.line_marking_left_vertices, ll.adj_left),
            (right, ll.line_marking_right_vertices, ll.adj_right),
        ):
            name = _marking_name(marking)
            road_lines.add(bound, _LINE_TYPE.get(name, RoadLineType.UNKNOWN))
            if adj is None or int(adj) not in lane_of or name in _CURBS:
                road_edges.add(bound)
        if ll.stop_line is not None:
            sl = ll.stop_line
            start = left[-1] if sl.start is None else sl.start
            end = right[-1] if sl.end is None else sl.end
            stop_lines.append(_polyline([start, end], f"lanelet[id={lid}]/stopLine"))
            stop_line_lane.append(k)

    crosswalks = [
        _ring(geometry[int(ll.lanelet_id)][0], geometry[int(ll.lanelet_id)][2])
        for ll in lanelets
        if "CROSSWALK" in _names(ll.lanelet_type)
    ]
    sign_xyz, sign_lane = _stop_signs(signs, lane_lls, lane_of, geometry)
    edge_arr = np.array(sorted(edges), np.int32).reshape(-1, 2)
    road_map = RoadMap(
        lane_id=_str_array([str(int(ll.lanelet_id)) for ll in lane_lls]),
        lanes=Polylines.from_list(centerlines),
        lane_type=np.array(lane_types, np.int8),
        lane_speed_limit_mps=np.array(limits, np.float64),
        lane_successors=edge_arr,
        lane_left=np.array(left_nb, np.int32),
        lane_right=np.array(right_nb, np.int32),
        road_lines=Polylines.from_list(road_lines.lines),
        road_line_type=np.array(road_lines.types, np.int8),
        road_edges=Polylines.from_list(road_edges.lines),
        drivable_areas=Polylines.from_list(rings),
        crosswalks=Polylines.from_list(crosswalks),
        stop_lines=Polylines.from_list(stop_lines),
        stop_line_lane=np.array(stop_line_lane, np.int32),
        stop_sign_xyz_m=sign_xyz,
        stop_sign_lane=sign_lane,
    )
    polygons = [shapely.Polygon(r) for r in rings]
    return ConvertedMap(road_map, lane_of, polygons)


def _check_position(item: Any, kind: str) -> None:
    """Signs and lights need not have a position, but one they have must be a finite point."""
    pos = getattr(item, "position", None)
    if pos is None:
        return
    ident = getattr(item, "traffic_sign_id", None) or getattr(item, "traffic_light_id", None)
    try:
        p = np.asarray(pos, np.float64).reshape(-1)
    except (TypeError, ValueError):
        p = np.zeros(0)
    if p.shape not in ((2,), (3,)) or not np.all(np.abs(p) <= MAX_COORD_M):
        raise SceneFormatError(
            f"position {p.tolist()} is not a finite point", field=f"{kind}[id={ident}]/position"
        )


def _str_array(values: Sequence[str]) -> npt.NDArray[np.str_]:
    return np.array(values, dtype=str) if values else np.zeros(0, "<U1")


def _neighbour(adj: Any, same_direction: Any, lane_of: dict[int, int]) -> int:
    if adj is None or not same_direction:
        return -1
    return lane_of.get(int(adj), -1)


def _stop_signs(
    signs: dict[int, Any],
    lane_lls: Sequence[Any],
    lane_of: dict[int, int],
    geometry: dict[int, tuple[Float64Array, Float64Array, Float64Array]],
) -> tuple[Float64Array, npt.NDArray[np.int32]]:
    """``(M, 3)`` positions and ``(M,)`` lanes of stop signs, one row per referencing lane."""
    xyz: list[list[float]] = []
    lanes: list[int] = []
    for sid in sorted(signs):
        sign = signs[sid]
        if not _is_stop_sign(sign):
            continue
        refs = [int(ll.lanelet_id) for ll in lane_lls if sid in {int(s) for s in ll.traffic_signs}]
        if sign.position is not None:  # checked finite by convert_map
            p = np.asarray(sign.position, np.float64).reshape(-1)[:2]
        elif refs:
            p = geometry[refs[0]][1][-1]  # no position: the end of the first lane it governs
        else:
            continue  # neither placed nor attached to a lane: nothing to draw or obey
        for k in [lane_of[lid] for lid in refs] or [-1]:
            xyz.append([float(p[0]), float(p[1]), 0.0])
            lanes.append(k)
    return np.array(xyz, np.float64).reshape(-1, 3), np.array(lanes, np.int32)


def light_states(light: Any, num_steps: int) -> npt.NDArray[np.int8]:
    """``(num_steps,)`` int8 :class:`SignalState` of one CommonRoad traffic light per step.

    The cycle repeats with period ``sum(durations)`` (in steps); step ``t`` is at position
    ``(t - time_offset) mod period`` in it, as in commonroad-io's ``get_state_at_time_step``.
    An inactive light (light or cycle flag) is ``UNKNOWN`` throughout; a light without a cycle
    shows its first listed colour, or ``UNKNOWN`` without one.
    """
    where = f"trafficLight[id={light.traffic_light_id}]"
    cycle = light.traffic_light_cycle
    elements = list(getattr(cycle, "cycle_elements", None) or [])
    unknown = np.full(num_steps, SignalState.UNKNOWN, np.int8)
    if light.active is False or (cycle is not None and cycle.active is False):
        return unknown
    if not elements:
        colours = list(getattr(light, "color", None) or [])
        if colours:
            return np.full(num_steps, _LIGHT_STATE.get(colours[0].name, 0), np.int8)
        return unknown
    try:
        durations = np.array([int(e.duration) for e in elements], np.int64)
        offset = int(cycle.time_offset or 0)
    except (TypeError, ValueError, OverflowError):
        raise SceneFormatError(
            "cycle durations / offset are not integers", field=f"{where}/cycle"
        ) from None
    if np.any(durations < 0) or not 0 < durations.sum() < 2**40 or abs(offset) >= 2**40:
        raise SceneFormatError(
            f"cycle durations {durations.tolist()} (offset {offset}) do not form a cycle",
            field=f"{where}/cycle",
        )
    lut = np.array([_LIGHT_STATE.get(e.state.name, SignalState.UNKNOWN) for e in elements], np.int8)
    pos = (np.arange(num_steps, dtype=np.int64) - offset) % int(durations.sum())
    idx = np.searchsorted(np.cumsum(durations), pos, side="right")
    return lut[idx]


def convert_signals(network: Any, converted: ConvertedMap, num_steps: int) -> TrafficSignals:
    """One signal row per (traffic light, lane referencing it), ordered by light id, lane."""
    road_map = converted.road_map
    lanes_of_light: dict[int, list[int]] = {}
    stop_point: dict[int, Float64Array] = {}
    stop_lane = road_map.stop_line_lane.tolist()
    for k in range(road_map.num_lanes):
        line = road_map.lanes[k]
        stop_point[k] = line[-1]
    for s, k in enumerate(stop_lane):
        stop_point[k] = road_map.stop_lines[s].mean(axis=0)
    for ll in network.lanelets:
        lane = converted.lane_of_lanelet.get(int(ll.lanelet_id))
        if lane is None:
            continue
        for tl in ll.traffic_lights or ():
            lanes_of_light.setdefault(int(tl), []).append(lane)
    rows_lane: list[int] = []
    rows_point: list[Float64Array] = []
    rows_state: list[npt.NDArray[np.int8]] = []
    for light in sorted(network.traffic_lights, key=lambda t: int(t.traffic_light_id)):
        lanes = sorted(set(lanes_of_light.get(int(light.traffic_light_id), [])))
        if not lanes:
            continue  # controls no lane: nothing for a driver to obey
        states = light_states(light, num_steps)
        for k in lanes:
            rows_lane.append(k)
            rows_point.append(stop_point[k])
            rows_state.append(states)
    if not rows_lane:
        return TrafficSignals.empty(num_steps)
    return TrafficSignals(
        lane=np.array(rows_lane, np.int32),
        stop_point_xyz_m=np.stack(rows_point).astype(np.float64),
        state=np.stack(rows_state).astype(np.int8),
    )


# --- routes -----------------------------------------------------------------------------------


def _arc(line: Float64Array) -> Float64Array:
    """``(n,)`` cumulative arc length along a polyline's xy."""
    seg = np.linalg.norm(np.diff(line[:, :2], axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(seg)])


def _project(line: Float64Array, xy: Float64Array) -> tuple[float, float, float]:
    """Arc length of the closest point on ``line`` to ``xy``, its distance, and local heading."""
    a, b = line[:-1, :2], line[1:, :2]
    ab = b - a
    t = np.clip(((xy - a) * ab).sum(-1) / np.maximum((ab**2).sum(-1), 1e-12), 0.0, 1.0)
    d = np.linalg.norm(a + t[:, None] * ab - xy, axis=1)
    i = int(d.argmin())
    s = _arc(line)
    return float(s[i] + t[i] * (s[i + 1] - s[i])), float(d[i]), math.atan2(ab[i, 1], ab[i, 0])


def _interp(line: Float64Array, s: float) -> Float64Array:
    arc = _arc(line)
    return np.array([np.interp(s, arc, line[:, 0]), np.interp(s, arc, line[:, 1]), 0.0])


def _piece(line: Float64Array, s0: float, s1: float) -> Float64Array:
    """The part of ``line`` between arc lengths ``s0 <= s1`` as ``(p, 3)`` points."""
    arc = _arc(line)
    inner = line[(arc > s0) & (arc < s1), :2]
    pts = np.concatenate([_interp(line, s0)[None, :2], inner, _interp(line, s1)[None, :2]])
    return np.concatenate([pts, np.zeros((len(pts), 1))], axis=1)


def lanes_at(converted: ConvertedMap, xy: Float64Array, heading: float | None = None) -> list[int]:
    """Lanes whose polygon contains ``xy`` (and, given ``heading``, run within 90° of it)."""
    if not converted.lane_polygons:
        return []
    try:
        inside = shapely.contains_xy(converted.lane_polygons, float(xy[0]), float(xy[1]))
    except GEOSException:  # a self-intersecting lanelet: fall back below
        inside = np.zeros(len(converted.lane_polygons), bool)
    found = []
    for k in np.flatnonzero(inside).tolist():
        if heading is not None:
            _, _, lane_heading = _project(converted.road_map.lanes[k], xy)
            if math.cos(lane_heading - heading) < 0.0:
                continue
        found.append(int(k))
    return found


def plan_route(
    converted: ConvertedMap, start_xy: Float64Array, start_heading: float, goal_lanes: set[int]
) -> tuple[Route, bool]:
    """The ego's route from a start pose to any of ``goal_lanes``; and whether it gets there.

    Start lanes are the heading-compatible lanes containing the start (else the nearest
    heading-compatible lane). A Dijkstra search over successor edges (cost: lane length) and
    same-direction lane changes (cost :data:`LANE_CHANGE_COST_M`) finds the cheapest lane
    sequence to a goal lane. Without goal lanes, or when none is reachable, the route follows
    the straightest successors from the best start lane (at most 20 lanes).

    The reference path is the lanes' centerlines from the start's projection onward, moving
    to the neighbour over :data:`LANE_CHANGE_LENGTH_M` at each lane change.
    """
    road_map = converted.road_map
    xy = np.asarray(start_xy, np.float64)[:2]
    starts = lanes_at(converted, xy, start_heading)
    if not starts:
        lane, dist = derive.nearest_lane(road_map, xy[None], np.array([start_heading]))
        if lane[0] < 0 or dist[0] > 5.0:
            return Route(np.zeros(0, np.int32), np.array([[xy[0], xy[1], 0.0]])), False
        starts = [int(lane[0])]
    lengths = road_map.lanes.lengths_m()
    s_start = {k: _project(road_map.lanes[k], xy)[0] for k in starts}
    succ: dict[int, list[int]] = {}
    for a, b in road_map.lane_successors.tolist():
        succ.setdefault(a, []).append(b)
    sequence = _search(starts, s_start, lengths, succ, road_map, goal_lanes) if goal_lanes else None
    reached = sequence is not None
    if sequence is None:
        best = min(starts, key=lambda k: (_project(road_map.lanes[k], xy)[1], k))
        sequence = _straight_ahead(best, succ, road_map)
    return Route(np.array(sequence, np.int32), _path(sequence, s_start, road_map)), reached


def _search(
    starts: list[int],
    s_start: dict[int, float],
    lengths: Float64Array,
    succ: dict[int, list[int]],
    road_map: RoadMap,
    goals: set[int],
) -> list[int] | None:
    """Cheapest lane sequence from any start lane to a goal lane (cost = distance to its end)."""
    cost: dict[int, float] = {}
    parent: dict[int, int] = {}  # -1: a start lane
    heap: list[tuple[float, int, int]] = []
    for k in starts:
        heapq.heappush(heap, (float(lengths[k] - s_start[k]), k, -1))
    while heap:
        c, k, par = heapq.heappop(heap)
        if k in cost:
            continue
        cost[k], parent[k] = c, par
        if k in goals:
            seq = [k]
            while parent[seq[-1]] >= 0:
                seq.append(parent[seq[-1]])
            return seq[::-1]
        for nxt in succ.get(k, []):
            if nxt not in cost:
                heapq.heappush(heap, (c + float(lengths[nxt]), nxt, k))
        for nxt in (int(road_map.lane_left[k]), int(road_map.lane_right[k])):
            if nxt >= 0 and nxt not in cost:
                heapq.heappush(heap, (c + LANE_CHANGE_COST_M, nxt, k))
    return None


def _straight_ahead(k: int, succ: dict[int, list[int]], road_map: RoadMap) -> list[int]:
    """``k`` and then, repeatedly, the successor whose start heading turns least."""

    def heading(k: int, end: bool) -> float:
        line = road_map.lanes[k]
        d = line[-1, :2] - line[-2, :2] if end else line[1, :2] - line[0, :2]
        return math.atan2(d[1], d[0])

    seq = [k]
    while len(seq) < 20:
        options = [n for n in succ.get(seq[-1], []) if n not in seq]
        if not options:
            break
        h_end = heading(seq[-1], end=True)
        turns = [(abs(math.remainder(heading(n, end=False) - h_end, math.tau)), n) for n in options]
        seq.append(min(turns)[1])
    return seq


def _path(sequence: list[int], s_start: dict[int, float], road_map: RoadMap) -> Float64Array:
    """``(P, 3)`` reference path along a lane sequence (see :func:`plan_route`)."""
    lengths = road_map.lanes.lengths_m()
    # Pieces (lane, from arc length, to arc length), in driving order.
    lanes = [sequence[0]]
    s_from = [s_start.get(sequence[0], 0.0)]
    s_to = [float(lengths[sequence[0]])]
    for prev, k in itertools.pairwise(sequence):
        s0 = 0.0
        if k in (int(road_map.lane_left[prev]), int(road_map.lane_right[prev])):
            # Lane change: leave the current piece a little ahead, join the neighbour abreast.
            s_to[-1] = min(s_from[-1] + LANE_CHANGE_LENGTH_M / 2, s_to[-1])
            leave = _interp(road_map.lanes[lanes[-1]], s_to[-1])
            s_on_k, _, _ = _project(road_map.lanes[k], leave[:2])
            s0 = min(s_on_k + LANE_CHANGE_LENGTH_M / 2, float(lengths[k]))
        lanes.append(k)
        s_from.append(s0)
        s_to.append(float(lengths[k]))
    pts = np.concatenate(
        [
            _piece(road_map.lanes[k], a, max(a, b))
            for k, a, b in zip(lanes, s_from, s_to, strict=True)
        ]
    )
    keep = np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0), axis=1) > 1e-6])
    return np.ascontiguousarray(pts[keep])
