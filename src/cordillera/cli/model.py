"""``cordillera model``: what a VLA configuration is (parameter counts, without weights)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cordillera.cli.errors import reports_errors

model_app = typer.Typer(help="VLA model configurations.", no_args_is_help=True)


@model_app.command("info")
@reports_errors
def info(
    config: Annotated[
        str, typer.Argument(metavar="CONFIG", help="tiny, student, teacher-10b or teacher-32b.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Parameter counts of a configuration, total and per part (built on the meta device: no
    memory is allocated, so the teachers are counted on a laptop)."""
    from cordillera.vla.config import get_config
    from cordillera.vla.info import parameter_counts

    cfg = get_config(config)
    counts = parameter_counts(cfg)
    parts = {k: v for k, v in counts.items() if k != "total"}
    if as_json:
        out = {"config": cfg.name, "num_parameters": counts["total"], "parts": parts}
        typer.echo(json.dumps(out))
        return
    typer.echo(f"{cfg.name}: {counts['total']:,} parameters ({counts['total'] / 1e9:.3f}B)")
    for name, n in parts.items():
        typer.echo(f"  {name:<14} {n:>15,}  ({100.0 * n / counts['total']:5.1f}%)")
