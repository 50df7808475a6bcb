"""Natively batched environments: a Gymnasium ``VectorEnv`` and a self-play variant.

Both run all their episodes as one simulator batch (one tensor operation per step for every
environment, no per-environment Python loop) and reset finished episodes in the same step
(Gymnasium's ``AutoresetMode.SAME_STEP``): the returned observation of a finished
environment is already its next episode's first one, and the last observation of the
finished episode is in ``info["final_obs"]`` (masked by ``info["_final_obs"]``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from cordillera.env.config import EnvConfig
from cordillera.env.core import DriveCore
from cordillera.env.scenes import ScenesSpec, resolve_scenes
from cordillera.env.spaces import action_space, observation_space
from cordillera.errors import ConfigError


class DriveVectorEnv(VectorEnv[np.ndarray, np.ndarray, np.ndarray]):
    """``num_envs`` ego-driving episodes advanced together.

    Args:
        num_envs: number of parallel episodes.
        scenes: suite name, path or Scene objects (default: the generated default suite).
        config: environment configuration (control must be ``"ego"``).
        device: torch device; observations and rewards come back as numpy arrays.
        seed: seed of the scene draws on reset.
    """

    # Gymnasium declares ``metadata`` as a plain class attribute; keep its shape.
    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        num_envs: int,
        scenes: ScenesSpec = None,
        config: EnvConfig | None = None,
        device: str = "cpu",
        seed: int | None = None,
    ) -> None:
        self.config = config or EnvConfig()
        if self.config.sim.control != "ego":
            raise ConfigError("DriveVectorEnv drives the ego; use SelfPlayEnv for self-play")
        if num_envs < 1:
            raise ConfigError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.core = DriveCore(resolve_scenes(scenes), num_envs, self.config, device, seed)
        self.single_observation_space = observation_space(self.config)
        self.single_action_space = action_space(self.config)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if isinstance(seed, list):
            seed = seed[0]
        if seed is not None:
            self.core.seed(seed)
        self.core.reset()
        return self._obs(), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        a = torch.as_tensor(np.asarray(actions, np.float32), device=self.core.batch.device)
        result = self.core.step(a.unsqueeze(1))
        done = result.terminated | result.truncated
        info: dict[str, Any] = {}
        if bool(done.any()):
            mask = done.cpu().numpy()
            info["final_obs"] = self._obs()
            info["_final_obs"] = mask
            self.core.reset(rows=done)
        return (
            self._obs(),
            result.reward[:, 0].cpu().numpy(),
            result.terminated.cpu().numpy(),
            result.truncated.cpu().numpy(),
            info,
        )

    def _obs(self) -> np.ndarray:
        return self.core.observe()[:, 0].cpu().numpy()


class SelfPlayEnv:
    """Multi-agent self-play: every vehicle of each scene is controlled and observed.

    Batched over ``num_envs`` rollouts × M agents (M = the most vehicles any scene starts
    with; unused slots have ``agent_mask`` False). ``step`` takes ``(num_envs, M, 2)``
    normalised controls and returns ``(num_envs, M, D)`` observations, ``(num_envs, M)``
    rewards and per-agent done flags, plus per-rollout ``terminated`` / ``truncated``.
    Crashed agents leave the world; finished rollouts reset in the same step.
    """

    def __init__(
        self,
        num_envs: int,
        scenes: ScenesSpec = None,
        config: EnvConfig | None = None,
        device: str = "cpu",
        seed: int | None = None,
    ) -> None:
        base = config or EnvConfig()
        self.config = dataclasses.replace(
            base, sim=dataclasses.replace(base.sim, control="self-play"), action="controls"
        )
        self.num_envs = num_envs
        self.core = DriveCore(resolve_scenes(scenes), num_envs, self.config, device, seed)
        self.num_agents = self.core.num_agents
        self.single_observation_space = observation_space(self.config)
        self.single_action_space = action_space(self.config)
        self.observation_space = spaces.Box(
            -np.inf, np.inf, (num_envs, self.num_agents, self.config.observation.size), np.float32
        )
        self.action_space = spaces.Box(-1.0, 1.0, (num_envs, self.num_agents, 2), np.float32)

    @property
    def agent_mask(self) -> torch.Tensor:
        """``(num_envs, M)`` the slot holds a real agent."""
        return self.core.agent_mask

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        if seed is not None:
            self.core.seed(seed)
        self.core.reset()
        return self.core.observe(), {"agent_mask": self.core.agent_mask.clone()}

    def step(
        self, actions: torch.Tensor
    ) -> tuple[
        torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]
    ]:
        """Returns ``obs, reward, agent_done, terminated, truncated, info`` as tensors."""
        result = self.core.step(
            torch.as_tensor(actions, dtype=torch.float32, device=self.core.batch.device)
        )
        done = result.terminated | result.truncated
        info: dict[str, Any] = {"checks": result.checks}
        if bool(done.any()):
            self.core.reset(rows=done)
        info["agent_mask"] = self.core.agent_mask.clone()
        return (
            self.core.observe(),
            result.reward,
            result.agent_done,
            result.terminated,
            result.truncated,
            info,
        )
