"""The output contract of every policy: a :class:`Plan` per decision.

A plan carries a trajectory (64 future waypoints at 10 Hz by default), one kinematic
meta-action per family for that trajectory, the decisions stated in a Chain-of-Causation
(CoC) trace with the objects that caused them, and optional 2D groundings of those objects
in the camera images. Baselines that do not reason still fill in the meta-actions derived
from their trajectory and leave the CoC empty.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch

from cordillera.errors import CordilleraError
from cordillera.policy.vocabulary import (
    LaneAction,
    LateralAction,
    LateralDecision,
    LongitudinalAction,
    LongitudinalDecision,
)

PLAN_HORIZON = 64
"""Waypoints of a plan: 6.4 s at 10 Hz."""


class PlanError(CordilleraError):
    """A plan that breaks its contract (shapes, non-finite waypoints, unknown labels)."""


@dataclass(frozen=True)
class CausalObject:
    """One cause of a decision.

    Attributes:
        object_id: the scene's id of the object (or ``"light:<lane>"``, ``"stop_sign:<i>"``,
            ``"road"`` for map causes).
        kind: ``vehicle``, ``pedestrian``, ``cyclist``, ``other``, ``traffic_light``,
            ``stop_sign`` or ``road``.
        behaviour: what it does, in a few words (``"crossing 12 m ahead"``).
        effect: strength of the cause (e.g. how much removing it changes the ego's speed in
            m/s); larger is stronger, 0 when not measured.
    """

    object_id: str
    kind: str
    behaviour: str
    effect: float = 0.0


@dataclass(frozen=True)
class ChainOfCausation:
    """A structured reasoning trace: decisions, their causes, the ego's motion, the evidence.

    Attributes:
        longitudinal: the longitudinal decision, or None.
        lateral: the lateral decision, or None.
        causes: the causal objects, strongest first.
        ego_motion: the ego's motion in a few words (``"slowing from 9.1 m/s"``).
        evidence_window_s: ``(start, end)`` of the evidence, seconds relative to the
            decision time (negative = past).
    """

    longitudinal: LongitudinalDecision | None
    lateral: LateralDecision | None
    causes: tuple[CausalObject, ...] = ()
    ego_motion: str = ""
    evidence_window_s: tuple[float, float] = (-2.0, 0.0)

    def text(self) -> str:
        """One or two plain sentences rendered from the structure."""
        decisions = [
            d.text.replace("_", " ") for d in (self.longitudinal, self.lateral) if d is not None
        ]
        what = " and ".join(decisions) if decisions else "drive on"
        if self.causes:
            c = self.causes[0]
            because = f"{c.kind.replace('_', ' ')} {c.object_id} is {c.behaviour}"
            if len(self.causes) > 1:
                because += f" (and {len(self.causes) - 1} more)"
            first = f"{what.capitalize()}: {because}."
        else:
            first = f"{what.capitalize()}: nothing on the path requires otherwise."
        return f"{first} The ego is {self.ego_motion}." if self.ego_motion else first

    def to_json(self) -> dict[str, Any]:
        return {
            "longitudinal": self.longitudinal.text if self.longitudinal is not None else None,
            "lateral": self.lateral.text if self.lateral is not None else None,
            "causes": [c.__dict__ for c in self.causes],
            "ego_motion": self.ego_motion,
            "evidence_window_s": list(self.evidence_window_s),
            "text": self.text(),
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> ChainOfCausation:
        """Inverse of :meth:`to_json` (the ``text`` field is derived and ignored)."""
        try:
            lon, lat = data.get("longitudinal"), data.get("lateral")
            window = data.get("evidence_window_s", (-2.0, 0.0))
            return ChainOfCausation(
                longitudinal=LongitudinalDecision.parse(lon) if lon else None,
                lateral=LateralDecision.parse(lat) if lat else None,
                causes=tuple(CausalObject(**c) for c in data.get("causes", [])),
                ego_motion=str(data.get("ego_motion", "")),
                evidence_window_s=(float(window[0]), float(window[1])),
            )
        except (TypeError, KeyError, IndexError, ValueError) as e:
            raise PlanError(f"malformed CoC record {json.dumps(data)[:200]}: {e}") from None


@dataclass(frozen=True)
class Grounding:
    """Where a causal object appears in one camera image.

    Attributes:
        camera: camera name in the rig.
        object_id: the object's id in the scene.
        bbox_xyxy: ``(x0, y0, x1, y1)`` pixels, clipped to the image.
        visible_fraction: share of the object's silhouette not hidden by others, in [0, 1].
    """

    camera: str
    object_id: str
    bbox_xyxy: tuple[float, float, float, float]
    visible_fraction: float


@dataclass(frozen=True, eq=False)
class Plan:
    """Plans for B decisions (one per rollout).

    Attributes:
        waypoints_ego_m: ``(B, K, 2)`` float32 future positions, one every ``dt_s``, in the ego
            frame at decision time (x forward, y left, metres); K = 64 at 10 Hz by default.
        longitudinal: ``(B,)`` int64 :class:`LongitudinalAction` of the trajectory.
        lateral: ``(B,)`` int64 :class:`LateralAction`.
        lane: ``(B,)`` int64 :class:`LaneAction`, -1 where no map was available.
        coc: B Chain-of-Causation traces (None for policies that do not reason).
        groundings: B tuples of :class:`Grounding`.
    """

    waypoints_ego_m: torch.Tensor
    longitudinal: torch.Tensor
    lateral: torch.Tensor
    lane: torch.Tensor
    coc: tuple[ChainOfCausation | None, ...] = ()
    groundings: tuple[tuple[Grounding, ...], ...] = field(default=())

    def __post_init__(self) -> None:
        b = self.waypoints_ego_m.shape[0] if self.waypoints_ego_m.ndim == 3 else 0
        if not self.coc:
            object.__setattr__(self, "coc", (None,) * b)
        if not self.groundings:
            object.__setattr__(self, "groundings", ((),) * b)
        self.validate()

    @property
    def batch_size(self) -> int:
        return int(self.waypoints_ego_m.shape[0])

    def validate(self) -> None:
        w = self.waypoints_ego_m
        if w.ndim != 3 or w.shape[-1] != 2 or w.shape[1] < 1:
            raise PlanError(f"waypoints_ego_m must be (B, K, 2), got {tuple(w.shape)}")
        if not bool(torch.isfinite(w).all()):
            raise PlanError("waypoints_ego_m has non-finite values")
        b = w.shape[0]
        for name, vocab, allow_none in (
            ("longitudinal", LongitudinalAction, False),
            ("lateral", LateralAction, False),
            ("lane", LaneAction, True),
        ):
            t = getattr(self, name)
            if tuple(t.shape) != (b,):
                raise PlanError(f"{name} must be ({b},), got {tuple(t.shape)}")
            lo = -1 if allow_none else 0
            if b and (int(t.min()) < lo or int(t.max()) >= len(vocab)):
                raise PlanError(f"{name} holds {t.tolist()}, outside {vocab.__name__}")
        if len(self.coc) != b or len(self.groundings) != b:
            raise PlanError(
                f"coc ({len(self.coc)}) and groundings ({len(self.groundings)}) "
                f"must have one entry per plan ({b})"
            )

    def to_local(self, ego_xy_m: torch.Tensor, ego_heading_rad: torch.Tensor) -> torch.Tensor:
        """``(B, K, 2)`` waypoints in the simulator's frame, given the ego poses at decision
        time (``(B, 2)`` positions, ``(B,)`` headings in that frame)."""
        return from_ego_frame(self.waypoints_ego_m, ego_xy_m, ego_heading_rad)


def to_ego_frame(
    xy_m: torch.Tensor, ego_xy_m: torch.Tensor, ego_heading_rad: torch.Tensor
) -> torch.Tensor:
    """``(B, K, 2)`` points of the simulator's frame in the ego frames (inverse of
    :meth:`Plan.to_local`)."""
    d = xy_m - ego_xy_m[:, None, :]
    c, s = torch.cos(ego_heading_rad)[:, None], torch.sin(ego_heading_rad)[:, None]
    return torch.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], -1)


def from_ego_frame(
    xy_ego_m: torch.Tensor, ego_xy_m: torch.Tensor, ego_heading_rad: torch.Tensor
) -> torch.Tensor:
    """``(B, K, 2)`` ego-frame points in the simulator's frame, given the ego poses ``(B, 2)``,
    ``(B,)`` there (inverse of :func:`to_ego_frame`)."""
    c, s = torch.cos(ego_heading_rad)[:, None], torch.sin(ego_heading_rad)[:, None]
    x, y = xy_ego_m[..., 0], xy_ego_m[..., 1]
    return torch.stack([c * x - s * y, s * x + c * y], -1) + ego_xy_m[:, None, :]


def heading_of(waypoints: torch.Tensor) -> torch.Tensor:
    """``(B, K)`` headings along ``(B, K, 2)`` waypoints (the last repeats; 0 when standing)."""
    d = torch.diff(waypoints, dim=1)
    h = torch.atan2(d[..., 1], d[..., 0])
    moving = torch.linalg.vector_norm(d, dim=-1) > 1e-3
    h = torch.where(moving, h, 0.0)
    return torch.cat([h, h[:, -1:]], 1) if h.shape[1] else torch.zeros_like(waypoints[..., 0])


__all__ = [
    "PLAN_HORIZON",
    "CausalObject",
    "ChainOfCausation",
    "Grounding",
    "Plan",
    "PlanError",
    "from_ego_frame",
    "heading_of",
    "to_ego_frame",
]
