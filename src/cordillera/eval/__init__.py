"""Closed-loop evaluation of driving policies: run, score, save, report.

``evaluate(policy, scenes, traffic, out_dir)`` drives any :class:`~cordillera.policy.base.Policy`
on a batch of scenes and writes ``metrics.json`` and ``report.html``; ``write_report`` rebuilds
a report (or a side-by-side comparison) from saved run folders.
"""

from cordillera.eval.report import write_report
from cordillera.eval.results import MetricsTable, load_run, print_table
from cordillera.eval.runner import EvalConfig, EvalResult, evaluate

__all__ = [
    "EvalConfig",
    "EvalResult",
    "MetricsTable",
    "evaluate",
    "load_run",
    "print_table",
    "write_report",
]
