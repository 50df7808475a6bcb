"""Counterfactual re-simulation: does the ego still act as it did without the suspected cause?

For every keyframe of a scene, the ego is re-simulated from the logged state at the keyframe by
a reactive planner (Cordillera's IDM driver: leaders, lights, stop signs, road users on its
path) once in the scene as logged (the factual rollout) and once per candidate with that
candidate taken away — the object deleted, the light set green, the stop sign removed. Other
road users replay their logs. All rollouts of a scene run as one simulator batch: the scene is
tensorised once and its variants are cheap copies with the intervention written into them.

The effect of a candidate is the mean absolute difference of the ego's speed between the
factual and the counterfactual rollout over the horizon (m/s): a cause the ego reacts to
changes its speed when removed; a bystander does not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from cordillera.label.candidates import Candidate
from cordillera.label.config import LabelerConfig
from cordillera.label.decisions import SPEED_CHANGE_MPS, STOP_MPS
from cordillera.label.record import CauseEvidence
from cordillera.policy.base import ObservationRequest
from cordillera.policy.baselines import IdmPolicy
from cordillera.policy.inputs import InputBuilder
from cordillera.policy.plan import from_ego_frame
from cordillera.policy.registry import get_policy
from cordillera.scene.model import Scene
from cordillera.scene.types import SignalState
from cordillera.sim.batch import SceneBatch
from cordillera.sim.config import SimConfig
from cordillera.sim.runner import agents_of_interest
from cordillera.sim.simulator import Simulator


@dataclass(frozen=True, eq=False)
class Rollouts:
    """Ego speeds of the re-simulations of one scene.

    Attributes:
        speed_mps: ``(V, S)`` ego speed after each of S steps, per variant.
        start_speed_mps: ``(V,)`` ego speed at the keyframe.
        keyframe: ``(V,)`` index of each variant's keyframe; candidate: ``(V,)`` index of the
            removed candidate within its keyframe, -1 for the factual rollout.
        in_log: ``(V, S)`` the step lies inside the log (later keyframes' rollouts run past
            its end, where the other road users have no states; those steps do not count).
    """

    speed_mps: torch.Tensor
    start_speed_mps: torch.Tensor
    keyframe: torch.Tensor
    candidate: torch.Tensor
    in_log: torch.Tensor


NEAR_M = 120.0
"""Objects that never come this close to the ego around the keyframes cannot matter to its
re-simulation and are left out of the counterfactual batch."""


def nearby_scene(scene: Scene, steps: Sequence[int], horizon_steps: int) -> Scene:
    """``scene`` with only the objects that come within :data:`NEAR_M` of the ego between the
    first keyframe and the last one's horizon (every rollout copy of the batch then stays
    small; logs of hundreds of parked cars and far pedestrians cost nothing)."""
    tr, e = scene.tracks, scene.ego_index
    t0, t1 = min(steps), min(max(steps) + horizon_steps, scene.num_steps - 1)
    d = np.linalg.norm(tr.xyz_m[:, t0 : t1 + 1, :2] - tr.xyz_m[e, t0 : t1 + 1, :2], axis=-1)
    near: npt.NDArray[np.bool_] = np.asarray(
        (np.where(tr.valid[:, t0 : t1 + 1], d, np.inf) < NEAR_M).any(1), bool
    )
    near[e] = True
    if near.all():
        return scene
    keep = np.nonzero(near)[0]
    tracks = dataclasses.replace(
        tr, **{f.name: getattr(tr, f.name)[keep] for f in dataclasses.fields(tr)}
    )
    return dataclasses.replace(scene, tracks=tracks, ego_index=int(np.searchsorted(keep, e)))


def _intervene(batch: SceneBatch, v: int, cand: Candidate) -> None:
    """Write ``cand``'s removal into variant row ``v`` of ``batch`` (in place)."""
    if cand.kind == "traffic_light":
        rows = torch.tensor(cand.signal_rows, dtype=torch.long)
        batch.signal_state[v, rows] = int(SignalState.GREEN)
    elif cand.kind == "stop_sign":
        batch.stop_sign_valid[v, cand.index] = False
    else:
        batch.object_mask[v, cand.index] = False
        batch.log_valid[v, cand.index] = False


def resimulate(
    scene: Scene,
    base: SceneBatch,
    steps: Sequence[int],
    candidates: Sequence[Sequence[Candidate]],
    config: LabelerConfig,
) -> Rollouts:
    """Factual and counterfactual ego rollouts from every keyframe ``steps`` (one batch)."""
    kf, cand_of = [], []
    for k, cands in enumerate(candidates):
        kf += [k] * (1 + len(cands))
        cand_of += [-1, *range(len(cands))]
    v = len(kf)
    batch = base.select([0] * v)
    for row, (k, c) in enumerate(zip(kf, cand_of, strict=True)):
        if c >= 0:
            _intervene(batch, row, candidates[k][c])
    horizon = round(config.counterfactual_horizon_s / scene.dt_s)
    start = torch.tensor([steps[k] for k in kf], dtype=torch.long)
    last = int(base.num_steps[0]) - 1
    horizon = max(1, min(horizon, last - int(start.min())))
    sim = Simulator(batch, SimConfig(traffic="log"))
    policy = get_policy(config.planner)
    state = sim.reset(start_step=start)
    rows = torch.arange(v)
    agents = agents_of_interest(sim, state)
    builder = InputBuilder(sim, [scene], ObservationRequest(privileged=True))
    builder.reset(state)
    policy.reset([scene] * v)
    speeds = []
    start_speed = state.speed_mps[rows, sim.ego_index].clone()
    for _ in range(horizon):
        inputs = builder(state)
        ego = sim.ego_index
        if isinstance(policy, IdmPolicy):  # its meta-actions are not needed here
            waypoints = policy.plan_waypoints(inputs)
        else:
            waypoints = policy.act(inputs).waypoints_ego_m
        local = from_ego_frame(waypoints, state.xy_m[rows, ego], state.heading_rad[rows, ego])
        state = sim.step_plan(state, local.unsqueeze(1), agents)
        speeds.append(state.speed_mps[rows, sim.ego_index])
    in_log = (start[:, None] + torch.arange(1, horizon + 1)) <= last
    in_log[:, 0] = True  # every rollout has at least its first step
    return Rollouts(
        torch.stack(speeds, 1),
        start_speed,
        torch.tensor(kf, dtype=torch.long),
        torch.tensor(cand_of, dtype=torch.long),
        in_log,
    )


def behaviour_class(start_mps: torch.Tensor, speed_mps: torch.Tensor) -> torch.Tensor:
    """``(V,)`` 2 = comes to / stays at a stop, 1 = slows down, 0 = drives on."""
    low = speed_mps.amin(-1)
    stops = low < STOP_MPS
    slows = (start_mps - low) > SPEED_CHANGE_MPS
    return torch.where(stops, 2, torch.where(slows, 1, 0))


def evidence(
    rollouts: Rollouts, candidates: Sequence[Sequence[Candidate]]
) -> list[tuple[CauseEvidence, ...]]:
    """Per keyframe, the evidence of each candidate, strongest effect first."""
    sp, kf, cand = rollouts.speed_mps, rollouts.keyframe, rollouts.candidate
    m = rollouts.in_log  # a variant and its factual rollout share the keyframe, so the mask
    held = torch.where(m, sp, torch.inf)  # steps past the log's end: ignored by minima
    cls = behaviour_class(rollouts.start_speed_mps, held)
    factual_row = torch.full((len(candidates),), -1, dtype=torch.long)
    factual_row[kf[cand < 0]] = torch.nonzero(cand < 0)[:, 0]
    f = factual_row[kf]  # (V,) the factual rollout of each variant's keyframe
    effect = ((sp - sp[f]).abs() * m).sum(-1) / m.sum(-1)
    low = held.amin(-1)
    changed = cls != cls[f]
    out: list[list[CauseEvidence]] = [[] for _ in candidates]
    rows = torch.nonzero(cand >= 0)[:, 0].tolist()
    eff, lo, lo_f, ch = effect.tolist(), low.tolist(), low[f].tolist(), changed.tolist()
    for r in rows:  # one record per tested candidate
        c = candidates[int(kf[r])][int(cand[r])]
        out[int(kf[r])].append(
            CauseEvidence(
                cause_id=c.cause_id,
                kind=c.kind,
                intervention=c.intervention,
                effect=round(float(eff[r]), 4),
                min_speed_factual_mps=round(float(lo_f[r]), 3),
                min_speed_counterfactual_mps=round(float(lo[r]), 3),
                decision_changed=bool(ch[r]),
            )
        )
    return [tuple(sorted(ev, key=lambda e: (-e.effect, e.cause_id))) for ev in out]
