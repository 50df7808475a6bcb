"""Reactive IDM traffic on hand-built scenes: following, lights, stop signs, crosswalk users."""

from __future__ import annotations

import pytest
import torch

from cordillera.scene.types import ObjectType, SignalState
from cordillera.sim.config import IdmConfig, SimConfig
from cordillera.sim.simulator import Simulator
from cordillera.sim.traffic import idm_acceleration
from scene_builders import Obj, Signal, straight_road_scene

CFG = IdmConfig()


def _run(scene, steps: int, traffic: str = "idm"):  # type: ignore[no-untyped-def]
    """Roll out the log plan; the ego stands at world (0, 3.5) so local x equals world x."""
    sim = Simulator([scene], SimConfig(traffic=traffic))  # type: ignore[arg-type]
    s = sim.reset()
    states = [s]
    for _ in range(steps):
        s = sim.step_plan(s, sim.log_plan(s))
        states.append(s)
    return sim, states


def test_idm_acceleration_hand_values() -> None:
    v, v0 = torch.tensor([10.0]), torch.tensor([20.0])
    # Free road: a (1 - (v/v0)^4) with a huge gap.
    free = idm_acceleration(v, v0, torch.tensor([1e4]), torch.tensor([0.0]), CFG)
    assert free.item() == pytest.approx(1.5 * (1 - 0.5**4), abs=1e-3)
    # Gap 30 m, closing 0: s* = 2 + 10·1.2 = 14; a = 1.5 (1 - 1/16 - (14/30)^2).
    a = idm_acceleration(v, v0, torch.tensor([30.0]), torch.tensor([0.0]), CFG)
    assert a.item() == pytest.approx(1.5 * (1 - 1 / 16 - (14 / 30) ** 2), abs=1e-5)
    # Closing at 5 m/s adds v·Δv / (2√(ab)) = 50 / (2√3) to s*.
    a2 = idm_acceleration(v, v0, torch.tensor([30.0]), torch.tensor([5.0]), CFG)
    s_star = 14 + 50 / (2 * 3**0.5)
    assert a2.item() == pytest.approx(1.5 * (1 - 1 / 16 - (s_star / 30) ** 2), abs=1e-5)


def test_follower_stops_behind_a_stopped_car_instead_of_driving_through() -> None:
    # Ego (log replay) is far away; object 1 drives at 10 m/s in the log towards object 2,
    # which is parked 60 m ahead. Under IDM the follower must stop behind it.
    scene = straight_road_scene(
        Obj(0.0, 3.5, 0.0),
        [Obj(0.0, 0.0, 10.0), Obj(60.0, 0.0, 0.0)],
        num_steps=150,
    )
    _, states = _run(scene, 149)
    final = states[-1]
    gap = final.xy_m[0, 2, 0] - final.xy_m[0, 1, 0] - 4.5
    assert final.speed_mps[0, 1].item() < 0.2
    assert 1.0 < gap.item() < 4.0
    # The log would have driven straight through the parked car.
    _, log_states = _run(scene, 149, traffic="log")
    assert log_states[-1].xy_m[0, 1, 0].item() > 100.0


def test_parked_car_stays_parked() -> None:
    scene = straight_road_scene(Obj(0.0, 3.5, 0.0), [Obj(30.0, 0.0, 0.0)], num_steps=50)
    _, states = _run(scene, 49)
    assert torch.allclose(states[-1].xy_m[0, 1], states[0].xy_m[0, 1])


def test_red_light_holds_traffic_and_green_releases_it() -> None:
    steps = 200
    red_then_green = [int(SignalState.RED)] * 120 + [int(SignalState.GREEN)] * (steps - 120)
    scene = straight_road_scene(
        Obj(0.0, 3.5, 0.0),
        [Obj(0.0, 0.0, 10.0)],
        num_steps=steps,
        signals=[Signal(50.0, red_then_green)],
    )
    _, states = _run(scene, steps - 1)
    front_at_red = states[119].xy_m[0, 1, 0].item() + 2.25
    assert front_at_red < 50.0
    assert states[119].speed_mps[0, 1].item() < 0.2
    assert states[-1].xy_m[0, 1, 0].item() > 55.0


def test_stop_sign_halts_then_proceeds() -> None:
    scene = straight_road_scene(
        Obj(0.0, 3.5, 0.0), [Obj(0.0, 0.0, 8.0)], num_steps=200, stop_sign_x_m=40.0
    )
    _, states = _run(scene, 199)
    xs = torch.stack([s.xy_m[0, 1, 0] for s in states])
    speeds = torch.stack([s.speed_mps[0, 1] for s in states])
    halted = (speeds < 0.3) & (xs > 25.0) & (xs + 2.25 < 40.0)
    assert bool(halted.any()), "never halted before the sign"
    assert xs[-1].item() > 45.0, "never proceeded past the sign"


def test_pedestrian_on_the_path_makes_the_car_yield() -> None:
    # A pedestrian stands in the lane (on a crosswalk) for the whole log.
    scene = straight_road_scene(
        Obj(0.0, 3.5, 0.0),
        [
            Obj(0.0, 0.0, 10.0),
            Obj(50.0, 0.0, 0.0, kind=ObjectType.PEDESTRIAN, size_lwh_m=(0.6, 0.6, 1.8)),
        ],
        num_steps=120,
        crosswalk_x_m=50.0,
    )
    _, states = _run(scene, 119)
    assert states[-1].xy_m[0, 1, 0].item() + 2.25 < 50.0 - 0.3
    assert states[-1].speed_mps[0, 1].item() < 0.2


def test_reactive_traffic_yields_to_the_ego() -> None:
    # The ego stops in the lane (controlled: brake to zero); the car behind must not hit it.
    scene = straight_road_scene(Obj(40.0, 0.0, 5.0), [Obj(0.0, 0.0, 10.0)], num_steps=120)
    sim = Simulator([scene], SimConfig(traffic="idm"))
    s = sim.reset()
    for _ in range(119):
        brake = -torch.minimum(torch.full((1, 2), 3.0), s.speed_mps / 0.1)
        s = sim.step(s, brake, torch.zeros(1, 2))
        gap = s.xy_m[0, 0, 0] - s.xy_m[0, 1, 0] - 4.5
        assert gap.item() > 0.5


def test_same_seed_same_rollout_bit_for_bit() -> None:
    scene = straight_road_scene(
        Obj(0.0, 0.0, 10.0), [Obj(20.0, 0.0, 6.0), Obj(-15.0, 3.5, 12.0)], num_steps=80
    )
    _, a = _run(scene, 79)
    _, b = _run(scene, 79)
    for sa, sb in zip(a, b, strict=True):
        assert torch.equal(sa.xy_m, sb.xy_m)
        assert torch.equal(sa.speed_mps, sb.speed_mps)
