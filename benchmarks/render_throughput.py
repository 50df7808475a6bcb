"""Camera rasterizer throughput: rig-frames per second for the 7-camera ring at 256x144.

One rig-frame is all 7 cameras of one snapshot. The benchmark renders batches of B snapshots of
one scene (a real nuScenes log from ../shared/data when present, else a generated scene, else
the toy road), after a warm-up, in one process:

    python benchmarks/render_throughput.py                 # CPU, human-readable
    python benchmarks/render_throughput.py --json          # one JSON object
    python benchmarks/render_throughput.py --device cuda   # when a GPU is present
    python benchmarks/render_throughput.py --profile       # top operators (torch.profiler)
    python benchmarks/render_throughput.py --repeats 5     # median of 5 timed runs (shared CPUs)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from cordillera.scene.model import Scene
from cordillera.sensors.presets import ring7
from cordillera.sensors.raster import Rasterizer
from cordillera.sensors.raster_setup import RasterConfig
from cordillera.sensors.world import RenderBatch

NUSCENES = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "scenarionet"
    / "nuscenes"
    / "nuscenes_0"
    / "sd_nuscenes_v1.0-mini_scene-0061.pkl"
)


def load_scene() -> tuple[Scene, str]:
    """The benchmark scene and a description of where it came from."""
    if NUSCENES.is_file():
        from cordillera.scene.readers import read_scene

        return read_scene(NUSCENES), f"nuScenes {NUSCENES.name}"
    try:
        from cordillera.scene.generate import generate_suite

        return generate_suite("default", seed=0)[0], "generated suite 'default' seed 0"
    except ImportError:
        from cordillera.sensors.toy import toy_scene

        return toy_scene(num_steps=40), "toy road (no data, no generator)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=16, help="snapshots per render call (B)")
    ap.add_argument("--iters", type=int, default=10, help="timed render calls")
    ap.add_argument(
        "--repeats", type=int, default=1, help="timed runs of --iters calls; reports the median"
    )
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--height", type=int, default=144)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--rgb-only", action="store_true", help="skip depth and object-id outputs")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--profile", action="store_true", help="print the top operators")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but CUDA is not available", file=sys.stderr)
        return 2

    scene, source = load_scene()
    valid_steps = torch.nonzero(torch.as_tensor(scene.tracks.valid[scene.ego_index]))
    steps = valid_steps.flatten().tolist()
    stride = max(1, len(steps) // args.batch)
    chosen = (steps[::stride] * args.batch)[: args.batch]
    batch = RenderBatch.from_scene(scene, chosen).to(device)
    rig = ring7(args.width, args.height)
    cfg = RasterConfig(with_depth=not args.rgb_only, with_object_index=not args.rgb_only)
    renderer = Rasterizer(cfg)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    with torch.inference_mode():
        for _ in range(3):  # warm-up: rig constants, texture atlas, allocator
            renderer.render(batch, rig)
        sync()
        runs = []  # (wall seconds, CPU seconds) per timed run
        for _ in range(max(1, args.repeats)):
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.iters):
                renderer.render(batch, rig)
            sync()
            # CPU seconds of this process: on a shared machine, wall time includes waiting for
            # other processes' cores; CPU time (per thread used) does not.
            runs.append((time.perf_counter() - t0, time.process_time() - c0))
        # The median run by wall time (the upper one of an even count).
        elapsed, cpu = sorted(runs)[len(runs) // 2]
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(3):
                    renderer.render(batch, rig)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    rate = args.batch * args.iters / elapsed
    result = {
        "rig_frames_per_s": round(rate, 2),
        "camera_frames_per_s": round(rate * rig.num_cameras, 1),
        "ms_per_batch": round(1000 * elapsed / args.iters, 2),
        "rig_frames_per_cpu_s": round(args.batch * args.iters / cpu, 2),
        "batch": args.batch,
        "cameras": rig.num_cameras,
        "resolution": f"{args.width}x{args.height}",
        "objects": int(batch.object_valid.sum()) // args.batch,
        "outputs": "rgb" if args.rgb_only else "rgb+depth+object_index",
        "device": str(device),
        "threads": torch.get_num_threads(),
        "scene": source,
        "repeats": len(runs),
        "best_rig_frames_per_s": round(args.batch * args.iters / min(r[0] for r in runs), 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"scene: {source}; {result['objects']} objects per snapshot on average")
        print(
            f"rig {rig.name}: {rig.num_cameras} cameras at {result['resolution']}, "
            f"B = {args.batch} snapshots per call, outputs {result['outputs']}, "
            f"device {device}, {result['threads']} threads"
        )
        if len(runs) > 1:
            rates = ", ".join(f"{args.batch * args.iters / w:.1f}" for w, _ in runs)
            print(f"rig-frames/s of the {len(runs)} runs: {rates}; the median run:")
        print(
            f"{rate:.1f} rig-frames/s ({result['camera_frames_per_s']} camera-frames/s, "
            f"{result['ms_per_batch']} ms per batch of {args.batch}); "
            f"{result['rig_frames_per_cpu_s']} rig-frames per CPU-second"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
