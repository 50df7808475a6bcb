"""ScenarioNet reader: real nuScenes scenes, a hand-built Waymo-style scene, the lane-graph
inference and the restricted unpickler.

The real-data checks compare against the pickles themselves (loaded with the standard unpickler:
the shared data is trusted, and this keeps the oracle independent of ``safe_pickle``).
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.conftest import shared_path

from cordillera.errors import SceneFormatError, UnsafePickleError
from cordillera.scene.lane_graph import infer_lane_graph
from cordillera.scene.model import Scene
from cordillera.scene.polylines import Polylines
from cordillera.scene.readers import find_sources, read_scene
from cordillera.scene.safe_pickle import safe_load
from cordillera.scene.store import scene_from_bytes, scene_to_bytes
from cordillera.scene.types import LaneType, ObjectType, RoadLineType, SignalState


def _plain_load(path: Path) -> dict[str, Any]:
    """The raw scene dict, read with the restricted unpickler (never a bare pickle.load)."""
    out = safe_load(path.read_bytes(), path)
    assert isinstance(out, dict)
    return out


@pytest.fixture(scope="module")
def nuscenes() -> list[tuple[Path, dict[str, Any], Scene]]:
    """Every real nuScenes scene: (file, raw pickle, read scene), read once per module."""
    root = shared_path("scenarionet", "nuscenes")
    sources = find_sources(root)
    assert len(sources) == 10, sources  # index pickles (dataset_summary/mapping) are skipped
    return [(p, _plain_load(p), read_scene(p, fmt)) for p, fmt in sources]


# --- real nuScenes scenes --------------------------------------------------------------------


def test_real_scenes_match_the_pickles(nuscenes: list[tuple[Path, dict[str, Any], Scene]]) -> None:
    for path, sd, scene in nuscenes:
        meta = sd["metadata"]
        assert scene.scene_id == sd["id"], path
        assert scene.num_objects == len(sd["tracks"])
        assert scene.tracks.object_id.tolist() == [str(k) for k in sd["tracks"]]
        assert scene.num_steps == sd["length"]
        assert scene.ego_id == meta["sdc_id"]
        assert type(scene.dt_s) is float and scene.dt_s == 0.1
        lanes = [k for k, f in sd["map_features"].items() if f["type"].startswith("LANE_")]
        assert scene.map.num_lanes == len(lanes)
        assert scene.map.lane_id.tolist() == lanes
        assert scene.source == "nuscenes" and scene.license == "CC-BY-NC-SA-4.0"
        assert scene.extra == {
            "dataset": "nuscenes",
            "map": meta["map"],
            "dataset_version": sd["version"],
        }
        ego = sd["tracks"][meta["sdc_id"]]["state"]
        e = scene.ego_index
        assert np.array_equal(scene.tracks.xyz_m[e], ego["position"])
        assert np.array_equal(scene.tracks.heading_rad[e], ego["heading"])
        assert np.array_equal(scene.tracks.valid[e], ego["valid"] != 0)
        # The export swaps the ego's length and width (1.73 × 4.08 m for a 4.08 m long
        # Renault Zoe); the reader puts them back.
        assert np.array_equal(scene.tracks.size_lwh_m[e, :, 0], ego["width"][:, 0])
        assert np.array_equal(scene.tracks.size_lwh_m[e, :, 1], ego["length"][:, 0])
        assert np.all(scene.tracks.size_lwh_m[e, :, 0] > scene.tracks.size_lwh_m[e, :, 1])
        kinds = [t["type"] for t in sd["tracks"].values()]
        want = [
            ObjectType[k] if k in ("VEHICLE", "PEDESTRIAN", "CYCLIST") else ObjectType.OTHER
            for k in kinds
        ]
        assert scene.tracks.object_type.tolist() == [int(k) for k in want]
        # nuScenes lanes are (x, y, yaw) poses: the yaw must not become a height.
        assert np.all(scene.map.lanes.points_m[:, 2] == 0.0)
        assert np.all(np.isnan(scene.map.lane_speed_limit_mps))
        n_lines = sum(f["type"].startswith("ROAD_LINE_") for f in sd["map_features"].values())
        assert len(scene.map.road_lines) == n_lines
        assert len(scene.route.lanes) >= 1 and len(scene.route.path_xyz_m) >= 1


def _arrays(obj: Any, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _arrays(value, f"{prefix}{f.name}.")
        elif isinstance(value, np.ndarray):
            yield f"{prefix}{f.name}", value


def test_store_round_trip_is_bit_identical(
    nuscenes: list[tuple[Path, dict[str, Any], Scene]],
) -> None:
    for _, _, scene in nuscenes:
        back = scene_from_bytes(scene_to_bytes(scene))
        for (name, a), (name_b, b) in zip(_arrays(scene), _arrays(back), strict=True):
            assert name == name_b
            assert (a.dtype, a.shape) == (b.dtype, b.shape), name
            assert a.tobytes() == b.tobytes(), name
        for attr in ("scene_id", "source", "license", "dt_s", "ego_index"):
            assert getattr(back, attr) == getattr(scene, attr)
        assert dict(back.extra) == dict(scene.extra)


def test_inferred_lane_graph_on_real_maps(
    nuscenes: list[tuple[Path, dict[str, Any], Scene]],
) -> None:
    with_succ, lanes, sym, sided = 0, 0, 0, 0
    for _, _, scene in nuscenes:
        m = scene.map
        succ = m.lane_successors
        assert succ.dtype == np.int32 and succ.ndim == 2 and len(succ) > 0
        # Every edge really joins an end to a start (indices point at the right lanes).
        ends = m.lanes.points_m[m.lanes.offsets[1:][succ[:, 0]] - 1, :2]
        starts = m.lanes.points_m[m.lanes.offsets[:-1][succ[:, 1]], :2]
        assert np.all(np.linalg.norm(ends - starts, axis=1) <= 1.0)
        with_succ += len(np.unique(succ[:, 0]))
        lanes += m.num_lanes
        has_left = np.nonzero(m.lane_left >= 0)[0]
        sided += len(has_left)
        sym += int(np.sum(m.lane_right[m.lane_left[has_left]] == has_left))
        assert np.all(m.lane_left != np.arange(m.num_lanes))
    # Maps are cropped around the scene, so lanes at the border lead nowhere: ~90% observed.
    assert with_succ / lanes > 0.8
    assert sided > 100 and sym / sided > 0.8  # left of A is B  =>  right of B is A, mostly


# --- lane-graph inference on a toy map --------------------------------------------------------


def test_lane_graph_toy_map() -> None:
    # A runs east, B continues it, C runs beside A 3.5 m to its left (+y), D comes back west
    # 3.5 m to A's right; repeated points must not confuse the headings.
    a = [(0, 0), (5, 0), (5, 0), (10, 0)]
    b = [(10.3, 0), (20, 0)]
    c = [(0, 3.5), (10, 3.5)]
    d = [(10, -3.5), (0, -3.5)]
    g = infer_lane_graph(Polylines.from_list([a, b, c, d]))
    assert g.successors.tolist() == [[0, 1]]
    assert g.left.tolist() == [2, -1, -1, -1]
    assert g.right.tolist() == [-1, -1, 0, -1]
    assert g.successors.dtype == g.left.dtype == g.right.dtype == np.int32


def test_lane_graph_thresholds() -> None:
    # Too far apart (2 m gap), turning too sharply (45°), too close sideways (1.5 m).
    g = infer_lane_graph(
        Polylines.from_list(
            [[(0, 0), (10, 0)], [(12, 0), (20, 0)], [(10, 0), (17, 7)], [(0, 1.5), (10, 1.5)]]
        )
    )
    assert g.successors.shape == (0, 2)
    assert g.left.tolist() == [-1] * 4 and g.right.tolist() == [-1] * 4
    empty = infer_lane_graph(Polylines.empty())
    assert empty.successors.shape == (0, 2) and empty.left.shape == (0,)


# --- a hand-built Waymo-style scene ------------------------------------------------------------

T = 5


def _waymo_sd() -> dict[str, Any]:
    f32 = np.float32
    ego_pos = np.array([[i * 1.5, 0.25, 0.5] for i in range(T)], f32)
    ped_valid = np.array([0, 1, 1, 0, 0], bool)
    ped_len = np.where(ped_valid, 0.75, -1.0).astype(f32)  # Waymo: -1 where invalid

    def track(
        kind: str, pos: np.ndarray, valid: np.ndarray, lwh: tuple[Any, Any, Any]
    ) -> dict[str, Any]:
        return {
            "type": kind,
            "metadata": {},
            "state": {
                "position": pos,
                "heading": np.full(T, 0.5, f32),
                "velocity": np.ones((T, 2), f32),
                "valid": valid,
                "length": lwh[0],
                "width": lwh[1],
                "height": lwh[2],
            },
        }

    def neighbour(fid: int) -> dict[str, Any]:
        return {
            "feature_id": fid,
            "self_start_index": 0,
            "self_end_index": 2,
            "neighbor_start_index": 0,
            "neighbor_end_index": 1,
            "boundaries": [],
        }

    def lane(
        kind: str,
        pts: Any,
        mph: float,
        entry: list[int],
        exit_: list[int],
        left: list[Any],
        right: list[Any],
    ) -> dict[str, Any]:
        return {
            "type": kind,
            "polyline": pts,
            "speed_limit_mph": mph,
            "interpolating": False,
            "entry_lanes": entry,
            "exit_lanes": exit_,
            "left_boundaries": [],
            "right_boundaries": [],
            "left_neighbor": left,
            "right_neighbor": right,
        }

    return {
        "id": "waymo-toy",
        "version": "v1.2",
        "length": T,
        "metadata": {
            "dataset": "waymo",
            "sdc_id": "7",
            "ts": np.arange(T) * 0.1,
            "scenario_id": "other",
        },
        "tracks": {
            "7": track(
                "VEHICLE",
                ego_pos,
                np.ones(T, bool),
                (np.full(T, 4.5, f32), np.full(T, 2.0, f32), np.full(T, 1.5, f32)),
            ),
            "8": track("PEDESTRIAN", np.ones((T, 3), f32), ped_valid, (ped_len, ped_len, ped_len)),
            "9": track(
                "OTHER",
                np.zeros((T, 2), f32),
                np.zeros(T, bool),
                (np.zeros((T, 1)), np.zeros((T, 1)), np.zeros((T, 1))),
            ),
        },
        "map_features": {
            "100": lane(
                "LANE_SURFACE_STREET",
                np.array([[0, 0, 1], [10, 0, 1], [20, 0, 1]], f32),
                25.0,
                [],
                [101],
                [neighbour(102)],
                [],
            ),
            "101": lane(
                "LANE_FREEWAY", [(20.0, 0.0, 1.0), (30.0, 0.0, 1.0)], 0.0, [100], [999], [], []
            ),  # 999: outside the cropped map
            "102": lane(
                "LANE_BIKE_LANE", [[0, 3.5, 1], [20, 3.5, 1]], 0.0, [], [], [], [neighbour(100)]
            ),
            "200": {"type": "ROAD_LINE_BROKEN_SINGLE_WHITE", "polyline": [(0, 1.75), (20, 1.75)]},
            "201": {
                "type": "ROAD_LINE_PASSING_DOUBLE_YELLOW",
                "polyline": np.array([[0, -1.75, 0], [20, -1.75, 0]], f32),
            },
            "300": {"type": "ROAD_EDGE_BOUNDARY", "polyline": np.array([[0, 6, 0], [20, 6, 0]])},
            "400": {
                "type": "CROSSWALK",
                "polygon": np.array(
                    [[2, -2, 0], [4, -2, 0], [4, 6, 0], [2, 6, 0], [2, -2, 0]], f32
                ),
            },
            "500": {
                "type": "STOP_SIGN",
                "lane": [100, 102],
                "position": np.array([19.0, -2.0, 1.0], f32),
            },
            "501": {"type": "STOP_SIGN", "lane": [], "position": np.array([1.0, 2.0, 0.0])},
            "600": {"type": "SPEED_BUMP", "polygon": np.zeros((4, 3), f32)},
            "700": {"type": "DRIVEWAY", "polygon": [[0, 8], [5, 8], [5, 12]]},
        },
        "dynamic_map_states": {
            "101": {
                "type": "TRAFFIC_LIGHT",
                "lane": 101,
                "stop_point": np.array([20.0, 0.0, 1.0], f32),
                "state": {
                    "object_state": [
                        "LANE_STATE_STOP",
                        "LANE_STATE_ARROW_GO",
                        "LANE_STATE_CAUTION",
                        None,
                        "LANE_STATE_FLASHING_STOP",
                    ]
                },
                "metadata": {"track_length": T, "type": "TRAFFIC_LIGHT", "object_id": "101"},
            },
        },
    }


def _write(tmp_path: Path, obj: object, name: str = "scene.pkl", protocol: int = 4) -> Path:
    p = tmp_path / name
    p.write_bytes(pickle.dumps(obj, protocol=protocol))
    return p


def test_waymo_style_scene(tmp_path: Path) -> None:
    scene = read_scene(_write(tmp_path, _waymo_sd()))
    assert (scene.scene_id, scene.source, scene.license) == (
        "waymo-toy",
        "waymo",
        "Waymo-Open-Dataset",
    )
    assert scene.dt_s == 0.1 and scene.num_steps == T and scene.ego_id == "7"
    tr = scene.tracks
    assert tr.object_id.tolist() == ["7", "8", "9"]
    assert tr.object_type.tolist() == [ObjectType.VEHICLE, ObjectType.PEDESTRIAN, ObjectType.OTHER]
    assert tr.xyz_m[0, :, 0].tolist() == [0.0, 1.5, 3.0, 4.5, 6.0]
    assert tr.size_lwh_m[0, 0].tolist() == [4.5, 2.0, 1.5]
    assert tr.valid[1].tolist() == [False, True, True, False, False]
    assert tr.size_lwh_m[1, :, 0].tolist() == [0.0, 0.75, 0.75, 0.0, 0.0]  # invalid -> 0
    assert tr.xyz_m[2].tolist() == [[0.0, 0.0, 0.0]] * T
    m = scene.map
    assert m.lane_id.tolist() == ["100", "101", "102"]
    assert m.lane_type.tolist() == [LaneType.VEHICLE, LaneType.VEHICLE, LaneType.BIKE]
    assert m.lanes[1].tolist() == [[20.0, 0.0, 1.0], [30.0, 0.0, 1.0]]  # Waymo z is kept
    assert m.lane_speed_limit_mps[0] == pytest.approx(25 * 0.44704)
    assert np.isnan(m.lane_speed_limit_mps[1:]).all()  # 0 mph = not set
    assert m.lane_successors.tolist() == [[0, 1]]  # exit 101 and entry 100, once
    assert m.lane_left.tolist() == [2, -1, -1] and m.lane_right.tolist() == [-1, -1, 0]
    assert m.road_line_type.tolist() == [
        RoadLineType.DASHED_WHITE,
        RoadLineType.SOLID_DASHED_YELLOW,
    ]
    assert m.road_lines[0].tolist() == [[0.0, 1.75, 0.0], [20.0, 1.75, 0.0]]
    assert len(m.road_edges) == 1 and m.road_edges[0][:, 1].tolist() == [6.0, 6.0]
    assert m.crosswalks[0].tolist() == [[2, -2, 0], [4, -2, 0], [4, 6, 0], [2, 6, 0]]
    assert len(m.drivable_areas) == 1 and m.drivable_areas[0][:, :2].tolist() == [
        [0, 8],
        [5, 8],
        [5, 12],
    ]
    assert m.stop_sign_xyz_m.tolist() == [[19, -2, 1], [19, -2, 1], [1, 2, 0]]
    assert m.stop_sign_lane.tolist() == [0, 2, -1]
    s = scene.signals
    assert s.lane.tolist() == [1]
    assert s.stop_point_xyz_m.tolist() == [[20.0, 0.0, 1.0]]
    assert s.state.tolist() == [
        [
            SignalState.RED,
            SignalState.GREEN,
            SignalState.YELLOW,
            SignalState.UNKNOWN,
            SignalState.FLASHING_RED,
        ]
    ]
    assert scene.route.lanes.tolist() == [0]
    assert scene.extra == {"dataset": "waymo", "map": None, "dataset_version": "v1.2"}


def test_waymo_style_scene_other_protocols(tmp_path: Path) -> None:
    want = read_scene(_write(tmp_path, _waymo_sd()))
    for protocol in (2, 5):
        got = read_scene(_write(tmp_path, _waymo_sd(), f"p{protocol}.pkl", protocol))
        for (name, a), (_, b) in zip(_arrays(want), _arrays(got), strict=True):
            assert a.tobytes() == b.tobytes(), (protocol, name)


def test_sample_rate_and_fallbacks(tmp_path: Path) -> None:
    sd = _waymo_sd()
    sd["metadata"]["sample_rate"] = 0.5
    del sd["id"]
    scene = read_scene(_write(tmp_path, sd))
    assert scene.dt_s == 0.5 and scene.scene_id == "other"
    sd["metadata"].update(dataset="argoverse", sample_rate=None, ts=np.arange(T) * 0.05)
    scene = read_scene(_write(tmp_path, sd))
    assert scene.dt_s == 0.05 and scene.license == "unknown" and scene.source == "argoverse"
    # Speed limits in km/h.
    sd["map_features"]["100"] = {**sd["map_features"]["100"], "speed_limit_kmh": 36}
    del sd["map_features"]["100"]["speed_limit_mph"]
    assert read_scene(_write(tmp_path, sd)).map.lane_speed_limit_mps[0] == pytest.approx(10.0)


# --- the restricted unpickler ------------------------------------------------------------------


class _Exec:
    """Unpickling this runs ``builtins.exec`` with code that creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


class _System:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_code_executing_payload_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Exec(marker), protocol=4)
    pickle.loads(payload)  # the payload is live: the standard unpickler runs it
    assert marker.exists()
    marker.unlink()
    for evil, name in ((_Exec(marker), r"builtin\w*\.exec"), (_System(marker), r"\.system")):
        for protocol in (0, 2, 4, 5):
            sd = _waymo_sd()
            sd["tracks"]["7"]["metadata"] = {"hidden": [evil]}  # deep inside a real-looking scene
            path = _write(tmp_path, sd, "evil.pkl", protocol)
            with pytest.raises(UnsafePickleError, match=name) as e:
                read_scene(path)
            assert e.value.path == str(path) and str(path) in str(e.value)
            assert not marker.exists()


def test_rejects_object_arrays_and_direct_calls(tmp_path: Path) -> None:
    obj = pickle.dumps({"a": np.array([1, "x", None], dtype=object)}, protocol=4)
    with pytest.raises(UnsafePickleError, match="object"):
        safe_load(obj, "obj.pkl")
    # numpy.ndarray((10**9,)) would allocate from a few bytes of pickle.
    with pytest.raises(UnsafePickleError, match="ndarray"):
        safe_load(b"cnumpy\nndarray\nJ\x00\xca\x9a;\x85\x85R.", "huge.pkl")
    with pytest.raises(UnsafePickleError, match=r"collections\.OrderedDict"):
        safe_load(pickle.dumps(__import__("collections").OrderedDict(a=1)), "od.pkl")
    with pytest.raises(SceneFormatError, match="not a readable pickle") as e:
        safe_load(b"\x80\x04garbage", tmp_path / "bad.pkl")
    assert not isinstance(e.value, UnsafePickleError) and e.value.path == str(tmp_path / "bad.pkl")


class _Reduces:
    """Pickles as whatever ``reduce`` says: a way to write hand-crafted numpy states."""

    def __init__(self, *reduce: Any) -> None:
        self.reduce = reduce

    def __reduce__(self) -> tuple[Any, ...]:
        return self.reduce


def test_rejects_crafted_numpy_states() -> None:
    # dtype('f8', copy=False) is numpy's shared float64; flags 63 would mark its bytes as
    # object references. Neither may reach numpy: the process-wide float64 must stay intact.
    tampered = _Reduces(np.dtype, ("f8", False, False), (3, "<", None, None, None, -1, -1, 63))
    with pytest.raises(UnsafePickleError, match="dtype state"):
        safe_load(pickle.dumps({"x": tampered}, protocol=4), "dtype.pkl")
    assert np.dtype(np.float64).flags == 0 and not np.dtype(np.float64).hasobject
    rebuild = np.zeros(0).__reduce__()[0]
    short = _Reduces(rebuild, (np.ndarray, (0,), b"b"), (1, (10**6,), np.dtype("f8"), False, b"12"))
    with pytest.raises(SceneFormatError, match="2 bytes of data"):
        safe_load(pickle.dumps(short, protocol=4), "short.pkl")
    listed = _Reduces(rebuild, (np.ndarray, (0,), b"b"), (1, (1,), np.dtype("f8"), False, [1.0]))
    with pytest.raises(UnsafePickleError, match="array data of type list"):
        safe_load(pickle.dumps(listed, protocol=4), "list.pkl")
    with pytest.raises(UnsafePickleError, match="sets the state of a list"):
        safe_load(pickle.dumps(_Reduces(list, (), {"a": 1}), protocol=4), "build.pkl")
    with pytest.raises(UnsafePickleError, match="not allowed"):  # structured: not a plain dtype
        safe_load(pickle.dumps(np.zeros(2, dtype=[("a", "f8")]), protocol=4), "void.pkl")


def test_safe_load_keeps_plain_data() -> None:
    data = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "s": np.float64(1.5),
        "set": {1, 2},
        "t": (1, "x", None, b"\x00\xff"),
        "u": np.array(["ab"]),
        "f": np.asfortranarray(np.eye(3)),
    }
    for protocol in range(6):
        raw = pickle.dumps(data, protocol=protocol)
        back = safe_load(raw if protocol % 2 else io.BytesIO(raw), None)
        assert isinstance(back, dict)
        assert back["a"].dtype == np.float32 and np.array_equal(back["a"], data["a"])
        assert back["s"] == 1.5 and back["set"] == {1, 2} and back["t"] == data["t"]
        assert back["u"].tolist() == ["ab"] and np.array_equal(back["f"], np.eye(3))
    nan = safe_load(pickle.dumps(float("nan")), None)
    assert isinstance(nan, float) and math.isnan(nan)
