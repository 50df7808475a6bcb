"""What a PDM proposal reacts to along the route: forecast objects, lights and stop signs.

Objects move at constant velocity from their current state (PDM-Closed's forecast); each is
projected, at every future step, onto the sampled path ahead of the ego (arc length, signed
lateral offset, path heading), so a proposal's IDM can find its leader with a comparison
instead of a geometric search. Red lights and stop signs are stop points on the path, found
with the rule reactive traffic uses (:func:`cordillera.sim.traffic.reactive_step`).

Shapes: B rollouts, N objects, C candidates, S path samples, T future steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cordillera.scene.types import SignalState
from cordillera.sim.dynamics import wrap_angle
from cordillera.sim.simulator import Simulator
from cordillera.sim.state import SimState
from cordillera.sim.traffic import (
    FAR_GAP_M,
    SIGN_HEADING_TOLERANCE_RAD,
    SIGNAL_LATERAL_TOLERANCE_M,
    STOP_SIGN_HALT_DISTANCE_M,
    STOPPED_SPEED_MPS,
    uniform_path_lookup,
)

SCREEN_TIMES_S = (0.0, 2.0, 4.0, 6.0)
"""Forecast times at which every object's distance to the path is screened to pick the
candidates (a crossing pedestrian is far from the path now, on it in 2 s)."""
MAX_PATH_DISTANCE_M = 8.0
"""Objects farther than this from the path sample they project on are not on the path."""


@dataclass(frozen=True, eq=False)
class Obstacles:
    """What the IDM reacts to along the path, with forecasts (relative to the ego now).

    Attributes:
        index: ``(B, C)`` object index (in N) of each candidate.
        ok: ``(B, C, T)`` the candidate exists and projects onto the path at step t.
        s_m: ``(B, C, T)`` its arc length along the path, from the ego's projection.
        lateral_m: ``(B, C, T)`` its signed offset from the path (positive left).
        speed_along_mps: ``(B, C, T)`` its speed along the path direction.
        length_m, width_m: ``(B, C)`` its box size.
        distance_m: ``(B, C)`` Euclidean distance from the ego now.
        crossing: ``(B, C)`` it moves across the path (more than 45° off it, at > 0.3 m/s).
        speed_mps: ``(B, C)`` its signed speed now.
        light_s_m: ``(B,)`` arc length of the first red (or stoppable yellow) stop point on the
            path, FAR_GAP_M if none; light_index ``(B,)`` the signal, -1 if none;
            light_state ``(B,)`` its :class:`SignalState` (UNKNOWN if none).
        sign_s_m, sign_index: the same for the first stop sign the ego must still halt at.
    """

    index: torch.Tensor
    ok: torch.Tensor
    s_m: torch.Tensor
    lateral_m: torch.Tensor
    speed_along_mps: torch.Tensor
    length_m: torch.Tensor
    width_m: torch.Tensor
    distance_m: torch.Tensor
    crossing: torch.Tensor
    speed_mps: torch.Tensor
    light_s_m: torch.Tensor
    light_index: torch.Tensor
    light_state: torch.Tensor
    sign_s_m: torch.Tensor
    sign_index: torch.Tensor


def _first_stop_point(
    path_xy: torch.Tensor,
    path_heading: torch.Tensor,
    path_s: torch.Tensor,
    points_xy: torch.Tensor,
    points_heading: torch.Tensor,
    active: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B,)`` arc length of the first active stop point on the path, and its index (-1).

    A stop point applies when a path sample passes within the signal tolerance of it, heading
    the same way as its lane (the rule of :func:`cordillera.sim.traffic.reactive_step`).
    Path ``(B, S, 2)``, ``(B, S)``, ``(B, S)``; points ``(B, M, 2)``, ``(B, M)``, ``(B, M)``.
    """
    b = path_xy.shape[0]
    if points_xy.shape[1] == 0:
        return torch.full((b,), FAR_GAP_M, device=path_xy.device), torch.full(
            (b,), -1, dtype=torch.long, device=path_xy.device
        )
    d = torch.linalg.vector_norm(path_xy.unsqueeze(2) - points_xy.unsqueeze(1), dim=-1)
    dh = wrap_angle(path_heading.unsqueeze(2) - points_heading.unsqueeze(1)).abs()
    hit = (d < SIGNAL_LATERAL_TOLERANCE_M) & (dh < SIGN_HEADING_TOLERANCE_RAD)
    hit &= active.unsqueeze(1)
    s = torch.where(hit, path_s.unsqueeze(-1), FAR_GAP_M).amin(1)  # (B, M)
    first, index = s.min(1)
    return first, torch.where(first < FAR_GAP_M, index, -1)


def _project(
    points: torch.Tensor, path_xy: torch.Tensor, path_heading: torch.Tensor, spacing_m: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Project ``points (B, Q, 2)`` on sampled paths ``(B, S, 2)`` (relative coordinates).

    Returns arc length ``(B, Q)`` from the first sample, signed lateral offset (left +),
    the path heading there, and whether the point projects inside the path and near it.
    """
    # |p - q|² by one batched matrix product: no (B, Q, S, 2) temporary.
    d2 = (
        points.square().sum(-1, keepdim=True)
        + path_xy.square().sum(-1).unsqueeze(1)
        - 2.0 * torch.bmm(points, path_xy.transpose(1, 2))
    )
    k = d2.argmin(-1)  # (B, Q)
    q = torch.gather(path_xy, 1, k.unsqueeze(-1).expand(*k.shape, 2))
    h = torch.gather(path_heading, 1, k)
    rel = points - q
    c, s = torch.cos(h), torch.sin(h)
    lon = rel[..., 0] * c + rel[..., 1] * s
    lat = c * rel[..., 1] - s * rel[..., 0]
    last = path_xy.shape[1] - 1
    inside = ((k > 0) | (lon > -spacing_m)) & ((k < last) | (lon < spacing_m))
    ok = inside & (lat.abs() < MAX_PATH_DISTANCE_M)
    return k * spacing_m + lon, lat, h, ok


def find_obstacles(
    sim: Simulator,
    state: SimState,
    s0_m: torch.Tensor,
    steps: int,
    stop_wait_s: torch.Tensor,
    stop_sign_wait_s: float,
    *,
    num_candidates: int,
    path_spacing_m: float,
    path_length_m: float,
    comfort_decel_mps2: float,
) -> tuple[Obstacles, torch.Tensor, torch.Tensor]:
    """The obstacles of each rollout's path over ``steps`` future steps.

    Args:
        sim, state: the simulator and its current state (privileged).
        s0_m: ``(B,)`` the egos' arc lengths along their logged paths.
        steps: future steps to forecast the objects over.
        stop_wait_s: ``(B,)`` how long the ego has stood at a stop sign.
        stop_sign_wait_s: how long it must stand there before going on.
        num_candidates: objects (nearest to the path over the horizon) kept.
        path_spacing_m, path_length_m: the path samples objects are projected on.
        comfort_decel_mps2: a yellow light is stopped for if this deceleration suffices.

    Returns:
        The obstacles and the sampled path ahead (``(B, S, 2)`` local positions, ``(B, S)``
        headings) starting at the ego's projection.
    """
    b, n = state.valid.shape
    dev = s0_m.device
    dt = sim.dt_s
    rows = torch.arange(b, device=dev)
    ego = sim.ego_index
    ego_xy = state.xy_m[rows, ego]
    ego_len = sim.size_lw_m[rows, ego, 0]
    ego_speed = state.speed_mps[rows, ego].clamp_min(0.0)
    num_s = int(path_length_m / path_spacing_m) + 1
    path_s = torch.arange(num_s, device=dev, dtype=torch.float32) * path_spacing_m
    pts, heads = uniform_path_lookup(
        sim.batch, sim.scene_of, (s0_m[:, None] + path_s).unsqueeze(1), ego.view(b, 1)
    )
    path_xy, path_h = pts[:, 0], heads[:, 0]
    rel_path = path_xy - ego_xy[:, None]  # small coordinates keep |p|² exact in float32

    # Constant-velocity forecasts; pick the C objects that come closest to the path.
    obj_ok = state.valid & sim.batch.object_mask.index_select(0, sim.scene_of)
    obj_ok[rows, ego] = False
    vel = state.speed_mps.unsqueeze(-1) * torch.stack(
        [torch.cos(state.heading_rad), torch.sin(state.heading_rad)], -1
    )
    rel_obj = state.xy_m - ego_xy[:, None]
    screen = torch.tensor(SCREEN_TIMES_S, device=dev)
    future = rel_obj.unsqueeze(2) + vel.unsqueeze(2) * screen.view(1, 1, -1, 1)  # (B, N, 4, 2)
    _, lat, _, on = _project(future.view(b, -1, 2), rel_path, path_h, path_spacing_m)
    half_w = 0.5 * sim.size_lw_m[..., 1]
    key = torch.where(on, lat.abs(), torch.inf).view(b, n, -1).amin(-1) - half_w
    key = torch.where(obj_ok, key, torch.inf)
    c = min(num_candidates, n)
    key_c, cand = torch.topk(key, c, dim=1, largest=False)
    cand_ok = torch.isfinite(key_c)

    t = torch.arange(steps, device=dev, dtype=torch.float32) * dt
    c_xy = torch.gather(rel_obj, 1, cand.unsqueeze(-1).expand(b, c, 2))
    c_vel = torch.gather(vel, 1, cand.unsqueeze(-1).expand(b, c, 2))
    c_xy_t = c_xy.unsqueeze(2) + c_vel.unsqueeze(2) * t.view(1, 1, -1, 1)  # (B, C, T, 2)
    s_t, lat_t, h_t, ok_t = _project(c_xy_t.view(b, -1, 2), rel_path, path_h, path_spacing_m)
    c_speed = torch.gather(state.speed_mps, 1, cand)
    c_heading = torch.gather(state.heading_rad, 1, cand)
    along = c_speed.unsqueeze(-1) * torch.cos(c_heading.unsqueeze(-1) - h_t.view(b, c, steps))
    size = torch.gather(sim.size_lw_m, 1, cand.unsqueeze(-1).expand(b, c, 2))
    h0 = h_t.view(b, c, steps)[..., 0]
    crossing = (c_speed.abs() > STOPPED_SPEED_MPS) & (
        torch.sin(c_heading - h0).abs() > math.sin(math.pi / 4)
    )

    # Lights in their current state; stop signs until the ego has halted at them long enough.
    u = sim.scene_of
    bt = sim.batch
    step = state.step.clamp(max=bt.max_steps - 1)
    num_sig = bt.signal_xy_m.shape[1]
    sig = torch.arange(num_sig, device=dev)[None]
    sig_state = bt.signal_state[u[:, None], sig, step[:, None]] if num_sig else None  # (B, S)
    light_s = torch.full((b,), FAR_GAP_M, device=dev)
    light_i = torch.full((b,), -1, dtype=torch.long, device=dev)
    light_state = torch.full((b,), int(SignalState.UNKNOWN), dtype=torch.long, device=dev)
    if sig_state is not None:
        # Only the heads that control the ego's own way (not a red arrow beside its green).
        sig_valid = bt.signal_valid.index_select(0, u) & bt.signal_applies[u, sim.ego_index]
        red = (sig_state == int(SignalState.RED)) | (sig_state == int(SignalState.FLASHING_RED))
        yellow = sig_state == int(SignalState.YELLOW)
        args = (
            path_xy,
            path_h,
            path_s.expand(b, -1),
            bt.signal_xy_m.index_select(0, u),
            bt.signal_heading_rad.index_select(0, u),
        )
        red_s, red_i = _first_stop_point(*args, red & sig_valid)
        yel_s, yel_i = _first_stop_point(*args, yellow & sig_valid)
        # Yellow: stop only where a comfortable stop is still possible (as reactive traffic).
        can_stop = yel_s - 0.5 * ego_len > ego_speed**2 / (2 * comfort_decel_mps2)
        use_yel = can_stop & (yel_s < red_s)
        light_s = torch.where(use_yel, yel_s, red_s)
        light_i = torch.where(use_yel, yel_i, red_i)
        light_state = torch.where(
            light_i >= 0, torch.gather(sig_state, 1, light_i.clamp_min(0)[:, None])[:, 0], 0
        )
    sign_s, sign_i = _first_stop_point(
        path_xy,
        path_h,
        path_s.expand(b, -1),
        bt.stop_sign_xy_m.index_select(0, u),
        bt.stop_sign_heading_rad.index_select(0, u),
        bt.stop_sign_valid.index_select(0, u),
    )
    done = stop_wait_s >= stop_sign_wait_s
    sign_s = torch.where(done, FAR_GAP_M, sign_s)
    sign_i = torch.where(done, -1, sign_i)

    obstacles = Obstacles(
        index=cand,
        ok=ok_t.view(b, c, steps) & cand_ok.unsqueeze(-1),
        s_m=s_t.view(b, c, steps),
        lateral_m=lat_t.view(b, c, steps),
        speed_along_mps=along,
        length_m=size[..., 0],
        width_m=size[..., 1],
        distance_m=torch.linalg.vector_norm(c_xy, dim=-1),
        crossing=crossing,
        speed_mps=c_speed,
        light_s_m=light_s,
        light_index=light_i,
        light_state=light_state,
        sign_s_m=sign_s,
        sign_index=sign_i,
    )
    return obstacles, path_xy, path_h


def stop_sign_wait(
    obstacles: Obstacles,
    ego_speed_mps: torch.Tensor,
    ego_length_m: torch.Tensor,
    wait_s: torch.Tensor,
    elapsed_s: float,
    stop_sign_wait_s: float,
) -> torch.Tensor:
    """``(B,)`` time the ego has stood at a stop sign, after ``elapsed_s`` more seconds.

    Counting follows reactive traffic: it runs while the ego stands within the halt distance
    of the sign, and after the wait until the ego is clear of it; otherwise it is reset.
    """
    gap = obstacles.sign_s_m - 0.5 * ego_length_m
    halted = (gap < STOP_SIGN_HALT_DISTANCE_M) & (ego_speed_mps.abs() < STOPPED_SPEED_MPS)
    waited = wait_s >= stop_sign_wait_s
    # Once waited, the sign is hidden from the obstacles; keep the count until it is behind.
    keep = halted | waited & (gap > -2 * STOP_SIGN_HALT_DISTANCE_M)
    return torch.where(keep, wait_s + elapsed_s, 0.0)


__all__ = ["Obstacles", "find_obstacles", "stop_sign_wait"]
