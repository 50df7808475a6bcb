"""``cordillera/Drive-v0``: one scene at a time, the ego under the agent's control."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch

from cordillera.env.config import ActionMode, EnvConfig
from cordillera.env.core import DriveCore
from cordillera.env.observations import ObservationConfig
from cordillera.env.scenes import ScenesSpec, resolve_scenes
from cordillera.env.spaces import action_space, observation_space
from cordillera.sim.config import SimConfig, TrafficMode

if TYPE_CHECKING:
    from cordillera.viz.frames import FrameDrawer


class DriveEnv(gym.Env[np.ndarray, np.ndarray]):
    """Drive the ego through one scene per episode, chosen at random from ``scenes``.

    Args:
        scenes: a suite name, a path of scenes / logs, or Scene objects; default: the
            generated ``default`` suite (needs no data).
        traffic: ``"idm"`` reactive traffic or ``"log"`` replay.
        action: ``"controls"`` or ``"plan"`` (see :class:`EnvConfig`).
        observation: vector observation sizes.
        config: a full :class:`EnvConfig` (overrides ``traffic``, ``action``, ``observation``).
        render_mode: ``"rgb_array"`` returns a bird's-eye picture of the current step.
        device: torch device of the simulator.

    Observation: ``(D,)`` float32 vector in the ego frame. Reward, termination (at-fault
    collision, off-road) and truncation (end of log, ``max_episode_steps``) per
    :class:`RewardConfig` / :class:`EnvConfig`. ``info`` carries the step's checks and the
    scene id.
    """

    # Gymnasium declares ``metadata`` as a plain class attribute; keep its shape.
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012

    def __init__(
        self,
        scenes: ScenesSpec = None,
        traffic: TrafficMode = "idm",
        action: ActionMode = "controls",
        observation: ObservationConfig | None = None,
        config: EnvConfig | None = None,
        render_mode: str | None = None,
        device: str = "cpu",
    ) -> None:
        self.config = config or EnvConfig(
            sim=SimConfig(traffic=traffic, control="ego"),
            observation=observation or ObservationConfig(),
            action=action,
        )
        self.scenes = resolve_scenes(scenes)
        self.core = DriveCore(self.scenes, 1, self.config, device=device)
        self.observation_space = observation_space(self.config)
        self.action_space = action_space(self.config)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self._drawer: FrameDrawer | None = None
        self._drawer_scene = -1

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        scene = None
        if options and "scene_index" in options:
            scene = torch.tensor([int(options["scene_index"])])
        else:
            scene = torch.tensor([int(self.np_random.integers(len(self.scenes)))])
        self.core.reset(scenes=scene.to(self.core.batch.device))
        return self._obs(), self._info(None)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = torch.as_tensor(np.asarray(action, np.float32), device=self.core.batch.device)
        result = self.core.step(a.view(1, 1, *a.shape))
        return (
            self._obs(),
            float(result.reward[0, 0]),
            bool(result.terminated[0]),
            bool(result.truncated[0]),
            self._info(result.checks),
        )

    def _obs(self) -> np.ndarray:
        return self.core.observe()[0, 0].cpu().numpy().astype(np.float32)

    def _info(self, checks: Any) -> dict[str, Any]:
        scene = int(self.core.sim.scene_of[0])
        assert self.core.state is not None
        info: dict[str, Any] = {
            "scene_id": self.core.batch.scene_ids[scene],
            "step": int(self.core.state.step[0]),
        }
        if checks is not None:
            for name in (
                "collision",
                "at_fault_collision",
                "offroad",
                "red_light_violation",
                "against_traffic",
                "route_progress_m",
                "speed_mps",
            ):
                value = getattr(checks, name)[0, 0]
                info[name] = bool(value) if value.dtype == torch.bool else float(value)
        return info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        from cordillera.viz.frames import FrameDrawer, state_frame

        assert self.core.state is not None
        u = int(self.core.sim.scene_of[0])
        if self._drawer is None or self._drawer_scene != u:
            self.close()
            origin = self.core.batch.origin_world_xy_m[u].cpu().numpy()
            self._drawer = FrameDrawer(self.scenes[u], origin)
            self._drawer_scene = u
        return state_frame(
            self._drawer, self.core.batch, self.core.sim.scene_of, self.core.state, row=0
        )

    def close(self) -> None:
        if self._drawer is not None:
            self._drawer.close()
            self._drawer = None
