"""``pdm``: a PDM-Closed-like rule-based planner that states its decision as a Chain-of-Causation.

PDM-Closed (Dauner et al., CoRL 2023; the strongest rule-based planner of nuPlan and NAVSIM)
in three steps, batched over B rollouts × P proposals:

1. **Proposals** (:mod:`cordillera.policy.pdm_proposals`): IDM speed profiles along the route
   — the ego's logged path, the standard route of log benchmarks — at target speeds of
   0 … 100 % of the reference speed (the fastest the ego drove in its log; logs carry no
   reliable speed limits) × lateral offsets of −1, 0, +1 m, reacting to constant-velocity
   forecasts of the objects on each path, red lights and stop signs. An offset is reached
   along a quintic curve that starts where the previous plan's curve is (offset, slope,
   curvature), so consecutive plans join smoothly.
2. **Forecast** (:class:`Forecaster`): every proposal is driven for ``forecast_s`` (4 s) *in
   the simulator itself*, through the same plan tracker and kinematic model as in
   evaluation: one simulator over B · P rollouts (each rollout's state repeated P times), one
   call per step for all of them. Other objects move at constant velocity
   (``forecast_agents="constant-velocity"``: PDM's forecast, which the planner could compute
   from what it sees, and about 5× cheaper than reactive traffic), or as the evaluation's
   traffic model moves them (``"simulator"``: reactive IDM and logged pedestrians — an oracle).
3. **Scoring** (:mod:`cordillera.policy.pdm_scoring`): the evaluation's per-step checks
   (:meth:`Simulator.checks`) and NAVSIM metric functions on the forecast, combined PDM-style
   (multiplicative penalties × weighted average, EPDMS weights); the best proposal is
   executed, with a small hysteresis on lateral offsets (``nudge_margin``,
   ``switch_margin``) so the ego does not weave.

The planner re-plans every ``replan_every_steps`` (5 steps = 0.5 s) and in between re-issues
the last plan, advanced by the steps elapsed and seen from the ego's current pose (the plan is
kept in the simulator's frame, 64 + 5 waypoints long, so the shifted plan is still 64 long);
its meta-actions and Chain-of-Causation are those of the decision
(:mod:`cordillera.policy.pdm_coc`). On the 10 nuScenes-mini scenes with reactive traffic the
whole batched evaluation (≈ 200 steps) takes ≈ 25 s on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from cordillera.errors import ConfigError
from cordillera.policy.base import ObservationRequest, PolicyInput
from cordillera.policy.baselines import (
    EgoPathTracker,
    SceneLookup,
    ego_pose,
    require_privileged,
)
from cordillera.policy.meta_actions import MetaActionSummary
from cordillera.policy.meta_fill import fill_meta_actions, plan_from_summary
from cordillera.policy.pdm_coc import ExplainInputs, explain
from cordillera.policy.pdm_obstacles import stop_sign_wait
from cordillera.policy.pdm_proposals import (
    Proposals,
    ProposalSpec,
    build_proposals,
    ego_lateral_state,
    hermite_offset,
)
from cordillera.policy.pdm_scoring import PdmWeights, ProposalScores, score_proposals
from cordillera.policy.plan import PLAN_HORIZON, ChainOfCausation, Plan, to_ego_frame
from cordillera.scene.model import Scene
from cordillera.sim.config import IdmConfig
from cordillera.sim.rollout import RolloutRecorder, RolloutTrace
from cordillera.sim.simulator import Simulator
from cordillera.sim.state import SimState

ForecastAgents = Literal["constant-velocity", "simulator"]
STITCH_TOLERANCE_M = 0.5
"""Largest distance across the path between the ego and the previous plan at which a new
decision continues that plan's lateral curve rather than restarting from the ego's pose."""
TIE_BREAK = 1e-4
"""Score handicap per metre of lateral offset and per unit of speed fraction: among equal
scores the centre path and then the slower proposal win (deterministic, and cautious)."""


@dataclass(frozen=True)
class PdmConfig:
    """Configuration of ``pdm``.

    Attributes:
        speed_fractions: IDM target speeds, as fractions of the reference speed (PDM-Closed
            uses 20–100 %; 0 adds an explicit comfortable stop).
        lateral_offsets_m: path offsets, left positive (PDM-Closed: −1, 0, +1 m); the centre
            first.
        forecast_s: how long every proposal is simulated and scored (NAVSIM: 4 s).
        replan_every_steps: steps between decisions; the plan is re-used in between.
        forecast_agents: how other objects move in the forecast (see the module docstring).
        idm: the ego's driver model for the proposals (defaults: reactive traffic's).
        reference_speed_floor_mps: lower bound of the reference speed (0: an ego that stood
            in its log stands).
        num_candidates: objects tested as leaders per rollout (nearest to the path).
        path_spacing_m, path_length_m: the path samples objects are projected on.
        lateral_ramp_s, lateral_ramp_min_m: an offset is reached over
            ``max(min, speed × s)`` metres.
        stop_sign_wait_s: how long to stand at a stop sign.
        weights: weights of the averaged sub-scores (NAVSIM v2 EPDMS).
        nudge_margin, switch_margin: score handicaps of a proposal off the centre path and
            of one on another offset than the last decision's (the centre at the start). A
            nudge must gain more than their sum (0.10), and the ego returns to the centre
            once that is no worse by more than their difference (0.04). Without this
            hysteresis offsets win and lose by small margins (progress projected on a curved
            route, a lane-keeping run starting or not) and the ego weaves from decision to
            decision, which fails extended comfort. PDM-Closed has no such terms.
        cause_min_speed_loss_mps: speed a constraint must take away to be named a cause.
        lane_meta_actions: label the lane family from the map.
    """

    speed_fractions: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    lateral_offsets_m: tuple[float, ...] = (0.0, -1.0, 1.0)
    forecast_s: float = 4.0
    replan_every_steps: int = 5
    forecast_agents: ForecastAgents = "constant-velocity"
    idm: IdmConfig = field(default_factory=IdmConfig)
    reference_speed_floor_mps: float = 0.0
    num_candidates: int = 32
    path_spacing_m: float = 1.0
    path_length_m: float = 200.0
    lateral_ramp_s: float = 3.0
    lateral_ramp_min_m: float = 10.0
    stop_sign_wait_s: float = 1.0
    weights: PdmWeights = field(default_factory=PdmWeights)
    nudge_margin: float = 0.07
    switch_margin: float = 0.03
    cause_min_speed_loss_mps: float = 1.0
    lane_meta_actions: bool = True

    def __post_init__(self) -> None:
        if not self.speed_fractions or not all(
            math.isfinite(f) and f >= 0 for f in self.speed_fractions
        ):
            raise ConfigError(
                f"PdmConfig.speed_fractions must be non-empty and >= 0, got {self.speed_fractions}"
            )
        if not self.lateral_offsets_m or not all(math.isfinite(o) for o in self.lateral_offsets_m):
            raise ConfigError(
                "PdmConfig.lateral_offsets_m must be non-empty and finite, got "
                f"{self.lateral_offsets_m}"
            )
        if not isinstance(self.replan_every_steps, int) or self.replan_every_steps < 1:
            raise ConfigError(
                f"PdmConfig.replan_every_steps must be an int >= 1, got {self.replan_every_steps!r}"
            )
        if self.forecast_agents not in ("constant-velocity", "simulator"):
            raise ConfigError(
                "PdmConfig.forecast_agents must be 'constant-velocity' or 'simulator', got "
                f"{self.forecast_agents!r}"
            )
        if not isinstance(self.num_candidates, int) or self.num_candidates < 1:
            raise ConfigError(
                f"PdmConfig.num_candidates must be an int >= 1, got {self.num_candidates!r}"
            )
        for name in (
            "forecast_s",
            "path_spacing_m",
            "path_length_m",
            "lateral_ramp_s",
            "lateral_ramp_min_m",
        ):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ConfigError(f"PdmConfig.{name} must be > 0, got {v!r}")
        for name in (
            "reference_speed_floor_mps",
            "stop_sign_wait_s",
            "nudge_margin",
            "switch_margin",
            "cause_min_speed_loss_mps",
        ):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"PdmConfig.{name} must be >= 0, got {v!r}")

    def spec(self) -> ProposalSpec:
        """The proposal part of the configuration."""
        return ProposalSpec(
            speed_fractions=tuple(float(f) for f in self.speed_fractions),
            lateral_offsets_m=tuple(float(o) for o in self.lateral_offsets_m),
            idm=self.idm,
            num_candidates=self.num_candidates,
            path_spacing_m=self.path_spacing_m,
            path_length_m=self.path_length_m,
            lateral_ramp_s=self.lateral_ramp_s,
            lateral_ramp_min_m=self.lateral_ramp_min_m,
        )

    def forecast_steps(self, dt_s: float) -> int:
        """Simulated steps per forecast (at least 4: the comfort fits need them)."""
        return max(4, round(self.forecast_s / dt_s))


@dataclass(frozen=True, eq=False)
class PdmDecision:
    """One decision for B rollouts, re-used until the next.

    Attributes:
        step: ``(B,)`` log step of the decision.
        path_s_m: ``(B,)`` the egos' arc lengths along their paths at the decision.
        plan_local_m: ``(B, 64 + replan_every_steps, 2)`` the chosen waypoints in the
            simulator's frame (one per step after the decision).
        summary: meta-actions of the decision's 64-step plan.
        coc: B Chain-of-Causation traces.
        chosen: ``(B,)`` index of the executed proposal.
        proposals, scores: every proposal and its score (for inspection and tests).
    """

    step: torch.Tensor
    path_s_m: torch.Tensor
    plan_local_m: torch.Tensor
    summary: MetaActionSummary
    coc: tuple[ChainOfCausation, ...]
    chosen: torch.Tensor
    proposals: Proposals
    scores: ProposalScores


def repeat_state(state: SimState, times: int) -> SimState:
    """``state`` with every rollout repeated ``times`` times in a row (rollout-major)."""
    changes = {
        f.name: getattr(state, f.name).repeat_interleave(times, 0)
        for f in dataclasses.fields(state)
        if isinstance(getattr(state, f.name), torch.Tensor)
    }
    return state.replace(**changes)


def constant_velocity_state(state: SimState, ego_index: torch.Tensor) -> SimState:
    """``state`` with every existing object driven at constant velocity.

    Every valid object becomes "controlled"; the forecast gives them zero acceleration and
    curvature, so they keep speed and heading (objects that appear later replay the log).
    Reactive rows are emptied, so no IDM work is done.
    """
    b = state.batch_size
    controlled = state.valid.clone()
    controlled[torch.arange(b, device=controlled.device), ego_index] = True
    return state.replace(
        controlled=controlled,
        reactive=torch.zeros_like(state.reactive),
        reactive_rows=state.reactive_rows[:, :0],
        reactive_rows_ok=state.reactive_rows_ok[:, :0],
        neighbours=state.neighbours[:, :0],
    )


class Forecaster:
    """Simulates B × P proposals at once on a copy of a simulator (rollouts repeated P times).

    Args:
        sim: the evaluation's simulator (its scene batch is shared, not copied).
        num_proposals: P.
        agents: how other objects move (see :class:`PdmConfig`).
    """

    def __init__(self, sim: Simulator, num_proposals: int, agents: ForecastAgents) -> None:
        self.source = sim
        self.scene_of = sim.scene_of
        self.num_proposals = num_proposals
        self.agents = agents
        config = sim.config
        if agents == "constant-velocity":
            # No reactive traffic to run, no compilation to wait for.
            config = dataclasses.replace(config, traffic="log", compile=False)
        config = dataclasses.replace(config, start_step=0)
        self.sim = Simulator(
            sim.batch, config, scene_of=sim.scene_of.repeat_interleave(num_proposals)
        )

    def matches(self, sim: Simulator, num_proposals: int, agents: ForecastAgents) -> bool:
        return (
            sim is self.source
            and sim.scene_of is self.scene_of
            and num_proposals == self.num_proposals
            and agents == self.agents
        )

    def run(self, state: SimState, plans_local_m: torch.Tensor, steps: int) -> RolloutTrace:
        """Drive ``plans_local_m (B * P, K, 2)`` (rollout-major) for ``steps`` steps from
        ``state`` (B rollouts), re-issuing each plan from its next waypoint every step as the
        evaluation loop does; returns the ego's trace."""
        fs = self.sim
        st = repeat_state(state, self.num_proposals)
        if self.agents == "constant-velocity":
            st = constant_velocity_state(st, fs.ego_index)
        ego = fs.ego_index.view(-1, 1)
        recorder = RolloutRecorder(fs.scene_of, ego)
        checks = None
        for j in range(steps):  # time steps; all rollouts and proposals in each call
            nxt = fs.step_plan(st, plans_local_m[:, None, j:], ego)
            checks = fs.checks(ego, st, nxt, checks)
            recorder.append(nxt, checks)
            st = nxt
        return recorder.finish(fs.batch)


class PdmPolicy:
    """``pdm``: PDM-Closed-like planning with a Chain-of-Causation (see the module docstring)."""

    name = "pdm"

    def __init__(self, config: PdmConfig | None = None) -> None:
        self.config = config or PdmConfig()
        self.request = ObservationRequest(privileged=True)
        self._spec = self.config.spec()
        self._scenes = SceneLookup()
        self._progress = EgoPathTracker()
        self._forecaster: Forecaster | None = None
        self._decision: PdmDecision | None = None
        self._stop_wait_s: torch.Tensor | None = None
        self._offset_m: torch.Tensor | None = None

    @property
    def last_decision(self) -> PdmDecision | None:
        """The decision the current plan comes from (None before the first ``act``)."""
        return self._decision

    def reset(self, scenes: Sequence[Scene]) -> None:
        self._scenes = SceneLookup(scenes)
        self._progress.reset()
        self._decision = None
        self._stop_wait_s = None
        self._offset_m = None

    def act(self, inputs: PolicyInput) -> Plan:
        sim, state = require_privileged(inputs, self.name)
        s0 = self._progress.update(sim, state)  # every step: the search window is local
        dec = self._decision
        if dec is None or dec.step.shape != state.step.shape:
            dec = None
        else:
            elapsed = state.step - dec.step
            if bool(((elapsed < 0) | (elapsed >= self.config.replan_every_steps)).any()):
                dec = None
        if dec is None:
            dec = self._decision = self.decide(sim, state, s0)
        return self._plan_at(sim, state, dec)

    def _plan_at(self, sim: Simulator, state: SimState, dec: PdmDecision) -> Plan:
        """The decision's plan advanced to ``state`` and seen from the ego's pose there."""
        b = state.batch_size
        k = (state.step - dec.step).clamp_min(0)
        idx = k[:, None] + torch.arange(PLAN_HORIZON, device=k.device)
        idx = idx.clamp(max=dec.plan_local_m.shape[1] - 1)
        local = torch.gather(dec.plan_local_m, 1, idx.unsqueeze(-1).expand(b, PLAN_HORIZON, 2))
        pose = ego_pose(sim, state)
        waypoints = to_ego_frame(local, pose.xy_m, pose.heading_rad)
        return plan_from_summary(waypoints, dec.summary, dec.coc)

    def reference_speed(self, sim: Simulator) -> torch.Tensor:
        """``(B,)`` the speed of fraction 1.0: the fastest the ego drove in its log."""
        rows = torch.arange(sim.batch_size, device=sim.ego_index.device)
        logged = sim.desired_speed_mps[rows, sim.ego_index]
        return logged.clamp_min(self.config.reference_speed_floor_mps)

    def _lateral_start(
        self, sim: Simulator, state: SimState, s0_m: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Where the new proposals' lateral curves start: on the previous plan's curve (its
        offset, slope and curvature) where the ego tracks it, so consecutive plans join
        without a kink that the tracker would turn into a steering jerk at every decision;
        else at the ego's own offset and heading, unbent."""
        offset, slope = ego_lateral_state(sim, state, s0_m)
        prev = self._decision
        if prev is None or prev.path_s_m.shape != s0_m.shape:
            return offset, slope, torch.zeros_like(offset)
        props = prev.proposals
        held, held_slope, held_curvature = hermite_offset(
            s0_m - prev.path_s_m,
            props.lateral_start_m,
            props.lateral_slope,
            props.lateral_curvature,
            props.offset_m[prev.chosen],
            props.lateral_ramp_m,
        )
        near = (held - offset).abs() < STITCH_TOLERANCE_M
        return (
            torch.where(near, held, offset),
            torch.where(near, held_slope, slope),
            torch.where(near, held_curvature, 0.0),
        )

    def decide(self, sim: Simulator, state: SimState, s0_m: torch.Tensor) -> PdmDecision:
        """Build, forecast and score the proposals at ``state``; explain the best one."""
        cfg = self.config
        b = state.batch_size
        dev = state.step.device
        rows = torch.arange(b, device=dev)
        steps = PLAN_HORIZON + cfg.replan_every_steps
        forecast_steps = min(cfg.forecast_steps(sim.dt_s), steps - 1)
        pose = ego_pose(sim, state)
        if self._stop_wait_s is None or self._stop_wait_s.shape[0] != b:
            self._stop_wait_s = torch.zeros(b, device=dev)
        reference = self.reference_speed(sim)
        props = build_proposals(
            sim,
            state,
            s0_m,
            reference,
            self._spec,
            steps,
            self._stop_wait_s,
            cfg.stop_sign_wait_s,
            self._lateral_start(sim, state, s0_m),
        )
        # The stop-sign wait advances by the re-planning interval (the ego stands meanwhile).
        self._stop_wait_s = stop_sign_wait(
            props.obstacles,
            pose.speed_mps,
            pose.length_m,
            self._stop_wait_s,
            cfg.replan_every_steps * sim.dt_s,
            cfg.stop_sign_wait_s,
        )
        p = props.fraction.shape[0]
        if self._forecaster is None or not self._forecaster.matches(sim, p, cfg.forecast_agents):
            self._forecaster = Forecaster(sim, p, cfg.forecast_agents)
        trace = self._forecaster.run(state, props.waypoints_m.view(b * p, steps, 2), forecast_steps)
        scores = score_proposals(trace, p, cfg.weights)
        if self._offset_m is None or self._offset_m.shape[0] != b:
            self._offset_m = torch.zeros(b, device=dev)
        nudge = (props.offset_m != 0).float()
        switch = (props.offset_m[None, :] != self._offset_m[:, None]).float()
        handicap = (
            cfg.nudge_margin * nudge
            + cfg.switch_margin * switch
            + TIE_BREAK * (props.offset_m.abs() + props.fraction)
        )
        chosen = (scores.total - handicap).argmax(1)
        self._offset_m = props.offset_m[chosen]
        plan_local = props.waypoints_m[rows, chosen]
        waypoints = to_ego_frame(plan_local[:, :PLAN_HORIZON], pose.xy_m, pose.heading_rad)
        lanes = self._scenes.lanes(sim, state) if cfg.lane_meta_actions else None
        summary = fill_meta_actions(waypoints, sim.dt_s, lanes)
        coc = explain(
            props,
            scores,
            ExplainInputs(
                scenes=self._scenes.for_rollouts(sim),
                object_type=sim.batch.object_type.index_select(0, sim.scene_of),
                distance_m=torch.linalg.vector_norm(state.xy_m - pose.xy_m[:, None], dim=-1),
                speed_mps=state.speed_mps,
                ego_speed_mps=pose.speed_mps,
                reference_speed_mps=reference,
                chosen=chosen,
                forecast_steps=forecast_steps,
                dt_s=sim.dt_s,
                min_speed_loss_mps=cfg.cause_min_speed_loss_mps,
            ),
        )
        return PdmDecision(state.step, s0_m, plan_local, summary, coc, chosen, props, scores)


__all__ = [
    "Forecaster",
    "PdmConfig",
    "PdmDecision",
    "PdmPolicy",
    "constant_velocity_state",
    "repeat_state",
]
