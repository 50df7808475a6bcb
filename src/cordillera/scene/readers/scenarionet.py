"""Reader for ScenarioNet / MetaDrive scenario descriptions ("sd" pickles: nuScenes, Waymo...).

One pickle holds one scene as nested dicts::

    {"id": str, "version": str, "length": T,
     "metadata": {"dataset", "map", "sdc_id", "sample_rate" (s), "ts" (T,), ...},
     "tracks": {object_id: {"type": "VEHICLE" | "PEDESTRIAN" | "CYCLIST" | ...,
                            "state": {"position" (T, 3|2), "heading" (T,), "velocity" (T, 2),
                                      "valid" (T,), "length" / "width" / "height" (T,) | (T, 1)}}},
     "map_features": {feature_id: {"type": "LANE_*" | "ROAD_LINE_*" | "ROAD_EDGE_*" | ...,
                                   "polyline" | "polygon": (n, 2|3) array or list, ...}},
     "dynamic_map_states": {signal_id: {"lane", "stop_point" (3,),
                                        "state": {"object_state": [T strings]}}}}

Files are opened with :func:`~cordillera.scene.safe_pickle.safe_load`, so nothing in them runs.
nuScenes specifics: lane polylines are ``(x, y, yaw)`` poses (z is set to 0), the map states no
lane connectivity (it is inferred, :mod:`cordillera.scene.lane_graph`) and its 100 km/h "speed
limits" are ScenarioNet's constant placeholder (read as unknown).
Coordinates stay in the source's world frame (nuScenes map frame, Waymo scenario frame): metres,
headings in radians CCW from +x. Every structural defect raises
:class:`~cordillera.errors.SceneFormatError` with the field (``tracks[<id>].state.position``,
``map_features[<id>].polyline``) and the offending value or shape.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cordillera.errors import SceneFormatError, UnknownFormatError
from cordillera.scene.derive import route_from_log
from cordillera.scene.lane_graph import graph_from_ids, infer_lane_graph
from cordillera.scene.model import NO_INDEX, RoadMap, Scene, Tracks, TrafficSignals
from cordillera.scene.polylines import Polylines
from cordillera.scene.safe_pickle import safe_load
from cordillera.scene.types import LaneType, ObjectType, RoadLineType, SignalState

F64 = npt.NDArray[np.float64]

LICENSES = {"nuscenes": "CC-BY-NC-SA-4.0", "waymo": "Waymo-Open-Dataset"}
"""Licence tag per ``metadata["dataset"]``; other datasets get ``unknown``."""

# A pickle can reference one array from many places (memo), so a small file can describe a
# huge scene; these caps (far above any real scene: Waymo 91 steps x ~1.5k objects, maps of a
# few 100k points) turn that into a format error instead of an out-of-memory kill.
MAX_STEPS = 100_000
MAX_STATES = 2_000_000  # objects x steps
MAX_MAP_POINTS = 5_000_000

_OBJECT_TYPES = {
    "VEHICLE": ObjectType.VEHICLE,
    "PEDESTRIAN": ObjectType.PEDESTRIAN,
    "CYCLIST": ObjectType.CYCLIST,
}
_LANE_TYPES = {
    "LANE_FREEWAY": LaneType.VEHICLE,
    "LANE_SURFACE_STREET": LaneType.VEHICLE,
    "LANE_BIKE_LANE": LaneType.BIKE,
    "LANE_BUS": LaneType.BUS,
    "LANE_UNKNOWN": LaneType.UNKNOWN,
}
_ROAD_LINE_TYPES = {
    "ROAD_LINE_BROKEN_SINGLE_WHITE": RoadLineType.DASHED_WHITE,
    "ROAD_LINE_SOLID_SINGLE_WHITE": RoadLineType.SOLID_WHITE,
    "ROAD_LINE_SOLID_DOUBLE_WHITE": RoadLineType.DOUBLE_SOLID_WHITE,
    "ROAD_LINE_BROKEN_SINGLE_YELLOW": RoadLineType.DASHED_YELLOW,
    "ROAD_LINE_BROKEN_DOUBLE_YELLOW": RoadLineType.DOUBLE_DASHED_YELLOW,
    "ROAD_LINE_SOLID_SINGLE_YELLOW": RoadLineType.SOLID_YELLOW,
    "ROAD_LINE_SOLID_DOUBLE_YELLOW": RoadLineType.DOUBLE_SOLID_YELLOW,
    "ROAD_LINE_PASSING_DOUBLE_YELLOW": RoadLineType.SOLID_DASHED_YELLOW,
    "ROAD_LINE_UNKNOWN": RoadLineType.UNKNOWN,
}
_SIGNAL_STATES: dict[str, SignalState] = {
    name: state
    for state, names in (
        # Waymo lane states (arrows folded into the plain colours), MetaDrive's normalised
        # names and bare colours (nuPlan-style converters).
        (SignalState.UNKNOWN, "LANE_STATE_UNKNOWN TRAFFIC_LIGHT_UNKNOWN UNKNOWN"),
        (SignalState.RED, "LANE_STATE_STOP LANE_STATE_ARROW_STOP TRAFFIC_LIGHT_RED RED"),
        (SignalState.YELLOW, "LANE_STATE_CAUTION LANE_STATE_ARROW_CAUTION TRAFFIC_LIGHT_YELLOW"),
        (SignalState.YELLOW, "YELLOW"),
        (SignalState.GREEN, "LANE_STATE_GO LANE_STATE_ARROW_GO TRAFFIC_LIGHT_GREEN GREEN"),
        (SignalState.FLASHING_RED, "LANE_STATE_FLASHING_STOP"),
        (SignalState.FLASHING_YELLOW, "LANE_STATE_FLASHING_CAUTION"),
    )
    for name in names.split()
}
_KMH, _MPH = 1 / 3.6, 0.44704  # m/s per unit
# Per-step state arrays of a track and their accepted widths (() = (T,), also given as (T, 1)).
_STATE_KEYS: dict[str, tuple[int, ...]] = {"valid": (), "position": (2, 3), "heading": (),
                                           "velocity": (2, 3), "length": (), "width": (),
                                           "height": ()}  # fmt: skip
_UNEXPECTED = (KeyError, TypeError, IndexError, ValueError, AttributeError, OverflowError,
               MemoryError, RecursionError)  # fmt: skip

_SCENE_KEYS = ("tracks", "map_features", "metadata", "dynamic_map_states")
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60


def read(path: Path) -> Scene:
    """Read one ScenarioNet scene pickle into a :class:`Scene`.

    Raises:
        SceneFormatError: (or its :class:`~cordillera.errors.UnsafePickleError`) naming the file
            and field, for every defect.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise SceneFormatError(f"cannot read: {e.strerror}", path=p) from None
    sd = safe_load(data, p)
    try:
        return _scene(sd)
    except SceneFormatError as e:
        raise e.at(p) from None
    except _UNEXPECTED as e:
        # Safety net: defects are checked explicitly below, but a reader of untrusted files
        # must never crash with a traceback on a case the checks missed.
        raise SceneFormatError(
            f"malformed scenario ({type(e).__name__}: {str(e)[:200]})", path=p
        ) from None


def _scene(root: object) -> Scene:
    if isinstance(root, dict) and not any(k in root for k in _SCENE_KEYS):
        # Index files and other pickles beside the scenes (e.g. evaluation ground truth).
        raise UnknownFormatError(
            f"not a ScenarioNet scene: none of the keys {', '.join(_SCENE_KEYS)}"
        )
    sd = _dict(root, "<root>")
    meta = _dict(_get(sd, "metadata", ""), "metadata")
    t = _get(sd, "length", "")
    if not _is_int(t) or not 0 < t <= MAX_STEPS:
        raise SceneFormatError(f"scene length {_show(t)} not in [1, {MAX_STEPS}]", field="length")
    t = int(t)
    dataset = _opt_str(meta.get("dataset"))
    is_nuscenes = (dataset or "").lower() == "nuscenes"
    tracks = _tracks(_get(sd, "tracks", ""), t)
    sdc = _ref(_get(meta, "sdc_id", "metadata"), "metadata.sdc_id")
    hits = np.nonzero(tracks.object_id == sdc)[0]
    if len(hits) == 0:
        raise SceneFormatError(f"sdc_id {sdc!r} is not a track id", field="metadata.sdc_id")
    ego = int(hits[0])
    tracks = _fix_swapped_vehicle_sizes(tracks)
    road_map, lane_index = _road_map(_get(sd, "map_features", ""), is_nuscenes)
    signals = _signals(_get(sd, "dynamic_map_states", ""), t, lane_index)
    ids = [v for v in (sd.get("id"), meta.get("scenario_id")) if isinstance(v, str) and v]
    if not ids:
        raise SceneFormatError(f"no scene id (id {_show(sd.get('id'))})", field="id")
    return Scene(
        scene_id=ids[0],
        source=dataset.lower() if dataset else "scenarionet",
        license=LICENSES.get((dataset or "").lower(), "unknown"),
        dt_s=_dt(meta),
        ego_index=ego,
        tracks=tracks,
        map=road_map,
        signals=signals,
        route=route_from_log(tracks, ego, road_map),
        extra={
            "dataset": dataset,
            "map": _opt_str(meta.get("map")),
            "dataset_version": _opt_str(sd.get("version")),
        },
    )


def _fix_swapped_vehicle_sizes(tracks: Tracks) -> Tracks:
    """Vehicles whose width exceeds their length have the two swapped.

    ScenarioNet's nuScenes export stores the ego's box as 1.73 m long and 4.08 m wide (the
    Renault Zoe is 4.08 m long); a vehicle wider than long does not exist, so swap them.
    """
    size = tracks.size_lwh_m
    swap = (
        (tracks.object_type == ObjectType.VEHICLE)[:, None]
        & tracks.valid
        & (size[..., 1] > size[..., 0])
    )
    if not swap.any():
        return tracks
    fixed = size.copy()
    fixed[swap, 0], fixed[swap, 1] = size[swap, 1], size[swap, 0]
    return dataclasses.replace(tracks, size_lwh_m=fixed)


# --- small typed accessors ---------------------------------------------------------------


def _show(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return _repr.repr(value)


def _dict(value: object, field: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise SceneFormatError(f"expected a dict, got {_show(value)}", field=field)
    return value


def _get(d: dict[Any, Any], key: str, field: str) -> Any:
    if key not in d:
        raise SceneFormatError("missing", field=f"{field}.{key}" if field else key)
    return d[key]


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _ref(value: object, field: str) -> str:
    """An object / feature id as the string key it has in the pickle's dicts."""
    if isinstance(value, str) or _is_int(value):
        return str(value)
    raise SceneFormatError(f"id {_show(value)} is not a string or integer", field=field)


def _numeric(value: object, field: str) -> npt.NDArray[np.float64]:
    """``value`` (numpy array, or nested lists / tuples of numbers) as a float64 array."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as e:
        raise SceneFormatError(
            f"not a numeric array ({type(e).__name__}): {_show(value)}", field=field
        ) from None
    if arr.dtype.kind not in "biuf":
        raise SceneFormatError(f"not a numeric array: {_show(value)}", field=field)
    return arr.astype(np.float64, copy=False)


def _series(
    state: dict[Any, Any], key: str, t: int, field: str, widths: tuple[int, ...] = ()
) -> F64:
    """A per-step state array: ``(T,)`` (also accepted as ``(T, 1)``) or ``(T, w)``."""
    f = f"{field}.{key}"
    arr = _numeric(_get(state, key, field), f)
    if not widths and arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    ndim = 2 if widths else 1
    if arr.ndim != ndim or arr.shape[0] != t or (widths and arr.shape[1] not in widths):
        want = f"({t}, {' or '.join(map(str, widths))})" if widths else f"({t},)"
        raise SceneFormatError(f"shape {arr.shape}, expected {want}", field=f)
    return arr


def _points(value: object, field: str) -> F64:
    """A polyline or polygon as ``(n, 3)`` float64 (z = 0 when the source gives x, y only)."""
    arr = _numeric(value, field)
    if arr.size == 0:
        return np.zeros((0, 3), np.float64)
    if arr.ndim != 2 or arr.shape[1] not in (2, 3):
        raise SceneFormatError(f"shape {arr.shape}, expected (n, 2) or (n, 3)", field=field)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        i = int(np.argmin(finite))
        raise SceneFormatError(f"non-finite point {arr[i]} at index {i}", field=field)
    if arr.shape[1] == 2:
        return np.column_stack([arr, np.zeros(len(arr))])
    return arr


def _xyz(value: object, field: str) -> F64:
    """One point, ``(3,)`` or ``(2,)`` (z = 0), as ``(3,)`` float64."""
    p = _numeric(value, field).ravel()
    if p.shape not in ((2,), (3,)) or not np.all(np.isfinite(p)):
        raise SceneFormatError(
            f"point {p[:4]} of shape {p.shape}, expected finite (3,)", field=field
        )
    return np.r_[p, 0.0][:3]


# --- scene parts ---------------------------------------------------------------------------


def _dt(meta: dict[Any, Any]) -> float:
    """Seconds per step: ``sample_rate`` (ScenarioNet stores the period), else the ``ts`` step."""
    rate: Any = meta.get("sample_rate")
    if _is_number(rate) and math.isfinite(rate) and 0 < rate <= 10:
        return float(rate)
    ts = meta.get("ts")
    if ts is not None:
        steps = np.diff(_numeric(ts, "metadata.ts").ravel())
        if len(steps) and np.all(np.isfinite(steps)):
            # Median: robust to one jittered stamp; rounded to 1 µs so 0.1 s stays exactly 0.1.
            step = round(float(np.median(steps)), 6)
            if 0 < step <= 10:
                return step
    raise SceneFormatError(
        f"no usable time step (sample_rate {_show(rate)}, ts {_show(ts)})",
        field="metadata.sample_rate",
    )


def _tracks(raw: object, t: int) -> Tracks:
    """All tracks in the pickle's order; invalid states are zeroed (the model's convention)."""
    tracks = _dict(raw, "tracks")
    if not tracks:
        raise SceneFormatError("no tracks", field="tracks")
    if len(tracks) * t > MAX_STATES:
        raise SceneFormatError(
            f"{len(tracks)} tracks x {t} steps exceeds {MAX_STATES} states", field="tracks"
        )
    ids: list[str] = []
    types: list[int] = []
    cols: dict[str, list[F64]] = {k: [] for k in _STATE_KEYS}
    for key, track in tracks.items():
        oid = _ref(key, "tracks")
        f = f"tracks[{oid}]"
        track = _dict(track, f)
        kind = _get(track, "type", f)
        if not isinstance(kind, str):
            raise SceneFormatError(f"type {_show(kind)} is not a string", field=f"{f}.type")
        sf = f"{f}.state"
        state = _dict(_get(track, "state", f), sf)
        for name, widths in _STATE_KEYS.items():
            arr = _series(state, name, t, sf, widths)
            if name == "position" and arr.shape[1] == 2:
                arr = np.column_stack([arr, np.zeros(t)])
            cols[name].append(arr[:, :2] if name == "velocity" else arr)
        flags = cols["valid"][-1]
        if not np.all(np.isfinite(flags)):
            raise SceneFormatError(f"non-finite flag in {flags}", field=f"{sf}.valid")
        for name in _STATE_KEYS:
            arr = cols[name][-1]
            bad = (flags != 0) & ~(np.isfinite(arr) if arr.ndim == 1 else np.isfinite(arr).all(1))
            if bad.any():
                s = int(np.argmax(bad))
                raise SceneFormatError(f"non-finite value {arr[s]} at valid step {s}",
                                       field=f"{sf}.{name}")  # fmt: skip
        ids.append(oid)
        types.append(int(_OBJECT_TYPES.get(kind, ObjectType.OTHER)))
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise SceneFormatError(f"duplicate track id {dup!r}", field="tracks")
    out = {k: np.stack(v) for k, v in cols.items()}  # one copy per field: (N, T, ...)
    valid = out.pop("valid") != 0
    lwh = np.stack([out.pop(k) for k in ("length", "width", "height")], axis=-1)
    for arr in (*out.values(), lwh):
        arr[~valid] = 0.0
    return Tracks(
        object_id=np.array(ids, dtype=str),
        object_type=np.array(types, np.int8),
        xyz_m=out["position"],
        heading_rad=out["heading"],
        velocity_mps=out["velocity"],
        size_lwh_m=lwh,
        valid=valid,
    )


def _polylines(arrays: list[F64]) -> Polylines:
    if not arrays:
        return Polylines.empty()
    offsets = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int64)
    return Polylines(np.concatenate(arrays, axis=0).astype(np.float64), offsets)


def _ring(points: F64) -> F64 | None:
    """A polygon without its repeated closing point; ``None`` if it encloses nothing."""
    if len(points) > 1 and np.array_equal(points[0], points[-1]):
        points = points[:-1]
    return points if len(points) >= 3 else None


def _speed_mps(feat: dict[Any, Any], field: str, is_nuscenes: bool) -> float:
    """Lane speed limit in m/s, NaN where none is given."""
    for key, scale in (("speed_limit_kmh", _KMH), ("speed_limit_mph", _MPH)):
        value = feat.get(key)
        if value is None:
            continue
        if not _is_number(value) or not math.isfinite(value) or value < 0:
            raise SceneFormatError(f"speed limit {_show(value)}", field=f"{field}.{key}")
        # Waymo's protobuf default 0 means "not set". ScenarioNet writes a constant 100 km/h on
        # every nuScenes lane connector (nuScenes has no speed limits): not a real limit either.
        if value == 0 or is_nuscenes:
            return math.nan
        return float(value) * scale
    return math.nan


def _id_list(value: object, field: str) -> list[str]:
    """A list of lane ids (Waymo neighbour dicts contribute their ``feature_id``)."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, list | tuple):
        raise SceneFormatError(f"expected a list of ids, got {_show(value)}", field=field)
    out = []
    for k, item in enumerate(value):
        if isinstance(item, dict):
            item = _get(item, "feature_id", f"{field}[{k}]")
        out.append(_ref(item, f"{field}[{k}]"))
    return out


def _best_neighbour(value: object, field: str) -> str | None:
    """The neighbour covering most of the lane (Waymo lists one entry per stretch)."""
    ids = _id_list(value, field)
    if not ids:
        return None
    spans = []
    for item in value if isinstance(value, list | tuple) else []:
        lo: Any = item.get("self_start_index") if isinstance(item, dict) else None
        hi: Any = item.get("self_end_index") if isinstance(item, dict) else None
        spans.append(int(hi) - int(lo) if _is_int(lo) and _is_int(hi) else 0)
    return ids[int(np.argmax(spans))] if len(spans) == len(ids) else ids[0]


def _road_map(raw: object, is_nuscenes: bool) -> tuple[RoadMap, dict[str, int]]:
    """The map, and each lane's index by feature id."""
    features = _dict(raw, "map_features")
    lanes: list[F64] = []
    lane_ids: list[str] = []
    lane_types: list[int] = []
    speeds: list[float] = []
    links: list[tuple[list[str], list[str], str | None, str | None]] = []
    lines: list[F64] = []
    line_types: list[int] = []
    edges: list[F64] = []
    areas: list[F64] = []
    crosswalks: list[F64] = []
    signs: list[tuple[F64, list[str]]] = []
    total = 0

    def keep(dst: list[F64], pts: F64) -> None:
        nonlocal total
        total += len(pts)
        if total > MAX_MAP_POINTS:
            raise SceneFormatError(f"more than {MAX_MAP_POINTS} map points", field="map_features")
        dst.append(pts)

    for key, feat in features.items():
        fid = _ref(key, "map_features")
        f = f"map_features[{fid}]"
        feat = _dict(feat, f)
        kind = _get(feat, "type", f)
        if not isinstance(kind, str):
            raise SceneFormatError(f"type {_show(kind)} is not a string", field=f"{f}.type")
        if kind.startswith("LANE_"):
            pts = _points(_get(feat, "polyline", f), f"{f}.polyline")
            if is_nuscenes and pts.shape[1] == 3:
                # ScenarioNet's nuScenes lanes are discretised poses (x, y, yaw): no height.
                pts = np.column_stack([pts[:, :2], np.zeros(len(pts))])
            keep(lanes, pts)
            lane_ids.append(fid)
            lane_types.append(int(_LANE_TYPES.get(kind, LaneType.UNKNOWN)))
            speeds.append(_speed_mps(feat, f, is_nuscenes))
            links.append(
                (
                    _id_list(feat.get("entry_lanes"), f"{f}.entry_lanes"),
                    _id_list(feat.get("exit_lanes"), f"{f}.exit_lanes"),
                    _best_neighbour(feat.get("left_neighbor"), f"{f}.left_neighbor"),
                    _best_neighbour(feat.get("right_neighbor"), f"{f}.right_neighbor"),
                )
            )
            if "polygon" in feat:
                ring = _ring(_points(feat["polygon"], f"{f}.polygon"))
                if ring is not None:
                    keep(areas, ring)
        elif kind.startswith("ROAD_LINE_"):
            keep(lines, _points(_get(feat, "polyline", f), f"{f}.polyline"))
            line_types.append(int(_ROAD_LINE_TYPES.get(kind, RoadLineType.UNKNOWN)))
        elif kind.startswith("ROAD_EDGE_"):
            keep(edges, _points(_get(feat, "polyline", f), f"{f}.polyline"))
        elif kind in ("CROSSWALK", "DRIVEWAY"):
            shape_key = "polygon" if "polygon" in feat else "polyline"  # Waymo: polygon
            ring = _ring(_points(_get(feat, shape_key, f), f"{f}.{shape_key}"))
            if ring is not None:
                keep(crosswalks if kind == "CROSSWALK" else areas, ring)
        elif kind == "STOP_SIGN":
            lane = feat.get("lane")
            lane = [lane] if isinstance(lane, str) or _is_int(lane) else lane
            signs.append(
                (_xyz(_get(feat, "position", f), f"{f}.position"), _id_list(lane, f"{f}.lane"))
            )
        # SPEED_BUMP and unknown feature types carry nothing the scene model holds.

    if len(set(lane_ids)) != len(lane_ids):
        raise SceneFormatError("duplicate lane id", field="map_features")
    index = {lid: i for i, lid in enumerate(lane_ids)}
    lane_poly = _polylines(lanes)
    n = len(lane_ids)
    if any(any(lk) for lk in links):
        successors, left, right = graph_from_ids(lane_ids, *zip(*links, strict=True))
    else:
        successors, left, right = infer_lane_graph(lane_poly)
    sign_rows = [(pos, index.get(lid, NO_INDEX)) for pos, lids in signs for lid in (lids or [""])]
    road_map = RoadMap(
        lane_id=np.array(lane_ids, dtype=str),
        lanes=lane_poly,
        lane_type=np.array(lane_types, np.int8),
        lane_speed_limit_mps=np.array(speeds, np.float64),
        lane_successors=successors.reshape(-1, 2),
        lane_left=left.reshape(n),
        lane_right=right.reshape(n),
        road_lines=_polylines(lines),
        road_line_type=np.array(line_types, np.int8),
        road_edges=_polylines(edges),
        drivable_areas=_polylines(areas),
        crosswalks=_polylines(crosswalks),
        stop_lines=Polylines.empty(),
        stop_line_lane=np.zeros(0, np.int32),
        stop_sign_xyz_m=np.array([r[0] for r in sign_rows], np.float64).reshape(-1, 3),
        stop_sign_lane=np.array([r[1] for r in sign_rows], np.int32),
    )
    return road_map, index


def _signals(raw: object, t: int, lane_index: dict[str, int]) -> TrafficSignals:
    """Traffic lights: one row per signal, its lane, stop point and per-step state."""
    signals = _dict(raw, "dynamic_map_states")
    lanes: list[int] = []
    stops: list[F64] = []
    states: list[npt.NDArray[np.int8]] = []
    for key, sig in signals.items():
        f = f"dynamic_map_states[{_ref(key, 'dynamic_map_states')}]"
        sig = _dict(sig, f)
        lane = sig.get("lane")
        lanes.append(
            NO_INDEX if lane is None else lane_index.get(_ref(lane, f"{f}.lane"), NO_INDEX)
        )
        stops.append(_xyz(_get(sig, "stop_point", f), f"{f}.stop_point"))
        sf = f"{f}.state.object_state"
        per_step = _get(_dict(_get(sig, "state", f), f"{f}.state"), "object_state", f"{f}.state")
        if isinstance(per_step, np.ndarray):
            per_step = per_step.tolist()
        if not isinstance(per_step, list | tuple):
            raise SceneFormatError(f"expected a list of states, got {_show(per_step)}", field=sf)
        if len(per_step) != t:
            raise SceneFormatError(f"{len(per_step)} states, expected {t} (scene length)", field=sf)
        bad = [x for x in per_step if x is not None and not isinstance(x, str)]
        if bad:
            raise SceneFormatError(f"state {_show(bad[0])} is not a string", field=sf)
        # ScenarioNet pre-fills every step with None and overwrites the observed ones.
        names = np.array(["LANE_STATE_UNKNOWN" if x is None else x for x in per_step], dtype=str)
        uniq, inverse = np.unique(names, return_inverse=True)  # map the few distinct names
        unknown = [u for u in uniq if u not in _SIGNAL_STATES]
        if unknown:
            raise SceneFormatError(f"unknown signal state {unknown[0][:60]!r}", field=sf)
        states.append(np.array([_SIGNAL_STATES[u] for u in uniq], np.int8)[inverse.ravel()])
    if not lanes:
        return TrafficSignals.empty(t)
    return TrafficSignals(np.array(lanes, np.int32), np.stack(stops), np.stack(states))
