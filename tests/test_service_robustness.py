"""The egodriver server under bad and hostile clients: garbage, truncated and out-of-order
requests, unknown sessions, 32 concurrent sessions, vanished clients, size limits. Every
request gets its status code and message, and the server keeps serving."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence

import grpc
import numpy as np
import pytest
import torch
from carla_driver_interface._proto import common_pb2, egodriver_pb2

from cordillera.policy.base import CameraRequest, ObservationRequest, PolicyInput
from cordillera.policy.meta_fill import make_plan
from cordillera.policy.plan import PLAN_HORIZON, Plan
from cordillera.scene.model import Scene
from cordillera.sensors.presets import ring7
from cordillera.service import PolicyServer, ServeConfig, servable_policy, serve
from cordillera.service.server import SERVICE_NAME, service_methods
from test_service_support import (
    ego_message,
    image_message,
    route_message,
    start_request,
    stub,
)

Code = grpc.StatusCode
T = 10.0  # deadline of every test call


@pytest.fixture
def server() -> Iterator[PolicyServer]:
    with serve(servable_policy("route-follower"), "route-follower", ServeConfig(port=0)) as s:
        yield s


@pytest.fixture
def channel(server: PolicyServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as ch:
        yield ch


def code_of(call, request, **kw) -> tuple[Code, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=T, **kw)
    return info.value.code(), info.value.details()


def raw(channel: grpc.Channel, method: str, payload: bytes) -> tuple[Code, str]:
    call = channel.unary_unary(f"/{SERVICE_NAME}/{method}")  # bytes in, bytes out
    return code_of(call, payload)


def drive_request(session: str, t_us: int, query_us: int | None = None):  # type: ignore[no-untyped-def]
    q = t_us + 100_000 if query_us is None else query_us
    return egodriver_pb2.DriveRequest(session_uuid=session, time_now_us=t_us, time_query_us=q)


def serves(channel: grpc.Channel) -> bool:
    return bool(stub(channel).get_version(common_pb2.Empty(), timeout=T).version_id)


def test_every_contract_method_is_served(channel: grpc.Channel) -> None:
    methods = service_methods()
    assert sorted(methods) == sorted(
        egodriver_pb2.DESCRIPTOR.services_by_name["EgodriverService"].methods_by_name
    )
    assert len(methods) == 8 and serves(channel)


def test_garbage_and_truncated_requests_are_invalid_argument(channel: grpc.Channel) -> None:
    for method in service_methods():
        if method == "get_version":  # Empty: every byte string that parses is one
            continue
        code, details = raw(channel, method, b"\xff\xff\xff\xff\x0f garbage")
        assert code == Code.INVALID_ARGUMENT, (method, code, details)
        assert method in details and "malformed" in details
    # Cut inside a field (a cut between fields is a valid, shorter message).
    full = start_request("truncated").SerializeToString()
    for cut in (1, 7, len(full) // 2, len(full) - 1):
        code, details = raw(channel, "start_session", full[:cut])
        assert code == Code.INVALID_ARGUMENT and "Truncated" in details, (cut, code, details)
    full = drive_request("truncated", 123_456_789).SerializeToString()
    code, details = raw(channel, "drive", full[:-2])
    assert code == Code.INVALID_ARGUMENT, (code, details)
    # The server is still up and nothing half-parsed opened a session.
    assert serves(channel)


def test_unknown_and_out_of_order_requests(server: PolicyServer, channel: grpc.Channel) -> None:
    s = stub(channel)
    # Unknown sessions: NOT_FOUND on every per-session method.
    assert code_of(s.drive, drive_request("nope", 0))[0] == Code.NOT_FOUND
    assert code_of(s.submit_route, route_message("nope", 0))[0] == Code.NOT_FOUND
    assert code_of(s.submit_egomotion_observation, ego_message("nope", 0, 0, 0, 0, 0))[0] == (
        Code.NOT_FOUND
    )
    close = egodriver_pb2.DriveSessionCloseRequest(session_uuid="nope")
    assert code_of(s.close_session, close)[0] == Code.NOT_FOUND
    assert code_of(s.drive, drive_request("", 0))[0] == Code.INVALID_ARGUMENT
    # Drive before any ego pose: out of order.
    s.start_session(start_request("a"), timeout=T)
    code, details = code_of(s.drive, drive_request("a", 0))
    assert code == Code.FAILED_PRECONDITION and "egomotion" in details
    assert code_of(s.start_session, start_request("a"))[0] == Code.ALREADY_EXISTS
    # Malformed observations name what is wrong.
    bad = ego_message("a", 0, float("nan"), 0, 0, 0)
    code, details = code_of(s.submit_egomotion_observation, bad)
    assert code == Code.INVALID_ARGUMENT and "trajectory" in details
    two = ego_message("a", 200, 0, 0, 0, 0)
    two.trajectory.poses.add(timestamp_us=100)
    code, details = code_of(s.submit_egomotion_observation, two)
    assert code == Code.INVALID_ARGUMENT and "increase" in details
    extra = ego_message("a", 0, 0, 0, 0, 0)
    extra.dynamic_states.add()  # two states for one pose
    code, details = code_of(s.submit_egomotion_observation, extra)
    assert code == Code.INVALID_ARGUMENT and "dynamic_states" in details
    rgb = np.zeros((36, 64, 3), np.uint8)
    img = image_message("a", "no_such_camera", 0, rgb)
    assert code_of(s.submit_image_observation, img)[0] == Code.INVALID_ARGUMENT
    img = image_message("a", "front_wide_120fov", 0, rgb)
    img.camera_image.image_bytes = img.camera_image.image_bytes[:40]  # truncated PNG
    code, details = code_of(s.submit_image_observation, img)
    assert code == Code.INVALID_ARGUMENT and "image" in details
    img = image_message("a", "front_wide_120fov", 0, np.zeros((10, 10, 3), np.uint8))
    code, details = code_of(s.submit_image_observation, img)
    assert code == Code.INVALID_ARGUMENT and "10x10" in details
    # Now in order: it drives; then time must not go backwards.
    s.submit_egomotion_observation(ego_message("a", 1_000_000, 0, 0, 0, 5.0), timeout=T)
    s.submit_route(route_message("a", 1_000_000), timeout=T)
    assert len(s.drive(drive_request("a", 1_000_000), timeout=T).trajectory.poses) == 65
    code, details = code_of(s.drive, drive_request("a", 500_000))
    assert code == Code.FAILED_PRECONDITION and "before the previous" in details
    assert code_of(s.drive, drive_request("a", 1_000_000, 0))[0] == Code.INVALID_ARGUMENT
    # A camera without a size is refused at start.
    req = start_request("b")
    req.rollout_spec.vehicle.available_cameras[0].intrinsics.resolution_w = 0
    code, details = code_of(s.start_session, req)
    assert code == Code.INVALID_ARGUMENT and "resolution_w" in details
    s.close_session(egodriver_pb2.DriveSessionCloseRequest(session_uuid="a"), timeout=T)
    assert len(server.servicer.sessions) == 0 and serves(channel)


def _drive_session(channel: grpc.Channel, k: int, steps: int, out: dict[int, object]) -> None:
    try:
        s, sid = stub(channel), f"s{k}"
        s.start_session(start_request(sid, cameras=False), timeout=T)
        y = float(k)  # every session drives its own lane: no cross-talk allowed
        x, speed = 0.0, 5.0
        for step in range(steps):
            t = step * 100_000
            s.submit_egomotion_observation(ego_message(sid, t, x, y, 0.0, speed), timeout=T)
            s.submit_route(route_message(sid, t), timeout=T)
            poses = s.drive(drive_request(sid, t), timeout=T).trajectory.poses
            assert np.isclose(poses[0].pose.vec.y, y) and np.isclose(poses[0].pose.vec.x, x)
            assert np.allclose([p.pose.vec.y for p in poses], y, atol=1e-3)
            nxt = poses[1].pose.vec.x
            speed, x = (nxt - x) / 0.1, nxt
        s.close_session(egodriver_pb2.DriveSessionCloseRequest(session_uuid=sid), timeout=T)
        out[k] = x
    except Exception as e:  # reported by the main thread
        out[k] = e


def test_32_concurrent_sessions(server: PolicyServer, channel: grpc.Channel) -> None:
    out: dict[int, object] = {}
    threads = [
        threading.Thread(target=_drive_session, args=(channel, k, 10, out)) for k in range(32)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    errors = {k: v for k, v in out.items() if isinstance(v, Exception)}
    assert not errors, errors
    assert sorted(out) == list(range(32))
    assert len({round(float(v), 6) for v in out.values()}) == 1  # same drive in every lane
    assert float(next(iter(out.values()))) > 4.0
    assert len(server.servicer.sessions) == 0 and serves(channel)


class FrameRecorder:
    """A camera policy that records what it saw and stands still."""

    name = "frame-recorder"

    def __init__(self, seen: list[torch.Tensor], delay_s: float = 0.0) -> None:
        self.request = ObservationRequest(cameras=CameraRequest("ring7", 64, 36, 2, 1))
        self.seen = seen
        self.delay_s = delay_s

    def reset(self, scenes: Sequence[Scene]) -> None:
        pass

    def act(self, inputs: PolicyInput) -> Plan:
        assert inputs.cameras is not None
        self.seen.append(inputs.cameras.clone())
        time.sleep(self.delay_s)
        return make_plan(torch.zeros(1, PLAN_HORIZON, 2), 0.1)


def test_frames_reach_the_policy_as_sent() -> None:
    seen: list[torch.Tensor] = []
    names = ring7(64, 36).names
    rng = np.random.default_rng(0)
    sent = rng.integers(0, 255, (2, len(names), 36, 64, 3), dtype=np.uint8)
    with (
        serve(lambda: FrameRecorder(seen), "frame-recorder", ServeConfig(port=0)) as server,
        grpc.insecure_channel(server.address) as ch,
    ):
        s = stub(ch)
        missing = start_request("c", cameras=False)
        code, details = code_of(s.start_session, missing)
        assert code == Code.FAILED_PRECONDITION and "front_wide_120fov" in details
        s.start_session(start_request("c"), timeout=T)
        s.submit_egomotion_observation(ego_message("c", 0, 0, 0, 0, 0), timeout=T)
        code, details = code_of(s.drive, drive_request("c", 0))
        assert code == Code.FAILED_PRECONDITION and "frame" in details
        for step in range(2):
            t = step * 100_000
            s.submit_egomotion_observation(ego_message("c", t, 0, 0, 0, 0), timeout=T)
            for c, name in enumerate(names):
                img = image_message("c", name, t, sent[step, c])
                s.submit_image_observation(img, timeout=T)
            s.drive(drive_request("c", t), timeout=T)
    assert len(seen) == 2
    # (1, C, F=2, H, W, 3), oldest first; before a second frame exists the first fills in.
    assert tuple(seen[1].shape) == (1, len(names), 2, 36, 64, 3)
    assert np.array_equal(seen[0][0, :, 0].numpy(), sent[0])
    assert np.array_equal(seen[0][0, :, 1].numpy(), sent[0])
    assert np.array_equal(seen[1][0, :, 0].numpy(), sent[0])
    assert np.array_equal(seen[1][0, :, 1].numpy(), sent[1])


def test_vanished_clients_free_their_sessions() -> None:
    # Long enough that a loaded machine still sees the session before the reaper frees it.
    config = ServeConfig(port=0, session_idle_timeout_s=2.0)
    seen: list[torch.Tensor] = []
    with serve(lambda: FrameRecorder(seen, delay_s=1.0), "slow", config) as server:
        # A runtime process that dies mid-session, without close_session.
        script = (
            "import sys, grpc; sys.path.insert(0, 'tests');"
            "from test_service_support import stub, start_request, ego_message;"
            f"ch = grpc.insecure_channel('{server.address}'); s = stub(ch);"
            "s.start_session(start_request('gone'), timeout=10);"
            "s.submit_egomotion_observation(ego_message('gone', 0, 0, 0, 0, 0), timeout=10);"
            "import os; os._exit(0)"
        )
        subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
        assert "gone" in list(server.servicer.sessions)
        deadline = time.monotonic() + 10
        while len(server.servicer.sessions) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(server.servicer.sessions) == 0
    # A client that gives up during a drive: the session goes when the policy returns.
    config = ServeConfig(port=0)  # no idle expiry within the test
    with (
        serve(lambda: FrameRecorder(seen, delay_s=1.0), "slow", config) as server,
        grpc.insecure_channel(server.address) as ch,
    ):
        s = stub(ch)
        s.start_session(start_request("d"), timeout=T)
        s.submit_egomotion_observation(ego_message("d", 0, 0, 0, 0, 0), timeout=T)
        for name in ring7(64, 36).names:
            rgb = np.zeros((36, 64, 3), np.uint8)
            s.submit_image_observation(image_message("d", name, 0, rgb), timeout=T)
        with pytest.raises(grpc.RpcError) as info:
            s.drive(drive_request("d", 0), timeout=0.2)
        assert info.value.code() == Code.DEADLINE_EXCEEDED
        deadline = time.monotonic() + 10
        while len(server.servicer.sessions) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(server.servicer.sessions) == 0 and serves(ch)


def test_limits_and_loopback_default() -> None:
    assert ServeConfig().host == "127.0.0.1"
    config = ServeConfig(port=0, max_sessions=2, max_message_bytes=256 * 1024)
    with serve(servable_policy("route-follower"), "route-follower", config) as server:
        assert server.address.startswith("127.0.0.1:")
        with grpc.insecure_channel(server.address) as ch:
            s = stub(ch)
            s.start_session(start_request("x"), timeout=T)
            s.start_session(start_request("y"), timeout=T)
            code, details = code_of(s.start_session, start_request("z"))
            assert code == Code.RESOURCE_EXHAUSTED and "2 sessions" in details
            big = egodriver_pb2.RolloutCameraImage(session_uuid="x")
            big.camera_image.logical_id = "front_wide_120fov"
            big.camera_image.image_bytes = b"\0" * (512 * 1024)
            assert code_of(s.submit_image_observation, big)[0] == Code.RESOURCE_EXHAUSTED
            assert serves(ch)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--log-level", "chatty"], "--log-level must be one of"),
        (["--option", "cruise_speed_mps=true"], "cruise_speed_mps must be a number > 0"),
    ],
)
def test_serve_cli_rejects_bad_arguments(args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    from cordillera.cli.main import app

    res = CliRunner().invoke(app, ["serve", "--port", "0", *args])
    assert res.exit_code != 0
    assert message in " ".join(res.output.split())
