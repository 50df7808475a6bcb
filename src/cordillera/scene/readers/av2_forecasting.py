"""Argoverse 2 motion-forecasting scenarios (``scenario_<id>.parquet`` + map JSON) as a Scene.

A scenario is one parquet table with a row per (track, timestep): 11 s at 10 Hz (110 steps),
the first ``observed_steps`` (50) of which are the "observed" history. Positions, headings and
velocities are in the city frame (metres, radians CCW from +x, m/s). The table has no z and no
box sizes: z is set to 0 (so the map's boundary heights do not match the tracks' z; everything
downstream is planar) and sizes come from :data:`DEFAULT_SIZE_LWH_M` per object type.

The Arrow helpers here (:func:`read_arrow_table`, :func:`column`) are shared with the sensor
reader: every pyarrow/IO failure becomes a :class:`SceneFormatError` naming file and column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.feather as pa_feather
import pyarrow.parquet as pq

from cordillera.errors import SceneFormatError
from cordillera.scene.derive import route_from_log
from cordillera.scene.model import RoadMap, Scene, Tracks, TrafficSignals
from cordillera.scene.readers.av2_map import find_map, read_map
from cordillera.scene.types import ObjectType

SOURCE = "av2-forecasting"
LICENSE = "CC-BY-NC-SA-4.0"
DT_S = 0.1  # AV2 forecasting scenarios are sampled at 10 Hz
EGO_ID = "AV"
MAX_STEPS = 10_000
"""Larger timesteps are corrupt (scenarios have 110); the cap bounds the dense arrays."""

# AV2 ``object_type`` -> ObjectType. Riderless bicycles count as cyclists (they occupy the same
# space and move like one when walked); static/background/construction/unknown are clutter.
OBJECT_TYPES: dict[str, ObjectType] = {
    "vehicle": ObjectType.VEHICLE,
    "bus": ObjectType.VEHICLE,
    "pedestrian": ObjectType.PEDESTRIAN,
    "cyclist": ObjectType.CYCLIST,
    "motorcyclist": ObjectType.CYCLIST,
    "riderless_bicycle": ObjectType.CYCLIST,
    "static": ObjectType.OTHER,
    "background": ObjectType.OTHER,
    "construction": ObjectType.OTHER,
    "unknown": ObjectType.OTHER,
}

# Box length x width x height (m) per AV2 object type. The forecasting data has no sizes; these
# are typical dimensions (mid-size sedan, 12 m city bus, adult pedestrian, bicycle/motorcycle
# with rider) so collision checks and drawings have a plausible footprint. Types not listed
# (and the clutter types) get a 1 m cube.
DEFAULT_SIZE_LWH_M: dict[str, tuple[float, float, float]] = {
    "vehicle": (4.5, 2.0, 1.6),
    "bus": (12.0, 2.6, 3.2),
    "pedestrian": (0.6, 0.6, 1.8),
    "cyclist": (1.8, 0.7, 1.7),
    "motorcyclist": (2.1, 0.8, 1.6),
    "riderless_bicycle": (1.8, 0.6, 1.1),
}
OTHER_SIZE_LWH_M = (1.0, 1.0, 1.0)

ColumnKind = Literal["float", "int", "str", "bool"]
_KIND_CHECK = {
    "float": lambda t: pa.types.is_floating(t) or pa.types.is_integer(t),
    "int": pa.types.is_integer,
    "str": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
    "bool": pa.types.is_boolean,
}
_KIND_TYPE = {"float": pa.float64(), "int": pa.int64(), "str": pa.string(), "bool": pa.bool_()}


def read_arrow_table(path: Path, kind: Literal["parquet", "feather"]) -> pa.Table:
    """Read and fully validate a parquet or feather (Arrow IPC) file.

    ``validate(full=True)`` checks offsets and buffer sizes, so a corrupt file fails here with a
    :class:`SceneFormatError` instead of later reading out of bounds.
    """
    try:
        table = pq.read_table(path) if kind == "parquet" else pa_feather.read_table(path)
        table.validate(full=True)
        return table
    except (
        pa.ArrowException,
        OSError,
        ValueError,
        EOFError,
        IndexError,
        TypeError,
        OverflowError,
        UnicodeDecodeError,
    ) as e:
        if isinstance(e, FileNotFoundError):
            raise SceneFormatError("file not found", path=path) from None
        raise SceneFormatError(f"not a readable {kind} file: {_first_line(e)}", path=path) from None


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


def column(table: pa.Table, name: str, kind: ColumnKind, path: Path) -> npt.NDArray[Any]:
    """Column ``name`` as a numpy array: float64, int64, bool, or (for ``str``) unicode.

    Raises :class:`SceneFormatError` (field = column name) when the column is missing, of the
    wrong type, or has nulls.
    """
    if name not in table.column_names:
        raise SceneFormatError("missing column", field=name, path=path)
    col = table.column(name)
    if not _KIND_CHECK[kind](col.type):
        raise SceneFormatError(f"type {col.type}, expected {kind}", field=name, path=path)
    if col.null_count:
        raise SceneFormatError(f"{col.null_count} null values", field=name, path=path)
    try:
        values = col.cast(_KIND_TYPE[kind]).to_numpy(zero_copy_only=False)
    except (pa.ArrowException, ValueError, OverflowError) as e:
        raise SceneFormatError(f"cannot convert: {_first_line(e)}", field=name, path=path) from None
    return values.astype(str) if kind == "str" else values


def single_value(values: npt.NDArray[np.str_], name: str, path: Path) -> str:
    """The one value a per-scenario column repeats on every row."""
    unique = np.unique(values)
    if len(unique) != 1:
        raise SceneFormatError(
            f"expected one value, got {len(unique)}: {unique[:3].tolist()}", field=name, path=path
        )
    return str(unique[0])


def _require_finite(
    values: npt.NDArray[np.float64],
    name: str,
    path: Path,
    track: npt.NDArray[np.str_],
    step: npt.NDArray[np.int64],
) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        r = int(np.argmax(bad))
        raise SceneFormatError(
            f"value {values[r]} for track {track[r]!r} at timestep {step[r]}", field=name, path=path
        )


def _locate(path: Path) -> tuple[Path, Path | None]:
    """The parquet file and the map beside it, from a scenario folder or the parquet file."""
    if path.is_dir():
        found = sorted(path.glob("scenario_*.parquet"))
        if len(found) != 1:
            raise SceneFormatError(
                f"expected one scenario_*.parquet, found {len(found)}", path=path
            )
        return found[0], find_map(path)
    return path, find_map(path.parent)


def read(path: Path) -> Scene:
    """Read one AV2 forecasting scenario (its folder, or its ``scenario_*.parquet``).

    Returns a scene with one track per ``track_id`` (ego ``"AV"``), ``max(timestep) + 1`` steps
    of 0.1 s, the scenario's vector map and the ego's logged route. ``extra`` holds ``city``,
    ``focal_track_id`` and ``observed_steps`` (length of the observed history).
    """
    parquet, map_path = _locate(Path(path))
    table = read_arrow_table(parquet, "parquet")
    if table.num_rows == 0:
        raise SceneFormatError("no rows", path=parquet)

    def col(name: str, kind: ColumnKind) -> npt.NDArray[Any]:
        return column(table, name, kind, parquet)

    track_col = col("track_id", "str")
    step = col("timestep", "int").astype(np.int64)
    if step.min() < 0 or step.max() >= MAX_STEPS:
        r = int(np.argmax((step < 0) | (step >= MAX_STEPS)))
        raise SceneFormatError(
            f"timestep {step[r]} outside [0, {MAX_STEPS})", field="timestep", path=parquet
        )
    object_ids, obj = np.unique(track_col, return_inverse=True)
    n, t = len(object_ids), int(step.max()) + 1
    cell = obj.astype(np.int64) * t + step
    uniq_cells, counts = np.unique(cell, return_counts=True)
    if len(uniq_cells) != len(cell):
        dup = int(uniq_cells[np.argmax(counts > 1)])
        raise SceneFormatError(
            f"track {object_ids[dup // t]!r} has several rows at timestep {dup % t}",
            field="timestep",
            path=parquet,
        )
    if EGO_ID not in object_ids:
        raise SceneFormatError(f"no ego track {EGO_ID!r}", field="track_id", path=parquet)

    states = {
        name: col(name, "float").astype(np.float64)
        for name in ("position_x", "position_y", "heading", "velocity_x", "velocity_y")
    }
    for name, values in states.items():
        _require_finite(values, name, parquet, track_col, step)
    observed = col("observed", "bool").astype(bool)
    type_col = col("object_type", "str")
    scenario_id = single_value(col("scenario_id", "str"), "scenario_id", parquet)
    city = single_value(col("city", "str"), "city", parquet)
    focal = single_value(col("focal_track_id", "str"), "focal_track_id", parquet)

    # Scatter rows into dense (N, T) arrays; cells without a row stay zero and invalid.
    valid = np.zeros((n, t), bool)
    valid[obj, step] = True
    xyz = np.zeros((n, t, 3))
    xyz[obj, step, 0] = states["position_x"]
    xyz[obj, step, 1] = states["position_y"]
    heading = np.zeros((n, t))
    heading[obj, step] = states["heading"]
    velocity = np.zeros((n, t, 2))
    velocity[obj, step, 0] = states["velocity_x"]
    velocity[obj, step, 1] = states["velocity_y"]

    # A track's type is its first row's (AV2 types are constant per track).
    first_row = np.unique(obj, return_index=True)[1]
    names, type_idx = np.unique(type_col[first_row], return_inverse=True)
    object_type = np.array([OBJECT_TYPES.get(s, ObjectType.OTHER) for s in names], np.int8)[
        type_idx
    ]
    sizes = np.array([DEFAULT_SIZE_LWH_M.get(s, OTHER_SIZE_LWH_M) for s in names])[type_idx]
    size = np.where(valid[..., None], sizes[:, None, :], 0.0)

    tracks = Tracks(
        object_id=object_ids.astype(str),
        object_type=object_type.astype(np.int8),
        xyz_m=xyz,
        heading_rad=heading,
        velocity_mps=velocity,
        size_lwh_m=size,
        valid=valid,
    )
    ego_index = int(np.flatnonzero(object_ids == EGO_ID)[0])
    road_map = read_map(map_path) if map_path is not None else RoadMap.empty()
    return Scene(
        scene_id=scenario_id,
        source=SOURCE,
        license=LICENSE,
        dt_s=DT_S,
        ego_index=ego_index,
        tracks=tracks,
        map=road_map,
        signals=TrafficSignals.empty(t),
        route=route_from_log(tracks, ego_index, road_map),
        extra={
            "city": city,
            "focal_track_id": focal,
            "observed_steps": int(step[observed].max()) + 1 if observed.any() else 0,
        },
    )
