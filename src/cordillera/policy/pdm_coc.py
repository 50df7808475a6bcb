"""The PDM planner's Chain-of-Causation: which decision it took, and what caused it.

The planner knows its causes without guessing: every IDM proposal records the constraint that
took the most speed away from it (a leader, a red light, a stop sign; see
:class:`~cordillera.policy.pdm_proposals.Proposals`), and the scorer records the object a
rejected faster proposal would have hit. From the chosen proposal:

* longitudinal — a blocking cause (speed lost ≥ ``min_speed_loss_mps`` by the chosen
  proposal, or else by the fastest one on the same path): ``STOP`` for a light
  or a stop sign, ``YIELD`` for a pedestrian or cyclist, ``STOP`` / ``KEEP_DISTANCE`` for a
  vehicle or static object (whether the ego comes to a halt or follows). Without one, a
  slower proposal chosen because every faster one would hit something names that object
  (``YIELD`` / ``KEEP_DISTANCE``); otherwise ``RESUME_SPEED`` when pulling away from low speed,
  ``ADAPT_SPEED`` else.
* lateral — ``NUDGE`` when an offset path was chosen (its cause: what blocked the centre
  path; with no longitudinal cause the longitudinal decision is then ``PASS``), ``KEEP_LANE``
  otherwise.

Strings are built once per decision, per rollout: this runs at re-planning time only, after all
tensor work, on values fetched from the device in one go.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from cordillera.policy.baselines import object_name
from cordillera.policy.meta_actions import LateralDecision, LongitudinalDecision
from cordillera.policy.pdm_proposals import Proposals
from cordillera.policy.pdm_scoring import ProposalScores
from cordillera.policy.plan import CausalObject, ChainOfCausation
from cordillera.scene.model import Scene
from cordillera.scene.types import ObjectType, SignalState

STANDING_SPEED_MPS = 0.3
"""A plan whose speed falls below this within the forecast comes to a halt."""
SPEED_CHANGE_MPS = 1.0
"""Speed change over the forecast that reads as slowing / accelerating rather than keeping."""
RESUME_FROM_FRACTION = 0.7
"""Accelerating from below this fraction of the reference speed is resuming speed."""


@dataclass(frozen=True)
class ExplainInputs:
    """What :func:`explain` reads, already on the host.

    Attributes:
        scenes: B scenes (None where unknown) for object and signal ids.
        object_type: ``(B, N)`` object types; distance_m ``(B, N)`` from the ego now;
            speed_mps ``(B, N)`` signed speeds now.
        ego_speed_mps, reference_speed_mps: ``(B,)``.
        chosen: ``(B,)`` the chosen proposal.
        forecast_steps: steps of the scored forecast (the evidence window).
        dt_s: seconds per step.
        min_speed_loss_mps: speed loss from which a constraint is a cause.
    """

    scenes: tuple[Scene | None, ...]
    object_type: torch.Tensor
    distance_m: torch.Tensor
    speed_mps: torch.Tensor
    ego_speed_mps: torch.Tensor
    reference_speed_mps: torch.Tensor
    chosen: torch.Tensor
    forecast_steps: int
    dt_s: float
    min_speed_loss_mps: float


def _kind(object_type: int) -> str:
    try:
        return ObjectType(object_type).name.lower()
    except ValueError:
        return "other"


def describe_object(kind: str, speed_mps: float, distance_m: float, crossing: bool) -> str:
    """What an object on the path does, in a few words (``"crossing 12 m ahead"``)."""
    where = f"{distance_m:.0f} m ahead"
    if kind in ("pedestrian", "cyclist"):
        if abs(speed_mps) < STANDING_SPEED_MPS:
            return f"standing in the path {where}"
        if crossing:
            return f"crossing {where}"
        return f"{'walking' if kind == 'pedestrian' else 'riding'} along the path {where}"
    if abs(speed_mps) < STANDING_SPEED_MPS:
        return f"stopped {where}"
    return f"moving at {abs(speed_mps):.1f} m/s {where}"


def describe_ego(speed_now_mps: float, speed_end_mps: float, halts: bool) -> str:
    """The ego's motion over the forecast in a few words (``"slowing from 9.1 m/s"``)."""
    if speed_now_mps < STANDING_SPEED_MPS and speed_end_mps < STANDING_SPEED_MPS:
        return "standing"
    if halts:
        return f"stopping from {speed_now_mps:.1f} m/s"
    if speed_end_mps < speed_now_mps - SPEED_CHANGE_MPS:
        return f"slowing from {speed_now_mps:.1f} m/s"
    if speed_end_mps > speed_now_mps + SPEED_CHANGE_MPS:
        return f"accelerating from {speed_now_mps:.1f} m/s"
    return f"keeping {speed_now_mps:.1f} m/s"


def _host(t: torch.Tensor) -> list[Any]:
    return t.detach().cpu().tolist()


def explain(
    proposals: Proposals, scores: ProposalScores, inputs: ExplainInputs
) -> tuple[ChainOfCausation, ...]:
    """One Chain-of-Causation per rollout for the chosen proposals (see the module docstring)."""
    obs = proposals.obstacles
    b, p = scores.total.shape
    c = obs.index.shape[1]
    rows = torch.arange(b, device=scores.total.device)
    chosen = inputs.chosen
    nf = min(inputs.forecast_steps, proposals.speed_mps.shape[-1])
    v_chosen = proposals.speed_mps[rows, chosen, :nf]
    frac, off = proposals.fraction, proposals.offset_m
    # The centre-path proposal with the chosen speed fraction (the nudge's counterfactual).
    same_frac = frac[None, :] == frac[chosen][:, None]
    centre = torch.where(
        same_frac & (off[None, :] == 0), torch.arange(p, device=off.device), p
    ).amin(1)
    centre = torch.where(centre < p, centre, chosen)
    # The fastest proposal on the chosen path: what blocks it explains a slower choice.
    same_off = off[None, :] == off[chosen][:, None]
    fastest = torch.where(same_off, frac[None, :].expand(b, p), -1.0).argmax(1)
    # Faster proposals on the chosen path rejected because they would hit something.
    faster = (frac[None, :] > frac[chosen][:, None]) & same_off
    hit = faster & (scores.collision_object >= 0)
    hit_q = torch.where(hit, frac[None, :].expand(b, p), torch.inf).argmin(1)
    host = {
        "chosen": _host(chosen),
        "centre": _host(centre),
        "fastest": _host(fastest),
        "offset": _host(off[chosen]),
        "cause": _host(proposals.cause),
        "loss": _host(proposals.speed_loss_mps),
        "index": _host(obs.index),
        "crossing": _host(obs.crossing),
        "light_s": _host(obs.light_s_m),
        "light_i": _host(obs.light_index),
        "light_state": _host(obs.light_state),
        "sign_s": _host(obs.sign_s_m),
        "sign_i": _host(obs.sign_index),
        "hit_any": _host(hit.any(1)),
        "hit_obj": _host(scores.collision_object[rows, hit_q]),
        "type": _host(inputs.object_type),
        "dist": _host(inputs.distance_m),
        "speed": _host(inputs.speed_mps),
        "v_now": _host(inputs.ego_speed_mps),
        "v_ref": _host(inputs.reference_speed_mps),
        "v_end": _host(v_chosen[:, -1]),
        "halts": _host((v_chosen < STANDING_SPEED_MPS).any(1)),
    }
    window = (0.0, nf * inputs.dt_s)
    out = []
    for i in range(b):  # strings per rollout, once per decision (not the tensor hot path)
        scene = inputs.scenes[i] if i < len(inputs.scenes) else None

        def blocker(q: int, i: int = i, scene: Scene | None = scene) -> CausalObject | None:
            """The constraint that slowed proposal q of rollout i, if it is a cause."""
            loss, k = host["loss"][i][q], host["cause"][i][q]
            if loss < inputs.min_speed_loss_mps:
                return None
            if k < c:
                j = host["index"][i][k]
                kind = _kind(host["type"][i][j])
                what = describe_object(
                    kind, host["speed"][i][j], host["dist"][i][j], host["crossing"][i][k]
                )
                return CausalObject(object_name(scene, j), kind, what, round(loss, 2))
            if k == c:
                li = host["light_i"][i]
                lane = int(scene.signals.lane[li]) if scene is not None else li
                colour = SignalState(host["light_state"][i]).name.lower().replace("_", " ")
                what = f"{colour} {host['light_s'][i]:.0f} m ahead"
                return CausalObject(f"light:{lane}", "traffic_light", what, round(loss, 2))
            si = host["sign_i"][i]
            what = f"{host['sign_s'][i]:.0f} m ahead"
            return CausalObject(f"stop_sign:{si}", "stop_sign", what, round(loss, 2))

        q = host["chosen"][i]
        halts = bool(host["halts"][i])
        cause = blocker(q)
        if cause is None and host["fastest"][i] != q:
            cause = blocker(host["fastest"][i])  # chose slower as the faster one is blocked
        lon: LongitudinalDecision
        if cause is None and host["hit_any"][i]:
            j = host["hit_obj"][i]
            kind = _kind(host["type"][i][j])
            what = f"on a collision course {host['dist'][i][j]:.0f} m away"
            cause = CausalObject(object_name(scene, j), kind, what)
        if cause is None:
            accelerating = host["v_end"][i] > host["v_now"][i] + SPEED_CHANGE_MPS
            slow = host["v_now"][i] < RESUME_FROM_FRACTION * host["v_ref"][i]
            lon = (
                LongitudinalDecision.RESUME_SPEED
                if accelerating and slow
                else LongitudinalDecision.ADAPT_SPEED
            )
        elif cause.kind in ("traffic_light", "stop_sign"):
            lon = LongitudinalDecision.STOP
        elif cause.kind in ("pedestrian", "cyclist"):
            lon = LongitudinalDecision.YIELD
        else:
            lon = LongitudinalDecision.STOP if halts else LongitudinalDecision.KEEP_DISTANCE
        causes = [cause] if cause is not None else []
        lat = LateralDecision.KEEP_LANE
        if host["offset"][i] != 0.0:
            lat = LateralDecision.NUDGE
            around = blocker(host["centre"][i])
            if around is not None and not causes:
                lon = LongitudinalDecision.PASS  # going round what blocks the centre path
            if around is not None and all(around.object_id != x.object_id for x in causes):
                causes.append(around)
        motion = describe_ego(host["v_now"][i], host["v_end"][i], halts)
        out.append(ChainOfCausation(lon, lat, tuple(causes), motion, window))
    return tuple(out)


__all__ = ["ExplainInputs", "describe_ego", "describe_object", "explain"]
