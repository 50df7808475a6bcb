"""Benchmark scenes built in code: a dense multi-lane highway for self-play throughput."""

from __future__ import annotations

import numpy as np

from cordillera.scene.model import RoadMap, Route, Scene, Tracks, TrafficSignals
from cordillera.scene.polylines import Polylines
from cordillera.scene.types import LaneType, ObjectType, RoadLineType

LANE_WIDTH_M = 3.6


def dense_highway(
    num_vehicles: int = 64,
    num_lanes: int = 6,
    length_m: float = 3000.0,
    num_steps: int = 201,
    seed: int = 0,
) -> Scene:
    """A straight one-way highway of ``num_lanes`` lanes with ``num_vehicles`` cars logged at
    constant speeds (20-30 m/s), spaced ~30 m apart along each lane; the ego is car 0."""
    rng = np.random.default_rng(seed)
    per_lane = int(np.ceil(num_vehicles / num_lanes))
    lane = np.arange(num_vehicles) % num_lanes
    slot = np.arange(num_vehicles) // num_lanes
    x0 = slot * 30.0 + rng.uniform(0, 8, num_vehicles)
    y = lane * LANE_WIDTH_M
    speed = rng.uniform(20, 30, num_vehicles)
    t = np.arange(num_steps) * 0.1
    xyz = np.zeros((num_vehicles, num_steps, 3))
    xyz[..., 0] = x0[:, None] + speed[:, None] * t
    xyz[..., 1] = y[:, None]
    vel = np.zeros((num_vehicles, num_steps, 2))
    vel[..., 0] = speed[:, None]
    size = np.broadcast_to(np.array([4.6, 1.9, 1.5]), (num_vehicles, num_steps, 3)).copy()
    tracks = Tracks(
        object_id=np.array([f"car{i}" for i in range(num_vehicles)]),
        object_type=np.full(num_vehicles, int(ObjectType.VEHICLE), np.int8),
        xyz_m=xyz,
        heading_rad=np.zeros((num_vehicles, num_steps)),
        velocity_mps=vel,
        size_lwh_m=size,
        valid=np.ones((num_vehicles, num_steps), bool),
    )
    xs = np.linspace(-100.0, length_m, int(length_m / 10) + 11)
    lanes = Polylines.from_list(
        [np.stack([xs, np.full_like(xs, k * LANE_WIDTH_M)], 1) for k in range(num_lanes)]
    )
    half = LANE_WIDTH_M / 2
    edges_y = [-half + k * LANE_WIDTH_M for k in range(num_lanes + 1)]
    lines = Polylines.from_list([np.array([[-100.0, yy], [length_m, yy]]) for yy in edges_y])
    line_type = np.full(num_lanes + 1, int(RoadLineType.DASHED_WHITE), np.int8)
    line_type[[0, -1]] = int(RoadLineType.SOLID_WHITE)
    top = edges_y[-1]
    area = np.array([[-100.0, -half], [length_m, -half], [length_m, top], [-100.0, top]])
    left = np.array([k + 1 if k + 1 < num_lanes else -1 for k in range(num_lanes)], np.int32)
    right = np.array([k - 1 for k in range(num_lanes)], np.int32)
    road_map = RoadMap(
        lane_id=np.array([f"lane{k}" for k in range(num_lanes)]),
        lanes=lanes,
        lane_type=np.full(num_lanes, int(LaneType.VEHICLE), np.int8),
        lane_speed_limit_mps=np.full(num_lanes, 33.0),
        lane_successors=np.zeros((0, 2), np.int32),
        lane_left=left,
        lane_right=right,
        road_lines=lines,
        road_line_type=line_type,
        road_edges=Polylines.from_list([lines[0][:, :2], lines[num_lanes][:, :2]]),
        drivable_areas=Polylines.from_list([area]),
        crosswalks=Polylines.empty(),
        stop_lines=Polylines.empty(),
        stop_line_lane=np.zeros(0, np.int32),
        stop_sign_xyz_m=np.zeros((0, 3)),
        stop_sign_lane=np.zeros(0, np.int32),
    )
    route = Route(
        lanes=np.array([0], np.int32),
        path_xyz_m=np.stack([xs, np.zeros_like(xs), np.zeros_like(xs)], 1),
    )
    del per_lane
    return Scene(
        scene_id=f"dense-highway-{num_vehicles}-s{seed}",
        source="benchmark",
        license="Apache-2.0",
        dt_s=0.1,
        ego_index=0,
        tracks=tracks,
        map=road_map,
        signals=TrafficSignals.empty(num_steps),
        route=route,
    )
