"""Auto-labeler throughput: keyframes labelled per second, counterfactuals on.

Labels the generated long-tail suite (and, with ``--real``, the nuScenes-mini logs under
../shared/data) scene by scene as ``cordillera label`` does — keyframes, candidates, one
counterfactual simulator batch per scene, decisions, CoC, validation — with and without
rendering the camera frames and groundings (7 cameras x 4 frames at 256x144). Prints
keyframes/s and where the time goes.

    python benchmarks/label_throughput.py [--scenes N] [--real] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from _common import SHARED_DATA
from cordillera.label.config import LabelerConfig
from cordillera.label.pipeline import label_scene
from cordillera.scene.generate import generate_suite
from cordillera.scene.model import Scene
from cordillera.scene.readers import find_sources, read_scene


def _run(scenes: list[Scene], cfg: LabelerConfig, render: bool) -> dict[str, float]:
    keyframes = rollouts = 0
    start = time.perf_counter()
    for scene in scenes:
        out = label_scene(scene, cfg, render=render)
        keyframes += len(out.samples)
        rollouts += sum(1 + len(s.evidence) for s in out.samples)
    seconds = time.perf_counter() - start
    return {
        "scenes": len(scenes),
        "keyframes": keyframes,
        "counterfactual_rollouts": rollouts,
        "seconds": round(seconds, 2),
        "keyframes_per_s": round(keyframes / seconds, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=10, help="long-tail scenes to label")
    ap.add_argument("--real", action="store_true", help="also the nuScenes-mini logs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = LabelerConfig()
    suites = {"long-tail": generate_suite("long-tail", seed=0)[: args.scenes]}
    nus = SHARED_DATA / "scenarionet" / "nuscenes"
    if args.real and nus.exists():
        suites["nuscenes-mini"] = [read_scene(p, f) for p, f in find_sources(nus)]
    results = {}
    for name, scenes in suites.items():
        for render in (False, True):
            key = f"{name} {'with' if render else 'without'} cameras"
            results[key] = _run(scenes, cfg, render)
    if args.json:
        print(json.dumps(results))
        return
    print(f"{'set':42s} {'scenes':>6s} {'keyframes':>9s} {'rollouts':>8s} {'s':>7s} {'kf/s':>6s}")
    for key, r in results.items():
        print(
            f"{key:42s} {r['scenes']:6d} {r['keyframes']:9d} {r['counterfactual_rollouts']:8d}"
            f" {r['seconds']:7.1f} {r['keyframes_per_s']:6.2f}"
        )


if __name__ == "__main__":
    main()
