"""The PDM-Closed-like planner: its choices, its Chain-of-Causation, re-planning and scoring,
on hand-built straight roads (``scene_builders``) where the right answer is known."""

from __future__ import annotations

import pytest
import torch

from cordillera.errors import ConfigError
from cordillera.policy.inputs import InputBuilder
from cordillera.policy.meta_actions import (
    LateralDecision,
    LongitudinalAction,
    LongitudinalDecision,
)
from cordillera.policy.pdm import PdmConfig, PdmPolicy
from cordillera.policy.pdm_proposals import hermite_offset
from cordillera.policy.pdm_scoring import PdmWeights, combine, relative_progress
from cordillera.policy.plan import ChainOfCausation, Plan
from cordillera.scene.model import Scene
from cordillera.scene.types import ObjectType, SignalState
from cordillera.sim.config import TrafficMode
from cordillera.sim.simulator import Simulator
from cordillera.sim.state import SimState
from policy_harness import setup_policy
from scene_builders import Obj, Signal, straight_road_scene

PEDESTRIAN = {"kind": ObjectType.PEDESTRIAN, "size_lwh_m": (0.6, 0.6, 1.8)}
STOPPING = (
    LongitudinalAction.STOP,
    LongitudinalAction.STRONG_DECELERATION,
    LongitudinalAction.GENTLE_DECELERATION,
)


def _setup(
    scene: Scene, policy: PdmPolicy, traffic: TrafficMode = "idm"
) -> tuple[Simulator, InputBuilder, SimState]:
    return setup_policy(scene, policy, traffic)


def _step(sim: Simulator, state: SimState, plan: Plan) -> SimState:
    rows = torch.arange(state.batch_size)
    local = plan.to_local(state.xy_m[rows, sim.ego_index], state.heading_rad[rows, sim.ego_index])
    return sim.step_plan(state, local[:, None], sim.ego_index.view(-1, 1))


def _sentences(text: str) -> int:
    return text.count(". ") + int(text.endswith("."))


def test_yields_to_a_pedestrian_standing_in_the_lane() -> None:
    scene = straight_road_scene(
        Obj(0.0, 0.0, 10.0),
        [Obj(40.0, 0.0, 0.0, **PEDESTRIAN)],
        num_steps=120,  # type: ignore[arg-type]
    )
    policy = PdmPolicy()
    sim, builder, state = _setup(scene, policy)
    plan = policy.act(builder(state))
    coc = plan.coc[0]
    assert coc is not None
    assert coc.longitudinal in (LongitudinalDecision.YIELD, LongitudinalDecision.STOP)
    assert coc.lateral == LateralDecision.KEEP_LANE
    assert coc.causes[0].kind == "pedestrian"
    assert coc.causes[0].object_id == "obj1"
    assert "standing in the path" in coc.causes[0].behaviour
    assert coc.causes[0].effect > 0
    text = coc.text()
    assert "pedestrian obj1" in text
    assert 1 <= _sentences(text) <= 2
    assert ChainOfCausation.from_json(coc.to_json()) == coc
    # The plan halts short of the pedestrian (front bumper 2.25 m ahead of the centre).
    assert float(plan.waypoints_ego_m[0, :, 0].max()) + 2.25 < 40.0 - 0.3
    assert int(plan.longitudinal[0]) in STOPPING
    # Closed loop: it stops there and touches nobody.
    for _ in range(80):
        state = _step(sim, state, policy.act(builder(state)))
    assert state.speed_mps[0, 0].item() < 0.3
    assert state.xy_m[0, 0, 0].item() + 2.25 < 40.0 - 0.3


def test_free_road_keeps_speed() -> None:
    scene = straight_road_scene(Obj(0.0, 0.0, 10.0), num_steps=100)
    policy = PdmPolicy()
    _, builder, state = _setup(scene, policy)
    plan = policy.act(builder(state))
    coc = plan.coc[0]
    assert coc is not None
    assert coc.longitudinal in (LongitudinalDecision.ADAPT_SPEED, LongitudinalDecision.RESUME_SPEED)
    assert coc.lateral == LateralDecision.KEEP_LANE
    assert coc.causes == ()
    assert "nothing on the path" in coc.text()
    # Still 10 m/s (the fastest the log drove) over the whole plan, on the lane.
    assert float(plan.waypoints_ego_m[0, -1, 0]) == pytest.approx(64.0, rel=0.02)
    assert float(plan.waypoints_ego_m[0, :, 1].abs().max()) < 0.05
    assert int(plan.longitudinal[0]) == LongitudinalAction.MAINTAIN_SPEED
    decision = policy.last_decision
    assert decision is not None
    assert float(decision.proposals.fraction[decision.chosen[0]]) == 1.0


def test_stops_for_a_red_light_and_names_it() -> None:
    scene = straight_road_scene(
        Obj(0.0, 0.0, 10.0), num_steps=100, signals=[Signal(50.0, [int(SignalState.RED)])]
    )
    policy = PdmPolicy()
    _, builder, state = _setup(scene, policy)
    coc = policy.act(builder(state)).coc[0]
    assert coc is not None
    assert coc.longitudinal == LongitudinalDecision.STOP
    assert coc.causes[0].kind == "traffic_light"
    assert coc.causes[0].object_id == "light:0"
    assert coc.causes[0].behaviour.startswith("red")


def test_keeps_distance_to_a_slower_leader() -> None:
    scene = straight_road_scene(Obj(0.0, 0.0, 10.0), [Obj(25.0, 0.0, 5.0)], num_steps=100)
    policy = PdmPolicy()
    _, builder, state = _setup(scene, policy, traffic="log")
    coc = policy.act(builder(state)).coc[0]
    assert coc is not None
    assert coc.longitudinal == LongitudinalDecision.KEEP_DISTANCE
    assert coc.causes[0].kind == "vehicle"
    assert coc.causes[0].object_id == "obj1"
    assert coc.causes[0].behaviour == "moving at 5.0 m/s 25 m ahead"


def test_nudges_past_a_car_parked_half_in_the_lane() -> None:
    # Parked 1.6 m right of the ego's lane centre: it blocks the lane, the left lane is free.
    scene = straight_road_scene(Obj(0.0, 0.0, 8.0), [Obj(45.0, -1.6, 0.0)], num_steps=120)
    policy = PdmPolicy(PdmConfig(lane_meta_actions=False))
    sim, builder, state = _setup(scene, policy)
    nudges = []
    for _ in range(110):
        plan = policy.act(builder(state))
        coc = plan.coc[0]
        assert coc is not None
        if coc.lateral == LateralDecision.NUDGE:
            nudges.append(coc)
        state = _step(sim, state, plan)
        assert not bool(sim.checks(sim.ego_index.view(1, 1), state, state).collision.any())
    assert state.xy_m[0, 0, 0].item() > 60.0, "never got past the parked car"
    assert nudges, "passed without a nudge"
    assert any(c.object_id == "obj1" for n in nudges for c in n.causes)
    assert any(n.longitudinal == LongitudinalDecision.PASS for n in nudges)


def test_same_inputs_same_plan() -> None:
    scene = straight_road_scene(
        Obj(0.0, 0.0, 9.0),
        [Obj(30.0, 0.0, 4.0), Obj(35.0, 3.5, 0.5, **PEDESTRIAN)],  # type: ignore[arg-type]
        num_steps=80,
    )
    plans = []
    for _ in range(2):
        policy = PdmPolicy()
        _, builder, state = _setup(scene, policy)
        plans.append(policy.act(builder(state)))
    a, b = plans
    assert torch.equal(a.waypoints_ego_m, b.waypoints_ego_m)
    assert torch.equal(a.longitudinal, b.longitudinal)
    assert a.coc == b.coc


def test_replans_every_few_steps_and_reuses_the_plan_in_between() -> None:
    scene = straight_road_scene(Obj(0.0, 0.0, 10.0), [Obj(40.0, 0.0, 6.0)], num_steps=80)
    policy = PdmPolicy(PdmConfig(replan_every_steps=5))
    sim, builder, state = _setup(scene, policy)
    first = policy.act(builder(state))
    decision = policy.last_decision
    assert decision is not None
    start = first.to_local(state.xy_m[:, 0], state.heading_rad[:, 0])
    for k in range(1, 5):
        state = _step(sim, state, policy.act(builder(state)) if k > 1 else first)
        plan = policy.act(builder(state))
        assert policy.last_decision is decision
        local = plan.to_local(state.xy_m[:, 0], state.heading_rad[:, 0])
        torch.testing.assert_close(local[:, : 64 - k], start[:, k:], atol=1e-4, rtol=0.0)
        assert plan.coc == first.coc
    state = _step(sim, state, policy.act(builder(state)))
    policy.act(builder(state))
    assert policy.last_decision is not decision


def test_forecast_with_the_simulators_own_traffic() -> None:
    scene = straight_road_scene(
        Obj(0.0, 0.0, 10.0),
        [Obj(40.0, 0.0, 0.0, **PEDESTRIAN)],
        num_steps=60,  # type: ignore[arg-type]
    )
    policy = PdmPolicy(PdmConfig(forecast_agents="simulator"))
    _, builder, state = _setup(scene, policy)
    coc = policy.act(builder(state)).coc[0]
    assert coc is not None and coc.causes[0].object_id == "obj1"


def test_relative_progress_and_combination_by_hand() -> None:
    progress = torch.tensor([[10.0, 20.0, 40.0], [1.0, 2.0, 3.0]])
    mult = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    ep = relative_progress(progress, mult)
    # Row 0: the 40 m proposal is zeroed by its multiplier; 20 m is the best left.
    torch.testing.assert_close(ep[0], torch.tensor([0.5, 1.0, 0.0]))
    # Row 1: best progress under 5 m: 1 where the multiplier is non-zero.
    torch.testing.assert_close(ep[1], torch.tensor([1.0, 0.0, 1.0]))
    weights = PdmWeights()
    ones = torch.ones(1, 1)
    parts = {
        "ego_progress": ones * 0.5,
        "time_to_collision": ones,
        "lane_keeping": ones * 0,
        "history_comfort": ones,
        "extended_comfort": ones,
    }
    total = combine(ones * 0.5, parts, weights)
    assert total.item() == pytest.approx(0.5 * (5 * 0.5 + 5 + 0 + 2 + 2) / 16)


def test_lateral_curve_starts_where_the_ego_is_and_ends_on_target() -> None:
    s = torch.tensor([0.0, 10.0, 20.0, 30.0])
    value, slope, curvature = hermite_offset(
        s,
        torch.tensor(0.4),
        torch.tensor(0.1),
        torch.tensor(0.02),
        torch.tensor(1.0),
        torch.tensor(20.0),
    )
    assert value[0].item() == pytest.approx(0.4)
    assert slope[0].item() == pytest.approx(0.1)
    assert curvature[0].item() == pytest.approx(0.02)
    assert value[2:].tolist() == pytest.approx([1.0, 1.0])
    assert slope[2:].tolist() == pytest.approx([0.0, 0.0])


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="speed_fractions"):
        PdmConfig(speed_fractions=())
    with pytest.raises(ConfigError, match="lateral_offsets_m"):
        PdmConfig(lateral_offsets_m=(float("nan"),))
    with pytest.raises(ConfigError, match="forecast_agents"):
        PdmConfig(forecast_agents="oracle")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="forecast_s"):
        PdmConfig(forecast_s=0.0)
    with pytest.raises(ConfigError, match="PdmWeights"):
        PdmWeights(time_to_collision=-1.0)
