"""The policy interface: what a policy asks to observe, what it is given, what it returns.

A policy is a plug-in behind a narrow interface (``name``, ``request``, ``reset``, ``act``),
batched across rollouts: one call decides for every rollout of a simulator batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from cordillera.errors import ConfigError
from cordillera.policy.plan import Plan
from cordillera.scene.model import Scene
from cordillera.sim.simulator import Simulator
from cordillera.sim.state import SimState


@dataclass(frozen=True)
class CameraRequest:
    """Camera frames a policy wants at every decision.

    Attributes:
        rig: rig preset name (``ring7``, ``ring6``, ``av2``).
        width_px, height_px: image size of every camera.
        frames: past frames per camera, the current one included.
        frame_stride_steps: simulation steps between consecutive frames.
    """

    rig: str = "ring7"
    width_px: int = 256
    height_px: int = 144
    frames: int = 4
    frame_stride_steps: int = 5

    def __post_init__(self) -> None:
        for name in ("width_px", "height_px", "frames", "frame_stride_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"CameraRequest.{name} must be an int >= 1, got {v!r}")


@dataclass(frozen=True)
class ObservationRequest:
    """What a policy observes.

    Attributes:
        vector: the vector observation of :mod:`cordillera.env.observations`.
        bev: the bird's-eye raster of :mod:`cordillera.sensors.bev`.
        cameras: camera frames, or None.
        ego_history_steps: past ego positions given (the current one included).
        privileged: the raw simulator state and scene tensors (rule-based planners).
    """

    vector: bool = False
    bev: bool = False
    cameras: CameraRequest | None = None
    ego_history_steps: int = 10
    privileged: bool = False

    def __post_init__(self) -> None:
        if self.ego_history_steps < 1:
            raise ConfigError(
                f"ObservationRequest.ego_history_steps must be >= 1, got {self.ego_history_steps}"
            )


@dataclass(frozen=True, eq=False)
class PolicyInput:
    """What a policy sees at one decision, for B rollouts.

    Attributes:
        time_s: ``(B,)`` seconds since the start of each rollout's log.
        ego_history_ego_m: ``(B, H, 2)`` the ego's past positions, oldest first, in the ego
            frame at decision time (x forward, y left); the last row is the origin.
        ego_speed_mps: ``(B,)``; ego_accel_mps2 ``(B,)``; ego_yaw_rate_rps ``(B,)``.
        route_ego_m: ``(B, R, 2)`` route points ahead in the ego frame.
        vector: ``(B, D)`` vector observation, when requested.
        bev: ``(B, K, H, W)`` bird's-eye raster, when requested.
        cameras: ``(B, C, F, H, W, 3)`` uint8 frames (oldest first), when requested.
        camera_names: the C camera names.
        sim, state: the simulator and its current state, for privileged policies (None
            otherwise).
    """

    time_s: torch.Tensor
    ego_history_ego_m: torch.Tensor
    ego_speed_mps: torch.Tensor
    ego_accel_mps2: torch.Tensor
    ego_yaw_rate_rps: torch.Tensor
    route_ego_m: torch.Tensor
    vector: torch.Tensor | None = None
    bev: torch.Tensor | None = None
    cameras: torch.Tensor | None = None
    camera_names: tuple[str, ...] = ()
    sim: Simulator | None = None
    state: SimState | None = None

    @property
    def batch_size(self) -> int:
        return int(self.time_s.shape[0])


@runtime_checkable
class Policy(Protocol):
    """A driving policy: decides a :class:`Plan` for every rollout of a batch."""

    name: str
    request: ObservationRequest

    def reset(self, scenes: Sequence[Scene]) -> None:
        """Start new episodes on ``scenes`` (one per rollout)."""

    def act(self, inputs: PolicyInput) -> Plan:
        """Plans for the B rollouts of ``inputs``."""
