"""Placing traffic on a layout: random vehicles, cyclists and pedestrians drawn from a seed.

:class:`Population` collects agents for one scene. Every placement is checked against the
agents already placed (no overlapping boxes at step 0, a safe gap to a vehicle ahead in the same
lane), and :meth:`Population.plan` settles initial speeds so that nobody starts in a state the
traffic model cannot resolve (closing fast on a queue, or unable to stop for a red light).
All randomness comes from the ``numpy.random.Generator`` passed in, in a fixed call order.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from cordillera.scene.generate.agents import (
    CAR_LWH,
    CYCLIST_LWH,
    PEDESTRIAN_LWH,
    SUV_LWH,
    TRUCK_LWH,
    VAN_LWH,
    Agent,
    Driver,
    PedCrossing,
    ScenePlan,
    lane_agent,
)
from cordillera.scene.generate.interact import relations
from cordillera.scene.generate.mapbuild import Crossing, Layout
from cordillera.scene.generate.paths import Path
from cordillera.scene.generate.signals import head_states, walk_windows
from cordillera.scene.generate.traffic import speed_profiles
from cordillera.scene.types import LaneType, ObjectType, SignalState

NUM_STEPS = 181  # 18 s at 10 Hz
DT_S = 0.1
SIZES = (CAR_LWH, SUV_LWH, VAN_LWH, TRUCK_LWH)
SIZE_P = (0.7, 0.15, 0.08, 0.07)
PED_SLOTS_M = (0.4, 1.1)  # offsets right of the walking direction; opposite flows never meet


def random_driver(rng: np.random.Generator) -> Driver:
    """A plausible spread of drivers (headway, acceleration, braking, speed choice)."""
    return Driver(
        headway_s=float(rng.uniform(1.1, 1.8)),
        accel_mps2=float(rng.uniform(1.2, 2.0)),
        decel_mps2=float(rng.uniform(2.0, 3.0)),
        lag_s=0.2,
        speed_factor=float(rng.uniform(0.85, 1.05)),
    )


def random_size(rng: np.random.Generator) -> tuple[float, float, float]:
    """A vehicle box (length, width, height): mostly cars, some SUVs, vans and trucks."""
    return SIZES[int(rng.choice(len(SIZES), p=SIZE_P))]


def random_route(
    layout: Layout, rng: np.random.Generator, start: int, avoid: frozenset[int] = frozenset()
) -> list[int]:
    """Lanes from ``start`` along random successors to a lane without successors (the map
    border), never into ``avoid`` nor twice through one lane (a roundabout is left, not looped).

    A depth-first search in random successor order, so every route ends at the border.
    """
    best: list[int] = [start]
    stack: list[list[int]] = [[start]]
    while stack:
        route = stack.pop()
        nxt = [s for s in layout.successors(route[-1]) if s not in avoid and s not in route]
        if not layout.successors(route[-1]):
            return route
        if len(route) > len(best):
            best = route
        if len(route) < 30:
            for k in rng.permutation(len(nxt))[::-1]:
                stack.append([*route, nxt[int(k)]])
    return best


def start_pose(agent: Agent) -> tuple[np.ndarray, float]:
    """Centre ``(2,)`` and heading of ``agent`` at its initial arc length (lateral offset too)."""
    xy = agent.path.position(agent.s0_m)
    h = float(agent.path.heading(agent.s0_m))
    if agent.lateral_m is not None:
        d = float(np.interp(agent.s0_m, agent.path.s_m, agent.lateral_m))
        xy = xy + d * np.array([-np.sin(h), np.cos(h)])
    return xy, h


def _overlap(a: Agent, b: Agent, margin_m: float) -> bool:
    """Whether the step-0 boxes of ``a`` and ``b``, grown by ``margin_m``, overlap."""
    from cordillera.scene.generate.realise import box_corners

    boxes = []
    for ag in (a, b):
        xy, h = start_pose(ag)
        lw = np.array(ag.size_lwh_m[:2]) + 2 * margin_m
        boxes.append((box_corners(xy, np.array(h), lw), h))
    for _, h in boxes:
        for ang in (h, h + np.pi / 2):
            ax = np.array([np.cos(ang), np.sin(ang)])
            pa, pb = boxes[0][0] @ ax, boxes[1][0] @ ax
            if pa.max() < pb.min() or pb.max() < pa.min():
                return False
    return True


class Population:
    """Agents of one scene under construction."""

    def __init__(self, layout: Layout, rng: np.random.Generator) -> None:
        self.layout = layout
        self.rng = rng
        self.agents: list[Agent] = []
        self._count: dict[str, int] = {}

    def next_id(self, prefix: str) -> str:
        """A fresh object id ``{prefix}_{n}`` (numbered in placement order)."""
        self._count[prefix] = self._count.get(prefix, 0) + 1
        return f"{prefix}_{self._count[prefix]}"

    def fits(self, agent: Agent, *, lane_gap_m: float = 8.0) -> bool:
        """No box overlap at step 0; a vehicle-length-plus gap to same-lane agents."""
        lane = agent.lane_at(agent.s0_m)
        for b in self.agents:
            if b.t_start_s > 0 or agent.t_start_s > 0:
                # Entering from the border: keep entries on one lane 2.5 s apart.
                same_entry = bool(agent.lanes) and bool(b.lanes) and agent.lanes[0] == b.lanes[0]
                if same_entry and abs(agent.t_start_s - b.t_start_s) < 2.5:
                    return False
                continue
            walker = agent.behaviour == "walk" or b.behaviour == "walk"
            if _overlap(agent, b, 0.2 if walker else 0.6):
                return False
            side_by_side = agent.lateral_m is not None or b.lateral_m is not None
            if lane >= 0 and lane == b.lane_at(b.s0_m) and not side_by_side:
                pa = agent.s0_m - agent.lane_start_m[agent.lanes.index(lane)]
                pb = b.s0_m - b.lane_start_m[b.lanes.index(lane)]
                need = (agent.size_lwh_m[0] + b.size_lwh_m[0]) / 2 + lane_gap_m
                if abs(pa - pb) < need:
                    return False
        return True

    def add(self, agent: Agent, **kw: float) -> bool:
        """Add ``agent`` if it :meth:`fits`; returns whether it did."""
        if not self.fits(agent, **kw):
            return False
        self.agents.append(agent)
        return True

    def require(self, agent: Agent) -> None:
        """Add a designed agent; a design whose agent does not fit is rejected."""
        from cordillera.scene.generate.realise import DesignRejected

        if not self.add(agent):
            raise DesignRejected(f"designed agent {agent.object_id} does not fit")

    def vehicle_on(
        self,
        lanes: list[int],
        s0_m: float,
        *,
        object_id: str | None = None,
        v0_mps: float | None = None,
        kind: str = "veh",
        **kw: Any,
    ) -> Agent:
        """A random vehicle (size, driver) on ``lanes`` at ``s0_m`` (not yet added)."""
        size = random_size(self.rng)
        drv = random_driver(self.rng)
        lay = self.layout
        if v0_mps is None:
            v0_mps = float(lay.road_map.lane_speed_limit_mps[lanes[0]]) * drv.speed_factor
            v0_mps *= float(self.rng.uniform(0.8, 1.0))
        return lane_agent(
            lay,
            object_id or self.next_id(kind),
            lanes,
            s0_m,
            v0_mps,
            size_lwh_m=size,
            driver=drv,
            **kw,
        )

    def random_vehicles(
        self,
        count: int,
        starts: list[int],
        *,
        tries: int = 6,
        avoid: frozenset[int] = frozenset(),
        spawn_window_s: float = 0.0,
    ) -> None:
        """Up to ``count`` vehicles starting on random lanes of ``starts``.

        With ``spawn_window_s`` > 0 they enter at the start of their lane at a random time in
        that window (traffic arriving from the map border); else they start anywhere on it.
        """
        for _ in range(count):
            for _ in range(tries):
                start = starts[int(self.rng.integers(len(starts)))]
                lanes = random_route(self.layout, self.rng, start, avoid)
                length = self.layout.lane_paths[start].length_m
                if spawn_window_s > 0:
                    a = self.vehicle_on(
                        lanes, 3.0, t_start_s=float(self.rng.uniform(0.5, spawn_window_s))
                    )
                    a = replace(a, s0_m=a.size_lwh_m[0] / 2 + 0.5)
                else:
                    s0 = float(self.rng.uniform(8.0, max(length - 8.0, 9.0)))
                    a = self.vehicle_on(lanes, s0)
                if self.add(a):
                    break

    def cyclists(
        self,
        count: int,
        starts: list[int],
        *,
        lateral_m: float = 0.0,
        avoid: frozenset[int] = frozenset(),
    ) -> None:
        """Up to ``count`` cyclists on routes from ``starts`` (``lateral_m``: towards the curb)."""
        for _ in range(count):
            for _ in range(6):
                start = starts[int(self.rng.integers(len(starts)))]
                lanes = random_route(self.layout, self.rng, start, avoid)
                s0 = float(
                    self.rng.uniform(5.0, max(self.layout.lane_paths[start].length_m - 5, 6.0))
                )
                speed = float(self.rng.uniform(4.0, 6.0))
                a = lane_agent(
                    self.layout,
                    self.next_id("cyclist"),
                    lanes,
                    s0,
                    speed,
                    object_type=ObjectType.CYCLIST,
                    size_lwh_m=CYCLIST_LWH,
                    driver=Driver(headway_s=1.2, accel_mps2=1.0, decel_mps2=2.0),
                    speed_mps=speed,
                )
                if lateral_m:
                    a = replace(a, lateral_m=np.full(len(a.path.s_m), -lateral_m))
                if self.add(a, lane_gap_m=6.0):
                    break

    def sidewalk_walkers(self, count: int) -> None:
        """Pedestrians strolling along sidewalks, each in its own (sidewalk, side) slot."""
        walks = self.layout.sidewalks
        if not walks:
            return
        slots = [
            (w, rev, k)
            for w in range(len(walks))
            for rev in (False, True)
            for k in range(len(PED_SLOTS_M))
        ]
        order = self.rng.permutation(len(slots))[:count]
        for o in sorted(order.tolist()):
            w, rev, k = slots[o]
            base = walks[w].reversed() if rev else walks[w]
            path = base.offset(-PED_SLOTS_M[k]).resample(1.0)
            s0 = float(self.rng.uniform(2.0, max(path.length_m - 30.0, 3.0)))
            speed = float(self.rng.uniform(1.1, 1.5))
            self.add(
                Agent(
                    self.next_id("ped"),
                    ObjectType.PEDESTRIAN,
                    PEDESTRIAN_LWH,
                    "walk",
                    path,
                    s0_m=s0,
                    v0_mps=speed,
                    speed_mps=speed,
                )
            )

    def crossing_walker(
        self,
        crossing: Crossing,
        *,
        reverse: bool,
        slot: int,
        approach_m: float,
        s0_m: float | None = None,
        speed_mps: float = 1.3,
        away_m: float = 40.0,
    ) -> Agent | None:
        """A pedestrian walking along the sidewalk to ``crossing``, across, and on."""
        a, b = np.array(crossing.a_xy), np.array(crossing.b_xy)
        if reverse:
            a, b = b, a
        c = (b - a) / np.linalg.norm(b - a)
        out = _outward(self.layout, (a + b) / 2)
        a1, b1 = a - 1.5 * c, b + 1.5 * c
        pts = np.array([a1 + approach_m * out, a1, b1, b1 + away_m * out])
        path = Path.from_points(pts).offset(-PED_SLOTS_M[slot]).resample(0.5)
        right = np.array([c[1], -c[0]])  # the slot is right of the walking direction
        curb = a + PED_SLOTS_M[slot] * right
        far = b + PED_SLOTS_M[slot] * right
        s_curb = float(path.s_m[np.argmin(np.linalg.norm(path.xy_m - curb, axis=1))]) - 0.3
        s_far = float(path.s_m[np.argmin(np.linalg.norm(path.xy_m - far, axis=1))])
        agent = Agent(
            self.next_id("ped"),
            ObjectType.PEDESTRIAN,
            PEDESTRIAN_LWH,
            "walk",
            path,
            s0_m=0.5 if s0_m is None else s0_m,
            v0_mps=speed_mps,
            speed_mps=speed_mps,
            crossings=(PedCrossing(s_curb, s_far, crossing.walk_group),),
        )
        return agent if self.add(agent) else None

    def plan(
        self,
        kind: str,
        seed: int,
        *,
        signal_offset_s: float = 0.0,
        design: dict[str, object] | None = None,
    ) -> ScenePlan:
        """The finished plan (the ego must be the agent with id ``ego``)."""
        lay = self.layout
        states = head_states(lay, NUM_STEPS, DT_S, signal_offset_s)
        walk = walk_windows(lay, NUM_STEPS, DT_S, signal_offset_s) if lay.crossings else {}
        ego = next(i for i, a in enumerate(self.agents) if a.object_id == "ego")
        plan = ScenePlan(
            kind,
            seed,
            lay,
            tuple(self.agents),
            ego,
            NUM_STEPS,
            DT_S,
            states,
            walk,
            dict(design or {}),
        )
        return settle_speeds(plan)


def _outward(layout: Layout, xy: np.ndarray) -> np.ndarray:
    """Unit direction along the road at ``xy``, pointing away from the map's centre."""
    lanes = layout.lane_paths
    d = [float(np.min(np.linalg.norm(p.xy_m - xy, axis=1))) for p in lanes]
    p = lanes[int(np.argmin(d))]
    k = int(np.argmin(np.linalg.norm(p.xy_m - xy, axis=1)))
    t = np.array([np.cos(p.heading_rad[k]), np.sin(p.heading_rad[k])])
    return t if t @ xy >= 0 else -t


def settle_speeds(plan: ScenePlan) -> ScenePlan:
    """Lower initial speeds so each vehicle can follow its leader and stop where it must."""
    rel = relations(plan)
    prof = speed_profiles(plan)
    s = np.array([a.s0_m for a in plan.agents])
    lengths = np.array([a.size_lwh_m[0] for a in plan.agents])
    widths = np.array([a.size_lwh_m[1] for a in plan.agents])
    lat = np.array(
        [
            0.0 if a.lateral_m is None else float(np.interp(a.s0_m, a.path.s_m, a.lateral_m))
            for a in plan.agents
        ]
    )
    agents = list(plan.agents)
    for i, a in enumerate(agents):
        if a.behaviour != "idm":
            continue
        v = min(a.v0_mps, float(np.interp(a.s0_m, a.path.s_m, prof[i])))
        front = a.s0_m + a.size_lwh_m[0] / 2
        alive = np.array([b.t_start_s <= 0 for b in agents])
        pj = s + rel.off[i]
        on_run = s + lengths / 2 > rel.lo[:, i]  # j already on the lanes it shares with i
        beside = np.abs(lat - lat[i]) >= (widths + widths[i]) / 2 + 0.4  # e.g. before a cut-in
        ahead = (
            alive & on_run & ~beside & np.isfinite(pj) & (pj > s[i]) & (np.arange(len(agents)) != i)
        )
        if ahead.any():
            j = int(np.argmin(np.where(ahead, pj, np.inf)))
            gap = pj[j] - s[i] - (a.size_lwh_m[0] + agents[j].size_lwh_m[0]) / 2
            v = min(v, max(0.0, (gap - 3.0) / 1.6), agents[j].v0_mps + max(gap - 10.0, 0) / 3)
        for k in range(rel.head.shape[1]):
            h = rel.head[i, k]
            if h < 0 or a.ignore_signals:
                continue
            dist = rel.head_s[i, k] - front
            reach = int(min(plan.num_steps - 1, max(dist, 0) / max(v, 1.0) / plan.dt_s + 30))
            if dist > 0 and np.any(plan.signal_state[h, :reach] != SignalState.GREEN):
                v = min(v, float(np.sqrt(2 * 2.0 * max(dist - 4.0, 0.0))))
        if np.isfinite(rel.stop_sign_s[i]):
            dist = rel.stop_sign_s[i] - front
            if dist > 0:
                v = min(v, float(np.sqrt(2 * 2.0 * max(dist - 4.0, 0.0))))
        agents[i] = replace(a, v0_mps=max(v, 0.0))
    return replace(plan, agents=tuple(agents))


def bike_lanes(layout: Layout) -> list[int]:
    """Indices of the layout's bike lanes."""
    return [
        i for i in range(layout.road_map.num_lanes) if layout.road_map.lane_type[i] == LaneType.BIKE
    ]
