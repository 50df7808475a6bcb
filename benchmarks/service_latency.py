"""egodriver round-trip latency: ``drive()`` p50 / p99 against ``cordillera serve`` on localhost,
with the 7-camera ring at 256x144 sent every step.

The ring is rendered once by Cordillera's rasterizer (a generated scene, the ego at its first
step) and JPEG-encoded once; every step then sends, as a runtime does, the ego pose, the route
and the 7 frames (decoded by the server), and times ``drive``. The server runs in its own
process (``cordillera serve --port 0``) unless ``--in-process``:

    python benchmarks/service_latency.py                  # human-readable
    python benchmarks/service_latency.py --json           # one JSON object
    python benchmarks/service_latency.py --steps 500 --policy constant-velocity

Reported: ``drive`` round trip (request sent to plan received), the served policy's own time
(from the debug payload), and the whole step (observations + drive).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future

import grpc
import numpy as np
import torch
from carla_driver_interface._proto import common_pb2, egodriver_pb2, egodriver_pb2_grpc
from carla_driver_interface.contract import contract_metadata

from cordillera.scene.generate import generate_scene
from cordillera.sensors.presets import ring7
from cordillera.sensors.renderer import get_renderer
from cordillera.sensors.sim_frames import render_batch_from_state
from cordillera.sensors.world import static_map_for
from cordillera.service.contract import DriveDebug, camera_to_proto, encode_image
from cordillera.sim.config import SimConfig
from cordillera.sim.simulator import Simulator


def render_ring(width: int, height: int) -> tuple[list[str], list[bytes]]:
    """Camera names and JPEG frames of the ring seen from a generated scene's ego."""
    scene = generate_scene("intersection", 0)
    sim = Simulator([scene], SimConfig())
    state = sim.reset()
    rig = ring7(width, height)
    with torch.inference_mode():
        batch = render_batch_from_state(sim, state, [static_map_for(scene)])
        rgb = get_renderer("raster").render(batch, rig).rgb[0].contiguous().numpy()
    return list(rig.names), [encode_image(frame, "JPEG", 90) for frame in rgb]


@contextlib.contextmanager
def server_target(policy: str, in_process: bool) -> Iterator[str]:
    if in_process:
        from cordillera.service import ServeConfig, servable_policy, serve

        with serve(servable_policy(policy), policy, ServeConfig(port=0)) as server:
            yield server.address
        return
    cmd = [sys.executable, "-m", "cordillera.cli.main", "serve", "--policy", policy, "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"serving \S+ on (\S+:\d+)", line)
        if m is None:
            raise SystemExit(f"error: cordillera serve did not start: {line!r}")
        yield m.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "p50": round(float(np.percentile(a, 50)), 2),
        "p99": round(float(np.percentile(a, 99)), 2),
        "mean": round(float(a.mean()), 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default="route-follower", help="served policy")
    ap.add_argument("--steps", type=int, default=200, help="timed steps")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--height", type=int, default=144)
    ap.add_argument("--in-process", action="store_true", help="server in this process")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    names, frames = render_ring(args.width, args.height)
    cameras = [camera_to_proto(c) for c in ring7(args.width, args.height).cameras]
    drive_ms, policy_ms, step_ms = [], [], []
    with (
        server_target(args.policy, args.in_process) as target,
        grpc.insecure_channel(target) as channel,
    ):
        stub = egodriver_pb2_grpc.EgodriverServiceStub(channel)
        stub.get_version(common_pb2.Empty(), timeout=30, wait_for_ready=True)
        start = egodriver_pb2.DriveSessionRequest(session_uuid="bench")
        start.rollout_spec.vehicle.available_cameras.extend(cameras)
        stub.start_session(start, timeout=30, metadata=contract_metadata())
        x, speed = 0.0, 0.0
        for k in range(args.warmup + args.steps):
            t_us = k * 100_000
            t0 = time.perf_counter()
            ego = egodriver_pb2.RolloutEgoTrajectory(session_uuid="bench")
            ego.trajectory.poses.add(
                timestamp_us=t_us,
                pose=common_pb2.Pose(vec=common_pb2.Vec3(x=x), quat=common_pb2.Quat(w=1.0)),
            )
            ego.dynamic_states.add(linear_velocity=common_pb2.Vec3(x=speed))
            route = egodriver_pb2.RouteRequest(session_uuid="bench")
            route.route.timestamp_us = t_us
            route.route.waypoints.extend(common_pb2.Vec3(x=float(d)) for d in range(0, 100, 5))
            calls: list[Future] = [
                stub.submit_egomotion_observation.future(ego, timeout=30),
                stub.submit_route.future(route, timeout=30),
            ]
            for name, data in zip(names, frames, strict=True):
                img = egodriver_pb2.RolloutCameraImage(session_uuid="bench")
                img.camera_image.logical_id = name
                img.camera_image.frame_start_us = img.camera_image.frame_end_us = t_us
                img.camera_image.image_bytes = data
                calls.append(stub.submit_image_observation.future(img, timeout=30))
            for call in calls:
                call.result()
            request = egodriver_pb2.DriveRequest(
                session_uuid="bench", time_now_us=t_us, time_query_us=t_us + 100_000
            )
            t1 = time.perf_counter()
            response = stub.drive(request, timeout=30)
            t2 = time.perf_counter()
            nxt = response.trajectory.poses[1].pose.vec.x
            speed, x = (nxt - x) / 0.1, nxt
            if k >= args.warmup:
                drive_ms.append(1000 * (t2 - t1))
                step_ms.append(1000 * (t2 - t0))
                debug = DriveDebug.from_bytes(response.debug_info.unstructured_debug_info)
                if debug is not None:
                    policy_ms.append(1000 * debug.inference_s)
        stub.close_session(egodriver_pb2.DriveSessionCloseRequest(session_uuid="bench"))

    result = {
        "drive_ms": percentiles(drive_ms),
        "policy_ms": percentiles(policy_ms) if policy_ms else None,
        "step_ms": percentiles(step_ms),
        "steps": args.steps,
        "policy": args.policy,
        "cameras": len(names),
        "resolution": f"{args.width}x{args.height}",
        "frame_bytes_mean": int(np.mean([len(f) for f in frames])),
        "server": "in-process" if args.in_process else "subprocess",
        "torch_threads": torch.get_num_threads(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        d, s = result["drive_ms"], result["step_ms"]
        print(
            f"{args.policy} served over egodriver ({result['server']}, localhost); "
            f"{len(names)} cameras at {result['resolution']} JPEG "
            f"(~{result['frame_bytes_mean']} B each) sent every step; {args.steps} steps"
        )
        print(f"{'':<34}{'p50 ms':>8}{'p99 ms':>8}{'mean ms':>9}")
        rows = [("drive() round trip", d)]
        if result["policy_ms"]:
            rows.append(("  of which the policy", result["policy_ms"]))
        rows.append(("step (pose+route+7 frames+drive)", s))
        for label, p in rows:
            print(f"{label:<34}{p['p50']:>8.2f}{p['p99']:>8.2f}{p['mean']:>9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
