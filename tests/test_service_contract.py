"""The conversions between egodriver messages and Cordillera arrays, against hand-derived values
and against carla-driver-interface's own geometry (an independent implementation of the same
conventions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from carla_driver_interface.geometry import Pose
from carla_driver_interface.testing import FakeCamera

from cordillera.errors import ConfigError
from cordillera.policy.plan import CausalObject, ChainOfCausation, PlanError
from cordillera.policy.route_follower import (
    RouteFollowerPolicy,
    max_curvature,
    sample_polyline,
)
from cordillera.policy.vocabulary import (
    LaneAction,
    LateralAction,
    LateralDecision,
    LongitudinalAction,
    LongitudinalDecision,
)
from cordillera.sensors.presets import ring7
from cordillera.service import ServiceError, servable_policy
from cordillera.service.contract import (
    DriveDebug,
    TimedPoses,
    camera_from_proto,
    camera_to_proto,
    decode_image,
    encode_image,
    from_frame,
    interpolate_poses,
    quat_from_yaw,
    route_ahead,
    route_with_foot,
    to_frame,
    trajectory_from_proto,
    trajectory_to_proto,
    yaw_from_quat,
)
from cordillera.service.errors import ContractViolation


def test_yaw_quaternions_match_the_reference_geometry() -> None:
    yaw = np.array([0.0, 0.3, -2.0, math.pi - 1e-3])
    q = quat_from_yaw(yaw)
    for y, row in zip(yaw, q, strict=True):
        ref = Pose.from_xyz_yaw(0.0, 0.0, 0.0, float(y)).quat_xyzw  # x, y, z, w
        ours = np.array([row[1], row[2], row[3], row[0]])
        assert np.allclose(ours, ref) or np.allclose(ours, -ref)
    assert np.allclose(yaw_from_quat(q), yaw)
    assert yaw_from_quat(np.zeros((1, 4)))[0] == 0.0  # an unset quaternion is the identity


def test_frames_round_trip_and_hand_values() -> None:
    origin, yaw = np.array([1.0, 1.0]), math.pi / 2
    assert np.allclose(from_frame(np.array([[1.0, 0.0]]), origin, yaw), [[1.0, 2.0]])
    assert np.allclose(to_frame(np.array([[1.0, 2.0]]), origin, yaw), [[1.0, 0.0]])
    pts = np.random.default_rng(0).normal(size=(50, 2)) * 30
    assert np.allclose(to_frame(from_frame(pts, origin, 0.7), origin, 0.7), pts)


def test_trajectory_round_trip_and_validation() -> None:
    poses = TimedPoses(
        np.array([0, 100_000, 200_000]),
        np.array([[0.0, 0.0, 0.0], [1.0, 0.5, 0.0], [2.0, 1.0, 0.0]]),
        np.array([0.0, 0.4, 0.5]),
    )
    back = trajectory_from_proto(trajectory_to_proto(poses), "t")
    assert np.array_equal(back.timestamps_us, poses.timestamps_us)
    assert np.allclose(back.xyz_m, poses.xyz_m, atol=1e-6)  # float32 on the wire
    assert np.allclose(back.yaw_rad, poses.yaw_rad, atol=1e-6)
    msg = trajectory_to_proto(poses)
    msg.poses[2].timestamp_us = 50_000
    with pytest.raises(ContractViolation, match="pose 2"):
        trajectory_from_proto(msg, "trajectory")


def test_interpolation_and_extrapolation() -> None:
    poses = TimedPoses(
        np.array([0, 1_000_000]), np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]]), np.zeros(2)
    )
    t = np.array([-500_000, 500_000, 2_000_000])
    held, _ = interpolate_poses(poses, t, extrapolate=False)
    assert np.allclose(held[:, 0], [0.0, 5.0, 10.0])
    moved, _ = interpolate_poses(poses, t, extrapolate=True)
    assert np.allclose(moved[:, 0], [-5.0, 5.0, 20.0])  # at the end segments' 10 m/s


def test_route_resampling() -> None:
    # A route 1 m to the left, given from 10 m behind: 10 points every 5 m from abreast.
    route = np.array([[-10.0, 1.0], [100.0, 1.0]])
    ahead = route_ahead(route, 10, 5.0)
    assert np.allclose(ahead, np.stack([5.0 * np.arange(1, 11), np.ones(10)], -1))
    # Past its end it goes straight on; an empty route is straight ahead.
    assert np.allclose(route_ahead(np.array([[0.0, 0.0], [12.0, 0.0]]), 3, 5.0)[:, 0], [5, 10, 15])
    assert np.allclose(route_ahead(np.zeros((0, 2)), 2, 5.0), [[5.0, 0.0], [10.0, 0.0]])
    # The route the simulator gives starts 5 m ahead; on the wire it starts at the ego's foot.
    assert np.allclose(route_with_foot(np.array([[5.0, 1.0], [10.0, 1.0]]))[0], [0.0, 1.0])


def test_ring_cameras_declared_as_carla_driver_interface_declares_them() -> None:
    front = ring7(256, 144).cameras[0]  # front_wide_120fov at (1.3, 0, 1.6), looking ahead
    ref = FakeCamera("front_wide_120fov", 256, 144, 120.0, 1.3, 0.0, 1.6).available_camera()
    ours = camera_to_proto(front)
    q_ref = np.array([getattr(ref.rig_to_camera.quat, a) for a in "wxyz"])
    q_ours = np.array([getattr(ours.rig_to_camera.quat, a) for a in "wxyz"])
    assert np.allclose(q_ours, q_ref, atol=1e-6) or np.allclose(q_ours, -q_ref, atol=1e-6)
    assert np.isclose(ours.rig_to_camera.vec.z, ref.rig_to_camera.vec.z)
    assert np.isclose(
        ours.intrinsics.opencv_pinhole_param.focal_length_x,
        ref.intrinsics.opencv_pinhole_param.focal_length_x,
    )
    for cam in ring7(256, 144).cameras:
        back = camera_from_proto(camera_to_proto(cam), "cam")
        assert back.pinhole is not None and (back.width_px, back.height_px) == (256, 144)
        assert np.allclose(back.pinhole.camera_to_ego, cam.camera_to_ego, atol=1e-6)


def test_images() -> None:
    rgb = np.random.default_rng(1).integers(0, 255, (36, 64, 3), dtype=np.uint8)
    assert np.array_equal(decode_image(encode_image(rgb, "PNG"), 64, 36, "f"), rgb)
    jpeg = decode_image(encode_image(rgb, "JPEG", 95), 64, 36, "f")
    assert jpeg.shape == rgb.shape
    with pytest.raises(ContractViolation, match="declared 32x36"):
        decode_image(encode_image(rgb, "PNG"), 32, 36, "f")
    with pytest.raises(ContractViolation, match="decodable"):
        decode_image(b"GIF89a" + bytes(100), 64, 36, "f")
    with pytest.raises(ConfigError):
        encode_image(rgb, "BMP")


def test_debug_payload_round_trip() -> None:
    coc = ChainOfCausation(
        LongitudinalDecision.YIELD,
        LateralDecision.KEEP_LANE,
        (CausalObject("ped_3", "pedestrian", "crossing 12 m ahead", 2.5),),
        "slowing from 9.1 m/s",
    )
    debug = DriveDebug(
        "pdm",
        0.012,
        LongitudinalAction.GENTLE_DECELERATION,
        LateralAction.GO_STRAIGHT,
        LaneAction.LANE_KEEP,
        coc,
    )
    assert DriveDebug.from_bytes(debug.to_bytes()) == debug
    assert DriveDebug.from_bytes(b"\x08\x01") is None  # another runtime's payload
    assert DriveDebug.from_bytes(b"") is None
    with pytest.raises(PlanError):
        DriveDebug.from_bytes(b'{"schema": "cordillera.drive_debug/1", "policy": "x"}')


def test_route_follower_maths() -> None:
    path = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]]])
    pts = sample_polyline(path, torch.tensor([[5.0, 15.0, 25.0]]))
    assert torch.allclose(pts, torch.tensor([[[5.0, 0.0], [10.0, 5.0], [10.0, 15.0]]]))
    angle = torch.linspace(0, 1.0, 40)
    circle = 20.0 * torch.stack([torch.sin(angle), 1 - torch.cos(angle)], -1)[None]
    assert torch.isclose(max_curvature(circle), torch.tensor([0.05]), rtol=0.02)
    # From rest on a straight route: 2 m/s^2 for the first step, 0.5 * a * dt^2 = 1 cm.
    from cordillera.policy.base import PolicyInput

    zeros = torch.zeros(1)
    route = torch.stack([5.0 * torch.arange(1, 11), torch.zeros(10)], -1)[None]
    plan = RouteFollowerPolicy().act(
        PolicyInput(zeros, torch.zeros(1, 1, 2), zeros, zeros, zeros, route)
    )
    assert torch.allclose(plan.waypoints_ego_m[0, 0], torch.tensor([0.01, 0.0]), atol=1e-6)
    assert plan.coc[0] is not None and plan.coc[0].longitudinal == LongitudinalDecision.RESUME_SPEED


def test_servable_policies() -> None:
    assert servable_policy("constant-velocity")().request.privileged is False
    for name in ("pdm", "idm", "log-replay"):
        with pytest.raises(ServiceError, match="privileged"):
            servable_policy(name)
    with pytest.raises(ConfigError):
        servable_policy("no-such-policy")
    with pytest.raises(ConfigError):
        servable_policy("route-follower", cruise_speed_mps=-1.0)
