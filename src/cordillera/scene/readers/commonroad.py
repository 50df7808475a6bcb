"""Reader for CommonRoad XML scenarios (``.xml`` / ``.cr.xml``, format 2018b and 2020a).

Parsing is commonroad-io's ``CommonRoadFileReader``; this module converts its objects into one
:class:`~cordillera.scene.model.Scene` with array code. Frame: CommonRoad's 2D world frame
(metres, z = 0), headings CCW from +x, velocities in m/s; step ``t`` is CommonRoad time step
``t`` (the scenario starts at step 0), ``dt_s`` is the file's ``timeStepSize``.

Tracks
    Every dynamic obstacle (its initial state plus its trajectory, or the centres of a set-based
    prediction) and every static obstacle (valid at every step). ``object_id`` is the obstacle
    id as a string. Scalar CommonRoad velocities are along the heading and become world
    ``(vx, vy)``; point-mass states (``velocity``, ``velocity_y``, no orientation) are already
    world components. Uncertain values (intervals, position shapes) contribute their midpoint /
    centre. Boxes come from the obstacle shape (rectangle, circle, polygon or truck → its
    bounding box in the obstacle frame); heights are per-type defaults. Types: cars, trucks,
    buses, taxis, priority / parked vehicles and trains are ``VEHICLE``; pedestrians
    ``PEDESTRIAN``; bicycles and motorcycles ``CYCLIST``; the rest (unknown, construction zones,
    road boundaries, buildings, pillars, median strips) ``OTHER``.
    ``num_steps`` is the largest time step of any state (or of the ego's initial state) + 1.

The ego (CommonRoad has no recorded ego vehicle)
    1. With a planning problem (the one with the smallest id when there are several), the ego
       starts at the problem's initial state. If a dynamic obstacle's initial state coincides
       with it (same time step, positions within :data:`EGO_MATCH_DISTANCE_M`), that obstacle
       *is* the ego: it has a logged future (e.g. a recorded solution). Otherwise a new track
       ``"ego"`` is added, valid at the initial step only (the scene is a planning problem, the
       ego's future is the planner's to make), sized :data:`DEFAULT_EGO_LWH_M`.
       The route then leads from the initial pose to the goal: the cheapest successor path
       (with lane changes where needed) from the lane holding the initial position to a goal
       lanelet (``goal.lanelets_of_goal_position``, else the lanes containing a goal shape's
       centre); see :func:`~cordillera.scene.readers.commonroad_map.plan_route`.
       ``extra["goal"]`` describes the goal (time steps, position centres, lanelet ids).
    2. Without a planning problem, the ego is the dynamic ``VEHICLE`` obstacle with the most
       valid steps (ties: longest travelled distance, then smallest id; any dynamic obstacle if
       there is no vehicle) and its route is :func:`~cordillera.scene.derive.route_from_log`.

The map and signals follow :mod:`cordillera.scene.readers.commonroad_map`.

Errors
    Every failure of parsing (malformed XML, elements commonroad-io rejects, non-finite
    coordinates, impossible time steps) raises :class:`SceneFormatError` naming the file and,
    where known, the element (``dynamicObstacle[id=30]/trajectory/state/position``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from xml.etree import ElementTree

import numpy as np
import numpy.typing as npt
from commonroad.common.file_reader import CommonRoadFileReader
from commonroad.common.util import Interval
from shapely.errors import GEOSException

from cordillera.errors import SceneFormatError
from cordillera.scene import derive
from cordillera.scene.model import Scene, Tracks
from cordillera.scene.readers import commonroad_map
from cordillera.scene.types import ObjectType

Float64Array = npt.NDArray[np.float64]
Int64Array = npt.NDArray[np.int64]

SOURCE = "commonroad"
# The scenarios we read come from commonroad-io's tests and commonroad-automatic-labeling, both
# BSD-3-Clause; their NGSIM trajectories are US public domain. Other CommonRoad files may carry
# other terms: re-tag scenes made from them.
LICENSE = "BSD-3-Clause"

EGO_MATCH_DISTANCE_M = 0.5
"""A dynamic obstacle this close to the planning problem's start (same step) is the ego."""
DEFAULT_EGO_LWH_M = (4.5, 1.8, 1.5)
"""Box of a planning-problem ego, which CommonRoad gives no shape: a mid-size car."""
MAX_STEPS = 36_000
"""Longest scene accepted (an hour at 10 Hz): guards against absurd time steps in bad files."""
MAX_TRACK_CELLS = 20_000_000
"""Largest objects × steps accepted, so a bad file cannot ask for gigabytes of arrays."""

_TYPE = {
    "CAR": ObjectType.VEHICLE,
    "TRUCK": ObjectType.VEHICLE,
    "BUS": ObjectType.VEHICLE,
    "TAXI": ObjectType.VEHICLE,
    "PRIORITY_VEHICLE": ObjectType.VEHICLE,
    "PARKED_VEHICLE": ObjectType.VEHICLE,
    "TRAIN": ObjectType.VEHICLE,
    "PEDESTRIAN": ObjectType.PEDESTRIAN,
    "BICYCLE": ObjectType.CYCLIST,
    "MOTORCYCLE": ObjectType.CYCLIST,
}
# Box heights (m) by CommonRoad type; CommonRoad shapes are 2D.
_HEIGHT_M = {
    "CAR": 1.5,
    "TAXI": 1.5,
    "PRIORITY_VEHICLE": 1.6,
    "PARKED_VEHICLE": 1.5,
    "TRUCK": 3.5,
    "BUS": 3.2,
    "TRAIN": 3.8,
    "PEDESTRIAN": 1.75,
    "BICYCLE": 1.7,
    "MOTORCYCLE": 1.5,
    "BUILDING": 10.0,
    "PILLAR": 3.0,
    "MEDIAN_STRIP": 0.3,
    "ROAD_BOUNDARY": 0.8,
    "CONSTRUCTION_ZONE": 1.0,
}
_DEFAULT_HEIGHT_M = 1.5
_MOVING_MPS = 0.1  # below this speed a velocity direction says nothing about the heading
# commonroad-io's XML reader keeps per-file state in class attributes (2018b speed limits) and
# _quiet() changes a process-wide logger: one parse at a time per process.
_PARSE_LOCK = threading.Lock()


def read(path: Path) -> Scene:
    """Read one CommonRoad XML file into a scene (see the module docstring for the rules)."""
    path = Path(path)
    scenario, problems, version = _parse(path)
    try:
        return _convert(scenario, problems, version)
    except SceneFormatError as e:
        raise e.at(path) from None
    except (
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        AssertionError,
        ArithmeticError,
        GEOSException,
    ) as e:
        # commonroad-io accepts some nonsense that only fails when used (a None where a shape
        # belongs, a string where a number does): still a defect of the file.
        raise SceneFormatError(
            f"unusable content: {type(e).__name__}: {_short(e)}", path=path
        ) from None


# --- parsing ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence commonroad-io's per-element warnings (deprecated 2020a intersection tags...)."""
    logger = logging.getLogger("commonroad")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _short(e: BaseException, limit: int = 200) -> str:
    # commonroad-io's assertion messages embed whole polylines; keep errors readable.
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _element_path(tb: TracebackType | None) -> str:
    """The XML elements commonroad-io was reading when it failed, outermost first.

    Its factories all take the element as ``xml_node``; walking the traceback's frames and
    collecting those (with their ``id``) names the offending element.
    """
    parts: list[str] = []
    seen: set[int] = set()
    while tb is not None:
        node = tb.tb_frame.f_locals.get("xml_node")
        if isinstance(node, ElementTree.Element) and id(node) not in seen:
            seen.add(id(node))
            ident = node.get("id")
            parts.append(f"{node.tag}[id={ident}]" if ident is not None else str(node.tag))
        tb = tb.tb_next
    if parts and parts[0] == "commonRoad":
        parts = parts[1:]
    return "/".join(parts)


def _parse(path: Path) -> tuple[Any, list[Any], str | None]:
    """commonroad-io's scenario, planning problems (by id) and the file's format version."""
    if not path.is_file():
        raise SceneFormatError("no such file", path=path)
    reader = CommonRoadFileReader(str(path))
    try:
        with _PARSE_LOCK, _quiet():
            scenario, problem_set = reader.open()
        problems = [
            problem_set.planning_problem_dict[k] for k in sorted(problem_set.planning_problem_dict)
        ]
    except ElementTree.ParseError as e:
        line, column = getattr(e, "position", (0, 0))
        raise SceneFormatError(
            f"not well-formed XML: {_short(e)}", field=f"line {line} column {column}", path=path
        ) from None
    except OSError as e:
        raise SceneFormatError(f"cannot read: {e.strerror or e}", path=path) from None
    except Exception as e:  # any exception type may escape commonroad-io on a bad file
        raise SceneFormatError(
            f"commonroad-io cannot read it: {type(e).__name__}: {_short(e)}",
            field=_element_path(e.__traceback__),
            path=path,
        ) from None
    version = getattr(reader.file_reader, "_commonroad_version", None)
    return scenario, problems, None if version is None else str(version)


# --- values -------------------------------------------------------------------------------------


def _num(value: Any, field: str) -> float:
    """A scalar (an interval gives its midpoint); NaN when absent; an error when not finite."""
    if value is None:
        return math.nan
    if isinstance(value, Interval):
        v = 0.5 * (float(value.start) + float(value.end))
    else:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise SceneFormatError(f"{value!r} is not a number", field=field) from None
    if not math.isfinite(v):
        raise SceneFormatError(f"non-finite value {v}", field=field)
    if abs(v) > commonroad_map.MAX_COORD_M:
        raise SceneFormatError(
            f"value {v:g} is beyond ±{commonroad_map.MAX_COORD_M:g}", field=field
        )
    return v


def _step(value: Any, field: str) -> int:
    """A time step (an interval gives its start)."""
    if isinstance(value, Interval):
        value = value.start
    if value is None:
        raise SceneFormatError("missing time step", field=field)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SceneFormatError(f"time step {value!r} is not a number", field=field) from None
    if not math.isfinite(v) or v != int(v) or not 0 <= v < MAX_STEPS:
        raise SceneFormatError(
            f"time step {value!r} is not an integer in [0, {MAX_STEPS})", field=field
        )
    return int(v)


def _point(value: Any, field: str) -> tuple[float, float]:
    """An xy position: a point, or the centre of a position shape (uncertain position)."""
    if value is None:
        raise SceneFormatError("missing position", field=field)
    center = getattr(value, "center", None)
    if center is not None:  # an occupancy / shape
        xy = np.array([center.x, center.y], np.float64)
    else:
        xy = np.asarray(value, np.float64).reshape(-1)[:2]
    if xy.shape != (2,) or not np.all(np.isfinite(xy)):
        raise SceneFormatError(f"position {xy.tolist()} is not a finite point", field=field)
    if np.abs(xy).max() > commonroad_map.MAX_COORD_M:
        raise SceneFormatError(f"position {xy.tolist()} is beyond ±1e7 m", field=field)
    return float(xy[0]), float(xy[1])


def _stored(state: Any, name: str) -> Any:
    """A state variable the file gave, or ``None``.

    commonroad-io's state classes *derive* some variables as properties (``ExtendedPMState``
    computes ``velocity_y = v sin(orientation)``, ``PMState`` an orientation from its
    velocity); only the stored ones say how to read the others.
    """
    stored = getattr(state, "__dict__", None)
    return stored.get(name) if stored is not None else getattr(state, name, None)


def _shape_box(shape: Any, field: str) -> tuple[float, float, float, float]:
    """Box of an obstacle shape in the obstacle frame: length, width, centre offset x, y."""
    name = type(shape).__name__
    if shape is None:
        raise SceneFormatError("missing shape", field=field)
    if name == "RectObstacleShape":
        # origin_x_shift: the state's position is that far ahead of the box centre.
        box = (float(shape.length), float(shape.width), -float(shape.origin_x_shift), 0.0)
    elif name == "CircleObstacleShape":
        box = (2.0 * float(shape.radius), 2.0 * float(shape.radius), 0.0, 0.0)
    else:  # polygon, trucks: the bounding box of the occupancy at the origin
        from commonroad.scenario.state import InitialState

        occ = shape.compute_occupancy_for_state(
            InitialState(time_step=0, position=np.zeros(2), orientation=0.0)
        )
        x0, y0, x1, y1 = occ.shapely_object.bounds
        box = (x1 - x0, y1 - y0, 0.5 * (x0 + x1), 0.5 * (y0 + y1))
    if not all(abs(b) <= commonroad_map.MAX_COORD_M for b in box) or box[0] < 0 or box[1] < 0:
        raise SceneFormatError(f"shape {name} has size {box[:2]}", field=field)
    return box


# --- tracks -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Track:
    """One object's valid states (k of them), before placement on the scene's step grid."""

    object_id: str
    type_name: str
    steps: Int64Array  # (k,) sorted unique time steps
    xy: Float64Array  # (k, 2) box centre
    heading: Float64Array  # (k,)
    velocity: Float64Array  # (k, 2) world frame
    size_lwh: tuple[float, float, float]
    reference_xy0: tuple[float, float]  # the first state's position (shapes may offset boxes)
    static: bool = False

    @property
    def object_type(self) -> ObjectType:
        return _TYPE.get(self.type_name, ObjectType.OTHER)

    def travelled_m(self) -> float:
        return float(np.linalg.norm(np.diff(self.xy, axis=0), axis=1).sum())


def _obstacle_states(obstacle: Any, where: str) -> list[tuple[int, Any, Any, Any, Any]]:
    """``(step, position, orientation, velocity, velocity_y)`` of every state of an obstacle."""
    states = [obstacle.initial_state]
    prediction = obstacle.prediction
    trajectory = getattr(prediction, "trajectory", None)
    if trajectory is not None:
        states += list(trajectory.state_list)
    rows = []
    for i, s in enumerate(states):
        tag = "initialState" if i == 0 else f"trajectory/state[{i - 1}]"
        rows.append(
            (
                _step(s.time_step, f"{where}/{tag}/time"),
                _stored(s, "position"),
                _stored(s, "orientation"),
                _stored(s, "velocity"),
                _stored(s, "velocity_y"),
            )
        )
    if trajectory is None and prediction is not None:  # set-based: centres of the occupancies
        for t, occ in prediction.occupancies.items():
            rows.append((_step(t, f"{where}/occupancySet/time"), occ, None, None, None))
    return rows


def _dynamic_track(obstacle: Any, dt_s: float) -> _Track:
    oid = str(obstacle.obstacle_id)
    where = f"dynamicObstacle[id={oid}]"
    rows = _obstacle_states(obstacle, where)
    steps = np.array([r[0] for r in rows], np.int64)
    xy = np.array([_point(r[1], f"{where}/state[t={r[0]}]/position") for r in rows], np.float64)
    num = np.array(
        [
            [
                _num(v, f"{where}/state[t={r[0]}]/{name}")
                for v, name in zip(r[2:], ("orientation", "velocity", "velocity_y"), strict=True)
            ]
            for r in rows
        ],
        np.float64,
    ).reshape(-1, 3)
    # Sort by step; a repeated step keeps its last state.
    order = np.argsort(steps, kind="stable")
    steps, xy, num = steps[order], xy[order], num[order]
    keep = np.append(steps[1:] != steps[:-1], True)
    steps, xy, num = steps[keep], xy[keep], num[keep]
    heading, velocity = _motion(steps, xy, num[:, 0], num[:, 1], num[:, 2], dt_s)
    length, width, dx, dy = _shape_box(obstacle.obstacle_shape, f"{where}/shape")
    type_name = str(getattr(obstacle.obstacle_type, "name", "UNKNOWN"))
    c, s = np.cos(heading), np.sin(heading)
    center = xy + np.stack([c * dx - s * dy, s * dx + c * dy], axis=1)
    height = _HEIGHT_M.get(type_name, _DEFAULT_HEIGHT_M)
    return _Track(
        oid,
        type_name,
        steps,
        center,
        heading,
        velocity,
        (length, width, height),
        (float(xy[0, 0]), float(xy[0, 1])),
    )


def _motion(
    steps: Int64Array,
    xy: Float64Array,
    orientation: Float64Array,
    speed: Float64Array,
    speed_y: Float64Array,
    dt_s: float,
) -> tuple[Float64Array, Float64Array]:
    """Headings ``(k,)`` and world velocities ``(k, 2)`` from whatever the states carry.

    NaN marks an absent value. With an orientation, ``velocity`` (and ``velocity_y``, lateral)
    are body-frame; without one, ``(velocity, velocity_y)`` is a point-mass world velocity.
    Missing velocities come from finite differences of positions; missing headings from the
    velocity direction when moving, else the nearest known heading, else 0.
    """
    k = len(steps)
    has_h = np.isfinite(orientation)
    lat = np.where(np.isfinite(speed_y), speed_y, 0.0)
    velocity = np.full((k, 2), np.nan)
    body = has_h & np.isfinite(speed)
    c, s = np.cos(orientation[body]), np.sin(orientation[body])
    velocity[body] = np.stack([c * speed[body] - s * lat[body], s * speed[body] + c * lat[body]], 1)
    point_mass = ~has_h & np.isfinite(speed) & np.isfinite(speed_y)
    velocity[point_mass] = np.stack([speed[point_mass], speed_y[point_mass]], 1)
    missing = ~np.isfinite(velocity).all(axis=1)
    if missing.any():
        fd = np.gradient(xy, steps * dt_s, axis=0) if k >= 2 else np.zeros((k, 2))
        velocity[missing] = fd[missing]
    heading = orientation.copy()
    moving = ~has_h & (np.linalg.norm(velocity, axis=1) > _MOVING_MPS)
    heading[moving] = np.arctan2(velocity[moving, 1], velocity[moving, 0])
    known = np.flatnonzero(np.isfinite(heading))
    if len(known) == 0:
        heading[:] = 0.0
    elif len(known) < k:  # nearest known heading
        idx = np.clip(np.searchsorted(known, np.arange(k)), 0, len(known) - 1)
        prev = np.clip(idx - 1, 0, len(known) - 1)
        use_prev = np.abs(known[prev] - np.arange(k)) < np.abs(known[idx] - np.arange(k))
        heading = heading[np.where(use_prev, known[prev], known[idx])]
    return heading, velocity


def _static_track(obstacle: Any, num_steps: int) -> _Track:
    oid = str(obstacle.obstacle_id)
    where = f"staticObstacle[id={oid}]"
    state = obstacle.initial_state
    x, y = _point(_stored(state, "position"), f"{where}/initialState/position")
    h = _num(_stored(state, "orientation"), f"{where}/initialState/orientation")
    h = 0.0 if math.isnan(h) else h
    length, width, dx, dy = _shape_box(obstacle.obstacle_shape, f"{where}/shape")
    type_name = str(getattr(obstacle.obstacle_type, "name", "UNKNOWN"))
    cx = x + math.cos(h) * dx - math.sin(h) * dy
    cy = y + math.sin(h) * dx + math.cos(h) * dy
    steps = np.arange(num_steps, dtype=np.int64)
    return _Track(
        oid,
        type_name,
        steps,
        np.tile([cx, cy], (num_steps, 1)),
        np.full(num_steps, h),
        np.zeros((num_steps, 2)),
        (length, width, _HEIGHT_M.get(type_name, _DEFAULT_HEIGHT_M)),
        (x, y),
        static=True,
    )


def _tracks_array(tracks: list[_Track], num_steps: int) -> Tracks:
    n = len(tracks)
    if n * num_steps > MAX_TRACK_CELLS:
        raise SceneFormatError(f"{n} objects × {num_steps} steps is too large", field="obstacles")
    xyz = np.zeros((n, num_steps, 3))
    heading = np.zeros((n, num_steps))
    velocity = np.zeros((n, num_steps, 2))
    size = np.zeros((n, num_steps, 3))
    valid = np.zeros((n, num_steps), bool)
    for i, tr in enumerate(tracks):
        xyz[i, tr.steps, :2] = tr.xy
        heading[i, tr.steps] = tr.heading
        velocity[i, tr.steps] = tr.velocity
        size[i, tr.steps] = tr.size_lwh
        valid[i, tr.steps] = True
    ids = [tr.object_id for tr in tracks]
    return Tracks(
        object_id=np.array(ids, dtype=str),
        object_type=np.array([int(tr.object_type) for tr in tracks], np.int8),
        xyz_m=xyz,
        heading_rad=heading,
        velocity_mps=velocity,
        size_lwh_m=size,
        valid=valid,
    )


# --- ego, goal, route ---------------------------------------------------------------------------


def _id_key(object_id: str) -> tuple[float, str]:
    """Numeric ids sort numerically (``"9" < "10"``)."""
    return (float(object_id) if object_id.isdigit() else math.inf, object_id)


def _log_ego(dynamic: list[_Track]) -> int:
    """Index (in ``dynamic``) of the longest-logged vehicle: rule 2 of the module docstring."""
    if not dynamic:
        raise SceneFormatError(
            "no planning problem and no dynamic obstacle to be the ego", field="planningProblem"
        )
    pool = [i for i, t in enumerate(dynamic) if t.object_type == ObjectType.VEHICLE]
    pool = pool or list(range(len(dynamic)))
    return min(
        pool,
        key=lambda i: (
            -len(dynamic[i].steps),
            -dynamic[i].travelled_m(),
            _id_key(dynamic[i].object_id),
        ),
    )


def _interval_json(value: Any, field: str) -> list[float] | None:
    if value is None:
        return None
    if isinstance(value, Interval):
        pair = [_num(value.start, field), _num(value.end, field)]
    else:
        v = _num(value, field)
        pair = [v, v]
    return [float(x) for x in pair]


def _goal(problem: Any, converted: commonroad_map.ConvertedMap) -> tuple[dict[str, Any], set[int]]:
    """JSON description of a planning problem's goal, and the goal lanes (lane indices)."""
    where = f"planningProblem[id={problem.planning_problem_id}]/goalState"
    goal = problem.goal
    lanelet_ids: set[int] = set()
    for ids in (goal.lanelets_of_goal_position or {}).values():
        lanelet_ids |= {int(i) for i in ids}
    goal_lanes = {
        converted.lane_of_lanelet[i] for i in lanelet_ids if i in converted.lane_of_lanelet
    }
    states = []
    for state in goal.state_list:
        steps = _interval_json(state.time_step, f"{where}/time")
        entry: dict[str, Any] = {"time_step": None if steps is None else [int(t) for t in steps]}
        position = _stored(state, "position")
        if position is not None:
            xy = np.array(_point(position, f"{where}/position"))
            entry["position_xy_m"] = [float(xy[0]), float(xy[1])]
            if not lanelet_ids:  # no lanelets named: the lanes under the goal's centre
                goal_lanes |= set(commonroad_map.lanes_at(converted, xy))
        for attr, key in (("orientation", "orientation_rad"), ("velocity", "velocity_mps")):
            value = _stored(state, attr)
            if value is not None:
                entry[key] = _interval_json(value, f"{where}/{attr}")
        states.append(entry)
    spans = [s["time_step"] for s in states if s["time_step"] is not None]
    description = {
        "time_step": [min(s[0] for s in spans), max(s[1] for s in spans)] if spans else None,
        "lanelet_ids": sorted(lanelet_ids)
        or sorted(int(converted.road_map.lane_id[k]) for k in goal_lanes),
        "states": states,
    }
    return description, goal_lanes


def _problem_ego(problem: Any, dynamic: list[_Track]) -> tuple[_Track, int | None]:
    """The planning problem's ego track, and the index of the dynamic obstacle that is it."""
    where = f"planningProblem[id={problem.planning_problem_id}]/initialState"
    state = problem.initial_state
    t0 = _step(state.time_step, f"{where}/time")
    x, y = _point(_stored(state, "position"), f"{where}/position")
    h = _num(_stored(state, "orientation"), f"{where}/orientation")
    v = _num(_stored(state, "velocity"), f"{where}/velocity")
    h = 0.0 if math.isnan(h) else h
    v = 0.0 if math.isnan(v) else v
    matches = []
    for i, tr in enumerate(dynamic):
        d = math.hypot(tr.reference_xy0[0] - x, tr.reference_xy0[1] - y)
        if tr.steps[0] == t0 and d <= EGO_MATCH_DISTANCE_M:
            matches.append((d, _id_key(tr.object_id), i))
    ego = _Track(
        "ego",
        "CAR",
        np.array([t0], np.int64),
        np.array([[x, y]]),
        np.array([h]),
        np.array([[v * math.cos(h), v * math.sin(h)]]),
        DEFAULT_EGO_LWH_M,
        (x, y),
    )
    return ego, (min(matches)[2] if matches else None)


# --- scene ----------------------------------------------------------------------------------


def _convert(scenario: Any, problems: list[Any], version: str | None) -> Scene:
    dt_s = _num(scenario.dt, "timeStepSize")
    if not 0.0 < dt_s <= 10.0:
        raise SceneFormatError(f"time step size {dt_s} s is not in (0, 10]", field="timeStepSize")
    dynamic = [_dynamic_track(o, dt_s) for o in scenario.dynamic_obstacles]
    converted = commonroad_map.convert_map(scenario.lanelet_network)
    extra: dict[str, Any] = _metadata(scenario, version)

    problem = problems[0] if problems else None
    synthetic_ego: _Track | None = None
    goal_lanes: set[int] = set()
    if problem is not None:
        synthetic_ego, matched = _problem_ego(problem, dynamic)
        extra["planning_problem_id"] = int(problem.planning_problem_id)
        if len(problems) > 1:
            extra["other_planning_problem_ids"] = [int(p.planning_problem_id) for p in problems[1:]]
        extra["goal"], goal_lanes = _goal(problem, converted)
        if matched is not None:
            extra["ego_rule"] = "planning problem matched to a logged obstacle"
            ego_id = dynamic[matched].object_id
            synthetic_ego = None
        else:
            extra["ego_rule"] = "planning problem initial state"
            ego_id = "ego"
    else:
        extra["ego_rule"] = "longest-logged vehicle"
        ego_id = dynamic[_log_ego(dynamic)].object_id

    last = [int(t.steps[-1]) for t in dynamic]
    if synthetic_ego is not None:
        last.append(int(synthetic_ego.steps[-1]))
    num_steps = max(last, default=0) + 1
    static = [_static_track(o, num_steps) for o in scenario.static_obstacles]
    tracks_list = ([synthetic_ego] if synthetic_ego is not None else []) + dynamic + static
    tracks = _tracks_array(tracks_list, num_steps)
    ego_index = [t.object_id for t in tracks_list].index(ego_id)

    if problem is not None:
        ego_track = tracks_list[ego_index]
        route, reached = commonroad_map.plan_route(
            converted, ego_track.xy[0], float(ego_track.heading[0]), goal_lanes
        )
        # None: the goal has no position, so there is nothing for the route to reach.
        extra["goal"]["route_reaches_goal"] = reached if goal_lanes else None
    else:
        route = derive.route_from_log(tracks, ego_index, converted.road_map)
    signals = commonroad_map.convert_signals(scenario.lanelet_network, converted, num_steps)
    return Scene(
        scene_id=str(scenario.scenario_id),
        source=SOURCE,
        license=LICENSE,
        dt_s=float(dt_s),
        ego_index=ego_index,
        tracks=tracks,
        map=converted.road_map,
        signals=signals,
        route=route,
        extra=extra,
    )


def _metadata(scenario: Any, version: str | None) -> dict[str, Any]:
    """``extra``: tags, location, authorship and ids, where the file has them."""
    extra: dict[str, Any] = {
        "tags": sorted(str(getattr(t, "value", t)) for t in (scenario.tags or ())),
        "benchmark_id": str(scenario.scenario_id),
    }
    if version:
        extra["commonroad_version"] = version
    info = getattr(scenario, "file_information", None)
    for attr, key in (
        ("author", "author"),
        ("affiliation", "affiliation"),
        ("source", "original_source"),
    ):
        value = getattr(info, attr, None)
        if isinstance(value, str) and value:
            extra[key] = value
    location = getattr(scenario.lanelet_network, "location", None)
    if location is not None:
        # CommonRoad writes -999 / 999 for "unknown"; keep only plausible values.
        loc = {}
        for attr, bound in (("geo_name_id", None), ("gps_latitude", 90), ("gps_longitude", 180)):
            value = getattr(location, attr, None)
            if not isinstance(value, int | float) or not math.isfinite(value):
                continue
            if (bound is None and value > 0) or (bound is not None and abs(value) <= bound):
                loc[attr] = value
        if loc:
            extra["location"] = loc
    return extra
