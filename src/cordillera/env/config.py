"""Frozen configuration of the Gymnasium environments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cordillera.env.observations import ObservationConfig
from cordillera.errors import ConfigError
from cordillera.sim.config import SimConfig

ActionMode = Literal["controls", "plan"]


@dataclass(frozen=True)
class RewardConfig:
    """Per-step reward of each controlled agent.

    ``r = progress_weight · Δs − collision_penalty · [new at-fault collision]
    − offroad_penalty · [offroad] − red_light_penalty · [ran a red light]
    − wrong_way_penalty · [against traffic]``, with ``Δs`` the metres advanced along the
    agent's route this step.

    Attributes:
        progress_weight: reward per metre of progress.
        collision_penalty: paid once, at the step of an at-fault collision.
        offroad_penalty: paid every step any box corner is off the drivable area.
        red_light_penalty: paid at the step a red light is run.
        wrong_way_penalty: paid every step spent against the direction of traffic.
        terminate_on_collision: an at-fault collision ends the agent's episode.
        terminate_on_offroad: leaving the drivable area ends the agent's episode.
    """

    progress_weight: float = 0.1
    collision_penalty: float = 5.0
    offroad_penalty: float = 1.0
    red_light_penalty: float = 2.0
    wrong_way_penalty: float = 0.2
    terminate_on_collision: bool = True
    terminate_on_offroad: bool = True

    def __post_init__(self) -> None:
        for name in (
            "progress_weight",
            "collision_penalty",
            "offroad_penalty",
            "red_light_penalty",
            "wrong_way_penalty",
        ):
            v = getattr(self, name)
            if not v >= 0:
                raise ConfigError(f"RewardConfig.{name} must be >= 0, got {v!r}")


@dataclass(frozen=True)
class EnvConfig:
    """What an environment simulates, what agents see, how they act and what they earn.

    Attributes:
        sim: simulator configuration (traffic mode, ego or self-play control, limits).
        observation: vector observation sizes.
        reward: reward and termination rules.
        action: ``"controls"`` — ``(2,)`` in [-1, 1]: acceleration (scaled to the vehicle's
            braking / acceleration limits) and curvature (scaled to its curvature limit);
            ``"plan"`` — ``(64, 2)`` future waypoints in the agent's frame (x forward, y
            left, metres, one every ``dt_s``), tracked by the controller.
        max_episode_steps: cap on the episode length (default: until the log ends).
        plan_horizon: number of waypoints of a plan action.
    """

    sim: SimConfig = field(default_factory=SimConfig)
    observation: ObservationConfig = field(default_factory=ObservationConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    action: ActionMode = "controls"
    max_episode_steps: int | None = None
    plan_horizon: int = 64

    def __post_init__(self) -> None:
        if self.action not in ("controls", "plan"):
            raise ConfigError(f"EnvConfig.action must be 'controls' or 'plan', got {self.action!r}")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ConfigError(
                f"EnvConfig.max_episode_steps must be >= 1, got {self.max_episode_steps}"
            )
        if self.plan_horizon < 1:
            raise ConfigError(f"EnvConfig.plan_horizon must be >= 1, got {self.plan_horizon}")
