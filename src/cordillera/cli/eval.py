"""``cordillera eval``: drive a policy in closed loop on scenes, score it, write a report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from cordillera.cli.errors import reports_errors
from cordillera.errors import ConfigError

if TYPE_CHECKING:
    from cordillera.eval.runner import EvalResult
    from cordillera.scene.model import Scene
    from cordillera.sim.config import TrafficMode

console = Console()


def load_scenes(specs: Sequence[str | Path | Scene] | None) -> list[Scene]:
    """Scenes of every ``--scenes`` value (a suite name, a scene file or a folder of them, or
    a loaded :class:`Scene`), concatenated; the generated ``default`` suite when none is given."""
    from cordillera.env.scenes import resolve_scenes
    from cordillera.scene.model import Scene

    if not specs:
        return resolve_scenes("default")
    out: list[Scene] = []
    for spec in specs:
        found = [spec] if isinstance(spec, Scene) else resolve_scenes(spec)
        if not found:
            raise ConfigError(f"--scenes {spec!r} holds no scene")
        out.extend(found)
    ids = [s.scene_id for s in out]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ConfigError(f"scene ids appear more than once: {', '.join(dupes[:5])}")
    return out


def run_eval(
    policy: str,
    scenes: Sequence[str | Path | Scene] | None,
    out: Path,
    *,
    traffic: str = "idm",
    max_seconds: float | None = None,
    repeats: int = 1,
    seed: int = 0,
    cameras: int = 3,
    device: str = "cpu",
    report: bool = True,
    progress: bool = True,
    out_console: Console | None = None,
    driver: str | None = None,
) -> EvalResult:
    """What ``cordillera eval`` does (the benchmark calls it in-process): resolve the policy
    and scenes, evaluate, print the table (to ``out_console``, default stdout), return the
    result."""
    import time

    from cordillera.eval.results import print_table
    from cordillera.eval.runner import EvalConfig, evaluate
    from cordillera.policy.registry import get_policy

    if traffic not in ("idm", "log"):
        raise ConfigError(f"--traffic must be idm or log, got {traffic!r}")
    config = EvalConfig(
        repeats=repeats,
        max_seconds=max_seconds,
        seed=seed,
        device=device,
        camera_snapshots=cameras,
        report=report,
        progress=progress,
    )
    mode: TrafficMode = "log" if traffic == "log" else "idm"
    start = time.perf_counter()
    loaded = load_scenes(scenes)
    if driver is not None:  # an external egodriver service decides (cordillera.service)
        from cordillera.service.client import RemoteDriverPolicy

        with RemoteDriverPolicy.connect(driver) as remote:
            result = evaluate(remote, loaded, mode, out, config)
    else:
        result = evaluate(get_policy(policy), loaded, mode, out, config)
    result.timings_s["load"] = time.perf_counter() - start - sum(result.timings_s.values())
    con = out_console or console
    print_table(result.table, con)
    wall = sum(result.timings_s.values())
    con.print(
        f"{result.scene_seconds:.0f} scene-seconds in {wall:.1f} s "
        f"({result.scene_seconds / max(wall, 1e-9):.0f} scene-s/s; simulation "
        f"{result.timings_s.get('simulate', 0.0):.1f} s)"
    )
    con.print(f"wrote {out / 'metrics.json'}" + (f", {out / 'report.html'}" if report else ""))
    return result


@reports_errors
def eval_command(
    policy: Annotated[
        str, typer.Option(help="Policy name (log-replay, constant-velocity, idm, pdm...).")
    ] = "pdm",
    scenes: Annotated[
        list[str] | None,
        typer.Option(
            "--scenes",
            help="A suite name, a scene file or a folder; repeat for several "
            "(default: the generated 'default' suite).",
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Run folder to write.")] = Path("out/eval"),
    traffic: Annotated[str, typer.Option(help="idm (reactive) or log (replay).")] = "idm",
    max_seconds: Annotated[
        float | None, typer.Option(help="Simulated seconds per scene at most.")
    ] = None,
    repeats: Annotated[int, typer.Option(help="Rollouts per scene.")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    cameras: Annotated[int, typer.Option(help="Camera-ring snapshots per scene.")] = 3,
    device: Annotated[str, typer.Option(help="torch device.")] = "cpu",
    report: Annotated[bool, typer.Option(help="Write report.html into the run folder.")] = True,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    driver: Annotated[
        str | None,
        typer.Option(help="grpc://HOST:PORT of an egodriver service to drive (replaces --policy)."),
    ] = None,
) -> None:
    """Evaluate a policy in closed loop: all scenes in one batch; writes metrics.json,
    the run's arrays and a self-contained report.html into --out."""
    run_eval(
        policy,
        scenes,
        out,
        traffic=traffic,
        max_seconds=max_seconds,
        repeats=repeats,
        seed=seed,
        cameras=cameras,
        device=device,
        report=report,
        progress=progress,
        driver=driver,
    )
