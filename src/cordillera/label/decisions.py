"""Decisions at a keyframe, read from the log, the map and the proven cause; and the checks
that a label is consistent.

Longitudinal (at most one): with a cause — a light or stop sign: ``stop``; a pedestrian or
cyclist, or a vehicle crossing or coming against the ego: ``yield``; a vehicle the ego goes
round without slowing: ``pass``; one in the lane the ego is changing or merging into while it
slows: ``gap_search``; one that stands or halts, or behind which the ego halts: ``stop``;
otherwise ``keep_distance``. Without a cause: pulling away from well below the ego's cruising
speed is ``resume_speed``, any other clear speed change ``adapt_speed``, halting ``stop``,
cruising none.

Lateral (at most one), from the lane meta-actions of the logged future over the decision
window: a turn, a lane change, a nudge (slight shift), a merge (entering a lane that several
lanes feed, not through an intersection), else ``keep_lane``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cordillera.label.candidates import Candidate
from cordillera.label.keyframes import EgoLabels
from cordillera.policy.vocabulary import (
    LaneAction,
    LateralAction,
    LateralDecision,
    LongitudinalAction,
    LongitudinalDecision,
)
from cordillera.scene.model import Scene

STOP_MPS = 0.5
SPEED_CHANGE_MPS = 1.0
RESUME_FROM_FRACTION = 0.7
_LANE_RANK = {
    int(LaneAction.TURN_LEFT): (3, LateralDecision.TURN),
    int(LaneAction.TURN_RIGHT): (3, LateralDecision.TURN),
    int(LaneAction.LEFT_LANE_CHANGE): (2, LateralDecision.LANE_CHANGE),
    int(LaneAction.RIGHT_LANE_CHANGE): (2, LateralDecision.LANE_CHANGE),
    int(LaneAction.SLIGHT_SHIFT_LEFT): (1, LateralDecision.NUDGE),
    int(LaneAction.SLIGHT_SHIFT_RIGHT): (1, LateralDecision.NUDGE),
}


@dataclass(frozen=True)
class WindowFacts:
    """The ego's logged behaviour over one decision window.

    Attributes:
        speed_now_mps, speed_min_mps, speed_max_mps, speed_end_mps: ego speeds.
        cruise_mps: the fastest the ego drives in its whole log.
        longitudinal, lateral, lane: the window's per-step kinematic labels (ints, -1 none).
        lane_index: per-step matched lane (-1 none).
    """

    speed_now_mps: float
    speed_min_mps: float
    speed_max_mps: float
    speed_end_mps: float
    cruise_mps: float
    longitudinal: np.ndarray
    lateral: np.ndarray
    lane: np.ndarray
    lane_index: np.ndarray

    @property
    def halts(self) -> bool:
        return self.speed_min_mps < STOP_MPS

    @property
    def slows(self) -> bool:
        return self.speed_now_mps - self.speed_min_mps > SPEED_CHANGE_MPS

    @property
    def speeds_up(self) -> bool:
        return self.speed_max_mps - self.speed_now_mps > SPEED_CHANGE_MPS


def window_facts(labels: EgoLabels, step: int, window_steps: int) -> WindowFacts:
    """The facts of the window ``[step, step + window_steps)`` of the ego's log."""
    kin = labels.kinematic
    ok = kin.valid[0].numpy()
    speed = kin.kinematics.speed_mps[0].numpy()
    w = slice(step, step + window_steps)
    sw = speed[w][ok[w]] if ok[w].any() else np.zeros(1)
    lanes = labels.lanes
    return WindowFacts(
        speed_now_mps=float(speed[step]),
        speed_min_mps=float(sw.min()),
        speed_max_mps=float(sw.max()),
        speed_end_mps=float(sw[-1]),
        cruise_mps=float(np.where(ok, speed, 0.0).max()),
        longitudinal=kin.longitudinal[0, w].numpy().astype(np.int64),
        lateral=kin.lateral[0, w].numpy().astype(np.int64),
        lane=(lanes.lane[0, w].numpy().astype(np.int64) if lanes is not None else np.zeros(0, int)),
        lane_index=(
            lanes.lane_index[0, w].numpy().astype(np.int64)
            if lanes is not None
            else np.zeros(0, int)
        ),
    )


def _merges(scene: Scene, lane_index: np.ndarray) -> bool:
    """The ego enters a lane fed by several lanes from a lane that is not an intersection
    connector (connectors are fed by a fork: the approach lane's several successors)."""
    m = scene.map
    seq = lane_index[lane_index >= 0]
    edges = m.lane_successors.astype(np.int64)
    if len(seq) < 2 or len(edges) == 0:
        return False
    preds = np.bincount(edges[:, 1], minlength=m.num_lanes)
    succs = np.bincount(edges[:, 0], minlength=m.num_lanes)
    edge_set = {(int(a), int(b)) for a, b in edges}
    for i in np.nonzero(seq[1:] != seq[:-1])[0]:
        a, b = int(seq[i]), int(seq[i + 1])
        fed_by_fork = bool((succs[edges[edges[:, 1] == a, 0]] >= 2).any())
        if preds[b] >= 2 and (a, b) in edge_set and not fed_by_fork:
            return True
    return False


def lateral_decision(scene: Scene, facts: WindowFacts) -> LateralDecision:
    """The lateral decision of the window (see the module docstring)."""
    if len(facts.lane):
        best = max((_LANE_RANK.get(int(x), (0, None)) for x in facts.lane), key=lambda r: r[0])
        if best[1] is not None:
            return best[1]
        if _merges(scene, facts.lane_index):
            return LateralDecision.MERGE
        return LateralDecision.KEEP_LANE
    sharp = {int(LateralAction.SHARP_STEER_LEFT), int(LateralAction.SHARP_STEER_RIGHT)}
    if np.isin(facts.lateral, list(sharp)).mean() > 0.3:
        return LateralDecision.TURN
    return LateralDecision.KEEP_LANE


def longitudinal_decision(
    facts: WindowFacts, cause: Candidate | None, lateral: LateralDecision
) -> LongitudinalDecision | None:
    """The longitudinal decision of the window given its strongest proven cause."""
    if cause is not None:
        if cause.kind in ("traffic_light", "stop_sign"):
            return LongitudinalDecision.STOP
        if cause.kind in ("pedestrian", "cyclist") or cause.crossing:
            return LongitudinalDecision.YIELD
        moving_round = lateral in (LateralDecision.NUDGE, LateralDecision.LANE_CHANGE)
        if moving_round and not facts.slows and cause.ahead_m > 0:
            return LongitudinalDecision.PASS
        if lateral in (LateralDecision.LANE_CHANGE, LateralDecision.MERGE) and facts.slows:
            return LongitudinalDecision.GAP_SEARCH
        if facts.halts or cause.stationary or cause.min_speed_mps < STOP_MPS:
            return LongitudinalDecision.STOP
        return LongitudinalDecision.KEEP_DISTANCE
    if facts.speeds_up and facts.speed_now_mps < RESUME_FROM_FRACTION * facts.cruise_mps:
        return LongitudinalDecision.RESUME_SPEED
    if facts.halts and facts.speed_now_mps >= STOP_MPS:
        return LongitudinalDecision.STOP
    if facts.slows or facts.speeds_up:
        return LongitudinalDecision.ADAPT_SPEED
    return None


_DECEL = {
    int(LongitudinalAction.GENTLE_DECELERATION),
    int(LongitudinalAction.STRONG_DECELERATION),
    int(LongitudinalAction.STOP),
}
_ACCEL = {int(LongitudinalAction.GENTLE_ACCELERATION), int(LongitudinalAction.STRONG_ACCELERATION)}


def decision_mismatch(
    facts: WindowFacts, lon: LongitudinalDecision | None, lat: LateralDecision | None
) -> str:
    """Why the decisions disagree with the window's kinematic meta-actions, or ``""``."""
    labels = set(facts.longitudinal.tolist())
    standing = facts.speed_max_mps < STOP_MPS
    if lon == LongitudinalDecision.STOP and not (labels & _DECEL or standing):
        return "decision stop, but the ego neither slows nor stands"
    if lon == LongitudinalDecision.YIELD and not (labels & _DECEL or standing or facts.slows):
        return "decision yield, but the ego neither slows nor stands"
    if lon == LongitudinalDecision.RESUME_SPEED and not (labels & _ACCEL):
        return "decision resume_speed, but the ego does not accelerate"
    if lon == LongitudinalDecision.PASS and int(LongitudinalAction.STRONG_DECELERATION) in labels:
        return "decision pass, but the ego brakes hard"
    lane = set(facts.lane.tolist())
    need = {
        LateralDecision.TURN: {int(LaneAction.TURN_LEFT), int(LaneAction.TURN_RIGHT)},
        LateralDecision.LANE_CHANGE: {
            int(LaneAction.LEFT_LANE_CHANGE),
            int(LaneAction.RIGHT_LANE_CHANGE),
        },
    }
    if lat in need and len(facts.lane) and not (lane & need[lat]):
        return f"decision {lat.text}, but no such lane meta-action follows"
    return ""
