"""The batched episode engine shared by every environment class.

B rollouts run as one :class:`~cordillera.sim.simulator.Simulator` batch. Each rollout is an
episode with M agents of interest: the ego alone (M = 1), or in self-play every vehicle that
exists at the start (M = the largest such count over the scenes, padded). Agents that crash
in self-play are removed from the world; an ego episode ends instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cordillera.env.config import EnvConfig
from cordillera.env.observations import Observer
from cordillera.scene.model import Scene
from cordillera.sim.batch import SceneBatch
from cordillera.sim.checks import StepChecks
from cordillera.sim.runner import agents_of_interest
from cordillera.sim.simulator import Simulator
from cordillera.sim.state import SimState
from cordillera.sim.traffic import track_path_progress


@dataclass(frozen=True, eq=False)
class StepResult:
    """What one batched step produced.

    Attributes:
        reward: ``(B, M)`` per-agent reward.
        agent_done: ``(B, M)`` the agent's episode is over (crashed, left the road, or the
            rollout ended).
        terminated: ``(B,)`` the rollout ended because of the agents (ego crash, or every
            self-play agent out).
        truncated: ``(B,)`` the rollout ran out of log or of ``max_episode_steps``.
        checks: the step's :class:`StepChecks` ``(B, M)``.
    """

    reward: torch.Tensor
    agent_done: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    checks: StepChecks


def _merge(rows: torch.Tensor, new: SimState, old: SimState) -> SimState:
    """Rows ``rows`` ``(B,)`` from ``new``, the rest from ``old``."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(SimState):
        a, b = getattr(new, f.name), getattr(old, f.name)
        if isinstance(a, torch.Tensor):
            mask = rows.view(-1, *([1] * (a.ndim - 1)))
            out[f.name] = torch.where(mask, a, b)
        else:
            out[f.name] = a
    return SimState(**out)


class DriveCore:
    """B episodes over ``scenes``; see the module docstring."""

    def __init__(
        self,
        scenes: list[Scene],
        num_envs: int,
        config: EnvConfig,
        device: str | torch.device = "cpu",
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.batch = SceneBatch.from_scenes(scenes, device=device)
        u = self.batch.num_scenes
        self.num_envs = num_envs
        scene_of = torch.arange(num_envs, device=self.batch.device) % u
        self.sim = Simulator(self.batch, config.sim, scene_of=scene_of)
        self.observer = Observer(self.batch, self.sim.scene_of, config.observation)
        self.rng = np.random.default_rng(seed)
        # M: agents per rollout, fixed for the life of the core (padded).
        probe = Simulator(self.batch, config.sim, scene_of=torch.arange(u, device=scene_of.device))
        self.num_agents = int(agents_of_interest(probe, probe.reset()).shape[1])
        self.state: SimState | None = None
        b, m = num_envs, self.num_agents
        dev = self.batch.device
        self.agent_index = torch.zeros(b, m, dtype=torch.long, device=dev)
        self.agent_mask = torch.zeros(b, m, dtype=torch.bool, device=dev)
        self.agent_done = torch.zeros(b, m, dtype=torch.bool, device=dev)
        self.progress_m = torch.zeros(b, m, device=dev)
        self.path_length_m = torch.zeros(b, m, device=dev)
        self.episode_steps = torch.zeros(b, dtype=torch.long, device=dev)
        self.prev_checks: StepChecks | None = None

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self, rows: torch.Tensor | None = None, scenes: torch.Tensor | None = None) -> None:
        """Start new episodes in ``rows`` ``(B,)`` (default all), on ``scenes`` ``(B,)`` or on
        scenes drawn from the core's random generator."""
        dev = self.batch.device
        b = self.num_envs
        if rows is None:
            rows = torch.ones(b, dtype=torch.bool, device=dev)
        if scenes is None:
            drawn = self.rng.integers(0, self.batch.num_scenes, size=b)
            scenes = torch.as_tensor(drawn, dtype=torch.long, device=dev)
        scene_of = torch.where(rows, scenes, self.sim.scene_of)
        self.sim.set_scenes(scene_of)
        self.observer.scene_of = scene_of
        fresh = self.sim.reset()
        self.state = fresh if self.state is None else _merge(rows, fresh, self.state)
        agents = agents_of_interest(self.sim, fresh)
        m = self.num_agents
        pad = self.sim.ego_index.view(b, 1).expand(b, m).clone()
        pad[:, : agents.shape[1]] = agents[:, :m]
        mask = torch.zeros(b, m, dtype=torch.bool, device=dev)
        mask[:, : agents.shape[1]] = True
        mask &= (pad != self.sim.ego_index.view(b, 1)) | (torch.arange(m, device=dev) == 0)
        r2 = rows.view(b, 1)
        self.agent_index = torch.where(r2, pad, self.agent_index)
        self.agent_mask = torch.where(r2, mask, self.agent_mask)
        self.agent_done = torch.where(r2, ~mask, self.agent_done)
        u = scene_of.view(b, 1)
        start = self.sim.log_s_at(fresh.step)
        s0 = torch.gather(start, 1, pad)
        self.progress_m = torch.where(r2, s0, self.progress_m)
        last = (self.batch.num_steps.index_select(0, scene_of) - 1).view(b, 1)
        length = self.batch.log_s_m[u, pad, last]
        self.path_length_m = torch.where(r2, length, self.path_length_m)
        self.episode_steps = torch.where(rows, 0, self.episode_steps)
        self.prev_checks = None if bool(rows.all()) else self.prev_checks

    def observe(self) -> torch.Tensor:
        """``(B, M, D)`` observations; rows of finished agents are zero."""
        assert self.state is not None, "reset() first"
        obs = self.observer(self.state, self.agent_index, self.progress_m, self.path_length_m)
        return torch.where(self.agent_done.unsqueeze(-1), 0.0, obs)

    def _controls_from_actions(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scatter ``(B, M, 2)`` normalised controls into ``(B, N)`` accel and curvature."""
        assert self.state is not None
        lim = self.config.sim.limits
        a = actions[..., 0].clamp(-1, 1)
        accel = torch.where(a >= 0, a * lim.max_accel_mps2, a * lim.max_decel_mps2)
        curv = actions[..., 1].clamp(-1, 1) * lim.max_curvature_1pm
        b, n = self.state.valid.shape
        acc_n = torch.zeros(b, n, device=actions.device)
        cur_n = torch.zeros(b, n, device=actions.device)
        live = ~self.agent_done
        acc_n.scatter_(1, self.agent_index, torch.where(live, accel, 0.0))
        cur_n.scatter_(1, self.agent_index, torch.where(live, curv, 0.0))
        return acc_n, cur_n

    def _plans_from_actions(self, plans_agent: torch.Tensor) -> torch.Tensor:
        """``(B, M, K, 2)`` agent-frame waypoints → the same in the local frame."""
        assert self.state is not None
        s = self.state
        b, m = self.agent_index.shape
        xy = torch.gather(s.xy_m, 1, self.agent_index.unsqueeze(-1).expand(b, m, 2))
        h = torch.gather(s.heading_rad, 1, self.agent_index)
        c, sn = torch.cos(h)[..., None], torch.sin(h)[..., None]
        px, py = plans_agent[..., 0], plans_agent[..., 1]
        return torch.stack([c * px - sn * py, sn * px + c * py], -1) + xy.unsqueeze(2)

    def step(self, actions: torch.Tensor) -> StepResult:
        """Advance every rollout with ``actions``: ``(B, M, 2)`` controls or ``(B, M, K, 2)``
        plans (per :attr:`EnvConfig.action`)."""
        assert self.state is not None, "reset() first"
        cfg, prev = self.config, self.state
        if cfg.action == "plan":
            nxt = self.sim.step_plan(prev, self._plans_from_actions(actions), self.agent_index)
        else:
            nxt = self.sim.step(prev, *self._controls_from_actions(actions))
        checks = self.sim.checks(self.agent_index, prev, nxt, self.prev_checks)
        b, m = self.agent_index.shape
        xy = torch.gather(nxt.xy_m, 1, self.agent_index.unsqueeze(-1).expand(b, m, 2))
        progress = track_path_progress(
            self.batch, self.sim.scene_of, self.agent_index, xy, self.progress_m
        )
        rc = cfg.reward
        live = ~self.agent_done
        reward = (
            rc.progress_weight * (progress - self.progress_m)
            - rc.collision_penalty * checks.at_fault_collision.float()
            - rc.offroad_penalty * checks.offroad.float()
            - rc.red_light_penalty * checks.red_light_violation.float()
            - rc.wrong_way_penalty * checks.against_traffic.float()
        )
        reward = torch.where(live, reward, 0.0)
        crashed = torch.zeros_like(live)
        if rc.terminate_on_collision:
            crashed |= checks.at_fault_collision
        if rc.terminate_on_offroad:
            crashed |= checks.offroad
        crashed &= live
        self.episode_steps = self.episode_steps + 1
        end_of_log = nxt.step >= self.batch.num_steps.index_select(0, self.sim.scene_of) - 1
        truncated = end_of_log
        if cfg.max_episode_steps is not None:
            truncated = truncated | (self.episode_steps >= cfg.max_episode_steps)
        if self.num_agents == 1 and cfg.sim.control == "ego":
            terminated = crashed[:, 0]
        else:
            # Self-play: crashed agents leave the world; the rollout ends when none is left.
            gone = torch.zeros_like(nxt.valid)
            gone.scatter_(1, self.agent_index, crashed)
            gone &= nxt.controlled
            nxt = dataclasses.replace(
                nxt, valid=nxt.valid & ~gone, controlled=nxt.controlled & ~gone
            )
            terminated = (self.agent_done | crashed).all(1)
        truncated = truncated & ~terminated
        self.agent_done = self.agent_done | crashed | (terminated | truncated).view(b, 1)
        self.progress_m = torch.where(live, progress, self.progress_m)
        self.state = nxt
        self.prev_checks = checks
        return StepResult(
            reward=reward,
            agent_done=self.agent_done.clone(),
            terminated=terminated,
            truncated=truncated,
            checks=checks,
        )
