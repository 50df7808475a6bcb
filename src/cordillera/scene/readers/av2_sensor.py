"""Argoverse 2 sensor-dataset logs (ego poses + 3D cuboid tracks + map) as a Scene.

A log folder holds:

- ``city_SE3_egovehicle.feather``: ego poses (``timestamp_ns``, unit quaternion ``qw..qz``
  scalar first, ``tx_m..tz_m``), each mapping ego-frame points into the city frame, at a rate
  well above 10 Hz;
- ``annotations.feather`` or ``annotations_with_ego.feather``: one 3D cuboid per track and lidar
  sweep (~10 Hz): ``timestamp_ns``, ``track_uuid``, ``category``, ``length_m/width_m/height_m``,
  pose ``qw..qz`` / ``tx_m..tz_m`` **in the ego frame at that timestamp** (x forward, y left,
  z up, origin at the rear axle centre);
- ``map/log_map_archive_<log>____<CITY>_city_<n>.json``: the vector map, city frame;
- optionally ``calibration/intrinsics.feather`` and ``calibration/egovehicle_SE3_sensor.feather``.

``annotations_with_ego.feather`` (the scenario-mining release) is the same ego-frame table plus an
``EGO_VEHICLE`` track placed at the ego-frame origin (identity pose, 4.877 x 2.0 x 1.473 m). We
drop those rows and build the ego from the poses like for every other log (so its box centre
sits ahead of the rear axle, see :data:`EGO_CENTER_IN_EGO_M`); the dropped uuid is kept in
``extra["ego_track_uuid"]``.

Every track is resampled onto a uniform 0.1 s grid starting at the first annotation timestamp
(``extra["t0_ns"]``): positions, sizes linear, yaw along the shorter arc, valid only inside the
track's annotated span and across gaps shorter than :data:`MAX_GAP_S`; velocities are central
differences of the resampled positions. The world frame is the AV2 city frame, z included.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from cordillera.errors import SceneFormatError
from cordillera.scene.derive import route_from_log
from cordillera.scene.model import RoadMap, Scene, Tracks, TrafficSignals
from cordillera.scene.readers.av2_forecasting import column, read_arrow_table
from cordillera.scene.readers.av2_map import city_from_map_name, find_map, read_map
from cordillera.scene.types import ObjectType

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

SOURCE = "av2-sensor"
LICENSE = "CC-BY-NC-SA-4.0"
DT_S = 0.1
STEP_NS = 100_000_000
EGO_ID = "ego"

EGO_SIZE_LWH_M = (4.87, 1.85, 1.5)
"""AV2 data was collected with Ford Fusion Hybrids: about 4.87 m long, 1.85 m wide (without
mirrors), 1.5 m high."""

EGO_CENTER_IN_EGO_M = (1.4, 0.0, 0.38)
"""Box centre in the ego frame. The frame's origin is the rear-axle centre: the Fusion's rear
overhang is ~1.03 m, so the centre is 4.87 / 2 - 1.03 ≈ 1.4 m ahead; annotated cuboids' bottoms
sit ~0.37 m below the origin (axle height), so the centre is 0.75 - 0.37 ≈ 0.38 m above it."""

MAX_GAP_S = 0.25
"""Interpolate across one missed sweep (0.2 s apart) but not two (~0.3 s; sweep jitter of a few
ms would make a 0.3 s threshold pass or fail at random)."""

EDGE_TOLERANCE_S = 0.025
"""A grid step this close to a track's first/last annotation takes that annotation's state:
sweeps jitter by a few ms around the 0.1 s grid, so a strict span would drop end steps."""

MAX_SPAN_S = 3600.0  # logs are ~15-20 s; longer spans mean corrupt timestamps
MAX_CELLS = 20_000_000  # tracks x steps; bounds memory on corrupt input
_MAX_TIMESTAMP_NS = 2**62  # keeps every timestamp difference inside int64

# AV2 annotation categories -> ObjectType. Riderless bicycles/motorcycles/wheeled devices are
# CYCLIST (as in the forecasting data); strollers and wheelchairs move with pedestrians.
# Anything else (bollards, cones, signs, barrels, animals, message boards...) is OTHER.
_CATEGORIES = {
    ObjectType.VEHICLE: "REGULAR_VEHICLE LARGE_VEHICLE BUS BOX_TRUCK TRUCK VEHICULAR_TRAILER "
    "TRUCK_CAB SCHOOL_BUS ARTICULATED_BUS RAILED_VEHICLE",
    ObjectType.PEDESTRIAN: "PEDESTRIAN OFFICIAL_SIGNALER WHEELCHAIR STROLLER",
    ObjectType.CYCLIST: "BICYCLIST MOTORCYCLIST WHEELED_RIDER BICYCLE MOTORCYCLE WHEELED_DEVICE",
}
CATEGORY_TYPES: dict[str, ObjectType] = {
    name: kind for kind, names in _CATEGORIES.items() for name in names.split()
}
EGO_CATEGORY = "EGO_VEHICLE"
STOP_SIGN_CATEGORY = "STOP_SIGN"
_QUAT = ("qw", "qx", "qy", "qz")
_XYZ = ("tx_m", "ty_m", "tz_m")


# --- quaternions (scalar first, unit, Hamilton convention as AV2 uses) ----------------------


def quat_to_matrix(q: F64) -> F64:
    """``(..., 3, 3)`` rotation matrices of ``(..., 4)`` unit quaternions ``(w, x, y, z)``."""
    w, x, y, z = np.moveaxis(q, -1, 0)
    m = np.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )
    return m.reshape(*q.shape[:-1], 3, 3)


def quat_multiply(a: F64, b: F64) -> F64:
    """Hamilton product ``a ⊗ b`` (rotate by ``b``, then by ``a``) of ``(..., 4)`` arrays."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def quat_yaw(q: F64) -> F64:
    """Yaw (rotation about +z, CCW from +x) of ``(..., 4)`` quaternions, radians."""
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def _wrap(angle: F64) -> F64:
    return (angle + np.pi) % (2 * np.pi) - np.pi


# --- reading the tables ---------------------------------------------------------------------


def _floats(table: pa.Table, names: tuple[str, ...], path: Path, limit: float = 1e7) -> F64:
    """``(R, len(names))`` finite float64 columns, each bounded by ``limit`` in magnitude."""
    out = np.stack([column(table, n, "float", path).astype(np.float64) for n in names], axis=1)
    bad = ~np.isfinite(out) | (np.abs(out) > limit)
    if bad.any():
        r, k = np.argwhere(bad)[0]
        raise SceneFormatError(f"value {out[r, k]} in row {r}", field=names[k], path=path)
    return out


def _unit_quats(table: pa.Table, path: Path) -> F64:
    q = _floats(table, _QUAT, path, limit=10.0)
    norm = np.linalg.norm(q, axis=1)
    if np.any(norm < 1e-6):
        r = int(np.argmax(norm < 1e-6))
        raise SceneFormatError(f"zero quaternion {q[r].tolist()} in row {r}", field="qw", path=path)
    return q / norm[:, None]


def _timestamps(table: pa.Table, path: Path) -> I64:
    t = column(table, "timestamp_ns", "int", path).astype(np.int64)
    bad = (t < 0) | (t >= _MAX_TIMESTAMP_NS)
    if bad.any():
        raise SceneFormatError(
            f"timestamp {t[np.argmax(bad)]} out of range", field="timestamp_ns", path=path
        )
    return t


@dataclasses.dataclass(frozen=True)
class _Poses:
    """Ego poses sorted by time: ``t_ns (P,)``, ``q (P, 4)`` and ``xyz (P, 3)``, city frame."""

    t_ns: I64
    q: F64
    xyz: F64
    path: Path

    @staticmethod
    def read(path: Path) -> _Poses:
        table = read_arrow_table(path, "feather")
        if table.num_rows == 0:
            raise SceneFormatError("no ego poses", path=path)
        t = _timestamps(table, path)
        order = np.argsort(t, kind="stable")
        return _Poses(
            t[order], _unit_quats(table, path)[order], _floats(table, _XYZ, path)[order], path
        )

    def at(self, t_ns: I64) -> tuple[F64, F64, npt.NDArray[np.bool_]]:
        """Poses at ``t_ns (Q,)``: quaternions ``(Q, 4)`` (normalised lerp, fine between poses
        milliseconds apart), positions ``(Q, 3)`` and whether each query is covered."""
        zeros = np.zeros(len(self.t_ns), np.int64)
        t_s = (self.t_ns - self.t_ns[0]) / 1e9
        lo, hi, w, ok = _bracket(
            self.t_ns, zeros, t_s, t_ns, np.zeros_like(t_ns), (t_ns - self.t_ns[0]) / 1e9
        )
        # q and -q are the same rotation: flip hi onto lo's hemisphere before blending.
        flip = np.einsum("qk,qk->q", self.q[lo], self.q[hi]) < 0.0
        q_hi = np.where(flip[:, None], -self.q[hi], self.q[hi])
        q = self.q[lo] + w[:, None] * (q_hi - self.q[lo])
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        xyz = self.xyz[lo] + w[:, None] * (self.xyz[hi] - self.xyz[lo])
        return q, xyz, ok


def _bracket(
    row_key: I64, row_group: I64, row_t: F64, query_key: I64, query_group: I64, query_t: F64
) -> tuple[I64, I64, F64, npt.NDArray[np.bool_]]:
    """Bracketing rows of each query inside its group, for linear interpolation.

    Rows are sorted by the integer ``row_key`` (group-major, then time); ``row_t``/``query_t``
    are the same times in seconds. Returns for every query the rows ``lo`` (last at or before)
    and ``hi`` (first at or after), the weight ``w`` of ``hi`` and ``ok``: both rows exist and
    are less than :data:`MAX_GAP_S` apart, or the query is within :data:`EDGE_TOLERANCE_S` of
    the group's first/last row (then ``lo == hi``).
    """
    n = len(row_key)
    lo = np.searchsorted(row_key, query_key, side="right") - 1
    hi = np.searchsorted(row_key, query_key, side="left")
    lo_c, hi_c = np.clip(lo, 0, n - 1), np.clip(hi, 0, n - 1)
    has_lo = (lo >= 0) & (row_group[lo_c] == query_group)
    has_hi = (hi < n) & (row_group[hi_c] == query_group)
    lo_c = np.where(has_lo, lo_c, hi_c)
    hi_c = np.where(has_hi, hi_c, lo_c)
    gap = row_t[hi_c] - row_t[lo_c]
    both = has_lo & has_hi
    ok = np.where(both, gap < MAX_GAP_S, np.abs(row_t[lo_c] - query_t) <= EDGE_TOLERANCE_S) & (
        has_lo | has_hi
    )
    w = np.where(both & (gap > 0), (query_t - row_t[lo_c]) / np.where(gap > 0, gap, 1.0), 0.0)
    return lo_c.astype(np.int64), hi_c.astype(np.int64), w, ok


def central_velocity(xy: F64, valid: npt.NDArray[np.bool_], dt_s: float) -> F64:
    """``(N, S, 2)`` velocities from ``(N, S, 2)`` positions: central differences where both
    neighbours are valid, one-sided at the ends of a valid run, 0 for an isolated step."""
    fwd = np.zeros_like(xy)
    fwd[:, :-1] = xy[:, 1:] - xy[:, :-1]
    back = np.zeros_like(xy)
    back[:, 1:] = fwd[:, :-1]
    next_ok = np.zeros_like(valid)
    next_ok[:, :-1] = valid[:, 1:] & valid[:, :-1]
    prev_ok = np.zeros_like(valid)
    prev_ok[:, 1:] = next_ok[:, :-1]
    nxt, prv = next_ok[..., None], prev_ok[..., None]
    v = np.where(
        nxt & prv,
        (fwd + back) / (2 * dt_s),
        np.where(nxt, fwd / dt_s, np.where(prv, back / dt_s, 0.0)),
    )
    return np.where(valid[..., None], v, 0.0)


def _resample(
    group: I64,
    t_rel_ns: I64,
    num_steps: int,
    values: F64,
    yaw: F64,
    uuid: npt.NDArray[np.str_],
    path: Path,
) -> tuple[npt.NDArray[np.bool_], F64, F64]:
    """All tracks on the grid ``k * 0.1 s`` (k < ``num_steps``) at once.

    Args:
        group: ``(R,)`` track index of each annotation row.
        t_rel_ns: ``(R,)`` row time since the grid start, ns (>= 0).
        values: ``(R, K)`` linearly interpolated quantities (city position, size).
        yaw: ``(R,)`` city-frame yaw, interpolated along the shorter arc.
        uuid: ``(R,)`` track ids, for error messages.

    Returns:
        ``valid (N, S)``, ``values (N, S, K)`` and ``yaw (N, S)``; zeros where invalid.
    """
    n = int(group.max()) + 1 if len(group) else 0
    # One integer key orders rows by (track, time); every (track, step) query is then located
    # by binary search, with no loop over tracks.
    stride = (num_steps + 1) * STEP_NS
    row_key = group * stride + t_rel_ns
    order = np.argsort(row_key, kind="stable")
    row_key = row_key[order]
    dup = np.flatnonzero(np.diff(row_key) == 0)
    if len(dup):
        r = order[dup[0]]
        raise SceneFormatError(
            f"track {uuid[r]!r} annotated twice at +{t_rel_ns[r]} ns", field="track_uuid", path=path
        )
    q_group = np.repeat(np.arange(n, dtype=np.int64), num_steps)
    q_off = np.tile(np.arange(num_steps, dtype=np.int64) * STEP_NS, n)
    lo, hi, w, ok = _bracket(
        row_key, group[order], t_rel_ns[order] / 1e9, q_group * stride + q_off, q_group, q_off / 1e9
    )
    v, a = values[order], yaw[order]
    grid = v[lo] + w[:, None] * (v[hi] - v[lo])
    grid_yaw = _wrap(a[lo] + w * _wrap(a[hi] - a[lo]))
    return (
        ok.reshape(n, num_steps),
        np.where(ok[:, None], grid, 0.0).reshape(n, num_steps, -1),
        np.where(ok, grid_yaw, 0.0).reshape(n, num_steps),
    )


# --- the log --------------------------------------------------------------------------------


def _annotation_file(folder: Path) -> Path:
    for name in ("annotations.feather", "annotations_with_ego.feather"):
        if (folder / name).is_file():
            return folder / name
    raise SceneFormatError("no annotations.feather or annotations_with_ego.feather", path=folder)


def _cameras(folder: Path) -> list[dict[str, Any]] | None:
    """Camera calibration as JSON-ready dicts (format in :func:`read`), ``None`` if absent."""
    intr_p = folder / "calibration" / "intrinsics.feather"
    extr_p = folder / "calibration" / "egovehicle_SE3_sensor.feather"
    if not (intr_p.is_file() and extr_p.is_file()):
        return None
    intr, extr = read_arrow_table(intr_p, "feather"), read_arrow_table(extr_p, "feather")
    names = column(intr, "sensor_name", "str", intr_p)
    k = _floats(intr, ("fx_px", "fy_px", "cx_px", "cy_px", "k1", "k2", "k3"), intr_p)
    size = np.stack([column(intr, c, "int", intr_p) for c in ("width_px", "height_px")], axis=1)
    if np.any(size <= 0) or np.any(size > 100_000):
        r, c = np.argwhere((size <= 0) | (size > 100_000))[0]
        raise SceneFormatError(
            f"image size {size[r, c]} px for {names[r]!r}",
            field=("width_px", "height_px")[c],
            path=intr_p,
        )
    ext_names = column(extr, "sensor_name", "str", extr_p).tolist()
    q = _unit_quats(extr, extr_p)
    t = _floats(extr, _XYZ, extr_p, limit=100.0)
    cams = []
    for i, name in enumerate(names.tolist()):  # a handful of cameras, not per-row data
        if "lidar" in name:
            continue
        if name not in ext_names:
            raise SceneFormatError(
                f"camera {name!r} has no extrinsics", field="sensor_name", path=extr_p
            )
        j = ext_names.index(name)
        cam: dict[str, Any] = {"name": name, "width_px": int(size[i, 0])}
        cam["height_px"] = int(size[i, 1])
        cam.update(zip(("fx_px", "fy_px", "cx_px", "cy_px"), map(float, k[i, :4]), strict=True))
        cam["distortion"] = [float(v) for v in k[i, 4:7]]  # k1, k2, k3
        # egovehicle_SE3_sensor maps sensor-frame points into the ego frame.
        cam["camera_to_ego"] = dict(zip(_QUAT + _XYZ, map(float, [*q[j], *t[j]]), strict=True))
        cams.append(cam)
    return cams


def read(path: Path) -> Scene:
    """Read one AV2 sensor log folder.

    Returns a scene with the ego (id ``"ego"``, index 0, constant :data:`EGO_SIZE_LWH_M`) and
    one track per annotated ``track_uuid``, on a 0.1 s grid spanning the annotations, the log's
    map and the ego's logged route; ``scene_id`` is the log id (folder name). ``extra``:

    - ``city``: city code from the map file name (``PIT``, ``MIA``, ...; ``None`` if unknown);
    - ``t0_ns``: timestamp of step 0 (int nanoseconds);
    - ``cameras`` (when ``calibration/`` exists): a list, one dict per camera:
      ``{"name", "width_px", "height_px", "fx_px", "fy_px", "cx_px", "cy_px",
      "distortion": [k1, k2, k3], "camera_to_ego": {"qw", "qx", "qy", "qz", "tx_m", "ty_m",
      "tz_m"}}``; camera frame OpenCV (x right, y down, z forward), ego frame x forward,
      y left, z up;
    - ``ego_track_uuid`` (annotations_with_ego only): the replaced ``EGO_VEHICLE`` track.

    ``STOP_SIGN`` cuboids stay tracks (they are obstacles) and also become map stop signs at
    their mean position, with lane -1: a cuboid does not say which approach it controls.
    """
    folder = Path(path)
    # The small files first, so a defect in any of them fails before the heavy work.
    cameras = _cameras(folder)
    map_path = find_map(folder / "map") if (folder / "map").is_dir() else find_map(folder)
    road_map = read_map(map_path) if map_path is not None else RoadMap.empty()
    poses = _Poses.read(folder / "city_SE3_egovehicle.feather")
    ann_p = _annotation_file(folder)
    table = read_arrow_table(ann_p, "feather")
    if table.num_rows == 0:
        raise SceneFormatError("no annotations", path=ann_p)
    t_all = _timestamps(table, ann_p)
    category = column(table, "category", "str", ann_p)
    uuid = column(table, "track_uuid", "str", ann_p)
    xyz_ego = _floats(table, _XYZ, ann_p)
    lwh = _floats(table, ("length_m", "width_m", "height_m"), ann_p, limit=1e3)
    if np.any(lwh < 0):
        r, k = np.argwhere(lwh < 0)[0]
        raise SceneFormatError(
            f"negative size {lwh[r, k]} in row {r}",
            field=("length_m", "width_m", "height_m")[k],
            path=ann_p,
        )
    q_obj = _unit_quats(table, ann_p)

    # The grid spans every annotated sweep, the EGO_VEHICLE rows' included.
    t0 = int(t_all.min())
    span_s = (int(t_all.max()) - t0) / 1e9
    if span_s > MAX_SPAN_S:
        raise SceneFormatError(
            f"annotations span {span_s:.1f} s (> {MAX_SPAN_S:.0f} s)",
            field="timestamp_ns",
            path=ann_p,
        )
    num_steps = round(span_s / DT_S) + 1
    is_ego = category == EGO_CATEGORY
    ego_uuids = np.unique(uuid[is_ego]).tolist()
    keep = ~is_ego
    t_ns, category, uuid = t_all[keep], category[keep], uuid[keep]
    xyz_ego, lwh, q_obj = xyz_ego[keep], lwh[keep], q_obj[keep]
    track_ids, group = np.unique(uuid, return_inverse=True)
    group = group.astype(np.int64)
    if EGO_ID in track_ids:
        raise SceneFormatError(
            f"track uuid {EGO_ID!r} clashes with the ego id", field="track_uuid", path=ann_p
        )
    n = len(track_ids)
    if (n + 1) * num_steps > MAX_CELLS:
        raise SceneFormatError(
            f"{n} tracks x {num_steps} steps is too large", field="track_uuid", path=ann_p
        )

    # Ego frame -> city frame with the ego pose at each annotation's timestamp.
    q_pose, t_pose, covered = poses.at(t_ns)
    if not covered.all():
        r = int(np.argmin(covered))
        raise SceneFormatError(
            f"no ego pose near annotation timestamp {t_ns[r]}", field="timestamp_ns", path=ann_p
        )
    xyz_city = np.einsum("rij,rj->ri", quat_to_matrix(q_pose), xyz_ego) + t_pose
    yaw_city = quat_yaw(quat_multiply(q_pose, q_obj))

    values = np.concatenate([xyz_city, lwh], axis=1)  # (R, 6)
    valid, grid, yaw = _resample(group, t_ns - t0, num_steps, values, yaw_city, uuid, ann_p)
    grid_ns = np.arange(num_steps, dtype=np.int64) * STEP_NS

    # The ego from the poses on the same grid, its box centre moved off the rear axle.
    q_e, t_e, ego_ok = poses.at(t0 + grid_ns)
    if not ego_ok.any():
        raise SceneFormatError(
            "no ego pose during the annotated span", field="timestamp_ns", path=poses.path
        )
    ego_xyz = np.einsum("sij,j->si", quat_to_matrix(q_e), np.array(EGO_CENTER_IN_EGO_M)) + t_e
    ego_xyz = np.where(ego_ok[:, None], ego_xyz, 0.0)
    ego_yaw = np.where(ego_ok, quat_yaw(q_e), 0.0)
    ego_size = np.where(ego_ok[:, None], np.array(EGO_SIZE_LWH_M), 0.0)

    first_row = np.unique(group, return_index=True)[1]  # a track's category: its first row's
    cat_names, cat_idx = np.unique(category[first_row], return_inverse=True)
    types = np.array([CATEGORY_TYPES.get(c, ObjectType.OTHER) for c in cat_names], np.int8)[cat_idx]
    xyz_all = np.concatenate([ego_xyz[None], grid[..., :3]], axis=0)
    valid_all = np.concatenate([ego_ok[None], valid], axis=0)
    tracks = Tracks(
        object_id=np.concatenate([[EGO_ID], track_ids]).astype(str),
        object_type=np.concatenate([[ObjectType.VEHICLE], types]).astype(np.int8),
        xyz_m=xyz_all,
        heading_rad=np.concatenate([ego_yaw[None], yaw], axis=0),
        velocity_mps=central_velocity(xyz_all[..., :2], valid_all, DT_S),
        size_lwh_m=np.concatenate([ego_size[None], grid[..., 3:]], axis=0),
        valid=valid_all,
    )

    road_map = _with_stop_signs(road_map, category, uuid, xyz_city)
    extra: dict[str, Any] = {
        "city": city_from_map_name(map_path) if map_path is not None else None,
        "t0_ns": t0,
    }
    if cameras is not None:
        extra["cameras"] = cameras
    if ego_uuids:
        extra["ego_track_uuid"] = ego_uuids[0] if len(ego_uuids) == 1 else ego_uuids
    return Scene(
        scene_id=folder.name,
        source=SOURCE,
        license=LICENSE,
        dt_s=DT_S,
        ego_index=0,
        tracks=tracks,
        map=road_map,
        signals=TrafficSignals.empty(num_steps),
        route=route_from_log(tracks, 0, road_map),
        extra=extra,
    )


def _with_stop_signs(
    road_map: RoadMap, category: npt.NDArray[np.str_], uuid: npt.NDArray[np.str_], xyz_city: F64
) -> RoadMap:
    """``road_map`` plus one stop sign per ``STOP_SIGN`` track, at its mean city position."""
    is_sign = category == STOP_SIGN_CATEGORY
    if not is_sign.any():
        return road_map
    ids, owner = np.unique(uuid[is_sign], return_inverse=True)
    mean = np.zeros((len(ids), 3))
    np.add.at(mean, owner, xyz_city[is_sign])
    mean /= np.bincount(owner, minlength=len(ids))[:, None]
    return dataclasses.replace(
        road_map,
        stop_sign_xyz_m=np.concatenate([road_map.stop_sign_xyz_m, mean]),
        stop_sign_lane=np.concatenate(
            [road_map.stop_sign_lane, np.full(len(ids), -1, np.int32)]
        ).astype(np.int32),
    )
