"""AlpaSim-style rollout metrics and scene score (NVlabs/alpasim ``src/eval``).

AlpaSim scores a rollout 0 after an at-fault collision or leaving the road, and otherwise by
progress relative to the recorded drive, saturating at 80 % (``aggregation/scene_score.py``,
``schema.py`` ``SceneScoreConfig``). Collisions use Cordillera's at-fault rule (NAVSIM's; see
``docs/metrics.md``) with the once-per-object bookkeeping.
"""

from __future__ import annotations

import torch

from cordillera.metrics.common import LOW_PROGRESS_M, counted_at_fault, progress
from cordillera.metrics.registry import MetricResult, register
from cordillera.sim.rollout import RolloutTrace

PROGRESS_SATURATION = 0.8
"""AlpaSim SceneScoreConfig.progress_saturation_threshold."""


def _progress_ratio(trace: RolloutTrace) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    prog, ref, ok = progress(trace)
    ratio = (prog / ref.clamp_min(1e-6)).clamp_min(0.0)
    return ratio, ref, ok


@register("at_fault_collision")
def at_fault_collision(trace: RolloutTrace) -> MetricResult:
    """1 if the agent had a counted at-fault collision, else 0."""
    hit = counted_at_fault(trace).any(1)
    return MetricResult.from_agents(hit.float(), trace.valid.any(1))


@register("offroad")
def offroad(trace: RolloutTrace) -> MetricResult:
    """1 if a box corner ever left the drivable area, else 0 (AlpaSim and Waymax alike)."""
    off = (trace.checks.offroad & trace.valid).any(1)
    return MetricResult.from_agents(off.float(), trace.valid.any(1))


@register("progress_ratio")
def progress_ratio(trace: RolloutTrace) -> MetricResult:
    """Route progress over the logged human's progress in the same steps, in [0, 1+].

    Undefined without a route or a reference of at least 5 m (a ratio to a near-zero
    reference says nothing)."""
    ratio, ref, ok = _progress_ratio(trace)
    return MetricResult.from_agents(ratio, ok & (ref >= LOW_PROGRESS_M))


def _distance_to_log(trace: RolloutTrace) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ok = trace.checks.log_valid & trace.valid
    d = torch.where(ok, trace.checks.distance_to_log_m, 0.0)
    n = ok.sum(1)
    return d.sum(1) / n.clamp_min(1), d.amax(1), n > 0


@register("distance_to_log_mean")
def distance_to_log_mean(trace: RolloutTrace) -> MetricResult:
    """Mean distance (m) to the agent's logged position at the same step, over logged steps."""
    mean, _, ok = _distance_to_log(trace)
    return MetricResult.from_agents(mean, ok)


@register("distance_to_log_max")
def distance_to_log_max(trace: RolloutTrace) -> MetricResult:
    """Largest distance (m) to the agent's logged position at the same step."""
    _, peak, ok = _distance_to_log(trace)
    return MetricResult.from_agents(peak, ok)


@register("alpasim_score")
def alpasim_score(trace: RolloutTrace) -> MetricResult:
    """0 after an at-fault collision or off-road; else min(1, clip(progress ratio, 0, 1) /
    0.8), and 1 when the human moved less than 5 m."""
    ratio, ref, ok = _progress_ratio(trace)
    fail = counted_at_fault(trace).any(1) | (trace.checks.offroad & trace.valid).any(1)
    prog = torch.where(
        ref < LOW_PROGRESS_M, 1.0, (ratio.clamp(0.0, 1.0) / PROGRESS_SATURATION).clamp(max=1.0)
    )
    return MetricResult.from_agents(torch.where(fail, 0.0, prog), ok)
