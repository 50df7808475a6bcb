"""Frozen, validated configuration of the simulator."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cordillera.errors import ConfigError, require_numbers

TrafficMode = Literal["log", "idm"]
ControlMode = Literal["ego", "self-play"]


@dataclass(frozen=True)
class VehicleLimits:
    """Physical limits of the kinematic model applied to controlled vehicles.

    Attributes:
        max_accel_mps2: largest forward acceleration.
        max_decel_mps2: largest braking deceleration (positive number).
        max_curvature_1pm: largest |path curvature| (1 / minimum turning radius).
        max_speed_mps: speed cap; reverse is capped at ``max_reverse_speed_mps``.
        max_reverse_speed_mps: largest reverse speed (positive number).
    """

    max_accel_mps2: float = 4.0
    max_decel_mps2: float = 9.0
    max_curvature_1pm: float = 0.3
    max_speed_mps: float = 40.0
    max_reverse_speed_mps: float = 5.0

    def __post_init__(self) -> None:
        require_numbers(
            "VehicleLimits",
            self,
            (
                "max_accel_mps2",
                "max_decel_mps2",
                "max_curvature_1pm",
                "max_speed_mps",
                "max_reverse_speed_mps",
            ),
        )


@dataclass(frozen=True)
class IdmConfig:
    """Intelligent Driver Model parameters of reactive traffic (Treiber et al., 2000).

    Attributes:
        max_accel_mps2: ``a`` — maximum acceleration.
        comfort_decel_mps2: ``b`` — comfortable deceleration.
        max_decel_mps2: hard cap on braking, so emergencies stay physical.
        headway_s: ``T`` — desired time headway.
        min_gap_m: ``s0`` — jam distance.
        delta: acceleration exponent.
        lookahead_m: how far along its path an agent looks for leaders, lights and signs.
        lateral_margin_m: extra clearance beyond half-widths for an object to count as on-path.
        num_path_samples: points sampled along the path ahead for on-path tests.
        num_neighbours: nearest objects ahead kept as potential leaders per agent.
        neighbour_refresh_steps: steps between recomputations of the neighbour lists.
        stop_sign_wait_s: how long an agent halts at a stop sign before proceeding.
        pedestrian_anticipation_s: a pedestrian or cyclist also counts as on the path where
            its constant-velocity position this far ahead is (drivers brake for someone
            stepping off the curb, not only once they are in the lane); 0 disables.
    """

    max_accel_mps2: float = 1.5
    comfort_decel_mps2: float = 2.0
    max_decel_mps2: float = 8.0
    headway_s: float = 1.2
    min_gap_m: float = 2.0
    delta: float = 4.0
    lookahead_m: float = 40.0
    lateral_margin_m: float = 0.3
    num_path_samples: int = 16
    num_neighbours: int = 12
    neighbour_refresh_steps: int = 5
    stop_sign_wait_s: float = 1.0
    pedestrian_anticipation_s: float = 1.5

    def __post_init__(self) -> None:
        if self.pedestrian_anticipation_s < 0:
            raise ConfigError("IdmConfig.pedestrian_anticipation_s must be >= 0")
        require_numbers(
            "IdmConfig",
            self,
            (
                "max_accel_mps2",
                "comfort_decel_mps2",
                "max_decel_mps2",
                "headway_s",
                "min_gap_m",
                "delta",
                "lookahead_m",
                "num_path_samples",
                "num_neighbours",
                "neighbour_refresh_steps",
            ),
        )
        if self.lateral_margin_m < 0 or self.stop_sign_wait_s < 0:
            raise ConfigError("IdmConfig.lateral_margin_m and stop_sign_wait_s must be >= 0")


@dataclass(frozen=True)
class TrackerConfig:
    """Plan-tracking controller (see :func:`cordillera.sim.dynamics.track_plan`).

    Attributes:
        longitudinal_lookahead_steps: waypoint whose arc length sets the acceleration.
        lateral_lookahead_steps: waypoint pursued for the curvature.
    """

    longitudinal_lookahead_steps: int = 10
    lateral_lookahead_steps: int = 5

    def __post_init__(self) -> None:
        steps = ("longitudinal_lookahead_steps", "lateral_lookahead_steps")
        require_numbers("TrackerConfig", self, steps, integer=True, minimum=1, inclusive=True)


@dataclass(frozen=True)
class SimConfig:
    """What the simulator does with each kind of agent.

    Attributes:
        traffic: ``"idm"`` — vehicles and cyclists not under control follow their logged path
            with IDM speed control (they react to the ego, to each other, to red lights and
            stop signs, and to pedestrians on their path); ``"log"`` — they replay the log.
            Pedestrians and static objects always replay the log.
        control: ``"ego"`` — only the ego is controlled; ``"self-play"`` — every vehicle valid
            at the start step is controlled.
        start_step: log step the rollout starts at (steps before it are history).
        limits: kinematic limits of controlled vehicles.
        idm: reactive-traffic parameters.
        tracker: plan-tracking controller parameters.
        compile: compile the step, traffic and check kernels with ``torch.compile`` (fuses
            the many small array operations of a step; costs ~1 min of compilation at the
            first step, pays off for long training or benchmark runs).
    """

    traffic: TrafficMode = "idm"
    control: ControlMode = "ego"
    start_step: int = 0
    limits: VehicleLimits = field(default_factory=VehicleLimits)
    idm: IdmConfig = field(default_factory=IdmConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    compile: bool = False

    def __post_init__(self) -> None:
        if self.traffic not in ("log", "idm"):
            raise ConfigError(f"SimConfig.traffic must be 'log' or 'idm', got {self.traffic!r}")
        if self.control not in ("ego", "self-play"):
            raise ConfigError(
                f"SimConfig.control must be 'ego' or 'self-play', got {self.control!r}"
            )
        if self.start_step < 0:
            raise ConfigError(f"SimConfig.start_step must be >= 0, got {self.start_step}")
