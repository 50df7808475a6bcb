"""Argoverse 2 readers on the real shared data: forecasting scenario and the 4 sensor logs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from tests.conftest import shared_path

from cordillera.scene.model import Scene
from cordillera.scene.readers import detect_format, read_scene
from cordillera.scene.readers.av2_sensor import EGO_CENTER_IN_EGO_M, EGO_SIZE_LWH_M
from cordillera.scene.store import scene_from_bytes, scene_to_bytes
from cordillera.scene.types import LaneType, ObjectType

FORECASTING = ("av2", "test_data", "forecasting_scenarios", "0a1e6f0a-1817-4a98-b02e-db8c9327d151")
SENSOR_LOGS = {
    "7fab2350": ("av2", "test_data", "sensor", "val", "7fab2350-7eaf-3b7e-a39d-6937a4c1bede"),
    "adcf7d18": ("av2", "test_data", "sensor_dataset_logs", "adcf7d18-0510-35b0-a2fa-b4cea13a6d76"),
    "3b3570b4": (
        "av2",
        "evaluation",
        "scenario_mining",
        "data",
        "3b3570b4-7b0b-3268-a571-b0889dbf40b6",
    ),
    "3bffdcff": (
        "av2",
        "evaluation",
        "scenario_mining",
        "data",
        "3bffdcff-c3a7-38b6-a0f2-64196d130958",
    ),
}
_cache: dict[Path, Scene] = {}


def _read(folder: Path) -> Scene:
    # Each test reads the same few logs; reading once keeps the module well under a second.
    if folder not in _cache:
        _cache[folder] = read_scene(folder)
    return _cache[folder]


def assert_round_trip_bit_identical(scene: Scene) -> None:
    back = scene_from_bytes(scene_to_bytes(scene))
    assert back.scene_id == scene.scene_id and back.source == scene.source
    assert back.dt_s == scene.dt_s and back.ego_index == scene.ego_index
    assert dict(back.extra) == dict(scene.extra)
    for part in ("tracks", "map", "signals", "route"):
        a, b = getattr(scene, part), getattr(back, part)
        for name, x in vars(a).items():
            y = getattr(b, name)
            arrays = [(name, x, y)]
            if hasattr(x, "points_m"):  # Polylines
                arrays = [
                    (f"{name}.points_m", x.points_m, y.points_m),
                    (f"{name}.offsets", x.offsets, y.offsets),
                ]
            for label, u, v in arrays:
                assert u.dtype == v.dtype, f"{part}.{label}"
                assert u.shape == v.shape, f"{part}.{label}"
                assert u.tobytes() == v.tobytes(), f"{part}.{label}"


# --- forecasting -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def forecasting_dir() -> Path:
    return shared_path(*FORECASTING)


def test_forecasting_shape_and_ids(forecasting_dir: Path) -> None:
    assert detect_format(forecasting_dir) == "av2-forecasting"
    scene = _read(forecasting_dir)
    assert scene.num_objects == 58
    assert scene.num_steps == 110
    assert scene.ego_id == "AV"
    assert scene.dt_s == 0.1
    assert scene.source == "av2-forecasting" and scene.license == "CC-BY-NC-SA-4.0"
    assert scene.scene_id == "0a1e6f0a-1817-4a98-b02e-db8c9327d151"
    assert scene.extra == {"city": "austin", "focal_track_id": "138951", "observed_steps": 50}
    assert np.all(scene.tracks.xyz_m[..., 2] == 0.0)  # the data has no z


def test_forecasting_ego_positions_equal_parquet(forecasting_dir: Path) -> None:
    scene = _read(forecasting_dir)
    table = next(forecasting_dir.glob("scenario_*.parquet"))
    rows = pq.read_table(table).to_pylist()
    av = {r["timestep"]: r for r in rows if r["track_id"] == "AV"}
    for step in (0, 17, 49, 50, 109):
        r = av[step]
        assert scene.tracks.xyz_m[scene.ego_index, step, 0] == r["position_x"]
        assert scene.tracks.xyz_m[scene.ego_index, step, 1] == r["position_y"]
        assert scene.tracks.heading_rad[scene.ego_index, step] == r["heading"]
        assert scene.tracks.velocity_mps[scene.ego_index, step, 0] == r["velocity_x"]
    # every row became exactly one valid state, and nothing else is valid
    assert scene.tracks.valid.sum() == len(rows)


def test_forecasting_types_and_sizes(forecasting_dir: Path) -> None:
    scene = _read(forecasting_dir)
    rows = pq.read_table(next(forecasting_dir.glob("scenario_*.parquet"))).to_pylist()
    kind = {r["track_id"]: r["object_type"] for r in rows}
    ids = scene.tracks.object_id.tolist()
    want = {
        "vehicle": ObjectType.VEHICLE,
        "pedestrian": ObjectType.PEDESTRIAN,
        "riderless_bicycle": ObjectType.CYCLIST,
        "static": ObjectType.OTHER,
        "background": ObjectType.OTHER,
    }
    assert [int(want[kind[i]]) for i in ids] == scene.tracks.object_type.tolist()
    ego = scene.tracks.size_lwh_m[scene.ego_index, scene.tracks.valid[scene.ego_index]]
    assert np.all(ego == [4.5, 2.0, 1.6])


def test_forecasting_map(forecasting_dir: Path) -> None:
    scene = _read(forecasting_dir)
    doc = json.loads(next(forecasting_dir.glob("log_map_archive_*.json")).read_text())
    m = scene.map
    assert m.num_lanes == len(doc["lane_segments"]) == 71
    assert sorted(m.lane_id.tolist()) == sorted(doc["lane_segments"])
    assert len(m.crosswalks) == len(doc["pedestrian_crossings"])
    assert len(m.drivable_areas) == len(doc["drivable_areas"])
    # road edges: every drivable-area edge except the cuts two areas share
    ring_edges = []
    for area in doc["drivable_areas"].values():
        pts = [(round(p["x"], 2), round(p["y"], 2)) for p in area["area_boundary"]]
        ring_edges += [frozenset(e) for e in zip(pts, pts[1:] + pts[:1], strict=True)]
    shared = {e for e in ring_edges if ring_edges.count(e) > 1}
    assert shared  # this map has a cut across the road
    road_segments = len(m.road_edges.segments()[0])
    assert road_segments == len(ring_edges) - 2 * len(shared)
    assert np.all(np.isnan(m.lane_speed_limit_mps))
    assert set(m.lane_type.tolist()) == {LaneType.VEHICLE, LaneType.BIKE}
    # a stored centerline is used as is
    lane0 = next(iter(doc["lane_segments"].values()))
    first = [[p["x"], p["y"], p["z"]] for p in lane0["centerline"]]
    np.testing.assert_array_equal(m.lanes[0], first)
    # shared boundaries are stored once
    assert len(m.road_lines) < 2 * m.num_lanes
    # edges only between lanes of the map, and every in-map successor is there
    edges = {tuple(e) for e in m.lane_successors.tolist()}
    idx = {k: i for i, k in enumerate(m.lane_id.tolist())}
    for k, seg in doc["lane_segments"].items():
        for s in seg["successors"]:
            if str(s) in idx:
                assert (idx[k], idx[str(s)]) in edges
    assert len(scene.route.lanes) > 0


def test_forecasting_from_parquet_file(forecasting_dir: Path) -> None:
    scene = read_scene(next(forecasting_dir.glob("scenario_*.parquet")))
    assert scene.num_objects == 58 and scene.map.num_lanes == 71


def test_forecasting_round_trip(forecasting_dir: Path) -> None:
    assert_round_trip_bit_identical(_read(forecasting_dir))


# --- sensor logs ---------------------------------------------------------------------------------


@pytest.fixture(params=sorted(SENSOR_LOGS))
def sensor_dir(request: pytest.FixtureRequest) -> Path:
    return shared_path(*SENSOR_LOGS[request.param])


def _annotations(folder: Path) -> tuple[Path, dict[str, np.ndarray]]:
    path = next(folder.glob("annotations*.feather"))
    table = feather.read_table(path)
    return path, {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}


def test_sensor_log_converts(sensor_dir: Path) -> None:
    assert detect_format(sensor_dir) == "av2-sensor"
    scene = _read(sensor_dir)
    _, ann = _annotations(sensor_dir)
    has_ego = "EGO_VEHICLE" in set(ann["category"])
    n_uuid = len(set(ann["track_uuid"]))
    # the file's EGO_VEHICLE track is replaced by the pose-derived "ego"
    assert scene.num_objects == (n_uuid if has_ego else n_uuid + 1)
    assert scene.ego_index == 0 and scene.ego_id == "ego"
    assert scene.scene_id == sensor_dir.name
    assert scene.source == "av2-sensor" and scene.dt_s == 0.1
    span_s = (ann["timestamp_ns"].max() - ann["timestamp_ns"].min()) / 1e9
    assert scene.num_steps == round(span_s / 0.1) + 1
    assert 15.0 <= scene.duration_s <= 16.0
    assert scene.extra["t0_ns"] == int(ann["timestamp_ns"].min())
    assert scene.extra["city"] in ("PIT", "MIA")
    assert ("ego_track_uuid" in scene.extra) == has_ego
    assert scene.tracks.valid[0].all()
    assert np.all(scene.tracks.size_lwh_m[0] == EGO_SIZE_LWH_M)
    # every annotation row lands on one grid cell (no track skips two sweeps in these logs)
    assert (
        scene.tracks.valid[1:].sum()
        >= len(ann["timestamp_ns"]) - (ann["category"] == "EGO_VEHICLE").sum()
    )
    map_doc = json.loads(next((sensor_dir / "map").glob("log_map_archive_*.json")).read_text())
    assert scene.map.num_lanes == len(map_doc["lane_segments"])
    assert len(scene.route.lanes) > 0
    assert_round_trip_bit_identical(scene)


def _rotation(qw: float, qx: float, qy: float, qz: float) -> np.ndarray:
    """Unit quaternion to rotation matrix, written out by hand (independent of the reader)."""
    n = (qw * qw + qx * qx + qy * qy + qz * qz) ** 0.5
    w, x, y, z = qw / n, qx / n, qy / n, qz / n
    return np.array(
        [
            [1 - 2 * y * y - 2 * z * z, 2 * x * y - 2 * w * z, 2 * x * z + 2 * w * y],
            [2 * x * y + 2 * w * z, 1 - 2 * x * x - 2 * z * z, 2 * y * z - 2 * w * x],
            [2 * x * z - 2 * w * y, 2 * y * z + 2 * w * x, 1 - 2 * x * x - 2 * y * y],
        ]
    )


def test_sensor_ego_to_city_transform_by_hand(sensor_dir: Path) -> None:
    scene = _read(sensor_dir)
    _, ann = _annotations(sensor_dir)
    poses = feather.read_table(sensor_dir / "city_SE3_egovehicle.feather").to_pylist()
    t0 = int(ann["timestamp_ns"].min())
    pose = next(p for p in poses if p["timestamp_ns"] == t0)  # the first sweep has a pose
    # a moving-object cuboid annotated at t0 sits exactly on grid step 0
    rows = np.flatnonzero((ann["timestamp_ns"] == t0) & (ann["category"] == "REGULAR_VEHICLE"))
    r = int(rows[len(rows) // 2])
    r_pose = _rotation(pose["qw"], pose["qx"], pose["qy"], pose["qz"])
    p_ego = np.array([ann["tx_m"][r], ann["ty_m"][r], ann["tz_m"][r]])
    p_city = r_pose @ p_ego + np.array([pose["tx_m"], pose["ty_m"], pose["tz_m"]])
    r_obj = _rotation(ann["qw"][r], ann["qx"][r], ann["qy"][r], ann["qz"][r])
    rot_city = r_pose @ r_obj
    yaw_city = np.arctan2(rot_city[1, 0], rot_city[0, 0])

    i = scene.tracks.object_id.tolist().index(ann["track_uuid"][r])
    assert scene.tracks.valid[i, 0]
    np.testing.assert_allclose(scene.tracks.xyz_m[i, 0], p_city, rtol=0, atol=1e-9)
    assert abs(np.angle(np.exp(1j * (scene.tracks.heading_rad[i, 0] - yaw_city)))) < 1e-9
    np.testing.assert_array_equal(
        scene.tracks.size_lwh_m[i, 0], [ann["length_m"][r], ann["width_m"][r], ann["height_m"][r]]
    )
    # the ego's box centre is the rear-axle pose moved by the documented offset
    ego = r_pose @ np.array(EGO_CENTER_IN_EGO_M) + [pose["tx_m"], pose["ty_m"], pose["tz_m"]]
    np.testing.assert_allclose(scene.tracks.xyz_m[0, 0], ego, rtol=0, atol=1e-9)


def test_sensor_velocity_matches_motion(sensor_dir: Path) -> None:
    tr = _read(sensor_dir).tracks
    v = tr.velocity_mps
    speed = np.linalg.norm(v, axis=-1)
    moving = tr.valid & (speed > 3.0) & (tr.object_type[:, None] == ObjectType.VEHICLE)
    assert moving.sum() > 100
    # vehicles drive forwards: velocity direction agrees with the (independent) cuboid yaw
    diff = np.angle(np.exp(1j * (np.arctan2(v[..., 1], v[..., 0]) - tr.heading_rad)))[moving]
    assert np.median(np.abs(diff)) < 0.1
    assert speed.max() < 40.0


def test_sensor_calibration() -> None:
    folder = shared_path(*SENSOR_LOGS["7fab2350"])
    cams = _read(folder).extra["cameras"]
    intr = feather.read_table(folder / "calibration" / "intrinsics.feather").to_pylist()
    extr_rows = feather.read_table(folder / "calibration" / "egovehicle_SE3_sensor.feather")
    extr = {r["sensor_name"]: r for r in extr_rows.to_pylist()}
    names = [c["name"] for c in cams]
    assert len([n for n in names if n.startswith("ring_")]) == 7
    assert len([n for n in names if n.startswith("stereo_")]) == 2
    assert not any("lidar" in n for n in names)
    for cam, row in zip(cams, intr, strict=True):
        assert cam["name"] == row["sensor_name"]
        for k in ("fx_px", "fy_px", "cx_px", "cy_px", "width_px", "height_px"):
            assert cam[k] == row[k]
        assert cam["distortion"] == [row["k1"], row["k2"], row["k3"]]
        e = extr[cam["name"]]
        np.testing.assert_allclose(
            [cam["camera_to_ego"][k] for k in ("qw", "qx", "qy", "qz")],
            [e["qw"], e["qx"], e["qy"], e["qz"]],
            atol=1e-12,
        )
        for k in ("tx_m", "ty_m", "tz_m"):
            assert cam["camera_to_ego"][k] == e[k]
    front = cams[names.index("ring_front_center")]
    assert (front["width_px"], front["height_px"]) == (1550, 2048)  # portrait
    for other in ("adcf7d18", "3b3570b4"):
        assert "cameras" not in _read(shared_path(*SENSOR_LOGS[other])).extra


def test_sensor_stop_sign_cuboids_become_map_stop_signs(tmp_path: Path) -> None:
    """No shared log has a STOP_SIGN cuboid: relabel one static track and check the decision
    (the track stays, the map gains a stop sign at its mean city position, lane -1)."""
    src = shared_path(*SENSOR_LOGS["adcf7d18"])
    folder = Path(
        shutil.copytree(src, tmp_path / src.name, ignore=shutil.ignore_patterns("sensors", "*.npy"))
    )
    table = feather.read_table(folder / "annotations.feather")
    category = np.array(table.column("category").to_pylist())
    uuid = np.array(table.column("track_uuid").to_pylist())
    sign = uuid[np.flatnonzero(category == "SIGN")[0]]
    category[uuid == sign] = "STOP_SIGN"
    table = table.set_column(
        table.column_names.index("category"), "category", pa.array(category.tolist())
    )
    feather.write_feather(table, folder / "annotations.feather")
    scene = read_scene(folder)
    i = scene.tracks.object_id.tolist().index(sign)
    assert scene.tracks.object_type[i] == ObjectType.OTHER
    assert scene.map.stop_sign_xyz_m.shape == (1, 3)
    assert scene.map.stop_sign_lane.tolist() == [-1]
    # the sign is static: its mean position is (within cm) its resampled position
    xyz = scene.tracks.xyz_m[i, scene.tracks.valid[i]]
    np.testing.assert_allclose(scene.map.stop_sign_xyz_m[0], xyz.mean(axis=0), atol=0.05)
