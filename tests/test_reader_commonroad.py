"""The CommonRoad XML reader on all 23 shared scenarios and on a hand-made one.

Expected counts below were checked against commonroad-io's own parse (see
``test_counts_match_commonroad_io``); the hand-made scenario pins every mapping rule.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from commonroad.common.common_lanelet import LaneletType, LineMarking, StopLine
from commonroad.common.common_scenario import ScenarioID
from commonroad.common.file_reader import CommonRoadFileReader
from commonroad.common.file_writer import CommonRoadFileWriter
from commonroad.common.util import FileFormat, Interval
from commonroad.common.writer.file_writer_interface import OverwriteExistingFile
from commonroad.geometry.obstacle_shapes.rect_obstacle_shape import RectObstacleShape
from commonroad.geometry.occupancy.rect_occupancy import RectOccupancy
from commonroad.planning.goal import GoalRegion
from commonroad.planning.planning_problem import PlanningProblem, PlanningProblemSet
from commonroad.prediction.prediction import TrajectoryPrediction
from commonroad.scenario.lanelet import Lanelet, LaneletNetwork
from commonroad.scenario.obstacle import DynamicObstacle, ObstacleType, StaticObstacle
from commonroad.scenario.scenario import Scenario, Tag
from commonroad.scenario.state import CustomState, InitialState, KSState
from commonroad.scenario.traffic_light import (
    TrafficLight,
    TrafficLightCycle,
    TrafficLightCycleElement,
    TrafficLightState,
)
from commonroad.scenario.traffic_sign import TrafficSign, TrafficSignElement, TrafficSignIDGermany
from commonroad.scenario.trajectory import Trajectory

from conftest import shared_path
from cordillera.scene.model import Scene
from cordillera.scene.readers import read_scene
from cordillera.scene.readers.commonroad_map import light_states
from cordillera.scene.store import scene_from_bytes, scene_to_bytes
from cordillera.scene.types import LaneType, ObjectType, RoadLineType, SignalState

# file → (objects, steps, lanes); objects include the added "ego" where the rule adds one.
EXPECTED = {
    "misc/BEL_Putte-8_2_T-1.xml": (11, 37, 41),
    "misc/DEU_B471-1_1_I-1-1.cr.xml": (4, 2, 2),
    "misc/DEU_BadEssen-2_5_I-1-1.cr.xml": (10, 2, 22),
    "misc/DEU_Crit-1_1_T-1.xml": (2, 31, 4),
    "misc/DEU_Flensburg-10_1_T-1.xml": (28, 101, 26),
    "misc/DEU_Hoerstein-1_1_I-1.cr.xml": (4, 1, 23),
    "misc/DEU_Moabit-4_1_T-1.xml": (2, 34, 51),
    "misc/DEU_Moelln-10_2_T-1.xml": (11, 37, 33),
    "misc/DEU_Moelln-4_4_T-1.xml": (9, 37, 75),
    "misc/DEU_Muc-4_2_T-1.cr.xml": (3, 51, 2),
    "misc/DEU_Stu-1_1_I-1-1.cr.xml": (30, 2, 10),
    "misc/USA_Lanker-1_12_I-1-1.cr.xml": (20, 2, 91),
    "misc/USA_Lanker-1_3_T-1.cr.xml": (37, 41, 95),
    "misc/USA_Peach-3_3_I-1-1.cr.xml": (9, 2, 74),
    "misc/USA_US101-13_5_I-1-1.cr.xml": (42, 2, 12),
    "misc/USA_US101-5_1_T-1.xml": (26, 101, 5),
    "misc/ZAM_Over-1_1.xml": (2, 1, 2),
    "misc/ZAM_Tjunction-1_97_T-1.xml": (6, 148, 12),
    "ngsim/DEU_A9-3_1_T-1.xml": (10, 31, 32),
    "ngsim/USA_Lanker-1_1_T-1.xml": (25, 41, 91),
    "ngsim/USA_Peach-4_8_T-1.xml": (10, 61, 79),
    "ngsim/USA_US101-3_3_T-1.xml": (13, 32, 12),
    "ngsim/USA_US101-4_1_T-1.xml": (23, 101, 12),
}
FILES = sorted(EXPECTED)


@pytest.fixture(scope="module")
def scenes() -> dict[str, Scene]:
    """Every shared scenario, read once for the module."""
    root = shared_path("commonroad")
    return {name: read_scene(root / name) for name in FILES}


@pytest.fixture(scope="module")
def parsed() -> dict[str, tuple[Any, Any]]:
    """commonroad-io's own parse of every shared scenario (the reference)."""
    root = shared_path("commonroad")
    logging.getLogger("commonroad").setLevel(logging.ERROR)
    return {name: CommonRoadFileReader(str(root / name)).open() for name in FILES}


def test_the_data_folder_holds_exactly_these_files() -> None:
    root = shared_path("commonroad")
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.xml")) == FILES


@pytest.mark.parametrize("name", FILES)
def test_every_file_converts_with_expected_counts(scenes: dict[str, Scene], name: str) -> None:
    scene = scenes[name]
    assert (scene.num_objects, scene.num_steps, scene.map.num_lanes) == EXPECTED[name]
    assert scene.source == "commonroad"
    assert scene.license == "BSD-3-Clause"
    assert scene.tracks.valid[scene.ego_index].any()


@pytest.mark.parametrize("name", FILES)
def test_counts_match_commonroad_io(
    scenes: dict[str, Scene], parsed: dict[str, tuple[Any, Any]], name: str
) -> None:
    scene, (scenario, problems) = scenes[name], parsed[name]
    added_ego = 1 if scene.ego_id == "ego" else 0
    assert scene.num_objects == (
        len(scenario.dynamic_obstacles) + len(scenario.static_obstacles) + added_ego
    )
    finals = [
        o.prediction.final_time_step if o.prediction is not None else o.initial_state.time_step
        for o in scenario.dynamic_obstacles
    ]
    problem = problems.planning_problem_dict[min(problems.planning_problem_dict)]
    assert scene.num_steps == max([*finals, problem.initial_state.time_step]) + 1
    assert scene.dt_s == pytest.approx(float(scenario.dt))
    assert scene.scene_id == str(scenario.scenario_id)
    lanes = [
        str(ll.lanelet_id)
        for ll in scenario.lanelet_network.lanelets
        if not ({t.name for t in ll.lanelet_type} & {"CROSSWALK", "SIDEWALK"})
    ]
    assert sorted(scene.map.lane_id.tolist()) == sorted(lanes)
    assert set(scene.tracks.object_id.tolist()) - {"ego"} == {
        str(o.obstacle_id) for o in scenario.obstacles
    }
    assert scene.extra["planning_problem_id"] == problem.planning_problem_id


def test_tags_present_for_misc_files(scenes: dict[str, Scene]) -> None:
    for name in FILES:
        if name.startswith("misc/"):
            tags = scenes[name].extra["tags"]
            assert tags and tags == sorted(tags), name
    assert "turn_left" in scenes["misc/ZAM_Tjunction-1_97_T-1.xml"].extra["tags"]
    assert {"lane_following", "traffic_jam"} <= set(
        scenes["misc/USA_US101-5_1_T-1.xml"].extra["tags"]
    )


def test_ego_is_the_obstacle_that_starts_at_the_planning_problem(
    scenes: dict[str, Scene],
) -> None:
    # DEU_Crit: dynamic obstacle 9 starts exactly at planning problem 8's initial state.
    scene = scenes["misc/DEU_Crit-1_1_T-1.xml"]
    assert scene.ego_id == "9"
    assert scene.tracks.valid[scene.ego_index].sum() == 31  # a logged future
    # Everywhere else the ego is the planning problem's start, valid at that step only.
    for name in FILES:
        if name != "misc/DEU_Crit-1_1_T-1.xml":
            s = scenes[name]
            assert s.ego_id == "ego", name
            assert s.tracks.valid[s.ego_index].tolist() == [True] + [False] * (s.num_steps - 1)


def test_routes_start_at_the_ego_and_follow_the_lane_graph(scenes: dict[str, Scene]) -> None:
    for name in FILES:
        scene = scenes[name]
        route, m = scene.route, scene.map
        start = scene.tracks.xyz_m[scene.ego_index, 0, :2]
        assert len(route.lanes) >= 1, name
        assert np.linalg.norm(route.path_xyz_m[0, :2] - start) < 3.0, name
        successors = {tuple(e) for e in m.lane_successors.tolist()}
        for a, b in zip(route.lanes[:-1].tolist(), route.lanes[1:].tolist(), strict=True):
            lane_change = b in (m.lane_left[a], m.lane_right[a])
            assert (a, b) in successors or lane_change, (name, a, b)
        goal = scene.extra["goal"]
        if goal["route_reaches_goal"]:
            assert int(m.lane_id[route.lanes[-1]]) in goal["lanelet_ids"], name
    # Lane-following scenarios need no lane change.
    for name in ("misc/USA_US101-5_1_T-1.xml", "misc/ZAM_Tjunction-1_97_T-1.xml"):
        scene = scenes[name]
        successors = {tuple(e) for e in scene.map.lane_successors.tolist()}
        lanes = scene.route.lanes.tolist()
        assert all((a, b) in successors for a, b in itertools.pairwise(lanes))


def test_velocities_point_along_the_motion(scenes: dict[str, Scene]) -> None:
    scene = scenes["misc/USA_US101-5_1_T-1.xml"]
    tr = scene.tracks
    both = tr.valid[:, 1:] & tr.valid[:, :-1]
    step = (tr.xyz_m[:, 1:, :2] - tr.xyz_m[:, :-1, :2]) / scene.dt_s
    v = tr.velocity_mps[:, :-1]
    moving = both & (np.linalg.norm(step, axis=-1) > 2.0)
    cos = (step * v).sum(-1)[moving] / (
        np.linalg.norm(step, axis=-1)[moving] * np.linalg.norm(v, axis=-1)[moving]
    )
    assert np.median(cos) > 0.95
    speed_ratio = np.linalg.norm(v, axis=-1)[moving] / np.linalg.norm(step, axis=-1)[moving]
    assert 0.8 < np.median(speed_ratio) < 1.2


def test_traffic_light_states_per_step(
    scenes: dict[str, Scene], parsed: dict[str, tuple[Any, Any]]
) -> None:
    scene = scenes["ngsim/USA_Peach-4_8_T-1.xml"]
    lane_of = {lid: k for k, lid in enumerate(scene.map.lane_id.tolist())}
    sig = scene.signals
    # Light 43918 (lanelets 43402/4/6): green 400, yellow 30, red 570, offset 590. At step t
    # the cycle position is (t - 590) mod 1000 = t + 410: yellow until t = 19, then red.
    hand = np.array([SignalState.YELLOW] * 20 + [SignalState.RED] * 41, np.int8)
    for lanelet in ("43402", "43404", "43406"):
        rows = np.flatnonzero(sig.lane == lane_of[lanelet])
        assert len(rows) == 1
        assert sig.state[rows[0]].tolist() == hand.tolist()
    # Light 43919 (offset 1090): position t + 910, red throughout.
    rows = np.flatnonzero(sig.lane == lane_of["43466"])
    assert sig.state[rows[0]].tolist() == [SignalState.RED] * 61
    assert len(sig.lane) == 13  # 4 lights over 3 + 4 + 3 + 3 lanelets

    # Lanker-1_3: light 11524 sits in its INACTIVE phase (position t + 640 of 220/40/740).
    lanker = scenes["misc/USA_Lanker-1_3_T-1.cr.xml"]
    network = parsed["misc/USA_Lanker-1_3_T-1.cr.xml"][0].lanelet_network
    light = network.find_traffic_light_by_id(11524)
    assert light_states(light, 41).tolist() == [SignalState.UNKNOWN] * 41
    # Every row of both files agrees with commonroad-io's own state lookup.
    colour = {"RED": 1, "RED_YELLOW": 1, "YELLOW": 2, "GREEN": 3, "INACTIVE": 0}
    for name, s in (
        ("ngsim/USA_Peach-4_8_T-1.xml", scene),
        ("misc/USA_Lanker-1_3_T-1.cr.xml", lanker),
    ):
        net = parsed[name][0].lanelet_network
        got = {}
        for light in net.traffic_lights:
            want = [colour[light.get_state_at_time_step(t).name] for t in range(s.num_steps)]
            assert light_states(light, s.num_steps).tolist() == want
            got[light.traffic_light_id] = want
        assert {tuple(r) for r in s.signals.state.tolist()} <= {tuple(w) for w in got.values()}


def test_store_round_trip_is_bit_identical(scenes: dict[str, Scene]) -> None:
    for name in FILES:
        scene = scenes[name]
        back = scene_from_bytes(scene_to_bytes(scene))
        for part in ("tracks", "map", "signals", "route"):
            _assert_same_arrays(getattr(scene, part), getattr(back, part), f"{name}:{part}")
        assert (back.scene_id, back.source, back.license, back.dt_s, back.ego_index) == (
            scene.scene_id,
            scene.source,
            scene.license,
            scene.dt_s,
            scene.ego_index,
        )
        assert dict(back.extra) == dict(scene.extra)


def _assert_same_arrays(a: Any, b: Any, where: str) -> None:
    for key, value in vars(a).items():
        other = getattr(b, key)
        if isinstance(value, np.ndarray):
            assert value.dtype == other.dtype, (where, key)
            assert value.shape == other.shape, (where, key)
            assert value.tobytes() == other.tobytes(), (where, key)
        else:
            _assert_same_arrays(value, other, f"{where}.{key}")


# --- a hand-made scenario ----------------------------------------------------------------------


def _lanelet(lid: int, x0: float, x1: float, yc: float, **kw: Any) -> Lanelet:
    """Straight lanelet along +x from ``x0`` to ``x1``, 3.5 m wide, centred on ``y = yc``."""
    xs = np.linspace(x0, x1, 6)
    left = np.stack([xs, np.full(6, yc + 1.75)], 1)
    right = np.stack([xs, np.full(6, yc - 1.75)], 1)
    return Lanelet(left, 0.5 * (left + right), right, lid, **kw)


def write_scenario(path: Path, ego_is_obstacle: bool = False) -> Path:
    """Two parallel same-direction lanes (1 → 2 at y = 0, 3 → 4 at y = 3.5), a crosswalk (5),
    a speed sign, a stop sign, a stop line and a light on lanelet 1, one car, one parked car,
    and a planning problem from (2, 0.2) to a goal on lanelet 2. With ``ego_is_obstacle`` the
    car starts at the planning problem's initial state."""
    dashed, solid = LineMarking.DASHED, LineMarking.SOLID
    lanelets = [
        _lanelet(
            1,
            0,
            50,
            0.0,
            successor=[2],
            adjacent_left=3,
            adjacent_left_same_direction=True,
            line_marking_left_vertices=dashed,
            line_marking_right_vertices=solid,
            stop_line=StopLine(np.array([48.0, -1.75]), np.array([48.0, 1.75]), solid),
            lanelet_type={LaneletType.URBAN},
        ),
        _lanelet(
            2,
            50,
            100,
            0.0,
            predecessor=[1],
            adjacent_left=4,
            adjacent_left_same_direction=True,
            line_marking_left_vertices=dashed,
            line_marking_right_vertices=solid,
            lanelet_type={LaneletType.URBAN},
        ),
        _lanelet(
            3,
            0,
            50,
            3.5,
            successor=[4],
            adjacent_right=1,
            adjacent_right_same_direction=True,
            line_marking_left_vertices=solid,
            line_marking_right_vertices=dashed,
            lanelet_type={LaneletType.URBAN},
        ),
        _lanelet(
            4,
            50,
            100,
            3.5,
            predecessor=[3],
            adjacent_right=2,
            adjacent_right_same_direction=True,
            line_marking_left_vertices=solid,
            line_marking_right_vertices=dashed,
            lanelet_type={LaneletType.BUS_LANE},
        ),
    ]
    ys = np.linspace(-1.75, 5.25, 3)
    lanelets.append(
        Lanelet(
            np.stack([np.full(3, 60.0), ys], 1),
            np.stack([np.full(3, 62.0), ys], 1),
            np.stack([np.full(3, 64.0), ys], 1),
            5,
            lanelet_type={LaneletType.CROSSWALK},
        )
    )
    net = LaneletNetwork.create_from_lanelet_list(lanelets)
    net.add_traffic_sign(
        TrafficSign(
            200,
            [TrafficSignElement(TrafficSignIDGermany.MAX_SPEED, ["13.89"])],
            {1},
            np.array([1.0, -3.0]),
        ),
        {1},
    )
    net.add_traffic_sign(
        TrafficSign(
            201, [TrafficSignElement(TrafficSignIDGermany.STOP, [])], {1}, np.array([48.0, -3.0])
        ),
        {1},
    )
    cycle = TrafficLightCycle(
        [
            TrafficLightCycleElement(TrafficLightState.GREEN, 5),
            TrafficLightCycleElement(TrafficLightState.YELLOW, 2),
            TrafficLightCycleElement(TrafficLightState.RED, 3),
        ],
        time_offset=2,
        active=True,
    )
    net.add_traffic_light(TrafficLight(100, np.array([49.0, -3.0]), cycle), {1})
    scenario = Scenario(0.1, ScenarioID(country_id="DEU", map_name="Cordillera", map_id=1))
    scenario.add_objects(net)

    def initial(x: float, y: float, v: float) -> InitialState:
        return InitialState(
            time_step=0,
            position=np.array([x, y]),
            orientation=0.0,
            velocity=v,
            acceleration=0.0,
            yaw_rate=0.0,
            slip_angle=0.0,
        )

    x0, y0 = (2.0, 0.2) if ego_is_obstacle else (5.0, 3.5)
    shape = RectObstacleShape(width=2.0, length=4.0)
    states = [
        KSState(
            time_step=t,
            position=np.array([x0 + t, y0]),
            orientation=0.0,
            velocity=10.0,
            steering_angle=0.0,
        )
        for t in range(1, 20)
    ]
    scenario.add_objects(
        DynamicObstacle(
            10,
            ObstacleType.CAR,
            shape,
            initial(x0, y0, 10.0),
            TrajectoryPrediction(Trajectory(1, states), shape),
        )
    )
    scenario.add_objects(
        StaticObstacle(
            11,
            ObstacleType.PARKED_VEHICLE,
            RectObstacleShape(width=1.0, length=2.0),
            initial(80.0, 3.5, 0.0),
        )
    )
    goal = GoalRegion(
        [
            CustomState(
                time_step=Interval(10, 20),
                position=RectOccupancy(shapely.Point(90.0, 0.0), 3.5, 10.0, 0.0),
            )
        ]
    )
    problem = PlanningProblem(7, initial(2.0, 0.2, 8.0), goal)
    CommonRoadFileWriter(
        scenario,
        PlanningProblemSet([problem]),
        author="Cordillera tests",
        affiliation="Cordillera",
        source="hand-made",
        tags={Tag.URBAN, Tag.LANE_FOLLOWING},
        file_format=FileFormat.XML,
    ).write_to_file(str(path), OverwriteExistingFile.ALWAYS)
    return path


def test_hand_made_scenario(tmp_path: Path) -> None:
    scene = read_scene(write_scenario(tmp_path / "DEU_Cordillera-1.xml"))
    m, tr = scene.map, scene.tracks
    assert scene.scene_id == "DEU_Cordillera-1"
    assert scene.dt_s == 0.1
    assert tr.object_id.tolist() == ["ego", "10", "11"]
    assert tr.object_type.tolist() == [ObjectType.VEHICLE] * 3
    assert scene.num_steps == 20 and scene.ego_id == "ego"
    # The planning-problem ego: its initial state only, default car box.
    assert tr.valid[0].tolist() == [True] + [False] * 19
    np.testing.assert_allclose(tr.xyz_m[0, 0], [2.0, 0.2, 0.0])
    np.testing.assert_allclose(tr.velocity_mps[0, 0], [8.0, 0.0])
    np.testing.assert_allclose(tr.size_lwh_m[0, 0], [4.5, 1.8, 1.5])
    # The car: 20 logged steps at 1 m per step; the parked car: every step.
    assert tr.valid[1].all() and tr.valid[2].all()
    np.testing.assert_allclose(tr.xyz_m[1, :, 0], 5.0 + np.arange(20))
    np.testing.assert_allclose(tr.velocity_mps[1, 7], [10.0, 0.0])
    np.testing.assert_allclose(tr.size_lwh_m[1, 3], [4.0, 2.0, 1.5])
    np.testing.assert_allclose(tr.xyz_m[2, 19], [80.0, 3.5, 0.0])

    # Lanes 1, 2, 3, 4 (the crosswalk is not a lane), connected 1→2, 3→4, 3 left of 1.
    assert m.lane_id.tolist() == ["1", "2", "3", "4"]
    assert m.lane_type.tolist() == [LaneType.VEHICLE] * 3 + [LaneType.BUS]
    assert m.lane_successors.tolist() == [[0, 1], [2, 3]]
    assert m.lane_left.tolist() == [2, 3, -1, -1]
    assert m.lane_right.tolist() == [-1, -1, 0, 1]
    np.testing.assert_allclose(m.lanes[0][[0, -1]], [[0, 0, 0], [50, 0, 0]])
    assert m.lane_speed_limit_mps[0] == pytest.approx(13.89)
    assert np.isnan(m.lane_speed_limit_mps[1:]).all()
    # Six distinct bounds (the two shared ones once), four of them outer edges.
    assert len(m.road_lines) == 6
    assert sorted(m.road_line_type.tolist()) == sorted(
        [RoadLineType.DASHED_WHITE] * 2 + [RoadLineType.SOLID_WHITE] * 4
    )
    assert len(m.road_edges) == 4
    assert len(m.drivable_areas) == 4 and len(m.crosswalks) == 1
    np.testing.assert_allclose(m.stop_lines[0], [[48, -1.75, 0], [48, 1.75, 0]])
    assert m.stop_line_lane.tolist() == [0]
    np.testing.assert_allclose(m.stop_sign_xyz_m, [[48.0, -3.0, 0.0]])
    assert m.stop_sign_lane.tolist() == [0]

    # Light 100 on lane 0: green 5, yellow 2, red 3, offset 2. Step t is at (t - 2) mod 10:
    # t = 0, 1 → 8, 9 red; 2–6 green; 7, 8 yellow; 9–11 red; 12–16 green; 17, 18 yellow; 19 red.
    letter = {"R": SignalState.RED, "G": SignalState.GREEN, "Y": SignalState.YELLOW}
    assert scene.signals.lane.tolist() == [0]
    np.testing.assert_allclose(scene.signals.stop_point_xyz_m, [[48.0, 0.0, 0.0]])
    assert scene.signals.state[0].tolist() == [letter[c] for c in "RRGGGGGYYRRRGGGGGYYR"]

    # Route: lanelet 1 then 2 (the goal), the path from the ego's projection to the lane end.
    assert scene.route.lanes.tolist() == [0, 1]
    np.testing.assert_allclose(scene.route.path_xyz_m[0], [2.0, 0.0, 0.0])
    np.testing.assert_allclose(scene.route.path_xyz_m[-1], [100.0, 0.0, 0.0])
    goal = scene.extra["goal"]
    assert goal["time_step"] == [10, 20]
    assert goal["lanelet_ids"] == [2]
    assert goal["states"][0]["position_xy_m"] == [90.0, 0.0]
    assert goal["route_reaches_goal"] is True
    assert scene.extra["tags"] == ["lane_following", "urban"]
    assert scene.extra["planning_problem_id"] == 7
    assert scene.extra["author"] == "Cordillera tests"


def test_hand_made_scenario_with_the_ego_logged(tmp_path: Path) -> None:
    scene = read_scene(write_scenario(tmp_path / "DEU_Cordillera-1.xml", ego_is_obstacle=True))
    assert scene.tracks.object_id.tolist() == ["10", "11"]
    assert scene.ego_id == "10"
    assert scene.tracks.valid[scene.ego_index].all()
    assert scene.route.lanes.tolist() == [0, 1]
    assert scene.extra["ego_rule"] == "planning problem matched to a logged obstacle"


def test_lane_change_route_moves_to_the_neighbour(tmp_path: Path) -> None:
    """A goal on the neighbour lane: the route changes lanes instead of failing."""
    path = write_scenario(tmp_path / "DEU_Cordillera-1.xml")
    text = path.read_text()
    # Move the goal rectangle's centre from lane 2 (y = 0) onto lane 4 (y = 3.5).
    start = text.index("<goalState>")
    goal = text[start:].replace("<y>0.0</y>", "<y>3.5</y>", 1)
    path.write_text(text[:start] + goal)
    scene = read_scene(path)
    assert scene.route.lanes.tolist()[-1] == 3
    lanes = scene.route.lanes.tolist()
    assert any(
        b in (scene.map.lane_left[a], scene.map.lane_right[a]) for a, b in itertools.pairwise(lanes)
    )
    path_y = scene.route.path_xyz_m[:, 1]
    assert path_y[0] == pytest.approx(0.0) and path_y[-1] == pytest.approx(3.5)
    assert np.all(np.diff(scene.route.path_xyz_m[:, 0]) > 0)  # never runs backwards
    assert scene.extra["goal"]["lanelet_ids"] == [4]


def test_light_states_rules() -> None:
    def light(
        elements: list[tuple[TrafficLightState, int]], offset: int = 0, active: bool = True
    ) -> TrafficLight:
        cycle = TrafficLightCycle(
            [TrafficLightCycleElement(s, d) for s, d in elements], time_offset=offset, active=active
        )
        return TrafficLight(1, np.zeros(2), cycle)

    two = [(TrafficLightState.RED_YELLOW, 2), (TrafficLightState.GREEN, 1)]
    assert light_states(light(two), 5).tolist() == [1, 1, 3, 1, 1]
    assert light_states(light(two, offset=1), 4).tolist() == [3, 1, 1, 3]
    assert light_states(light(two, active=False), 3).tolist() == [0, 0, 0]
    inactive = [(TrafficLightState.INACTIVE, 3)]
    assert light_states(light(inactive), 2).tolist() == [0, 0]
    assert light_states(light(two), 0).shape == (0,)


def test_without_a_planning_problem_the_longest_logged_vehicle_is_the_ego(
    tmp_path: Path, parsed: dict[str, tuple[Any, Any]]
) -> None:
    name = "misc/USA_US101-5_1_T-1.xml"
    text = shared_path("commonroad", name).read_text()
    start, end = text.index("<planningProblem"), text.index("</planningProblem>")
    path = tmp_path / "no_problem.xml"
    path.write_text(text[:start] + text[end + len("</planningProblem>") :])
    scene = read_scene(path)

    def rank(o: Any) -> tuple[int, float, int]:
        states = [o.initial_state, *o.prediction.trajectory.state_list]
        xy = np.array([s.position for s in states])
        travelled = float(np.linalg.norm(np.diff(xy, axis=0), axis=1).sum())
        return (-len(states), -travelled, o.obstacle_id)

    vehicles = [o for o in parsed[name][0].dynamic_obstacles if o.obstacle_type.name == "CAR"]
    assert scene.ego_id == str(min(vehicles, key=rank).obstacle_id)
    assert scene.num_objects == EXPECTED[name][0] - 1  # no added "ego" track
    assert scene.extra["ego_rule"] == "longest-logged vehicle"
    assert "goal" not in scene.extra and "planning_problem_id" not in scene.extra
    ego_path = scene.tracks.xyz_m[scene.ego_index, scene.tracks.valid[scene.ego_index]]
    np.testing.assert_array_equal(scene.route.path_xyz_m, ego_path)
    assert len(scene.route.lanes) >= 1
