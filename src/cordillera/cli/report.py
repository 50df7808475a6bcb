"""``cordillera report``: rebuild a report from saved runs, several side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cordillera.cli.errors import reports_errors

console = Console()


@reports_errors
def report(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(metavar="RUN_DIR...", help="Run folders written by 'cordillera eval'."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Output HTML file.")] = Path("report.html"),
    title: Annotated[str | None, typer.Option(help="Title of the report.")] = None,
) -> None:
    """Write one self-contained HTML report of one or several evaluation runs (compared side
    by side, scene by scene)."""
    from cordillera.eval.report import write_report
    from cordillera.eval.results import load_run, print_comparison

    print_comparison([load_run(d).table for d in run_dirs], console)
    path = write_report(run_dirs, out, title)
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
