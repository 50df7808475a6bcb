"""Lane-family meta-actions: lane keep, lane changes, slight shifts and turns, from the map.

Each valid pose is placed on its lane: the centerline segment minimising distance plus
``lane_heading_cost_m_per_rad`` times the heading difference (within ``max_lane_distance_m``
and ``max_lane_heading_diff_rad``; the heading term picks the right connector where a junction's
connectors overlap). From the signed offset to that centerline:

* **lateral position** ``Y``: the offset made continuous by removing its jump wherever the
  matched lane changes. A move to a side lane jumps by about a lane width (from +w/2 of the old
  centerline to -w/2 of the new one, for a move to the left); a successor or connector joins
  with no jump. Jumps of at least ``lane_switch_min_lane_fraction`` lane widths count as lane
  switches (+1 left, -1 right), so flicker between two lanes while straddling the line cancels.
* **lateral moves**: runs of steps whose smoothed lateral speed ``dY/dt`` exceeds
  ``lateral_motion_min_speed_mps`` in one direction. A run whose net ``|dY|`` reaches
  ``slight_shift_min_lane_fraction`` lane widths is a lane change if the lane-switch count
  moved the same way during it, or if ``|dY|`` reaches ``lane_change_min_lane_fraction``
  lane widths even without a mapped lane to move into (overtaking through the oncoming lane);
  otherwise it is a slight shift. Everything else is lane keeping.
* **turns**: runs of forward motion with yaw rate above ``turn_min_yaw_rate_rps`` in one
  direction (a vehicle that halts mid-turn, yielding, stays in the run), whose net heading
  change reaches ``turn_min_heading_change_rad``, and, where the map has successor edges,
  which either pass through a junction lane (a fork or merge of the lane graph, or a lane
  entering or leaving one) or are as tight as an intersection turn (mean curvature at least
  ``sharp_steer_curvature_1pm``: dedicated turn lanes are often mapped as plain chains). A
  gentle bend of a single road is lane keeping. A turn overrides the lateral-move labels.

The map query runs on the CPU in numpy (chunks of consecutive queries against the segments
near them, as :func:`cordillera.scene.derive.nearest_lane` does); everything else is
vectorised torch on the input's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from cordillera.policy.meta_actions import (
    NO_LABEL,
    LaneAction,
    MetaActionConfig,
    TensorLike,
    as_inputs,
    debounce,
    derive_kinematics,
    local_poly,
    run_ids,
    steps_of,
)
from cordillera.scene.model import RoadMap

_QUERY_CHUNK = 128  # queries per map-query chunk: bounds the (queries x segments) temporaries


@dataclass(frozen=True, eq=False)
class LaneLabels:
    """Per-step lane labels of B trajectories.

    Attributes:
        lane: ``(B, T)`` int8 :class:`LaneAction`; :data:`NO_LABEL` at invalid input steps,
            ``LANE_KEEP`` at valid steps the map could not place on a lane.
        valid: ``(B, T)`` bool, steps placed on a lane (all False when the map has no lanes).
        lane_index: ``(B, T)`` int32 index of the matched lane in ``RoadMap``, or -1.
        lateral_offset_m: ``(B, T)`` signed distance from that lane's centerline, positive to
            its left; 0 where unmatched.
    """

    lane: torch.Tensor
    valid: torch.Tensor
    lane_index: torch.Tensor
    lateral_offset_m: torch.Tensor


def project_to_lanes(
    road_map: RoadMap,
    xy_m: npt.NDArray[np.float64],
    heading_rad: npt.NDArray[np.float64],
    config: MetaActionConfig,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float64]]:
    """The lane of each of Q poses and the signed offset from its centerline.

    Args:
        road_map: the map.
        xy_m: ``(Q, 2)`` positions, world frame; consecutive queries should be close (one
            trajectory in order) so that each chunk tests few segments.
        heading_rad: ``(Q,)`` headings.
        config: ``max_lane_distance_m``, ``max_lane_heading_diff_rad``,
            ``lane_heading_cost_m_per_rad``.

    Returns:
        ``(Q,)`` int32 lane index (-1 where none qualifies) and ``(Q,)`` float64 offset,
        positive to the left of the lane's direction (0 where unmatched).
    """
    q = len(xy_m)
    lane = np.full(q, -1, np.int32)
    offset = np.zeros(q, np.float64)
    a, b, owner = road_map.lanes.segments()
    a2, ab = a[:, :2], b[:, :2] - a[:, :2]
    len2 = (ab**2).sum(-1)
    keep = len2 > 1e-12  # repeated points have no direction
    a2, ab, len2, owner = a2[keep], ab[keep], len2[keep], owner[keep]
    if q == 0 or len(owner) == 0:
        return lane, offset
    seg_len = np.sqrt(len2)
    seg_heading = np.arctan2(ab[:, 1], ab[:, 0])
    reach = config.max_lane_distance_m
    lo = np.minimum(a2, a2 + ab) - reach
    hi = np.maximum(a2, a2 + ab) + reach
    for s in range(0, q, _QUERY_CHUNK):  # chunks of queries, not steps: bounds memory
        p, h = xy_m[s : s + _QUERY_CHUNK], heading_rad[s : s + _QUERY_CHUNK]
        near = np.nonzero(np.all(lo <= p.max(0), 1) & np.all(hi >= p.min(0), 1))[0]
        if len(near) == 0:
            continue
        rel = p[:, None, :] - a2[near][None]  # (c, n, 2)
        seg = ab[near][None]
        t = np.clip((rel * seg).sum(-1) / len2[near], 0.0, 1.0)
        dist = np.linalg.norm(rel - t[..., None] * seg, axis=-1)
        lateral = (seg[..., 0] * rel[..., 1] - seg[..., 1] * rel[..., 0]) / seg_len[near]
        dh = np.abs(np.mod(seg_heading[near][None] - h[:, None] + np.pi, 2 * np.pi) - np.pi)
        ok = (dh <= config.max_lane_heading_diff_rad) & (dist <= reach)
        cost = np.where(ok, dist + config.lane_heading_cost_m_per_rad * dh, np.inf)
        k = cost.argmin(1)
        rows = np.arange(len(k))
        found = np.isfinite(cost[rows, k])
        lane[s : s + _QUERY_CHUNK] = np.where(found, owner[near][k], -1)
        offset[s : s + _QUERY_CHUNK] = np.where(found, lateral[rows, k], 0.0)
    return lane, offset


def junction_lanes(road_map: RoadMap) -> npt.NDArray[np.bool_]:
    """``(L,)`` lanes at a junction: forks (2+ successors), merges (2+ predecessors), and the
    lanes leaving a fork or entering a merge (the connectors through an intersection)."""
    n = road_map.num_lanes
    edges = road_map.lane_successors.astype(np.int64)
    fork = np.bincount(edges[:, 0], minlength=n) >= 2
    merge = np.bincount(edges[:, 1], minlength=n) >= 2
    out = fork | merge
    out[edges[fork[edges[:, 0]], 1]] = True
    out[edges[merge[edges[:, 1]], 0]] = True
    return out


def _run_span(runs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices (into ``(B * T,)``) of the first and last step of each step's run."""
    b, t = runs.shape
    flat = torch.arange(b * t, device=runs.device)
    r = runs.flatten()
    first = torch.full((b * t,), b * t, device=runs.device).scatter_reduce(0, r, flat, "amin")
    last = torch.full((b * t,), -1, device=runs.device).scatter_reduce(0, r, flat, "amax")
    return first[runs], last[runs]


def _close_gaps(sense: torch.Tensor, min_steps: int) -> torch.Tensor:
    """``sense (B, T)`` in {-1, 0, 1} with runs of 0 shorter than ``min_steps`` filled where
    both neighbours have the same sign: a rate that dips below its threshold for a moment
    does not split one manoeuvre into two."""
    b, t = sense.shape
    runs, length = run_ids(sense)
    first, last = _run_span(runs)
    flat = sense.flatten()
    col_first, col_last = first % t, last % t
    before = flat[(first - 1).clamp(min=0)]
    after = flat[(last + 1).clamp(max=b * t - 1)]
    gap = (sense == 0) & (length < min_steps) & (col_first > 0) & (col_last < t - 1)
    return torch.where(gap & (before == after) & (before != 0), before, sense)


def _run_any(runs: torch.Tensor, flag: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` whether ``flag`` is set anywhere in each step's run."""
    n = runs.numel()
    hit = torch.zeros(n, dtype=torch.long, device=runs.device)
    hit = hit.scatter_reduce(0, runs.flatten(), flag.flatten().long(), "amax")
    return hit[runs].bool()


def _lateral_moves(
    lane: torch.Tensor,
    offset: torch.Tensor,
    matched: torch.Tensor,
    dt: float,
    cfg: MetaActionConfig,
) -> torch.Tensor:
    """``(B, T)`` long lane-keep / lane-change / slight-shift label of each step."""
    b, t = lane.shape
    width = cfg.lane_width_m
    idx = torch.arange(t, device=lane.device).expand(b, t)
    # The previous matched step of each step (strictly before it).
    prev = F.pad(torch.where(matched, idx, -1).cummax(1).values[:, :-1], (1, 0), value=-1)
    pc = prev.clamp(min=0)
    switched = matched & (prev >= 0) & (lane != lane.gather(1, pc))
    jump = torch.where(switched, offset - offset.gather(1, pc), 0.0)
    side = switched & (jump.abs() >= cfg.lane_switch_min_lane_fraction * width)
    step = torch.where(side, -torch.sign(jump), 0.0)  # +1: moved into the lane on the left
    count = torch.cumsum(step, 1)
    y = offset - torch.cumsum(jump, 1)
    half = max(1, steps_of(cfg.smoothing_window_s, dt) // 2)
    wy = matched.to(y.dtype)
    v_lat = local_poly(y.unsqueeze(-1), wy, half)[0][:, :, 0, 1] / dt
    y_s = local_poly(y.unsqueeze(-1), wy, half, degree=2)[0][:, :, 0, 0]  # no lag at the ends
    moving = matched & (v_lat.abs() >= cfg.lateral_motion_min_speed_mps)
    sense = _close_gaps(
        torch.where(moving, torch.sign(v_lat), 0.0).long(), steps_of(cfg.min_segment_s, dt)
    )
    moving = matched & (sense != 0)
    runs, _ = run_ids(sense)
    first, last = _run_span(runs)
    dy = y_s.flatten()[last] - y_s.flatten()[first]
    moved = count.flatten()[last] - count.flatten()[first] + step.flatten()[first]
    big = moving & (dy.abs() >= cfg.slight_shift_min_lane_fraction * width)
    change = big & (
        (moved * torch.sign(dy) > 0) | (dy.abs() >= cfg.lane_change_min_lane_fraction * width)
    )
    left = dy > 0
    out = torch.full_like(lane, int(LaneAction.LANE_KEEP), dtype=torch.long)
    shift = torch.where(left, int(LaneAction.SLIGHT_SHIFT_LEFT), int(LaneAction.SLIGHT_SHIFT_RIGHT))
    out = torch.where(big, shift, out)
    lc = torch.where(left, int(LaneAction.LEFT_LANE_CHANGE), int(LaneAction.RIGHT_LANE_CHANGE))
    return torch.where(change, lc, out)


def label_lanes(
    xy_m: TensorLike,
    heading_rad: TensorLike | None,
    dt_s: float,
    valid: TensorLike | None,
    road_map: RoadMap,
    config: MetaActionConfig | None = None,
) -> LaneLabels:
    """Per-step lane labels of B trajectories on ``road_map`` (see the module docstring).

    Args:
        xy_m: ``(B, T, 2)`` positions, in the map's world frame.
        heading_rad: ``(B, T)`` vehicle headings, CCW from +x, or None for the direction of
            motion.
        dt_s: seconds between steps.
        valid: ``(B, T)`` bool, or None for all valid.
        road_map: the map; without lanes every valid step is ``LANE_KEEP`` with ``valid``
            False (no lane information, as opposed to a lane kept).
        config: thresholds; defaults to :class:`MetaActionConfig` ``()``.
    """
    cfg = config or MetaActionConfig()
    kin = derive_kinematics(xy_m, heading_rad, dt_s, valid, cfg)
    dt = float(dt_s)
    xy, _, _ = as_inputs(xy_m, heading_rad, valid)
    ok = kin.valid
    b, t = ok.shape
    dev, dtype = xy.device, xy.dtype
    keep = torch.where(ok, int(LaneAction.LANE_KEEP), NO_LABEL).to(torch.int8)
    ok_np = ok.cpu().numpy()
    lane_np = np.full((b, t), -1, np.int32)
    off_np = np.zeros((b, t), np.float64)
    if road_map.num_lanes > 0 and ok_np.any():
        q_xy = xy.detach().cpu().numpy().astype(np.float64)[ok_np]
        q_h = kin.heading_rad.detach().cpu().numpy().astype(np.float64)[ok_np]
        lane_np[ok_np], off_np[ok_np] = project_to_lanes(road_map, q_xy, q_h, cfg)
    lane = torch.as_tensor(lane_np, device=dev)
    offset = torch.as_tensor(off_np, device=dev).to(dtype)
    matched = lane >= 0
    if not bool(matched.any()):
        return LaneLabels(keep, matched, lane, offset)

    labels = _lateral_moves(lane, offset, matched, dt, cfg)
    min_steps = steps_of(cfg.min_segment_s, dt)
    # Turns: runs of forward motion turning one way; standing steps (halting mid-turn to
    # yield) continue the state of the last moving step so they do not split the run.
    idx = torch.arange(t, device=dev).expand(b, t)
    u, omega = kin.speed_mps, kin.yaw_rate_rps
    standing = ok & (u.abs() < cfg.stop_speed_mps)
    turning = ok & (u >= cfg.stop_speed_mps) & (omega.abs() >= cfg.turn_min_yaw_rate_rps)
    sense = torch.where(turning, torch.sign(omega), 0.0).long()
    src = torch.where(ok & ~standing, idx, -1).cummax(1).values
    sense = torch.where(standing & (src >= 0), sense.gather(1, src.clamp(min=0)), sense)
    sense = _close_gaps(sense, min_steps)
    runs, _ = run_ids(sense)
    first, last = _run_span(runs)
    dpsi = kin.heading_rad.flatten()[last] - kin.heading_rad.flatten()[first]
    turn = (sense != 0) & (dpsi.abs() >= cfg.turn_min_heading_change_rad)
    if cfg.turn_needs_junction and len(road_map.lane_successors) > 0:
        junction = torch.as_tensor(junction_lanes(road_map), device=dev)
        at_junction = _run_any(runs, matched & junction[lane.clamp(min=0).long()])
        # Dedicated turn lanes are often mapped as a plain chain (CommonRoad slip lanes):
        # a run as tight as an intersection turn is a turn wherever it is.
        path_m = torch.cumsum(u.abs() * dt, 1).flatten()
        tight = dpsi.abs() >= cfg.sharp_steer_curvature_1pm * (path_m[last] - path_m[first])
        turn &= at_junction | tight
    turn_label = torch.where(dpsi > 0, int(LaneAction.TURN_LEFT), int(LaneAction.TURN_RIGHT))
    labels = torch.where(turn, turn_label, labels)
    labels = torch.where(ok, labels, NO_LABEL)
    labels = debounce(labels, min_steps).to(torch.int8)
    return LaneLabels(labels, matched, lane, torch.where(matched, offset, 0.0))
