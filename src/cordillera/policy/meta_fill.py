"""A plan's meta-actions from its own trajectory: the kinematic labeler run on the plan.

Every policy's :class:`Plan` carries one meta-action per family for its trajectory
(VISION.md, "Policy output"). Policies that do not reason, and the rule-based planners, derive
them here: the current pose (the origin of the ego frame) is prepended to the plan's
waypoints, the K + 1 poses are labelled by :func:`label_kinematic` and, where a map is known,
by :func:`label_lanes` (which works in the map's world frame, so the plan is first placed
there), and :func:`summarize` keeps one label per family.

The kinematic labels run once for the whole batch; the lane labels run once per *map* (rollouts
of one scene share a call), never once per rollout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from cordillera.errors import CordilleraError
from cordillera.policy.meta_action_lanes import LaneLabels, label_lanes
from cordillera.policy.meta_actions import (
    NO_LABEL,
    LaneAction,
    MetaActionConfig,
    MetaActionSummary,
    fill_invalid,
    label_kinematic,
    steps_of,
    summarize,
)
from cordillera.policy.plan import ChainOfCausation, Plan
from cordillera.scene.model import RoadMap
from cordillera.sim.simulator import Simulator
from cordillera.sim.state import SimState


@dataclass(frozen=True, eq=False)
class LaneContext:
    """Where B plans sit on their maps, for the lane family of meta-actions.

    Attributes:
        road_maps: B maps, one per rollout (rollouts of one scene share the object), None
            where the rollout has no map.
        ego_xy_world_m: ``(B, 2)`` float64 ego position at decision time, in the maps' world
            frame.
        ego_heading_rad: ``(B,)`` ego heading at decision time, CCW from world +x (a
            simulator's local frame is the world frame shifted, not rotated).
    """

    road_maps: tuple[RoadMap | None, ...]
    ego_xy_world_m: torch.Tensor
    ego_heading_rad: torch.Tensor

    def __post_init__(self) -> None:
        b = len(self.road_maps)
        if tuple(self.ego_xy_world_m.shape) != (b, 2) or tuple(self.ego_heading_rad.shape) != (b,):
            raise CordilleraError(
                f"LaneContext needs (B, 2) positions and (B,) headings for B = {b} maps, got "
                f"{tuple(self.ego_xy_world_m.shape)} and {tuple(self.ego_heading_rad.shape)}"
            )


def lane_context(
    sim: Simulator, state: SimState, road_maps: Sequence[RoadMap | None]
) -> LaneContext:
    """The :class:`LaneContext` of the egos of ``state``: local poses moved to the world frame
    with the simulator batch's ``origin_world_xy_m`` of each rollout's scene."""
    b = state.batch_size
    rows = torch.arange(b, device=state.step.device)
    ego = sim.ego_index
    origin = sim.batch.origin_world_xy_m.index_select(0, sim.scene_of).double()
    return LaneContext(
        tuple(road_maps),
        state.xy_m[rows, ego].double() + origin,
        state.heading_rad[rows, ego],
    )


def plan_poses(
    waypoints_ego_m: torch.Tensor, dt_s: float, config: MetaActionConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """The K + 1 poses of B plans in their ego frames: the origin (the current pose, facing
    +x) then the waypoints ``(B, K, 2)``.

    A plan carries no headings, so each pose gets the direction of the chord across the
    labeler's smoothing window centred on it, held (from the pose before, else after) where
    that chord is shorter than standing speed covers, and kept on the vehicle's axis: a chord
    pointing more than 90° away from the previous heading is a move backwards (heading + pi),
    not a U-turn within a step. Centimetre jitter of a standing plan and a logged path that
    folds back on itself (nuScenes exports jump the ego ~2 m back near some scenes' ends)
    then never read as a heading that flips by pi, which the labeler's robust heading fit
    cannot absorb.

    Returns ``(B, K + 1, 2)`` positions and ``(B, K + 1)`` headings (radians from ego +x,
    unwrapped).
    """
    b, k = waypoints_ego_m.shape[:2]
    xy = torch.cat([waypoints_ego_m.new_zeros(b, 1, 2), waypoints_ego_m], 1)
    half = max(1, steps_of(config.smoothing_window_s, dt_s) // 2)
    idx = torch.arange(k + 1, device=xy.device)
    lo, hi = (idx - half).clamp_min(0), (idx + half).clamp_max(k)
    chord = xy[:, hi] - xy[:, lo]
    course = torch.atan2(chord[..., 1], chord[..., 0])
    span_s = (hi - lo).to(xy.dtype) * dt_s
    moving = torch.linalg.vector_norm(chord, dim=-1) >= config.stop_speed_mps * span_s
    course[:, 0], moving[:, 0] = 0.0, True  # the ego faces +x at the origin of its frame
    course = fill_invalid(course, moving)
    # The heading follows the vehicle's axis, not the direction of motion: each step turns by
    # the course change folded into (-pi/2, pi/2] (a backward move reads as reversing, not as
    # a half turn). Folding modulo pi is wrapping the doubled angle, so the whole scan is a
    # cumulative sum.
    turn = torch.remainder(2 * torch.diff(course, dim=1) + math.pi, 2 * math.pi) - math.pi
    return xy, torch.cat([course[:, :1], course[:, :1] + torch.cumsum(turn / 2, 1)], 1)


def fill_meta_actions(
    waypoints_ego_m: torch.Tensor,
    dt_s: float,
    lanes: LaneContext | None = None,
    config: MetaActionConfig | None = None,
) -> MetaActionSummary:
    """One meta-action per family for each of B plans, from their own trajectories.

    Args:
        waypoints_ego_m: ``(B, K, 2)`` plan waypoints in the ego frame, one every ``dt_s``.
        dt_s: seconds between waypoints.
        lanes: the plans' maps and ego poses, or None (lane labels then invalid).
        config: labeler thresholds; defaults to :class:`MetaActionConfig` ``()``.

    Returns:
        The summary; ``lane_valid`` is False for rollouts without a map or whose plan the map
        could not place on a lane.
    """
    cfg = config or MetaActionConfig()
    xy, heading = plan_poses(waypoints_ego_m.float(), dt_s, cfg)
    kinematic = label_kinematic(xy, heading, dt_s, None, cfg)
    lane_labels = None
    if lanes is not None and any(m is not None for m in lanes.road_maps):
        lane_labels = _label_lanes(xy, heading, dt_s, lanes, cfg)
    return summarize(kinematic, lane_labels)


def _label_lanes(
    xy_ego: torch.Tensor,
    heading_ego: torch.Tensor,
    dt_s: float,
    lanes: LaneContext,
    cfg: MetaActionConfig,
) -> LaneLabels:
    """Lane labels of the plans placed in their maps' world frames, one labeler call per map."""
    b, t = xy_ego.shape[:2]
    dev = xy_ego.device
    yaw = lanes.ego_heading_rad.to(dev).double()
    c, s = torch.cos(yaw)[:, None], torch.sin(yaw)[:, None]
    x, y = xy_ego[..., 0].double(), xy_ego[..., 1].double()
    world = torch.stack([c * x - s * y, s * x + c * y], -1) + lanes.ego_xy_world_m.to(dev)[:, None]
    world_heading = heading_ego.double() + yaw[:, None]
    lane = torch.full((b, t), int(LaneAction.LANE_KEEP), dtype=torch.int8, device=dev)
    valid = torch.zeros(b, t, dtype=torch.bool, device=dev)
    groups: dict[int, list[int]] = {}
    maps: dict[int, RoadMap] = {}
    for i, m in enumerate(lanes.road_maps):  # bookkeeping only: B integers, no tensor work
        if m is not None:
            groups.setdefault(id(m), []).append(i)
            maps[id(m)] = m
    for key, members in groups.items():  # one call per map, not per rollout
        rows = torch.tensor(members, device=dev)
        got = label_lanes(world[rows], world_heading[rows], dt_s, None, maps[key], cfg)
        # A plan the map cannot place stays "lane keep, not from the map" (summary: -1).
        lane[rows] = torch.where(got.lane >= 0, got.lane, int(LaneAction.LANE_KEEP))
        valid[rows] = got.valid
    none = torch.full((b, t), -1, dtype=torch.int32, device=dev)
    return LaneLabels(lane, valid, none, torch.zeros(b, t, device=dev))


def make_plan(
    waypoints_ego_m: torch.Tensor,
    dt_s: float,
    lanes: LaneContext | None = None,
    coc: Sequence[ChainOfCausation | None] | None = None,
    config: MetaActionConfig | None = None,
) -> Plan:
    """A :class:`Plan` of ``waypoints_ego_m (B, K, 2)`` with its meta-actions filled by
    :func:`fill_meta_actions`; ``lane`` is -1 where no map placed the plan, ``coc`` defaults
    to None for every rollout and groundings are empty."""
    summary = fill_meta_actions(waypoints_ego_m, dt_s, lanes, config)
    return plan_from_summary(waypoints_ego_m, summary, coc)


def plan_from_summary(
    waypoints_ego_m: torch.Tensor,
    summary: MetaActionSummary,
    coc: Sequence[ChainOfCausation | None] | None = None,
) -> Plan:
    """A :class:`Plan` of ``waypoints_ego_m`` with the labels of ``summary`` (e.g. kept from
    the decision a re-used plan was made at)."""
    lane = torch.where(summary.lane_valid, summary.lane.long(), NO_LABEL)
    return Plan(
        waypoints_ego_m=waypoints_ego_m.float(),
        longitudinal=summary.longitudinal.long(),
        lateral=summary.lateral.long(),
        lane=lane,
        coc=tuple(coc) if coc is not None else (),
    )


__all__ = [
    "LaneContext",
    "fill_meta_actions",
    "lane_context",
    "make_plan",
    "plan_from_summary",
    "plan_poses",
]
