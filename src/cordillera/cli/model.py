"""``cordillera model``: what a VLA configuration is (parameter counts, without weights), and
how a trained one does open loop on labelled samples (``model eval``)."""

from __future__ import annotations

import json
from pathlib import Path
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


@model_app.command("eval")
@reports_errors
def eval_(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="A training run directory.")],
    data: Annotated[
        Path, typer.Option("--data", help="Held-back labelled dataset (cordillera label).")
    ],
    samples: Annotated[int, typer.Option("--samples", help="Flow draws per decision.")] = 6,
    holdout: Annotated[
        float,
        typer.Option(
            "--holdout",
            help="Fraction of DATA's samples scored (the last ones, by sample id); 1 = all.",
        ),
    ] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Open-loop metrics of a trained VLA on labelled samples (minADE / ADE at 0.5, 1, 3,
    5 s vs constant velocity, meta-action and decision accuracy, parse rate, reasoning-action
    consistency); written to RUN/eval_metrics.json."""
    import time

    from cordillera.errors import ConfigError
    from cordillera.vla.data import build_training_set, load_training_samples, png_reader
    from cordillera.vla.evaluate import evaluate_open_loop, write_metrics
    from cordillera.vla.text import sample_meta_actions
    from cordillera.vla.train import load_run_model

    if not 0.0 < holdout <= 1.0:
        raise ConfigError(f"--holdout must be in (0, 1], got {holdout}")
    t0 = time.perf_counter()
    model = load_run_model(run)
    rows = sorted(load_training_samples(data), key=lambda s: s.sample_id)
    rows = rows[len(rows) - max(1, round(holdout * len(rows))) :]
    data_set = build_training_set(rows, model, png_reader(data))
    metrics = evaluate_open_loop(
        model,
        data_set,
        [sample_meta_actions(s) for s in rows],
        [(s.decision_longitudinal, s.decision_lateral) for s in rows],
        samples=samples,
    )
    extra: dict[str, object] = {
        "run": str(run),
        "data": str(data),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    path = write_metrics(metrics, run, extra)
    if as_json:
        typer.echo(json.dumps({**extra, **metrics.to_json()}))
        return
    m = metrics
    typer.echo(f"{m.samples} samples, {m.flow_samples} flow draws each -> {path}")
    for key in m.ade_m:
        typer.echo(
            f"  @{key}: minADE {m.min_ade_m[key]:.2f} m  ADE {m.ade_m[key]:.2f} m  "
            f"CV {m.cv_ade_m[key]:.2f} m"
        )
    typer.echo(f"  meta accuracy {m.meta_accuracy}  decision accuracy {m.decision_accuracy}")
    typer.echo(f"  parse rate {m.parse_rate:.3f}  consistency {m.consistency:.3f}")
