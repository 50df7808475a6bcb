"""Waymax-style metrics (waymo-research/waymax ``waymax/metrics``), aggregated over a rollout.

Waymax metrics are per step; a rollout's overlap is "any step overlapped" and its log
divergence the mean over steps where both the simulated and the logged object exist.
``offroad`` is shared with the AlpaSim set (same definition).
"""

from __future__ import annotations

from cordillera.metrics.registry import MetricResult, register
from cordillera.sim.rollout import RolloutTrace


@register("overlap")
def overlap(trace: RolloutTrace) -> MetricResult:
    """1 if the agent's box ever overlapped another valid object's box (any fault), else 0."""
    hit = (trace.checks.collision & trace.valid).any(1)
    return MetricResult.from_agents(hit.float(), trace.valid.any(1))


@register("log_divergence")
def log_divergence(trace: RolloutTrace) -> MetricResult:
    """Mean L2 distance (m) between the agent and its logged position at the same step."""
    ok = trace.checks.log_valid & trace.valid
    d = (trace.checks.distance_to_log_m * ok).sum(1) / ok.sum(1).clamp_min(1)
    return MetricResult.from_agents(d, ok.any(1))
