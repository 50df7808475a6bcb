"""Baseline policies that do not reason: log replay, constant velocity and an IDM lane follower.

All three decide for B rollouts at once and fill their plans' meta-actions from their own
trajectories (:mod:`cordillera.policy.meta_fill`); their Chain-of-Causation is None.

* ``log-replay`` — the ego's logged future (privileged: it reads the log). The human
  reference every metric compares against.
* ``constant-velocity`` — the current speed held straight ahead for the whole plan.
* ``idm`` — the ego follows its route (its logged path, the standard route of log-based
  benchmarks) at the speed the Intelligent Driver Model chooses, reacting to the leader on that
  path, red lights and stop signs. The decision is exactly the simulator's reactive-traffic step
  (:func:`cordillera.sim.traffic.reactive_step`) applied to the ego, so the ego and reactive
  traffic share one driver model.

The shared privileged helpers (ego pose, progress along the logged path, scene lookup) live here
too; :mod:`cordillera.policy.pdm` builds on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from cordillera.errors import ConfigError, CordilleraError
from cordillera.policy.base import ObservationRequest, PolicyInput
from cordillera.policy.meta_fill import LaneContext, lane_context, make_plan
from cordillera.policy.plan import PLAN_HORIZON, Plan, to_ego_frame
from cordillera.scene.model import Scene
from cordillera.sim.config import IdmConfig
from cordillera.sim.simulator import Simulator
from cordillera.sim.state import SimState
from cordillera.sim.traffic import (
    reactive_step,
    select_neighbours,
    track_path_progress,
    uniform_path_lookup,
)

PROGRESS_WINDOW_M = 8.0
"""Half-width of the search for the ego's arc length around the previous one: 8 m covers a
step at up to 80 m/s at 10 Hz, so progress must be updated every step (each ``act`` does)."""
PROGRESS_INIT_WINDOW_M = 30.0
"""Half-width of the first search, around the log's arc length at the current step."""
DEFAULT_DT_S = 0.1
"""Plan spacing when no simulator is at hand (VISION.md: 10 Hz)."""


class PolicyError(CordilleraError):
    """A policy given inputs it cannot use (e.g. a privileged policy without the simulator)."""


def require_privileged(inputs: PolicyInput, who: str) -> tuple[Simulator, SimState]:
    """The simulator and state of ``inputs``; raises :class:`PolicyError` when absent."""
    if inputs.sim is None or inputs.state is None:
        raise PolicyError(
            f"policy {who!r} is privileged: build its inputs with ObservationRequest("
            "privileged=True) so they carry the simulator and its state"
        )
    return inputs.sim, inputs.state


@dataclass(frozen=True, eq=False)
class EgoPose:
    """The egos of B rollouts in the simulator's local frame.

    Attributes:
        xy_m: ``(B, 2)`` box centres; heading_rad ``(B,)``; speed_mps ``(B,)`` signed.
        length_m, width_m: ``(B,)`` box size.
    """

    xy_m: torch.Tensor
    heading_rad: torch.Tensor
    speed_mps: torch.Tensor
    length_m: torch.Tensor
    width_m: torch.Tensor


def ego_pose(sim: Simulator, state: SimState) -> EgoPose:
    """The :class:`EgoPose` of every rollout of ``state``."""
    rows = torch.arange(state.batch_size, device=state.step.device)
    ego = sim.ego_index
    size = sim.size_lw_m[rows, ego]
    return EgoPose(
        state.xy_m[rows, ego],
        state.heading_rad[rows, ego],
        state.speed_mps[rows, ego],
        size[:, 0],
        size[:, 1],
    )


class SceneLookup:
    """The scenes a policy was reset on, found again for each rollout by scene id.

    ``reset(scenes)`` may be given one scene per rollout or the simulator batch's unique
    scenes; matching by id handles both. Rollouts whose scene is unknown get None (no map for
    lane labels, object ids shown as ``#<index>``).
    """

    def __init__(self, scenes: Sequence[Scene] = ()) -> None:
        self._by_id = {s.scene_id: s for s in scenes}
        self._key: tuple[int, int] | None = None
        self._cached: tuple[Scene | None, ...] = ()

    def for_rollouts(self, sim: Simulator) -> tuple[Scene | None, ...]:
        """``(B,)`` the scene of each rollout of ``sim`` (cached while ``scene_of`` is kept)."""
        key = (id(sim), id(sim.scene_of))
        if key != self._key:
            ids = sim.batch.scene_ids
            self._cached = tuple(self._by_id.get(ids[u]) for u in sim.scene_of.tolist())
            self._key = key
        return self._cached

    def lanes(self, sim: Simulator, state: SimState) -> LaneContext:
        """The lane context of the egos of ``state`` on their scenes' maps."""
        return lane_context(
            sim, state, [s.map if s is not None else None for s in self.for_rollouts(sim)]
        )


def object_name(scene: Scene | None, index: int) -> str:
    """The scene's id of object ``index`` (``#<index>`` when the scene is unknown)."""
    if scene is None or index >= scene.num_objects:
        return f"#{index}"
    return str(scene.tracks.object_id[index])


class EgoPathTracker:
    """Arc length of each ego along its own logged path, carried from step to step.

    The logged path (:attr:`SceneBatch.path_xyh`, extended straight past the log's end) is the
    route of rule-based policies on logs. The search is windowed around the previous value,
    so a path that passes near itself is not confused; call :meth:`update` every step.
    """

    def __init__(self) -> None:
        self.s_m: torch.Tensor | None = None
        self._step: torch.Tensor | None = None

    def reset(self) -> None:
        self.s_m, self._step = None, None

    def update(self, sim: Simulator, state: SimState) -> torch.Tensor:
        """``(B,)`` the egos' arc lengths along their logged paths at ``state``."""
        b = state.batch_size
        ego = sim.ego_index.view(b, 1)
        xy = torch.gather(state.xy_m, 1, ego.unsqueeze(-1).expand(b, 1, 2))
        fresh = (
            self.s_m is None
            or self._step is None
            or self.s_m.shape[0] != b
            or bool((state.step < self._step).any())  # a new episode without reset()
        )
        if fresh:
            prev = torch.gather(sim.log_s_at(state.step), 1, ego)
            window = PROGRESS_INIT_WINDOW_M
        else:
            assert self.s_m is not None
            prev, window = self.s_m.view(b, 1), PROGRESS_WINDOW_M
        s = track_path_progress(sim.batch, sim.scene_of, ego, xy, prev, window)[:, 0]
        # The search lands on the path table's grid (0.5 m); slide along the tangent there to
        # the exact foot point, or plans that start at s would jump by up to 0.25 m between
        # decisions (0.5 m/s² of spurious acceleration through the tracker).
        foot, heading = path_points(sim, s[:, None])
        d = xy[:, 0] - foot[:, 0]
        along = d[:, 0] * torch.cos(heading[:, 0]) + d[:, 1] * torch.sin(heading[:, 0])
        spacing = sim.batch.path_spacing_m
        s = (s + along.clamp(-spacing, spacing)).clamp_min(0.0)
        self.s_m, self._step = s, state.step
        return s


def path_points(sim: Simulator, s_m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, T, 2)`` positions and ``(B, T)`` headings (local frame) at arc lengths
    ``s_m (B, T)`` along each rollout's ego logged path."""
    b = s_m.shape[0]
    xy, heading = uniform_path_lookup(
        sim.batch, sim.scene_of, s_m.unsqueeze(1), sim.ego_index.view(b, 1)
    )
    return xy[:, 0], heading[:, 0]


def constant_accel_distances(
    speed_mps: torch.Tensor,
    accel_mps2: torch.Tensor,
    max_speed_mps: torch.Tensor,
    steps: int,
    dt_s: float,
) -> torch.Tensor:
    """``(B, steps)`` distance covered after 1..steps steps holding ``accel_mps2 (B,)`` from
    ``speed_mps (B,)``, the speed kept within ``[0, max(speed, max_speed_mps)]``."""
    t = torch.arange(1, steps + 1, device=speed_mps.device, dtype=speed_mps.dtype) * dt_s
    v0 = speed_mps.clamp_min(0.0)
    cap = torch.maximum(v0, max_speed_mps)
    v = (v0[:, None] + accel_mps2[:, None] * t).clamp_min(0.0)
    v = torch.minimum(v, cap[:, None])
    prev = torch.cat([v0[:, None], v[:, :-1]], 1)
    return torch.cumsum(0.5 * (prev + v) * dt_s, 1)


@dataclass(frozen=True)
class LogReplayConfig:
    """Configuration of ``log-replay``.

    Attributes:
        lane_meta_actions: label the lane family from the map (costs a map query per scene
            and step); False leaves ``Plan.lane`` at -1.
    """

    lane_meta_actions: bool = True


@dataclass(frozen=True)
class ConstantVelocityConfig:
    """Configuration of ``constant-velocity``.

    Attributes:
        lane_meta_actions: label the lane family from the map (the policy then asks for the
            privileged state, only to place its plan on the map).
        dt_s: plan spacing when the inputs carry no simulator (seconds).
    """

    lane_meta_actions: bool = True
    dt_s: float = DEFAULT_DT_S

    def __post_init__(self) -> None:
        if not self.dt_s > 0:
            raise ConfigError(f"ConstantVelocityConfig.dt_s must be > 0, got {self.dt_s!r}")


@dataclass(frozen=True)
class IdmPolicyConfig:
    """Configuration of ``idm``.

    Attributes:
        idm: the driver model (defaults: the simulator's reactive traffic, Treiber et al. 2000).
        desired_speed_fraction: desired speed as a fraction of the fastest the ego drove in its
            log (the route's logged max speed; logs carry no reliable speed limits).
        min_desired_speed_mps: floor of the desired speed (0: an ego that stood still in its
            log stays still).
        lane_meta_actions: label the lane family from the map.
    """

    idm: IdmConfig = field(default_factory=IdmConfig)
    desired_speed_fraction: float = 1.0
    min_desired_speed_mps: float = 0.0
    lane_meta_actions: bool = True

    def __post_init__(self) -> None:
        if not self.desired_speed_fraction > 0:
            raise ConfigError(
                "IdmPolicyConfig.desired_speed_fraction must be > 0, got "
                f"{self.desired_speed_fraction!r}"
            )
        if not self.min_desired_speed_mps >= 0:
            raise ConfigError(
                "IdmPolicyConfig.min_desired_speed_mps must be >= 0, got "
                f"{self.min_desired_speed_mps!r}"
            )


class LogReplayPolicy:
    """``log-replay``: the ego's logged future, converted to the ego frame (privileged)."""

    name = "log-replay"

    def __init__(self, config: LogReplayConfig | None = None) -> None:
        self.config = config or LogReplayConfig()
        self.request = ObservationRequest(privileged=True)
        self._scenes = SceneLookup()

    def reset(self, scenes: Sequence[Scene]) -> None:
        self._scenes = SceneLookup(scenes)

    def act(self, inputs: PolicyInput) -> Plan:
        sim, state = require_privileged(inputs, self.name)
        b = state.batch_size
        pose = ego_pose(sim, state)
        local = sim.log_plan(state, agents=sim.ego_index.view(b, 1), horizon=PLAN_HORIZON)
        waypoints = to_ego_frame(local[:, 0], pose.xy_m, pose.heading_rad)
        lanes = self._scenes.lanes(sim, state) if self.config.lane_meta_actions else None
        return make_plan(waypoints, sim.dt_s, lanes)


class ConstantVelocityPolicy:
    """``constant-velocity``: the current speed and heading held for the whole plan."""

    name = "constant-velocity"

    def __init__(self, config: ConstantVelocityConfig | None = None) -> None:
        self.config = config or ConstantVelocityConfig()
        self.request = ObservationRequest(privileged=self.config.lane_meta_actions)
        self._scenes = SceneLookup()

    def reset(self, scenes: Sequence[Scene]) -> None:
        self._scenes = SceneLookup(scenes)

    def act(self, inputs: PolicyInput) -> Plan:
        sim, state = inputs.sim, inputs.state
        dt = sim.dt_s if sim is not None else self.config.dt_s
        v = inputs.ego_speed_mps.float()
        t = torch.arange(1, PLAN_HORIZON + 1, device=v.device, dtype=v.dtype) * dt
        x = v[:, None] * t  # straight along the ego's heading (ego +x)
        waypoints = torch.stack([x, torch.zeros_like(x)], -1)
        lanes = None
        if self.config.lane_meta_actions and sim is not None and state is not None:
            lanes = self._scenes.lanes(sim, state)
        return make_plan(waypoints, dt, lanes)


class IdmPolicy:
    """``idm``: follow the logged path at the IDM speed (leader, red lights, stop signs).

    Every step the ego's acceleration is the simulator's reactive-traffic step
    (:func:`reactive_step`) evaluated for the ego — same leader search along path samples,
    same light and stop-sign rules, same IDM — and the plan holds that acceleration along the
    path. Re-deciding every step makes it the closed-loop IDM driver; the tracker recovers the
    acceleration exactly from the plan's waypoint one second ahead.
    """

    name = "idm"

    def __init__(self, config: IdmPolicyConfig | None = None) -> None:
        self.config = config or IdmPolicyConfig()
        self.request = ObservationRequest(privileged=True)
        self._scenes = SceneLookup()
        self._progress = EgoPathTracker()
        self._stop_wait_s: torch.Tensor | None = None

    def reset(self, scenes: Sequence[Scene]) -> None:
        self._scenes = SceneLookup(scenes)
        self._progress.reset()
        self._stop_wait_s = None

    def desired_speed(self, sim: Simulator) -> torch.Tensor:
        """``(B,)`` the egos' desired speeds (m/s)."""
        cfg = self.config
        rows = torch.arange(sim.batch_size, device=sim.ego_index.device)
        logged = sim.desired_speed_mps[rows, sim.ego_index]
        return (cfg.desired_speed_fraction * logged).clamp_min(cfg.min_desired_speed_mps)

    def act(self, inputs: PolicyInput) -> Plan:
        waypoints = self.plan_waypoints(inputs)
        sim, state = require_privileged(inputs, self.name)
        lanes = self._scenes.lanes(sim, state) if self.config.lane_meta_actions else None
        return make_plan(waypoints, sim.dt_s, lanes)

    def plan_waypoints(self, inputs: PolicyInput) -> torch.Tensor:
        """``(B, K, 2)`` the plan's waypoints in the ego frame, without meta-actions (for
        callers that only drive the plan, e.g. counterfactual re-simulation)."""
        sim, state = require_privileged(inputs, self.name)
        cfg = self.config.idm
        b, n = state.valid.shape
        ego = sim.ego_index.view(b, 1)
        s = self._progress.update(sim, state)
        if self._stop_wait_s is None or self._stop_wait_s.shape[0] != b:
            self._stop_wait_s = torch.zeros(b, device=s.device)
        desired = self.desired_speed(sim)
        # The ego as the single reactive row: its own path progress, stop-sign wait and
        # desired speed written into the per-object tensors reactive_step reads.
        neighbours = select_neighbours(
            ego,
            state.xy_m,
            state.heading_rad,
            state.valid,
            sim.size_lw_m[..., 0],
            cfg.num_neighbours,
            cfg.lookahead_m + 20.0,
        )
        out = reactive_step(
            sim.batch,
            sim.scene_of,
            state.step,
            ego,
            torch.ones_like(ego, dtype=torch.bool),
            state.xy_m,
            state.heading_rad,
            state.speed_mps,
            state.valid,
            state.path_s_m.scatter(1, ego, s.view(b, 1)),
            state.stop_wait_s.scatter(1, ego, self._stop_wait_s.view(b, 1)),
            neighbours,
            torch.zeros(b, n, device=s.device).scatter(1, ego, desired.view(b, 1)),
            sim.size_lw_m,
            cfg,
        )
        accel, self._stop_wait_s = out[3][:, 0], out[5][:, 0]
        pose = ego_pose(sim, state)
        ahead = constant_accel_distances(pose.speed_mps, accel, desired, PLAN_HORIZON, sim.dt_s)
        local, _ = path_points(sim, s[:, None] + ahead)
        return to_ego_frame(local, pose.xy_m, pose.heading_rad)


__all__ = [
    "ConstantVelocityConfig",
    "ConstantVelocityPolicy",
    "EgoPathTracker",
    "EgoPose",
    "IdmPolicy",
    "IdmPolicyConfig",
    "LogReplayConfig",
    "LogReplayPolicy",
    "PolicyError",
    "SceneLookup",
    "constant_accel_distances",
    "ego_pose",
    "object_name",
    "path_points",
    "require_privileged",
]
