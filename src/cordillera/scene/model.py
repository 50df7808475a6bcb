"""The scene data model: one typed, validated container for real logs and generated scenes.

A :class:`Scene` holds N objects over T steps, a vector map, traffic-signal states, the ego's
route and provenance. Everything is arrays (no per-object Python objects), so the simulator,
the rasterizer and the labeler read it with vectorised code.

Frames and units: all coordinates are metres in the scene's *world* frame (the source's own
map frame: nuScenes map frame, AV2 city frame, CommonRoad's frame, or the generator's);
headings are radians counter-clockwise from world +x; velocities are m/s in the world frame.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from cordillera.errors import SceneFormatError
from cordillera.scene.polylines import Polylines
from cordillera.scene.types import LaneType, ObjectType, RoadLineType, SignalState

Float64Array = npt.NDArray[np.float64]
Int32Array = npt.NDArray[np.int32]
Int8Array = npt.NDArray[np.int8]
BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.str_]

NO_INDEX = -1
"""Value of an index field that points at nothing (no neighbour, unknown lane)."""


def check_array(
    value: object, field: str, dtype: type | np.dtype[Any], shape: tuple[int | None, ...]
) -> None:
    """Raise :class:`SceneFormatError` unless ``value`` is an array of ``dtype`` and ``shape``.

    ``None`` in ``shape`` matches any length on that axis.
    """
    if not isinstance(value, np.ndarray):
        raise SceneFormatError(f"expected a numpy array, got {type(value).__name__}", field=field)
    want_str = np.dtype(dtype).kind == "U"
    ok = value.dtype.kind == "U" if want_str else value.dtype == np.dtype(dtype)
    if not ok:
        raise SceneFormatError(f"dtype {value.dtype}, expected {np.dtype(dtype)}", field=field)
    if value.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(value.shape, shape, strict=True)
    ):
        want_s = "(" + ", ".join("*" if w is None else str(w) for w in shape) + ")"
        raise SceneFormatError(f"shape {value.shape}, expected {want_s}", field=field)


def _check_index(value: npt.NDArray[np.integer[Any]], field: str, upper: int) -> None:
    """Indices must be NO_INDEX or in ``[0, upper)``."""
    bad = (value < NO_INDEX) | (value >= upper)
    if np.any(bad):
        raise SceneFormatError(
            f"index {value[bad].flat[0]} out of range [-1, {upper})", field=field
        )


def _check_enum(value: npt.NDArray[np.int8], field: str, enum: type[Any]) -> None:
    allowed = np.array([int(e) for e in enum], np.int8)
    bad = ~np.isin(value, allowed)
    if np.any(bad):
        raise SceneFormatError(f"value {value[bad].flat[0]} is not a {enum.__name__}", field=field)


@dataclass(frozen=True, eq=False)
class Tracks:
    """Per-object, per-step states of N objects over T steps.

    Attributes:
        object_id: ``(N,)`` str, the source's object ids (unique).
        object_type: ``(N,)`` int8 :class:`ObjectType`.
        xyz_m: ``(N, T, 3)`` float64 box centre, world frame.
        heading_rad: ``(N, T)`` float64 yaw, world frame, CCW from +x.
        velocity_mps: ``(N, T, 2)`` float64 velocity, world frame.
        size_lwh_m: ``(N, T, 3)`` float64 box length (along heading), width, height.
        valid: ``(N, T)`` bool; states where it is False carry no meaning (zeros by convention).
    """

    object_id: StrArray
    object_type: Int8Array
    xyz_m: Float64Array
    heading_rad: Float64Array
    velocity_mps: Float64Array
    size_lwh_m: Float64Array
    valid: BoolArray

    @property
    def num_objects(self) -> int:
        return int(self.object_type.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.valid.shape[1])

    def validate(self) -> None:
        n = self.object_id.shape[0] if isinstance(self.object_id, np.ndarray) else None
        check_array(self.object_id, "tracks.object_id", np.str_, (None,))
        check_array(self.object_type, "tracks.object_type", np.int8, (n,))
        check_array(self.valid, "tracks.valid", np.bool_, (n, None))
        t = self.valid.shape[1]
        check_array(self.xyz_m, "tracks.xyz_m", np.float64, (n, t, 3))
        check_array(self.heading_rad, "tracks.heading_rad", np.float64, (n, t))
        check_array(self.velocity_mps, "tracks.velocity_mps", np.float64, (n, t, 2))
        check_array(self.size_lwh_m, "tracks.size_lwh_m", np.float64, (n, t, 3))
        _check_enum(self.object_type, "tracks.object_type", ObjectType)
        if len(set(self.object_id.tolist())) != n:
            ids, counts = np.unique(self.object_id, return_counts=True)
            raise SceneFormatError(
                f"duplicate object id {ids[counts > 1][0]!r}", field="tracks.object_id"
            )
        for name in ("xyz_m", "heading_rad", "velocity_mps", "size_lwh_m"):
            a = getattr(self, name)
            ok = np.isfinite(a) if a.ndim == 2 else np.isfinite(a).all(axis=-1)
            bad = self.valid & ~ok
            if np.any(bad):
                i, s = np.argwhere(bad)[0]
                raise SceneFormatError(
                    f"non-finite value {a[i, s]} for object {self.object_id[i]!r} at step {s}",
                    field=f"tracks.{name}",
                )
        neg = self.valid & np.any(self.size_lwh_m < 0, axis=-1)
        if np.any(neg):
            i, s = np.argwhere(neg)[0]
            raise SceneFormatError(
                f"negative size {self.size_lwh_m[i, s]} for object {self.object_id[i]!r}",
                field="tracks.size_lwh_m",
            )


@dataclass(frozen=True, eq=False)
class RoadMap:
    """The vector map. L lanes, K road lines, and the other feature sets, all as arrays.

    Attributes:
        lane_id: ``(L,)`` str source ids of lanes.
        lanes: L centerlines, each ordered in the direction of travel.
        lane_type: ``(L,)`` int8 :class:`LaneType`.
        lane_speed_limit_mps: ``(L,)`` float64; NaN where the source gives no limit.
        lane_successors: ``(E, 2)`` int32 edges ``[from_lane, to_lane]`` (predecessors are the
            reversed edges).
        lane_left: ``(L,)`` int32 index of the left neighbour lane (same direction), or -1.
        lane_right: ``(L,)`` int32 index of the right neighbour lane, or -1.
        road_lines: K painted lines / lane boundaries.
        road_line_type: ``(K,)`` int8 :class:`RoadLineType`.
        road_edges: physical road edges (curbs, drivable-area boundaries) as polylines.
        drivable_areas: polygons (rings, not repeated closing point) of drivable surface.
        crosswalks: crosswalk polygons.
        stop_lines: stop lines as polylines (usually two points).
        stop_line_lane: ``(S,)`` int32 lane each stop line applies to, or -1.
        stop_sign_xyz_m: ``(M, 3)`` float64 stop-sign positions.
        stop_sign_lane: ``(M,)`` int32 lane each sign controls (one row per sign and lane), or -1.
    """

    lane_id: StrArray
    lanes: Polylines
    lane_type: Int8Array
    lane_speed_limit_mps: Float64Array
    lane_successors: Int32Array
    lane_left: Int32Array
    lane_right: Int32Array
    road_lines: Polylines
    road_line_type: Int8Array
    road_edges: Polylines
    drivable_areas: Polylines
    crosswalks: Polylines
    stop_lines: Polylines
    stop_line_lane: Int32Array
    stop_sign_xyz_m: Float64Array
    stop_sign_lane: Int32Array

    @property
    def num_lanes(self) -> int:
        return len(self.lanes)

    @staticmethod
    def empty() -> RoadMap:
        e = Polylines.empty
        i32 = np.zeros(0, np.int32)
        return RoadMap(
            lane_id=np.zeros(0, "<U1"),
            lanes=e(),
            lane_type=np.zeros(0, np.int8),
            lane_speed_limit_mps=np.zeros(0, np.float64),
            lane_successors=np.zeros((0, 2), np.int32),
            lane_left=i32,
            lane_right=i32,
            road_lines=e(),
            road_line_type=np.zeros(0, np.int8),
            road_edges=e(),
            drivable_areas=e(),
            crosswalks=e(),
            stop_lines=e(),
            stop_line_lane=i32,
            stop_sign_xyz_m=np.zeros((0, 3), np.float64),
            stop_sign_lane=i32,
        )

    def lane_predecessors(self) -> Int32Array:
        """``(E, 2)`` edges ``[from_lane, to_lane]`` of the predecessor relation."""
        return self.lane_successors[:, ::-1].copy()

    def validate(self) -> None:
        for name in (
            "lanes",
            "road_lines",
            "road_edges",
            "drivable_areas",
            "crosswalks",
            "stop_lines",
        ):
            poly = getattr(self, name)
            if not isinstance(poly, Polylines):
                raise SceneFormatError(
                    f"expected Polylines, got {type(poly).__name__}", field=f"map.{name}"
                )
            poly.validate(field=f"map.{name}")
        n_l = len(self.lanes)
        check_array(self.lane_id, "map.lane_id", np.str_, (n_l,))
        check_array(self.lane_type, "map.lane_type", np.int8, (n_l,))
        _check_enum(self.lane_type, "map.lane_type", LaneType)
        check_array(self.lane_speed_limit_mps, "map.lane_speed_limit_mps", np.float64, (n_l,))
        lim = self.lane_speed_limit_mps
        if np.any(np.isinf(lim) | (lim < 0)):
            raise SceneFormatError(
                f"speed limit {lim[np.isinf(lim) | (lim < 0)][0]} m/s",
                field="map.lane_speed_limit_mps",
            )
        check_array(self.lane_successors, "map.lane_successors", np.int32, (None, 2))
        check_array(self.lane_left, "map.lane_left", np.int32, (n_l,))
        check_array(self.lane_right, "map.lane_right", np.int32, (n_l,))
        for name in ("lane_successors", "lane_left", "lane_right"):
            _check_index(getattr(self, name), f"map.{name}", n_l)
        if np.any(self.lane_successors < 0):
            raise SceneFormatError(
                "successor edges may not contain -1", field="map.lane_successors"
            )
        check_array(self.road_line_type, "map.road_line_type", np.int8, (len(self.road_lines),))
        _check_enum(self.road_line_type, "map.road_line_type", RoadLineType)
        check_array(self.stop_line_lane, "map.stop_line_lane", np.int32, (len(self.stop_lines),))
        _check_index(self.stop_line_lane, "map.stop_line_lane", n_l)
        check_array(self.stop_sign_xyz_m, "map.stop_sign_xyz_m", np.float64, (None, 3))
        m = self.stop_sign_xyz_m.shape[0]
        check_array(self.stop_sign_lane, "map.stop_sign_lane", np.int32, (m,))
        _check_index(self.stop_sign_lane, "map.stop_sign_lane", n_l)
        if not np.all(np.isfinite(self.stop_sign_xyz_m)):
            raise SceneFormatError("non-finite stop-sign position", field="map.stop_sign_xyz_m")


@dataclass(frozen=True, eq=False)
class TrafficSignals:
    """S signal heads, each controlling one lane, with a state per step.

    Attributes:
        lane: ``(S,)`` int32 index of the controlled lane (or -1 where unknown).
        stop_point_xyz_m: ``(S, 3)`` float64 where a vehicle must stop for this signal.
        state: ``(S, T)`` int8 :class:`SignalState` at every step.
    """

    lane: Int32Array
    stop_point_xyz_m: Float64Array
    state: Int8Array

    @staticmethod
    def empty(num_steps: int) -> TrafficSignals:
        return TrafficSignals(
            np.zeros(0, np.int32), np.zeros((0, 3), np.float64), np.zeros((0, num_steps), np.int8)
        )

    def validate(self, num_steps: int, num_lanes: int) -> None:
        check_array(self.lane, "signals.lane", np.int32, (None,))
        s = self.lane.shape[0]
        check_array(self.stop_point_xyz_m, "signals.stop_point_xyz_m", np.float64, (s, 3))
        check_array(self.state, "signals.state", np.int8, (s, num_steps))
        _check_index(self.lane, "signals.lane", num_lanes)
        _check_enum(self.state, "signals.state", SignalState)
        if not np.all(np.isfinite(self.stop_point_xyz_m)):
            raise SceneFormatError("non-finite stop point", field="signals.stop_point_xyz_m")


@dataclass(frozen=True, eq=False)
class Route:
    """Where the ego is meant to go.

    Attributes:
        lanes: ``(R,)`` int32 lane indices in driving order (may be empty without a map).
        path_xyz_m: ``(P, 3)`` float64 reference path in the world frame, ordered from the start;
            progress along the route is measured by projecting onto it.
    """

    lanes: Int32Array
    path_xyz_m: Float64Array

    @staticmethod
    def empty() -> Route:
        return Route(np.zeros(0, np.int32), np.zeros((0, 3), np.float64))

    def validate(self, num_lanes: int) -> None:
        check_array(self.lanes, "route.lanes", np.int32, (None,))
        _check_index(self.lanes, "route.lanes", num_lanes)
        if np.any(self.lanes < 0):
            raise SceneFormatError("route lanes may not contain -1", field="route.lanes")
        check_array(self.path_xyz_m, "route.path_xyz_m", np.float64, (None, 3))
        if not np.all(np.isfinite(self.path_xyz_m)):
            raise SceneFormatError("non-finite route point", field="route.path_xyz_m")


JsonValue = Any
"""A value that survives a JSON round trip (str, int, float, bool, None, lists, str-keyed dicts)."""


@dataclass(frozen=True, eq=False)
class Scene:
    """One driving scene: tracks, map, signals, route and provenance.

    Attributes:
        scene_id: unique id (the source's scene / log / scenario id).
        source: the dataset or generator it came from (``nuscenes``, ``av2-forecasting``,
            ``av2-sensor``, ``commonroad``, ``generated``, ...).
        license: licence tag of the data (e.g. ``CC-BY-NC-SA-4.0``).
        dt_s: seconds between steps (0.1 at 10 Hz).
        ego_index: index of the ego (self-driving car) in ``tracks``.
        tracks: all objects including the ego.
        map: the vector map.
        signals: traffic-signal states.
        route: the ego's route.
        extra: JSON metadata (camera calibration, generator design, tags, original frame...).
    """

    scene_id: str
    source: str
    license: str
    dt_s: float
    ego_index: int
    tracks: Tracks
    map: RoadMap
    signals: TrafficSignals
    route: Route
    extra: Mapping[str, JsonValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def ego_id(self) -> str:
        return str(self.tracks.object_id[self.ego_index])

    @property
    def num_objects(self) -> int:
        return self.tracks.num_objects

    @property
    def num_steps(self) -> int:
        return self.tracks.num_steps

    @property
    def duration_s(self) -> float:
        return (self.num_steps - 1) * self.dt_s

    def validate(self) -> None:
        if not isinstance(self.scene_id, str) or not self.scene_id:
            raise SceneFormatError(
                f"scene id {self.scene_id!r} is not a non-empty string", field="scene_id"
            )
        if not isinstance(self.dt_s, float) or not (0.0 < self.dt_s <= 10.0):
            raise SceneFormatError(f"time step {self.dt_s!r} s is not in (0, 10]", field="dt_s")
        for name, cls in (
            ("tracks", Tracks),
            ("map", RoadMap),
            ("signals", TrafficSignals),
            ("route", Route),
        ):
            if not isinstance(getattr(self, name), cls):
                raise SceneFormatError(
                    f"expected {cls.__name__}, got {type(getattr(self, name)).__name__}",
                    field=name,
                )
        self.tracks.validate()
        if self.num_objects == 0 or self.num_steps == 0:
            raise SceneFormatError(
                f"scene has {self.num_objects} objects and {self.num_steps} steps", field="tracks"
            )
        if not isinstance(self.ego_index, int) or not 0 <= self.ego_index < self.num_objects:
            raise SceneFormatError(
                f"ego index {self.ego_index!r} not in [0, {self.num_objects})", field="ego_index"
            )
        if not self.tracks.valid[self.ego_index].any():
            raise SceneFormatError(f"ego {self.ego_id!r} is never valid", field="tracks.valid")
        self.map.validate()
        self.signals.validate(self.num_steps, self.map.num_lanes)
        self.route.validate(self.map.num_lanes)
        try:
            json.dumps(dict(self.extra), allow_nan=False)
        except (TypeError, ValueError) as e:
            raise SceneFormatError(f"not JSON-serialisable: {e}", field="extra") from None
