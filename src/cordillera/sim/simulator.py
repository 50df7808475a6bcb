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
from cordillera.sim.config import SimConfig
from cordillera.sim.dynamics import integrate, track_plan, wrap_angle
from cordillera.sim.state import SimState
from cordillera.sim.traffic import reactive_step, reactive_types, select_neighbours


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
        self, xy_m: torch.Tensor, heading_rad: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """``(B, N, C)`` leader candidates of every object (see :func:`select_neighbours`)."""
        idm = self.config.idm
        return select_neighbours(
            xy_m,
            heading_rad,
            valid,
            self.size_lw_m[..., 0],
            idm.num_neighbours,
            idm.lookahead_m + 20.0,
        )

    def reset(self) -> SimState:
        """The state at ``config.start_step``, taken from the logs."""
        b, n = self.batch_size, self.batch.max_objects
        dev = self.batch.device
        step = torch.full((b,), self.config.start_step, dtype=torch.long, device=dev)
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
            reactive = torch.isin(otype, kinds) & mask & ~controlled
        else:
            reactive = torch.zeros_like(controlled)
        zeros = torch.zeros(b, n, device=dev)
        valid = valid | (controlled & mask)
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
            neighbours=self.neighbours(xy, heading, valid),
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
        c_xy, c_h, c_v, c_a, c_w = integrate(
            state.xy_m,
            state.heading_rad,
            state.speed_mps,
            accel_mps2,
            curvature_1pm,
            dt,
            cfg.limits,
        )
        # Reactive objects: IDM along their log path (they see everyone's current state).
        r_xy, r_h, r_v, r_a, r_s, r_wait = reactive_step(
            self.batch,
            self.scene_of,
            state.step,
            state.xy_m,
            state.heading_rad,
            state.speed_mps,
            state.valid,
            state.reactive,
            state.path_s_m,
            state.stop_wait_s,
            state.neighbours,
            self.desired_speed_mps,
            self.size_lw_m,
            cfg.idm,
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
            neighbours, age = self.neighbours(xy, heading, valid), 0
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
            path_s_m=torch.where(appear, self.log_s_at(nxt), r_s),
            stop_wait_s=torch.where(appear, 0.0, r_wait),
            neighbours=neighbours,
            neighbour_age=age,
        )

    def step_plan(self, state: SimState, plan_xy_m: torch.Tensor) -> SimState:
        """Advance with plans ``(B, N, K, 2)`` (local frame, waypoints every ``dt_s``) tracked
        by the controller for every controlled object."""
        tc = self.config.tracker
        a, k = track_plan(
            state.xy_m,
            state.heading_rad,
            state.speed_mps,
            plan_xy_m,
            self.dt_s,
            self.config.limits,
            tc.longitudinal_lookahead_steps,
            tc.lateral_lookahead_steps,
        )
        return self.step(state, a, k)

    def log_plan(self, state: SimState, horizon: int = 64) -> torch.Tensor:
        """``(B, N, horizon, 2)`` each object's logged future positions after ``state.step``
        — the log-replay plan.

        Steps where an object is not observed hold its last observed position; steps past the
        end of the scene continue at the velocity of the last two logged positions, so a plan
        never demands an artificial stop just because the recording ended.
        """
        b, n = state.valid.shape
        dev = state.step.device
        steps = state.step.view(b, 1) + torch.arange(1, horizon + 1, device=dev)
        last = self._g(self.batch.num_steps).view(b, 1) - 1
        t = torch.minimum(steps, last).view(b, 1, horizon)
        u = self.scene_of.view(b, 1, 1)
        obj = torch.arange(n, device=dev).view(1, n, 1)
        xy = self.batch.log_xy_filled_m[u, obj, t]
        over = (steps - last).clamp_min(0).view(b, 1, horizon, 1).float()
        end = last.view(b, 1)
        p1 = self.batch.log_xy_filled_m[u[..., 0], obj[..., 0], end]  # (B, N, 2)
        p0 = self.batch.log_xy_filled_m[u[..., 0], obj[..., 0], (end - 1).clamp_min(0)]
        return xy + over * (p1 - p0).unsqueeze(2)
