"""The auto-labeler's settings: one frozen, typed record (saved with every dataset)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cordillera.errors import ConfigError, require_numbers
from cordillera.policy.registry import policy_config
from cordillera.sensors.presets import RIG_NAMES, get_rig


@dataclass(frozen=True)
class LabelerConfig:
    """How keyframes are chosen, decisions read, causes proven and frames stored.

    Attributes:
        regular_interval_s: a keyframe at least this often, besides behaviour changes.
        min_keyframe_gap_s: keyframes closer than this are merged (behaviour changes win).
        history_steps: past ego positions stored per sample (10 Hz, the current one included).
        horizon_steps: future positions stored per sample (64 = 6.4 s at 10 Hz).
        decision_window_s: future span whose behaviour the decisions describe.
        min_future_s: a keyframe needs this much logged future.
        counterfactual: re-simulate without each candidate cause (off: causes ranked by
            proximity only, effects 0 — a fast, unproven mode).
        counterfactual_horizon_s: length of each re-simulation.
        planner: the reactive planner that drives the ego in the re-simulations (a policy
            name: ``pdm`` forecasts other road users and avoids predicted conflicts; ``idm``
            reacts only to what is on its path now).
        candidate_radius_m: objects farther than this from the ego over the decision window
            are not candidate causes.
        max_candidates: most candidate causes tested per keyframe (nearest first).
        min_effect_mps: mean ego speed change (m/s) from which a candidate is a cause.
        frames: past camera frames stored per camera (the keyframe's included).
        frame_stride_steps: steps between stored frames.
        image_width_px, image_height_px: camera image size.
        rig: ``"auto"`` (the scene's real rig when it has calibration, else ``ring7``) or a
            rig preset name.
        completion_s: a log whose ego is logged for less than this (CommonRoad planning
            problems and interactive scenarios) is completed to this length by closed-loop
            simulation before labelling (:mod:`cordillera.label.completion`); 0 turns it off.
    """

    regular_interval_s: float = 2.0
    min_keyframe_gap_s: float = 0.8
    history_steps: int = 20
    horizon_steps: int = 64
    decision_window_s: float = 4.0
    min_future_s: float = 3.0
    counterfactual: bool = True
    counterfactual_horizon_s: float = 5.0
    planner: str = "idm"
    candidate_radius_m: float = 50.0
    max_candidates: int = 8
    min_effect_mps: float = 0.5
    frames: int = 4
    frame_stride_steps: int = 5
    image_width_px: int = 256
    image_height_px: int = 144
    rig: str = "auto"
    completion_s: float = 10.0

    def __post_init__(self) -> None:
        owner = "LabelerConfig"
        positive = (
            "regular_interval_s",
            "min_keyframe_gap_s",
            "decision_window_s",
            "min_future_s",
            "counterfactual_horizon_s",
            "candidate_radius_m",
            "min_effect_mps",
        )
        require_numbers(owner, self, positive)
        counts = (
            "history_steps",
            "horizon_steps",
            "max_candidates",
            "frames",
            "frame_stride_steps",
            "image_width_px",
            "image_height_px",
        )
        require_numbers(owner, self, counts, integer=True, minimum=1, inclusive=True)
        require_numbers(owner, self, ("completion_s",), inclusive=True)
        if not self.rig or not self.planner:
            raise ConfigError("LabelerConfig.rig and planner must be non-empty names")
        # Unknown names fail here, before a dataset folder records this configuration.
        if self.rig not in ("auto", *RIG_NAMES):
            get_rig(self.rig)  # a rig .json file, else ConfigError naming the choices
        policy_config(self.planner)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
