"""PDM scoring of proposals: the evaluation's own metric logic applied to their forecasts.

Each proposal is simulated for a few seconds (see :mod:`cordillera.policy.pdm`) and recorded as
a :class:`RolloutTrace` of B × P rollouts; here that trace is scored by the very functions that
score closed-loop evaluation (:mod:`cordillera.metrics.navsim`), combined PDM-style:

    score = NC · DAC · DDC · TLC · (w_EP EP + w_TTC TTC + w_LK LK + w_HC HC + w_EC EC) / Σ w

with NAVSIM v2's EPDMS weights (5, 5, 2, 2, 2; ``navsim/docs/metrics.md``). The one
difference is progress: like PDM-Closed's scorer (``pdm_scorer.py``, ``_calculate_progress``),
a proposal's progress is normalised by the best progress *among the proposals of its rollout*
(times their multipliers) rather than by the human's, which a planner does not know; below
5 m of best progress every proposal with a non-zero multiplier gets 1.

Everything here is pure: tensors in, tensors out.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from cordillera.errors import ConfigError
from cordillera.metrics.common import LOW_PROGRESS_M, counted_at_fault, progress
from cordillera.metrics.navsim import (
    drivable_area_compliance_score,
    driving_direction_compliance_score,
    extended_comfort_score,
    history_comfort_score,
    lane_keeping_score,
    no_at_fault_collision_score,
    time_to_collision_score,
    traffic_light_compliance_score,
)
from cordillera.sim.rollout import RolloutTrace


@dataclass(frozen=True)
class PdmWeights:
    """Weights of the averaged sub-scores (NAVSIM v2 EPDMS: 5, 5, 2, 2, 2).

    Attributes:
        ego_progress: progress along the route, relative to the best proposal.
        time_to_collision: no at-fault contact predicted within 1 s at any forecast step.
        lane_keeping: no 2 s run more than 0.5 m off the lane centre.
        history_comfort: accelerations, jerks and yaw rates within NAVSIM's bounds.
        extended_comfort: step-to-step changes of those within NAVSIM v2's RMS bounds.
    """

    ego_progress: float = 5.0
    time_to_collision: float = 5.0
    lane_keeping: float = 2.0
    history_comfort: float = 2.0
    extended_comfort: float = 2.0

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        bad = {k: v for k, v in values.items() if not v >= 0}
        if bad:
            raise ConfigError(f"PdmWeights must be >= 0, got {bad}")
        if not sum(values.values()) > 0:
            raise ConfigError("PdmWeights must not all be 0")


@dataclass(frozen=True, eq=False)
class ProposalScores:
    """Scores of B × P proposals; every field is ``(B, P)``.

    Attributes:
        no_at_fault_collision, drivable_area, driving_direction, traffic_light: the
            multiplicative penalties (NC is 0.5 for a static object, 0 for an agent).
        multiplier: their product.
        progress_m: route progress over the forecast.
        ego_progress, time_to_collision, lane_keeping, history_comfort, extended_comfort:
            the weighted sub-scores in [0, 1].
        total: ``multiplier × weighted average``, the PDM score.
        collision_object: long object index (in N) of the first counted at-fault collision,
            -1 where there is none.
        collision_step: long forecast step of that collision, -1 where there is none.
    """

    no_at_fault_collision: torch.Tensor
    drivable_area: torch.Tensor
    driving_direction: torch.Tensor
    traffic_light: torch.Tensor
    multiplier: torch.Tensor
    progress_m: torch.Tensor
    ego_progress: torch.Tensor
    time_to_collision: torch.Tensor
    lane_keeping: torch.Tensor
    history_comfort: torch.Tensor
    extended_comfort: torch.Tensor
    total: torch.Tensor
    collision_object: torch.Tensor
    collision_step: torch.Tensor


def relative_progress(progress_m: torch.Tensor, multiplier: torch.Tensor) -> torch.Tensor:
    """PDM's progress sub-score ``(B, P)``: each proposal's progress (times its multiplier)
    over the best of its rollout; 1 for every proposal with a non-zero multiplier when that
    best is under :data:`LOW_PROGRESS_M` (0 where the multiplier is 0)."""
    raw = progress_m.clamp_min(0.0) * multiplier
    best = raw.amax(1, keepdim=True)
    ratio = raw / best.clamp_min(1e-6)
    low = torch.where(multiplier > 0, 1.0, 0.0)
    return torch.where(best > LOW_PROGRESS_M, ratio, low)


def first_at_fault_collision(trace: RolloutTrace) -> tuple[torch.Tensor, torch.Tensor]:
    """``(R,)`` object index and step of each rollout's first counted at-fault collision of
    its ego (agent 0), -1 where there is none."""
    counted = counted_at_fault(trace)[..., 0]  # (R, T)
    t = counted.shape[1]
    steps = torch.arange(t, device=counted.device)
    first = torch.where(counted, steps, t).amin(1)
    has = first < t
    obj = torch.gather(trace.checks.collision_object[..., 0], 1, first.clamp(max=t - 1)[:, None])
    return torch.where(has, obj[:, 0], -1), torch.where(has, first, -1)


def combine(
    multiplier: torch.Tensor, parts: dict[str, torch.Tensor], weights: PdmWeights
) -> torch.Tensor:
    """``multiplier × Σ w_k part_k / Σ w_k`` over the sub-scores named by ``weights``."""
    total_w = sum(getattr(weights, f.name) for f in fields(weights))
    weighted = sum(getattr(weights, f.name) * parts[f.name] for f in fields(weights))
    return multiplier * torch.as_tensor(weighted) / total_w


def score_proposals(trace: RolloutTrace, num_proposals: int, weights: PdmWeights) -> ProposalScores:
    """Score the forecasts of B × P proposals, recorded as one trace of ``B * P`` rollouts
    (proposal-major within a rollout: row ``b * P + p``) with the ego as agent 0."""
    p = num_proposals

    def per(x: torch.Tensor) -> torch.Tensor:
        return x[:, 0].reshape(-1, p) if x.ndim == 2 else x.reshape(-1, p)

    nc = per(no_at_fault_collision_score(trace)[0])
    dac = per(drivable_area_compliance_score(trace)[0])
    ddc = per(driving_direction_compliance_score(trace)[0])
    tlc = per(traffic_light_compliance_score(trace)[0])
    multiplier = nc * dac * ddc * tlc
    prog = per(progress(trace)[0])
    parts = {
        "ego_progress": relative_progress(prog, multiplier),
        "time_to_collision": per(time_to_collision_score(trace)[0]),
        "lane_keeping": per(lane_keeping_score(trace)[0]),
        "history_comfort": per(history_comfort_score(trace)[0]),
        "extended_comfort": per(extended_comfort_score(trace)[0]),
    }
    obj, step = first_at_fault_collision(trace)
    return ProposalScores(
        no_at_fault_collision=nc,
        drivable_area=dac,
        driving_direction=ddc,
        traffic_light=tlc,
        multiplier=multiplier,
        progress_m=prog,
        total=combine(multiplier, parts, weights),
        collision_object=per(obj),
        collision_step=per(step),
        **parts,
    )


__all__ = [
    "PdmWeights",
    "ProposalScores",
    "combine",
    "first_at_fault_collision",
    "relative_progress",
    "score_proposals",
]
