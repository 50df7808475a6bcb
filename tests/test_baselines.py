"""Baseline policies (log replay, constant velocity, IDM), meta-action filling and the registry,
on hand-built straight roads (``scene_builders``) where every answer is known."""

from __future__ import annotations

import math

import pytest
import torch

from cordillera.errors import ConfigError
from cordillera.policy.base import ObservationRequest, Policy
from cordillera.policy.baselines import (
    ConstantVelocityPolicy,
    EgoPathTracker,
    IdmPolicy,
    IdmPolicyConfig,
    LogReplayPolicy,
    PolicyError,
    constant_accel_distances,
)
from cordillera.policy.inputs import InputBuilder
from cordillera.policy.meta_actions import LaneAction, LateralAction, LongitudinalAction
from cordillera.policy.meta_fill import fill_meta_actions, lane_context, make_plan
from cordillera.policy.plan import PLAN_HORIZON, Plan
from cordillera.policy.registry import get_policy, policy_config, policy_names
from cordillera.scene.model import Scene
from cordillera.scene.types import SignalState
from cordillera.sim.config import SimConfig, TrafficMode
from cordillera.sim.simulator import Simulator
from cordillera.sim.state import SimState
from policy_harness import setup_policy
from scene_builders import Obj, Signal, straight_road_scene

DT = 0.1


def _setup(
    scene: Scene, policy: Policy, traffic: TrafficMode = "log"
) -> tuple[Simulator, InputBuilder, SimState]:
    return setup_policy(scene, policy, traffic)


def _ego_pose(sim: Simulator, state: SimState) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.arange(state.batch_size)
    return state.xy_m[rows, sim.ego_index], state.heading_rad[rows, sim.ego_index]


def _drive(
    sim: Simulator, builder: InputBuilder, policy: Policy, state: SimState, steps: int
) -> tuple[SimState, list[Plan]]:
    """Closed loop: every step the policy decides and the simulator tracks its plan."""
    ego = sim.ego_index.view(-1, 1)
    plans = []
    for _ in range(steps):
        plan = policy.act(builder(state))
        plans.append(plan)
        local = plan.to_local(*_ego_pose(sim, state))
        state = sim.step_plan(state, local[:, None], ego)
    return state, plans


def test_log_replay_reproduces_the_log_plan() -> None:
    # Drifting left across the road at 0.05 rad: the plan is a left lane change.
    scene = straight_road_scene(Obj(0.0, 0.0, 8.0, heading_rad=0.05), num_steps=100)
    policy = LogReplayPolicy()
    sim, builder, state = _setup(scene, policy)
    state, _ = _drive(sim, builder, policy, state, 7)  # off the first step
    plan = policy.act(builder(state))
    want = sim.log_plan(state, agents=sim.ego_index.view(1, 1))[:, 0]
    got = plan.to_local(*_ego_pose(sim, state))
    assert plan.waypoints_ego_m.shape == (1, PLAN_HORIZON, 2)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0.0)
    assert plan.coc == (None,)
    assert int(plan.longitudinal[0]) == LongitudinalAction.MAINTAIN_SPEED
    assert int(plan.lane[0]) == LaneAction.LEFT_LANE_CHANGE  # the map placed it


def test_log_replay_needs_the_privileged_state() -> None:
    scene = straight_road_scene(Obj(0.0, 0.0, 8.0), num_steps=30)
    policy = LogReplayPolicy()
    sim = Simulator([scene], SimConfig(traffic="log"))
    state = sim.reset()
    builder = InputBuilder(sim, [scene], ObservationRequest())
    builder.reset(state)
    with pytest.raises(PolicyError, match="privileged"):
        policy.act(builder(state))


def test_constant_velocity_geometry_by_hand() -> None:
    heading = 0.3
    scene = straight_road_scene(Obj(0.0, 0.0, 8.0, heading_rad=heading), num_steps=40)
    policy = ConstantVelocityPolicy()
    sim, builder, state = _setup(scene, policy)
    plan = policy.act(builder(state))
    k = torch.arange(1, PLAN_HORIZON + 1, dtype=torch.float32)
    want = torch.stack([8.0 * DT * k, torch.zeros_like(k)], -1)
    torch.testing.assert_close(plan.waypoints_ego_m[0], want, atol=1e-5, rtol=1e-6)
    local = plan.to_local(*_ego_pose(sim, state))[0]
    direction = local[-1] - local[0]
    assert math.atan2(float(direction[1]), float(direction[0])) == pytest.approx(heading, abs=1e-5)
    assert int(plan.longitudinal[0]) == LongitudinalAction.MAINTAIN_SPEED
    assert int(plan.lateral[0]) == LateralAction.GO_STRAIGHT


def test_constant_velocity_without_the_map_leaves_the_lane_label_empty() -> None:
    scene = straight_road_scene(Obj(0.0, 0.0, 5.0), num_steps=20)
    policy = ConstantVelocityPolicy(policy_config("constant-velocity", lane_meta_actions=False))
    assert not policy.request.privileged
    _, builder, state = _setup(scene, policy)
    plan = policy.act(builder(state))
    assert int(plan.lane[0]) == -1
    assert plan.waypoints_ego_m[0, -1, 0].item() == pytest.approx(5.0 * 6.4, rel=1e-5)


def test_idm_stops_behind_a_stopped_car() -> None:
    # The ego's log drives at 10 m/s straight through a car parked 60 m ahead.
    scene = straight_road_scene(Obj(0.0, 0.0, 10.0), [Obj(60.0, 0.0, 0.0)], num_steps=150)
    policy = IdmPolicy(IdmPolicyConfig(lane_meta_actions=False))  # no map queries: fast
    sim, builder, state = _setup(scene, policy)
    state, plans = _drive(sim, builder, policy, state, 120)
    gap = state.xy_m[0, 1, 0] - state.xy_m[0, 0, 0] - 4.5
    assert state.speed_mps[0, 0].item() < 0.2
    assert 1.0 < gap.item() < 4.0
    assert all(p.coc == (None,) for p in plans)
    # Standing behind it, the plan stays put and says so.
    assert int(plans[-1].longitudinal[0]) == LongitudinalAction.STOP


def test_idm_stops_at_a_red_light() -> None:
    scene = straight_road_scene(
        Obj(0.0, 0.0, 10.0), num_steps=120, signals=[Signal(50.0, [int(SignalState.RED)])]
    )
    policy = IdmPolicy(IdmPolicyConfig(lane_meta_actions=False))
    sim, builder, state = _setup(scene, policy)
    state, _ = _drive(sim, builder, policy, state, 100)
    assert state.speed_mps[0, 0].item() < 0.2
    assert state.xy_m[0, 0, 0].item() + 2.25 < 50.0


def test_path_tracker_follows_the_ego_between_grid_points() -> None:
    scene = straight_road_scene(Obj(0.0, 0.0, 7.3), num_steps=40)
    sim = Simulator([scene], SimConfig(traffic="log"))
    state = sim.reset()
    tracker = EgoPathTracker()
    for _ in range(10):
        state = sim.step_plan(state, sim.log_plan(state))
        s = tracker.update(sim, state)
        # The logged path starts at the ego's first position: arc length = distance driven.
        assert s.item() == pytest.approx(state.xy_m[0, 0, 0].item(), abs=0.02)


def test_constant_accel_distances_by_hand() -> None:
    d = constant_accel_distances(
        torch.tensor([10.0, 2.0]), torch.tensor([-2.0, 1.0]), torch.tensor([20.0, 3.0]), 80, DT
    )
    # Braking from 10 m/s at 2 m/s² stops after 25 m and stays; accelerating caps at 3 m/s.
    assert d[0, -1].item() == pytest.approx(25.0, abs=1e-3)
    assert d[1, -1].item() == pytest.approx(2.5 + 3.0 * 7.0, abs=1e-3)
    assert bool((torch.diff(d, dim=1) >= -1e-6).all())


def test_meta_actions_of_a_stopping_and_a_lane_changing_plan() -> None:
    t = torch.arange(1, PLAN_HORIZON + 1, dtype=torch.float32) * DT
    # Braking from 10 m/s at 3 m/s²; a right lane change (3.5 m over 4 s) at 10 m/s.
    braking = torch.stack([10.0 * t.clamp(max=10 / 3) - 1.5 * t.clamp(max=10 / 3) ** 2, 0 * t], -1)
    ramp = ((t - 1.0) / 4.0).clamp(0.0, 1.0)
    lateral = -3.5 * ramp * ramp * (3 - 2 * ramp)
    change = torch.stack([10.0 * t, lateral], -1)
    waypoints = torch.stack([braking, change])
    # The ego stands in the left lane (y = 3.5): the lane labels need the local -> world move.
    scene = straight_road_scene(Obj(5.0, 3.5, 10.0), num_steps=20)
    sim = Simulator([scene, scene], SimConfig(traffic="log"))
    state = sim.reset()
    assert torch.allclose(state.xy_m[:, 0], torch.zeros(2, 2))  # local origin = ego start
    lanes = lane_context(sim, state, [scene.map, scene.map])
    summary = fill_meta_actions(waypoints, DT, lanes)
    assert int(summary.longitudinal[0]) in (
        LongitudinalAction.STOP,
        LongitudinalAction.STRONG_DECELERATION,
        LongitudinalAction.GENTLE_DECELERATION,
    )
    assert int(summary.lane[1]) == LaneAction.RIGHT_LANE_CHANGE
    assert bool(summary.lane_valid.all())
    plan = make_plan(waypoints, DT)  # no map: the lane family is -1
    assert plan.lane.tolist() == [-1, -1]
    assert plan.longitudinal.tolist() == summary.longitudinal.long().tolist()


def test_registry_names_builds_and_errors() -> None:
    assert policy_names() == ["constant-velocity", "idm", "log-replay", "pdm", "route-follower"]
    for name in policy_names():
        policy = get_policy(name)
        assert isinstance(policy, Policy)
        assert policy.name == name
    with pytest.raises(ConfigError, match="registered policies: constant-velocity, idm"):
        get_policy("pdm-open")
    with pytest.raises(ConfigError, match="has no option"):
        get_policy("idm", replan_every_steps=3)
    with pytest.raises(ConfigError, match="replan_every_steps"):
        get_policy("pdm", replan_every_steps=0)
    with pytest.raises(ConfigError, match="desired_speed_fraction"):
        get_policy("idm", desired_speed_fraction=0.0)
    cfg = policy_config("pdm", replan_every_steps=2)
    with pytest.raises(AttributeError):
        cfg.replan_every_steps = 3  # frozen
