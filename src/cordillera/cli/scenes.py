"""``cordillera scenes``: convert, generate, inspect and draw scenes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cordillera.cli.errors import err_console, reports_errors
from cordillera.errors import CordilleraError
from cordillera.scene.model import Scene
from cordillera.scene.readers import FORMATS, find_sources, read_all, read_scene
from cordillera.scene.store import SUFFIX, save_scene

scenes_app = typer.Typer(help="Convert, generate, inspect and draw scenes.", no_args_is_help=True)
console = Console()


def scene_summary(scene: Scene) -> dict[str, object]:
    """The facts ``scenes info`` prints about one scene."""
    extra = scene.extra
    summary: dict[str, object] = {
        "scene_id": scene.scene_id,
        "source": scene.source,
        "num_objects": scene.num_objects,
        "num_steps": scene.num_steps,
        "dt_s": scene.dt_s,
        "duration_s": round(scene.duration_s, 6),
        "ego_id": scene.ego_id,
        "num_lanes": scene.map.num_lanes,
        "num_road_lines": len(scene.map.road_lines),
        "num_crosswalks": len(scene.map.crosswalks),
        "num_signals": int(scene.signals.lane.shape[0]),
        "num_stop_signs": int(scene.map.stop_sign_xyz_m.shape[0]),
        "license": scene.license,
    }
    for key in ("designed_cause_object_id", "designed_decision", "tags"):
        if key in extra:
            summary[key] = extra[key]
    return summary


@scenes_app.command()
@reports_errors
def convert(
    src: Annotated[Path, typer.Argument(help="A source file or a folder of sources.")],
    dst: Annotated[Path, typer.Argument(help="Output folder for .scene.safetensors files.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help=f"Source format: {', '.join(FORMATS)}.")
    ] = None,
) -> None:
    """Convert real logs into the native scene store (one file per scene)."""
    from tqdm import tqdm

    sources = find_sources(src, fmt)
    if not sources:
        raise CordilleraError(f"no scene sources found under {src}")
    dst.mkdir(parents=True, exist_ok=True)
    written = 0
    bar = tqdm(total=len(sources), desc="converting", unit="source")
    for _, scene in read_all(src, fmt, on_skip=_report_skip):
        save_scene(scene, dst)
        written += 1
        bar.update(1)
    bar.close()
    console.print(f"wrote {written} scene(s) to {dst}")


def _report_skip(path: Path, error: CordilleraError) -> None:
    err_console.print(f"[yellow]skipped[/] {path}: {getattr(error, 'reason', error)}")


@scenes_app.command()
@reports_errors
def generate(
    dst: Annotated[Path, typer.Argument(help="Output folder.")],
    suite: Annotated[str, typer.Option(help="Suite name (see `cordillera scenes suites`).")] = (
        "default"
    ),
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same scenes.")] = 0,
) -> None:
    """Generate a procedural scene suite into DST."""
    from cordillera.scene.generate import generate_suite

    scenes = generate_suite(suite, seed=seed)
    dst.mkdir(parents=True, exist_ok=True)
    for scene in scenes:
        save_scene(scene, dst)
    console.print(f"wrote {len(scenes)} scene(s) of suite {suite!r} (seed {seed}) to {dst}")


@scenes_app.command()
def suites() -> None:
    """List the procedural scene suites."""
    from cordillera.scene.generate import SUITES

    table = Table(title="scene suites (cordillera scenes generate --suite NAME DST)")
    table.add_column("suite")
    table.add_column("what")
    for name in sorted(SUITES):
        table.add_row(name, SUITES[name].description)
    console.print(table)


@scenes_app.command()
@reports_errors
def info(
    path: Annotated[Path, typer.Argument(help="A scene, a source, or a folder of them.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (one object per scene).")
    ] = False,
) -> None:
    """Print what each scene holds."""
    rows = [scene_summary(scene) for _, scene in read_all(path, on_skip=_report_skip)]
    if as_json:
        print(json.dumps(rows[0] if len(rows) == 1 and path.is_file() else rows, indent=2))
        return
    table = Table(title=f"{len(rows)} scene(s)")
    cols = [
        "scene_id",
        "source",
        "num_objects",
        "num_steps",
        "dt_s",
        "ego_id",
        "num_lanes",
        "num_signals",
    ]
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*(str(r[c]) for c in cols))
    console.print(table)


@scenes_app.command()
@reports_errors
def show(
    path: Annotated[Path, typer.Argument(help="A scene or source file.")],
    out: Annotated[Path, typer.Option("--out", help="Output PNG.")],
    step: Annotated[
        int | None, typer.Option(help="Step to draw boxes at (default: middle).")
    ] = None,
) -> None:
    """Draw a bird's-eye view: lanes, lines, crosswalks, tracks by type, ego highlighted."""
    from cordillera.viz.bev import draw_scene

    sources = find_sources(path)
    if len(sources) != 1:
        raise CordilleraError(f"{path} holds {len(sources)} scenes; give one")
    scene = read_scene(*sources[0])
    draw_scene(scene, out, step=step)
    console.print(f"wrote {out}")


__all__ = ["SUFFIX", "scenes_app"]
