"""Label one scene: keyframes → candidates → counterfactual proof → decisions → CoC → 2D
grounding → validation, as :class:`~cordillera.label.record.LabelSample` records.

All keyframes of a scene share one counterfactual simulator batch and one render batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from cordillera.label.candidates import Candidate, find_candidates
from cordillera.label.completion import complete_scene
from cordillera.label.config import LabelerConfig
from cordillera.label.counterfactual import evidence, nearby_scene, resimulate
from cordillera.label.decisions import (
    decision_mismatch,
    lateral_decision,
    longitudinal_decision,
    window_facts,
)
from cordillera.label.grounding import KeyframeImages, ground, render_keyframes, rig_for_scene
from cordillera.label.keyframes import EgoLabels, Keyframe, ego_labels, select_keyframes
from cordillera.label.record import CauseEvidence, LabelSample
from cordillera.policy.pdm_coc import describe_ego, describe_object
from cordillera.policy.plan import CausalObject, ChainOfCausation, Grounding, to_ego_frame
from cordillera.policy.vocabulary import LaneAction, LateralAction, LongitudinalAction
from cordillera.scene.model import Scene
from cordillera.scene.types import SignalState
from cordillera.sensors.presets import get_rig
from cordillera.sim.batch import SceneBatch

F32 = npt.NDArray[np.float32]
ROUTE_POINTS = 10
ROUTE_SPACING_M = 5.0
MAX_CAUSES = 3
MIN_VISIBLE_FRACTION = 0.05


@dataclass(frozen=True, eq=False)
class SceneLabels:
    """The labels of one scene and the camera frames they refer to.

    Attributes:
        samples: one per keyframe, in time order.
        images: the rendered frames (``rgb (K, F, C, H, W, 3)``), or None when not rendered.
        rig: the rig name.
    """

    samples: tuple[LabelSample, ...]
    images: KeyframeImages | None
    rig: str


def _to_ego(xy: np.ndarray, origin: np.ndarray, heading: float) -> F32:
    """``(P, 2)`` world points in the ego frame at ``origin`` / ``heading``."""
    ego = to_ego_frame(
        torch.from_numpy(xy[None]),
        torch.from_numpy(origin[None]),
        torch.tensor([heading], dtype=torch.float64),
    )
    return ego[0].numpy().astype(np.float32)


def _held(xy: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Positions with invalid steps holding the nearest earlier valid one (the first valid
    one before any)."""
    idx = np.where(ok, np.arange(len(ok)), -1)
    idx = np.maximum.accumulate(idx)
    first = int(np.argmax(ok)) if ok.any() else 0
    return xy[np.where(idx < 0, first, idx)]


def _route_ahead(scene: Scene, xy0: np.ndarray) -> np.ndarray:
    """``(R, 2)`` world points every 5 m along the route (or the ego's log) from ``xy0``."""
    path = scene.route.path_xyz_m[:, :2]
    if len(path) < 2:
        e = scene.ego_index
        path = scene.tracks.xyz_m[e, scene.tracks.valid[e], :2]
    if len(path) < 2:
        return np.repeat(xy0[None], ROUTE_POINTS, 0)
    seg = np.linalg.norm(np.diff(path, axis=0), axis=-1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    k = int(np.linalg.norm(path - xy0, axis=-1).argmin())
    want = s[k] + ROUTE_SPACING_M * np.arange(1, ROUTE_POINTS + 1)
    return np.stack([np.interp(want, s, path[:, 0]), np.interp(want, s, path[:, 1])], -1)


def _texts(labels: np.ndarray, vocab: type) -> tuple[str, ...]:
    return tuple(vocab(int(x)).text if x >= 0 else "" for x in labels)


def _future_labels(lab: torch.Tensor, step: int, horizon: int) -> np.ndarray:
    row = lab[0, step + 1 : step + 1 + horizon].numpy().astype(np.int64)
    return np.concatenate([row, np.full(horizon - len(row), -1, np.int64)])


def _causal_object(scene: Scene, cand: Candidate, step: int, effect: float) -> CausalObject:
    if cand.kind == "traffic_light":
        state = SignalState(int(scene.signals.state[cand.signal_rows[0], step]))
        what = f"{state.name.lower().replace('_', ' ')} {cand.distance_m:.0f} m ahead"
    elif cand.kind == "stop_sign":
        what = f"{cand.distance_m:.0f} m ahead"
    else:
        what = describe_object(cand.kind, cand.speed_mps, max(cand.ahead_m, 0.0), cand.crossing)
    return CausalObject(cand.cause_id, cand.kind, what, round(effect, 3))


def _causes(
    cands: list[Candidate], ev: tuple[CauseEvidence, ...], config: LabelerConfig
) -> list[tuple[Candidate, float]]:
    """Proven causes, strongest first (without counterfactuals: the nearest on-path one)."""
    by_id = {c.cause_id: c for c in cands}
    if config.counterfactual:
        return [(by_id[e.cause_id], e.effect) for e in ev if e.effect >= config.min_effect_mps][
            :MAX_CAUSES
        ]
    on_path = [c for c in cands if c.on_path]
    return [(on_path[0], 0.0)] if on_path else []


def _observable(scene: Scene, cand: Candidate, step: int, config: LabelerConfig) -> str:
    """Why ``cand`` cannot be seen in the history window, or ``""``."""
    if cand.kind == "traffic_light":
        state = scene.signals.state[list(cand.signal_rows), step]
        return "" if (state != int(SignalState.UNKNOWN)).any() else "light state unknown"
    if cand.kind == "stop_sign":
        return ""
    span = (config.frames - 1) * config.frame_stride_steps
    seen = scene.tracks.valid[cand.index, max(0, step - span) : step + 1]
    return "" if seen.any() else f"cause {cand.cause_id} is not in the history window"


def label_scene(
    scene: Scene, config: LabelerConfig | None = None, render: bool = True
) -> SceneLabels:
    """All labelled keyframes of ``scene`` (see the module docstring)."""
    cfg = config or LabelerConfig()
    scene = complete_scene(scene, cfg.completion_s)
    labels = ego_labels(scene)
    keyframes = select_keyframes(scene, labels, cfg)
    if cfg.rig == "auto":
        rig_name, rig = rig_for_scene(scene, cfg.image_width_px, cfg.image_height_px)
    else:
        rig_name = cfg.rig
        rig = get_rig(cfg.rig, cfg.image_width_px, cfg.image_height_px, scene=scene)
    if not keyframes:
        return SceneLabels((), None, rig_name)
    steps = [k.step for k in keyframes]
    horizon = round(cfg.counterfactual_horizon_s / scene.dt_s)
    near = nearby_scene(scene, steps, max(horizon, round(cfg.decision_window_s / scene.dt_s)))
    cands = [find_candidates(near, s, cfg) for s in steps]
    if cfg.counterfactual and any(cands):
        base = SceneBatch.from_scenes([near])
        ev = evidence(resimulate(near, base, steps, cands, cfg), cands)
    else:
        ev = [() for _ in steps]
    causes = [_causes(c, e, cfg) for c, e in zip(cands, ev, strict=True)]
    cause_ids = [[c.cause_id for c, _ in cs] for cs in causes]
    images = None
    groundings: list[tuple[Grounding, ...]] = [() for _ in steps]
    if render:
        images = render_keyframes(scene, steps, rig, cfg.frames, cfg.frame_stride_steps)
        groundings = ground(images, cause_ids)
    samples = [
        _sample(scene, near, labels, kf, ev[i], causes[i], groundings[i], rig_name, cfg)
        for i, kf in enumerate(keyframes)
    ]
    return SceneLabels(tuple(samples), images, rig_name)


def _sample(
    scene: Scene,
    near: Scene,
    labels: EgoLabels,
    kf: Keyframe,
    ev: tuple[CauseEvidence, ...],
    causes: list[tuple[Candidate, float]],
    groundings: tuple[Grounding, ...],
    rig_name: str,
    cfg: LabelerConfig,
) -> LabelSample:
    tr, e, step, dt = scene.tracks, scene.ego_index, kf.step, scene.dt_s
    ok = tr.valid[e]
    xy = _held(tr.xyz_m[e, :, :2].astype(np.float64), ok)
    origin, heading = xy[step], float(tr.heading_rad[e, step])
    hist = xy[np.arange(step - cfg.history_steps + 1, step + 1).clip(0)]
    last = len(ok) - 1 - int(np.argmax(ok[::-1]))
    fut_steps = np.arange(step + 1, step + 1 + cfg.horizon_steps)
    future = xy[fut_steps.clip(max=last)]
    kin = labels.kinematic.kinematics
    window = round(cfg.decision_window_s / dt)
    facts = window_facts(labels, step, window)
    lat = lateral_decision(scene, facts)
    top = causes[0][0] if causes else None
    lon = longitudinal_decision(facts, top, lat)
    coc = ChainOfCausation(
        longitudinal=lon,
        lateral=lat,
        causes=tuple(_causal_object(scene, c, step, eff) for c, eff in causes),
        ego_motion=describe_ego(facts.speed_now_mps, facts.speed_end_mps, facts.halts),
        evidence_window_s=(-(cfg.history_steps - 1) * dt, 0.0),
    )
    reasons = [decision_mismatch(facts, lon, lat)]
    if top is not None:
        reasons.append(_observable(near, top, step, cfg))
        if top.kind not in ("traffic_light", "stop_sign"):
            seen = [
                g
                for g in groundings
                if g.object_id == top.cause_id and g.visible_fraction >= MIN_VISIBLE_FRACTION
            ]
            if rig_name and not seen:
                reasons.append(f"cause {top.cause_id} is not visible in any camera")
    reasons = [r for r in reasons if r]
    lanes = labels.lanes
    lane_future = (
        _future_labels(lanes.lane, step, cfg.horizon_steps)
        if lanes is not None
        else np.full(cfg.horizon_steps, -1)
    )
    extra = scene.extra
    return LabelSample(
        scene_id=scene.scene_id,
        source=scene.source,
        time_s=round(step * dt, 3),
        step=step,
        keyframe_reason=kf.reason,
        ego_history_ego_m=_to_ego(hist, origin, heading),
        ego_speed_mps=float(kin.speed_mps[0, step]),
        ego_accel_mps2=float(kin.accel_mps2[0, step]),
        ego_yaw_rate_rps=float(kin.yaw_rate_rps[0, step]),
        future_ego_m=_to_ego(future, origin, heading),
        future_valid_steps=int(min(cfg.horizon_steps, max(0, last - step))),
        route_ego_m=_to_ego(_route_ahead(scene, origin), origin, heading),
        meta_longitudinal=_texts(
            _future_labels(labels.kinematic.longitudinal, step, cfg.horizon_steps),
            LongitudinalAction,
        ),
        meta_lateral=_texts(
            _future_labels(labels.kinematic.lateral, step, cfg.horizon_steps), LateralAction
        ),
        meta_lane=_texts(lane_future, LaneAction),
        decision_longitudinal=lon.text if lon is not None else None,
        decision_lateral=lat.text if lat is not None else None,
        coc=coc,
        evidence=ev,
        groundings=groundings,
        valid=not reasons,
        valid_reason="; ".join(reasons) if reasons else "ok",
        rig=rig_name,
        designed_cause_object_id=str(extra.get("designed_cause_object_id", "")),
        designed_decision=str(extra.get("designed_decision", "")),
        future_source=_future_source(scene, step, cfg),
    )


def _future_source(scene: Scene, step: int, cfg: LabelerConfig) -> str:
    """``"simulated"`` when part of the stored future comes from completing the log."""
    info = scene.extra.get("future_completion")
    if not isinstance(info, dict):
        return "log"
    from_step = int(info["from_step"])
    return "simulated" if step + cfg.horizon_steps > from_step else "log"
