"""``cordillera demo``: the main job on the embedded default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cordillera.cli.errors import reports_errors

console = Console()


@reports_errors
def demo(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out/demo"),
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Generate the default scene suite and draw every scene (the embedded default)."""
    from tqdm import tqdm

    from cordillera.scene.generate import generate_suite
    from cordillera.scene.store import save_scene
    from cordillera.viz.bev import draw_scene

    scenes = generate_suite("default", seed=seed)
    (out / "scenes").mkdir(parents=True, exist_ok=True)
    for scene in tqdm(scenes, desc="drawing", unit="scene"):
        save_scene(scene, out / "scenes")
        draw_scene(scene, out / f"{scene.scene_id}.png")
    console.print(f"{len(scenes)} scenes in {out / 'scenes'}; pictures in {out}")
