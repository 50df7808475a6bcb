"""Everyday scenes on each layout: an ego on a route through it, and traffic drawn from a seed.

Each function takes a ``numpy.random.Generator`` and returns a :class:`~.agents.ScenePlan`
whose ego (id ``"ego"``) drives a human-like IDM with a reaction lag; everything it does in the
log — queueing, stopping at a red or a stop sign, yielding to a pedestrian or to circulating
traffic, merging — comes from the traffic model's interactions.
"""

from __future__ import annotations

import numpy as np

from cordillera.scene.generate.agents import EGO_DRIVER, Agent, ScenePlan, lane_agent
from cordillera.scene.generate.junctions import ARMS, intersection, roundabout, t_junction
from cordillera.scene.generate.mapbuild import Layout
from cordillera.scene.generate.populate import NUM_STEPS, Population, bike_lanes
from cordillera.scene.generate.roads import ARTERIAL_MPS, merge, straight
from cordillera.scene.generate.signals import cycle_length_s, walk_windows

RNG = np.random.Generator


def ego_agent(layout: Layout, lanes: list[int], s0_m: float, v0_mps: float) -> Agent:
    """The ego: a car on ``lanes`` driven by the human-like :data:`EGO_DRIVER`."""
    return lane_agent(layout, "ego", lanes, s0_m, v0_mps, driver=EGO_DRIVER, protected=True)


def drop_ahead_of_ego(pop: Population, lane: int, margin_m: float = 200.0) -> None:
    """Remove non-ego agents starting on the ego's first lane ahead of it (keeps its way open)."""
    ego = next(a for a in pop.agents if a.object_id == "ego")
    pop.agents = [
        a
        for a in pop.agents
        if a is ego
        or not a.lanes
        or a.t_start_s > 0
        or a.lane_at(a.s0_m) != lane
        or not (ego.s0_m < a.s0_m < ego.s0_m + margin_m)
    ]


def straight_scene(rng: RNG, seed: int, kind: str = "straight") -> ScenePlan:
    """Arterial road, 2–3 lanes each way with bike lanes; the ego cruises and follows traffic."""
    n = int(rng.integers(2, 4))
    lay = straight(n, "bike", speed_mps=ARTERIAL_MPS)
    pop = Population(lay, rng)
    k = int(rng.integers(n))
    ego_lanes = [lay.named[f"E{k}_{s}"] for s in range(5)]
    pop.add(ego_agent(lay, ego_lanes, float(rng.uniform(15.0, 40.0)), 14.0))
    starts = [lay.named[f"E{m}_{s}"] for m in range(n) for s in range(3)]
    starts += [lay.named[f"W{m}_{s}"] for m in range(n) for s in range(2, 5)]
    pop.random_vehicles(int(rng.integers(10, 20)), starts)
    pop.cyclists(int(rng.integers(1, 4)), [ln for ln in bike_lanes(lay)])
    pop.sidewalk_walkers(int(rng.integers(3, 9)))
    return pop.plan(kind, seed, design={"tags": ["cruise", "car-following"]})


def intersection_scene(rng: RNG, seed: int, kind: str = "intersection") -> ScenePlan:
    """Signalised 4-way junction; the ego stops at a red, then turns or goes straight on green."""
    lay = intersection(through_green_s=12.0, left_green_s=6.0)
    pop = Population(lay, rng)
    move = ("left", "right", "thr")[int(rng.integers(3))]
    k_in = 0 if move == "left" else 1 if move == "right" else int(rng.integers(2))
    mv = f"thr{k_in}" if move == "thr" else move
    to_arm = {"left": "W", "right": "E", "thr": "N"}[move]
    k_out = 0 if move == "left" else 1 if move == "right" else k_in
    ego_lanes = [lay.named[f"S_in{k_in}"], lay.named[f"S_{mv}"], lay.named[f"{to_arm}_out{k_out}"]]
    # Signal timing chosen so the ego meets a red and gets its green 7.5–10 s in.
    cycle = cycle_length_s(lay)
    onset = 16.5 if move == "left" else 0.0  # cycle time of the ego's green onset
    t_go = float(rng.uniform(7.5, 10.0))
    offset = (onset - t_go) % cycle
    length = lay.lane_paths[ego_lanes[0]].length_m
    pop.add(ego_agent(lay, ego_lanes, length - float(rng.uniform(45.0, 65.0)), 11.0))
    inbound = [lay.named[f"{a}_in{m}"] for a in ARMS for m in range(2)]
    pop.random_vehicles(int(rng.integers(6, 11)), inbound)
    pop.random_vehicles(int(rng.integers(3, 7)), inbound, spawn_window_s=14.0)
    drop_ahead_of_ego(pop, ego_lanes[0])
    straight_on = frozenset(lay.named[f"{a}_{m}"] for a in ARMS for m in ("left", "right"))
    cyc_starts = [lay.named[f"{a}_in1"] for a in ARMS]
    pop.cyclists(int(rng.integers(0, 2)), cyc_starts, lateral_m=1.1, avoid=straight_on)
    crossing_peds(pop, rng, offset)
    pop.sidewalk_walkers(int(rng.integers(2, 5)))
    return pop.plan(kind, seed, signal_offset_s=offset, design={"tags": ["signal", f"ego-{move}"]})


def crossing_peds(
    pop: Population,
    rng: RNG,
    offset: float,
    skip_groups: tuple[str, ...] = (),
) -> None:
    """Pedestrians at each signalised crosswalk: mid-crossing if their walk began just before
    the scene, walking up to the curb in time for a walk phase in the scene, else waiting."""
    lay = pop.layout
    walk = walk_windows(lay, NUM_STEPS, 0.1, offset)
    cycle = cycle_length_s(lay)
    for c in lay.crossings:
        if c.walk_group is None or c.walk_group in skip_groups:
            continue
        segs = lay.phase_plan[c.walk_group]
        green_at = sum(d for _, d in segs[:1])
        since = (offset - green_at) % cycle  # seconds since this group's green began
        steps = np.nonzero(walk[c.walk_group])[0]
        for slot in range(int(rng.integers(0, 3))):
            rev = bool(rng.integers(2))
            speed = float(rng.uniform(1.15, 1.5))
            if since < 6.0:
                pop.crossing_walker(
                    c,
                    reverse=rev,
                    slot=slot,
                    approach_m=3.0,
                    s0_m=3.0 + 1.5 + speed * since * float(rng.uniform(0.6, 1.0)),
                    speed_mps=speed,
                )
            elif len(steps):
                early = float(rng.uniform(0.5, 4.0))
                approach = max(speed * (steps[0] * 0.1 - early), 1.0)
                pop.crossing_walker(
                    c, reverse=rev, slot=slot, approach_m=approach + 0.5, speed_mps=speed
                )
            else:
                pop.crossing_walker(
                    c, reverse=rev, slot=slot, approach_m=2.0, s0_m=1.0, speed_mps=speed
                )


def t_junction_scene(rng: RNG, seed: int, kind: str = "t-junction") -> ScenePlan:
    """Stop-controlled T-junction; the ego stops at the sign, waits, and turns when clear."""
    lay = t_junction()
    pop = Population(lay, rng)
    turn = "S_left" if rng.integers(2) == 0 else "S_right"
    out = "W_out" if turn == "S_left" else "E_out"
    ego_lanes = [lay.named["S_in"], lay.named[turn], lay.named[out]]
    length = lay.lane_paths[ego_lanes[0]].length_m
    pop.add(ego_agent(lay, ego_lanes, length - float(rng.uniform(35.0, 55.0)), 10.0))
    major = [lay.named["W_in"], lay.named["E_in"]]
    pop.random_vehicles(int(rng.integers(3, 7)), major)
    pop.random_vehicles(int(rng.integers(3, 7)), major, spawn_window_s=15.0)
    pop.random_vehicles(int(rng.integers(0, 2)), [lay.named["S_in"]], spawn_window_s=10.0)
    if rng.integers(2):
        pop.cyclists(1, major, lateral_m=1.0)
    for _ in range(int(rng.integers(0, 3))):
        c = lay.crossings[0]
        pop.crossing_walker(
            c,
            reverse=bool(rng.integers(2)),
            slot=int(rng.integers(2)),
            approach_m=float(rng.uniform(2.0, 20.0)),
            speed_mps=float(rng.uniform(1.1, 1.5)),
        )
    pop.sidewalk_walkers(int(rng.integers(2, 6)))
    return pop.plan(kind, seed, design={"tags": ["stop-sign", f"ego-{turn[2:]}"]})


def merge_scene(rng: RNG, seed: int, kind: str = "merge") -> ScenePlan:
    """Highway on-ramp; the ego accelerates along the ramp and merges into a gap."""
    lay = merge()
    pop = Population(lay, rng)
    ego_lanes = [lay.named["ramp_0"], lay.named["ramp_1"], lay.named["E1_2"], lay.named["E1_3"]]
    pop.add(ego_agent(lay, ego_lanes, float(rng.uniform(20.0, 50.0)), 16.0))
    east = [lay.named[f"E{m}_{s}"] for m in range(2) for s in range(2)]
    west = [lay.named[f"W{m}_{s}"] for m in range(2) for s in range(1, 4)]
    pop.random_vehicles(int(rng.integers(5, 10)), east)
    pop.random_vehicles(
        int(rng.integers(3, 7)), [lay.named[f"E{m}_0"] for m in range(2)], spawn_window_s=12.0
    )
    pop.random_vehicles(int(rng.integers(4, 9)), west)
    pop.random_vehicles(int(rng.integers(0, 2)), [lay.named["ramp_0"]], spawn_window_s=8.0)
    return pop.plan(kind, seed, design={"tags": ["merge", "ramp"]})


def roundabout_scene(rng: RNG, seed: int, kind: str = "roundabout") -> ScenePlan:
    """Single-lane roundabout; the ego yields at the entry, circulates and takes an exit."""
    lay = roundabout()
    pop = Population(lay, rng)
    n_exit = int(rng.integers(1, 4))  # 1st (right), 2nd (straight), 3rd (left) exit
    order = ["S", "E", "N", "W"]
    lanes = [lay.named["S_in"], lay.named["NS"], lay.named["RS_run"]]
    for q in range(1, n_exit):
        lanes += [lay.named[f"R{order[q]}_pass"], lay.named[f"R{order[q]}_run"]]
    lanes += [lay.named[f"X{order[n_exit]}"], lay.named[f"{order[n_exit]}_out"]]
    length = lay.lane_paths[lanes[0]].length_m
    pop.add(ego_agent(lay, lanes, length - float(rng.uniform(40.0, 60.0)), 10.0))
    inbound = [lay.named[f"{a}_in"] for a in ARMS]
    ring = [lay.named[f"R{a}_run"] for a in ARMS]
    pop.random_vehicles(int(rng.integers(2, 5)), ring)
    pop.random_vehicles(int(rng.integers(3, 6)), inbound)
    pop.random_vehicles(int(rng.integers(3, 6)), inbound, spawn_window_s=14.0)
    drop_ahead_of_ego(pop, lanes[0])
    if rng.integers(2):
        pop.cyclists(1, [ln for ln in inbound if ln != lanes[0]], lateral_m=0.9)
    for c in lay.crossings:
        if rng.uniform() < 0.5:
            pop.crossing_walker(
                c,
                reverse=bool(rng.integers(2)),
                slot=int(rng.integers(2)),
                approach_m=float(rng.uniform(2.0, 15.0)),
                speed_mps=float(rng.uniform(1.1, 1.5)),
            )
    pop.sidewalk_walkers(int(rng.integers(2, 6)))
    return pop.plan(kind, seed, design={"tags": ["roundabout", f"ego-exit-{n_exit}"]})
