"""``cordillera render``: one montage picture of a scene's surround cameras and bird's-eye view."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cordillera.cli.errors import reports_errors
from cordillera.errors import ConfigError, CordilleraError


@reports_errors
def render(
    scene_path: Annotated[
        Path,
        typer.Argument(
            metavar="SCENE",
            help="A scene: .scene.safetensors, ScenarioNet .pkl, CommonRoad .xml, "
            "or an Argoverse 2 folder.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Output PNG.")] = Path("ring.png"),
    time_s: Annotated[float, typer.Option("--time", help="Scene time in seconds.")] = 0.0,
    rig_name: Annotated[
        str,
        typer.Option(
            "--rig", help="ring7, ring6, av2 (scenes with Argoverse 2 calibration) or a rig .json."
        ),
    ] = "ring7",
    width_px: Annotated[int, typer.Option("--width", help="Camera image width.")] = 384,
    height_px: Annotated[int, typer.Option("--height", help="Camera image height.")] = 216,
) -> None:
    """Render every camera of a rig at one time of a scene, around a bird's-eye view."""
    import torch

    from cordillera.scene.readers import find_sources, read_scene
    from cordillera.sensors.bev import BevConfig, bev_to_rgb, render_bev
    from cordillera.sensors.montage import ring_montage
    from cordillera.sensors.presets import get_rig
    from cordillera.sensors.renderer import get_renderer
    from cordillera.sensors.world import RenderBatch

    sources = find_sources(scene_path)
    if len(sources) != 1:
        raise CordilleraError(f"{scene_path} holds {len(sources)} scenes; give one")
    scene = read_scene(*sources[0])
    if not 0.0 <= time_s <= scene.duration_s + 1e-9:
        raise ConfigError(f"--time {time_s} s outside the scene's [0, {scene.duration_s:.2f}] s")
    step = round(time_s / scene.dt_s)
    rig = get_rig(rig_name, width_px, height_px, scene=scene)
    batch = RenderBatch.from_scene(scene, [step])
    with torch.inference_mode():
        frames = get_renderer("raster").render(batch, rig)
        bev = bev_to_rgb(
            render_bev(batch, BevConfig(height_px=160, width_px=160, resolution_m=0.5))
        )
    title = (
        f"{scene.source}: {scene.scene_id}  t = {step * scene.dt_s:.1f} s  "
        f"rig {rig.name} ({rig.num_cameras} cameras)"
    )
    img = ring_montage(frames.rgb[0].contiguous().numpy(), rig, bev[0].numpy(), title)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    typer.echo(f"wrote {out}")
