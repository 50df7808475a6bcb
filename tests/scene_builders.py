"""Small hand-built scenes with known geometry for simulator and metric tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cordillera.scene.model import RoadMap, Route, Scene, Tracks, TrafficSignals
from cordillera.scene.polylines import Polylines
from cordillera.scene.types import LaneType, ObjectType, RoadLineType

ROAD_LENGTH_M = 400.0
LANE_WIDTH_M = 3.5


@dataclass
class Obj:
    """One object on the straight road: start x (m), lateral y (m), speed (m/s), type."""

    x_m: float
    y_m: float = 0.0
    speed_mps: float = 0.0
    kind: ObjectType = ObjectType.VEHICLE
    size_lwh_m: tuple[float, float, float] = (4.5, 1.9, 1.5)
    heading_rad: float = 0.0
    valid_steps: tuple[int, int] | None = None  # [first, last) valid steps; None: all


@dataclass
class Signal:
    """A signal on the ego lane at ``x_m`` with one state per step (a constant if given one)."""

    x_m: float
    states: list[int] = field(default_factory=list)


def straight_road_scene(
    ego: Obj,
    others: list[Obj] | None = None,
    num_steps: int = 60,
    dt_s: float = 0.1,
    signals: list[Signal] | None = None,
    stop_sign_x_m: float | None = None,
    crosswalk_x_m: float | None = None,
) -> Scene:
    """A two-lane, one-way straight road along +x (lanes at y = 0 and y = 3.5 m).

    Every object moves at constant speed along its heading in the log. The ego is object 0.
    """
    objs = [ego, *(others or [])]
    n, t = len(objs), num_steps
    time = np.arange(t) * dt_s
    xyz = np.zeros((n, t, 3))
    heading = np.zeros((n, t))
    vel = np.zeros((n, t, 2))
    size = np.zeros((n, t, 3))
    valid = np.ones((n, t), bool)
    for i, o in enumerate(objs):
        d = np.array([np.cos(o.heading_rad), np.sin(o.heading_rad)])
        xyz[i, :, :2] = np.array([o.x_m, o.y_m]) + (o.speed_mps * time)[:, None] * d
        heading[i] = o.heading_rad
        vel[i] = o.speed_mps * d
        size[i] = o.size_lwh_m
        if o.valid_steps is not None:
            valid[i] = False
            valid[i, o.valid_steps[0] : o.valid_steps[1]] = True
    xyz[~valid] = 0.0
    vel[~valid] = 0.0
    heading[~valid] = 0.0
    size[~valid] = 0.0
    tracks = Tracks(
        object_id=np.array(["ego"] + [f"obj{i}" for i in range(1, n)]),
        object_type=np.array([int(o.kind) for o in objs], np.int8),
        xyz_m=xyz,
        heading_rad=heading,
        velocity_mps=vel,
        size_lwh_m=size,
        valid=valid,
    )
    xs = np.linspace(-50.0, ROAD_LENGTH_M, 226)
    lanes = Polylines.from_list([np.stack([xs, np.full_like(xs, y)], 1) for y in (0.0, 3.5)])
    half = LANE_WIDTH_M / 2
    area = np.array(
        [[-50.0, -half], [ROAD_LENGTH_M, -half], [ROAD_LENGTH_M, 3.5 + half], [-50.0, 3.5 + half]]
    )
    lines = Polylines.from_list(
        [np.array([[-50.0, y], [ROAD_LENGTH_M, y]]) for y in (-half, half, 3.5 + half)]
    )
    crosswalks = Polylines.empty()
    if crosswalk_x_m is not None:
        c = crosswalk_x_m
        crosswalks = Polylines.from_list(
            [np.array([[c - 2, -half], [c + 2, -half], [c + 2, 3.5 + half], [c - 2, 3.5 + half]])]
        )
    stop_xyz = np.zeros((0, 3))
    stop_lane = np.zeros(0, np.int32)
    if stop_sign_x_m is not None:
        stop_xyz = np.array([[stop_sign_x_m, 0.0, 0.0]])
        stop_lane = np.array([0], np.int32)
    road_map = RoadMap(
        lane_id=np.array(["lane0", "lane1"]),
        lanes=lanes,
        lane_type=np.full(2, int(LaneType.VEHICLE), np.int8),
        lane_speed_limit_mps=np.full(2, 20.0),
        lane_successors=np.zeros((0, 2), np.int32),
        lane_left=np.array([1, -1], np.int32),
        lane_right=np.array([-1, 0], np.int32),
        road_lines=lines,
        road_line_type=np.array(
            [
                int(RoadLineType.SOLID_WHITE),
                int(RoadLineType.DASHED_WHITE),
                int(RoadLineType.SOLID_WHITE),
            ],
            np.int8,
        ),
        road_edges=Polylines.from_list([np.array([[-50.0, -half], [ROAD_LENGTH_M, -half]])]),
        drivable_areas=Polylines.from_list([area]),
        crosswalks=crosswalks,
        stop_lines=Polylines.empty(),
        stop_line_lane=np.zeros(0, np.int32),
        stop_sign_xyz_m=stop_xyz,
        stop_sign_lane=stop_lane,
    )
    sigs = signals or []
    state = np.zeros((len(sigs), t), np.int8)
    for k, s in enumerate(sigs):
        st = s.states if len(s.states) == t else [s.states[0]] * t
        state[k] = st
    traffic = TrafficSignals(
        lane=np.zeros(len(sigs), np.int32),
        stop_point_xyz_m=np.array([[s.x_m, 0.0, 0.0] for s in sigs]).reshape(-1, 3),
        state=state,
    )
    route = Route(
        lanes=np.array([0], np.int32),
        path_xyz_m=np.stack([xs, np.zeros_like(xs), np.zeros_like(xs)], 1),
    )
    return Scene(
        scene_id="straight",
        source="test",
        license="Apache-2.0",
        dt_s=dt_s,
        ego_index=0,
        tracks=tracks,
        map=road_map,
        signals=traffic,
        route=route,
    )
