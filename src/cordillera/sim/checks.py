"""Per-step rule and safety checks of the agents of interest, from which metrics are computed.

Every step the simulator calls :func:`compute_checks` for M agents of interest per rollout
(the ego in ego mode; every controlled vehicle in self-play) and records the result. The
checks follow the public definitions of NAVSIM's PDM score (``pdm_scorer.py``,
``pdm_scorer_utils.py``) re-expressed on batched tensors; see ``docs/metrics.md`` for every
threshold and its source.

Cost: per step everything is ``O(B·M·N)`` for one centre-distance pass over all objects, then
``O(B·M·K)`` exact box tests on the K nearest candidates; no ``(B, M, N, big)`` temporaries.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from cordillera.errors import CordilleraError
from cordillera.scene.types import ObjectType, SignalState
from cordillera.sim.batch import SceneBatch
from cordillera.sim.geometry import (
    box_corners,
    boxes_overlap,
    grid_lookup,
    lane_candidates,
    nearest_in_range,
    project_onto_polyline,
    swept_boxes_contact,
    wrap_angle,
)
from cordillera.sim.state import SimState

STOPPED_SPEED_MPS = 0.05
"""Ego / track counted as stopped in collision classification (NAVSIM get_collision_type)."""
TTC_STOPPED_SPEED_MPS = 5e-3
"""Below this ego speed no TTC violation is counted (NAVSIM PDMScorerConfig)."""
TTC_HORIZON_S = 1.0
"""Constant-velocity look-ahead of the TTC check (NAVSIM future_collision_horizon_window)."""
AHEAD_COS = math.cos(math.radians(30.0))
"""nuPlan is_agent_ahead: relative angle from the ego's rear axle below 30°."""
BEHIND_COS = math.cos(math.radians(150.0))
"""nuPlan is_agent_behind: relative angle from the ego's rear axle above 150°."""
REAR_AXLE_FRACTION = 1.461 / 5.176
"""Rear-axle-to-centre distance over length of nuPlan's reference vehicle (Pacifica): where
the rear axle sits on boxes that give no axle position."""
NUM_CANDIDATES = 16
"""Objects per agent tested exactly for collision and TTC (nearest by reachable gap)."""
LANE_HALF_WIDTH_M = 1.8
"""Half a typical 3.6 m lane: the in-one-lane test's bound (lane samples carry no widths)."""
AGAINST_TRAFFIC_LATERAL_M = 2.5
ON_LANE_MAX_DISTANCE_M = 10.0
NO_LANE_DEVIATION_M = 1.0e3
"""Lane deviation reported when no same-direction lane is within 10 m (``on_lane`` False)."""
SIGNAL_LATERAL_TOLERANCE_M = 2.0
SIGNAL_HEADING_TOLERANCE_RAD = math.pi / 4
SAME_DIRECTION_RAD = math.pi / 2
ALIGNED_RAD = math.pi / 4


@dataclass(frozen=True, eq=False)
class StepChecks:
    """Checks of M agents of interest in B rollouts at one step (or stacked, ``(B, T, M)``).

    Every field is ``(B, M)``; positions in the scene's local frame. Agents that do not exist
    at the step read False / 0 (``ttc_s`` inf, ``lane_deviation_m`` 1e3).

    Attributes:
        collision: the agent's box overlaps another valid object's box.
        collision_object: long index (in N) of the object hit (the at-fault one if any), -1.
        at_fault_collision: a contact that NAVSIM classifies as the agent's fault (see
            ``docs/metrics.md``); metrics apply the once-per-object rule across steps.
        offroad: a box corner lies outside the drivable grid.
        against_traffic: an opposite-direction lane within 2.5 m and no same-direction one.
        lane_deviation_m: distance to the nearest lane centreline within 45° of the heading.
        on_lane: such a lane lies within 10 m (``lane_deviation_m`` meaningful).
        red_light_violation: the front crossed a red signal's stop point during the step.
        route_progress_m: arc length of the agent's projection on the route (ego only; 0
            for other agents).
        ttc_s: earliest predicted at-fault contact within 1 s, inf if none.
        ttc_violation: ``ttc_s`` is finite.
        accel_mps2, jerk_mps3: longitudinal acceleration and its rate (0 on the first step).
        yaw_rate_rps, yaw_accel_rps2: yaw rate and its rate (0 on the first step).
        lateral_accel_mps2: ``speed * yaw_rate``.
        speed_mps: signed speed along the heading.
        distance_to_log_m: distance to the agent's own logged position at this step.
        log_valid: the logged position exists (``distance_to_log_m`` meaningful).
    """

    collision: torch.Tensor
    collision_object: torch.Tensor
    at_fault_collision: torch.Tensor
    offroad: torch.Tensor
    against_traffic: torch.Tensor
    lane_deviation_m: torch.Tensor
    on_lane: torch.Tensor
    red_light_violation: torch.Tensor
    route_progress_m: torch.Tensor
    ttc_s: torch.Tensor
    ttc_violation: torch.Tensor
    accel_mps2: torch.Tensor
    jerk_mps3: torch.Tensor
    yaw_rate_rps: torch.Tensor
    yaw_accel_rps2: torch.Tensor
    lateral_accel_mps2: torch.Tensor
    speed_mps: torch.Tensor
    distance_to_log_m: torch.Tensor
    log_valid: torch.Tensor

    @staticmethod
    def stack(steps: Sequence[StepChecks], dim: int = 1) -> StepChecks:
        """Stack per-step checks ``(B, M)`` into ``(B, T, M)`` (``dim=1``)."""
        if not steps:
            raise CordilleraError("cannot stack an empty sequence of StepChecks")
        return StepChecks(
            **{
                f.name: torch.stack([getattr(s, f.name) for s in steps], dim=dim)
                for f in dataclasses.fields(StepChecks)
            }
        )

    def validate(self) -> None:
        """Raise :class:`CordilleraError` unless every field has the shape of ``collision``."""
        shape = tuple(self.collision.shape)
        for f in dataclasses.fields(self):
            got = tuple(getattr(self, f.name).shape)
            if got != shape:
                raise CordilleraError(f"StepChecks.{f.name} has shape {got}, expected {shape}")


def _take(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``x (B, N[, 2])`` at ``index (B, ...)`` along dim 1 -> ``(B, ...[, 2])``."""
    b = index.shape[0]
    flat = index.reshape(b, -1)
    if x.ndim == 3:
        out = torch.gather(x, 1, flat.unsqueeze(-1).expand(b, flat.shape[1], x.shape[-1]))
        return out.view(*index.shape, x.shape[-1])
    return torch.gather(x, 1, flat).view(index.shape)


def _unit(heading: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.cos(heading), torch.sin(heading)], dim=-1)


def _cos_from_rear_axle(
    points: torch.Tensor, rear_xy: torch.Tensor, direction: torch.Tensor
) -> torch.Tensor:
    """Cosine of nuPlan's relative angle of ``points (B, M, K, 2)`` seen from the agents'
    rear axles along their heading (1 — "ahead" — where a point sits on the axle)."""
    vec = points - rear_xy.unsqueeze(2)
    norm = vec.norm(dim=-1)
    cos = (vec * direction.unsqueeze(2)).sum(-1) / norm.clamp_min(1e-9)
    return torch.where(norm > 1e-9, cos, 1.0)


def _candidates(
    xy: torch.Tensor,
    agent_index: torch.Tensor,
    state: SimState,
    obj_ok: torch.Tensor,
    obj_lw: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, M, K)`` objects most able to touch each agent within the TTC horizon.

    Ranked by a lower bound of the gap: centre distance minus the object's circumradius and
    the distance it can travel in the horizon, so a long bus or a fast car is not crowded
    out by nearby pedestrians. Self and invalid objects rank last (inf).
    """
    n = state.num_objects
    dx = xy[..., 0:1] - state.xy_m[:, None, :, 0]
    dy = xy[..., 1:2] - state.xy_m[:, None, :, 1]
    reach = 0.5 * obj_lw.norm(dim=-1) + state.speed_mps.abs() * TTC_HORIZON_S
    reach = torch.where(obj_ok, reach, -math.inf)  # invalid objects rank last
    key = torch.sqrt(dx * dx + dy * dy).sub_(reach.unsqueeze(1))
    key.scatter_(2, agent_index.unsqueeze(-1), math.inf)  # and so does the agent itself
    key_k, cand = torch.topk(key, min(NUM_CANDIDATES, n), dim=-1, largest=False)
    return cand, torch.isfinite(key_k)


def _red_light(
    batch: SceneBatch,
    scene_of: torch.Tensor,
    agent_index: torch.Tensor,
    state: SimState,
    front: torch.Tensor,
    prev_front: torch.Tensor,
    heading: torch.Tensor,
) -> torch.Tensor:
    """``(B, M)`` the front crossed (behind -> past) a red stop point of an aligned signal."""
    b, m = heading.shape
    s = batch.signal_valid.shape[1]
    if s == 0:
        return torch.zeros(b, m, dtype=torch.bool, device=heading.device)
    t = state.step.clamp(0, batch.max_steps - 1)
    sig_state = batch.signal_state[scene_of[:, None], torch.arange(s, device=t.device), t[:, None]]
    red = (sig_state == int(SignalState.RED)) | (sig_state == int(SignalState.FLASHING_RED))
    red = red & batch.signal_valid.index_select(0, scene_of)
    sxy = batch.signal_xy_m.index_select(0, scene_of).unsqueeze(1)
    sh = batch.signal_heading_rad.index_select(0, scene_of).unsqueeze(1)
    sdir = _unit(sh)
    off_now = front.unsqueeze(2) - sxy
    lon_now = (off_now * sdir).sum(-1)
    lon_prev = ((prev_front.unsqueeze(2) - sxy) * sdir).sum(-1)
    lat_now = sdir[..., 0] * off_now[..., 1] - sdir[..., 1] * off_now[..., 0]
    aligned = wrap_angle(heading.unsqueeze(-1) - sh).abs() <= SIGNAL_HEADING_TOLERANCE_RAD
    crossed = (lon_prev <= 0) & (lon_now > 0) & (lat_now.abs() <= SIGNAL_LATERAL_TOLERANCE_M)
    applies = batch.signal_applies[scene_of[:, None], agent_index]  # (B, M, S)
    return (crossed & aligned & red.unsqueeze(1) & applies).any(-1)


def compute_checks(
    batch: SceneBatch,
    scene_of: torch.Tensor,
    agent_index: torch.Tensor,
    prev: SimState,
    state: SimState,
    prev_checks: StepChecks | None,
) -> StepChecks:
    """Checks of agents ``agent_index (B, M)`` (long, into N) at ``state``, the step after
    ``prev``; ``scene_of (B,)`` maps rollouts to scenes of ``batch``; ``prev_checks`` (the
    previous step's result, None on the first step) gives jerk and yaw acceleration."""
    b = agent_index.shape[0]
    alive = _take(state.valid, agent_index)
    xy, h = _take(state.xy_m, agent_index), _take(state.heading_rad, agent_index)
    v = _take(state.speed_mps, agent_index)
    lw = batch.size_lw_m[scene_of[:, None], agent_index]
    direction = _unit(h)
    rear = xy - REAR_AXLE_FRACTION * lw[..., 0:1] * direction
    front = xy + 0.5 * lw[..., 0:1] * direction

    # Map: drivable area; nearest lanes in three heading classes.
    corners = box_corners(xy, h, lw)
    inside = grid_lookup(
        batch.drivable_flat,
        batch.grid_offset,
        batch.grid_hw,
        batch.grid_origin_xy_m,
        batch.grid_resolution_m,
        scene_of,
        corners,
    )
    offroad = alive & ~inside.all(-1)
    # The aligned lane (<= 45°) is searched among the same-direction candidates.
    same_dir, opposite_dir = lane_candidates(
        xy,
        h,
        batch.lane_xy_m,
        batch.lane_heading_rad,
        batch.lane_point_valid,
        [(-1.0, SAME_DIRECTION_RAD), (SAME_DIRECTION_RAD, math.pi)],
        scene_of=scene_of,
    )
    aligned = nearest_in_range(xy, h, same_dir, (-1.0, ALIGNED_RAD))
    same = nearest_in_range(xy, h, same_dir, (-1.0, SAME_DIRECTION_RAD))
    opposite = nearest_in_range(xy, h, opposite_dir, (SAME_DIRECTION_RAD, math.pi))
    on_lane = alive & aligned[3] & (aligned[1] <= ON_LANE_MAX_DISTANCE_M)
    lane_deviation = torch.where(on_lane, aligned[1], NO_LANE_DEVIATION_M)
    same_near = same[3] & (same[1] <= AGAINST_TRAFFIC_LATERAL_M)
    opposite_near = opposite[3] & (opposite[1] <= AGAINST_TRAFFIC_LATERAL_M)
    against = alive & opposite_near & ~same_near
    # NAVSIM blames lateral contacts only on an ego "in multiple lanes or non-drivable area";
    # without lane polygons, "in one lane" is: the box fits the nearest aligned lane's width.
    one_lane = on_lane & (aligned[1] <= (LANE_HALF_WIDTH_M - 0.5 * lw[..., 1]).clamp_min(0.0))
    exposed = (offroad | ~one_lane).unsqueeze(-1)

    # Objects: K candidates, exact overlap, NAVSIM collision classification.
    obj_ok = state.valid & batch.object_mask.index_select(0, scene_of)
    obj_lw_all = batch.size_lw_m.index_select(0, scene_of)
    cand, cand_ok = _candidates(xy, agent_index, state, obj_ok, obj_lw_all)
    c_xy, c_h = _take(state.xy_m, cand), _take(state.heading_rad, cand)
    c_v, c_lw = _take(state.speed_mps, cand), _take(obj_lw_all, cand)
    c_type = batch.object_type[scene_of[:, None, None], cand]
    a_xy, a_h, a_lw = xy.unsqueeze(2), h.unsqueeze(2), lw.unsqueeze(2)
    hit = boxes_overlap(a_xy, a_h, a_lw, c_xy, c_h, c_lw) & cand_ok & alive.unsqueeze(-1)
    bumper_lw = torch.stack([torch.zeros_like(lw[..., 1]), lw[..., 1]], -1).unsqueeze(2)
    front_hit = boxes_overlap(front.unsqueeze(2), a_h, bumper_lw, c_xy, c_h, c_lw)
    cos_now = _cos_from_rear_axle(c_xy, rear, direction)
    track_stopped = (c_v.abs() <= STOPPED_SPEED_MPS) | (c_type == int(ObjectType.OTHER))
    ego_moving = (v.abs() > STOPPED_SPEED_MPS).unsqueeze(-1)
    fault = hit & ego_moving & (track_stopped | ((cos_now >= BEHIND_COS) & (front_hit | exposed)))
    pick = (hit.long() + fault.long()).argmax(-1, keepdim=True)  # first at-fault, else first hit
    collision = hit.any(-1)
    collision_object = torch.where(collision, torch.gather(cand, 2, pick).squeeze(-1), -1)

    # TTC: constant velocity (agent forward only), closed-form contact time, NAVSIM's filter.
    vel_a = (v.clamp_min(0.0).unsqueeze(-1) * direction).unsqueeze(2)
    vel_c = c_v.unsqueeze(-1) * _unit(c_h)
    t_in, t_out = swept_boxes_contact(a_xy, a_h, a_lw, vel_a, c_xy, c_h, c_lw, vel_c)
    future = cand_ok & ~hit & (t_in > 0) & (t_in <= t_out) & (t_in <= TTC_HORIZON_S)
    t_hit = torch.where(future, t_in, 0.0).unsqueeze(-1)
    cos_then = _cos_from_rear_axle(c_xy + vel_c * t_hit, rear, direction)
    blame = (cos_then > AHEAD_COS) | (exposed & (cos_then >= BEHIND_COS))
    moving = alive & (v >= TTC_STOPPED_SPEED_MPS)
    counted = future & blame & moving.unsqueeze(-1)
    ttc = torch.where(counted, t_in, math.inf).amin(-1)

    # Signals, route, log, kinematics.
    prev_h = _take(prev.heading_rad, agent_index)
    prev_front = _take(prev.xy_m, agent_index) + 0.5 * lw[..., 0:1] * _unit(prev_h)
    red = _red_light(batch, scene_of, agent_index, state, front, prev_front, h)
    red = red & alive & _take(prev.valid, agent_index)
    is_ego = agent_index == batch.ego_index.index_select(0, scene_of).unsqueeze(1)
    col = is_ego.long().argmax(1).view(b, 1, 1).expand(b, 1, 2)
    s_route, _, _ = project_onto_polyline(
        torch.gather(xy, 1, col),
        batch.route_xy_m,
        batch.route_s_m,
        batch.route_valid,
        scene_of=scene_of,
    )
    t = state.step.clamp(0, batch.max_steps - 1).unsqueeze(1)
    log_xy = batch.log_xy_m[scene_of[:, None], agent_index, t]
    in_log = (state.step < batch.num_steps.index_select(0, scene_of)).unsqueeze(1)
    log_ok = batch.log_valid[scene_of[:, None], agent_index, t] & in_log & alive
    accel = torch.where(alive, _take(state.accel_mps2, agent_index), 0.0)
    yaw_rate = torch.where(alive, _take(state.yaw_rate_rps, agent_index), 0.0)
    if prev_checks is None:
        jerk, yaw_accel = torch.zeros_like(accel), torch.zeros_like(accel)
    else:
        jerk = (accel - prev_checks.accel_mps2) / batch.dt_s
        yaw_accel = (yaw_rate - prev_checks.yaw_rate_rps) / batch.dt_s
    speed = torch.where(alive, v, 0.0)
    return StepChecks(
        collision=collision,
        collision_object=collision_object,
        at_fault_collision=fault.any(-1),
        offroad=offroad,
        against_traffic=against,
        lane_deviation_m=lane_deviation,
        on_lane=on_lane,
        red_light_violation=red,
        route_progress_m=torch.where(is_ego & alive, s_route, 0.0),
        ttc_s=ttc,
        ttc_violation=counted.any(-1),
        accel_mps2=accel,
        jerk_mps3=torch.where(alive, jerk, 0.0),
        yaw_rate_rps=yaw_rate,
        yaw_accel_rps2=torch.where(alive, yaw_accel, 0.0),
        lateral_accel_mps2=speed * yaw_rate,
        speed_mps=speed,
        distance_to_log_m=torch.where(log_ok, (xy - log_xy).norm(dim=-1), 0.0),
        log_valid=log_ok,
    )
