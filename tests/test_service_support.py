"""Helpers of the egodriver service tests (no tests here): servers in subprocesses, free ports,
and small contract messages."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import grpc
import numpy as np
from carla_driver_interface._proto import common_pb2, egodriver_pb2, egodriver_pb2_grpc

from cordillera.sensors.presets import ring7
from cordillera.service.contract import camera_to_proto, encode_image, quat_from_yaw

CDI = os.path.join(os.path.dirname(sys.executable), "carla-driver-interface")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(target: str, timeout_s: float = 30.0) -> None:
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=timeout_s)


@contextlib.contextmanager
def cordillera_serve(*args: str, timeout_s: float = 60.0) -> Iterator[str]:
    """``cordillera serve --port 0 ARGS`` in a subprocess; yields its ``host:port``."""
    cmd = [sys.executable, "-m", "cordillera.cli.main", "serve", "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line or proc.poll() is not None:
                break
        m = re.search(r"serving \S+ on (\S+:\d+)", line)
        if m is None:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"cordillera serve did not start: {line!r} {err[-2000:]}")
        yield m.group(1)
    finally:
        _stop(proc)


@contextlib.contextmanager
def cdi_serve(policy: str = "route_follower") -> Iterator[str]:
    """carla-driver-interface's own server (an independent peer) in a subprocess."""
    port = free_port()
    proc = subprocess.Popen(
        [CDI, "serve", "--policy", policy, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    target = f"127.0.0.1:{port}"
    try:
        wait_ready(target)
        yield target
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def start_request(session: str, cameras: bool = True) -> egodriver_pb2.DriveSessionRequest:
    req = egodriver_pb2.DriveSessionRequest(session_uuid=session)
    req.debug_info.scene_id = "test"
    if cameras:
        req.rollout_spec.vehicle.available_cameras.extend(
            camera_to_proto(c) for c in ring7(64, 36).cameras
        )
    return req


def ego_message(session: str, t_us: int, x: float, y: float, yaw: float, speed: float):
    msg = egodriver_pb2.RolloutEgoTrajectory(session_uuid=session)
    q = quat_from_yaw(np.array([yaw]))[0]
    msg.trajectory.poses.add(
        timestamp_us=t_us,
        pose=common_pb2.Pose(
            vec=common_pb2.Vec3(x=x, y=y, z=0.0),
            quat=common_pb2.Quat(w=q[0], x=q[1], y=q[2], z=q[3]),
        ),
    )
    msg.dynamic_states.add(linear_velocity=common_pb2.Vec3(x=speed))
    return msg


def route_message(session: str, t_us: int) -> egodriver_pb2.RouteRequest:
    req = egodriver_pb2.RouteRequest(session_uuid=session)
    req.route.timestamp_us = t_us
    for x in range(0, 60, 5):
        req.route.waypoints.add(x=float(x), y=0.0, z=0.0)
    return req


def image_message(
    session: str, name: str, t_us: int, rgb: np.ndarray, fmt: str = "PNG"
) -> egodriver_pb2.RolloutCameraImage:
    img = egodriver_pb2.RolloutCameraImage(session_uuid=session)
    img.camera_image.logical_id = name
    img.camera_image.frame_start_us = t_us
    img.camera_image.frame_end_us = t_us
    img.camera_image.image_bytes = encode_image(rgb, fmt)
    return img


def stub(channel: grpc.Channel) -> egodriver_pb2_grpc.EgodriverServiceStub:
    return egodriver_pb2_grpc.EgodriverServiceStub(channel)
