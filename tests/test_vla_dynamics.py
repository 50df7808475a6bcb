"""Unicycle integration against hand-derived values, its inverse, and the flow sampler."""

from __future__ import annotations

import math

import torch

from cordillera.vla.action_expert import ActionExpert, flow_matching_loss
from cordillera.vla.unicycle import constant_velocity, controls_from_waypoints, integrate_controls

DT = 0.1


def test_constant_speed_is_a_straight_line() -> None:
    wps = integrate_controls(torch.zeros(1, 64), torch.zeros(1, 64), torch.tensor([10.0]), DT)
    expected = torch.stack([torch.arange(1, 65) * 1.0, torch.zeros(64)], -1)
    torch.testing.assert_close(wps[0], expected, rtol=0, atol=1e-4)
    torch.testing.assert_close(wps, constant_velocity(torch.tensor([10.0]), 64, DT))


def test_constant_acceleration_distance() -> None:
    # semi-implicit Euler: x_K = sum_k (v0 + a k dt) dt = v0 K dt + a dt^2 K (K + 1) / 2
    wps = integrate_controls(torch.full((1, 64), 2.0), torch.zeros(1, 64), torch.tensor([5.0]), DT)
    assert math.isclose(float(wps[0, -1, 0]), 5.0 * 6.4 + 2.0 * 0.01 * 64 * 65 / 2, rel_tol=1e-5)


def test_braking_never_reverses() -> None:
    wps = integrate_controls(torch.full((1, 64), -5.0), torch.zeros(1, 64), torch.tensor([5.0]), DT)
    x = wps[0, :, 0]
    assert torch.all(torch.diff(x) >= 0)
    torch.testing.assert_close(x[-1], x[20])  # stopped after 1 s


def test_constant_curvature_is_a_circle_arc() -> None:
    r, v = 20.0, 8.0
    wps = integrate_controls(torch.zeros(1, 64), torch.full((1, 64), 1 / r), torch.tensor([v]), DT)
    # Hand-derived: equal chords s = v dt, each turned by dθ = s / r, are a polygon inscribed
    # in the circle of radius s / (2 sin(dθ / 2)); the first chord points along dθ, so the
    # tangent at the origin is dθ / 2 and the centre lies at R (-sin(dθ/2), cos(dθ/2)).
    s, dth = v * DT, v * DT / r
    big_r = s / (2 * math.sin(dth / 2))
    centre = torch.tensor([-big_r * math.sin(dth / 2), big_r * math.cos(dth / 2)])
    dist = torch.linalg.vector_norm(wps[0] - centre, dim=-1)
    torch.testing.assert_close(dist, torch.full((64,), big_r), atol=2e-4, rtol=0)
    assert abs(big_r - r) < 0.01  # and that circle is the commanded one
    d = wps[0, -1] - wps[0, -2]
    assert math.isclose(math.atan2(float(d[1]), float(d[0])), 64 * dth, rel_tol=1e-4)


def test_inverse_reproduces_waypoints() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(16, 64, generator=g) * 0.5
    k = torch.randn(16, 64, generator=g) * 0.02
    v0 = torch.rand(16, generator=g) * 10 + 3
    wps = integrate_controls(a, k, v0, DT)
    a2, k2 = controls_from_waypoints(wps, v0, DT)
    torch.testing.assert_close(a2, a, atol=2e-3, rtol=0)
    torch.testing.assert_close(k2, k, atol=2e-4, rtol=0)
    torch.testing.assert_close(integrate_controls(a2, k2, v0, DT), wps, atol=1e-3, rtol=0)


def test_inverse_of_a_standing_vehicle_is_finite() -> None:
    wps = torch.zeros(1, 64, 2)
    a, k = controls_from_waypoints(wps, torch.tensor([0.0]), DT)
    assert torch.all(a == 0) and torch.all(k == 0)


def test_flow_sampling_is_deterministic_and_loss_masks_steps() -> None:
    torch.manual_seed(0)
    expert = ActionExpert(memory_dim=16, hidden=32, layers=1, heads=4, horizon=64).eval()
    mem = torch.randn(2, 5, 16)
    pad = torch.tensor([[False] * 5, [False, False, False, True, True]])
    state = torch.randn(2, 3)

    def sample(seed: int) -> torch.Tensor:
        with torch.no_grad():
            return expert.sample(mem, pad, state, 4, torch.Generator().manual_seed(seed))

    torch.testing.assert_close(sample(3), sample(3), rtol=0, atol=0)
    assert not torch.equal(sample(3), sample(4))
    target = torch.randn(2, 64, 2)
    valid = torch.zeros(2, 64, dtype=torch.bool)
    loss_none = flow_matching_loss(
        expert, target, valid, mem, pad, state, torch.Generator().manual_seed(0)
    )
    assert float(loss_none.detach()) == 0.0  # steps outside the log do not count
    valid[:, :10] = True
    loss = flow_matching_loss(
        expert, target, valid, mem, pad, state, torch.Generator().manual_seed(0)
    )
    again = flow_matching_loss(
        expert, target, valid, mem, pad, state, torch.Generator().manual_seed(0)
    )
    assert float(loss) > 0 and torch.equal(loss, again)
