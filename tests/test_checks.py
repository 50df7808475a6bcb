"""compute_checks and RolloutRecorder on a hand-built two-lane road with hand-derived answers.

World: an eastbound lane along y = 0 and a westbound lane along y = 3.6 from x = -50 to 150,
drivable for y in [-1.8, 5.4], a red light on the eastbound lane at x = 30, route along y = 0.
The ego starts at the origin, so the scene's local frame equals the world frame.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from cordillera.scene.model import RoadMap, Route, Scene, Tracks, TrafficSignals
from cordillera.scene.polylines import Polylines
from cordillera.scene.types import LaneType, ObjectType, SignalState
from cordillera.sim.batch import SceneBatch
from cordillera.sim.checks import StepChecks, compute_checks
from cordillera.sim.rollout import RolloutRecorder
from cordillera.sim.state import SimState

T = 20
EGO, CAR, BOX = 0, 1, 2  # ego, another vehicle, a static object


def make_scene(signal: SignalState = SignalState.RED) -> Scene:
    n = 3
    xyz = np.zeros((n, T, 3))
    xyz[EGO, :, 0] = np.arange(T) * 1.0  # logged ego: 10 m/s east along y = 0
    xyz[CAR, :, :2] = [60.0, 3.6]
    xyz[BOX, :, :2] = [100.0, -1.0]
    size = np.tile(np.array([4.5, 2.0, 1.6]), (n, T, 1))
    size[BOX] = [1.0, 1.0, 1.0]
    tracks = Tracks(
        object_id=np.array(["ego", "car", "box"]),
        object_type=np.array([ObjectType.VEHICLE, ObjectType.VEHICLE, ObjectType.OTHER], np.int8),
        xyz_m=xyz,
        heading_rad=np.zeros((n, T)),
        velocity_mps=np.zeros((n, T, 2)),
        size_lwh_m=size,
        valid=np.ones((n, T), bool),
    )
    x = np.linspace(-50.0, 150.0, 11)
    east = np.stack([x, np.zeros_like(x)], 1)
    west = np.stack([x[::-1], np.full_like(x, 3.6)], 1)
    m = RoadMap.empty()
    road = dataclasses.replace(
        m,
        lane_id=np.array(["east", "west"]),
        lanes=Polylines.from_list([east, west]),
        lane_type=np.array([LaneType.VEHICLE] * 2, np.int8),
        lane_speed_limit_mps=np.full(2, np.nan),
        lane_left=np.full(2, -1, np.int32),
        lane_right=np.full(2, -1, np.int32),
        drivable_areas=Polylines.from_list(
            [np.array([[-60.0, -1.8], [160.0, -1.8], [160.0, 5.4], [-60.0, 5.4]])]
        ),
    )
    signals = TrafficSignals(
        lane=np.array([0], np.int32),
        stop_point_xyz_m=np.array([[30.0, 0.0, 0.0]]),
        state=np.full((1, T), int(signal), np.int8),
    )
    route = Route(np.array([0], np.int32), np.concatenate([east, np.zeros((11, 1))], 1))
    return Scene("hand", "generated", "CC0-1.0", 0.1, EGO, tracks, road, signals, route)


@pytest.fixture(scope="module")
def batch() -> SceneBatch:
    return SceneBatch.from_scenes([make_scene()])


def make_state(poses: dict[int, tuple[float, float, float, float]], step: int = 0) -> SimState:
    """One rollout; ``poses`` maps object -> (x, y, heading, speed); others stay parked."""
    xy = torch.tensor([[[0.0, 0.0], [60.0, 3.6], [100.0, -1.0]]])
    heading, speed = torch.zeros(1, 3), torch.zeros(1, 3)
    for k, (x, y, h, v) in poses.items():
        xy[0, k] = torch.tensor([x, y])
        heading[0, k], speed[0, k] = h, v
    given = {
        "step": torch.tensor([step]),
        "xy_m": xy,
        "heading_rad": heading,
        "speed_mps": speed,
        "valid": torch.ones(1, 3, dtype=torch.bool),
        "controlled": torch.tensor([[True, False, False]]),
    }
    fields = {}
    for f in dataclasses.fields(SimState):  # fill simulator bookkeeping we do not read
        if f.name in given:
            fields[f.name] = given[f.name]
        elif f.default is dataclasses.MISSING:
            fields[f.name] = torch.zeros(1, 3, dtype=torch.long if "neigh" in f.name else None)
    return SimState(**fields)


def check(
    batch: SceneBatch,
    poses: dict[int, tuple[float, float, float, float]],
    prev_poses: dict[int, tuple[float, float, float, float]] | None = None,
    agents: list[int] | None = None,
    step: int = 1,
) -> StepChecks:
    state = make_state(poses, step)
    prev = make_state(prev_poses if prev_poses is not None else poses, step - 1)
    idx = torch.tensor([agents or [EGO]])
    out = compute_checks(batch, torch.tensor([0]), idx, prev, state, None)
    out.validate()
    return out


def test_free_driving_is_clean(batch: SceneBatch) -> None:
    c = check(batch, {EGO: (10.0, 0.3, 0.0, 10.0)})
    assert not (c.collision | c.offroad | c.against_traffic | c.red_light_violation).any()
    assert c.collision_object.item() == -1 and math.isinf(c.ttc_s.item())
    assert c.on_lane.item() and abs(c.lane_deviation_m.item() - 0.3) < 1e-4
    assert abs(c.route_progress_m.item() - 60.0) < 1e-3  # route starts at x = -50
    assert abs(c.distance_to_log_m.item() - math.hypot(9.0, 0.3)) < 1e-4  # log at x = 1
    assert c.log_valid.item()


def test_front_collision_is_at_fault(batch: SceneBatch) -> None:
    c = check(batch, {EGO: (56.0, 3.0, 0.0, 5.0), CAR: (60.0, 3.6, 0.0, 2.0)})
    assert c.collision.item() and c.at_fault_collision.item()
    assert c.collision_object.item() == CAR


def test_rear_ended_is_not_at_fault(batch: SceneBatch) -> None:
    c = check(batch, {EGO: (56.0, 3.6, math.pi, 5.0), CAR: (60.0, 3.6, math.pi, 8.0)})
    # The car (westbound, behind the westbound ego) runs into the ego's rear bumper.
    assert c.collision.item() and not c.at_fault_collision.item()


def test_stationary_ego_is_not_at_fault(batch: SceneBatch) -> None:
    c = check(batch, {EGO: (56.0, 3.6, 0.0, 0.0), CAR: (60.0, 3.6, math.pi, 5.0)})
    assert c.collision.item() and not c.at_fault_collision.item()


def test_side_collision_depends_on_lane_position(batch: SceneBatch) -> None:
    # A crossing car hits the ego's left side. Ego centred in its lane: not at fault (NAVSIM
    # blames lateral contacts only on an ego straddling lanes or off the road).
    car = (0.5, 2.0, math.pi / 2, 3.0)
    c = check(batch, {EGO: (0.0, 0.0, 0.0, 5.0), CAR: car})
    assert c.collision.item() and not c.at_fault_collision.item()
    c = check(batch, {EGO: (0.0, 1.8, 0.0, 5.0), CAR: (0.5, 3.8, math.pi / 2, 3.0)})
    assert c.collision.item() and c.at_fault_collision.item()


def test_hitting_static_object_is_at_fault(batch: SceneBatch) -> None:
    c = check(batch, {EGO: (97.5, -0.5, 0.0, 3.0)})
    assert c.collision.item() and c.at_fault_collision.item()
    assert c.collision_object.item() == BOX


def test_offroad_and_against_traffic(batch: SceneBatch) -> None:
    c = check(batch, {EGO: (10.0, -1.5, 0.0, 5.0)})  # right edge of the box at y = -2.5
    assert c.offroad.item() and not c.against_traffic.item()
    c = check(batch, {EGO: (10.0, 3.6, 0.0, 5.0)})  # eastbound on the westbound lane
    assert c.against_traffic.item() and not c.offroad.item()
    assert abs(c.lane_deviation_m.item() - 3.6) < 1e-4  # nearest eastbound lane is 3.6 m off
    c = check(batch, {EGO: (10.0, 3.6, math.pi, 5.0)})
    assert not c.against_traffic.item()


def test_red_light_violation(batch: SceneBatch) -> None:
    before, after = (27.5, 0.0, 0.0, 5.0), (28.0, 0.0, 0.0, 5.0)  # front 29.75 -> 30.25
    assert check(batch, {EGO: after}, {EGO: before}).red_light_violation.item()
    assert not check(batch, {EGO: before}, {EGO: before}).red_light_violation.item()
    side = (28.0, 3.6, 0.0, 5.0)
    assert not check(batch, {EGO: side}, {EGO: (27.5, 3.6, 0.0, 5.0)}).red_light_violation.item()
    green = SceneBatch.from_scenes([make_scene(SignalState.GREEN)])
    assert not check(green, {EGO: after}, {EGO: before}).red_light_violation.item()


def test_ttc_head_on_hand_case(batch: SceneBatch) -> None:
    # 4.5 m cars, centres 18 m apart, closing at 10 + 5 m/s: contact after (18 - 4.5) / 15 s.
    c = check(batch, {EGO: (42.0, 3.6, 0.0, 10.0), CAR: (60.0, 3.6, math.pi, 5.0)})
    assert c.ttc_violation.item() and abs(c.ttc_s.item() - 0.9) < 1e-4
    c = check(batch, {EGO: (40.0, 3.6, 0.0, 10.0), CAR: (60.0, 3.6, math.pi, 5.0)})
    assert not c.ttc_violation.item()  # 1.033 s: beyond the 1 s horizon
    c = check(batch, {EGO: (42.0, 3.6, 0.0, 0.0), CAR: (60.0, 3.6, math.pi, 5.0)})
    assert not c.ttc_violation.item()  # a stopped ego is never blamed


def test_ttc_ignores_rear_approach(batch: SceneBatch) -> None:
    c = check(batch, {EGO: (70.0, 3.6, 0.0, 5.0), CAR: (60.0, 3.6, 0.0, 20.0)})
    assert not c.collision.item() and not c.ttc_violation.item()


def test_self_play_agents_and_kinematics(batch: SceneBatch) -> None:
    state = make_state({EGO: (5.0, 0.0, 0.0, 10.0), CAR: (60.0, 3.6, math.pi, 4.0)}, step=3)
    state = dataclasses.replace(
        state,
        accel_mps2=torch.tensor([[1.0, -2.0, 0.0]]),
        yaw_rate_rps=torch.tensor([[0.1, 0.0, 0.0]]),
    )
    prev = make_state({EGO: (4.0, 0.0, 0.0, 9.9)}, step=2)
    idx = torch.tensor([[EGO, CAR]])
    first = compute_checks(batch, torch.tensor([0]), idx, prev, state, None)
    assert first.jerk_mps3.abs().max().item() == 0.0
    second = compute_checks(batch, torch.tensor([0]), idx, state, state, first)
    assert second.accel_mps2.shape == (1, 2)
    assert torch.allclose(first.lateral_accel_mps2, torch.tensor([[1.0, 0.0]]))
    assert torch.allclose(second.jerk_mps3, torch.zeros(1, 2))
    assert first.route_progress_m[0, 1].item() == 0.0  # route progress is the ego's only
    assert first.on_lane[0, 1].item()  # the westbound car is on the westbound lane


def test_recorder_builds_trace(batch: SceneBatch) -> None:
    idx = torch.tensor([[EGO]])
    rec = RolloutRecorder(torch.tensor([0]), idx)
    prev, prev_checks = make_state({EGO: (0.0, 0.0, 0.0, 10.0)}, step=0), None
    for t in range(T):
        state = make_state({EGO: (0.5 * t, 0.0, 0.0, 5.0)}, step=t)
        prev_checks = compute_checks(batch, torch.tensor([0]), idx, prev, state, prev_checks)
        rec.append(state, prev_checks)
        prev = state
    trace = rec.finish(batch)
    assert trace.xy_m.shape == (1, T, 1, 2) and trace.checks.collision.shape == (1, T, 1)
    assert trace.ego_mask.all() and trace.log_progress_valid.all()
    # The logged ego drove 1 m per step along the route: 19 m over the recorded steps.
    assert abs(trace.log_route_progress_m.item() - (T - 1)) < 1e-3
    assert abs(trace.route_length_m.item() - 200.0) < 1e-3
    assert torch.allclose(trace.checks.distance_to_log_m[0, :, 0], 0.5 * torch.arange(T))
