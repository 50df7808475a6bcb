"""Cordillera's simulator drives external egodriver services: carla-driver-interface's own
``route_follower`` server (an independent peer), and ``cordillera serve`` (the same policy
remote and local must drive the same rollout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cordillera.cli.eval import run_eval
from cordillera.errors import ConfigError
from cordillera.eval.runner import EvalConfig, evaluate
from cordillera.policy.route_follower import RouteFollowerPolicy
from cordillera.scene.generate import generate_scene
from cordillera.service import (
    RemoteDriverConfig,
    RemoteDriverError,
    RemoteDriverPolicy,
    ServeConfig,
    parse_driver_url,
    servable_policy,
    serve,
)
from test_service_support import cdi_serve

QUIET = EvalConfig(max_seconds=5.0, progress=False, camera_snapshots=0, report=False)


def test_eval_drives_carla_driver_interface_route_follower(tmp_path: Path) -> None:
    scene = generate_scene("straight", 0)
    with cdi_serve("route_follower") as target:
        result = run_eval(
            "unused",
            [scene],
            tmp_path,
            max_seconds=5.0,
            cameras=0,
            report=False,
            progress=False,
            driver=f"grpc://{target}",
        )
    assert result.policy.startswith("grpc:route_follower-carla-driver-interface")
    m = {k: float(v.value[0]) for k, v in result.metrics.items()}
    # The peer follows the route we send (the ego's lane) at its 8 m/s cruise, ignoring traffic:
    # it moves, stays on the road, in its lane, in the right direction, and hits nothing here.
    assert m["offroad"] == 0.0 and m["drivable_area_compliance"] == 1.0
    assert m["driving_direction_compliance"] == 1.0 and m["lane_keeping"] == 1.0
    assert m["at_fault_collision"] == 0.0
    assert 0.3 < m["progress_ratio"] < 1.5
    assert m["pdms"] > 0.5
    speed = result.arrays.ego_speed_mps[0]
    assert speed.max() <= 8.5 and speed[-1] > 4.0  # the peer's cruise speed caps it
    assert (result.out_dir / "metrics.json").is_file()  # reported as for a local policy


def test_remote_route_follower_matches_local() -> None:
    """Local and served ``route-follower`` drive the same rollout round a roundabout: the wire
    (poses, route resampling, world<->ego frames, 10 Hz resampling) loses nothing that matters."""
    scene = generate_scene("roundabout", 0)
    local = evaluate(RouteFollowerPolicy(), [scene], "log", None, QUIET)
    factory = servable_policy("route-follower")
    with serve(factory, "route-follower", ServeConfig(port=0)) as server:
        config = RemoteDriverConfig(f"127.0.0.1:{server.port}", send_cameras=False)
        with RemoteDriverPolicy(config) as remote:
            served = evaluate(remote, [scene], "log", None, QUIET)
        assert len(server.servicer.sessions) == 0  # closed by the client
    gap = np.linalg.norm(local.arrays.xy_m - served.arrays.xy_m, axis=-1)
    ego = int(local.arrays.ego_index[0])
    assert gap[0, :, ego].max() < 0.2  # measured 0.09 m over 5 s (exact on a straight road)
    travelled = np.linalg.norm(served.arrays.xy_m[0, -1, ego] - served.arrays.xy_m[0, 0, ego])
    assert travelled > 20.0
    # The CoC and meta-actions travelled in the debug payload.
    assert np.array_equal(local.arrays.meta_actions, served.arrays.meta_actions)
    assert [d.text for d in local.meta.rollouts[0].decisions] == [
        d.text for d in served.meta.rollouts[0].decisions
    ]


def test_driver_url_and_unreachable_driver() -> None:
    assert parse_driver_url("grpc://127.0.0.1:5") == "127.0.0.1:5"
    assert parse_driver_url("grpc://[::1]:50051") == "[::1]:50051"
    for bad in ("127.0.0.1:5", "grpc://host", "http://h:1", "grpc://h:99999", "grpc://h:1/x"):
        with pytest.raises(ConfigError):
            parse_driver_url(bad)
    with pytest.raises(RemoteDriverError, match=r"UNAVAILABLE|DEADLINE"):
        RemoteDriverPolicy.connect("grpc://127.0.0.1:1", connect_timeout_s=0.5)
