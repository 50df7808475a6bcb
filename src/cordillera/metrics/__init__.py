"""Closed-loop driving metrics: NAVSIM (PDMS, EPDMS), AlpaSim-style and Waymax-style.

Importing the package registers every metric; see ``docs/metrics.md`` for definitions.
"""

from cordillera.metrics import alpasim, navsim, waymax
from cordillera.metrics.registry import (
    MetricFn,
    MetricResult,
    UnknownMetricError,
    compute_metrics,
    get_metric,
    list_metrics,
    register,
    summarize,
)

__all__ = [
    "MetricFn",
    "MetricResult",
    "UnknownMetricError",
    "alpasim",
    "compute_metrics",
    "get_metric",
    "list_metrics",
    "navsim",
    "register",
    "summarize",
    "waymax",
]
