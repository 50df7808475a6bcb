"""Long-tail variants: one designed cause that forces a designed ego decision.

Each design places the cause so that, under the traffic model, the ego must react to it — and
only to it: the ego's way is otherwise kept clear, so re-simulating without the cause leaves the
ego driving on (checked for every generated scene, see :func:`check_design`). The cause's own
behaviour may be scripted (a hard brake, a jaywalker's start, a runner ignoring its red); the
ego's reaction never is — it is the IDM's response to that object.

Every design records in ``scene.extra``: ``designed_cause_object_id``, ``designed_decision``
(a VISION.md longitudinal decision), ``designed_lateral_decision``, ``designed_event_time_s``
and ``scenario``, plus the numbers the check used (distance at the event, the ego's strongest
braking after it, and the same without the cause).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cordillera.scene.generate.agents import (
    CAR_LWH,
    PEDESTRIAN_LWH,
    VAN_LWH,
    Agent,
    Driver,
    PedCrossing,
    ScenePlan,
    lane_agent,
)
from cordillera.scene.generate.basic import crossing_peds, drop_ahead_of_ego, ego_agent
from cordillera.scene.generate.interact import relations
from cordillera.scene.generate.junctions import ARMS, intersection
from cordillera.scene.generate.paths import Path, first_crossing
from cordillera.scene.generate.populate import Population, random_driver
from cordillera.scene.generate.realise import DesignRejected, Realised
from cordillera.scene.generate.roads import URBAN_MPS, straight
from cordillera.scene.generate.traffic import simulate
from cordillera.scene.types import ObjectType

RNG = np.random.Generator
REACTION_WINDOW_S = 4.0
MAX_EVENT_DISTANCE_M = 80.0


def _street(rng: RNG) -> tuple[Population, list[int], float]:
    """Urban straight street with parking strips; the ego in the right eastbound lane."""
    lay = straight(2, "parking", speed_mps=URBAN_MPS)
    pop = Population(lay, rng)
    lanes = [lay.named[f"E1_{s}"] for s in range(5)]
    s_e = float(rng.uniform(20.0, 35.0))
    pop.add(ego_agent(lay, lanes, s_e, 13.0))
    return pop, lanes, s_e


def _background(
    pop: Population,
    rng: RNG,
    ego_lanes: list[int],
    keep_clear: tuple[float, float],
    lanes_clear: tuple[int, ...] = (),
) -> None:
    """Oncoming traffic, some eastbound traffic, parked cars and walkers — none of it in the
    ego's lane ahead, nor in ``lanes_clear`` over the x range ``keep_clear``."""
    lay = pop.layout
    west = [lay.named[f"W{m}_{s}"] for m in range(2) for s in range(1, 5)]
    east = [lay.named[f"E{m}_{s}"] for m in range(2) for s in range(3)]
    pop.random_vehicles(int(rng.integers(5, 10)), west)
    pop.random_vehicles(int(rng.integers(2, 6)), east)
    ego = next(a for a in pop.agents if a.object_id == "ego")
    x_ego = float(ego.path.position(ego.s0_m)[0])
    keep = []
    for a in pop.agents:
        if a.protected or not a.lanes or a.behaviour != "idm":
            keep.append(a)
            continue
        x = float(a.path.position(a.s0_m)[0])
        lane = a.lane_at(a.s0_m)
        in_ego_lane = lane in ego_lanes and x > x_ego
        in_clear = lane in lanes_clear and keep_clear[0] <= x <= keep_clear[1]
        if not (in_ego_lane or in_clear):
            keep.append(a)
    pop.agents = keep
    for _ in range(int(rng.integers(3, 8))):
        p = lay.parking[int(rng.integers(len(lay.parking)))]
        s = float(rng.uniform(5.0, p.length_m - 5.0))
        x = float(p.position(s)[0])
        if keep_clear[0] - 15.0 <= x <= keep_clear[1] + 5.0:
            continue
        pop.add(Agent(pop.next_id("veh"), ObjectType.VEHICLE, CAR_LWH, "static", p, s0_m=s))
    pop.sidewalk_walkers(int(rng.integers(2, 6)))


def stopped_vehicle(rng: RNG, seed: int) -> tuple[ScenePlan, dict[str, object]]:
    """A broken-down car stands in the ego's lane; the ego slows and stops behind it."""
    pop, lanes, s_e = _street(rng)
    lay = pop.layout
    s_c = s_e + float(rng.uniform(95.0, 130.0))
    cause = lane_agent(lay, pop.next_id("veh"), lanes, s_c, 0.0, protected=True)
    pop.require(replace(cause, behaviour="static"))
    x_c = float(cause.path.position(s_c)[0])
    _background(pop, rng, lanes, (x_c - 200.0, x_c + 20.0))
    return pop.plan("stopped-vehicle", seed), {
        "designed_cause_object_id": cause.object_id,
        "designed_decision": "stop",
    }


def jaywalker(rng: RNG, seed: int) -> tuple[ScenePlan, dict[str, object]]:
    """A pedestrian steps out from behind a parked van mid-block; the ego brakes hard."""
    pop, lanes, _ = _street(rng)
    ego = pop.agents[0]
    t_e = round(float(rng.uniform(5.0, 7.5)), 1)
    free = simulate(pop.plan("jaywalker", seed)).s_m[0]  # the ego alone, free driving
    x_front = float(ego.path.position(free[round(t_e * 10)])[0]) + ego.size_lwh_m[0] / 2
    x_c = x_front + float(rng.uniform(25.0, 31.0))
    curb = 2 * 3.5 + 2.4
    speed = float(rng.uniform(1.7, 2.2))
    path = Path.from_points([[x_c, -(curb + 0.8)], [x_c, curb + 1.5], [x_c + 20.0, curb + 1.5]])
    path = path.resample(0.5)
    ped = Agent(
        pop.next_id("ped"),
        ObjectType.PEDESTRIAN,
        PEDESTRIAN_LWH,
        "walk",
        path,
        s0_m=0.0,
        v0_mps=0.0,
        speed_mps=speed,
        walk_at_s=t_e,
        heedless=True,
        crossings=(PedCrossing(0.5, 0.8 + 2 * curb, None),),
        protected=True,
    )
    van = Agent(
        pop.next_id("veh"),
        ObjectType.VEHICLE,
        VAN_LWH,
        "static",
        Path.from_points([[x_c - 20.0, -(2 * 3.5 + 1.2)], [x_c + 20.0, -(2 * 3.5 + 1.2)]]),
        s0_m=20.0 - 1.0 - VAN_LWH[0] / 2,
    )
    pop.add(van)
    pop.require(ped)
    _background(pop, rng, lanes, (x_c - 40.0, x_c + 10.0))
    plan = pop.plan("jaywalker", seed)
    return plan, {
        "designed_cause_object_id": ped.object_id,
        "designed_decision": "yield",
        "designed_event_time_s": round(t_e, 3),
    }


def cut_in(rng: RNG, seed: int) -> tuple[ScenePlan, dict[str, object]]:
    """A faster car overtakes in the left lane and cuts in close ahead, then slows."""
    pop, lanes, s_e = _street(rng)
    lay = pop.layout
    ego = pop.agents[0]
    v_c = float(rng.uniform(16.5, 18.0))
    s0 = s_e - float(rng.uniform(6.0, 14.0))
    gap = float(rng.uniform(6.0, 10.0))
    length = float(rng.uniform(28.0, 38.0))
    # Cut when its rear is `gap` ahead of the ego's front (both at their current speeds).
    t_c = (gap + ego.size_lwh_m[0] / 2 + s_e - s0 + CAR_LWH[0] / 2) / (v_c - ego.v0_mps)
    s_c = s0 + v_c * t_c
    cutter = lane_agent(
        lay,
        pop.next_id("veh"),
        lanes,
        s0,
        v_c,
        protected=True,
        driver=replace(random_driver(rng), speed_factor=v_c / URBAN_MPS + 0.02, lag_s=0.2),
        slow_after_m=(s_c + length + 5.0, float(rng.uniform(8.5, 10.5))),
    )
    u = np.clip((cutter.path.s_m - s_c) / length, 0.0, 1.0)
    cutter = replace(cutter, lateral_m=3.5 * (1 + np.cos(np.pi * u)) / 2)
    pop.require(cutter)
    x0 = float(cutter.path.position(s0)[0])
    _background(
        pop,
        rng,
        lanes,
        (x0 - 60.0, x0 + (s_c - s0) + 120.0),
        lanes_clear=tuple(lay.named[f"E0_{s}"] for s in range(5)),
    )
    return pop.plan("cut-in", seed), {
        "designed_cause_object_id": cutter.object_id,
        "designed_decision": "keep_distance",
    }


def hard_brake(rng: RNG, seed: int) -> tuple[ScenePlan, dict[str, object]]:
    """The car ahead brakes hard (to a stop, or to a crawl); the ego brakes behind it."""
    pop, lanes, s_e = _street(rng)
    lay = pop.layout
    t_e = round(float(rng.uniform(5.0, 8.0)), 1)
    to_stop = bool(rng.uniform() < 0.6)
    lead = lane_agent(
        lay,
        pop.next_id("veh"),
        lanes,
        s_e + float(rng.uniform(24.0, 30.0)),
        13.0,
        protected=True,
        driver=Driver(speed_factor=0.95),
        brake_at_s=t_e,
        brake_decel_mps2=float(rng.uniform(6.0, 7.5)),
        brake_to_mps=0.0 if to_stop else float(rng.uniform(3.0, 5.0)),
    )
    pop.require(lead)
    _background(pop, rng, lanes, (0.0, 0.0))
    return pop.plan("hard-brake", seed), {
        "designed_cause_object_id": lead.object_id,
        "designed_decision": "stop" if to_stop else "keep_distance",
        "designed_event_time_s": round(t_e, 3),
    }


def red_light_runner(rng: RNG, seed: int) -> tuple[ScenePlan, dict[str, object]]:
    """A car on the cross street runs its red while the ego goes straight on green."""
    lay = intersection(through_green_s=12.0, left_green_s=6.0)
    pop = Population(lay, rng)
    k = int(rng.integers(2))
    ego_lanes = [lay.named[f"S_in{k}"], lay.named[f"S_thr{k}"], lay.named[f"N_out{k}"]]
    offset = float(rng.uniform(1.0, 3.0))  # NS through has been green this long at t = 0
    length = lay.lane_paths[ego_lanes[0]].length_m
    pop.add(ego_agent(lay, ego_lanes, length - float(rng.uniform(40.0, 50.0)), 11.0))
    ego = pop.agents[0]
    free = simulate(pop.plan("red-light-runner", seed, signal_offset_s=offset)).s_m[0]
    kr = int(rng.integers(2))
    r_lanes = [lay.named[f"W_in{kr}"], lay.named[f"W_thr{kr}"], lay.named[f"E_out{kr}"]]
    v_r = float(rng.uniform(14.0, 16.0))
    runner = lane_agent(
        lay,
        pop.next_id("veh"),
        r_lanes,
        10.0,
        v_r,
        protected=True,
        ignore_signals=True,
        driver=Driver(speed_factor=v_r / URBAN_MPS),
    )
    hit = first_crossing(ego.path, runner.path)
    if hit is None:
        raise DesignRejected("runner path does not cross the ego's")
    e_ego = hit[0] - (runner.size_lwh_m[1] / 2 + 0.5) - ego.size_lwh_m[0] / 2
    d_e = float(rng.uniform(20.0, 27.0))  # ego front to its conflict entry at the event
    t_e = float(np.argmax(free >= e_ego - d_e)) * 0.1
    line = runner.lane_start_m[1]
    s0 = line - runner.size_lwh_m[0] / 2 - v_r * t_e
    if s0 < 5.0:
        raise DesignRejected("runner would start off the map")
    pop.require(replace(runner, s0_m=s0))
    inbound = [lay.named[f"{a}_in{m}"] for a in ARMS for m in range(2) if a != "W"]
    pop.random_vehicles(int(rng.integers(5, 9)), inbound)
    drop_ahead_of_ego(pop, ego_lanes[0])
    crossing_peds(pop, rng, offset, skip_groups=("NS_thr",))
    pop.sidewalk_walkers(int(rng.integers(2, 5)))
    return pop.plan("red-light-runner", seed, signal_offset_s=offset), {
        "designed_cause_object_id": runner.object_id,
        "designed_decision": "yield",
    }


def event_time(real: Realised, design: dict[str, object]) -> float:
    """The designed event's time: given by the design, or found in the log.

    Stopped vehicle: the first step it binds the ego's braking. Cut-in: the first step its
    box overlaps the ego's lane laterally. Red-light runner: its front crossing the stop line.
    """
    if "designed_event_time_s" in design:
        return float(design["designed_event_time_s"])  # type: ignore[arg-type]
    plan, sim = real.plan, real.sim
    c = plan.index(str(design["designed_cause_object_id"]))
    kind = plan.kind
    if kind == "stopped-vehicle":
        hit = (sim.cause[plan.ego] == c) & (sim.a_mps2[plan.ego] < -0.5)
    elif kind == "cut-in":
        a = plan.agents[c]
        lat = np.interp(sim.s_m[c], a.path.s_m, np.asarray(a.lateral_m))
        hit = lat < (a.size_lwh_m[1] + plan.agents[plan.ego].size_lwh_m[1]) / 2 + 0.4
    else:
        rel = relations(plan)
        hit = sim.s_m[c] + plan.agents[c].size_lwh_m[0] / 2 >= rel.head_s[c, 0]
    if not hit.any():
        raise DesignRejected(f"{kind}: the designed event never happens")
    return round(float(np.argmax(hit)) * plan.dt_s, 3)


def check_design(real: Realised, design: dict[str, object]) -> dict[str, object]:
    """Verify the ego reacts to the cause and would not have without it; returns the facts."""
    plan, sim = real.plan, real.sim
    cid = str(design["designed_cause_object_id"])
    c, e = plan.index(cid), plan.ego
    t_e = event_time(real, design)
    k0 = round(t_e / plan.dt_s)
    k1 = min(k0 + round(REACTION_WINDOW_S / plan.dt_s), plan.num_steps)
    tr = real.tracks
    dist = float(np.linalg.norm(tr.xyz_m[c, k0, :2] - tr.xyz_m[e, k0, :2]))
    a_min = float(sim.a_mps2[e, k0:k1].min())
    bound = bool((sim.cause[e, k0:k1] == c).any())
    without = simulate(plan.without({cid}))
    a_cf = float(without.a_mps2[without_index(plan, cid), k0:k1].min())
    if not (bound and a_min < -1.0 and a_cf > -0.6 and dist < MAX_EVENT_DISTANCE_M):
        raise DesignRejected(
            f"{plan.kind}: reaction not as designed (bound={bound}, "
            f"a_min={a_min:.2f}, without={a_cf:.2f}, dist={dist:.1f})"
        )
    return {
        **design,
        "designed_event_time_s": t_e,
        "designed_lateral_decision": "keep_lane",
        "designed_cause_distance_m": round(dist, 2),
        "designed_ego_min_accel_mps2": round(a_min, 2),
        "counterfactual_ego_min_accel_mps2": round(a_cf, 2),
    }


def without_index(plan: ScenePlan, cause_id: str) -> int:
    """The ego's index in ``plan.without({cause_id})``."""
    return plan.ego - (1 if plan.index(cause_id) < plan.ego else 0)


VARIANTS = {
    "stopped-vehicle": stopped_vehicle,
    "jaywalker": jaywalker,
    "cut-in": cut_in,
    "hard-brake": hard_brake,
    "red-light-runner": red_light_runner,
}
