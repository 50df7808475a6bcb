"""One labelled keyframe: what the auto-labeler writes for a moment of a driving log.

A :class:`LabelSample` is the unit of the labelled dataset (one Parquet row; its camera frames
are image files beside it). Everything is in the ego frame at the keyframe (x forward, y left,
metres) unless the name says otherwise. See ``docs/dataset.md`` for the on-disk schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cordillera.policy.plan import ChainOfCausation, Grounding

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class CauseEvidence:
    """The counterfactual test of one candidate cause.

    Attributes:
        cause_id: object id, ``"light:<lane>"``, ``"stop_sign:<i>"`` or ``"road"``.
        kind: ``vehicle``, ``pedestrian``, ``cyclist``, ``other``, ``traffic_light``,
            ``stop_sign`` or ``road``.
        intervention: what was changed (``"removed"``, ``"set green"``, ``"straightened"``).
        effect: how much the ego's re-simulated behaviour changed without the cause: mean
            absolute speed difference over the horizon, m/s.
        min_speed_factual_mps, min_speed_counterfactual_mps: lowest ego speed over the horizon
            with and without the cause.
        decision_changed: whether the decision of the counterfactual rollout differs.
    """

    cause_id: str
    kind: str
    intervention: str
    effect: float
    min_speed_factual_mps: float
    min_speed_counterfactual_mps: float
    decision_changed: bool


@dataclass(frozen=True)
class CameraFrameRef:
    """One stored camera image of a sample.

    Attributes:
        camera: camera name in the rig.
        frame: index among the sample's past frames, 0 = oldest; the last is the keyframe.
        time_offset_s: time of the frame relative to the keyframe (<= 0).
        path: image path relative to the dataset root.
    """

    camera: str
    frame: int
    time_offset_s: float
    path: str


@dataclass(frozen=True, eq=False)
class LabelSample:
    """One labelled keyframe.

    Attributes:
        scene_id, source: the scene and its provenance (``nuscenes``, ``av2``, ``generated``).
        time_s: keyframe time since the start of the log; step: its index at 10 Hz.
        keyframe_reason: why this moment was chosen (``"start of braking"``, ``"regular"``).
        ego_history_ego_m: ``(H, 2)`` past ego positions, oldest first; last row is the origin.
        ego_speed_mps, ego_accel_mps2, ego_yaw_rate_rps: ego state at the keyframe.
        future_ego_m: ``(K, 2)`` logged future positions at 10 Hz (K = 64, padded by holding
            the last valid position); future_valid_steps: how many are logged.
        route_ego_m: ``(R, 2)`` route points ahead.
        meta_longitudinal, meta_lateral, meta_lane: ``K`` kinematic labels of the future, as
            vocabulary texts (lane: ``""`` where the map gives none).
        decision_longitudinal, decision_lateral: decision texts, or None.
        coc: the Chain-of-Causation (causes strongest first).
        evidence: counterfactual tests of every candidate, strongest first.
        groundings: 2D boxes of the causal objects in every camera where they are visible.
        valid, valid_reason: the label's validation outcome (reason ``"ok"`` when valid).
        rig: rig name; frames: the stored camera images.
        designed_cause_object_id, designed_decision: the design of a generated scene, else "".
        future_source: ``"log"``, or ``"simulated"`` where the stored future (and so the
            decisions) comes from completing a short log by simulation.
    """

    scene_id: str
    source: str
    time_s: float
    step: int
    keyframe_reason: str
    ego_history_ego_m: FloatArray
    ego_speed_mps: float
    ego_accel_mps2: float
    ego_yaw_rate_rps: float
    future_ego_m: FloatArray
    future_valid_steps: int
    route_ego_m: FloatArray
    meta_longitudinal: tuple[str, ...]
    meta_lateral: tuple[str, ...]
    meta_lane: tuple[str, ...]
    decision_longitudinal: str | None
    decision_lateral: str | None
    coc: ChainOfCausation
    evidence: tuple[CauseEvidence, ...] = ()
    groundings: tuple[Grounding, ...] = ()
    valid: bool = True
    valid_reason: str = "ok"
    rig: str = ""
    frames: tuple[CameraFrameRef, ...] = field(default=())
    designed_cause_object_id: str = ""
    designed_decision: str = ""
    future_source: str = "log"

    @property
    def sample_id(self) -> str:
        """Unique key of the sample in a dataset: ``"<scene_id>@<step>"``."""
        return f"{self.scene_id}@{self.step:05d}"

    @property
    def causes(self) -> tuple[str, ...]:
        """Causal object ids, strongest first."""
        return tuple(c.object_id for c in self.coc.causes)

    @property
    def coc_text(self) -> str:
        return self.coc.text()
