"""Camera rigs: named pinhole cameras with intrinsics and a camera-to-ego pose.

Frames:
    * ego: x forward, y left, z up, metres. The origin is the vehicle's reference point (for
      Cordillera scenes the ego box centre, ``tracks.xyz_m``) at height
      ``CameraRig.ego_origin_height_m`` above the ground; the presets use 0 (origin on the ground
      under the box centre), the Argoverse 2 rig uses its rear-axle centre.
    * camera: OpenCV, x right, y down, z forward (optical axis), metres.
    * pixels: ``u`` right, ``v`` down; pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``, so its
      centre is ``(j + 0.5, i + 0.5)``.

Lens distortion is carried (Argoverse 2 calibrations have it) but every Cordillera renderer and
projection is an ideal pinhole: the images are what an undistorted camera would see.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cordillera.errors import ConfigError

Float64Array = npt.NDArray[np.float64]


def quaternion_to_matrix(qw: float, qx: float, qy: float, qz: float) -> Float64Array:
    """``(3, 3)`` rotation of a (not necessarily unit) quaternion ``w + xi + yj + zk``."""
    q = np.array([qw, qx, qy, qz], np.float64)
    n = float(np.linalg.norm(q))
    if not math.isfinite(n) or n < 1e-9:
        raise ConfigError(f"quaternion {q.tolist()} has no rotation (norm {n})")
    w, x, y, z = q / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(rot: Float64Array) -> tuple[float, float, float, float]:
    """``(qw, qx, qy, qz)`` of a ``(3, 3)`` rotation matrix, with ``qw >= 0``."""
    m = np.asarray(rot, np.float64)
    # Shepperd's method: pick the largest diagonal term so the square root is well conditioned.
    t = np.trace(m)
    cands = [t, m[0, 0], m[1, 1], m[2, 2]]
    k = int(np.argmax(cands))
    if k == 0:
        s = math.sqrt(1.0 + t) * 2
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif k == 1:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif k == 2:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    qa = np.array(q)
    qa = qa / np.linalg.norm(qa)
    if qa[0] < 0:
        qa = -qa
    return (float(qa[0]), float(qa[1]), float(qa[2]), float(qa[3]))


# Columns are the camera axes (x right, y down, z forward) written in the ego frame of a camera
# that looks straight ahead: right = -y_ego, down = -z_ego, forward = +x_ego.
_CAMERA_AXES_IN_EGO = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def rotation_camera_to_ego(yaw_rad: float, pitch_down_rad: float = 0.0) -> Float64Array:
    """``(3, 3)`` rotation of a camera looking along ego heading ``yaw_rad`` (CCW from +x),
    tilted down by ``pitch_down_rad``."""
    cy, sy = math.cos(yaw_rad), math.sin(yaw_rad)
    cp, sp = math.cos(pitch_down_rad), math.sin(pitch_down_rad)
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])  # +pitch tips x_ego down
    return rz @ ry @ _CAMERA_AXES_IN_EGO


@dataclass(frozen=True)
class PinholeCamera:
    """One ideal pinhole camera.

    Attributes:
        name: unique name in its rig (``front_wide_120fov``, ``ring_front_center``).
        width_px, height_px: image size in pixels.
        fx_px, fy_px: focal lengths in pixels; cx_px, cy_px: principal point in pixels
            (pixel-edge convention: the image spans ``[0, width_px] x [0, height_px]``).
        rotation_wxyz: camera-to-ego rotation as a quaternion ``(qw, qx, qy, qz)``.
        translation_m: camera centre in the ego frame ``(x, y, z)``, metres.
        distortion: radial coefficients ``(k1, k2, k3)`` of the real lens (informational; the
            renderers model an undistorted pinhole).
    """

    name: str
    width_px: int
    height_px: int
    fx_px: float
    fy_px: float
    cx_px: float
    cy_px: float
    rotation_wxyz: tuple[float, float, float, float]
    translation_m: tuple[float, float, float]
    distortion: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"camera name {self.name!r} is not a non-empty string")
        for attr in ("width_px", "height_px"):
            v = getattr(self, attr)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 16384:
                raise ConfigError(f"camera {self.name}: {attr} {v!r} is not an int in [1, 16384]")
        for attr in ("fx_px", "fy_px"):
            v = getattr(self, attr)
            if not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"camera {self.name}: {attr} {v!r} is not a positive number")
        for attr in ("cx_px", "cy_px"):
            v = getattr(self, attr)
            if not isinstance(v, int | float) or not math.isfinite(v):
                raise ConfigError(f"camera {self.name}: {attr} {v!r} is not finite")
        if len(self.translation_m) != 3 or not all(map(math.isfinite, self.translation_m)):
            raise ConfigError(f"camera {self.name}: translation_m {self.translation_m!r}")
        if len(self.distortion) != 3 or not all(map(math.isfinite, self.distortion)):
            raise ConfigError(f"camera {self.name}: distortion {self.distortion!r}")
        if len(self.rotation_wxyz) != 4:
            raise ConfigError(f"camera {self.name}: rotation_wxyz {self.rotation_wxyz!r}")
        quaternion_to_matrix(*self.rotation_wxyz)  # raises on a degenerate quaternion

    @staticmethod
    def from_pose(
        name: str,
        width_px: int,
        height_px: int,
        fx_px: float,
        fy_px: float,
        cx_px: float,
        cy_px: float,
        camera_to_ego: npt.ArrayLike,
        distortion: Sequence[float] = (0.0, 0.0, 0.0),
    ) -> PinholeCamera:
        """Build from a ``(4, 4)`` camera-to-ego homogeneous transform."""
        t = np.asarray(camera_to_ego, np.float64)
        if t.shape != (4, 4) or not np.allclose(t[3], [0, 0, 0, 1]):
            raise ConfigError(f"camera {name}: camera_to_ego is not a 4x4 rigid transform: {t}")
        r = t[:3, :3]
        if not np.allclose(r @ r.T, np.eye(3), atol=1e-5) or np.linalg.det(r) < 0:
            raise ConfigError(f"camera {name}: camera_to_ego rotation is not orthonormal: {r}")
        tx, ty, tz = (float(v) for v in t[:3, 3])
        k1, k2, k3 = (float(v) for v in distortion)
        return PinholeCamera(
            name,
            width_px,
            height_px,
            float(fx_px),
            float(fy_px),
            float(cx_px),
            float(cy_px),
            matrix_to_quaternion(r),
            (tx, ty, tz),
            (k1, k2, k3),
        )

    @staticmethod
    def from_fov(
        name: str,
        width_px: int,
        height_px: int,
        hfov_deg: float,
        xyz_ego_m: tuple[float, float, float],
        yaw_deg: float,
        pitch_down_deg: float = 0.0,
    ) -> PinholeCamera:
        """A square-pixel camera with horizontal field of view ``hfov_deg``, centred principal
        point, mounted at ``xyz_ego_m`` looking along ego yaw ``yaw_deg``."""
        if not 1.0 <= hfov_deg < 179.0:
            raise ConfigError(f"camera {name}: hfov_deg {hfov_deg!r} not in [1, 179)")
        f = width_px / 2.0 / math.tan(math.radians(hfov_deg) / 2.0)
        pose = np.eye(4)
        pose[:3, :3] = rotation_camera_to_ego(math.radians(yaw_deg), math.radians(pitch_down_deg))
        pose[:3, 3] = xyz_ego_m
        return PinholeCamera.from_pose(
            name, width_px, height_px, f, f, width_px / 2.0, height_px / 2.0, pose
        )

    @property
    def intrinsics(self) -> Float64Array:
        """``(3, 3)`` matrix K mapping camera-frame points to homogeneous pixels."""
        return np.array(
            [[self.fx_px, 0.0, self.cx_px], [0.0, self.fy_px, self.cy_px], [0.0, 0.0, 1.0]]
        )

    @property
    def camera_to_ego(self) -> Float64Array:
        """``(4, 4)`` homogeneous camera-to-ego transform."""
        t = np.eye(4)
        t[:3, :3] = quaternion_to_matrix(*self.rotation_wxyz)
        t[:3, 3] = self.translation_m
        return t

    @property
    def hfov_deg(self) -> float:
        """Horizontal field of view of the image, degrees (centred principal point assumed)."""
        return math.degrees(2 * math.atan(self.width_px / 2.0 / self.fx_px))

    def resized(self, width_px: int, height_px: int) -> PinholeCamera:
        """The same camera at another resolution, keeping both fields of view (fx and fy scale
        with width and height independently, so a changed aspect ratio gives non-square pixels).
        """
        sx, sy = width_px / self.width_px, height_px / self.height_px
        return replace(
            self,
            width_px=width_px,
            height_px=height_px,
            fx_px=self.fx_px * sx,
            fy_px=self.fy_px * sy,
            cx_px=self.cx_px * sx,
            cy_px=self.cy_px * sy,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the Argoverse 2 reader's ``extra["cameras"]`` entries)."""
        qw, qx, qy, qz = self.rotation_wxyz
        tx, ty, tz = self.translation_m
        return {
            "name": self.name,
            "width_px": self.width_px,
            "height_px": self.height_px,
            "fx_px": self.fx_px,
            "fy_px": self.fy_px,
            "cx_px": self.cx_px,
            "cy_px": self.cy_px,
            "distortion": list(self.distortion),
            "camera_to_ego": {
                "qw": qw,
                "qx": qx,
                "qy": qy,
                "qz": qz,
                "tx_m": tx,
                "ty_m": ty,
                "tz_m": tz,
            },
        }

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> PinholeCamera:
        """Inverse of :meth:`to_dict`; raises :class:`ConfigError` naming a missing key."""
        try:
            pose = d["camera_to_ego"]
            dist = tuple(float(k) for k in d.get("distortion", (0.0, 0.0, 0.0)))
            return PinholeCamera(
                name=str(d["name"]),
                width_px=int(d["width_px"]),
                height_px=int(d["height_px"]),
                fx_px=float(d["fx_px"]),
                fy_px=float(d["fy_px"]),
                cx_px=float(d["cx_px"]),
                cy_px=float(d["cy_px"]),
                rotation_wxyz=(
                    float(pose["qw"]),
                    float(pose["qx"]),
                    float(pose["qy"]),
                    float(pose["qz"]),
                ),
                translation_m=(float(pose["tx_m"]), float(pose["ty_m"]), float(pose["tz_m"])),
                distortion=(*dist, 0.0, 0.0, 0.0)[:3],  # type: ignore[arg-type]
            )
        except KeyError as e:
            raise ConfigError(f"camera {d.get('name', '?')!r}: missing key {e}") from None
        except (TypeError, ValueError) as e:
            raise ConfigError(f"camera {d.get('name', '?')!r}: {e}") from None


@dataclass(frozen=True)
class CameraRig:
    """An ordered set of uniquely named cameras on one vehicle.

    Attributes:
        name: the rig's name (``ring7``, ``av2``, ...).
        cameras: C cameras; the order is the camera axis of every batched output.
        ego_origin_height_m: height of the ego frame's origin above the ground, metres; the
            renderers put the (flat) ground plane at ``z_ego = -ego_origin_height_m``.
    """

    name: str
    cameras: tuple[PinholeCamera, ...]
    ego_origin_height_m: float = 0.0
    _index: Mapping[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.cameras:
            raise ConfigError(f"rig {self.name!r} has no cameras")
        if not all(isinstance(c, PinholeCamera) for c in self.cameras):
            raise ConfigError(f"rig {self.name!r}: cameras must be PinholeCamera instances")
        names = [c.name for c in self.cameras]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ConfigError(f"rig {self.name!r}: duplicate camera names {sorted(dup)}")
        if not math.isfinite(self.ego_origin_height_m) or abs(self.ego_origin_height_m) > 10:
            raise ConfigError(
                f"rig {self.name!r}: ego_origin_height_m "
                f"{self.ego_origin_height_m!r} not in [-10, 10]"
            )
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(names)})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras)

    @property
    def num_cameras(self) -> int:
        return len(self.cameras)

    def __len__(self) -> int:
        return len(self.cameras)

    def index(self, name: str) -> int:
        """Position of camera ``name`` on the camera axis."""
        if name not in self._index:
            raise ConfigError(f"rig {self.name!r} has no camera {name!r}; has {self.names}")
        return self._index[name]

    @property
    def resolution_hw(self) -> tuple[int, int]:
        """``(height_px, width_px)`` shared by all cameras; raises if they differ (batched
        outputs need one size: use :meth:`resized`)."""
        sizes = {(c.height_px, c.width_px) for c in self.cameras}
        if len(sizes) != 1:
            raise ConfigError(
                f"rig {self.name!r} mixes resolutions {sorted(sizes)}; "
                "call rig.resized(width_px, height_px) first"
            )
        return next(iter(sizes))

    def resized(self, width_px: int, height_px: int) -> CameraRig:
        """Every camera at ``width_px x height_px``, fields of view kept."""
        return replace(self, cameras=tuple(c.resized(width_px, height_px) for c in self.cameras))

    def rebased(self, new_origin_in_ego_m: tuple[float, float, float]) -> CameraRig:
        """The same rig in an ego frame whose origin is moved to ``new_origin_in_ego_m`` (old
        ego frame, axes unchanged), e.g. from a rear-axle origin to the box centre."""
        ox, oy, oz = new_origin_in_ego_m
        cams = tuple(
            replace(
                c,
                translation_m=(
                    c.translation_m[0] - ox,
                    c.translation_m[1] - oy,
                    c.translation_m[2] - oz,
                ),
            )
            for c in self.cameras
        )
        return replace(self, cameras=cams, ego_origin_height_m=self.ego_origin_height_m + oz)

    def select(self, names: Sequence[str]) -> CameraRig:
        """The sub-rig of the named cameras, in the given order."""
        return replace(self, cameras=tuple(self.cameras[self.index(n)] for n in names))

    def intrinsics(self) -> Float64Array:
        """``(C, 3, 3)`` intrinsic matrices."""
        return np.stack([c.intrinsics for c in self.cameras])

    def camera_to_ego(self) -> Float64Array:
        """``(C, 4, 4)`` camera-to-ego transforms."""
        return np.stack([c.camera_to_ego for c in self.cameras])

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ego_origin_height_m": self.ego_origin_height_m,
            "cameras": [c.to_dict() for c in self.cameras],
        }

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> CameraRig:
        """Inverse of :meth:`to_dict` (``ego_origin_height_m`` defaults to 0)."""
        if not isinstance(d, Mapping) or not isinstance(d.get("cameras"), list):
            raise ConfigError("a rig dict needs a 'cameras' list")
        return CameraRig(
            name=str(d.get("name", "custom")),
            cameras=tuple(PinholeCamera.from_dict(c) for c in d["cameras"]),
            ego_origin_height_m=float(d.get("ego_origin_height_m", 0.0)),
        )

    @staticmethod
    def from_json(path: str | Path) -> CameraRig:
        try:
            return CameraRig.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read rig {path}: {e}") from None
