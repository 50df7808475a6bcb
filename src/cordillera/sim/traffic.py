"""Reactive traffic: IDM speed control along each agent's logged path.

Every reactive agent keeps the *path* it drove in the log but chooses its *speed* with the
Intelligent Driver Model, reacting to whatever is on that path — the ego, other agents,
pedestrians (crosswalk users included) — and to red lights and stop signs. This is the
reactive-agent model of Waymax's IDM route policy and nuPlan's IDM agents, batched.
"""

from __future__ import annotations

import torch

from cordillera.scene.types import ObjectType, SignalState
from cordillera.sim.batch import SceneBatch
from cordillera.sim.config import IdmConfig
from cordillera.sim.dynamics import wrap_angle

SIGNAL_LATERAL_TOLERANCE_M = 2.0
SIGN_HEADING_TOLERANCE_RAD = torch.pi / 4
STOPPED_SPEED_MPS = 0.3
STOP_SIGN_HALT_DISTANCE_M = 3.0
FAR_GAP_M = 1e4
PARKED_SPEED_MPS = 0.5


def uniform_path_lookup(
    batch: SceneBatch,
    scene_of: torch.Tensor,
    s_query_m: torch.Tensor,
    obj_index: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions ``(B, M, K, 2)`` and headings ``(B, M, K)`` on objects' logged paths.

    ``s_query_m`` is ``(B, M, K)`` arc length along the paths of objects ``obj_index``
    ``(B, M)`` (default: every object, M = N). Paths are resampled at a uniform spacing, so
    the lookup is an index computation plus a gather straight from the per-scene table — no
    search and no per-rollout copy of the paths.
    """
    b, m, _ = s_query_m.shape
    u = scene_of.view(b, 1, 1)
    if obj_index is None:
        obj = torch.arange(m, device=s_query_m.device).view(1, m, 1)
    else:
        obj = obj_index.view(b, m, 1)
    spacing = batch.path_spacing_m
    count = batch.path_num_points[u[..., 0], obj[..., 0]].unsqueeze(-1)  # (B, M, 1)
    f = (s_query_m / spacing).clamp_min(0.0)
    i0 = torch.minimum(f.floor().long(), (count - 2).clamp_min(0))
    frac = (f - i0.float()).clamp(0.0, 1.0)
    i1 = torch.minimum(i0 + 1, (count - 1).clamp_min(0))
    p0 = batch.path_xyh[u, obj, i0]  # (B, M, K, 3)
    p1 = batch.path_xyh[u, obj, i1]
    xy = p0[..., :2] + frac.unsqueeze(-1) * (p1[..., :2] - p0[..., :2])
    heading = p0[..., 2] + frac * wrap_angle(p1[..., 2] - p0[..., 2])
    return xy, heading


def track_path_progress(
    batch: SceneBatch,
    scene_of: torch.Tensor,
    obj_index: torch.Tensor,
    xy_m: torch.Tensor,
    s_prev_m: torch.Tensor,
    window_m: float = 6.0,
) -> torch.Tensor:
    """``(B, M)`` arc length of positions ``xy_m`` ``(B, M, 2)`` along their objects' logged
    paths, searched in a window around the previous value ``s_prev_m`` (O(1) per agent)."""
    spacing = batch.path_spacing_m
    k = int(2 * window_m / spacing) + 1
    offsets = torch.linspace(-window_m, window_m, k, device=xy_m.device)
    cand = (s_prev_m.unsqueeze(-1) + offsets).clamp_min(0.0)
    pts, _ = uniform_path_lookup(batch, scene_of, cand, obj_index)
    d = torch.linalg.vector_norm(pts - xy_m.unsqueeze(2), dim=-1)
    return torch.gather(cand, 2, d.argmin(-1, keepdim=True)).squeeze(-1)


def select_neighbours(
    rows: torch.Tensor,
    xy_m: torch.Tensor,
    heading_rad: torch.Tensor,
    valid: torch.Tensor,
    length_m: torch.Tensor,
    count: int,
    radius_m: float,
) -> torch.Tensor:
    """``(B, R, C)`` indices (into N) of the nearest valid objects ahead of agents ``rows``
    ``(B, R)``, self excluded; empty slots hold the agent's own index (ignored later).

    Recomputed every few steps: a neighbour list (Verlet list) keeps the per-step cost at
    O(R·C) instead of O(R·N).
    """
    b, r = rows.shape
    n = valid.shape[1]
    a_xy = torch.gather(xy_m, 1, rows.unsqueeze(-1).expand(b, r, 2))
    a_h = torch.gather(heading_rad, 1, rows)
    a_len = torch.gather(length_m, 1, rows)
    rel = xy_m.unsqueeze(1) - a_xy.unsqueeze(2)  # (B, R, N, 2)
    dist = torch.linalg.vector_norm(rel, dim=-1)
    fwd = rel[..., 0] * torch.cos(a_h).unsqueeze(-1) + rel[..., 1] * torch.sin(a_h).unsqueeze(-1)
    is_self = torch.arange(n, device=xy_m.device).view(1, 1, n) == rows.unsqueeze(-1)
    usable = valid.unsqueeze(1) & ~is_self & (fwd > -a_len.unsqueeze(-1)) & (dist < radius_m)
    dist = torch.where(usable, dist, torch.inf)
    k = min(count, n)
    d, idx = torch.topk(dist, k, dim=-1, largest=False)
    return torch.where(torch.isfinite(d), idx, rows.unsqueeze(-1).expand(b, r, k))


def idm_acceleration(
    speed_mps: torch.Tensor,
    desired_speed_mps: torch.Tensor,
    gap_m: torch.Tensor,
    closing_speed_mps: torch.Tensor,
    cfg: IdmConfig,
) -> torch.Tensor:
    """IDM acceleration: ``a [1 - (v / v0)^δ - (s* / s)^2]`` with
    ``s* = s0 + v T + v Δv / (2 √(a b))``, clipped to ``[-max_decel, a]``."""
    v = speed_mps.clamp_min(0.0)
    v0 = desired_speed_mps.clamp_min(0.1)
    s_star = cfg.min_gap_m + (
        v * cfg.headway_s
        + v * closing_speed_mps / (2.0 * (cfg.max_accel_mps2 * cfg.comfort_decel_mps2) ** 0.5)
    ).clamp_min(0.0)
    free = 1.0 - (v / v0) ** cfg.delta
    interaction = (s_star / gap_m.clamp_min(0.1)) ** 2
    a = cfg.max_accel_mps2 * (free - interaction)
    return a.clamp(-cfg.max_decel_mps2, cfg.max_accel_mps2)


def _sign_gaps(
    points_xy: torch.Tensor,
    points_heading: torch.Tensor,
    sample_s: torch.Tensor,
    sign_xy: torch.Tensor,
    sign_heading: torch.Tensor,
    active: torch.Tensor,
) -> torch.Tensor:
    """Arc length ``(B, N)`` from each agent to the first active sign on its path (or far).

    points ``(B, N, K, 2)`` sampled on the path at ``sample_s`` ``(B, N, K)`` (relative to the
    agent); signs ``(B, S, 2)`` with headings ``(B, S)`` and ``active`` ``(B, S)``.
    """
    if sign_xy.shape[1] == 0:
        return torch.full(sample_s.shape[:2], FAR_GAP_M, device=sample_s.device)
    d = torch.linalg.vector_norm(points_xy.unsqueeze(3) - sign_xy[:, None, None], dim=-1)
    dh = wrap_angle(points_heading.unsqueeze(3) - sign_heading[:, None, None]).abs()
    hit = (d < SIGNAL_LATERAL_TOLERANCE_M) & (dh < SIGN_HEADING_TOLERANCE_RAD)
    # active: (B, S) for every agent, or (B, N, S) per agent (signals that apply to its path).
    hit &= active.unsqueeze(-2) if active.ndim == 3 else active[:, None, None, :]
    s = torch.where(hit, sample_s.unsqueeze(-1), FAR_GAP_M)  # (B, N, K, S)
    return s.amin(dim=(2, 3))


def reactive_step(
    batch: SceneBatch,
    scene_of: torch.Tensor,
    step: torch.Tensor,
    rows: torch.Tensor,
    row_ok: torch.Tensor,
    xy_m: torch.Tensor,
    heading_rad: torch.Tensor,
    speed_mps: torch.Tensor,
    valid: torch.Tensor,
    path_s_m: torch.Tensor,
    stop_wait_s: torch.Tensor,
    neighbours: torch.Tensor,
    desired_speed_mps: torch.Tensor,
    size_lw_m: torch.Tensor,
    cfg: IdmConfig,
) -> tuple[torch.Tensor, ...]:
    """One IDM step for the reactive agents ``rows`` ``(B, R)`` (``row_ok`` marks real ones).

    Object tensors are ``(B, N[, 2])`` in the local frame; ``step`` ``(B,)`` is the log step
    of the current state (signals are read there); ``neighbours`` ``(B, R, C)`` from
    :func:`select_neighbours`. Returns the agents' new ``xy (B, R, 2), heading, speed, accel,
    path_s, stop_wait`` (rows that are padding or not valid keep their values).
    """
    dt = batch.dt_s
    b, r = rows.shape
    dev = xy_m.device

    def take(t: torch.Tensor) -> torch.Tensor:
        return torch.gather(t, 1, rows)

    a_xy = torch.gather(xy_m, 1, rows.unsqueeze(-1).expand(b, r, 2))
    a_h, a_v, a_s, a_wait = take(heading_rad), take(speed_mps), take(path_s_m), take(stop_wait_s)
    live = take(valid) & row_ok
    length_all, width_all = size_lw_m[..., 0], size_lw_m[..., 1]
    length, width = take(length_all), take(width_all)
    desired = take(desired_speed_mps)

    # Sample each agent's path ahead.
    k = cfg.num_path_samples
    sample_rel = torch.linspace(0.0, cfg.lookahead_m, k, device=dev).expand(b, r, k)
    pts, pts_heading = uniform_path_lookup(batch, scene_of, a_s.unsqueeze(-1) + sample_rel, rows)

    # Leader: the first neighbour whose box reaches the path ahead.
    c = neighbours.shape[-1]
    flat = neighbours.reshape(b, r * c)
    cxy = torch.gather(xy_m, 1, flat.unsqueeze(-1).expand(b, r * c, 2)).view(b, r, c, 2)
    cw = torch.gather(width_all, 1, flat).view(b, r, c)
    cl = torch.gather(length_all, 1, flat).view(b, r, c)
    cv = torch.gather(speed_mps, 1, flat).view(b, r, c)
    ch = torch.gather(heading_rad, 1, flat).view(b, r, c)
    cok = torch.gather(valid, 1, flat).view(b, r, c) & (neighbours != rows.unsqueeze(-1))
    dd = torch.linalg.vector_norm(cxy.unsqueeze(3) - pts.unsqueeze(2), dim=-1)  # (B, R, C, K)
    if cfg.pedestrian_anticipation_s > 0:
        # Vulnerable road users also block the path where they will be shortly.
        ctype = batch.object_type[scene_of.view(b, 1), flat].view(b, r, c)
        vru = (ctype == int(ObjectType.PEDESTRIAN)) | (ctype == int(ObjectType.CYCLIST))
        step_m = (cv * cfg.pedestrian_anticipation_s * vru).unsqueeze(-1)
        ahead = cxy + step_m * torch.stack([torch.cos(ch), torch.sin(ch)], -1)
        dd = torch.minimum(
            dd, torch.linalg.vector_norm(ahead.unsqueeze(3) - pts.unsqueeze(2), dim=-1)
        )
    reach = 0.5 * (width.unsqueeze(-1) + cw) + cfg.lateral_margin_m
    on_path = (dd < reach.unsqueeze(-1)) & cok.unsqueeze(-1)
    first_s = torch.where(on_path, sample_rel.unsqueeze(2), FAR_GAP_M).amin(-1)  # (B, R, C)
    gap = first_s - 0.5 * (length.unsqueeze(-1) + cl)
    lead_gap, lead = gap.min(dim=-1)
    lead_speed = torch.gather(cv, 2, lead.unsqueeze(-1)).squeeze(-1)
    lead_heading = torch.gather(ch, 2, lead.unsqueeze(-1)).squeeze(-1)
    lead_speed = lead_speed * torch.cos(wrap_angle(lead_heading - a_h))
    has_leader = first_s.amin(-1) < FAR_GAP_M / 2
    closing = torch.where(has_leader, a_v - lead_speed, 0.0)

    # Traffic lights: red must stop; yellow stops when a comfortable stop is still possible.
    half_len = 0.5 * length
    static_gap = torch.full_like(a_v, FAR_GAP_M)
    u = scene_of.view(b, 1)
    if batch.signal_xy_m.shape[1]:
        t = step.clamp(max=batch.max_steps - 1)
        s_count = batch.signal_xy_m.shape[1]
        sig = torch.arange(s_count, device=dev).view(1, s_count)
        sig_now = batch.signal_state[u, sig, t.view(b, 1)]  # (B, S)
        sig_valid = batch.signal_valid[u, sig]
        sig_xy = batch.signal_xy_m[u, sig]
        sig_h = batch.signal_heading_rad[u, sig]
        applies = batch.signal_applies[u, rows]  # (B, R, S)
        red = ((sig_now == SignalState.RED) | (sig_now == SignalState.FLASHING_RED)) & sig_valid
        red = red.unsqueeze(1) & applies
        yellow = ((sig_now == SignalState.YELLOW) & sig_valid).unsqueeze(1) & applies
        gap_red = _sign_gaps(pts, pts_heading, sample_rel, sig_xy, sig_h, red) - half_len
        gap_yel = _sign_gaps(pts, pts_heading, sample_rel, sig_xy, sig_h, yellow) - half_len
        can_stop = gap_yel > a_v.clamp_min(0) ** 2 / (2 * cfg.comfort_decel_mps2)
        light_gap = torch.minimum(gap_red, torch.where(can_stop, gap_yel, FAR_GAP_M))
        static_gap = torch.where(light_gap > -half_len, light_gap, FAR_GAP_M)

    # Stop signs: halt, wait, then proceed.
    new_wait = torch.zeros_like(a_wait)
    if batch.stop_sign_xy_m.shape[1]:
        m_count = batch.stop_sign_xy_m.shape[1]
        sg = torch.arange(m_count, device=dev).view(1, m_count)
        sign_gap = (
            _sign_gaps(
                pts,
                pts_heading,
                sample_rel,
                batch.stop_sign_xy_m[u, sg],
                batch.stop_sign_heading_rad[u, sg],
                batch.stop_sign_valid[u, sg],
            )
            - half_len
        )
        waited = a_wait >= cfg.stop_sign_wait_s
        near_sign = sign_gap < STOP_SIGN_HALT_DISTANCE_M
        halted = near_sign & (a_v.abs() < STOPPED_SPEED_MPS)
        keep_counting = halted | (waited & (sign_gap < 2 * STOP_SIGN_HALT_DISTANCE_M))
        new_wait = torch.where(keep_counting, a_wait + dt, new_wait)
        sign_gap = torch.where(waited, FAR_GAP_M, sign_gap + 1.0)  # halt ~1 m before the sign
        static_gap = torch.minimum(static_gap, sign_gap)

    lead_or_far = torch.where(has_leader, lead_gap, FAR_GAP_M)
    use_static = static_gap < lead_or_far
    gap_all = torch.where(use_static, static_gap, lead_or_far)
    closing_all = torch.where(use_static, a_v, closing)
    accel = idm_acceleration(a_v, desired, gap_all, closing_all, cfg)
    v_new = (a_v + accel * dt).clamp_min(0.0)
    accel = (v_new - a_v) / dt
    s_new = a_s + 0.5 * (a_v.clamp_min(0.0) + v_new) * dt
    new_xy, new_heading = uniform_path_lookup(batch, scene_of, s_new.unsqueeze(-1), rows)
    new_xy, new_heading = new_xy.squeeze(-2), wrap_angle(new_heading.squeeze(-1))
    return (
        torch.where(live.unsqueeze(-1), new_xy, a_xy),
        torch.where(live, new_heading, a_h),
        torch.where(live, v_new, a_v),
        torch.where(live, accel, torch.zeros_like(accel)),
        torch.where(live, s_new, a_s),
        torch.where(live, new_wait, a_wait),
    )


def reactive_types() -> tuple[int, ...]:
    """Object types that become reactive under IDM traffic (pedestrians and clutter replay)."""
    return (int(ObjectType.VEHICLE), int(ObjectType.CYCLIST))
