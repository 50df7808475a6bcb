"""``cordillera demo``: the main job on the embedded default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cordillera.cli.errors import reports_errors

console = Console()

SHARED_NUSCENES = Path("../shared/data/scenarionet/nuscenes")


@reports_errors
def demo(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out/demo"),
    seed: Annotated[int, typer.Option(help="Random seed of the generated suite.")] = 0,
    policy: Annotated[str, typer.Option(help="Policy to evaluate.")] = "pdm",
    real: Annotated[
        Path | None,
        typer.Option(
            help="Real logs to evaluate too (default: the shared nuScenes-mini "
            "scenes when present; pass a missing path to skip)."
        ),
    ] = None,
) -> None:
    """Generate the default scene suite, draw it, and evaluate the default planner on it in
    closed loop with reactive traffic — and on the real logs when present — writing
    metrics.json and a self-contained report.html per run."""
    from tqdm import tqdm

    from cordillera.cli.eval import run_eval
    from cordillera.scene.generate import generate_suite
    from cordillera.scene.store import save_scene
    from cordillera.viz.bev import draw_scene

    scenes = generate_suite("default", seed=seed)
    (out / "scenes").mkdir(parents=True, exist_ok=True)
    for scene in tqdm(scenes, desc="drawing", unit="scene"):
        save_scene(scene, out / "scenes")
        draw_scene(scene, out / "pictures" / f"{scene.scene_id}.png")
    reports = []
    run_eval(policy, list(scenes), out / "generated")
    reports.append(out / "generated" / "report.html")
    real_path = SHARED_NUSCENES if real is None else real
    if real_path.exists():
        run_eval(policy, [real_path], out / "real")
        reports.append(out / "real" / "report.html")
    console.print(
        f"{len(scenes)} generated scenes in {out / 'scenes'}, pictures in {out / 'pictures'}"
    )
    for r in reports:
        console.print(f"report: [bold]{r}[/] (open in a browser)")
