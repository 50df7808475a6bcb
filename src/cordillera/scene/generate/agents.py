"""What a generated scene is made of before it is simulated: agents, their paths, the plan.

An :class:`Agent` is one object with a reference :class:`~.paths.Path` and a behaviour
(``idm``: a vehicle or cyclist following lanes; ``walk``: a pedestrian; ``static``: parked or
broken down). A :class:`ScenePlan` is a layout plus agents plus signal timing — everything
:func:`~.traffic.simulate` needs, and what a counterfactual re-simulation edits (drop an agent,
simulate again).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from cordillera.scene.generate.mapbuild import Layout
from cordillera.scene.generate.paths import F64, Path, concat
from cordillera.scene.types import ObjectType

CAR_LWH = (4.5, 1.9, 1.5)
SUV_LWH = (4.9, 2.0, 1.8)
VAN_LWH = (5.6, 2.1, 2.4)
TRUCK_LWH = (9.0, 2.5, 3.4)
PEDESTRIAN_LWH = (0.6, 0.6, 1.75)
CYCLIST_LWH = (1.8, 0.6, 1.7)


@dataclass(frozen=True)
class Driver:
    """Intelligent-driver-model parameters (Treiber et al. 2000) plus a response lag.

    Attributes:
        headway_s: desired time headway T.
        accel_mps2: maximum acceleration a.
        decel_mps2: comfortable deceleration b.
        min_gap_m: standstill gap s0.
        lag_s: first-order lag of the applied acceleration — a driver's reaction and the
            vehicle's response; it is what makes a brake onset follow its cause, not coincide.
        speed_factor: multiplies each lane's speed limit to give this driver's desired speed.
    """

    headway_s: float = 1.4
    accel_mps2: float = 1.6
    decel_mps2: float = 2.5
    min_gap_m: float = 2.0
    lag_s: float = 0.2
    speed_factor: float = 1.0


EGO_DRIVER = Driver(headway_s=1.5, accel_mps2=1.4, decel_mps2=2.2, lag_s=0.35)


@dataclass(frozen=True)
class PedCrossing:
    """Where a pedestrian path crosses a road: from ``s_curb_m`` to ``s_far_m`` on the path."""

    s_curb_m: float
    s_far_m: float
    walk_group: str | None


@dataclass(frozen=True, eq=False)
class Agent:
    """One object of a generated scene, before simulation.

    Attributes:
        object_id: the track id (``"ego"`` for the ego).
        object_type: what it is.
        size_lwh_m: box length, width, height.
        behaviour: ``idm`` (lane follower), ``walk`` (pedestrian) or ``static``.
        path: reference path; the agent's centre moves along it (plus ``lateral_m``).
        lanes: lane indices the path is made of (empty for off-lane agents).
        lane_start_m: arc length on ``path`` where each of ``lanes`` begins.
        s0_m: initial arc length of the box centre.
        v0_mps: initial speed.
        speed_mps: desired speed where no lane gives one (pedestrians, cyclists' cap).
        driver: IDM parameters (``idm`` agents).
        t_start_s: spawn time; before it the agent does not exist (valid = False).
        lateral_m: ``(P,)`` lateral offset (left positive) at each vertex of ``path``, or None.
        ignore_signals: runs red lights (a red-light runner).
        brake_at_s: scripted hard brake start time, or None.
        brake_decel_mps2: scripted brake deceleration.
        brake_to_mps: speed the scripted brake ends at.
        slow_after_m: ``(s, v)``: from arc length ``s`` on, the desired speed drops to ``v``.
        crossings: road crossings on a pedestrian's path.
        walk_at_s: a pedestrian stands until this time (a jaywalker's emergence).
        heedless: a pedestrian that never waits for signals or vehicles (a jaywalker).
        protected: never dropped when resolving collisions (the ego, a designed cause).
    """

    object_id: str
    object_type: ObjectType
    size_lwh_m: tuple[float, float, float]
    behaviour: str
    path: Path
    lanes: tuple[int, ...] = ()
    lane_start_m: tuple[float, ...] = ()
    s0_m: float = 0.0
    v0_mps: float = 0.0
    speed_mps: float = 30.0
    driver: Driver = Driver()
    t_start_s: float = 0.0
    lateral_m: F64 | None = None
    ignore_signals: bool = False
    brake_at_s: float | None = None
    brake_decel_mps2: float = 0.0
    brake_to_mps: float = 0.0
    slow_after_m: tuple[float, float] | None = None
    crossings: tuple[PedCrossing, ...] = ()
    walk_at_s: float = 0.0
    heedless: bool = False
    protected: bool = False

    def lane_at(self, s_m: float) -> int:
        """The lane under arc length ``s_m`` (-1 for off-lane agents)."""
        if not self.lanes:
            return -1
        k = int(np.searchsorted(np.asarray(self.lane_start_m), s_m, side="right")) - 1
        return self.lanes[max(k, 0)]


def lane_route(layout: Layout, lanes: list[int]) -> tuple[Path, tuple[float, ...]]:
    """The path along connected ``lanes`` and where each lane starts on it."""
    paths = [layout.lane_paths[k] for k in lanes]
    starts = np.concatenate([[0.0], np.cumsum([p.length_m for p in paths])[:-1]])
    return concat(paths), tuple(float(x) for x in starts)


def lane_agent(
    layout: Layout,
    object_id: str,
    lanes: list[int],
    s0_m: float,
    v0_mps: float,
    *,
    object_type: ObjectType = ObjectType.VEHICLE,
    size_lwh_m: tuple[float, float, float] = CAR_LWH,
    driver: Driver = Driver(),
    **kw: Any,
) -> Agent:
    """An ``idm`` agent driving along ``lanes`` from arc length ``s0_m``."""
    path, starts = lane_route(layout, lanes)
    return Agent(
        object_id,
        object_type,
        size_lwh_m,
        "idm",
        path,
        tuple(lanes),
        starts,
        s0_m=s0_m,
        v0_mps=v0_mps,
        driver=driver,
        **kw,
    )


@dataclass(frozen=True, eq=False)
class ScenePlan:
    """A layout, its agents and signal timing: the input of one simulation.

    Attributes:
        kind: scene kind (layout or long-tail variant name).
        seed: the seed it was drawn with.
        layout: the map and its lane relations.
        agents: every object; ``agents[ego]`` is the ego.
        ego: index of the ego in ``agents``.
        num_steps: number of 0.1 s steps.
        dt_s: step, seconds.
        signal_state: ``(S, T)`` int8 :class:`~cordillera.scene.types.SignalState` per head.
        walk: walk group -> ``(T,)`` bool, when pedestrians may start crossing.
        design: long-tail design facts (``designed_cause_object_id``...), JSON-serialisable.
    """

    kind: str
    seed: int
    layout: Layout
    agents: tuple[Agent, ...]
    ego: int
    num_steps: int
    dt_s: float
    signal_state: np.ndarray
    walk: dict[str, np.ndarray] = field(default_factory=dict)
    design: dict[str, object] = field(default_factory=dict)

    def without(self, object_ids: set[str]) -> ScenePlan:
        """The same plan with the agents named in ``object_ids`` removed (never the ego)."""
        ego_id = self.agents[self.ego].object_id
        if ego_id in object_ids:
            raise ValueError("the ego cannot be removed from a plan")
        keep = tuple(a for a in self.agents if a.object_id not in object_ids)
        ego = next(i for i, a in enumerate(keep) if a.object_id == ego_id)
        return replace(self, agents=keep, ego=ego)

    def index(self, object_id: str) -> int:
        """Position of the agent ``object_id`` in :attr:`agents`."""
        return next(i for i, a in enumerate(self.agents) if a.object_id == object_id)
