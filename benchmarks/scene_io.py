"""Scenes per second: parsing each source format vs loading the native scene store.

    python benchmarks/scene_io.py [--json]

Reads every real source under ../shared/data (ScenarioNet nuScenes pickles, Argoverse 2
scenarios and sensor logs, CommonRoad XML), converts them once into a temporary native store,
then times both paths per format on one process.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from _common import SHARED_DATA, best_rate
from cordillera.errors import UnknownFormatError
from cordillera.scene.readers import find_sources, read_scene
from cordillera.scene.store import load_scene, save_scene


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not args.data.exists():
        print(f"no data at {args.data}", file=sys.stderr)
        return 1
    by_format: dict[str, list[Path]] = defaultdict(list)
    for path, fmt in find_sources(args.data):
        by_format[fmt].append(path)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, paths in sorted(by_format.items()):
            stored = []
            sources = []
            for path in paths:
                try:
                    scene = read_scene(path, fmt)
                except UnknownFormatError:
                    continue  # non-scene files beside the data (index or evaluation pickles)
                sources.append(path)
                stored.append(save_scene(scene, Path(tmp) / fmt))
            if not sources:
                continue

            def parse(srcs: list[Path] = sources, f: str = fmt) -> int:
                for p in srcs:
                    read_scene(p, f)
                return len(srcs)

            def load(files: list[Path] = stored) -> int:
                for p in files:
                    load_scene(p)
                return len(files)

            parse_rate = best_rate(parse, repeats=2, min_seconds=0.5)
            load_rate = best_rate(load, repeats=3, min_seconds=0.5)
            results[fmt] = {
                "scenes": len(sources),
                "parse_scenes_per_s": parse_rate,
                "store_scenes_per_s": load_rate,
                "speedup": load_rate / parse_rate,
            }
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{'format':18s} {'scenes':>6s} {'parse/s':>10s} {'store/s':>10s} {'speedup':>8s}")
    for fmt, r in results.items():
        print(
            f"{fmt:18s} {r['scenes']:6.0f} {r['parse_scenes_per_s']:10.1f} "
            f"{r['store_scenes_per_s']:10.1f} {r['speedup']:7.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
