"""Kinematic vehicle model, its exact inverse, and the plan-tracking controller.

Controls are ``(acceleration, curvature)``: curvature is the path's 1/radius, so a bicycle
model's steering angle δ maps to it as ``κ = tan(δ) / wheelbase``
(:func:`steering_to_curvature`).
Integration uses the midpoint rule, which makes the model exactly invertible: given a target
position one step ahead, :func:`inverse_controls` returns the controls that land on it.
"""

from __future__ import annotations

import torch

from cordillera.sim.config import VehicleLimits

EPS_SPEED_MPS = 1e-3


def wrap_angle(a: torch.Tensor) -> torch.Tensor:
    """Angles wrapped to ``[-π, π)``."""
    return torch.remainder(a + torch.pi, 2 * torch.pi) - torch.pi


def steering_to_curvature(steering_rad: torch.Tensor, wheelbase_m: float = 2.8) -> torch.Tensor:
    """Path curvature (1/m) of a kinematic bicycle at front-wheel angle ``steering_rad``."""
    return torch.tan(steering_rad) / wheelbase_m


def clip_controls(
    accel_mps2: torch.Tensor, curvature_1pm: torch.Tensor, limits: VehicleLimits
) -> tuple[torch.Tensor, torch.Tensor]:
    """Controls clipped to the vehicle's physical limits."""
    a = accel_mps2.clamp(-limits.max_decel_mps2, limits.max_accel_mps2)
    k = curvature_1pm.clamp(-limits.max_curvature_1pm, limits.max_curvature_1pm)
    return a, k


def integrate(
    xy_m: torch.Tensor,
    heading_rad: torch.Tensor,
    speed_mps: torch.Tensor,
    accel_mps2: torch.Tensor,
    curvature_1pm: torch.Tensor,
    dt_s: float,
    limits: VehicleLimits,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Advance ``(..., 2)`` positions, ``(...)`` headings and speeds by one step.

    Returns the new position, heading and speed, the acceleration actually applied (after the
    limits and the speed caps) and the yaw rate over the step.
    """
    a, k = clip_controls(accel_mps2, curvature_1pm, limits)
    v_new = (speed_mps + a * dt_s).clamp(-limits.max_reverse_speed_mps, limits.max_speed_mps)
    a = (v_new - speed_mps) / dt_s
    v_mid = 0.5 * (speed_mps + v_new)
    dist = v_mid * dt_s
    dyaw = k * dist
    yaw_mid = heading_rad + 0.5 * dyaw
    xy_new = xy_m + dist.unsqueeze(-1) * torch.stack([torch.cos(yaw_mid), torch.sin(yaw_mid)], -1)
    return xy_new, wrap_angle(heading_rad + dyaw), v_new, a, dyaw / dt_s


def inverse_controls(
    xy_m: torch.Tensor,
    heading_rad: torch.Tensor,
    speed_mps: torch.Tensor,
    target_xy_m: torch.Tensor,
    dt_s: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unclipped ``(accel, curvature)`` that move a vehicle onto ``target_xy_m`` in one step.

    Under the midpoint rule the displacement points along ``heading + Δyaw / 2`` and its length
    is ``v_mid · dt``; solving both gives the controls. A target behind the vehicle means
    reversing. When the displacement is negligible the curvature is 0.
    """
    d = target_xy_m - xy_m
    dist = torch.linalg.vector_norm(d, dim=-1)
    bearing = torch.atan2(d[..., 1], d[..., 0])
    rel = wrap_angle(bearing - heading_rad)
    reverse = rel.abs() > torch.pi / 2
    signed = torch.where(reverse, -dist, dist)
    rel = torch.where(reverse, wrap_angle(rel + torch.pi), rel)
    v_mid = signed / dt_s
    accel = 2.0 * (v_mid - speed_mps) / dt_s
    moving = dist > EPS_SPEED_MPS * dt_s
    curvature = torch.where(moving, 2.0 * rel / torch.where(moving, signed, 1.0), 0.0)
    return accel, curvature


def track_plan(
    xy_m: torch.Tensor,
    heading_rad: torch.Tensor,
    speed_mps: torch.Tensor,
    plan_xy_m: torch.Tensor,
    dt_s: float,
    limits: VehicleLimits,
    longitudinal_lookahead: int = 3,
    lateral_lookahead: int = 3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Controls that track a plan of future waypoints ``(..., K, 2)`` spaced ``dt_s`` apart.

    Longitudinal: the constant acceleration that covers the distance to waypoint
    ``longitudinal_lookahead`` in that many steps (``d = v τ + a τ² / 2``, with ``d`` the
    straight-line distance, negative for a waypoint behind). Lateral: pure pursuit of waypoint
    ``lateral_lookahead`` (``κ = 2 sin α / L``). With both lookaheads at 1 this is the exact
    inverse of :func:`integrate`; longer lookaheads filter noise in logged waypoints and
    speeds, as a real tracker does. The plan is re-issued every step from the current state
    (receding horizon), so deviations are corrected; controls are clipped to the vehicle's
    limits, so an infeasible plan is followed as closely as physics allows.
    """
    k = plan_xy_m.shape[-2]
    jl = min(max(longitudinal_lookahead, 1), k)
    jt = min(max(lateral_lookahead, 1), k)
    # A chord, not the summed arc: a glitch in a logged path (a point that jumps back and
    # forth) must not read as extra distance to cover.
    d_long = plan_xy_m[..., jl - 1, :] - xy_m
    c, s = torch.cos(heading_rad), torch.sin(heading_rad)
    along = d_long[..., 0] * c + d_long[..., 1] * s
    dist = torch.where(along < 0, -1.0, 1.0) * torch.linalg.vector_norm(d_long, dim=-1)
    tau = jl * dt_s
    accel = 2.0 * (dist - speed_mps * tau) / tau**2
    d_first = plan_xy_m[..., 0, :] - xy_m
    sign = torch.where(d_first[..., 0] * c + d_first[..., 1] * s < -1e-3, -1.0, 1.0)
    target = plan_xy_m[..., jt - 1, :]
    d = target - xy_m
    look = torch.linalg.vector_norm(d, dim=-1)
    alpha = wrap_angle(torch.atan2(d[..., 1], d[..., 0]) - heading_rad)
    alpha = torch.where(sign < 0, wrap_angle(alpha + torch.pi), alpha)
    moving = look > 0.05
    curvature = torch.where(moving, 2.0 * torch.sin(alpha) / look.clamp_min(0.05), 0.0) * sign
    return clip_controls(accel, curvature, limits)
