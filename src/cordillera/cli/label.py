"""``cordillera label``: turn driving logs into a labelled reasoning dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cordillera.cli.errors import reports_errors
from cordillera.label.config import LabelerConfig
from cordillera.label.run import label_dataset

console = Console()


@reports_errors
def label(
    scenes: Annotated[
        list[str], typer.Argument(help="Suite names, scene files or folders (in order).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Dataset folder (created or resumed).")],
    seed: Annotated[int, typer.Option(help="Seed of generated suites.")] = 0,
    width: Annotated[int, typer.Option(help="Camera image width, pixels.")] = 256,
    height: Annotated[int, typer.Option(help="Camera image height, pixels.")] = 144,
    frames: Annotated[int, typer.Option(help="Past frames per camera.")] = 4,
    rig: Annotated[str, typer.Option(help="auto (the log's rig if calibrated) or a preset.")] = (
        "auto"
    ),
    counterfactual: Annotated[
        bool, typer.Option(help="Prove causes by counterfactual re-simulation.")
    ] = True,
    planner: Annotated[str, typer.Option(help="Reactive planner of the re-simulations.")] = "idm",
    complete_s: Annotated[
        float,
        typer.Option(
            "--complete-s",
            help="Complete logs whose ego is logged for less than this many seconds by "
            "closed-loop simulation (CommonRoad planning problems); 0 = off.",
        ),
    ] = 10.0,
    gallery: Annotated[bool, typer.Option(help="Write gallery.html.")] = True,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Label keyframes of SCENES (decisions, proven causes, CoC, 2D groundings, camera frames)
    into the dataset at --out; an interrupted run resumes where it stopped."""
    cfg = LabelerConfig(
        image_width_px=width,
        image_height_px=height,
        frames=frames,
        rig=rig,
        counterfactual=counterfactual,
        planner=planner,
        completion_s=complete_s,
    )
    s = label_dataset(scenes, out, cfg, seed=seed, progress=progress, gallery=gallery)
    for line in s.not_scenes:
        console.print(f"skipped (not a scene): {line}", highlight=False)
    console.print(
        f"{s.scenes} scenes in {out} ({s.labelled} labelled now, {s.skipped_done} already "
        f"done): {s.samples} keyframes, {s.valid} valid, in {s.seconds:.1f} s",
        highlight=False,
    )
    if s.gallery is not None:
        console.print(f"gallery: {s.gallery}", highlight=False)
