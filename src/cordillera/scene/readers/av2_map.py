"""Argoverse 2 vector maps (``log_map_archive_*.json``) as a :class:`RoadMap`.

An AV2 map file is one JSON object with three id-keyed tables, all in the *city* frame (metres,
the frame the AV2 logs' poses and the forecasting tracks use):

- ``lane_segments``: ``left_lane_boundary`` / ``right_lane_boundary`` (lists of ``{x, y, z}``,
  both ordered in the direction of travel), ``left/right_lane_mark_type``, ``lane_type``,
  ``successors`` / ``predecessors`` (lane ids), ``left/right_neighbor_id`` and, in the
  forecasting maps only, a stored ``centerline``;
- ``drivable_areas``: ``area_boundary`` rings (closing point not repeated);
- ``pedestrian_crossings``: two roughly parallel edges ``edge1`` and ``edge2``.

Mapping: lane centerlines (stored, or derived from the boundaries), lane types, successor edges
(from both ``successors`` and ``predecessors``, links leaving the map dropped), same-direction
neighbours, one road line per physical lane boundary, drivable areas as polygons, road edges as
the outline of their union, crosswalks as polygons. The maps carry no speed limits, stop lines,
stop signs or signals: those fields stay empty/NaN.
Every defect raises :class:`SceneFormatError` naming the file, the JSON key path
(``lane_segments.<id>.left_lane_boundary[3].x``) and the bad value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cordillera.errors import SceneFormatError
from cordillera.scene.model import RoadMap
from cordillera.scene.polylines import Polylines
from cordillera.scene.types import LaneType, RoadLineType

Float64Array = npt.NDArray[np.float64]

LANE_POINT_SPACING_M = 1.0
"""Target spacing of a centerline derived from the boundaries (boundaries are sparse on
straights, ~1 m keeps nearest-lane queries and curvature on curves accurate)."""

MAX_LANE_POINTS = 2000
"""Cap on derived centerline points, so a corrupt coordinate cannot allocate without bound."""

MAX_ABS_COORD_M = 1.0e7
"""Coordinates beyond this are corrupt (AV2 city frames span a few km); rejecting them keeps
arc lengths finite."""

_LANE_TYPES = {"VEHICLE": LaneType.VEHICLE, "BIKE": LaneType.BIKE, "BUS": LaneType.BUS}

# AV2 ``LaneMarkType`` -> RoadLineType. Mixed dashed/solid white pairs have no exact counterpart;
# they become SOLID_WHITE because the solid side forbids crossing for someone, the conservative
# reading. Blue lines (parking / accessibility) have no lane-change meaning: UNKNOWN.
_MARK_TYPES = {
    "DASHED_WHITE": RoadLineType.DASHED_WHITE,
    "DASHED_YELLOW": RoadLineType.DASHED_YELLOW,
    "SOLID_WHITE": RoadLineType.SOLID_WHITE,
    "SOLID_YELLOW": RoadLineType.SOLID_YELLOW,
    "DOUBLE_SOLID_WHITE": RoadLineType.DOUBLE_SOLID_WHITE,
    "DOUBLE_SOLID_YELLOW": RoadLineType.DOUBLE_SOLID_YELLOW,
    "DOUBLE_DASH_YELLOW": RoadLineType.DOUBLE_DASHED_YELLOW,
    "DOUBLE_DASH_WHITE": RoadLineType.DASHED_WHITE,
    "DASH_SOLID_YELLOW": RoadLineType.SOLID_DASHED_YELLOW,
    "SOLID_DASH_YELLOW": RoadLineType.SOLID_DASHED_YELLOW,
    "DASH_SOLID_WHITE": RoadLineType.SOLID_WHITE,
    "SOLID_DASH_WHITE": RoadLineType.SOLID_WHITE,
    "SOLID_BLUE": RoadLineType.UNKNOWN,
    "NONE": RoadLineType.VIRTUAL,
    "UNKNOWN": RoadLineType.UNKNOWN,
}


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _get(obj: object, key: str, where: str, path: Path) -> Any:
    """``obj[key]``, where ``obj`` must be a JSON object holding ``key``."""
    if not isinstance(obj, dict):
        raise SceneFormatError(
            f"expected an object, got {_short(obj)}", field=where or "<root>", path=path
        )
    if key not in obj:
        raise SceneFormatError("missing key", field=_join(where, key), path=path)
    return obj[key]


def _get_dict(obj: object, key: str, where: str, path: Path) -> dict[str, Any]:
    value = _get(obj, key, where, path)
    if not isinstance(value, dict):
        raise SceneFormatError(
            f"expected an object, got {_short(value)}", field=_join(where, key), path=path
        )
    return value


def _is_number(c: object) -> bool:
    # bool is an int subclass but a coordinate of `true` is a corrupt file, not 1.0.
    return type(c) is float or type(c) is int


def _points(value: object, where: str, path: Path, min_points: int) -> Float64Array:
    """A JSON list of ``{x, y, z}`` objects as an ``(n, 3)`` float64 array, city frame."""
    if not isinstance(value, list) or len(value) < min_points:
        raise SceneFormatError(
            f"expected a list of at least {min_points} points, got {_short(value)}",
            field=where,
            path=path,
        )
    try:
        coords = [p[k] for p in value for k in ("x", "y", "z")]
        ok = all(_is_number(c) for c in coords)
    except (TypeError, KeyError):
        ok = False
    if not ok:
        _raise_bad_point(value, where, path)
    arr = np.array(coords, dtype=np.float64).reshape(-1, 3)
    bad = ~np.isfinite(arr) | (np.abs(arr) > MAX_ABS_COORD_M)
    if bad.any():
        i, k = np.argwhere(bad)[0]
        raise SceneFormatError(
            f"coordinate {arr[i, k]} is not a finite city-frame value",
            field=f"{where}[{i}].{'xyz'[k]}",
            path=path,
        )
    return arr


def _raise_bad_point(value: list[Any], where: str, path: Path) -> None:
    """Slow path: find and report the first malformed point (only runs on a corrupt file)."""
    for i, p in enumerate(value):
        for k in ("x", "y", "z"):
            c = _get(p, k, f"{where}[{i}]", path)
            if not _is_number(c):
                raise SceneFormatError(
                    f"expected a number, got {_short(c)}", field=f"{where}[{i}].{k}", path=path
                )
    raise SceneFormatError("malformed point list", field=where, path=path)  # pragma: no cover


def _lane_ref(value: object, field: str, path: Path) -> str | None:
    """A lane id reference (int in AV2 files; str accepted) as the str key used by the map."""
    if value is None:
        return None
    if type(value) is int or isinstance(value, str):
        return str(value)
    raise SceneFormatError(f"expected a lane id, got {_short(value)}", field=field, path=path)


def _lane_refs(value: object, field: str, path: Path) -> list[str]:
    if not isinstance(value, list):
        raise SceneFormatError(
            f"expected a list of lane ids, got {_short(value)}", field=field, path=path
        )
    refs = [_lane_ref(v, f"{field}[{i}]", path) for i, v in enumerate(value)]
    return [r for r in refs if r is not None]


def _enum_str(value: object, table: dict[str, Any], default: Any, field: str, path: Path) -> Any:
    if not isinstance(value, str):
        raise SceneFormatError(f"expected a string, got {_short(value)}", field=field, path=path)
    return table.get(value, default)


def _arc_coordinate(lines: list[Float64Array]) -> tuple[Float64Array, Float64Array, Float64Array]:
    """Concatenated points ``(P, 3)`` of K polylines, each point's coordinate ``2 k + s / L_k``
    (``s`` its arc length, ``L_k`` the line's), and the ``(K,)`` lengths ``L_k``.

    The coordinate increases along the concatenation with a gap between lines, so one
    ``np.interp`` call resamples every line at once.
    """
    sizes = np.array([len(line) for line in lines], np.int64)
    owner = np.repeat(np.arange(len(lines)), sizes)
    pts = np.concatenate(lines)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1) * (owner[1:] == owner[:-1])
    s = np.concatenate([np.zeros(1), np.cumsum(seg)])
    ends = np.cumsum(sizes)
    start, length = s[ends - sizes], s[ends - 1] - s[ends - sizes]
    frac = (s - start[owner]) / np.maximum(length, 1e-12)[owner]
    return pts, 2.0 * owner + frac, length


def centerlines_from_boundaries(
    lefts: list[Float64Array], rights: list[Float64Array]
) -> list[Float64Array]:
    """Centerlines of K lanes from their ``(m, 3)`` left/right boundaries: both boundaries
    resampled to the same number of points (~:data:`LANE_POINT_SPACING_M` apart) evenly by arc
    length, then averaged (what the AV2 API does when a map stores no centerline)."""
    if not lefts:
        return []
    left_pts, left_x, left_len = _arc_coordinate(lefts)
    right_pts, right_x, right_len = _arc_coordinate(rights)
    mean_len = 0.5 * (left_len + right_len)
    counts = np.clip(np.ceil(mean_len / LANE_POINT_SPACING_M) + 1, 2, MAX_LANE_POINTS)
    counts = counts.astype(np.int64)
    q_owner = np.repeat(np.arange(len(lefts)), counts)
    q_index = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    q_x = 2.0 * q_owner + q_index / (counts - 1)[q_owner]
    center = 0.5 * np.stack(
        [
            np.interp(q_x, left_x, left_pts[:, k]) + np.interp(q_x, right_x, right_pts[:, k])
            for k in range(3)
        ],
        axis=1,
    )
    return np.split(center, np.cumsum(counts)[:-1])


class _RoadLines:
    """Lane boundaries as road lines, one per physical boundary.

    Neighbouring lanes store their shared boundary twice (as one lane's left and the other's
    right; reversed for opposite directions): the key is the boundary's points rounded to 1 cm,
    in whichever direction sorts first, so both copies map to one line.
    """

    def __init__(self) -> None:
        self.lines: list[Float64Array] = []
        self.types: list[int] = []
        self._seen: set[bytes] = set()

    def add(self, points: Float64Array, line_type: RoadLineType) -> None:
        key = np.round(points[:, :2] * 100.0).astype(np.int64)
        canonical = min(key.tobytes(), key[::-1].copy().tobytes())
        if canonical in self._seen:
            return
        self._seen.add(canonical)
        self.lines.append(points)
        self.types.append(int(line_type))


def parse_map(doc: object, path: Path) -> RoadMap:
    """Build a :class:`RoadMap` from a parsed AV2 map JSON document (``path`` names errors)."""
    lanes_doc = _get_dict(doc, "lane_segments", "", path)
    areas_doc = _get_dict(doc, "drivable_areas", "", path)
    crossings_doc = _get_dict(doc, "pedestrian_crossings", "", path)

    lane_ids = list(lanes_doc)
    index = {lane_id: i for i, lane_id in enumerate(lane_ids)}
    centerlines: dict[int, Float64Array] = {}
    derive: list[int] = []  # lanes without a stored centerline, derived in one batch below
    boundaries: list[tuple[Float64Array, Float64Array]] = []
    lane_types: list[int] = []
    edges: list[tuple[int, int]] = []
    neighbours = np.full((len(lane_ids), 2), -1, np.int32)  # [left, right]
    road_lines = _RoadLines()
    for i, (lane_id, seg) in enumerate(lanes_doc.items()):
        where = f"lane_segments.{lane_id}"
        left = _points(
            _get(seg, "left_lane_boundary", where, path), f"{where}.left_lane_boundary", path, 2
        )
        right = _points(
            _get(seg, "right_lane_boundary", where, path), f"{where}.right_lane_boundary", path, 2
        )
        if isinstance(seg, dict) and "centerline" in seg:
            centerlines[i] = _points(seg["centerline"], f"{where}.centerline", path, 2)
        else:
            derive.append(i)
            boundaries.append((left, right))
        lane_types.append(
            int(
                _enum_str(
                    _get(seg, "lane_type", where, path),
                    _LANE_TYPES,
                    LaneType.UNKNOWN,
                    f"{where}.lane_type",
                    path,
                )
            )
        )
        # Connectivity to lanes outside this local map is dropped: the map is a crop.
        for succ in _lane_refs(_get(seg, "successors", where, path), f"{where}.successors", path):
            if succ in index:
                edges.append((i, index[succ]))
        for pred in _lane_refs(
            _get(seg, "predecessors", where, path), f"{where}.predecessors", path
        ):
            if pred in index:
                edges.append((index[pred], i))
        for side, col in (("left", 0), ("right", 1)):
            ref = _lane_ref(
                _get(seg, f"{side}_neighbor_id", where, path), f"{where}.{side}_neighbor_id", path
            )
            neighbours[i, col] = index.get(ref, -1) if ref is not None else -1
            mark = _enum_str(
                _get(seg, f"{side}_lane_mark_type", where, path),
                _MARK_TYPES,
                RoadLineType.UNKNOWN,
                f"{where}.{side}_lane_mark_type",
                path,
            )
            road_lines.add(left if side == "left" else right, mark)

    derived = centerlines_from_boundaries([b[0] for b in boundaries], [b[1] for b in boundaries])
    centerlines.update(zip(derive, derived, strict=True))
    lanes = Polylines.from_list([centerlines[i] for i in range(len(lane_ids))])
    neighbours = _same_direction_only(lanes, neighbours)
    successors = np.unique(np.array(edges, np.int32).reshape(-1, 2), axis=0).astype(np.int32)

    areas = [_polygon(area, f"drivable_areas.{k}", path) for k, area in areas_doc.items()]
    crossings = [_crosswalk(c, f"pedestrian_crossings.{k}", path) for k, c in crossings_doc.items()]
    empty = RoadMap.empty()
    return RoadMap(
        lane_id=np.array(lane_ids, dtype=str) if lane_ids else np.zeros(0, "<U1"),
        lanes=lanes,
        lane_type=np.array(lane_types, np.int8),
        lane_speed_limit_mps=np.full(len(lane_ids), np.nan),  # AV2 maps carry no limits
        lane_successors=successors,
        lane_left=np.ascontiguousarray(neighbours[:, 0]),
        lane_right=np.ascontiguousarray(neighbours[:, 1]),
        road_lines=Polylines.from_list(road_lines.lines),
        road_line_type=np.array(road_lines.types, np.int8),
        road_edges=Polylines.from_list(road_edges_from_areas(areas)),
        drivable_areas=Polylines.from_list(areas),
        crosswalks=Polylines.from_list(crossings),
        stop_lines=empty.stop_lines,
        stop_line_lane=empty.stop_line_lane,
        stop_sign_xyz_m=empty.stop_sign_xyz_m,
        stop_sign_lane=empty.stop_sign_lane,
    )


def _same_direction_only(
    lanes: Polylines, neighbours: npt.NDArray[np.int32]
) -> npt.NDArray[np.int32]:
    """Drop neighbour links to lanes running the other way.

    AV2's ``left_neighbor_id`` also links the lane across a yellow line; the scene model's
    ``lane_left``/``lane_right`` mean same-direction neighbours (lane-change targets).
    """
    if len(lanes) == 0:
        return neighbours
    first = lanes.points_m[lanes.offsets[:-1], :2]
    last = lanes.points_m[lanes.offsets[1:] - 1, :2]
    direction = last - first  # (L, 2) overall direction of travel
    has = neighbours >= 0
    other = direction[np.where(has, neighbours, 0)]  # (L, 2, 2)
    same = np.einsum("lk,lsk->ls", direction, other) > 0.0
    return np.where(has & same, neighbours, -1).astype(np.int32)


def road_edges_from_areas(areas: list[Float64Array]) -> list[Float64Array]:
    """The boundary of the union of the drivable-area rings, as open or closed polylines.

    AV2 cuts the drivable surface into adjacent polygons; the cut edges (present, with the same
    vertices, in two polygons) run across the road and are not road edges, so they are dropped
    and each ring is split there. A ring without cut edges is returned closed (first point
    repeated) so its last edge is a segment too.
    """

    def edge_keys(ring: Float64Array) -> list[bytes]:
        v = np.round(ring[:, :2] * 100.0).astype(np.int64)  # 1 cm: vertices are shared exactly
        fwd = np.concatenate([v, np.roll(v, -1, axis=0)], axis=1)  # (n, 4) edge i -> i + 1
        rev = np.concatenate([fwd[:, 2:], fwd[:, :2]], axis=1)
        swap = (rev[:, 0] < fwd[:, 0]) | ((rev[:, 0] == fwd[:, 0]) & (rev[:, 1] < fwd[:, 1]))
        undirected = np.where(swap[:, None], rev, fwd)  # both traversals give one key
        return [row.tobytes() for row in undirected]

    keys = [edge_keys(ring) for ring in areas]
    seen: dict[bytes, int] = {}
    for ring_keys in keys:
        for k in set(ring_keys):
            seen[k] = seen.get(k, 0) + 1
    edges: list[Float64Array] = []
    for ring, ring_keys in zip(areas, keys, strict=True):
        cut = np.array([seen[k] > 1 for k in ring_keys])
        if not cut.any():
            edges.append(np.vstack([ring, ring[:1]]))
            continue
        # Rotate so the last edge is a cut; the external runs are then contiguous slices.
        shift = int(np.flatnonzero(cut)[0]) + 1
        pts = np.roll(ring, -shift, axis=0)
        pts = np.vstack([pts, pts[:1]])
        cut = np.roll(cut, -shift)
        start = 0
        for c in np.flatnonzero(cut).tolist():
            if c > start:
                edges.append(pts[start : c + 1])
            start = c + 1
    return edges


def _polygon(area: object, where: str, path: Path) -> Float64Array:
    ring = _points(_get(area, "area_boundary", where, path), f"{where}.area_boundary", path, 3)
    if len(ring) > 3 and np.array_equal(ring[0], ring[-1]):
        ring = ring[:-1]  # the model stores rings without the repeated closing point
    return ring


def _crosswalk(crossing: object, where: str, path: Path) -> Float64Array:
    edge1 = _points(_get(crossing, "edge1", where, path), f"{where}.edge1", path, 2)
    edge2 = _points(_get(crossing, "edge2", where, path), f"{where}.edge2", path, 2)
    # Both edges run the same way; the ring goes out along one and back along the other.
    return np.vstack([edge1, edge2[::-1]])


def read_map(path: Path) -> RoadMap:
    """Read one ``log_map_archive_*.json`` file into a :class:`RoadMap` (city frame)."""
    try:
        doc = json.loads(path.read_bytes())
    except OSError as e:
        raise SceneFormatError(f"cannot read: {e.strerror}", path=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise SceneFormatError(f"not valid JSON: {e}", field="<root>", path=path) from None
    return parse_map(doc, path)


def find_map(folder: Path) -> Path | None:
    """The single ``log_map_archive_*.json`` in ``folder``, ``None`` if there is none."""
    found = sorted(folder.glob("log_map_archive_*.json"))
    if len(found) > 1:
        raise SceneFormatError(
            f"{len(found)} map files, expected one: {', '.join(p.name for p in found)}", path=folder
        )
    return found[0] if found else None


def city_from_map_name(path: Path) -> str | None:
    """City code from a sensor-log map name ``log_map_archive_<log>____<CITY>_city_<n>.json``
    (``PIT``, ``MIA``, ...); ``None`` where the name carries none (forecasting maps)."""
    stem = path.name.removesuffix(".json")
    if "____" not in stem:
        return None
    city = stem.split("____", 1)[1].split("_city_", 1)[0]
    return city or None
