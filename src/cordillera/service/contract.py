"""Conversions between the egodriver contract's messages and Cordillera's arrays.

The wire contract is ``carla-driver-interface``'s generated ``_proto`` modules (alpasim's
``egodriver.proto`` unchanged); nothing here redeclares a message. Conventions on the wire, as
alpasim states them:

* **local frame**: the world frame of a rollout, x/y on the ground, z up. Cordillera sends its
  simulator's scene-local frame (the scene origin subtracted): positions are ``float32`` on the
  wire, so small coordinates keep centimetre precision.
* **rig frame**: x forward, y left, z up, attached to the ego. Cordillera's rig is its ego frame
  (origin on the ground under the ego box centre), so ``ego_m`` arrays are rig-frame points.
* **poses** are ``local -> rig`` transforms (position + quaternion ``w, x, y, z``); Cordillera is
  planar and keeps the yaw (roll and pitch are dropped on the way in, zero on the way out).
* **times** are integer microseconds (``*_us``).
* **cameras** (contract revision 2): ``rig_to_camera`` is the camera's optical frame (x right,
  y down, z along the axis) in the rig -- exactly Cordillera's ``camera_to_ego``.

Everything that touches many points is vectorised numpy; the only Python loops build protobuf
messages, which have no array constructor.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from carla_driver_interface._proto import common_pb2, sensorsim_pb2
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from PIL import Image, UnidentifiedImageError

from cordillera.errors import ConfigError
from cordillera.policy.plan import ChainOfCausation, Plan, PlanError
from cordillera.policy.vocabulary import LaneAction, LateralAction, LongitudinalAction
from cordillera.sensors.rig import PinholeCamera, quaternion_to_matrix
from cordillera.service.errors import invalid

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

US_PER_S = 1_000_000
PLAN_DT_S = 0.1
"""Spacing of a Cordillera plan's waypoints (VISION.md: 64 waypoints at 10 Hz)."""
MAX_IMAGE_SIDE_PX = 16384
MAX_POSES = 100_000
"""Most poses or waypoints one message may carry (a trajectory, a route)."""
IMAGE_FORMATS = ("JPEG", "PNG")
"""Image formats decoded; others are refused (PIL's long tail of decoders is attack surface)."""
DEBUG_SCHEMA = "cordillera.drive_debug/1"
"""``DriveResponse.debug_info.unstructured_debug_info`` is UTF-8 JSON with this ``schema``."""


# -- poses ------------------------------------------------------------------------------------


def yaw_from_quat(wxyz: F64) -> F64:
    """``(N,)`` yaw (rotation about z, ZYX order) of ``(N, 4)`` quaternions ``w, x, y, z``;
    an all-zero quaternion (an unset message) is the identity."""
    w, x, y, z = wxyz[:, 0], wxyz[:, 1], wxyz[:, 2], wxyz[:, 3]
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quat_from_yaw(yaw_rad: F64) -> F64:
    """``(N, 4)`` quaternions ``w, x, y, z`` of yaw-only rotations."""
    half = 0.5 * np.asarray(yaw_rad, np.float64)
    zero = np.zeros_like(half)
    return np.stack([np.cos(half), zero, zero, np.sin(half)], -1)


@dataclass(frozen=True, eq=False)
class TimedPoses:
    """Planar poses at strictly increasing times, all in one frame.

    Attributes:
        timestamps_us: ``(N,)`` int64 microseconds.
        xyz_m: ``(N, 3)`` positions, metres.
        yaw_rad: ``(N,)`` headings (CCW from +x), radians.
    """

    timestamps_us: I64
    xyz_m: F64
    yaw_rad: F64

    def __len__(self) -> int:
        return int(self.timestamps_us.shape[0])

    def validate(self, field: str) -> None:
        """Raises ``INVALID_ARGUMENT`` naming ``field`` for non-finite or unordered poses."""
        n = len(self)
        if self.xyz_m.shape != (n, 3) or self.yaw_rad.shape != (n,):
            raise invalid(f"shapes {self.xyz_m.shape} / {self.yaw_rad.shape} for {n} times", field)
        bad = ~(np.isfinite(self.xyz_m).all(1) & np.isfinite(self.yaw_rad))
        if bad.any():
            i = int(np.argmax(bad))
            raise invalid(f"pose {i} is not finite: {self.xyz_m[i].tolist()}", field)
        if n > 1 and not bool((np.diff(self.timestamps_us) > 0).all()):
            i = int(np.argmax(np.diff(self.timestamps_us) <= 0)) + 1
            raise invalid(
                f"timestamps_us must increase strictly; pose {i} at "
                f"{int(self.timestamps_us[i])} follows {int(self.timestamps_us[i - 1])}",
                field,
            )


def trajectory_from_proto(msg: common_pb2.Trajectory, field: str) -> TimedPoses:
    """The poses of a ``common.Trajectory`` (validated; raises ``INVALID_ARGUMENT``)."""
    n = len(msg.poses)
    if n > MAX_POSES:
        raise invalid(f"{n} poses, more than the {MAX_POSES} allowed", field)
    t = np.fromiter((p.timestamp_us for p in msg.poses), np.int64, n)
    flat = np.fromiter(
        (
            v
            for p in msg.poses
            for v in (
                p.pose.vec.x,
                p.pose.vec.y,
                p.pose.vec.z,
                p.pose.quat.w,
                p.pose.quat.x,
                p.pose.quat.y,
                p.pose.quat.z,
            )
        ),
        np.float64,
        7 * n,
    ).reshape(n, 7)
    if not np.isfinite(flat[:, 3:]).all():
        raise invalid("a quaternion is not finite", field)
    poses = TimedPoses(t, flat[:, :3].copy(), yaw_from_quat(flat[:, 3:]))
    poses.validate(field)
    return poses


def trajectory_to_proto(poses: TimedPoses) -> common_pb2.Trajectory:
    """A ``common.Trajectory`` of yaw-only poses."""
    q = quat_from_yaw(poses.yaw_rad).tolist()
    xyz = poses.xyz_m.tolist()
    return common_pb2.Trajectory(
        poses=[
            common_pb2.PoseAtTime(
                timestamp_us=t,
                pose=common_pb2.Pose(
                    vec=common_pb2.Vec3(x=p[0], y=p[1], z=p[2]),
                    quat=common_pb2.Quat(w=r[0], x=r[1], y=r[2], z=r[3]),
                ),
            )
            for t, p, r in zip(poses.timestamps_us.tolist(), xyz, q, strict=True)
        ]
    )


def points_from_proto(vecs: RepeatedCompositeFieldContainer[common_pb2.Vec3], field: str) -> F64:
    """``(N, 3)`` points of repeated ``common.Vec3`` (finite; raises ``INVALID_ARGUMENT``)."""
    n = len(vecs)
    if n > MAX_POSES:
        raise invalid(f"{n} points, more than the {MAX_POSES} allowed", field)
    pts = np.fromiter((c for v in vecs for c in (v.x, v.y, v.z)), np.float64, 3 * n).reshape(n, 3)
    if not np.isfinite(pts).all():
        i = int(np.argmax(~np.isfinite(pts).all(1)))
        raise invalid(f"point {i} is not finite: {pts[i].tolist()}", field)
    return pts


def points_to_proto(points: F64) -> list[common_pb2.Vec3]:
    """``common.Vec3`` messages of ``(N, 2)`` or ``(N, 3)`` points (z = 0 when 2D)."""
    p = np.asarray(points, np.float64)
    if p.shape[-1] == 2:
        p = np.concatenate([p, np.zeros_like(p[:, :1])], 1)
    return [common_pb2.Vec3(x=a, y=b, z=c) for a, b, c in p.tolist()]


def to_frame(xy_m: F64, origin_xy_m: F64, yaw_rad: float) -> F64:
    """``(..., 2)`` points of the outer frame in the frame of pose ``(origin, yaw)``."""
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    d = np.asarray(xy_m, np.float64) - origin_xy_m
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], -1)


def from_frame(xy_m: F64, origin_xy_m: F64, yaw_rad: float) -> F64:
    """``(..., 2)`` points of the frame of pose ``(origin, yaw)`` in the outer frame."""
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    p = np.asarray(xy_m, np.float64)
    return np.stack([c * p[..., 0] - s * p[..., 1], s * p[..., 0] + c * p[..., 1]], -1) + (
        origin_xy_m
    )


def interpolate_poses(poses: TimedPoses, t_us: I64, *, extrapolate: bool) -> tuple[F64, F64]:
    """``(K, 3)`` positions and ``(K,)`` yaws of ``poses`` at times ``t_us (K,)``.

    Linear in time between samples (yaw unwrapped first). Outside the span the end pose is held,
    or with ``extrapolate`` continued at the velocity of the end segment (a trajectory that ends
    standing keeps standing; one that ends moving does not demand a stop it never planned).
    """
    n = len(poses)
    if n == 0:
        raise invalid("no pose to interpolate")
    t = np.asarray(t_us, np.float64)
    if n == 1:
        k = t.shape[0]
        return np.repeat(poses.xyz_m, k, 0), np.repeat(poses.yaw_rad, k)
    tp = poses.timestamps_us.astype(np.float64)
    fp = np.concatenate([poses.xyz_m, np.unwrap(poses.yaw_rad)[:, None]], 1)  # (N, 4)
    out = np.stack([np.interp(t, tp, fp[:, d]) for d in range(4)], -1)
    if extrapolate:
        lo, hi = t < tp[0], t > tp[-1]
        first = (fp[1] - fp[0]) / (tp[1] - tp[0])
        last = (fp[-1] - fp[-2]) / (tp[-1] - tp[-2])
        first[3] = last[3] = 0.0  # hold the end headings: no spinning past the plan
        out[lo] = fp[0] + (t[lo] - tp[0])[:, None] * first
        out[hi] = fp[-1] + (t[hi] - tp[-1])[:, None] * last
    return out[:, :3], out[:, 3]


# -- routes -----------------------------------------------------------------------------------


def route_ahead(polyline_m: F64, count: int, spacing_m: float) -> F64:
    """``(count, 2)`` points ``spacing_m`` apart along a frame's route, starting ``spacing_m``
    past the foot of the frame's origin on it (Cordillera's route layout,
    :mod:`cordillera.policy.inputs`); continued straight past the route's end.

    ``polyline_m`` is ``(R, 2)`` in the frame; an empty route is straight ahead and a single
    point is reached from the origin.
    """
    p = np.asarray(polyline_m, np.float64)[:, :2]
    if p.shape[0] == 0:
        p = np.array([[0.0, 0.0], [spacing_m, 0.0]])
    elif p.shape[0] == 1:
        p = np.concatenate([np.zeros((1, 2)), p], 0)
    seg = np.diff(p, axis=0)  # (R-1, 2)
    length = np.linalg.norm(seg, axis=1)
    keep = length > 1e-6
    if not keep.any():
        p, seg, length = (
            np.array([[0.0, 0.0], [spacing_m, 0.0]]),
            np.array([[spacing_m, 0.0]]),
            (np.array([spacing_m])),
        )
    else:
        p = np.concatenate([p[:1], p[1:][keep]], 0)
        seg, length = np.diff(p, axis=0), np.linalg.norm(np.diff(p, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(length)])
    # Foot of the origin on every segment; the nearest one is where the ego is along the route.
    u = np.clip((-(p[:-1] * seg).sum(1)) / (length**2), 0.0, 1.0)
    foot = p[:-1] + u[:, None] * seg
    i = int(np.argmin(np.linalg.norm(foot, axis=1)))
    s = arc[i] + u[i] * length[i] + spacing_m * np.arange(1, count + 1)
    out = np.stack([np.interp(s, arc, p[:, 0]), np.interp(s, arc, p[:, 1])], -1)
    past = s > arc[-1]
    out[past] = p[-1] + (s[past] - arc[-1])[:, None] * (seg[-1] / length[-1])
    return out


def route_with_foot(route_ego_m: F64) -> F64:
    """``(R + 1, 2)`` a route that starts ahead of the ego, led by the foot of the ego on the
    line of its first segment: the route as the contract's runtimes send it (from the ego on)."""
    r = np.asarray(route_ego_m, np.float64)
    if r.shape[0] < 2:
        return np.concatenate([np.zeros((1, 2)), r], 0)
    d = r[1] - r[0]
    n = float(np.linalg.norm(d))
    if n < 1e-6:
        return np.concatenate([np.zeros((1, 2)), r], 0)
    u = d / n
    foot = r[0] - float(r[0] @ u) * u
    return np.concatenate([foot[None], r], 0)


# -- cameras ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeclaredCamera:
    """A camera a runtime declared in ``start_session``.

    Attributes:
        logical_id: its name (Cordillera's camera name).
        width_px, height_px: its frames' size.
        pinhole: the calibration as a :class:`PinholeCamera` (OpenCV pinhole cameras), or None
            for models Cordillera does not represent (f-theta, fisheye).
    """

    logical_id: str
    width_px: int
    height_px: int
    pinhole: PinholeCamera | None


def camera_from_proto(
    cam: sensorsim_pb2.AvailableCamerasReturn.AvailableCamera, field: str
) -> DeclaredCamera:
    """A declared camera, validated (raises ``INVALID_ARGUMENT`` naming the field)."""
    name = cam.logical_id or cam.intrinsics.logical_id
    if not name or len(name) > 256:
        raise invalid(f"logical_id {name!r} must be 1 to 256 characters", f"{field}.logical_id")
    spec = cam.intrinsics
    w, h = int(spec.resolution_w), int(spec.resolution_h)
    for side, v in (("resolution_w", w), ("resolution_h", h)):
        if not 1 <= v <= MAX_IMAGE_SIDE_PX:
            raise invalid(
                f"camera {name!r}: {v} not in [1, {MAX_IMAGE_SIDE_PX}]",
                f"{field}.intrinsics.{side}",
            )
    pinhole = None
    if spec.WhichOneof("camera_param") == "opencv_pinhole_param":
        p = spec.opencv_pinhole_param
        v, q = cam.rig_to_camera.vec, cam.rig_to_camera.quat
        pose = np.eye(4)
        try:
            if (q.w, q.x, q.y, q.z) != (0.0, 0.0, 0.0, 0.0):
                pose[:3, :3] = quaternion_to_matrix(q.w, q.x, q.y, q.z)
            pose[:3, 3] = (v.x, v.y, v.z)
            pinhole = PinholeCamera.from_pose(
                name,
                w,
                h,
                p.focal_length_x,
                p.focal_length_y,
                p.principal_point_x,
                p.principal_point_y,
                pose,
            )
        except ConfigError as e:
            raise invalid(str(e), f"{field}.intrinsics.opencv_pinhole_param") from None
    return DeclaredCamera(name, w, h, pinhole)


def camera_to_proto(cam: PinholeCamera) -> sensorsim_pb2.AvailableCamerasReturn.AvailableCamera:
    """The contract's camera declaration (revision 2) of a Cordillera camera.

    No distortion is declared: Cordillera's renderers produce ideal pinhole images whatever the
    real lens had (:mod:`cordillera.sensors.rig`).
    """
    qw, qx, qy, qz = cam.rotation_wxyz
    tx, ty, tz = cam.translation_m
    return sensorsim_pb2.AvailableCamerasReturn.AvailableCamera(
        logical_id=cam.name,
        rig_to_camera=common_pb2.Pose(
            vec=common_pb2.Vec3(x=tx, y=ty, z=tz), quat=common_pb2.Quat(w=qw, x=qx, y=qy, z=qz)
        ),
        intrinsics=sensorsim_pb2.CameraSpec(
            logical_id=cam.name,
            resolution_w=cam.width_px,
            resolution_h=cam.height_px,
            shutter_type=sensorsim_pb2.ShutterType.GLOBAL,
            opencv_pinhole_param=sensorsim_pb2.OpenCVPinholeCameraParam(
                focal_length_x=cam.fx_px,
                focal_length_y=cam.fy_px,
                principal_point_x=cam.cx_px,
                principal_point_y=cam.cy_px,
            ),
        ),
    )


# -- images -----------------------------------------------------------------------------------


def encode_image(
    rgb: npt.NDArray[np.uint8], image_format: str = "JPEG", quality: int = 90
) -> bytes:
    """``(H, W, 3)`` uint8 RGB as JPEG or PNG bytes."""
    fmt = image_format.upper()
    if fmt not in IMAGE_FORMATS:
        raise ConfigError(f"image format {image_format!r} is not one of {IMAGE_FORMATS}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format=fmt, quality=quality)
    return buf.getvalue()


def decode_image(data: bytes, width_px: int, height_px: int, field: str) -> npt.NDArray[np.uint8]:
    """``(H, W, 3)`` uint8 RGB of JPEG or PNG ``data`` of the declared size.

    The size is read from the header and checked before the pixels are decoded, so a frame
    claiming a huge size costs nothing; a corrupt or truncated image raises
    ``INVALID_ARGUMENT``.
    """
    if not data:
        raise invalid("empty image", field)
    try:
        with Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS)) as im:
            if im.size != (width_px, height_px):
                raise invalid(
                    f"image is {im.size[0]}x{im.size[1]} but the camera was declared "
                    f"{width_px}x{height_px}",
                    field,
                )
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as e:
        raise invalid(f"not a decodable {'/'.join(IMAGE_FORMATS)} image: {e}", field) from None
    return rgb


# -- debug payload ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DriveDebug:
    """What a Cordillera server puts in ``DriveResponse.debug_info.unstructured_debug_info``.

    Attributes:
        policy: the served policy's name.
        inference_s: wall seconds the policy took.
        longitudinal, lateral, lane: the plan's meta-actions (``lane`` None without a map).
        coc: the Chain-of-Causation, or None.
    """

    policy: str
    inference_s: float
    longitudinal: LongitudinalAction
    lateral: LateralAction
    lane: LaneAction | None
    coc: ChainOfCausation | None

    @staticmethod
    def of_plan(plan: Plan, row: int, policy: str, inference_s: float) -> DriveDebug:
        lane = int(plan.lane[row])
        return DriveDebug(
            policy,
            inference_s,
            LongitudinalAction(int(plan.longitudinal[row])),
            LateralAction(int(plan.lateral[row])),
            LaneAction(lane) if lane >= 0 else None,
            plan.coc[row],
        )

    def to_bytes(self) -> bytes:
        body: dict[str, Any] = {
            "schema": DEBUG_SCHEMA,
            "policy": self.policy,
            "inference_s": round(self.inference_s, 6),
            "meta_actions": {
                "longitudinal": self.longitudinal.text,
                "lateral": self.lateral.text,
                "lane": self.lane.text if self.lane is not None else None,
            },
            "coc": self.coc.to_json() if self.coc is not None else None,
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @staticmethod
    def from_bytes(data: bytes) -> DriveDebug | None:
        """The payload of a Cordillera server; None for any other peer's payload (the field
        is free-form: another driver may put anything there)."""
        try:
            body = json.loads(data.decode())
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
        if not isinstance(body, dict) or body.get("schema") != DEBUG_SCHEMA:
            return None
        try:
            meta = body["meta_actions"]
            lane = meta.get("lane")
            coc = body.get("coc")
            return DriveDebug(
                str(body["policy"]),
                float(body["inference_s"]),
                LongitudinalAction.parse(meta["longitudinal"]),
                LateralAction.parse(meta["lateral"]),
                LaneAction.parse(lane) if lane else None,
                ChainOfCausation.from_json(coc) if coc else None,
            )
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise PlanError(f"malformed {DEBUG_SCHEMA} debug payload: {e}") from None


__all__ = [
    "DEBUG_SCHEMA",
    "IMAGE_FORMATS",
    "PLAN_DT_S",
    "US_PER_S",
    "DeclaredCamera",
    "DriveDebug",
    "TimedPoses",
    "camera_from_proto",
    "camera_to_proto",
    "decode_image",
    "encode_image",
    "from_frame",
    "interpolate_poses",
    "points_from_proto",
    "points_to_proto",
    "quat_from_yaw",
    "route_ahead",
    "route_with_foot",
    "to_frame",
    "trajectory_from_proto",
    "trajectory_to_proto",
    "yaw_from_quat",
]
