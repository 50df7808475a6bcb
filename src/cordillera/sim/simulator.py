"""The batched simulator: reset from logs, and a pure ``step(state, controls) -> state``.

Per step and per object, exactly one of three things moves it:
  * controlled objects (the ego, or every vehicle in self-play) integrate the caller's
    ``(acceleration, curvature)`` controls through the kinematic model — a plan of waypoints is
    first turned into controls by the tracking controller;
  * reactive objects (vehicles and cyclists under IDM traffic) follow their logged path at an
    IDM-chosen speed;
  * everything else replays the log (pedestrians, static clutter, all traffic in log mode).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cordillera.errors import ConfigError
from cordillera.scene.model import Scene
from cordillera.scene.types import ObjectType
from cordillera.sim.batch import SceneBatch
from cordillera.sim.checks import StepChecks, compute_checks
from cordillera.sim.config import SimConfig
from cordillera.sim.dynamics import integrate, track_plan, wrap_angle
from cordillera.sim.state import SimState
from cordillera.sim.traffic import (
    PARKED_SPEED_MPS,
    reactive_step,
    reactive_types,
    select_neighbours,
)


class Simulator:
    """B rollouts over the scenes of a :class:`SceneBatch`, all advanced together.

    Args:
        scenes: the scenes (or a prepared batch of them).
        config: what controls which agents.
        scene_of: ``(B,)`` scene index of each rollout; default one rollout per scene.
        device: torch device for all tensors.
    """

    def __init__(
        self,
        scenes: Sequence[Scene] | SceneBatch,
        config: SimConfig | None = None,
        scene_of: torch.Tensor | Sequence[int] | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.config = config or SimConfig()
        self.batch = (
            scenes
            if isinstance(scenes, SceneBatch)
            else SceneBatch.from_scenes(scenes, device=device)
        )
        dev = self.batch.device
        if scene_of is None:
            scene_of = torch.arange(self.batch.num_scenes, device=dev)
        self.scene_of = torch.as_tensor(scene_of, dtype=torch.long, device=dev)
        if self.scene_of.ndim != 1 or len(self.scene_of) == 0:
            raise ConfigError(f"scene_of must be a non-empty (B,) index, got {self.scene_of.shape}")
        self.max_reactive = self._max_reactive()
        self._reactive_step = reactive_step
        self._integrate = integrate
        self._checks = compute_checks
        if self.config.compile:
            self._reactive_step = torch.compile(reactive_step, dynamic=False)
            self._integrate = torch.compile(integrate, dynamic=False)
            self._checks = torch.compile(compute_checks, dynamic=False)
        self.set_scenes(self.scene_of)

    def set_scenes(self, scene_of: torch.Tensor) -> None:
        """Point the rollouts at other scenes of the batch (then :meth:`reset` them)."""
        scene_of = torch.as_tensor(scene_of, dtype=torch.long, device=self.batch.device)
        if scene_of.shape != self.scene_of.shape:
            raise ConfigError(f"scene_of must keep shape {tuple(self.scene_of.shape)}")
        if int(scene_of.min()) < 0 or int(scene_of.max()) >= self.batch.num_scenes:
            raise ConfigError(f"scene_of indexes scenes outside [0, {self.batch.num_scenes})")
        too_short = self.batch.num_steps.index_select(0, scene_of) <= self.config.start_step
        if bool(too_short.any()):
            raise ConfigError(f"start_step {self.config.start_step} is past the end of a scene")
        self.scene_of = scene_of
        g = self._g
        log_speed = g(self.batch.log_speed_mps).clamp_min(0.0)
        # Desired speed of a reactive agent: the fastest it drove in the log. Parked cars keep
        # a desired speed of ~0 and so stay parked.
        self.desired_speed_mps = torch.where(g(self.batch.log_valid), log_speed, 0.0).amax(-1)
        self.ego_index = g(self.batch.ego_index)
        self.size_lw_m = g(self.batch.size_lw_m)

    def _max_reactive(self) -> int:
        """Most objects any scene can have under IDM control (moving vehicles and cyclists)."""
        bt = self.batch
        speed = torch.where(bt.log_valid, bt.log_speed_mps.clamp_min(0.0), 0.0).amax(-1)
        kinds = torch.tensor(reactive_types(), device=bt.device)
        can = torch.isin(bt.object_type, kinds) & bt.object_mask & (speed >= PARKED_SPEED_MPS)
        return int(can.sum(1).max()) if can.numel() else 0

    @property
    def dt_s(self) -> float:
        return self.batch.dt_s

    @property
    def batch_size(self) -> int:
        return int(self.scene_of.shape[0])

    def _g(self, t: torch.Tensor) -> torch.Tensor:
        """Per-rollout view of a per-scene tensor."""
        return t.index_select(0, self.scene_of)

    def log_at(self, step: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Logged ``xy (B, N, 2), heading, speed, valid`` of every object at ``step`` ``(B,)``."""
        b, n = self.batch_size, self.batch.max_objects
        t = step.clamp(0, self.batch.max_steps - 1).view(b, 1)
        u = self.scene_of.view(b, 1)
        obj = torch.arange(n, device=step.device).view(1, n)
        xy = self.batch.log_xy_m[u, obj, t]
        heading = self.batch.log_heading_rad[u, obj, t]
        speed = self.batch.log_speed_mps[u, obj, t]
        valid = self.batch.log_valid[u, obj, t]
        in_log = (step < self._g(self.batch.num_steps)).unsqueeze(-1)
        return xy, heading, speed, valid & in_log

    def log_s_at(self, step: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` arc length of every object's logged path at ``step`` ``(B,)``."""
        b, n = self.batch_size, self.batch.max_objects
        t = step.clamp(0, self.batch.max_steps - 1).view(b, 1)
        obj = torch.arange(n, device=step.device).view(1, n)
        return self.batch.log_s_m[self.scene_of.view(b, 1), obj, t]

    def neighbours(
        self, rows: torch.Tensor, xy_m: torch.Tensor, heading_rad: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """``(B, R, C)`` leader candidates of agents ``rows`` (see :func:`select_neighbours`)."""
        idm = self.config.idm
        return select_neighbours(
            rows,
            xy_m,
            heading_rad,
            valid,
            self.size_lw_m[..., 0],
            idm.num_neighbours,
            idm.lookahead_m + 20.0,
        )

    def _reactive_rows(self, reactive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Compact ``(B, R)`` indices of the reactive objects (padded with the ego, which is
        never reactive, so padding rows write back the ego's own values) and their mask."""
        b, n = reactive.shape
        r = max(self.max_reactive, 1)
        order = torch.where(reactive, torch.arange(n, device=reactive.device), n)
        rows = torch.sort(order, dim=1).values[:, :r]
        ok = rows < n
        return torch.where(ok, rows, self.ego_index.view(b, 1)), ok

    def reset(self, start_step: torch.Tensor | None = None) -> SimState:
        """The state at ``config.start_step``, taken from the logs.

        Args:
            start_step: ``(B,)`` log step of each rollout instead (rollouts of one batch may
                start at different moments, e.g. counterfactuals from several keyframes).
        """
        b, n = self.batch_size, self.batch.max_objects
        dev = self.batch.device
        if start_step is None:
            step = torch.full((b,), self.config.start_step, dtype=torch.long, device=dev)
        else:
            step = torch.as_tensor(start_step, dtype=torch.long, device=dev)
            last = self._g(self.batch.num_steps) - 1
            if step.shape != (b,) or bool((step < 0).any()) or bool((step > last).any()):
                raise ConfigError(
                    f"start_step must be ({b},) steps inside each rollout's log, "
                    f"got {step.tolist()}"
                )
        xy, heading, speed, valid = self.log_at(step)
        otype = self._g(self.batch.object_type)
        mask = self._g(self.batch.object_mask)
        ego = torch.zeros(b, n, dtype=torch.bool, device=dev)
        ego[torch.arange(b, device=dev), self.ego_index] = True
        if self.config.control == "self-play":
            controlled = ((otype == int(ObjectType.VEHICLE)) & valid & mask) | ego
        else:
            controlled = ego
        if self.config.traffic == "idm":
            kinds = torch.tensor(reactive_types(), device=dev)
            # Objects that never move in their log (parked cars) simply replay it.
            moving = self.desired_speed_mps >= PARKED_SPEED_MPS
            reactive = torch.isin(otype, kinds) & mask & ~controlled & moving
        else:
            reactive = torch.zeros_like(controlled)
        zeros = torch.zeros(b, n, device=dev)
        valid = valid | (controlled & mask)
        rows, rows_ok = self._reactive_rows(reactive)
        return SimState(
            step=step,
            xy_m=xy,
            heading_rad=heading,
            speed_mps=speed,
            accel_mps2=zeros,
            yaw_rate_rps=zeros.clone(),
            valid=valid,
            controlled=controlled,
            reactive=reactive,
            path_s_m=self.log_s_at(step),
            stop_wait_s=zeros.clone(),
            reactive_rows=rows,
            reactive_rows_ok=rows_ok,
            neighbours=self.neighbours(rows, xy, heading, valid),
            neighbour_age=0,
        )

    def step(
        self, state: SimState, accel_mps2: torch.Tensor, curvature_1pm: torch.Tensor
    ) -> SimState:
        """Advance every rollout one step. Controls are ``(B, N)``; only controlled entries count.

        Pure: ``state`` is not modified; the same inputs give the same output bit for bit.
        """
        cfg = self.config
        dt = self.dt_s
        nxt = state.step + 1
        log_xy, log_h, log_v, log_valid = self.log_at(nxt)

        # Controlled objects: kinematic model.
        c_xy, c_h, c_v, c_a, c_w = self._integrate(
            state.xy_m,
            state.heading_rad,
            state.speed_mps,
            accel_mps2,
            curvature_1pm,
            dt,
            cfg.limits,
        )
        # Reactive objects: IDM along their log path (they see everyone's current state).
        rows, rows_ok = state.reactive_rows, state.reactive_rows_ok
        new_rows = self._reactive_step(
            self.batch,
            self.scene_of,
            state.step,
            rows,
            rows_ok,
            state.xy_m,
            state.heading_rad,
            state.speed_mps,
            state.valid,
            state.path_s_m,
            state.stop_wait_s,
            state.neighbours,
            self.desired_speed_mps,
            self.size_lw_m,
            cfg.idm,
        )
        r_xy = state.xy_m.scatter(1, rows.unsqueeze(-1).expand(*rows.shape, 2), new_rows[0])
        r_h, r_v, r_a, r_s, r_wait = (
            base.scatter(1, rows, new)
            for base, new in zip(
                (
                    state.heading_rad,
                    state.speed_mps,
                    torch.zeros_like(state.speed_mps),
                    state.path_s_m,
                    state.stop_wait_s,
                ),
                new_rows[1:],
                strict=True,
            )
        )
        ctl = state.controlled
        # A reactive agent that (re)appears in the log starts from its logged pose and speed.
        appear = state.reactive & log_valid & ~state.valid
        rea_live = state.reactive & ~appear

        def pick(c: torch.Tensor, r: torch.Tensor, log: torch.Tensor) -> torch.Tensor:
            cm, rm = ctl, rea_live
            if c.ndim == 3:
                cm, rm = cm.unsqueeze(-1), rm.unsqueeze(-1)
            return torch.where(cm, c, torch.where(rm, r, log))

        xy = pick(c_xy, r_xy, log_xy)
        heading = pick(c_h, r_h, log_h)
        speed = pick(c_v, r_v, log_v)
        log_accel = torch.where(state.valid & log_valid, (log_v - state.speed_mps) / dt, 0.0)
        accel = pick(c_a, r_a, log_accel)
        yaw_rate = torch.where(ctl, c_w, wrap_angle(heading - state.heading_rad) / dt)
        # Existence follows the log, except for controlled objects, which persist.
        valid = torch.where(ctl, state.valid, log_valid)
        age = state.neighbour_age + 1
        neighbours = state.neighbours
        if age >= cfg.idm.neighbour_refresh_steps:
            neighbours, age = self.neighbours(rows, xy, heading, valid), 0
        return SimState(
            step=nxt,
            xy_m=xy,
            heading_rad=heading,
            speed_mps=speed,
            accel_mps2=accel,
            yaw_rate_rps=yaw_rate,
            valid=valid,
            controlled=ctl,
            reactive=state.reactive,
            reactive_rows=rows,
            reactive_rows_ok=rows_ok,
            path_s_m=torch.where(appear, self.log_s_at(nxt), r_s),
            stop_wait_s=torch.where(appear, 0.0, r_wait),
            neighbours=neighbours,
            neighbour_age=age,
        )

    def checks(
        self,
        agents: torch.Tensor,
        prev: SimState,
        state: SimState,
        prev_checks: StepChecks | None = None,
    ) -> StepChecks:
        """Per-step checks of ``agents`` ``(B, M)`` for the step ``prev`` → ``state``."""
        return self._checks(self.batch, self.scene_of, agents, prev, state, prev_checks)

    def step_plan(
        self, state: SimState, plan_xy_m: torch.Tensor, agents: torch.Tensor | None = None
    ) -> SimState:
        """Advance with plans (local frame, waypoints every ``dt_s``) tracked by the controller.

        ``plan_xy_m`` is ``(B, M, K, 2)`` for the controlled objects ``agents`` ``(B, M)``, or
        ``(B, N, K, 2)`` for every object when ``agents`` is None (only controlled rows count).
        """
        b, n = state.valid.shape
        if agents is None:
            agents = torch.arange(n, device=plan_xy_m.device).expand(b, n)
        xy = torch.gather(state.xy_m, 1, agents.unsqueeze(-1).expand(*agents.shape, 2))
        tc = self.config.tracker
        a, k = track_plan(
            xy,
            torch.gather(state.heading_rad, 1, agents),
            torch.gather(state.speed_mps, 1, agents),
            plan_xy_m,
            self.dt_s,
            self.config.limits,
            tc.longitudinal_lookahead_steps,
            tc.lateral_lookahead_steps,
        )
        zeros = torch.zeros_like(state.speed_mps)
        return self.step(state, zeros.scatter(1, agents, a), zeros.scatter(1, agents, k))

    def log_plan(
        self, state: SimState, agents: torch.Tensor | None = None, horizon: int = 64
    ) -> torch.Tensor:
        """``(B, M, horizon, 2)`` the logged future positions of objects ``agents`` ``(B, M)``
        (default every object) after ``state.step`` — the log-replay plan.

        Steps where an object is not observed hold its last observed position; steps past the
        end of the scene continue at the velocity of the last two logged positions, so a plan
        never demands an artificial stop just because the recording ended.
        """
        b, n = state.valid.shape
        dev = state.step.device
        if agents is None:
            agents = torch.arange(n, device=dev).expand(b, n)
        m = agents.shape[1]
        steps = state.step.view(b, 1) + torch.arange(1, horizon + 1, device=dev)
        last = self._g(self.batch.num_steps).view(b, 1) - 1
        t = torch.minimum(steps, last).view(b, 1, horizon)
        u = self.scene_of.view(b, 1, 1)
        obj = agents.view(b, m, 1)
        xy = self.batch.log_xy_filled_m[u, obj, t]
        over = (steps - last).clamp_min(0).view(b, 1, horizon, 1).float()
        end = last.view(b, 1)
        p1 = self.batch.log_xy_filled_m[u[..., 0], agents, end]  # (B, M, 2)
        p0 = self.batch.log_xy_filled_m[u[..., 0], agents, (end - 1).clamp_min(0)]
        return xy + over * (p1 - p0).unsqueeze(2)
