"""PDM proposals: IDM speed profiles along laterally offset copies of the route.

PDM-Closed (Dauner et al., "Parting with Misconceptions about Learning-based Vehicle Motion
Planning", CoRL 2023; NAVSIM's ``pdm_closed_planner.py``) builds its proposals by running the
IDM along the route's centreline (here: the ego's logged path, the route of log benchmarks),
at several target speeds and lateral offsets, against *constant-velocity forecasts* of the
other objects: at every future step the leader is the nearest forecast object whose box
reaches the (offset) path ahead. Red lights and stop signs are static obstacles at their stop
points, in the state they show now.

Everything is batched over B rollouts × P proposals; the only loop is over the T future steps
of the IDM integration (each step depends on the previous one).

Shapes: B rollouts, P proposals, C candidate objects, S path samples, T plan steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cordillera.policy.pdm_obstacles import Obstacles, find_obstacles
from cordillera.sim.config import IdmConfig
from cordillera.sim.dynamics import wrap_angle
from cordillera.sim.simulator import Simulator
from cordillera.sim.state import SimState
from cordillera.sim.traffic import (
    FAR_GAP_M,
    idm_acceleration,
    uniform_path_lookup,
)

NO_TARGET_SPEED_MPS = 0.1
"""Target speeds below this are "stop": brake comfortably to a standstill and stay there."""
FREE_ROAD_SPEED_MPS = 1e3
"""Desired speed handed to :func:`idm_acceleration` to get its interaction term alone."""
MAX_START_ANGLE_RAD = 0.5
"""Largest angle between the ego and its path that the offset curve starts with (beyond it
the curve would swing wide; the tracker then turns the ego in)."""
STOP_SIGN_EXTRA_M = 1.0
"""Stop a little closer to the sign than the IDM jam gap (as reactive traffic does)."""


@dataclass(frozen=True)
class ProposalSpec:
    """What the proposals are and how they are built (a part of ``PdmConfig``).

    Attributes:
        speed_fractions: IDM target speeds as fractions of the reference speed.
        lateral_offsets_m: offsets of the path, positive to the left (0 is the route).
        idm: the ego's driver model.
        num_candidates: objects (nearest to the path over the horizon) tested as leaders.
        path_spacing_m: spacing of the path samples objects are projected on.
        path_length_m: length of path ahead sampled (covers the horizon at the reference
            speed plus the IDM look-ahead).
        lateral_ramp_s, lateral_ramp_min_m: the path reaches its offset over
            ``max(min, speed × ramp_s)`` metres (see :func:`hermite_offset`).
    """

    speed_fractions: tuple[float, ...]
    lateral_offsets_m: tuple[float, ...]
    idm: IdmConfig
    num_candidates: int
    path_spacing_m: float
    path_length_m: float
    lateral_ramp_s: float
    lateral_ramp_min_m: float

    @property
    def num_proposals(self) -> int:
        return len(self.speed_fractions) * len(self.lateral_offsets_m)

    def grid(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(P,)`` speed fraction and lateral offset of each proposal; the offset varies
        slowest, so the proposals of one offset are contiguous."""
        frac = torch.tensor(self.speed_fractions, device=device)
        off = torch.tensor(self.lateral_offsets_m, device=device)
        return frac.repeat(len(off)), off.repeat_interleave(len(frac))


@dataclass(frozen=True, eq=False)
class Proposals:
    """B × P proposals (IDM profiles along offset paths), in the simulator's local frame.

    Attributes:
        fraction, offset_m: ``(P,)`` speed fraction and lateral offset of each proposal.
        target_speed_mps: ``(B, P)``.
        waypoints_m: ``(B, P, T, 2)`` future positions, one per step (step 1 first).
        speed_mps: ``(B, P, T)`` IDM speed at each waypoint; free_speed_mps the same
            without obstacles.
        cause: ``(B, P)`` long the constraint that slowed the proposal most: a candidate
            ``0..C-1``, ``C`` the light, ``C + 1`` the stop sign.
        speed_loss_mps: ``(B, P)`` the speed that constraint took away, summed over the
            forecast steps (``∫ (a_free - a) dt``).
        lateral_start_m, lateral_slope, lateral_curvature, lateral_ramp_m: ``(B,)`` the
            lateral curves' start and length (:func:`hermite_offset`).
        obstacles: what the profiles reacted to.
    """

    fraction: torch.Tensor
    offset_m: torch.Tensor
    target_speed_mps: torch.Tensor
    waypoints_m: torch.Tensor
    speed_mps: torch.Tensor
    free_speed_mps: torch.Tensor
    cause: torch.Tensor
    speed_loss_mps: torch.Tensor
    lateral_start_m: torch.Tensor
    lateral_slope: torch.Tensor
    lateral_curvature: torch.Tensor
    lateral_ramp_m: torch.Tensor
    obstacles: Obstacles


def hermite_offset(
    s_m: torch.Tensor,
    start_m: torch.Tensor,
    start_slope: torch.Tensor,
    start_curvature: torch.Tensor,
    target_m: torch.Tensor,
    ramp_m: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lateral offset of a proposal's path at arc lengths ``s_m`` from the decision point,
    with its first and second derivatives along the path (all arguments broadcast).

    A quintic Hermite curve from where the ego is — offset ``start_m``, slope ``start_slope``
    (tan of its angle to the path), second derivative ``start_curvature`` (1/m) — to
    ``target_m``, parallel to the path and unbent, after ``ramp_m`` metres. Starting tangent
    and with the curvature the previous plan had matters: any kink at the joint between
    consecutive plans becomes a steering jerk at every decision (extended comfort).
    """
    x = (s_m / ramp_m).clamp(0.0, 1.0)
    x2 = x * x
    x3, x4, x5 = x2 * x, x2 * x2, x2 * x2 * x
    length = ramp_m
    m0, c0 = start_slope * length, start_curvature * length * length
    rise = target_m - start_m
    value = (
        start_m
        + rise * (10 * x3 - 15 * x4 + 6 * x5)
        + m0 * (x - 6 * x3 + 8 * x4 - 3 * x5)
        + c0 * (0.5 * x2 - 1.5 * x3 + 1.5 * x4 - 0.5 * x5)
    )
    d1 = (
        rise * (30 * x2 - 60 * x3 + 30 * x4)
        + m0 * (1 - 18 * x2 + 32 * x3 - 15 * x4)
        + c0 * (x - 4.5 * x2 + 6 * x3 - 2.5 * x4)
    )
    d2 = (
        rise * (60 * x - 180 * x2 + 120 * x3)
        + m0 * (-36 * x + 96 * x2 - 60 * x3)
        + c0 * (1 - 9 * x + 18 * x2 - 10 * x3)
    )
    inside = (s_m >= 0) & (s_m < ramp_m)
    return (
        value,
        torch.where(inside, d1 / length, 0.0),
        torch.where(inside, d2 / (length * length), 0.0),
    )


def _lateral_offsets(
    s_m: torch.Tensor,
    start: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    target_m: torch.Tensor,
    ramp_m: torch.Tensor,
) -> torch.Tensor:
    """:func:`hermite_offset` at ``s_m (B, P, ...)`` for per-rollout starts (offset, slope,
    curvature) and ramps ``(B,)`` and per-proposal targets ``(P,)``."""
    extra = s_m.ndim - 2

    def per_rollout(t: torch.Tensor) -> torch.Tensor:
        return t.view(-1, 1, *[1] * extra)

    value, _, _ = hermite_offset(
        s_m,
        per_rollout(start[0]),
        per_rollout(start[1]),
        per_rollout(start[2]),
        target_m.view(1, -1, *[1] * extra),
        per_rollout(ramp_m),
    )
    return value


def ego_lateral_state(
    sim: Simulator, state: SimState, s0_m: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B,)`` the egos' signed offsets from their paths at arc length ``s0_m`` (left +) and
    the slopes of their headings across the paths (tan of the angle, within ±0.5 rad)."""
    rows = torch.arange(state.batch_size, device=s0_m.device)
    ego = sim.ego_index
    foot, heading = uniform_path_lookup(
        sim.batch, sim.scene_of, s0_m.view(-1, 1, 1), ego.view(-1, 1)
    )
    d = state.xy_m[rows, ego] - foot[:, 0, 0]
    h = heading[:, 0, 0]
    offset = torch.cos(h) * d[:, 1] - torch.sin(h) * d[:, 0]
    angle = wrap_angle(state.heading_rad[rows, ego] - h)
    return offset, torch.tan(angle.clamp(-MAX_START_ANGLE_RAD, MAX_START_ANGLE_RAD))


def _free_accel(v: torch.Tensor, v0: torch.Tensor, cfg: IdmConfig) -> torch.Tensor:
    """IDM's free-road term ``a (1 - (v / v0)^δ)``, floored at the comfortable deceleration
    so a lower target speed is approached gently; a zero target brakes to a standstill."""
    free = cfg.max_accel_mps2 * (1.0 - (v / v0.clamp_min(NO_TARGET_SPEED_MPS)) ** cfg.delta)
    free = free.clamp_min(-cfg.comfort_decel_mps2)
    stop = torch.where(v > 0, -cfg.comfort_decel_mps2, 0.0)
    return torch.where(v0 < NO_TARGET_SPEED_MPS, stop, free)


def build_proposals(
    sim: Simulator,
    state: SimState,
    s0_m: torch.Tensor,
    reference_speed_mps: torch.Tensor,
    spec: ProposalSpec,
    steps: int,
    stop_wait_s: torch.Tensor,
    stop_sign_wait_s: float,
    lateral_start: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> Proposals:
    """IDM proposals of every rollout: ``steps`` waypoints each, in the local frame.

    Args:
        sim, state: the simulator and its current state (privileged).
        s0_m: ``(B,)`` the egos' arc lengths along their logged paths.
        reference_speed_mps: ``(B,)`` the speed that fraction 1.0 targets.
        spec: the proposal grid and driver model.
        steps: waypoints per proposal (the plan horizon plus the re-planning interval).
        stop_wait_s: ``(B,)`` time already stood at a stop sign.
        stop_sign_wait_s: how long to stand at a stop sign before going on.
        lateral_start: ``(B,)`` offset, slope and curvature the lateral curves start from;
            default the ego's own offset and heading (:func:`ego_lateral_state`), unbent.
    """
    cfg = spec.idm
    dt = sim.dt_s
    b = state.batch_size
    dev = s0_m.device
    rows = torch.arange(b, device=dev)
    ego = sim.ego_index
    ego_len, ego_w = sim.size_lw_m[rows, ego, 0], sim.size_lw_m[rows, ego, 1]
    v_now = state.speed_mps[rows, ego].clamp_min(0.0)
    obs, _, _ = find_obstacles(
        sim,
        state,
        s0_m,
        steps,
        stop_wait_s,
        stop_sign_wait_s,
        num_candidates=spec.num_candidates,
        path_spacing_m=spec.path_spacing_m,
        path_length_m=spec.path_length_m,
        comfort_decel_mps2=cfg.comfort_decel_mps2,
    )
    frac, off = spec.grid(dev)
    p = len(frac)
    v0 = reference_speed_mps[:, None] * frac  # (B, P)

    # Where the proposals start across the path, and how far the offset ramps.
    if lateral_start is None:
        offset, slope = ego_lateral_state(sim, state, s0_m)
        lateral_start = (offset, slope, torch.zeros_like(offset))
    ramp = (v_now * spec.lateral_ramp_s).clamp_min(spec.lateral_ramp_min_m)

    # On-path test of every candidate at every step, for every proposal's path.
    path_off = _lateral_offsets(obs.s_m.unsqueeze(1), lateral_start, off, ramp)  # (B, P, C, T)
    reach = 0.5 * (ego_w[:, None] + obs.width_m) + cfg.lateral_margin_m  # (B, C)
    on_path = obs.ok.unsqueeze(1) & (
        (obs.lateral_m.unsqueeze(1) - path_off).abs() < reach[:, None, :, None]
    )
    half_len = 0.5 * (ego_len[:, None] + obs.length_m)  # (B, C)
    c = obs.index.shape[1]

    s_e = torch.zeros(b, p, device=dev)
    v_e = v_now[:, None].expand(b, p).clone()
    v_ff = v_e.clone()
    loss = torch.zeros(b, p, c + 2, device=dev)
    light_gap = (obs.light_s_m - 0.5 * ego_len)[:, None]
    sign_gap = (obs.sign_s_m - 0.5 * ego_len + STOP_SIGN_EXTRA_M)[:, None]
    s_out, v_out, vff_out = [], [], []
    for k in range(steps):  # the IDM integration: each step depends on the previous one
        ahead = obs.s_m[:, None, :, k] - s_e.unsqueeze(-1)  # (B, P, C)
        blocking = on_path[..., k] & (ahead > 0) & (ahead <= cfg.lookahead_m)
        gap = torch.where(blocking, ahead - half_len[:, None], FAR_GAP_M)
        lead_gap, lead = gap.min(-1)
        lead_v = torch.gather(
            obs.speed_along_mps[:, None, :, k].expand(b, p, c), 2, lead[..., None]
        )
        # Static obstacles (light, sign) close at the ego's own speed; once the front is past
        # a stop point there is nothing left to stop for (and no violation left to avoid).
        static = torch.stack([light_gap - s_e, sign_gap - s_e], -1)
        static = torch.where(static > 0, static, FAR_GAP_M)
        all_gaps = torch.cat([lead_gap.unsqueeze(-1), static], -1)
        which = all_gaps.argmin(-1)  # 0: leader, 1: light, 2: sign
        gap_k = torch.gather(all_gaps, 2, which[..., None])[..., 0]
        closing = torch.where(which == 0, v_e - lead_v[..., 0], v_e)
        a_int = idm_acceleration(
            v_e, torch.full_like(v_e, FREE_ROAD_SPEED_MPS), gap_k, closing, cfg
        )
        free = _free_accel(v_e, v0, cfg)
        a = (a_int - cfg.max_accel_mps2 + free).clamp(-cfg.max_decel_mps2, cfg.max_accel_mps2)
        cause = torch.where(which == 0, lead, c + which - 1)
        loss.scatter_add_(2, cause[..., None], ((free - a).clamp_min(0.0) * dt)[..., None])
        v_new = (v_e + a * dt).clamp_min(0.0)
        s_e = s_e + 0.5 * (v_e + v_new) * dt
        v_e = v_new
        v_ff = (v_ff + _free_accel(v_ff, v0, cfg) * dt).clamp_min(0.0)
        s_out.append(s_e)
        v_out.append(v_e)
        vff_out.append(v_ff)
    s_all = torch.stack(s_out, -1)  # (B, P, T)
    lat = _lateral_offsets(s_all, lateral_start, off, ramp)
    q = (s0_m[:, None, None] + s_all).view(b, 1, p * steps)
    xy, heading = uniform_path_lookup(sim.batch, sim.scene_of, q, ego.view(b, 1))
    xy, heading = xy.view(b, p, steps, 2), heading.view(b, p, steps)
    normal = torch.stack([-torch.sin(heading), torch.cos(heading)], -1)
    speed_loss, cause_idx = loss.max(-1)
    return Proposals(
        fraction=frac,
        offset_m=off,
        target_speed_mps=v0,
        waypoints_m=xy + lat.unsqueeze(-1) * normal,
        speed_mps=torch.stack(v_out, -1),
        free_speed_mps=torch.stack(vff_out, -1),
        cause=cause_idx,
        speed_loss_mps=speed_loss,
        lateral_start_m=lateral_start[0],
        lateral_slope=lateral_start[1],
        lateral_curvature=lateral_start[2],
        lateral_ramp_m=ramp,
        obstacles=obs,
    )


__all__ = [
    "ProposalSpec",
    "Proposals",
    "build_proposals",
    "ego_lateral_state",
    "hermite_offset",
]
