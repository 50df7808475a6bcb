"""``cordillera simulate``: roll a scene out in closed loop and write an animated GIF."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cordillera.cli.errors import reports_errors
from cordillera.errors import CordilleraError

console = Console()


@reports_errors
def simulate(
    scene_path: Annotated[Path, typer.Argument(metavar="SCENE", help="A scene or source file.")],
    out: Annotated[Path, typer.Option("--out", help="Output animated GIF.")] = Path("rollout.gif"),
    traffic: Annotated[str, typer.Option(help="idm (reactive) or log (replay).")] = "idm",
    seconds: Annotated[float | None, typer.Option(help="Length (default: whole log).")] = None,
    fps: Annotated[float, typer.Option(help="Frames per second of the GIF.")] = 10.0,
    size_px: Annotated[int, typer.Option(help="Side of the square frames in pixels.")] = 560,
) -> None:
    """Replay the ego's logged path through the plan controller with reactive traffic, and
    write the rollout as an animated bird's-eye GIF with the metrics in the caption."""
    from tqdm import tqdm

    from cordillera.scene.readers import find_sources, read_scene
    from cordillera.sim.config import SimConfig
    from cordillera.sim.simulator import Simulator
    from cordillera.viz.frames import FrameDrawer, state_frame, write_gif

    if traffic not in ("idm", "log"):
        raise CordilleraError(f"--traffic must be idm or log, got {traffic!r}")
    if seconds is not None and not seconds > 0:
        raise CordilleraError(f"--seconds must be > 0, got {seconds}")
    if not fps > 0:
        raise CordilleraError(f"--fps must be > 0, got {fps}")
    if size_px < 64:
        raise CordilleraError(f"--size-px must be >= 64, got {size_px}")
    sources = find_sources(scene_path)
    if len(sources) != 1:
        raise CordilleraError(f"{scene_path} holds {len(sources)} scenes; give one")
    scene = read_scene(*sources[0])
    sim = Simulator([scene], SimConfig(traffic=traffic))  # type: ignore[arg-type]
    state = sim.reset()
    steps = scene.num_steps - 1
    if seconds is not None:
        steps = min(steps, max(1, round(seconds / scene.dt_s)))
    drawer = FrameDrawer(scene, sim.batch.origin_world_xy_m[0].cpu().numpy(), size_px=size_px)
    agents = sim.ego_index.view(1, 1)
    frames = [state_frame(drawer, sim.batch, sim.scene_of, state, 0, f"t = 0.0 s  {traffic}")]
    checks = None
    collided = offroad = False
    for i in tqdm(range(steps), desc="simulating", unit="step"):
        nxt = sim.step_plan(state, sim.log_plan(state, agents=agents), agents)
        checks = sim.checks(agents, state, nxt, checks)
        collided |= bool(checks.at_fault_collision[0, 0])
        offroad |= bool(checks.offroad[0, 0])
        state = nxt
        caption = (
            f"t = {(i + 1) * scene.dt_s:4.1f} s  {traffic} traffic\n"
            f"speed {float(state.speed_mps[0, int(agents[0, 0])]):5.1f} m/s\n"
            f"at-fault collision: {'yes' if collided else 'no'}\n"
            f"off-road: {'yes' if offroad else 'no'}"
        )
        frames.append(state_frame(drawer, sim.batch, sim.scene_of, state, 0, caption))
    drawer.close()
    write_gif(frames, out, fps=fps)
    console.print(f"wrote {out} ({len(frames)} frames)")
