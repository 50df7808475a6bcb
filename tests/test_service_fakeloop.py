"""``cordillera serve`` driven by carla-driver-interface's FakeLoop, a real independent runtime of
the egodriver contract: 200 closed-loop steps on its straight road."""

from __future__ import annotations

import json
import subprocess
import sys

import grpc
import numpy as np
from carla_driver_interface._proto import common_pb2, egodriver_pb2
from carla_driver_interface.contract import METADATA_KEY
from carla_driver_interface.testing import FakeCamera, FakeLoop

from cordillera.service.contract import DEBUG_SCHEMA
from test_service_support import cordillera_serve, ego_message, route_message, stub


def test_fakeloop_drives_cordillera_serve_for_200_steps() -> None:
    camera = FakeCamera(width=320, height=180)  # frames are sent and decoded every step
    with (
        cordillera_serve("--policy", "route-follower") as target,
        FakeLoop(target, (camera,), initial_lateral_offset_m=1.0) as loop,
    ):
        result = loop.run(200)
    assert result.steps == 200 and not result.terminated_by_policy
    x = result.ego.positions[:, 0]
    lateral = result.lateral_offsets_m
    # 8 m/s cruise after ~4 s at 2 m/s^2: about 128 m in 19.9 s, always forward.
    assert 115.0 < x[-1] - x[0] < 140.0
    assert np.all(np.diff(x) >= -1e-6)
    assert abs(result.speeds_mps[-1] - 8.0) < 0.2
    # Started 1 m beside the lane centre (the route): converges, never overshoots far.
    assert abs(lateral[0] - 1.0) < 1e-9
    assert abs(lateral[-1]) < 0.05
    assert np.all(np.abs(lateral) <= 1.0 + 1e-6)
    assert np.all(lateral > -0.2)
    # Timestamps are the contract's: one pose per 0.1 s step.
    assert np.all(np.diff(result.ego.timestamps_us) == 100_000)
    # The debug payload is Cordillera's JSON, not CARLA's protobuf: FakeLoop reads it as absent.
    assert all(d is None for d in result.debug)


def test_served_plan_is_timestamped_world_frame_with_coc() -> None:
    """One hand-checked drive: ego at (10, 5) heading +y at 8 m/s, route along +y."""
    with cordillera_serve() as target, grpc.insecure_channel(target) as channel:
        s = stub(channel)
        version, call = s.get_version.with_call(common_pb2.Empty(), timeout=10)
        assert version.version_id.startswith("cordillera-")
        assert "route-follower" in version.version_id
        assert dict(call.initial_metadata())[METADATA_KEY] == "2"
        s.start_session(egodriver_pb2.DriveSessionRequest(session_uuid="a"), timeout=10)
        s.submit_egomotion_observation(
            ego_message("a", 1_000_000, 10.0, 5.0, np.pi / 2, 8.0), timeout=10
        )
        s.submit_route(route_message("a", 1_000_000), timeout=10)  # rig frame: straight ahead
        resp = s.drive(
            egodriver_pb2.DriveRequest(
                session_uuid="a", time_now_us=1_000_000, time_query_us=1_100_000
            ),
            timeout=10,
        )
        s.close_session(egodriver_pb2.DriveSessionCloseRequest(session_uuid="a"), timeout=10)
    poses = resp.trajectory.poses
    assert len(poses) == 65  # the ego now, then 64 waypoints at 10 Hz
    t = np.array([p.timestamp_us for p in poses])
    assert np.array_equal(t, 1_000_000 + 100_000 * np.arange(65))
    xy = np.array([[p.pose.vec.x, p.pose.vec.y] for p in poses])
    assert np.allclose(xy[0], [10.0, 5.0])
    assert np.allclose(xy[:, 0], 10.0, atol=1e-4)  # world frame: along +y
    assert np.allclose(xy[1, 1] - 5.0, 0.8, atol=1e-3)  # 8 m/s cruise, 0.1 s
    q = poses[10].pose.quat
    assert np.isclose(2 * np.arctan2(q.z, q.w), np.pi / 2, atol=1e-5)
    debug = json.loads(resp.debug_info.unstructured_debug_info)
    assert debug["schema"] == DEBUG_SCHEMA and debug["policy"] == "route-follower"
    assert debug["meta_actions"]["longitudinal"] == "maintain_speed"
    assert debug["meta_actions"]["lateral"] == "go_straight"
    assert debug["coc"]["lateral"] == "keep_lane"


def test_privileged_policy_is_refused_clearly() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cordillera.cli.main", "serve", "--policy", "pdm", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "privileged" in proc.stderr and "'pdm'" in proc.stderr
