"""Kinematic meta-action labeler: hand-built trajectories with known answers, invariances, logs."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_path
from cordillera.errors import ConfigError, CordilleraError
from cordillera.policy.meta_action_lanes import junction_lanes, label_lanes
from cordillera.policy.meta_actions import (
    NO_LABEL,
    LaneAction,
    LateralAction,
    LateralDecision,
    LongitudinalAction,
    LongitudinalDecision,
    MetaActionConfig,
    Segment,
    UnknownLabelError,
    debounce,
    format_label,
    label_kinematic,
    parse_label,
    segments,
    summarize,
)
from cordillera.scene.model import RoadMap, Scene
from cordillera.scene.polylines import Polylines
from cordillera.scene.readers import read_scene
from cordillera.scene.types import LaneType
from scene_builders import LANE_WIDTH_M, Obj, straight_road_scene

DT = 0.1
CFG = MetaActionConfig()
MIN_STEPS = round(CFG.min_segment_s / DT)
F64 = npt.NDArray[np.float64]
Lon, Lat, Lane = LongitudinalAction, LateralAction, LaneAction


def drive(
    speed_mps: F64, curvature_1pm: F64, start_xy: tuple[float, float] = (0.0, 0.0)
) -> tuple[F64, F64]:
    """Positions ``(T, 2)`` and headings ``(T,)`` of a unicycle from per-step speed and
    curvature, starting along +x (exact arcs, so curvature is what the labeler should see)."""
    heading = np.concatenate([[0.0], np.cumsum(speed_mps * curvature_1pm * DT)[:-1]])
    step = speed_mps * DT
    k = curvature_1pm
    with np.errstate(divide="ignore", invalid="ignore"):
        dx = np.where(k != 0, (np.sin(heading + k * step) - np.sin(heading)) / k, 0.0)
        dy = np.where(k != 0, (np.cos(heading) - np.cos(heading + k * step)) / k, 0.0)
    dx = np.where(k != 0, dx, step * np.cos(heading))
    dy = np.where(k != 0, dy, step * np.sin(heading))
    xy = np.array(start_xy) + np.concatenate([[[0.0, 0.0]], np.cumsum(np.stack([dx, dy], 1), 0)])
    return xy[:-1], heading


def ramp(v0: float, a: float, n: int) -> F64:
    """Speeds from ``v0`` changing by ``a`` m/s² for n steps, floored at 0 when braking."""
    v = v0 + a * DT * np.arange(n)
    return (np.maximum(v, 0.0) if v0 >= 0 else v).astype(np.float64)


def lon_lat(xy: F64, heading: F64) -> tuple[list[int], list[int]]:
    lab = label_kinematic(xy[None], heading[None], DT)
    return lab.longitudinal[0].tolist(), lab.lateral[0].tolist()


def run_labels(row: torch.Tensor) -> list[int]:
    return [s.label for s in segments(row)[0]]


# --- vocabularies ------------------------------------------------------------------------


def test_vocabularies_match_vision_and_fit_int8() -> None:
    assert [m.text for m in Lon] == [
        "gentle_acceleration",
        "strong_acceleration",
        "maintain_speed",
        "gentle_deceleration",
        "strong_deceleration",
        "stop",
        "reverse",
    ]
    assert len(Lat) == len(Lane) == 7
    assert [m.text for m in LongitudinalDecision] == [
        "stop",
        "yield",
        "pass",
        "gap_search",
        "keep_distance",
        "adapt_speed",
        "resume_speed",
    ]
    assert [m.text for m in LateralDecision] == [
        "lane_change",
        "nudge",
        "turn",
        "merge",
        "keep_lane",
    ]
    for vocab in (Lon, Lat, Lane, LongitudinalDecision, LateralDecision):
        assert {int(m) for m in vocab} == set(range(len(vocab)))
        for m in vocab:
            assert parse_label(vocab, format_label(m)) is m
            assert vocab.parse(m.name) is m


def test_parse_is_forgiving_and_fails_loudly() -> None:
    assert LongitudinalDecision.parse("Keep distance") is LongitudinalDecision.KEEP_DISTANCE
    assert LongitudinalDecision.parse("gap-search") is LongitudinalDecision.GAP_SEARCH
    assert LongitudinalDecision.parse("overtake") is LongitudinalDecision.PASS
    assert LongitudinalDecision.parse("pass/overtake") is LongitudinalDecision.PASS
    assert LateralDecision.parse(" KEEP_LANE ") is LateralDecision.KEEP_LANE
    with pytest.raises(UnknownLabelError, match=r"'swerve'.*keep_lane"):
        LateralDecision.parse("swerve")
    with pytest.raises(ValueError):  # UnknownLabelError is a ValueError too
        Lane.parse("overtake")


def test_config_is_validated_with_the_bad_value() -> None:
    with pytest.raises(ConfigError, match=r"stop_speed_mps.*-0\.3"):
        MetaActionConfig(stop_speed_mps=-0.3)
    with pytest.raises(ConfigError, match=r"gentle_acceleration_mps2 \(3\.0\)"):
        MetaActionConfig(gentle_acceleration_mps2=3.0)
    with pytest.raises(ConfigError, match="nan"):
        MetaActionConfig(min_segment_s=float("nan"))
    with pytest.raises(ConfigError, match="turn_min_heading_change_rad"):
        MetaActionConfig(turn_min_heading_change_rad=4.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        CFG.stop_speed_mps = 1.0  # type: ignore[misc]


# --- longitudinal and lateral ----------------------------------------------------------


def test_constant_speed_straight() -> None:
    lon, lat = lon_lat(*drive(np.full(80, 10.0), np.zeros(80)))
    assert set(lon) == {Lon.MAINTAIN_SPEED} and set(lat) == {Lat.GO_STRAIGHT}


@pytest.mark.parametrize(
    ("v0", "a", "want"),
    [
        (5.0, 1.0, Lon.GENTLE_ACCELERATION),
        (2.0, 3.0, Lon.STRONG_ACCELERATION),
        (15.0, -1.0, Lon.GENTLE_DECELERATION),
        (25.0, -3.5, Lon.STRONG_DECELERATION),
    ],
)
def test_acceleration_levels(v0: float, a: float, want: LongitudinalAction) -> None:
    lon, lat = lon_lat(*drive(ramp(v0, a, 60), np.zeros(60)))
    assert set(lon) == {want} and set(lat) == {Lat.GO_STRAIGHT}


def test_come_to_a_stop_and_wait() -> None:
    v = np.concatenate([ramp(8.0, -1.5, 54), np.zeros(40)])  # stands from 5.3 s
    lon, _ = lon_lat(*drive(v, np.zeros(len(v))))
    assert run_labels(torch.tensor([lon])) == [Lon.GENTLE_DECELERATION, Lon.STOP]
    assert all(x == Lon.STOP for x in lon[58:])  # every standing step after the fits settle
    assert lon.index(Lon.STOP) == pytest.approx(53, abs=3)


def test_reverse_straight_and_steering() -> None:
    lon, lat = lon_lat(*drive(np.full(60, -2.0), np.zeros(60)))
    assert set(lon) == {Lon.REVERSE} and set(lat) == {Lat.GO_STRAIGHT}
    # Backing with the wheels turned left: the heading turns clockwise.
    lon, lat = lon_lat(*drive(np.full(60, -2.0), np.full(60, 0.1)))
    assert set(lon) == {Lon.REVERSE} and set(lat) == {Lat.REVERSE_LEFT}
    _, lat = lon_lat(*drive(np.full(60, -2.0), np.full(60, -0.1)))
    assert set(lat) == {Lat.REVERSE_RIGHT}


@pytest.mark.parametrize(
    ("speed", "radius_m", "want"),
    [
        (10.0, 50.0, Lat.STEER_LEFT),
        (10.0, -50.0, Lat.STEER_RIGHT),
        (5.0, 12.0, Lat.SHARP_STEER_LEFT),
        (5.0, -12.0, Lat.SHARP_STEER_RIGHT),
    ],
)
def test_constant_curvature(speed: float, radius_m: float, want: LateralAction) -> None:
    xy, heading = drive(np.full(60, speed), np.full(60, 1.0 / radius_m))
    lab = label_kinematic(xy[None], heading[None], DT)
    assert set(lab.lateral[0].tolist()) == {want}
    assert set(lab.longitudinal[0].tolist()) == {Lon.MAINTAIN_SPEED}
    kappa = lab.kinematics.curvature_1pm[0, 10:-10]
    assert torch.allclose(kappa, torch.full_like(kappa, 1.0 / radius_m), rtol=0.02)


def test_gaps_get_no_label_and_split_segments() -> None:
    xy, heading = drive(np.full(80, 10.0), np.zeros(80))
    valid = np.ones(80, bool)
    valid[30:40] = False
    xy[30:40] = np.nan  # placeholders must not leak into the fits
    lab = label_kinematic(xy[None], heading[None], DT, valid[None])
    lon = lab.longitudinal[0]
    assert (lon[30:40] == NO_LABEL).all() and not lab.valid[0, 30:40].any()
    assert segments(lon)[0] == [
        Segment(0, 30, Lon.MAINTAIN_SPEED),
        Segment(40, 80, Lon.MAINTAIN_SPEED),
    ]


def test_degenerate_shapes_and_bad_inputs() -> None:
    for b, t in ((0, 10), (2, 0), (2, 1)):
        xy, heading = np.zeros((b, t, 2)), np.zeros((b, t))
        kin = label_kinematic(xy, heading, DT)
        lanes = label_lanes(xy, heading, DT, None, TWO_LANE_MAP)
        assert kin.longitudinal.shape == lanes.lane.shape == (b, t)
        assert (kin.longitudinal == NO_LABEL).all()  # one sample has no speed
        assert summarize(kin, lanes).longitudinal.tolist() == [NO_LABEL] * b
    with pytest.raises(CordilleraError, match=r"xy_m must be \(B, T, 2\)"):
        label_kinematic(np.zeros((5, 2)), np.zeros(5), DT)
    with pytest.raises(CordilleraError, match="valid must be"):
        label_kinematic(np.zeros((1, 5, 2)), np.zeros((1, 5)), DT, np.ones((1, 5)))
    with pytest.raises(CordilleraError, match="dt_s"):
        label_kinematic(np.zeros((1, 5, 2)), np.zeros((1, 5)), 0.0)


# --- lanes ---------------------------------------------------------------------------------


def lane_change(y0: float, dy: float, duration_s: float = 4.0, n: int = 100) -> tuple[F64, F64]:
    """15 m/s along +x with a cosine lateral move of ``dy`` metres starting at 3 s."""
    t = np.arange(n) * DT
    tau = np.clip((t - 3.0) / duration_s, 0.0, 1.0)
    y = y0 + dy * (1 - np.cos(np.pi * tau)) / 2
    dydt = dy * np.pi / (2 * duration_s) * np.sin(np.pi * tau) * ((t > 3.0) & (tau < 1.0))
    return np.stack([15.0 * t, y], 1), np.arctan2(dydt, 15.0)


TWO_LANE_MAP = straight_road_scene(Obj(0.0)).map  # lanes at y = 0 and y = 3.5, one way


@pytest.mark.parametrize(
    ("y0", "dy", "want"),
    [
        (0.0, LANE_WIDTH_M, Lane.LEFT_LANE_CHANGE),
        (LANE_WIDTH_M, -LANE_WIDTH_M, Lane.RIGHT_LANE_CHANGE),
        (0.0, 0.8, Lane.SLIGHT_SHIFT_LEFT),
        (LANE_WIDTH_M, -0.8, Lane.SLIGHT_SHIFT_RIGHT),
        (0.0, 0.0, None),
    ],
)
def test_lane_change_and_slight_shift(y0: float, dy: float, want: LaneAction | None) -> None:
    xy, heading = lane_change(y0, dy)
    lanes = label_lanes(xy[None], heading[None], DT, None, TWO_LANE_MAP)
    expected = [Lane.LANE_KEEP] if want is None else [Lane.LANE_KEEP, want, Lane.LANE_KEEP]
    assert run_labels(lanes.lane[0]) == expected
    assert lanes.valid.all()
    if want is not None:
        (seg,) = (s for s in segments(lanes.lane[0])[0] if s.label == want)
        assert 25 <= seg.start <= 40 and 55 <= seg.end <= 75  # the move spans 3 s .. 7 s
    summary = summarize(label_kinematic(xy[None], heading[None], DT), lanes)
    assert summary.row(0)[2] == (Lane.LANE_KEEP if want is None else want)
    if want in (Lane.LEFT_LANE_CHANGE, Lane.RIGHT_LANE_CHANGE):
        assert lanes.lane_index[0, 0] != lanes.lane_index[0, -1]


def lane_map(lines: list[F64], edges: list[tuple[int, int]]) -> RoadMap:
    n = len(lines)
    road_map = dataclasses.replace(
        RoadMap.empty(),
        lane_id=np.array([f"lane{i}" for i in range(n)]),
        lanes=Polylines.from_list(lines),
        lane_type=np.full(n, int(LaneType.VEHICLE), np.int8),
        lane_speed_limit_mps=np.full(n, np.nan),
        lane_successors=np.array(edges, np.int32).reshape(-1, 2),
        lane_left=np.full(n, -1, np.int32),
        lane_right=np.full(n, -1, np.int32),
    )
    road_map.validate()
    return road_map


def junction(radius_m: float, side: float, branch: bool) -> RoadMap:
    """An approach lane along +x ending at the origin, a quarter-circle connector turning to
    ``side`` (+1 left, -1 right) and its exit lane; with ``branch``, also a straight
    connector and exit, making the approach lane a fork."""
    approach = np.stack([np.linspace(-150, 0, 76), np.zeros(76)], 1)
    th = np.linspace(0, np.pi / 2, 40)
    arc = np.stack([radius_m * np.sin(th), side * radius_m * (1 - np.cos(th))], 1)
    exit_ = np.stack([np.full(76, radius_m), side * np.linspace(radius_m, radius_m + 150, 76)], 1)
    lines, edges = [approach, arc, exit_], [(0, 1), (1, 2)]
    if branch:
        lines += [np.array([[0.0, 0.0], [30.0, 0.0]]), np.array([[30.0, 0.0], [200.0, 0.0]])]
        edges += [(0, 3), (3, 4)]
    return lane_map(lines, edges)


def turn_trajectory(radius_m: float, side: float, speed: float = 7.0) -> tuple[F64, F64]:
    """30 m straight to the junction, the quarter circle, then 30 m out."""
    n_arc = round(np.pi / 2 * radius_m / speed / DT)
    n_straight = round(30.0 / speed / DT)
    k = np.concatenate([np.zeros(n_straight), np.full(n_arc, side / radius_m), np.zeros(40)])
    return drive(np.full(len(k), speed), k, start_xy=(-30.0, 0.0))


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_turn_through_a_junction(side: float) -> None:
    want = Lane.TURN_LEFT if side > 0 else Lane.TURN_RIGHT
    xy, heading = turn_trajectory(15.0, side)
    road_map = junction(15.0, side, branch=True)
    assert junction_lanes(road_map).tolist() == [True, True, False, True, False]
    lanes = label_lanes(xy[None], heading[None], DT, None, road_map)
    assert run_labels(lanes.lane[0]) == [Lane.LANE_KEEP, want, Lane.LANE_KEEP]
    assert lanes.valid.all()
    kin = label_kinematic(xy[None], heading[None], DT)
    assert summarize(kin, lanes).row(0) == (Lon.MAINTAIN_SPEED, Lat.GO_STRAIGHT, want)
    (turn,) = (s for s in segments(lanes.lane[0])[0] if s.label == want)
    sharp = Lat.SHARP_STEER_LEFT if side > 0 else Lat.SHARP_STEER_RIGHT
    assert (kin.lateral[0, turn.start : turn.end] == sharp).float().mean() > 0.8


def test_bends_need_a_junction_or_intersection_tightness() -> None:
    # A 30 m radius turn (gentler than a sharp steer) is a turn at a fork ...
    xy, heading = turn_trajectory(30.0, 1.0)
    at_fork = label_lanes(xy[None], heading[None], DT, None, junction(30.0, 1.0, branch=True))
    assert Lane.TURN_LEFT in at_fork.lane[0].tolist()
    # ... but the same bend on a single road is lane keeping (the lateral label steers).
    on_road = label_lanes(xy[None], heading[None], DT, None, junction(30.0, 1.0, branch=False))
    assert set(on_road.lane[0].tolist()) == {Lane.LANE_KEEP}
    assert Lat.STEER_LEFT in label_kinematic(xy[None], heading[None], DT).lateral[0].tolist()
    # A 15 m radius quarter turn is a turn even on a plain chain (dedicated turn lanes).
    xy, heading = turn_trajectory(15.0, 1.0)
    chain = label_lanes(xy[None], heading[None], DT, None, junction(15.0, 1.0, branch=False))
    assert Lane.TURN_LEFT in chain.lane[0].tolist()


def test_map_without_lanes_falls_back_to_lane_keep_without_validity() -> None:
    xy, heading = turn_trajectory(15.0, 1.0)
    lanes = label_lanes(xy[None], heading[None], DT, None, RoadMap.empty())
    assert set(lanes.lane[0].tolist()) == {Lane.LANE_KEEP}
    assert not lanes.valid.any() and (lanes.lane_index == -1).all()
    summary = summarize(label_kinematic(xy[None], heading[None], DT), lanes)
    assert summary.row(0)[2] is Lane.LANE_KEEP and not summary.lane_valid[0]
    assert not summarize(label_kinematic(xy[None], heading[None], DT)).lane_valid[0]


# --- robustness and invariances ------------------------------------------------------------


def hand_built() -> list[tuple[F64, F64]]:
    """Trajectories of 100 steps covering every family's labels."""
    n = 100
    return [
        drive(np.full(n, 10.0), np.zeros(n)),
        drive(ramp(5.0, 1.0, n), np.zeros(n)),
        drive(ramp(25.0, -3.0, n), np.zeros(n)),
        drive(np.concatenate([ramp(8.0, -1.5, 54), np.zeros(46)]), np.zeros(n)),
        drive(np.full(n, 10.0), np.full(n, 0.02)),
        drive(np.full(n, 5.0), np.full(n, -1 / 12)),
        lane_change(0.0, LANE_WIDTH_M),
        lane_change(0.0, 0.8),
    ]


def test_position_noise_of_5cm_leaves_labels_unchanged() -> None:
    rng = np.random.default_rng(7)
    xy = np.stack([c[0] for c in hand_built()])
    heading = np.stack([c[1] for c in hand_built()])
    noisy = xy + rng.normal(0.0, 0.05, xy.shape)
    for positions in (xy, noisy):
        assert np.isfinite(positions).all()
    clean_k, noisy_k = (label_kinematic(p, heading, DT) for p in (xy, noisy))
    clean_l, noisy_l = (label_lanes(p, heading, DT, None, TWO_LANE_MAP) for p in (xy, noisy))
    for clean, dirty in (
        (clean_k.longitudinal, noisy_k.longitudinal),
        (clean_k.lateral, noisy_k.lateral),
        (clean_l.lane[6:], noisy_l.lane[6:]),  # the lane rows: the others leave the map
    ):
        for a, b in zip(segments(clean), segments(dirty), strict=True):
            assert [s.label for s in a] == [s.label for s in b]
        assert (clean == dirty).float().mean() >= 0.9
    assert (clean_k.longitudinal == noisy_k.longitudinal).float().mean() >= 0.97


def test_pose_timing_and_yaw_glitches_are_ignored() -> None:
    xy, heading = drive(np.full(80, 10.0), np.zeros(80))
    pose = xy.copy()
    pose[76] += (-1.5, 0.8)  # one bad pose near the end, where fits are one-sided
    skipped = xy.copy()
    skipped[75:] += (1.0, 0.0)  # a skipped sample: every later position is one step ahead
    flipped = heading.copy()
    flipped[40] += np.pi  # a tracker's yaw flip
    lab = label_kinematic(np.stack([pose, skipped, xy]), np.stack([heading, heading, flipped]), DT)
    kin = lab.kinematics  # without the robust refit: 15-19 m/s², 2.6 m/s, 0.5 rad/s errors
    assert kin.accel_mps2.abs().max() < 0.1 and (kin.speed_mps - 10).abs().max() < 0.1
    assert kin.yaw_rate_rps.abs().max() < 0.02
    assert set(lab.longitudinal.flatten().tolist()) == {Lon.MAINTAIN_SPEED}
    assert set(lab.lateral.flatten().tolist()) == {Lat.GO_STRAIGHT}


def test_no_flicker_on_a_threshold() -> None:
    # Acceleration hovering around the gentle threshold with noise: raw labels would flicker.
    rng = np.random.default_rng(3)
    a = 0.5 + 0.15 * np.sin(np.arange(200) * 0.9) + rng.normal(0, 0.1, 200)
    v = 5.0 + np.cumsum(a) * DT
    xy, heading = drive(v, np.zeros(200))
    lab = label_kinematic(xy[None] + rng.normal(0, 0.05, (1, 200, 2)), heading[None], DT)
    for row in (lab.longitudinal, lab.lateral):
        assert all(s.end - s.start >= MIN_STEPS for s in segments(row)[0])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-1, 6), min_size=1, max_size=60),
    st.integers(1, 12),
)
def test_debounce_leaves_no_short_run_inside_a_stretch(labels: list[int], min_steps: int) -> None:
    lab = torch.tensor([labels])
    out = debounce(lab, min_steps)[0].tolist()
    assert [x < 0 for x in out] == [x < 0 for x in labels]  # invalid steps stay invalid
    assert set(out) - {NO_LABEL} <= set(labels)
    stretches = [s for s in segments(torch.tensor([[0 if x >= 0 else -1 for x in labels]]))[0]]
    for seg in segments(torch.tensor([out]))[0]:
        (stretch,) = (s for s in stretches if s.start <= seg.start < s.end)
        assert seg.end - seg.start >= min_steps or (seg.start, seg.end) == stretch[:2]


def test_debounce_removes_one_step_flicker() -> None:
    lab = torch.tensor([[2] * 15 + [0, 2, 0, 2] + [0] * 15])
    assert debounce(lab, 10)[0].tolist() == [2] * 19 + [0] * 15


def test_batch_equals_rows_one_by_one() -> None:
    cases = hand_built()
    xy = np.stack([c[0] for c in cases])
    heading = np.stack([c[1] for c in cases])
    valid = np.ones(xy.shape[:2], bool)
    valid[1, :20] = False
    valid[4, 70:] = False
    kin = label_kinematic(xy, heading, DT, valid)
    lanes = label_lanes(xy, heading, DT, valid, TWO_LANE_MAP)
    for i in range(len(cases)):
        one = label_kinematic(xy[i : i + 1], heading[i : i + 1], DT, valid[i : i + 1])
        assert torch.equal(kin.longitudinal[i], one.longitudinal[0])
        assert torch.equal(kin.lateral[i], one.lateral[0])
        one_l = label_lanes(xy[i : i + 1], heading[i : i + 1], DT, valid[i : i + 1], TWO_LANE_MAP)
        assert torch.equal(lanes.lane[i], one_l.lane[0])
    # numpy, float64 torch and float32 torch inputs agree
    as_torch = label_kinematic(torch.from_numpy(xy), torch.from_numpy(heading), DT, valid)
    assert torch.equal(as_torch.longitudinal, kin.longitudinal)
    f32 = label_kinematic(torch.from_numpy(xy).float(), torch.from_numpy(heading).float(), DT)
    assert f32.longitudinal.dtype == torch.int8
    assert (f32.lateral == label_kinematic(xy, heading, DT).lateral).float().mean() > 0.98


def test_waypoints_without_headings() -> None:
    # Waypoint-only plans: the heading is the direction of motion, held while standing.
    cases = hand_built()
    xy = np.stack([c[0] for c in cases])
    heading = np.stack([c[1] for c in cases])
    with_h, without = label_kinematic(xy, heading, DT), label_kinematic(xy, None, DT)
    assert torch.equal(with_h.longitudinal, without.longitudinal)
    assert torch.equal(with_h.lateral, without.lateral)
    lanes = label_lanes(xy, None, DT, None, TWO_LANE_MAP).lane
    assert torch.equal(lanes, label_lanes(xy, heading, DT, None, TWO_LANE_MAP).lane)
    # Turn left, brake, stand: the standing heading stays where the turn left it.
    v = np.concatenate([np.full(30, 6.0), ramp(6.0, -1.5, 40), np.zeros(30)])
    k = np.concatenate([np.zeros(30), np.full(40, 1 / 15), np.zeros(30)])
    xy1, heading1 = drive(v, k)
    lab = label_kinematic(xy1[None], None, DT)
    assert run_labels(lab.lateral) == [Lat.GO_STRAIGHT, Lat.SHARP_STEER_LEFT, Lat.GO_STRAIGHT]
    assert run_labels(lab.longitudinal)[-1] == Lon.STOP
    standing = lab.kinematics.heading_rad[0, 75:]
    assert torch.allclose(standing, torch.full_like(standing, heading1[-1]), atol=0.05)
    # As a plan: it stops, and while it moved it steered sharply left (standing does not vote).
    assert summarize(lab).row(0)[:2] == (Lon.STOP, Lat.SHARP_STEER_LEFT)


def test_summary_of_a_plan() -> None:
    # 64 waypoints: brake from 6 m/s at 1.5 m/s² and stand for the last 2.4 s -> STOP.
    v = np.concatenate([ramp(6.0, -1.5, 40), np.zeros(24)])
    xy, heading = drive(v, np.zeros(64))
    summary = summarize(label_kinematic(xy[None], heading[None], DT))
    assert summary.row(0) == (Lon.STOP, Lat.GO_STRAIGHT, Lane.LANE_KEEP)
    assert summary.longitudinal.dtype == torch.int8 and summary.longitudinal.shape == (1,)
    empty = summarize(label_kinematic(xy[None], heading[None], DT, np.zeros((1, 64), bool)))
    assert empty.row(0) == (None, None, None)


# --- real logs -----------------------------------------------------------------------------


def ego_arrays(scene_file: str) -> tuple[F64, F64, npt.NDArray[np.bool_], Scene]:
    scene = read_scene(shared_path("scenarionet", "nuscenes", scene_file))
    e = scene.ego_index
    tr = scene.tracks
    return tr.xyz_m[e : e + 1, :, :2], tr.heading_rad[e : e + 1], tr.valid[e : e + 1], scene


def test_logged_left_turn_nuscenes_scene_0061() -> None:
    xy, heading, valid, scene = ego_arrays("nuscenes_0/sd_nuscenes_v1.0-mini_scene-0061.pkl")
    lanes = label_lanes(xy, heading, 0.1, valid, scene.map)
    turns = [s for s in segments(lanes.lane)[0] if s.label == Lane.TURN_LEFT]
    assert len(turns) == 1 and Lane.TURN_RIGHT not in lanes.lane[0].tolist()
    (turn,) = turns
    assert turn.end - turn.start >= 50  # the ego turns for ~9 s
    h = np.unwrap(heading[0])
    assert math.degrees(h[turn.end - 1] - h[turn.start]) > 60
    # A plan over the middle of the turn summarises to a left turn, sharply steered.
    mid = slice(turn.start, turn.start + 64)
    kin = label_kinematic(xy[:, mid], heading[:, mid], 0.1)
    plan_lanes = label_lanes(xy[:, mid], heading[:, mid], 0.1, None, scene.map)
    _, lat, lane = summarize(kin, plan_lanes).row(0)
    assert lane is Lane.TURN_LEFT and lat in (Lat.STEER_LEFT, Lat.SHARP_STEER_LEFT)


def test_logged_left_turn_commonroad_t_junction() -> None:
    scene = read_scene(shared_path("commonroad", "misc", "ZAM_Tjunction-1_97_T-1.xml"))
    assert "turn_left" in scene.extra["tags"]
    tr = scene.tracks
    i = tr.object_id.tolist().index("5")  # the vehicle that turns left into the side road
    lanes = label_lanes(tr.xyz_m[:, :, :2], tr.heading_rad, scene.dt_s, tr.valid, scene.map)
    assert Lane.TURN_LEFT in lanes.lane[i].tolist()
    others = [j for j in range(tr.num_objects) if j != i and tr.valid[j].sum() > 1]
    assert not np.isin(lanes.lane[others].numpy(), [Lane.TURN_LEFT, Lane.TURN_RIGHT]).any()


def test_logged_stop_nuscenes_scene_0757() -> None:
    xy, heading, valid, scene = ego_arrays("nuscenes_2/0.pkl")
    assert scene.scene_id == "scene-0757"
    ego = scene.tracks.velocity_mps[scene.ego_index]
    standing = np.linalg.norm(ego, axis=-1) < 0.1  # the log's own speed, not our estimate
    assert standing[90:].all() and not standing[:80].any()
    lab = label_kinematic(xy, heading, 0.1, valid)
    lon = lab.longitudinal[0].numpy()
    assert (lon[standing] == Lon.STOP).mean() > 0.95
    assert not (lon[:80] == Lon.STOP).any()
    assert summarize(label_kinematic(xy[:, -64:], heading[:, -64:], 0.1)).row(0)[0] is Lon.STOP


def test_logged_timing_glitch_nuscenes_scene_0655() -> None:
    xy, heading, valid, _ = ego_arrays("nuscenes_1/sd_nuscenes_v1.0-mini_scene-0655.pkl")
    step_mps = np.linalg.norm(np.diff(xy[0], axis=0), axis=1) / 0.1
    assert step_mps[196] > 1.8 * np.median(step_mps[180:])  # the log skips a sample there
    lon = label_kinematic(xy, heading, 0.1, valid).longitudinal[0]
    assert set(lon[-30:].tolist()) == {Lon.MAINTAIN_SPEED}


def test_a_path_folding_back_on_itself_labels_without_error() -> None:
    # A standing plan whose heading flips by pi at every step (jittering back and forth):
    # the local fit must stay well posed and the vehicle read as standing.
    t = 65
    x = torch.zeros(1, t, 2, dtype=torch.float32)
    x[0, 1::2, 0] = 1e-3
    heading = torch.zeros(1, t)
    heading[0, 1::2] = math.pi
    for h in (heading, None):
        labels = label_kinematic(x, h, 0.1)
        assert labels.longitudinal.shape == (1, t)
        assert (labels.longitudinal[0, 5:-5] == int(LongitudinalAction.STOP)).all()
