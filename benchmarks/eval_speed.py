"""Wall time of ``cordillera eval`` on the shared real scenes, with the default planner.

    python benchmarks/eval_speed.py [--policy pdm] [--sources nuscenes] [--traffic idm]
                                    [--max-seconds S] [--cameras 3] [--json]

Calls the same function as the command, in-process (``cordillera.cli.eval.run_eval``): one
batch of every real scene under ``../shared/data`` whose step is 0.1 s (others are skipped
and listed, as are scenes shorter than 2 s and files that are not scenes), a run folder with
``metrics.json`` and ``report.html`` in a temporary directory. Prints the wall seconds and
the simulated scene-seconds per wall second, with the time of each phase.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from _common import SHARED_DATA
from cordillera.cli.eval import run_eval
from cordillera.errors import CordilleraError
from cordillera.scene.model import Scene
from cordillera.scene.readers import find_sources, read_scene

SOURCES = {
    "nuscenes": SHARED_DATA / "scenarionet" / "nuscenes",
    "av2": SHARED_DATA / "av2",
    "commonroad": SHARED_DATA / "commonroad",
}
DT_S = 0.1
MIN_SECONDS = 2.0


def load(names: list[str]) -> tuple[list[Scene], list[str]]:
    """Scenes of the named sources that fit one 10 Hz batch, and why the others were left out."""
    scenes: list[Scene] = []
    skipped: list[str] = []
    for name in names:
        root = SOURCES[name]
        if not root.exists():
            skipped.append(f"{name}: no data at {root}")
            continue
        for path, fmt in find_sources(root):
            try:
                scene = read_scene(path, fmt)
            except CordilleraError as e:  # e.g. AV2 scenario-mining pickles are not scenes
                skipped.append(f"{path.name}: not a scene ({type(e).__name__})")
                continue
            if abs(scene.dt_s - DT_S) > 1e-9:
                skipped.append(f"{scene.scene_id}: dt {scene.dt_s} s, not {DT_S} s")
            elif scene.duration_s < MIN_SECONDS:
                skipped.append(f"{scene.scene_id}: {scene.duration_s:.1f} s long")
            elif scene.scene_id in {s.scene_id for s in scenes}:
                skipped.append(f"{scene.scene_id}: duplicate id")
            else:
                scenes.append(scene)
    return scenes, skipped


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--policy", default="pdm")
    parser.add_argument("--sources", nargs="+", choices=sorted(SOURCES), default=sorted(SOURCES))
    parser.add_argument("--traffic", choices=("idm", "log"), default="idm")
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--cameras", type=int, default=3, help="snapshots per scene")
    parser.add_argument("--out", type=Path, default=None, help="keep the run folder here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    scenes, skipped = load(args.sources)
    read_s = time.perf_counter() - start
    if not scenes:
        print(f"no real scenes under {SHARED_DATA}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "run"
        start = time.perf_counter()
        result = run_eval(
            args.policy,
            scenes,
            out,
            traffic=args.traffic,
            max_seconds=args.max_seconds,
            cameras=args.cameras,
            progress=not args.json,
            out_console=Console(file=sys.stderr) if args.json else None,  # stdout: JSON only
        )
        wall = time.perf_counter() - start
        report_mb = (out / "report.html").stat().st_size / 1e6
    record = {
        "policy": args.policy,
        "traffic": args.traffic,
        "num_scenes": len(scenes),
        "sources": args.sources,
        "skipped": skipped,
        "read_s": round(read_s, 3),
        "wall_s": round(wall, 3),
        "scene_seconds": round(result.scene_seconds, 1),
        "scene_seconds_per_s": round(result.scene_seconds / wall, 2),
        "phases_s": {k: round(v, 3) for k, v in result.timings_s.items()},
        "report_mb": round(report_mb, 2),
        "epdms": result.table.aggregate.get("epdms"),
    }
    if args.json:
        print(json.dumps(record))
        return 0
    print(f"skipped {len(skipped)}: " + "; ".join(skipped))
    print(
        f"{args.policy} on {len(scenes)} scenes ({', '.join(args.sources)}; read in "
        f"{read_s:.1f} s): wall {wall:.1f} s for {result.scene_seconds:.0f} scene-seconds "
        f"= {record['scene_seconds_per_s']} scene-seconds/s; report {report_mb:.1f} MB"
    )
    print("phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings_s.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
