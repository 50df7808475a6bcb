"""Metric results, and the registry that names every metric and fails loudly on unknown names.

A metric is a pure function ``RolloutTrace -> MetricResult``. Every metric is defined per
agent of interest ``(B, M)``; the headline value is the ego's (agent 0 by contract), and the
per-agent values are kept for self-play evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from cordillera.errors import CordilleraError
from cordillera.sim.rollout import RolloutTrace


class UnknownMetricError(CordilleraError, KeyError):
    """A metric name that is not registered; the message lists the registered names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True, eq=False)
class MetricResult:
    """A metric over B rollouts: the ego's value and whether it is defined.

    Attributes:
        value: ``(B,)`` float32; 0 where not ``valid``.
        valid: ``(B,)`` bool; False where the metric is undefined (e.g. no route, no log).
        per_agent_value: ``(B, M)`` the same for every agent of interest (column 0 is the
            ego), or None where only the ego is meaningful.
        per_agent_valid: ``(B, M)`` bool, with ``per_agent_value``.
    """

    value: torch.Tensor
    valid: torch.Tensor
    per_agent_value: torch.Tensor | None = None
    per_agent_valid: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.value.ndim != 1 or self.valid.shape != self.value.shape:
            raise CordilleraError(
                f"MetricResult value {tuple(self.value.shape)} and valid "
                f"{tuple(self.valid.shape)} must both be (B,)"
            )
        if (self.per_agent_value is None) != (self.per_agent_valid is None):
            raise CordilleraError("MetricResult per-agent value and validity come together")
        if (
            self.per_agent_value is not None
            and self.per_agent_valid is not None
            and (
                self.per_agent_value.ndim != 2
                or self.per_agent_value.shape[0] != self.value.shape[0]
                or self.per_agent_valid.shape != self.per_agent_value.shape
            )
        ):
            raise CordilleraError(
                f"MetricResult per-agent tensors {tuple(self.per_agent_value.shape)} and "
                f"{tuple(self.per_agent_valid.shape)} must both be (B, M)"
            )

    @staticmethod
    def from_agents(value: torch.Tensor, valid: torch.Tensor) -> MetricResult:
        """From per-agent ``(B, M)`` tensors; the ego is column 0."""
        value = torch.where(valid, value.float(), 0.0)
        return MetricResult(value[:, 0], valid[:, 0], value, valid)

    def mean(self) -> torch.Tensor:
        """0-dim mean of ``value`` over valid rollouts (NaN when none is valid)."""
        n = self.valid.sum()
        total = torch.where(self.valid, self.value, 0.0).sum()
        return torch.where(n > 0, total / n.clamp_min(1), torch.nan)


MetricFn = Callable[[RolloutTrace], MetricResult]
_REGISTRY: dict[str, MetricFn] = {}


def register(name: str) -> Callable[[MetricFn], MetricFn]:
    """Decorator registering ``fn`` under ``name``; a second registration of a name raises."""

    def deco(fn: MetricFn) -> MetricFn:
        if name in _REGISTRY:
            raise CordilleraError(f"metric {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return deco


def list_metrics() -> list[str]:
    """Registered metric names, sorted."""
    return sorted(_REGISTRY)


def get_metric(name: str) -> MetricFn:
    """The metric function named ``name``; raises :class:`UnknownMetricError` otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownMetricError(
            f"unknown metric {name!r}; registered metrics: {', '.join(list_metrics())}"
        ) from None


def compute_metrics(
    trace: RolloutTrace, names: Sequence[str] | None = None
) -> dict[str, MetricResult]:
    """Compute ``names`` (default: every registered metric) on ``trace``.

    All names are resolved before any is computed, so a typo fails fast; a metric that
    raises propagates (no metric silently disappears from the result).
    """
    wanted = list_metrics() if names is None else list(names)
    fns = [(n, get_metric(n)) for n in wanted]
    return {n: fn(trace) for n, fn in fns}


def summarize(results: Mapping[str, MetricResult]) -> dict[str, float]:
    """Aggregate each metric to a float: the mean over valid rollouts (NaN if none)."""
    return {name: float(r.mean()) for name, r in results.items()}
