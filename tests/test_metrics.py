"""Every metric on hand-built traces with hand-derived values."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from cordillera.errors import CordilleraError
from cordillera.metrics import (
    MetricResult,
    UnknownMetricError,
    compute_metrics,
    get_metric,
    list_metrics,
    summarize,
)
from cordillera.metrics.common import savgol
from cordillera.scene.types import ObjectType
from cordillera.sim.checks import StepChecks
from cordillera.sim.rollout import RolloutTrace

T = 41  # 4 s at 10 Hz, NAVSIM's horizon
DT = 0.1
CAR, CONE = 1, 2


def make_trace(m: int = 1, **changes: Any) -> RolloutTrace:
    """A perfect drive: 10 m/s along the route (1 m per step), matching the human log.

    ``changes`` override trace fields, or StepChecks fields prefixed with ``c_``.
    """
    b = 1
    steps = torch.arange(T, dtype=torch.float32).view(1, T, 1).expand(b, T, m)
    xy = torch.stack([steps, torch.zeros_like(steps)], -1)
    f = torch.zeros(b, T, m)
    no = torch.zeros(b, T, m, dtype=torch.bool)
    checks = {
        "collision": no,
        "collision_object": torch.full((b, T, m), -1),
        "at_fault_collision": no,
        "offroad": no,
        "against_traffic": no,
        "lane_deviation_m": f,
        "on_lane": ~no,
        "red_light_violation": no,
        "route_progress_m": 50.0 + steps,
        "ttc_s": torch.full((b, T, m), math.inf),
        "ttc_violation": no,
        "accel_mps2": f,
        "jerk_mps3": f,
        "yaw_rate_rps": f,
        "yaw_accel_rps2": f,
        "lateral_accel_mps2": f,
        "speed_mps": f + 10.0,
        "distance_to_log_m": f,
        "log_valid": ~no,
    }
    ego = torch.zeros(b, m, dtype=torch.bool)
    ego[:, 0] = True
    fields: dict[str, Any] = {
        "dt_s": DT,
        "scene_of": torch.zeros(b, dtype=torch.long),
        "agent_index": torch.arange(m).view(1, m),
        "ego_mask": ego,
        "step": torch.arange(T).view(1, T),
        "xy_m": xy,
        "heading_rad": f,
        "speed_mps": f + 10.0,
        "valid": ~no,
        "log_xy_m": xy,
        "log_valid": ~no,
        "object_type": torch.tensor([[ObjectType.VEHICLE, ObjectType.VEHICLE, ObjectType.OTHER]]),
        "route_length_m": torch.tensor([200.0]),
        "log_route_progress_m": torch.where(ego, float(T - 1), 0.0),
        "log_progress_valid": ego,
    }
    for key, value in changes.items():
        if key.startswith("c_"):
            checks[key[2:]] = value
        else:
            fields[key] = value
    return RolloutTrace(checks=StepChecks(**checks), **fields)


def flag(steps: list[int] | range, m: int = 1) -> torch.Tensor:
    out = torch.zeros(1, T, m, dtype=torch.bool)
    out[0, list(steps), 0] = True
    return out


def value(name: str, trace: RolloutTrace) -> float:
    r = get_metric(name)(trace)
    assert bool(r.valid[0]), f"{name} unexpectedly invalid"
    return float(r.value[0])


def collide(steps: list[int], obj: int, fault: bool | list[bool]) -> dict[str, torch.Tensor]:
    hit = flag(steps)
    obj_t = torch.where(hit, obj, -1)
    faults = [fault] * len(steps) if isinstance(fault, bool) else fault
    at_fault = flag([s for s, f in zip(steps, faults, strict=True) if f])
    return {"c_collision": hit, "c_collision_object": obj_t, "c_at_fault_collision": at_fault}


def test_perfect_trace_scores_one() -> None:
    res = compute_metrics(make_trace())
    assert set(res) == set(list_metrics())
    for name in (
        "epdms",
        "pdms",
        "no_at_fault_collision",
        "drivable_area_compliance",
        "driving_direction_compliance",
        "traffic_light_compliance",
        "ego_progress",
        "time_to_collision",
        "lane_keeping",
        "history_comfort",
        "extended_comfort",
        "alpasim_score",
        "progress_ratio",
    ):
        assert res[name].valid.all() and res[name].value.item() == pytest.approx(1.0), name
    for name in (
        "at_fault_collision",
        "offroad",
        "overlap",
        "log_divergence",
        "distance_to_log_mean",
        "distance_to_log_max",
    ):
        assert res[name].value.item() == 0.0, name


def test_at_fault_collision_with_vehicle_zeroes_scores() -> None:
    tr = make_trace(**collide([10, 11], CAR, True))
    assert value("no_at_fault_collision", tr) == 0.0
    assert value("epdms", tr) == 0.0 and value("pdms", tr) == 0.0
    assert value("alpasim_score", tr) == 0.0
    assert value("at_fault_collision", tr) == 1.0 and value("overlap", tr) == 1.0
    assert value("time_to_collision", tr) == 0.0


def test_at_fault_collision_with_static_object_halves_nc() -> None:
    tr = make_trace(**collide([10], CONE, True))
    assert value("no_at_fault_collision", tr) == 0.5
    # EP = (40 m x 0.5) / max(20, 40) = 0.5; TTC = 0 (a collision happened); LK, HC, EC = 1.
    assert value("ego_progress", tr) == pytest.approx(0.5)
    assert value("epdms", tr) == pytest.approx(0.5 * (5 * 0.5 + 5 * 0 + 2 + 2 + 2) / 16)


def test_collision_counted_once_per_object() -> None:
    # First contact with the car is not the ego's fault: later contacts with it are ignored.
    tr = make_trace(**collide([5, 6, 7], CAR, [False, False, True]))
    assert value("no_at_fault_collision", tr) == 1.0
    assert value("overlap", tr) == 1.0 and value("at_fault_collision", tr) == 0.0
    # Contact already present at the first recorded step is pre-existing, not the ego's.
    assert value("no_at_fault_collision", make_trace(**collide([0, 1], CAR, True))) == 1.0


def test_progress_ratio_and_alpasim_score() -> None:
    prog = 50.0 + 0.4 * torch.arange(T, dtype=torch.float32).view(1, T, 1)  # 16 m vs 40 m
    tr = make_trace(c_route_progress_m=prog)
    assert value("progress_ratio", tr) == pytest.approx(0.4)
    assert value("alpasim_score", tr) == pytest.approx(0.5)  # 0.4 / 0.8
    assert value("ego_progress", tr) == pytest.approx(0.4)
    assert value("epdms", tr) == pytest.approx((5 * 0.4 + 5 + 2 + 2 + 2) / 16)
    assert value("pdms", tr) == pytest.approx((5 * 0.4 + 5 + 2) / 12)
    ahead = make_trace(c_route_progress_m=50.0 + 1.5 * torch.arange(T).view(1, T, 1).float())
    assert value("progress_ratio", ahead) == pytest.approx(1.5)
    assert value("ego_progress", ahead) == 1.0 and value("alpasim_score", ahead) == 1.0


def test_low_reference_progress_is_not_judged() -> None:
    tr = make_trace(
        c_route_progress_m=torch.full((1, T, 1), 50.0), log_route_progress_m=torch.tensor([[3.0]])
    )
    assert value("ego_progress", tr) == 1.0 and value("alpasim_score", tr) == 1.0
    assert not get_metric("progress_ratio")(tr).valid.any()


def test_offroad_and_red_light_are_multipliers() -> None:
    off = make_trace(c_offroad=flag([20]))
    assert value("drivable_area_compliance", off) == 0.0 and value("epdms", off) == 0.0
    assert value("offroad", off) == 1.0 and value("alpasim_score", off) == 0.0
    red = make_trace(c_red_light_violation=flag([5]))
    assert value("traffic_light_compliance", red) == 0.0 and value("epdms", red) == 0.0
    assert value("pdms", red) == 1.0  # PDMS v1 has no traffic-light term


def test_driving_direction_compliance_thresholds() -> None:
    # 1 m per step against traffic; the worst 1 s window holds 11 such steps.
    assert value("driving_direction_compliance", make_trace(c_against_traffic=flag([20]))) == 1
    three = make_trace(c_against_traffic=flag([20, 21, 22]))
    assert value("driving_direction_compliance", three) == 0.5
    # NAVSIM scales progress by the multipliers before normalising: EP = 20 / 40.
    assert value("epdms", three) == pytest.approx(0.5 * (5 * 0.5 + 5 + 2 + 2 + 2) / 16)
    long = make_trace(c_against_traffic=flag(range(10, 30)))
    assert value("driving_direction_compliance", long) == 0.0


def test_lane_keeping_window() -> None:
    dev = torch.zeros(1, T, 1)
    dev[0, 5:24] = 0.6  # 19 steps (1.9 s) beyond 0.5 m
    assert value("lane_keeping", make_trace(c_lane_deviation_m=dev)) == 1.0
    dev[0, 24] = 0.6  # 20 steps = 2 s
    tr = make_trace(c_lane_deviation_m=dev)
    assert value("lane_keeping", tr) == 0.0
    assert value("epdms", tr) == pytest.approx(14 / 16)
    # Steps without a lane (intersections) neither count nor reset the run.
    dev = torch.zeros(1, T, 1)
    dev[0, 5:20] = 0.6
    dev[0, 25:30] = 0.6
    on_lane = ~flag(range(20, 25))
    assert value("lane_keeping", make_trace(c_lane_deviation_m=dev, c_on_lane=on_lane)) == 0.0


def test_ttc_violation() -> None:
    tr = make_trace(c_ttc_violation=flag([12]))
    assert value("time_to_collision", tr) == 0.0
    assert value("epdms", tr) == pytest.approx(11 / 16)
    assert value("pdms", tr) == pytest.approx(7 / 12)


def test_comfort() -> None:
    brake = make_trace(c_accel_mps2=torch.full((1, T, 1), -5.0))
    assert value("history_comfort", brake) == 0.0  # below -4.05 m/s^2
    assert value("extended_comfort", brake) == 1.0  # but steady
    # Yaw rate 0.3 sin(3 t) rad/s at 5 m/s: within every HC bound (yaw accel <= 0.9 rad/s^2,
    # lateral accel <= 1.5 m/s^2) but its step-to-step change is too jerky for EC.
    t = torch.arange(T, dtype=torch.float32).view(1, T, 1) * DT
    rate = 0.3 * torch.sin(3.0 * t)
    weave = make_trace(
        heading_rad=-0.1 * torch.cos(3.0 * t),
        speed_mps=torch.full((1, T, 1), 5.0),
        c_speed_mps=torch.full((1, T, 1), 5.0),
        c_yaw_rate_rps=rate,
        c_lateral_accel_mps2=5.0 * rate,
    )
    assert value("history_comfort", weave) == 1.0
    assert value("extended_comfort", weave) == 0.0
    assert value("epdms", weave) == pytest.approx(14 / 16)


def test_log_divergence_metrics() -> None:
    d = 0.1 * torch.arange(T, dtype=torch.float32).view(1, T, 1)
    ok = ~flag([T - 1])  # the last step has no log
    tr = make_trace(c_distance_to_log_m=d, c_log_valid=ok)
    assert value("log_divergence", tr) == pytest.approx(0.1 * 39 / 2, rel=1e-5)
    assert value("distance_to_log_mean", tr) == pytest.approx(0.1 * 39 / 2, rel=1e-5)
    assert value("distance_to_log_max", tr) == pytest.approx(3.9, rel=1e-5)
    none = make_trace(c_log_valid=torch.zeros(1, T, 1, dtype=torch.bool))
    assert not get_metric("log_divergence")(none).valid.any()


def test_no_route_makes_route_metrics_invalid() -> None:
    tr = make_trace(route_length_m=torch.tensor([0.0]))
    res = compute_metrics(tr)
    for name in ("ego_progress", "epdms", "pdms", "progress_ratio", "alpasim_score"):
        assert not res[name].valid.any(), name
        assert res[name].value.item() == 0.0
        assert math.isnan(float(res[name].mean()))
    assert res["drivable_area_compliance"].valid.all()


def test_per_agent_values_in_self_play() -> None:
    off = torch.zeros(1, T, 2, dtype=torch.bool)
    off[0, 10, 1] = True  # the second agent leaves the road
    tr = make_trace(m=2, c_offroad=off)
    dac = get_metric("drivable_area_compliance")(tr)
    assert dac.per_agent_value is not None and dac.per_agent_valid is not None
    assert dac.per_agent_value.tolist() == [[1.0, 0.0]] and dac.value.item() == 1.0
    ep = get_metric("ego_progress")(tr)
    assert ep.per_agent_valid is not None and ep.per_agent_valid.tolist() == [[True, False]]


def test_registry_fails_loudly() -> None:
    with pytest.raises(UnknownMetricError) as err:
        get_metric("epdm")
    assert isinstance(err.value, CordilleraError)
    assert "epdms" in str(err.value) and "alpasim_score" in str(err.value)
    with pytest.raises(UnknownMetricError):
        compute_metrics(make_trace(), ["epdms", "nope"])
    assert sorted(compute_metrics(make_trace(), ["epdms", "overlap"])) == ["epdms", "overlap"]


def test_aggregation_is_mean_over_valid() -> None:
    r = MetricResult(torch.tensor([1.0, 0.0, 0.5]), torch.tensor([True, False, True]))
    assert float(r.mean()) == pytest.approx(0.75)
    assert summarize({"x": r}) == {"x": pytest.approx(0.75)}
    with pytest.raises(CordilleraError):
        MetricResult(torch.zeros(2), torch.zeros(3, dtype=torch.bool))


def test_savgol_matches_scipy_for_odd_windows() -> None:
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, T, 3))
    for window, poly, deriv in ((15, 2, 1), (5, 3, 2), (5, 2, 1), (7, 2, 0)):
        ref = signal.savgol_filter(x, window, poly, deriv=deriv, delta=DT, axis=1)
        got = savgol(torch.from_numpy(x), window, poly, deriv, DT).numpy()
        np.testing.assert_allclose(got, ref, atol=1e-8)
