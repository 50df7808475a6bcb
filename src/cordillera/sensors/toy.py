"""A small hand-built scene for sensor tests, examples and the benchmark's fallback.

A straight two-lane road along world +x (lanes at y = 0 and y = 3.6, dashed centre line, solid
edges), a crosswalk and a stop line ahead with one traffic signal, the ego at the origin heading
+x, and objects placed by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cordillera.scene.model import RoadMap, Route, Scene, Tracks, TrafficSignals
from cordillera.scene.polylines import Polylines
from cordillera.scene.types import LaneType, ObjectType, RoadLineType, SignalState

ToyObject = tuple[float, float, float, float, float, ObjectType]
"""``(x_m, y_m, heading_rad, length_m, width_m, type)`` of one object, world frame."""


def toy_scene(
    objects: Sequence[ToyObject] = (),
    num_steps: int = 1,
    ego_xy_heading: tuple[float, float, float] = (0.0, 0.0, 0.0),
    signal_state: SignalState = SignalState.RED,
    road_length_m: float = 200.0,
) -> Scene:
    """The toy road with the ego and ``objects`` (static over ``num_steps`` steps).

    Object ``i`` of ``objects`` is track ``i + 1``; track 0 is the ego (4.6 x 1.9 x 1.6 m).
    Heights: vehicles 1.6 m, pedestrians 1.8 m, cyclists 1.7 m, other 1.0 m.
    """
    heights = {
        ObjectType.VEHICLE: 1.6,
        ObjectType.PEDESTRIAN: 1.8,
        ObjectType.CYCLIST: 1.7,
        ObjectType.OTHER: 1.0,
    }
    ex, ey, eh = ego_xy_heading
    rows = [(ex, ey, eh, 4.6, 1.9, ObjectType.VEHICLE), *objects]
    n, t = len(rows), num_steps
    xyz = np.zeros((n, t, 3))
    size = np.zeros((n, t, 3))
    heading = np.zeros((n, t))
    for i, (x, y, h, length, width, kind) in enumerate(rows):
        height = heights[ObjectType(kind)]
        xyz[i, :] = (x, y, height / 2)
        size[i, :] = (length, width, height)
        heading[i, :] = h
    tracks = Tracks(
        object_id=np.array(["ego"] + [f"obj{i}" for i in range(1, n)]),
        object_type=np.array([int(r[5]) for r in rows], np.int8),
        xyz_m=xyz,
        heading_rad=heading,
        velocity_mps=np.zeros((n, t, 2)),
        size_lwh_m=size,
        valid=np.ones((n, t), bool),
    )
    x0, x1 = -road_length_m / 2, road_length_m / 2
    xs = np.linspace(x0, x1, 41)
    lane0 = np.stack([xs, np.zeros_like(xs)], 1)
    lane1 = np.stack([xs, np.full_like(xs, 3.6)], 1)
    road_map = RoadMap(
        lane_id=np.array(["l0", "l1"]),
        lanes=Polylines.from_list([lane0, lane1]),
        lane_type=np.array([LaneType.VEHICLE, LaneType.VEHICLE], np.int8),
        lane_speed_limit_mps=np.array([13.9, 13.9]),
        lane_successors=np.zeros((0, 2), np.int32),
        lane_left=np.array([1, -1], np.int32),
        lane_right=np.array([-1, 0], np.int32),
        road_lines=Polylines.from_list(
            [lane0 + np.array([0, -1.8]), lane0 + np.array([0, 1.8]), lane1 + np.array([0, 1.8])]
        ),
        road_line_type=np.array(
            [RoadLineType.SOLID_WHITE, RoadLineType.DASHED_WHITE, RoadLineType.SOLID_WHITE], np.int8
        ),
        road_edges=Polylines.from_list([lane0 + np.array([0, -2.0]), lane1 + np.array([0, 2.0])]),
        drivable_areas=Polylines.from_list([[[x0, -2.0], [x1, -2.0], [x1, 5.6], [x0, 5.6]]]),
        crosswalks=Polylines.from_list([[[30, -2.0], [34, -2.0], [34, 5.6], [30, 5.6]]]),
        stop_lines=Polylines.from_list([[[28.5, -1.8], [28.5, 1.8]]]),
        stop_line_lane=np.array([0], np.int32),
        stop_sign_xyz_m=np.zeros((0, 3)),
        stop_sign_lane=np.zeros(0, np.int32),
    )
    signals = TrafficSignals(
        lane=np.array([0], np.int32),
        stop_point_xyz_m=np.array([[28.5, 0.0, 0.0]]),
        state=np.full((1, t), int(signal_state), np.int8),
    )
    route = Route(np.array([0], np.int32), np.concatenate([lane0, np.zeros((41, 1))], 1))
    return Scene(
        scene_id="toy-road",
        source="generated",
        license="Apache-2.0",
        dt_s=0.1,
        ego_index=0,
        tracks=tracks,
        map=road_map,
        signals=signals,
        route=route,
    )
