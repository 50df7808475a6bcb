"""Kinematic model, its inverse and the plan tracker: hand-derived values and round trips."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cordillera.errors import ConfigError
from cordillera.sim.config import SimConfig, TrackerConfig, VehicleLimits
from cordillera.sim.dynamics import integrate, inverse_controls, steering_to_curvature, track_plan
from cordillera.sim.simulator import Simulator
from scene_builders import Obj, straight_road_scene

DT = 0.1
LIMITS = VehicleLimits()


def _t(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


def test_straight_constant_acceleration_matches_kinematics() -> None:
    xy, h, v = torch.zeros(1, 2, dtype=torch.float64), _t(0.0), _t(10.0)
    for _ in range(10):
        xy, h, v, a, w = integrate(xy, h, v, _t(2.0), _t(0.0), DT, LIMITS)
    # x = v0 t + a t² / 2 after 1 s: 10 + 1 = 11 m; v = 12 m/s.
    assert xy[0, 0].item() == pytest.approx(11.0, abs=1e-9)
    assert xy[0, 1].item() == pytest.approx(0.0, abs=1e-12)
    assert v.item() == pytest.approx(12.0)
    assert a.item() == pytest.approx(2.0)
    assert w.item() == 0.0


def test_constant_curvature_stays_on_the_chord_circle() -> None:
    kappa, speed = 0.1, 5.0
    xy, h, v = torch.zeros(1, 2, dtype=torch.float64), _t(0.0), _t(speed)
    pts = []
    for _ in range(50):
        xy, h, v, _, w = integrate(xy, h, v, _t(0.0), _t(kappa), DT, LIMITS)
        pts.append(xy[0].clone())
    # Midpoint steps are chords of length v·dt turning by κ·v·dt, so every point lies on the
    # circle of radius r = v·dt / (2 sin(κ v dt / 2)) through the start, centred at (0, r).
    dyaw = kappa * speed * DT
    r = speed * DT / (2 * math.sin(dyaw / 2))
    for p in pts:
        assert math.hypot(p[0].item(), p[1].item() - r) == pytest.approx(r, abs=1e-9)
    assert h.item() == pytest.approx(50 * dyaw, abs=1e-9)
    assert w.item() == pytest.approx(kappa * speed)


def test_limits_clip_acceleration_curvature_and_speed() -> None:
    xy, h, v = torch.zeros(1, 2), torch.zeros(1), torch.tensor([39.9])
    _, _, v2, a, _ = integrate(xy, h, v, torch.tensor([100.0]), torch.tensor([5.0]), DT, LIMITS)
    assert v2.item() == pytest.approx(LIMITS.max_speed_mps)
    assert a.item() == pytest.approx((LIMITS.max_speed_mps - 39.9) / DT, rel=1e-4)
    _, _, _, _, w = integrate(
        xy, h, torch.tensor([10.0]), torch.zeros(1), torch.tensor([5.0]), DT, LIMITS
    )
    assert w.item() == pytest.approx(LIMITS.max_curvature_1pm * 10.0, rel=1e-5)


def test_steering_to_curvature_is_tan_over_wheelbase() -> None:
    assert steering_to_curvature(torch.tensor(0.1), 2.5).item() == pytest.approx(
        math.tan(0.1) / 2.5
    )


@settings(max_examples=300, deadline=None)
@given(
    x=st.floats(-50, 50),
    y=st.floats(-50, 50),
    heading=st.floats(-3.1, 3.1),
    speed=st.floats(0.5, 30),
    dist=st.floats(0.05, 4.0),
    bearing=st.floats(-0.6, 0.6),
)
def test_inverse_then_forward_lands_on_the_target(
    x: float, y: float, heading: float, speed: float, dist: float, bearing: float
) -> None:
    xy = torch.tensor([[x, y]], dtype=torch.float64)
    h, v = _t(heading), _t(speed)
    target = xy + dist * torch.stack([torch.cos(h + bearing), torch.sin(h + bearing)], -1)
    a, k = inverse_controls(xy, h, v, target, DT)
    wide = VehicleLimits(
        max_accel_mps2=1e6,
        max_decel_mps2=1e6,
        max_curvature_1pm=1e6,
        max_speed_mps=1e6,
        max_reverse_speed_mps=1e6,
    )
    xy2, _, _, _, _ = integrate(xy, h, v, a, k, DT, wide)
    assert torch.allclose(xy2, target, atol=1e-9)


def test_tracker_with_unit_lookahead_is_the_exact_inverse() -> None:
    xy, h, v = torch.zeros(1, 2, dtype=torch.float64), _t(0.0), _t(10.0)
    plan = torch.tensor([[[1.01, 0.05], [2.0, 0.2]]], dtype=torch.float64)
    a, k = track_plan(xy, h, v, plan, DT, LIMITS, 1, 1)
    a2, k2 = inverse_controls(xy, h, v, plan[:, 0], DT)
    assert a.item() == pytest.approx(a2.item())
    # Pure pursuit 2 sin(α)/L equals the exact 2α/d to first order for a small bearing.
    assert k.item() == pytest.approx(k2.item(), rel=1e-3)


def test_config_validation_names_the_bad_value() -> None:
    with pytest.raises(ConfigError, match=r"max_accel_mps2.*-1"):
        VehicleLimits(max_accel_mps2=-1)
    with pytest.raises(ConfigError, match="lateral_lookahead_steps"):
        TrackerConfig(lateral_lookahead_steps=0)
    with pytest.raises(ConfigError, match="traffic"):
        SimConfig(traffic="bogus")  # type: ignore[arg-type]


def test_plan_tracking_reproduces_a_constant_speed_log() -> None:
    scene = straight_road_scene(Obj(0.0, 0.0, 12.0), num_steps=80)
    sim = Simulator([scene], SimConfig(traffic="log"))
    s = sim.reset()
    for _ in range(79):
        s = sim.step_plan(s, sim.log_plan(s))
        log_xy, _, _, _ = sim.log_at(s.step)
        assert torch.allclose(s.xy_m[0, 0], log_xy[0, 0], atol=1e-3)
