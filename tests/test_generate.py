"""The procedural scene generator: determinism, maps, logs, long-tail designs, signals, store.

Geometry checks use shapely (independent of the generator's own numpy box test). Module-scoped
fixtures generate the default and long-tail suites once (~5 s together).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
import shapely

from cordillera.errors import ConfigError
from cordillera.scene.generate import (
    KINDS,
    LAYOUTS,
    SUITES,
    VARIANTS,
    generate_scene,
    generate_suite,
    plan_scene,
)
from cordillera.scene.generate.junctions import intersection
from cordillera.scene.generate.longtail import without_index
from cordillera.scene.generate.signals import cycle_length_s, head_states
from cordillera.scene.generate.traffic import simulate
from cordillera.scene.model import Scene
from cordillera.scene.store import scene_from_bytes, scene_to_bytes
from cordillera.scene.types import ObjectType, RoadLineType, SignalState
from cordillera.viz.bev import box_corners_xy, draw_scene

DECISIONS = {"stop", "yield", "keep_distance", "pass", "gap_search", "adapt_speed", "resume_speed"}


@pytest.fixture(scope="module")
def default_suite() -> list[Scene]:
    return generate_suite("default")


@pytest.fixture(scope="module")
def long_tail() -> list[Scene]:
    return generate_suite("long-tail")


def by_kind(scenes: list[Scene], kind: str) -> Scene:
    return next(s for s in scenes if s.extra["scenario"] == kind)


def ego_accel(scene: Scene) -> np.ndarray:
    """``(T,)`` the ego's longitudinal acceleration from its logged speed, m/s²."""
    speed = np.linalg.norm(scene.tracks.velocity_mps[scene.ego_index], axis=-1)
    return np.gradient(speed, scene.dt_s)


# --- suites, ids, metadata ----------------------------------------------------------------


def test_suites_have_the_promised_members(
    default_suite: list[Scene], long_tail: list[Scene]
) -> None:
    assert [s.extra["scenario"] for s in default_suite] == list(KINDS)
    assert len(default_suite) == 10
    assert len(long_tail) == 20
    assert {s.scene_id for s in long_tail} == {f"gen-{k}-s{n}" for k in VARIANTS for n in range(4)}
    assert len(SUITES["basic"].scenes(0)) == 10
    for kind in KINDS:
        assert kind in SUITES
    for s in default_suite + long_tail:
        assert s.source == "generated"
        assert s.license == "Apache-2.0"
        assert {"layout", "seed", "suite", "scenario"} <= set(s.extra)
        assert s.dt_s == 0.1 and 150 <= s.num_steps <= 201  # 15–20 s at 10 Hz
        assert s.ego_id == "ego"
        assert s.tracks.object_type[s.ego_index] == ObjectType.VEHICLE
        assert s.tracks.valid[s.ego_index].all()
    assert {s.extra["suite"] for s in long_tail} == {"long-tail"}


def test_unknown_names_raise_config_error_listing_valid_ones() -> None:
    with pytest.raises(ConfigError, match="valid suites: default, long-tail, basic"):
        generate_suite("nope")
    with pytest.raises(ConfigError, match="valid kinds: straight, intersection"):
        generate_scene("spiral", 0)


def test_same_seed_is_bit_identical_and_seeds_differ() -> None:
    a, b = generate_scene("intersection", 3), generate_scene("intersection", 3)
    assert scene_to_bytes(a) == scene_to_bytes(b)
    c = generate_scene("intersection", 4)
    assert a.tracks.xyz_m.shape != c.tracks.xyz_m.shape or not np.array_equal(
        a.tracks.xyz_m, c.tracks.xyz_m
    )
    # A scene depends on (kind, seed) only: the same id from two suites has the same arrays.
    d = generate_scene("jaywalker", 1, suite="long-tail")
    e = generate_scene("jaywalker", 1, suite="jaywalker")
    assert np.array_equal(d.tracks.xyz_m, e.tracks.xyz_m)
    assert zlib.crc32(d.tracks.xyz_m.tobytes()) == zlib.crc32(e.tracks.xyz_m.tobytes())


def test_store_round_trip_is_bit_identical(default_suite: list[Scene]) -> None:
    for scene in default_suite:
        data = scene_to_bytes(scene)
        back = scene_from_bytes(data)
        assert scene_to_bytes(back) == data
        assert np.array_equal(back.tracks.xyz_m, scene.tracks.xyz_m)
        assert back.extra == dict(scene.extra)


def test_drawing_works(default_suite: list[Scene], tmp_path: Path) -> None:
    for scene in [*default_suite[:5], by_kind(default_suite, "jaywalker")]:
        out = draw_scene(scene, tmp_path / f"{scene.scene_id}.png")
        assert out.stat().st_size > 10_000


# --- maps ---------------------------------------------------------------------------------


def test_every_layout_has_a_full_vector_map(default_suite: list[Scene]) -> None:
    expect = {  # layout: (crosswalks, stop lines, stop-sign rows, signal heads)
        "straight": (0, 0, 0, 0),
        "intersection": (4, 8, 0, 16),
        "t-junction": (1, 1, 1, 0),
        "merge": (0, 0, 0, 0),
        "roundabout": (4, 0, 0, 0),
    }
    for kind, (n_cw, n_sl, n_ss, n_sig) in expect.items():
        m = by_kind(default_suite, kind).map
        scene = by_kind(default_suite, kind)
        assert m.num_lanes >= 10 and len(m.road_edges) and len(m.drivable_areas)
        types = set(m.road_line_type.tolist())
        assert {RoadLineType.SOLID_WHITE, RoadLineType.DOUBLE_SOLID_YELLOW} <= types, kind
        if kind not in ("t-junction", "roundabout"):  # one lane each way: nothing to dash
            assert RoadLineType.DASHED_WHITE in types, kind
        assert np.all(np.isfinite(m.lane_speed_limit_mps)), kind
        assert (
            len(m.crosswalks),
            len(m.stop_lines),
            len(m.stop_sign_lane),
            len(scene.signals.lane),
        ) == (n_cw, n_sl, n_ss, n_sig), kind
    t = by_kind(default_suite, "t-junction").map
    minor = int(np.nonzero(t.lane_id == "S_b0")[0][0])
    assert t.stop_sign_lane.tolist() == [minor] and t.stop_line_lane.tolist() == [minor]


def on_border(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
    """Whether point ``p`` lies on the bounding box ``[lo, hi]`` of the map (within 1 m)."""
    return bool(np.min(np.abs(np.concatenate([p - lo, hi - p]))) < 1.0)


def test_lane_graph_is_connected_and_neighbours_consistent(default_suite: list[Scene]) -> None:
    for kind in LAYOUTS:
        m = by_kind(default_suite, kind).map
        pts = m.lanes.points_m[:, :2]
        lo, hi = pts.min(0), pts.max(0)
        has_succ = np.zeros(m.num_lanes, bool)
        has_pred = np.zeros(m.num_lanes, bool)
        has_succ[m.lane_successors[:, 0]] = True
        has_pred[m.lane_successors[:, 1]] = True
        for k in range(m.num_lanes):
            lane = m.lanes[k][:, :2]
            ends = [on_border(lane[-1], lo, hi), on_border(lane[0], lo, hi)]
            assert has_succ[k] or ends[0], f"{kind}: {m.lane_id[k]} dead-ends inside the map"
            assert has_pred[k] or ends[1], f"{kind}: {m.lane_id[k]} starts inside the map"
        for a, b in m.lane_successors:  # successors continue where their predecessor ends
            assert np.linalg.norm(m.lanes[a][-1, :2] - m.lanes[b][0, :2]) < 0.05
        for a in range(m.num_lanes):
            b = m.lane_left[a]
            if b < 0:
                continue
            assert m.lane_right[b] == a
            da, db = np.diff(m.lanes[a][:2, :2], axis=0)[0], np.diff(m.lanes[b][:2, :2], axis=0)[0]
            assert da @ db > 0.9 * np.linalg.norm(da) * np.linalg.norm(db)  # same direction
            # the left neighbour lies to the left of the lane's first segment
            rel = m.lanes[b][0, :2] - m.lanes[a][0, :2]
            assert da[0] * rel[1] - da[1] * rel[0] > 0


def test_merge_ramp_joins_the_rightmost_lane(default_suite: list[Scene]) -> None:
    m = by_kind(default_suite, "merge").map
    idx = {str(n): i for i, n in enumerate(m.lane_id)}
    succ = {(int(a), int(b)) for a, b in m.lane_successors}
    assert (idx["ramp_1"], idx["seg2_f1"]) in succ  # ramp -> rightmost eastbound lane
    assert (idx["seg1_f1"], idx["seg2_f1"]) in succ  # ... as the main lane itself does
    assert m.lane_right[idx["seg2_f0"]] == idx["seg2_f1"]


# --- logs ---------------------------------------------------------------------------------


def overlapping_pairs(scene: Scene) -> list[tuple[int, str, str, float]]:
    """(step, id, id, area) of every pair of valid boxes overlapping by more than 1 cm²."""
    tr = scene.tracks
    found = []
    for t in range(scene.num_steps):
        idx = np.nonzero(tr.valid[:, t])[0]
        polys = shapely.polygons(
            box_corners_xy(tr.xyz_m[idx, t, :2], tr.heading_rad[idx, t], tr.size_lwh_m[idx, t, :2])
        )
        a, b = shapely.STRtree(polys).query(polys, predicate="intersects")
        keep = a < b
        area = shapely.area(shapely.intersection(polys[a[keep]], polys[b[keep]]))
        for i, j, ar in zip(a[keep], b[keep], area, strict=True):
            if ar > 1e-4:
                found.append((t, str(tr.object_id[idx[i]]), str(tr.object_id[idx[j]]), ar))
    return found


def test_logs_are_collision_free(default_suite: list[Scene], long_tail: list[Scene]) -> None:
    for scene in default_suite + long_tail[::3]:
        assert overlapping_pairs(scene) == [], scene.scene_id


def test_vehicles_stay_on_drivable_areas(default_suite: list[Scene]) -> None:
    for scene in default_suite:
        m = scene.map
        area = shapely.union_all(
            [shapely.Polygon(m.drivable_areas[k][:, :2]) for k in range(len(m.drivable_areas))]
        ).buffer(1e-3)
        tr = scene.tracks
        sel = tr.valid & (tr.object_type == ObjectType.VEHICLE)[:, None]
        xy = tr.xyz_m[sel][:, :2]
        inside = shapely.contains_xy(area, xy[:, 0], xy[:, 1])
        assert inside.all(), f"{scene.scene_id}: {xy[~inside][:3]}"


def test_scenes_are_populated_with_realistic_objects(default_suite: list[Scene]) -> None:
    types = np.concatenate([s.tracks.object_type for s in default_suite])
    for t in (ObjectType.VEHICLE, ObjectType.PEDESTRIAN, ObjectType.CYCLIST):
        assert (types == t).sum() >= 3, t
    for s in default_suite:
        tr = s.tracks
        size = tr.size_lwh_m[tr.valid]
        kind = np.broadcast_to(tr.object_type[:, None], tr.valid.shape)[tr.valid]
        ped, cyc = size[kind == ObjectType.PEDESTRIAN], size[kind == ObjectType.CYCLIST]
        assert np.allclose(ped, [0.6, 0.6, 1.75]) if len(ped) else True
        assert np.allclose(cyc, [1.8, 0.6, 1.7]) if len(cyc) else True
        veh = size[kind == ObjectType.VEHICLE]
        assert np.all((veh[:, 0] >= 4.0) & (veh[:, 0] <= 12.0) & (veh[:, 1] >= 1.7))
        # heading follows velocity wherever an object moves
        moving = tr.valid & (np.linalg.norm(tr.velocity_mps, axis=-1) > 0.5)
        h = np.arctan2(tr.velocity_mps[..., 1], tr.velocity_mps[..., 0])
        assert np.allclose(np.angle(np.exp(1j * (h - tr.heading_rad)))[moving], 0, atol=1e-6)


def test_route_extends_beyond_the_ego_log(default_suite: list[Scene]) -> None:
    for s in default_suite:
        path = s.route.path_xyz_m[:, :2]
        last = s.tracks.xyz_m[s.ego_index, -1, :2]
        k = int(np.argmin(np.linalg.norm(path - last, axis=1)))
        assert np.linalg.norm(path[k] - last) < 4.0, s.scene_id  # the ego drove the route
        rest = np.linalg.norm(np.diff(path[k:], axis=0), axis=1).sum()
        assert rest > 20.0, s.scene_id
        assert len(s.route.lanes) >= 2


# --- long-tail designs --------------------------------------------------------------------


def test_long_tail_cause_is_near_and_the_ego_brakes_after_it(long_tail: list[Scene]) -> None:
    rows = []
    for s in long_tail:
        x = s.extra
        assert x["designed_decision"] in DECISIONS and x["designed_lateral_decision"] == "keep_lane"
        cid = str(x["designed_cause_object_id"])
        c = int(np.nonzero(s.tracks.object_id == cid)[0][0])
        k = round(float(x["designed_event_time_s"]) / s.dt_s)
        assert s.tracks.valid[c, k]
        dist = float(np.linalg.norm(s.tracks.xyz_m[c, k, :2] - s.tracks.xyz_m[s.ego_index, k, :2]))
        acc = ego_accel(s)
        before = float(acc[max(k - 10, 0) : k].min(initial=0.0))  # the second before the event
        after = float(acc[k : k + 40].min())  # the 4 s after it
        rows.append((s.scene_id, round(dist, 1), round(before, 2), round(after, 2)))
        assert dist < 80.0, rows[-1]
        assert after < -1.0 and after < before - 0.5, rows[-1]
        if x["designed_decision"] == "stop":  # the ego comes to a standstill
            speed = np.linalg.norm(s.tracks.velocity_mps[s.ego_index, k:], axis=-1)
            assert speed.min() < 0.3, rows[-1]
    kinds = {s.extra["scenario"] for s in long_tail}
    assert kinds == set(VARIANTS)
    cause_types = {
        s.extra["scenario"]: int(
            s.tracks.object_type[s.tracks.object_id == s.extra["designed_cause_object_id"]][0]
        )
        for s in long_tail
    }
    assert cause_types["jaywalker"] == ObjectType.PEDESTRIAN


@pytest.mark.parametrize("kind", list(VARIANTS))
def test_without_the_cause_the_ego_would_have_continued(kind: str) -> None:
    real, design = plan_scene(kind, 0)
    cid = str(design["designed_cause_object_id"])
    k = round(float(design["designed_event_time_s"]) / real.plan.dt_s)
    e = real.plan.ego
    with_cause = real.sim.a_mps2[e, k : k + 40].min()
    alone = simulate(real.plan.without({cid}))
    without = alone.a_mps2[without_index(real.plan, cid), k : k + 40].min()
    assert with_cause < -1.0 and without > -0.6, (with_cause, without)
    # the binding cause of the ego's braking is the designed object
    assert (real.sim.cause[e, k : k + 40] == real.plan.index(cid)).any()


def test_jaywalker_emerges_from_behind_a_parked_vehicle(default_suite: list[Scene]) -> None:
    s = by_kind(default_suite, "jaywalker")
    tr = s.tracks
    ped = int(np.nonzero(tr.object_id == s.extra["designed_cause_object_id"])[0][0])
    k = round(float(s.extra["designed_event_time_s"]) / s.dt_s)
    assert np.linalg.norm(tr.velocity_mps[ped, k - 5]) == 0.0  # standing, hidden
    assert np.linalg.norm(tr.velocity_mps[ped, k + 10]) > 1.0  # then walking out
    parked = (tr.object_type == ObjectType.VEHICLE) & (np.abs(tr.velocity_mps).max((1, 2)) == 0)
    d = np.linalg.norm(tr.xyz_m[parked, k, :2] - tr.xyz_m[ped, k, :2], axis=-1)
    assert d.min() < 5.0  # a parked vehicle right beside it
    x_ego = tr.xyz_m[s.ego_index, k, 0]
    assert x_ego < tr.xyz_m[parked, k, 0][np.argmin(d)] < tr.xyz_m[ped, k, 0]  # between them


# --- signals ------------------------------------------------------------------------------


def test_signals_cycle_without_conflicting_greens(default_suite: list[Scene]) -> None:
    lay = intersection(through_green_s=12.0, left_green_s=6.0)
    steps = round(cycle_length_s(lay) / 0.1)
    states = head_states(lay, steps, 0.1, 0.0)
    allowed = {(3, 2), (2, 1), (1, 3)}  # green -> yellow -> red -> green
    for row in states:
        assert set(row.tolist()) == {SignalState.RED, SignalState.YELLOW, SignalState.GREEN}
        change = row[1:] != row[:-1]
        assert {
            (int(a), int(b)) for a, b in zip(row[:-1][change], row[1:][change], strict=True)
        } <= allowed
    lanes = [shapely.LineString(lay.lane_paths[h.lane].xy_m) for h in lay.heads]
    starts = [lay.lane_paths[h.lane].xy_m[0] for h in lay.heads]
    green = states == SignalState.GREEN
    conflicts = 0
    for a in range(len(lanes)):
        for b in range(a + 1, len(lanes)):
            if np.allclose(starts[a], starts[b]) or not lanes[a].intersects(lanes[b]):
                continue  # same approach lane, or paths that never meet
            conflicts += 1
            assert not (green[a] & green[b]).any(), (lay.heads[a], lay.heads[b])
    assert conflicts > 20
    scene = by_kind(default_suite, "intersection")
    assert len(np.unique(scene.signals.state)) >= 2  # phases change within the scene


def test_pedestrians_start_crossing_only_on_their_parallel_green(
    default_suite: list[Scene],
) -> None:
    checked = 0
    for s in default_suite:
        if not len(s.signals.lane):
            continue
        m, tr = s.map, s.tracks
        road = shapely.union_all(
            [shapely.Polygon(m.drivable_areas[k][:, :2]) for k in range(len(m.drivable_areas))]
        )
        lane_of = {str(m.lane_id[s.signals.lane[h]]): h for h in range(len(s.signals.lane))}
        for p in np.nonzero(tr.object_type == ObjectType.PEDESTRIAN)[0]:
            xy = tr.xyz_m[p, :, :2]
            on = tr.valid[p] & shapely.contains_xy(road, xy[:, 0], xy[:, 1])
            steps = np.nonzero(on[1:] & ~on[:-1])[0] + 1  # steps stepping onto the road
            for k in steps:
                # Crossing north-south (|dy| > |dx|) runs parallel to NS traffic.
                v = tr.velocity_mps[p, k]
                arm = "S" if abs(v[1]) > abs(v[0]) else "E"
                head = lane_of[f"{arm}_thr0"]
                assert s.signals.state[head, k] == SignalState.GREEN, (s.scene_id, p, k)
                checked += 1
    assert checked >= 1
