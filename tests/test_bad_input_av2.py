"""Corrupt Argoverse 2 inputs: every outcome is a Scene or a SceneFormatError naming the file.

Byte-level mutations (hypothesis) of each file of a copied forecasting scenario and sensor log,
plus structural ones (a dropped column, a wrong column type, NaN states, a JSON key missing or
of the wrong type) that must name the offending column / key path.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import shared_path
from tests.fuzzing import mutated_bytes

from cordillera.errors import SceneFormatError
from cordillera.scene.readers import read_scene

FORECASTING = ("av2", "test_data", "forecasting_scenarios", "0a1e6f0a-1817-4a98-b02e-db8c9327d151")
SENSOR = ("av2", "test_data", "sensor", "val", "7fab2350-7eaf-3b7e-a39d-6937a4c1bede")
SENSOR_WITH_EGO = (
    "av2",
    "evaluation",
    "scenario_mining",
    "data",
    "3bffdcff-c3a7-38b6-a0f2-64196d130958",
)
# Lidar sweeps, scene flow and the ground-height raster are not read: not worth copying.
_SKIP = shutil.ignore_patterns("sensors", "flow_labels.feather", "ego_motion.npz", "*.npy")
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _copy(parts: tuple[str, ...], dest: Path) -> Path:
    src = shared_path(*parts)
    return Path(shutil.copytree(src, dest / src.name, ignore=_SKIP))


@pytest.fixture(scope="module")
def forecasting_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy(FORECASTING, tmp_path_factory.mktemp("av2f"))


@pytest.fixture(scope="module")
def sensor_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy(SENSOR, tmp_path_factory.mktemp("av2s"))


@pytest.fixture(scope="module")
def sensor_with_ego_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy(SENSOR_WITH_EGO, tmp_path_factory.mktemp("av2e"))


@contextmanager
def _replaced(path: Path, data: bytes) -> Iterator[None]:
    """``path`` holds ``data`` inside the block, its original bytes again after."""
    original = path.read_bytes()
    path.write_bytes(data)
    try:
        yield
    finally:
        path.write_bytes(original)


def _fuzz(folder: Path, target: Path, data: st.DataObject) -> None:
    original = target.read_bytes()
    mutated = data.draw(mutated_bytes(original), label="bytes")
    with _replaced(target, mutated):
        try:
            read_scene(folder)
        except SceneFormatError as e:
            # the mutated file, or another file of the log it no longer agrees with
            assert e.path is not None and Path(e.path).is_relative_to(folder), e


# --- byte mutations ------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_fuzz_forecasting_parquet(forecasting_copy: Path, data: st.DataObject) -> None:
    _fuzz(forecasting_copy, next(forecasting_copy.glob("scenario_*.parquet")), data)


@FUZZ
@given(data=st.data())
def test_fuzz_forecasting_map(forecasting_copy: Path, data: st.DataObject) -> None:
    _fuzz(forecasting_copy, next(forecasting_copy.glob("log_map_archive_*.json")), data)


@pytest.mark.parametrize(
    "name",
    [
        "annotations.feather",
        "city_SE3_egovehicle.feather",
        "calibration/intrinsics.feather",
        "calibration/egovehicle_SE3_sensor.feather",
    ],
)
@FUZZ
@given(data=st.data())
def test_fuzz_sensor_feather(sensor_copy: Path, name: str, data: st.DataObject) -> None:
    _fuzz(sensor_copy, sensor_copy / name, data)


@FUZZ
@given(data=st.data())
def test_fuzz_sensor_map(sensor_copy: Path, data: st.DataObject) -> None:
    _fuzz(sensor_copy, next((sensor_copy / "map").glob("log_map_archive_*.json")), data)


@FUZZ
@given(data=st.data())
def test_fuzz_sensor_annotations_with_ego(sensor_with_ego_copy: Path, data: st.DataObject) -> None:
    _fuzz(sensor_with_ego_copy, sensor_with_ego_copy / "annotations_with_ego.feather", data)


# --- structural mutations ------------------------------------------------------------------------


def _expect_error(folder: Path, target: Path, field: str) -> SceneFormatError:
    with pytest.raises(SceneFormatError) as info:
        read_scene(folder)
    assert info.value.path == str(target), info.value
    assert info.value.field == field, info.value
    return info.value


def _edit_table(path: Path, edit: Callable[[pa.Table], pa.Table]) -> None:
    if path.suffix == ".parquet":
        pq.write_table(edit(pq.read_table(path)), path)
    else:
        feather.write_feather(edit(feather.read_table(path)), path)


def _set(table: pa.Table, name: str, values: Any) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, pa.array(values))


@pytest.fixture
def forecasting_tmp(tmp_path: Path) -> Path:
    return _copy(FORECASTING, tmp_path)


@pytest.fixture
def sensor_tmp(tmp_path: Path) -> Path:
    return _copy(SENSOR, tmp_path)


@pytest.mark.parametrize(
    "name",
    [
        "track_id",
        "timestep",
        "position_x",
        "position_y",
        "heading",
        "velocity_x",
        "object_type",
        "observed",
        "scenario_id",
        "city",
        "focal_track_id",
    ],
)
def test_forecasting_missing_column(forecasting_tmp: Path, name: str) -> None:
    target = next(forecasting_tmp.glob("scenario_*.parquet"))
    _edit_table(target, lambda t: t.drop_columns([name]))
    assert "missing column" in str(_expect_error(forecasting_tmp, target, name))


def test_forecasting_wrong_column_types(forecasting_tmp: Path) -> None:
    target = next(forecasting_tmp.glob("scenario_*.parquet"))
    _edit_table(
        target,
        lambda t: _set(t, "position_x", [str(v) for v in t.column("position_x").to_pylist()]),
    )
    assert "expected float" in str(_expect_error(forecasting_tmp, target, "position_x"))
    shutil.copy(shared_path(*FORECASTING) / target.name, target)  # undo the first edit
    _edit_table(target, lambda t: _set(t, "timestep", pc.cast(t.column("timestep"), pa.float64())))
    _expect_error(forecasting_tmp, target, "timestep")


def test_forecasting_nan_position_in_observed_row(forecasting_tmp: Path) -> None:
    target = next(forecasting_tmp.glob("scenario_*.parquet"))
    table = pq.read_table(target)
    r = table.column("observed").to_pylist().index(True)
    xs = table.column("position_x").to_pylist()
    xs[r] = float("nan")
    pq.write_table(_set(table, "position_x", xs), target)
    err = _expect_error(forecasting_tmp, target, "position_x")
    assert "nan" in err.reason


def test_forecasting_bad_rows(forecasting_tmp: Path) -> None:
    target = next(forecasting_tmp.glob("scenario_*.parquet"))
    original = pq.read_table(target)
    pq.write_table(pa.concat_tables([original, original.slice(0, 1)]), target)
    assert "several rows" in _expect_error(forecasting_tmp, target, "timestep").reason
    steps = original.column("timestep").to_pylist()
    steps[0] = 10**9
    pq.write_table(_set(original, "timestep", steps), target)
    _expect_error(forecasting_tmp, target, "timestep")
    pq.write_table(original.filter(pc.not_equal(original.column("track_id"), "AV")), target)
    _expect_error(forecasting_tmp, target, "track_id")
    pq.write_table(original.slice(0, 0), target)
    assert "no rows" in str(_expect_error(forecasting_tmp, target, ""))


def _edit_json(path: Path, edit: Callable[[dict[str, Any]], object]) -> None:
    doc = json.loads(path.read_text())
    edit(doc)  # in place; the return value (e.g. of dict.pop) is ignored
    path.write_text(json.dumps(doc))


def _first_lane(doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return next(iter(doc["lane_segments"].items()))


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.pop("lane_segments"), "lane_segments"),
        (lambda d: d.update(drivable_areas=[]), "drivable_areas"),
        (
            lambda d: _first_lane(d)[1].pop("left_lane_boundary"),
            "lane_segments.{lane}.left_lane_boundary",
        ),
        (
            lambda d: _first_lane(d)[1]["right_lane_boundary"][1].update(x="1.5"),
            "lane_segments.{lane}.right_lane_boundary[1].x",
        ),
        (
            lambda d: _first_lane(d)[1]["right_lane_boundary"][0].pop("z"),
            "lane_segments.{lane}.right_lane_boundary[0].z",
        ),
        (
            lambda d: _first_lane(d)[1]["left_lane_boundary"][0].update(y=float("inf")),
            "lane_segments.{lane}.left_lane_boundary[0].y",
        ),
        (lambda d: _first_lane(d)[1].update(successors="12"), "lane_segments.{lane}.successors"),
        (
            lambda d: _first_lane(d)[1].update(predecessors=[1.5]),
            "lane_segments.{lane}.predecessors[0]",
        ),
        (lambda d: _first_lane(d)[1].update(lane_type=3), "lane_segments.{lane}.lane_type"),
        (
            lambda d: _first_lane(d)[1].update(left_lane_boundary=[{"x": 0, "y": 0, "z": 0}]),
            "lane_segments.{lane}.left_lane_boundary",
        ),
        (
            lambda d: next(iter(d["pedestrian_crossings"].values())).pop("edge2"),
            "pedestrian_crossings.{crossing}.edge2",
        ),
    ],
)
def test_map_json_structure(
    forecasting_tmp: Path, edit: Callable[[dict[str, Any]], object], field: str
) -> None:
    target = next(forecasting_tmp.glob("log_map_archive_*.json"))
    doc = json.loads(target.read_text())
    lane, crossing = next(iter(doc["lane_segments"])), next(iter(doc["pedestrian_crossings"]))
    _edit_json(target, edit)
    _expect_error(forecasting_tmp, target, field.format(lane=lane, crossing=crossing))


def test_map_json_tolerated_oddities(forecasting_tmp: Path) -> None:
    """Unknown enum strings and links to lanes outside the map are data, not defects."""
    target = next(forecasting_tmp.glob("log_map_archive_*.json"))

    def edit(doc: dict[str, Any]) -> None:
        _, lane = _first_lane(doc)
        lane.update(
            lane_type="TRAM",
            left_lane_mark_type="SOLID_PURPLE",
            left_neighbor_id=123,
            successors=[*lane["successors"], 999],
        )
        lane.pop("centerline")

    _edit_json(target, edit)
    scene = read_scene(forecasting_tmp)
    assert scene.map.lane_type[0] == 0 and scene.map.lane_left[0] == -1
    assert len(scene.map.lanes[0]) >= 2


@pytest.mark.parametrize(
    ("name", "column"),
    [
        ("annotations.feather", "track_uuid"),
        ("annotations.feather", "category"),
        ("annotations.feather", "timestamp_ns"),
        ("annotations.feather", "tx_m"),
        ("annotations.feather", "qz"),
        ("annotations.feather", "length_m"),
        ("city_SE3_egovehicle.feather", "timestamp_ns"),
        ("city_SE3_egovehicle.feather", "qw"),
        ("city_SE3_egovehicle.feather", "ty_m"),
        ("calibration/intrinsics.feather", "fx_px"),
        ("calibration/intrinsics.feather", "width_px"),
        ("calibration/egovehicle_SE3_sensor.feather", "sensor_name"),
    ],
)
def test_sensor_missing_column(sensor_tmp: Path, name: str, column: str) -> None:
    target = sensor_tmp / name
    _edit_table(target, lambda t: t.drop_columns([column]))
    _expect_error(sensor_tmp, target, column)


def test_sensor_bad_values(sensor_tmp: Path) -> None:
    ann = sensor_tmp / "annotations.feather"
    original = feather.read_table(ann)

    def with_first(name: str, value: Any) -> pa.Table:
        values = original.column(name).to_pylist()
        values[0] = value
        return _set(original, name, values)

    feather.write_feather(
        _set(original, "tx_m", [str(v) for v in original.column("tx_m").to_pylist()]), ann
    )
    _expect_error(sensor_tmp, ann, "tx_m")
    feather.write_feather(with_first("tx_m", float("nan")), ann)
    assert "nan" in _expect_error(sensor_tmp, ann, "tx_m").reason
    feather.write_feather(
        original.set_column(6, "qw", pa.array(np.zeros(original.num_rows)))
        .set_column(7, "qx", pa.array(np.zeros(original.num_rows)))
        .set_column(8, "qy", pa.array(np.zeros(original.num_rows)))
        .set_column(9, "qz", pa.array(np.zeros(original.num_rows))),
        ann,
    )
    assert "zero quaternion" in _expect_error(sensor_tmp, ann, "qw").reason
    feather.write_feather(with_first("height_m", -1.0), ann)
    _expect_error(sensor_tmp, ann, "height_m")
    feather.write_feather(pa.concat_tables([original, original.slice(5, 1)]), ann)
    assert "twice" in _expect_error(sensor_tmp, ann, "track_uuid").reason
    t0 = min(original.column("timestamp_ns").to_pylist())
    feather.write_feather(with_first("timestamp_ns", t0 - 60 * 10**9), ann)
    assert "no ego pose" in _expect_error(sensor_tmp, ann, "timestamp_ns").reason
    feather.write_feather(with_first("timestamp_ns", t0 + 10**15), ann)
    _expect_error(sensor_tmp, ann, "timestamp_ns")  # an absurd span, not a huge allocation
    feather.write_feather(original.slice(0, 0), ann)
    _expect_error(sensor_tmp, ann, "")


def test_sensor_bad_calibration(sensor_tmp: Path) -> None:
    extr = sensor_tmp / "calibration" / "egovehicle_SE3_sensor.feather"
    _edit_table(extr, lambda t: t.filter(pc.not_equal(t.column("sensor_name"), "ring_rear_left")))
    assert "ring_rear_left" in _expect_error(sensor_tmp, extr, "sensor_name").reason
    intr = sensor_tmp / "calibration" / "intrinsics.feather"
    _edit_table(intr, lambda t: _set(t, "width_px", pa.array([0] * t.num_rows, pa.uint16())))
    _expect_error(sensor_tmp, intr, "width_px")


def test_sensor_corrupt_map_named(sensor_tmp: Path) -> None:
    target = next((sensor_tmp / "map").glob("log_map_archive_*.json"))
    target.write_text('{"lane_segments": {}, "drivable_areas": {}}')
    _expect_error(sensor_tmp, target, "pedestrian_crossings")
    target.write_text("{not json")
    _expect_error(sensor_tmp, target, "<root>")
    target.write_text("[1, 2]")
    _expect_error(sensor_tmp, target, "<root>")
