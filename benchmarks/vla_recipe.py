"""The tiny VLA recipe end to end, timed: auto-label a generated suite, train ``tiny`` on CPU,
score it open loop on generated scenes it never saw, drive it closed loop.

Every step is the public command line, run as a subprocess:

1. ``cordillera label SUITE --seed S --out WORK/train`` for every training suite and seed
   (one dataset: scene ids carry the seed)
2. ``cordillera label TEST_SUITE --seed TEST_SEED --out WORK/test`` (held-out scenes)
3. ``cordillera train sft --config tiny --data WORK/train --out WORK/run``
4. ``cordillera model eval WORK/run --data WORK/test --json``     (minADE vs constant velocity)
5. ``cordillera scenes generate WORK/closed --suite CLOSED --seed TEST_SEED`` (unseen scenes),
   then ``cordillera eval --policy P --scenes WORK/closed --max-seconds S`` for the VLA and,
   as the peer measured in the same run, constant velocity

Prints the wall time of each step and the figures: minADE / ADE at 3 s against constant
velocity, parse rate, reasoning-action consistency, decision accuracy, closed-loop EPDMS.

    python benchmarks/vla_recipe.py [--work DIR] [--steps-stage1 1000 --steps-stage2 6000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _run(name: str, cmd: list[str], timings: dict[str, float]) -> str:
    print(f"[{name}] {' '.join(cmd)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    timings[name] = round(time.perf_counter() - start, 1)
    print(f"[{name}] {timings[name]} s", file=sys.stderr, flush=True)
    return out.stdout


def _closed_loop(folder: Path) -> dict[str, Any]:
    aggregate = json.loads((folder / "metrics.json").read_text())["aggregate"]
    return {k: v for k, v in aggregate.items() if isinstance(v, int | float)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None, help="folder (default: a temp dir)")
    ap.add_argument("--train-suites", nargs="+", default=["basic", "long-tail"])
    ap.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--test-suite", default="basic")
    ap.add_argument("--test-seed", type=int, default=7)
    ap.add_argument("--steps-stage1", type=int, default=1000)
    ap.add_argument("--steps-stage2", type=int, default=6000)
    ap.add_argument("--closed-loop-scenes", default="default")
    ap.add_argument("--max-seconds", type=float, default=4.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="cordillera-vla-"))
    work.mkdir(parents=True, exist_ok=True)
    for sub in ("train", "test", "run", "closed", "eval", "eval_cv"):
        shutil.rmtree(work / sub, ignore_errors=True)
    exe = shutil.which("cordillera") or "cordillera"
    quiet = ["--no-progress"]
    timings: dict[str, float] = {}
    jobs = [("train", suite, seed) for suite in args.train_suites for seed in args.train_seeds]
    for name, suite, seed in [*jobs, ("test", args.test_suite, args.test_seed)]:
        if seed == args.test_seed and name == "train":
            raise SystemExit(f"training seed {seed} is the held-out seed")
        cmd = [exe, "label", suite, "--seed", str(seed), "--out", str(work / name)]
        _run(f"label_{name}_{suite}_s{seed}", cmd + quiet, timings)
    _run(
        "train",
        [
            exe,
            "train",
            "sft",
            "--config",
            "tiny",
            "--data",
            str(work / "train"),
            "--out",
            str(work / "run"),
            "--steps-stage1",
            str(args.steps_stage1),
            "--steps-stage2",
            str(args.steps_stage2),
        ],
        timings,
    )
    open_loop = json.loads(
        _run(
            "eval_open_loop",
            [exe, "model", "eval", str(work / "run"), "--data", str(work / "test"), "--json"],
            timings,
        )
    )
    closed = work / "closed"
    gen = [exe, "scenes", "generate", str(closed), "--suite", args.closed_loop_scenes]
    _run("generate_closed_loop_scenes", [*gen, "--seed", str(args.test_seed)], timings)
    for name, policy in (("eval", f"vla:{work / 'run'}"), ("eval_cv", "constant-velocity")):
        _run(
            f"closed_loop_{'vla' if name == 'eval' else 'cv'}",
            [
                exe,
                "eval",
                "--policy",
                policy,
                "--scenes",
                str(closed),
                "--max-seconds",
                str(args.max_seconds),
                "--out",
                str(work / name),
                "--no-report",
                *quiet,
            ],
            timings,
        )
    result = {
        "work": str(work),
        "seconds": timings,
        "open_loop": open_loop,
        "closed_loop": _closed_loop(work / "eval"),
        "closed_loop_constant_velocity": _closed_loop(work / "eval_cv"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return
    ol = open_loop
    print(f"work folder: {work}")
    for k, v in timings.items():
        print(f"  {k:18s} {v:8.1f} s")
    keys = ("epdms", "pdms", "offroad_rate", "at_fault_collision_rate", "ego_progress")
    print(json.dumps({"open_loop": ol}, indent=2))
    for name in ("closed_loop", "closed_loop_constant_velocity"):
        print(name, {k: result[name].get(k) for k in keys})
    print(f"load average: {result['load_average']}")


if __name__ == "__main__":
    main()
