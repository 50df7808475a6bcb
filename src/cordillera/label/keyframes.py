"""Keyframes: the moments of a log worth a label.

A keyframe is where the ego's behaviour changes — a transition of its kinematic meta-actions:
the start of braking, coming to a stop, pulling away, the start of a lane change, a turn or a
nudge — plus a regular sampling so that steady driving is labelled too. Keyframes need enough
past for the stored history and camera frames and enough logged future for the decision
window; keyframes closer than ``min_keyframe_gap_s`` are merged, behaviour changes first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cordillera.label.config import LabelerConfig
from cordillera.policy.meta_action_lanes import LaneLabels, label_lanes
from cordillera.policy.meta_actions import KinematicLabels, label_kinematic
from cordillera.policy.vocabulary import LaneAction, LongitudinalAction
from cordillera.scene.model import Scene

_DECEL = {int(LongitudinalAction.GENTLE_DECELERATION), int(LongitudinalAction.STRONG_DECELERATION)}
_STOP = int(LongitudinalAction.STOP)
_GO = {
    int(LongitudinalAction.GENTLE_ACCELERATION),
    int(LongitudinalAction.STRONG_ACCELERATION),
    int(LongitudinalAction.MAINTAIN_SPEED),
}
_LANE_EVENTS = {
    int(LaneAction.LEFT_LANE_CHANGE): "start of a lane change",
    int(LaneAction.RIGHT_LANE_CHANGE): "start of a lane change",
    int(LaneAction.TURN_LEFT): "start of a turn",
    int(LaneAction.TURN_RIGHT): "start of a turn",
    int(LaneAction.SLIGHT_SHIFT_LEFT): "start of a nudge",
    int(LaneAction.SLIGHT_SHIFT_RIGHT): "start of a nudge",
}


@dataclass(frozen=True)
class Keyframe:
    """A labelled moment: log ``step`` (10 Hz) and why it was chosen."""

    step: int
    reason: str


@dataclass(frozen=True, eq=False)
class EgoLabels:
    """The ego's whole-log meta-actions, computed once per scene.

    Attributes:
        kinematic: ``(1, T)`` longitudinal / lateral labels and smoothed kinematics.
        lanes: ``(1, T)`` lane labels (None without a map).
    """

    kinematic: KinematicLabels
    lanes: LaneLabels | None


def ego_labels(scene: Scene) -> EgoLabels:
    """Meta-actions of the ego over its whole log (world frame)."""
    tr, e = scene.tracks, scene.ego_index
    xy = torch.from_numpy(tr.xyz_m[e, :, :2].astype(np.float64))[None]
    heading = torch.from_numpy(tr.heading_rad[e].astype(np.float64))[None]
    valid = torch.from_numpy(tr.valid[e].copy())[None]
    kin = label_kinematic(xy, heading, scene.dt_s, valid)
    lanes = label_lanes(xy, heading, scene.dt_s, valid, scene.map) if scene.map.num_lanes else None
    return EgoLabels(kin, lanes)


def _transitions(labels: np.ndarray) -> list[Keyframe]:
    """Behaviour changes of one row of longitudinal labels."""
    out = []
    prev, cur = labels[:-1], labels[1:]
    for i in np.nonzero(prev != cur)[0]:
        p, c = int(prev[i]), int(cur[i])
        if p < 0 or c < 0:
            continue
        if c in _DECEL and p not in _DECEL and p != _STOP:
            out.append(Keyframe(int(i) + 1, "start of braking"))
        elif c == _STOP:
            out.append(Keyframe(int(i) + 1, "stop"))
        elif p == _STOP and c in _GO:
            out.append(Keyframe(int(i) + 1, "pulling away"))
    return out


def _lane_transitions(labels: np.ndarray) -> list[Keyframe]:
    out = []
    prev, cur = labels[:-1], labels[1:]
    for i in np.nonzero(prev != cur)[0]:
        reason = _LANE_EVENTS.get(int(cur[i]))
        if reason is not None:
            out.append(Keyframe(int(i) + 1, reason))
    return out


def select_keyframes(scene: Scene, labels: EgoLabels, config: LabelerConfig) -> list[Keyframe]:
    """The keyframes of ``scene``, in time order."""
    dt = scene.dt_s
    valid = scene.tracks.valid[scene.ego_index]
    if not valid.any():
        return []
    first = int(np.argmax(valid))
    last = len(valid) - 1 - int(np.argmax(valid[::-1]))
    past = max(config.history_steps - 1, (config.frames - 1) * config.frame_stride_steps)
    lo = first + past
    hi = last - round(config.min_future_s / dt)
    if hi < lo:
        # A log too short for the full history and future (CommonRoad scenarios run 3-5 s):
        # one keyframe a third of the way in, with the past it has and two thirds ahead.
        if last - first < 2:
            return []
        return [Keyframe(first + max(1, (last - first) // 3), "short log")]
    events = _transitions(labels.kinematic.longitudinal[0].numpy())
    if labels.lanes is not None:
        events += _lane_transitions(labels.lanes.lane[0].numpy())
    events = sorted((k for k in events if lo <= k.step <= hi), key=lambda k: k.step)
    every = max(1, round(config.regular_interval_s / dt))
    regular = [Keyframe(s, "regular") for s in range(lo, hi + 1, every)]
    gap = round(config.min_keyframe_gap_s / dt)
    kept: list[Keyframe] = []
    for k in events:  # behaviour changes first, in time order
        if not kept or k.step - kept[-1].step >= gap:
            kept.append(k)
    taken = np.array([k.step for k in kept], np.int64)
    for k in regular:
        if len(taken) == 0 or np.abs(taken - k.step).min() >= gap:
            kept.append(k)
    return sorted(kept, key=lambda k: k.step)
