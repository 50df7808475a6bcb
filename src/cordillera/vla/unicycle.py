"""Controls ↔ waypoints: the unicycle model the action expert's output is integrated with.

The action expert predicts K controls ``(acceleration m/s², curvature 1/m)`` at ``dt`` and
the plan is their integral from the current speed, in the ego frame at decision time (x
forward, y left, heading 0). The discretisation is semi-implicit Euler — the speed is updated
first, and the new speed moves the vehicle along the new heading::

    v[k+1] = v[k] + a[k]·dt
    θ[k+1] = θ[k] + κ[k]·v[k+1]·dt
    p[k+1] = p[k] + v[k+1]·dt·(cos θ[k+1], sin θ[k+1])

Each line is a cumulative sum, so the whole horizon integrates without a loop over steps. Its
inverse (:func:`controls_from_waypoints`) is direct too: each displacement gives one speed and
one heading. (The simulator's midpoint rule, ``sim.dynamics``, inverts only through an
alternating recurrence that rings on noisy logged positions, which would make poor training
targets; the plan is handed to the simulator as waypoints, so the two need not agree.)

Speeds are not allowed below 0: a plan never reverses (a negative speed is clamped to 0,
which makes the forward model lossy only for controls that would reverse).
"""

from __future__ import annotations

import torch

from cordillera.sim.dynamics import wrap_angle

MIN_STEP_M = 0.02
"""Displacements shorter than this (0.2 m/s at 10 Hz) keep the previous heading: the bearing
of a near-zero step is noise."""


def integrate_controls(
    accel_mps2: torch.Tensor, curvature_1pm: torch.Tensor, speed_mps: torch.Tensor, dt_s: float
) -> torch.Tensor:
    """``(B, K, 2)`` waypoints in the ego frame from ``(B, K)`` controls and ``(B,)`` current
    speeds (the vehicle starts at the origin heading along +x)."""
    v = (speed_mps[:, None] + torch.cumsum(accel_mps2 * dt_s, 1)).clamp_min(0.0)  # v[1..K]
    step_m = v * dt_s
    heading = torch.cumsum(curvature_1pm * step_m, 1)  # θ[1..K]
    d = torch.stack([step_m * torch.cos(heading), step_m * torch.sin(heading)], -1)
    return torch.cumsum(d, 1)


def controls_from_waypoints(
    waypoints_ego_m: torch.Tensor,
    speed_mps: torch.Tensor,
    dt_s: float,
    max_curvature_1pm: float = float("inf"),
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, K)`` accelerations and curvatures whose integral is ``(B, K, 2)`` waypoints.

    Exact (``integrate_controls`` gives the waypoints back) where every step is longer than
    :data:`MIN_STEP_M` and no curvature is clipped; shorter steps keep the heading, so their
    direction is lost (at most :data:`MIN_STEP_M` per step).
    """
    b, k, _ = waypoints_ego_m.shape
    prev = torch.cat([waypoints_ego_m.new_zeros(b, 1, 2), waypoints_ego_m[:, :-1]], 1)
    d = waypoints_ego_m - prev
    step_m = torch.linalg.vector_norm(d, dim=-1)
    v = step_m / dt_s  # v[1..K]
    v_prev = torch.cat([speed_mps[:, None].to(v.dtype), v[:, :-1]], 1)
    accel = (v - v_prev) / dt_s
    # Heading of each step; short steps hold the last valid one (the start's is 0): forward
    # fill through the index of the last moving step, no loop.
    moving = step_m > MIN_STEP_M
    bearing = torch.atan2(d[..., 1], d[..., 0])
    idx = torch.arange(k, device=d.device).expand(b, k)
    last = torch.where(moving, idx, -1).cummax(1).values
    heading = torch.where(last >= 0, bearing.gather(1, last.clamp_min(0)), 0.0)
    # Unwrapped heading changes, so a curve through ±π integrates back correctly.
    heading_prev = torch.cat([heading.new_zeros(b, 1), heading[:, :-1]], 1)
    dyaw = wrap_angle(heading - heading_prev)
    curvature = torch.where(moving, dyaw / torch.where(moving, step_m, 1.0), 0.0)
    return accel, curvature.clamp(-max_curvature_1pm, max_curvature_1pm)


def constant_velocity(speed_mps: torch.Tensor, horizon: int, dt_s: float) -> torch.Tensor:
    """``(B, K, 2)`` constant-velocity waypoints straight ahead (the baseline to beat)."""
    t = torch.arange(1, horizon + 1, dtype=speed_mps.dtype, device=speed_mps.device) * dt_s
    x = speed_mps[:, None] * t
    return torch.stack([x, torch.zeros_like(x)], -1)


__all__ = ["MIN_STEP_M", "constant_velocity", "controls_from_waypoints", "integrate_controls"]
