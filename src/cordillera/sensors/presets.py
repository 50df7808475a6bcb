"""Named camera rigs: the 7-camera surround ring, its 6-camera subset, and Argoverse 2's rig.

The ring (ego frame, origin on the ground under the ego box centre, x forward, y left):

====================  =====  =========================  =======  ============================
camera                hFOV   mount (x, y, z) m          yaw      covers (ego yaw, degrees)
====================  =====  =========================  =======  ============================
front_wide_120fov     120°   (1.30, 0.00, 1.60) roof     0°      -60 … 60
front_tele_30fov       30°   (1.30, 0.00, 1.65) roof     0°      -15 … 15 (long range)
cross_left_120fov     120°   (1.00, 0.80, 1.55) roof    90°       30 … 150
cross_right_120fov    120°   (1.00, -0.80, 1.55) roof  -90°     -150 … -30
rear_left_70fov        70°   (-0.80, 0.85, 1.50) roof  145°      110 … 180
rear_right_70fov       70°   (-0.80, -0.85, 1.50) roof -145°    -180 … -110
rear_tele_30fov        30°   (-2.20, 0.00, 1.50) roof  180°      165 … 195
====================  =====  =========================  =======  ============================

Neighbouring views overlap by 30° at the front corners and 40° at the rear corners, so every
direction is seen by at least one camera. ``ring6`` is the *driving subset* — front wide,
front tele, both cross cameras, both rear cameras — without ``rear_tele_30fov``: the two 70° rear
cameras already meet at 180°, so ring6 still covers 360°, with less resolution straight behind.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from cordillera.errors import ConfigError
from cordillera.sensors.rig import CameraRig, PinholeCamera

RING7_LAYOUT: tuple[tuple[str, float, tuple[float, float, float], float], ...] = (
    ("front_wide_120fov", 120.0, (1.30, 0.00, 1.60), 0.0),
    ("front_tele_30fov", 30.0, (1.30, 0.00, 1.65), 0.0),
    ("cross_left_120fov", 120.0, (1.00, 0.80, 1.55), 90.0),
    ("cross_right_120fov", 120.0, (1.00, -0.80, 1.55), -90.0),
    ("rear_left_70fov", 70.0, (-0.80, 0.85, 1.50), 145.0),
    ("rear_right_70fov", 70.0, (-0.80, -0.85, 1.50), -145.0),
    ("rear_tele_30fov", 30.0, (-2.20, 0.00, 1.50), 180.0),
)
"""(name, horizontal FOV in degrees, mount xyz in the ego frame, yaw in degrees) per camera."""

RING6_NAMES = (
    "front_wide_120fov",
    "front_tele_30fov",
    "cross_left_120fov",
    "cross_right_120fov",
    "rear_left_70fov",
    "rear_right_70fov",
)
"""The driving subset: the ring without ``rear_tele_30fov``."""

RIG_NAMES = ("ring7", "ring6", "av2")

AV2_RING_CAMERAS = (
    "ring_front_center",
    "ring_front_left",
    "ring_front_right",
    "ring_side_left",
    "ring_side_right",
    "ring_rear_left",
    "ring_rear_right",
)

AV2_EGO_ORIGIN_HEIGHT_M = 0.37
"""Height of Argoverse 2's ego origin (the rear-axle centre) above the road, metres: annotated
cuboids' bottoms sit about 0.37 m below it (see the AV2 sensor reader)."""


def ring7(width_px: int = 256, height_px: int = 144) -> CameraRig:
    """The 7-camera surround ring at ``width_px x height_px`` (square pixels)."""
    cams = tuple(
        PinholeCamera.from_fov(name, width_px, height_px, fov, xyz, yaw)
        for name, fov, xyz, yaw in RING7_LAYOUT
    )
    return CameraRig("ring7", cams)


def ring6(width_px: int = 256, height_px: int = 144) -> CameraRig:
    """The 6-camera driving subset of :func:`ring7` (no rear tele)."""
    rig = ring7(width_px, height_px).select(RING6_NAMES)
    return CameraRig("ring6", rig.cameras)


def rig_from_cameras_json(
    cameras: Any, name: str = "av2", ego_origin_height_m: float = AV2_EGO_ORIGIN_HEIGHT_M
) -> CameraRig:
    """A rig from the Argoverse 2 reader's ``scene.extra["cameras"]`` list of camera dicts
    (see :meth:`PinholeCamera.from_dict`)."""
    if not isinstance(cameras, list) or not cameras:
        raise ConfigError(f"camera calibration must be a non-empty list, got {type(cameras)}")
    return CameraRig(
        name,
        tuple(PinholeCamera.from_dict(c) for c in cameras),
        ego_origin_height_m=ego_origin_height_m,
    )


def rig_from_scene(scene: Any, ring_only: bool = True) -> CameraRig:
    """The real rig a scene carries in ``extra["cameras"]`` (Argoverse 2 sensor logs), in the
    scene's ego frame: origin at the ego *box centre* (the pose a RenderBatch carries), which
    the AV2 reader places ahead of and above AV2's rear-axle origin.

    With ``ring_only``, keeps the seven ``ring_*`` cameras when present (drops stereo pairs).
    Raises :class:`ConfigError` when the scene has no calibration.
    """
    cams = scene.extra.get("cameras") if hasattr(scene, "extra") else None
    if not cams:
        raise ConfigError(
            f"scene {getattr(scene, 'scene_id', '?')!r} carries no camera "
            "calibration (extra['cameras']); use rig ring7 or ring6"
        )
    rig = rig_from_cameras_json(list(cams))
    if getattr(scene, "source", "") == "av2-sensor":
        from cordillera.scene.readers.av2_sensor import EGO_CENTER_IN_EGO_M

        rig = rig.rebased(EGO_CENTER_IN_EGO_M)
    if ring_only:
        ring = [n for n in AV2_RING_CAMERAS if n in rig.names]
        if ring:
            rig = rig.select(ring)
    return rig


def rig_from_av2_calibration(folder: str | Path, ring_only: bool = True) -> CameraRig:
    """The rig of an Argoverse 2 sensor log from its ``calibration/`` feathers.

    ``folder`` is the log folder or its ``calibration`` sub-folder, holding
    ``intrinsics.feather`` and ``egovehicle_SE3_sensor.feather``. Poses are AV2's
    egovehicle frame (origin at the rear-axle centre, ``ego_origin_height_m`` = 0.33 m).
    """
    import pyarrow.feather as feather  # only this function pays for pyarrow

    root = Path(folder)
    if (root / "calibration").is_dir():
        root = root / "calibration"
    try:
        intr = feather.read_table(root / "intrinsics.feather").to_pylist()
        extr = feather.read_table(root / "egovehicle_SE3_sensor.feather").to_pylist()
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read Argoverse 2 calibration under {root}: {e}") from None
    poses = {row["sensor_name"]: row for row in extr}
    cams = []
    for row in intr:
        name = row["sensor_name"]
        if name not in poses:
            raise ConfigError(f"{root}: camera {name!r} has intrinsics but no extrinsics")
        if ring_only and not name.startswith("ring_"):
            continue
        p = poses[name]
        cams.append(
            {
                "name": name,
                "width_px": int(row["width_px"]),
                "height_px": int(row["height_px"]),
                "fx_px": row["fx_px"],
                "fy_px": row["fy_px"],
                "cx_px": row["cx_px"],
                "cy_px": row["cy_px"],
                "distortion": [row["k1"], row["k2"], row["k3"]],
                "camera_to_ego": {
                    k: p[k] for k in ("qw", "qx", "qy", "qz", "tx_m", "ty_m", "tz_m")
                },
            }
        )
    order = {n: i for i, n in enumerate(AV2_RING_CAMERAS)}
    cams.sort(key=lambda c: order.get(c["name"], len(order)))
    return rig_from_cameras_json(cams)


def get_rig(name: str, width_px: int = 256, height_px: int = 144, scene: Any = None) -> CameraRig:
    """A rig by name: ``ring7``, ``ring6``, ``av2`` (from ``scene``'s calibration, resized), or
    a path to a rig JSON file (:meth:`CameraRig.to_dict` form, resized)."""
    if name == "ring7":
        return ring7(width_px, height_px)
    if name == "ring6":
        return ring6(width_px, height_px)
    if name == "av2":
        if scene is None:
            raise ConfigError("rig 'av2' needs a scene carrying Argoverse 2 calibration")
        return rig_from_scene(scene).resized(width_px, height_px)
    if name.endswith(".json") and Path(name).is_file():
        return CameraRig.from_json(name).resized(width_px, height_px)
    raise ConfigError(
        f"unknown rig {name!r}; choose from {', '.join(RIG_NAMES)} or give a rig .json file"
    )


def yaw_coverage_deg(rig: CameraRig, samples: int = 720) -> float:
    """Fraction (0..1) of horizontal directions (at the horizon) seen by at least one camera."""
    yaw = np.linspace(-math.pi, math.pi, samples, endpoint=False)
    rays = np.stack([np.cos(yaw), np.sin(yaw), np.zeros_like(yaw)], axis=1)  # (S, 3) ego
    seen = np.zeros(samples, bool)
    for cam in rig.cameras:  # offline helper, not a hot path
        r = cam.camera_to_ego[:3, :3]
        d = rays @ r  # (S, 3) in camera frame: d_cam = R^T d_ego
        front = d[:, 2] > 1e-6
        u = cam.fx_px * d[:, 0] / np.where(front, d[:, 2], 1) + cam.cx_px
        seen |= front & (u >= 0) & (u <= cam.width_px)
    return float(seen.mean())


def rig_json(rig: CameraRig) -> str:
    """The rig as pretty JSON (the form :meth:`CameraRig.from_json` reads)."""
    return json.dumps(rig.to_dict(), indent=2)
