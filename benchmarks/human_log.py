"""The human log driven through the simulator: metrics per real nuScenes-mini scene.

    python benchmarks/human_log.py [--traffic log|idm] [--json]

The ego follows its logged path through the plan controller; other agents replay their logs
(``--traffic idm`` makes them reactive). NAVSIM reports its human agent at PDMS ≈ 0.95.
"""

from __future__ import annotations

import argparse
import json
import sys

from _common import SHARED_DATA
from cordillera.metrics import compute_metrics
from cordillera.scene.readers import find_sources, read_scene
from cordillera.sim.config import SimConfig
from cordillera.sim.runner import run_rollout
from cordillera.sim.simulator import Simulator

COLUMNS = (
    "pdms",
    "epdms",
    "at_fault_collision",
    "offroad",
    "history_comfort",
    "lane_keeping",
    "distance_to_log_mean",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traffic", choices=("log", "idm"), default="log")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = SHARED_DATA / "scenarionet" / "nuscenes"
    if not root.exists():
        print(f"no data at {root}", file=sys.stderr)
        return 1
    scenes = [read_scene(p, f) for p, f in find_sources(root)]
    sim = Simulator(scenes, SimConfig(traffic=args.traffic))
    trace, _ = run_rollout(sim, sim.log_plan)
    res = compute_metrics(trace, list(COLUMNS))
    rows = [
        {"scene_id": s.scene_id, **{c: float(res[c].value[i]) for c in COLUMNS}}
        for i, s in enumerate(scenes)
    ]
    mean = {c: float(res[c].mean()) for c in COLUMNS}
    if args.json:
        print(json.dumps({"traffic": args.traffic, "scenes": rows, "mean": mean}))
        return 0
    print(f"{'scene':12s}" + "".join(f"{c[:12]:>13s}" for c in COLUMNS))
    for r in rows:
        print(f"{r['scene_id']:12s}" + "".join(f"{r[c]:13.3f}" for c in COLUMNS))
    print(f"{'mean':12s}" + "".join(f"{mean[c]:13.3f}" for c in COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
