"""NAVSIM's PDM score (v1, PDMS) and extended PDM score (v2, EPDMS) on closed-loop traces.

Definitions follow autonomousvision/navsim ``docs/metrics.md`` and
``navsim/planning/simulation/planner/pdm_planner/scoring/{pdm_scorer.py,
pdm_comfort_metrics.py, pdm_scorer_utils.py}``; ``docs/metrics.md`` here lists every formula,
threshold and the few places a closed-loop trace forces an adaptation.

Every function returns per-agent ``(value (B, M), valid (B, M))``; the registered metrics wrap
them in :class:`MetricResult` (ego = agent 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from cordillera.metrics.common import (
    LOW_PROGRESS_M,
    collision_object_is_agent,
    counted_at_fault,
    fill_invalid,
    progress,
    savgol,
    steps_like,
    unwrap,
)
from cordillera.metrics.registry import MetricResult, register
from cordillera.sim.rollout import RolloutTrace

Scored = tuple[torch.Tensor, torch.Tensor]

DDC_HORIZON_S = 1.0
DDC_COMPLIANT_M = 2.0
DDC_VIOLATION_M = 6.0
LANE_KEEPING_LIMIT_M = 0.5
LANE_KEEPING_WINDOW_S = 2.0
# History comfort bounds (pdm_comfort_metrics.py), strict inequalities.
MIN_LON_ACCEL_MPS2, MAX_LON_ACCEL_MPS2 = -4.05, 2.40
MAX_ABS_LAT_ACCEL_MPS2 = 4.89
MAX_ABS_JERK_MPS3 = 8.37
MAX_ABS_LON_JERK_MPS3 = 4.13
MAX_ABS_YAW_ACCEL_RPS2 = 1.93
MAX_ABS_YAW_RATE_RPS = 0.95
# Extended comfort RMS thresholds (pdm_comfort_metrics.py, NAVSIM v2).
EC_ACCEL_MPS2, EC_JERK_MPS3, EC_YAW_RATE_RPS, EC_YAW_ACCEL_RPS2 = 0.7, 0.5, 0.1, 0.1
MIN_STEPS_FOR_COMFORT = 4
"""The yaw-acceleration fit is cubic, so it needs at least four samples."""
EPDMS_WEIGHTS = {
    "ego_progress": 5.0,
    "time_to_collision": 5.0,
    "lane_keeping": 2.0,
    "history_comfort": 2.0,
    "extended_comfort": 2.0,
}
PDMS_WEIGHTS = {"ego_progress": 5.0, "time_to_collision": 5.0, "comfort": 2.0}


def _any_alive(trace: RolloutTrace) -> torch.Tensor:
    return trace.valid.any(1)


def _undefined(trace: RolloutTrace) -> Scored:
    none = torch.zeros_like(trace.valid[:, 0])
    return none.float(), none


def no_at_fault_collision_score(trace: RolloutTrace) -> Scored:
    """NC: 0 after a counted at-fault contact with an agent (vehicle, pedestrian, cyclist),
    0.5 if only with static objects, else 1."""
    counted = counted_at_fault(trace)
    with_agent = (counted & collision_object_is_agent(trace)).any(1)
    value = torch.where(with_agent, 0.0, torch.where(counted.any(1), 0.5, 1.0))
    return value, _any_alive(trace)


def drivable_area_compliance_score(trace: RolloutTrace) -> Scored:
    """DAC: 0 if any box corner ever left the drivable area, else 1."""
    off = (trace.checks.offroad & trace.valid).any(1)
    return torch.where(off, 0.0, 1.0), _any_alive(trace)


def driving_direction_compliance_score(trace: RolloutTrace) -> Scored:
    """DDC: the most distance driven against traffic within any 1 s window; 1 below 2 m, 0.5
    below 6 m, else 0."""
    live = trace.valid
    step_m = torch.zeros_like(trace.heading_rad)
    step_m[:, 1:] = (trace.xy_m[:, 1:] - trace.xy_m[:, :-1]).norm(dim=-1)
    step_m = torch.where(live & live.roll(1, 1) & (steps_like(live) > 0), step_m, 0.0)
    oncoming = torch.where(trace.checks.against_traffic & live, step_m, 0.0)
    # NAVSIM sums oncoming progress over samples [t - h, t] (h = horizon / dt) for every t.
    h = round(DDC_HORIZON_S / trace.dt_s)
    cum = torch.cumsum(oncoming, 1)
    earlier = torch.zeros_like(cum)
    if cum.shape[1] > h + 1:
        earlier[:, h + 1 :] = cum[:, : -(h + 1)]
    peak = (cum - earlier).amax(1)
    value = torch.where(peak < DDC_COMPLIANT_M, 1.0, torch.where(peak < DDC_VIOLATION_M, 0.5, 0.0))
    return value, _any_alive(trace)


def traffic_light_compliance_score(trace: RolloutTrace) -> Scored:
    """TLC: 0 if the agent ever crossed a red stop point, else 1."""
    red = (trace.checks.red_light_violation & trace.valid).any(1)
    return torch.where(red, 0.0, 1.0), _any_alive(trace)


def _multipliers(trace: RolloutTrace, extended: bool) -> Scored:
    parts = [no_at_fault_collision_score(trace), drivable_area_compliance_score(trace)]
    if extended:
        parts += [driving_direction_compliance_score(trace), traffic_light_compliance_score(trace)]
    value = torch.stack([p[0] for p in parts]).prod(0)
    valid = torch.stack([p[1] for p in parts]).all(0)
    return value, valid


def ego_progress_score(trace: RolloutTrace, extended: bool = True) -> Scored:
    """EP: route progress (times the multiplier product, as NAVSIM) over the best of itself
    and the logged human's progress; 1 when that best is under 5 m (0 if a multiplier is 0).
    Defined for the ego with a route and a logged reference."""
    prog, ref, ok = progress(trace)
    mult, mult_ok = _multipliers(trace, extended)
    raw = prog.clamp_min(0.0) * mult
    best = torch.maximum(raw, ref)
    ratio = raw / best.clamp_min(1e-6)
    low = torch.where(mult > 0, 1.0, 0.0)
    return torch.where(best > LOW_PROGRESS_M, ratio, low), ok & mult_ok


def time_to_collision_score(trace: RolloutTrace) -> Scored:
    """TTC: 0 if an at-fault contact was ever predicted within 1 s (or happened), else 1."""
    bad = ((trace.checks.ttc_violation & trace.valid) | counted_at_fault(trace)).any(1)
    return torch.where(bad, 0.0, 1.0), _any_alive(trace)


def lane_keeping_score(trace: RolloutTrace) -> Scored:
    """LK: 0 if the lane deviation exceeded 0.5 m for 2 s of consecutive judged steps.

    Steps without a lane (NAVSIM: inside intersections) are skipped: they neither count nor
    reset the run.
    """
    c = trace.checks
    judged = trace.valid & c.on_lane
    exceed = judged & (c.lane_deviation_m > LANE_KEEPING_LIMIT_M)
    reset = judged & ~exceed
    cum = torch.cumsum(exceed.long(), 1)
    last_reset = torch.where(reset, steps_like(reset), -1).cummax(1).values
    base = torch.where(last_reset >= 0, torch.gather(cum, 1, last_reset.clamp_min(0)), 0)
    need = math.ceil(LANE_KEEPING_WINDOW_S / trace.dt_s - 1e-6)
    failed = ((cum - base) >= need).any(1)
    return torch.where(failed, 0.0, 1.0), _any_alive(trace)


def _comfort_signals(trace: RolloutTrace) -> dict[str, torch.Tensor]:
    """NAVSIM's smoothed comfort signals ``(B, T, M)`` (pdm_comfort_metrics.py windows)."""
    live, dt, c = trace.valid, trace.dt_s, trace.checks
    ax = fill_invalid(c.accel_mps2, live)
    ay = fill_invalid(c.lateral_accel_mps2, live)
    yaw = unwrap(fill_invalid(trace.heading_rad, live))
    lon = savgol(ax, 8, 2, 0, dt)
    mag = savgol(torch.hypot(ax, ay), 8, 2, 0, dt)
    return {
        "lon_accel": lon,
        "lat_accel": savgol(ay, 8, 2, 0, dt),
        "accel": mag,
        "jerk": savgol(mag, 15, 2, 1, dt),
        "lon_jerk": savgol(lon, 15, 2, 1, dt),
        "yaw_rate": savgol(yaw, 5, 2, 1, dt),
        "yaw_accel": savgol(yaw, 5, 3, 2, dt),
    }


def history_comfort_score(trace: RolloutTrace) -> Scored:
    """HC (v1: C): 1 if every smoothed signal stays within NAVSIM's bounds at every live step."""
    live = trace.valid
    if trace.num_steps < MIN_STEPS_FOR_COMFORT:
        return _undefined(trace)
    s = _comfort_signals(trace)
    ok = (
        (s["lon_accel"] > MIN_LON_ACCEL_MPS2)
        & (s["lon_accel"] < MAX_LON_ACCEL_MPS2)
        & (s["lat_accel"].abs() < MAX_ABS_LAT_ACCEL_MPS2)
        & (s["jerk"].abs() < MAX_ABS_JERK_MPS3)
        & (s["lon_jerk"].abs() < MAX_ABS_LON_JERK_MPS3)
        & (s["yaw_accel"].abs() < MAX_ABS_YAW_ACCEL_RPS2)
        & (s["yaw_rate"].abs() < MAX_ABS_YAW_RATE_RPS)
    )
    comfortable = (ok | ~live).all(1)
    return torch.where(comfortable, 1.0, 0.0), _any_alive(trace)


def extended_comfort_score(trace: RolloutTrace) -> Scored:
    """EC: 1 if the RMS step-to-step change of acceleration, jerk, yaw rate and yaw
    acceleration stays within NAVSIM v2's thresholds (0.7, 0.5, 0.1, 0.1).

    NAVSIM compares the same signals between consecutive *plans*; a closed-loop trace has one
    executed trajectory, so the change between consecutive *steps* takes its place.
    """
    live = trace.valid
    if trace.num_steps < MIN_STEPS_FOR_COMFORT:
        return _undefined(trace)
    s = _comfort_signals(trace)
    pair = live[:, 1:] & live[:, :-1]
    n = pair.sum(1).clamp_min(1)
    ok = torch.ones_like(live[:, 0])
    for key, limit in (
        ("accel", EC_ACCEL_MPS2),
        ("jerk", EC_JERK_MPS3),
        ("yaw_rate", EC_YAW_RATE_RPS),
        ("yaw_accel", EC_YAW_ACCEL_RPS2),
    ):
        d = torch.where(pair, torch.diff(s[key], dim=1), 0.0)
        ok = ok & (torch.sqrt((d * d).sum(1) / n) <= limit)
    return torch.where(ok, 1.0, 0.0), _any_alive(trace)


def epdms_score(trace: RolloutTrace) -> Scored:
    """EPDMS = NC·DAC·DDC·TLC · (5 EP + 5 TTC + 2 LK + 2 HC + 2 EC) / 16."""
    mult, mult_ok = _multipliers(trace, extended=True)
    parts = {
        "ego_progress": ego_progress_score(trace, extended=True),
        "time_to_collision": time_to_collision_score(trace),
        "lane_keeping": lane_keeping_score(trace),
        "history_comfort": history_comfort_score(trace),
        "extended_comfort": extended_comfort_score(trace),
    }
    return _combine(mult, mult_ok, parts, EPDMS_WEIGHTS)


def pdms_score(trace: RolloutTrace) -> Scored:
    """PDMS (v1) = NC·DAC · (5 EP + 5 TTC + 2 C) / 12, C being the history comfort check."""
    mult, mult_ok = _multipliers(trace, extended=False)
    parts = {
        "ego_progress": ego_progress_score(trace, extended=False),
        "time_to_collision": time_to_collision_score(trace),
        "comfort": history_comfort_score(trace),
    }
    return _combine(mult, mult_ok, parts, PDMS_WEIGHTS)


def _combine(
    mult: torch.Tensor, mult_ok: torch.Tensor, parts: dict[str, Scored], weights: dict[str, float]
) -> Scored:
    weighted = torch.zeros_like(mult)
    for key, w in weights.items():
        weighted = weighted + w * parts[key][0]
    weighted = weighted / sum(weights.values())
    valid = mult_ok & torch.stack([parts[k][1] for k in weights]).all(0)
    return mult * weighted, valid


def _metric(name: str, fn: Callable[[RolloutTrace], Scored]) -> None:
    def compute(trace: RolloutTrace) -> MetricResult:
        value, valid = fn(trace)
        return MetricResult.from_agents(value, valid)

    compute.__name__ = name
    compute.__doc__ = getattr(fn, "__doc__", None)
    register(name)(compute)


for _name, _fn in {
    "no_at_fault_collision": no_at_fault_collision_score,
    "drivable_area_compliance": drivable_area_compliance_score,
    "driving_direction_compliance": driving_direction_compliance_score,
    "traffic_light_compliance": traffic_light_compliance_score,
    "ego_progress": ego_progress_score,
    "time_to_collision": time_to_collision_score,
    "lane_keeping": lane_keeping_score,
    "history_comfort": history_comfort_score,
    "extended_comfort": extended_comfort_score,
    "epdms": epdms_score,
    "pdms": pdms_score,
}.items():
    _metric(_name, _fn)
