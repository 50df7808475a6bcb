"""Open-loop evaluation of a VLA on held-back labelled samples (``cordillera model eval``).

Per sample the model decides once (greedy text, ``samples`` flow draws) and is scored against
the logged future and the sample's labels:

* ``ade_m@T`` — mean displacement of the plan (the first draw) over the first T seconds, and
  ``min_ade_m@T`` — the best of the S draws; horizons 0.5, 1, 3 and 5 s. Only logged steps
  count (``future_valid_steps``); a sample whose log ends before T is averaged over the steps
  it has, and one with none is left out of that horizon. The same figures for the
  constant-velocity baseline (current speed, straight ahead: :func:`constant_velocity`);
* ``meta_accuracy`` — per family, the emitted meta-action equals the sample's labels
  summarised as the training targets were (:func:`sample_meta_actions`); lane only where the
  sample has a lane label;
* ``decision_accuracy`` — the CoC's longitudinal / lateral decision equals the sample's
  (``None`` = no decision counts as a value);
* ``parse_rate`` — CoC and meta line both parse;
* ``consistency`` — the stated longitudinal decision is compatible with the kinematic
  longitudinal meta-action of the model's *own* trajectory (:data:`COMPATIBLE`), over the
  decisions whose CoC parsed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from cordillera.errors import ConfigError
from cordillera.policy.meta_fill import fill_meta_actions
from cordillera.policy.plan import ChainOfCausation
from cordillera.policy.vocabulary import LongitudinalAction as LA
from cordillera.policy.vocabulary import LongitudinalDecision as LD
from cordillera.vla.data import TrainingSet
from cordillera.vla.model import VlaModel
from cordillera.vla.text import MetaActions
from cordillera.vla.unicycle import constant_velocity

HORIZONS_S = (0.5, 1.0, 3.0, 5.0)
METRICS_FILE = "eval_metrics.json"

_NOT_FASTER = frozenset(
    {LA.GENTLE_DECELERATION, LA.STRONG_DECELERATION, LA.STOP, LA.MAINTAIN_SPEED}
)
_NOT_BRAKING_HARD = frozenset(set(LA) - {LA.STRONG_DECELERATION, LA.STOP})
COMPATIBLE: dict[LD | None, frozenset[LA]] = {
    LD.STOP: frozenset({LA.GENTLE_DECELERATION, LA.STRONG_DECELERATION, LA.STOP}),
    LD.YIELD: _NOT_FASTER,
    LD.PASS: _NOT_BRAKING_HARD,
    LD.KEEP_DISTANCE: frozenset(set(LA) - {LA.STRONG_ACCELERATION}),
    LD.ADAPT_SPEED: frozenset(set(LA) - {LA.STOP}),
    LD.RESUME_SPEED: frozenset({LA.GENTLE_ACCELERATION, LA.STRONG_ACCELERATION, LA.MAINTAIN_SPEED}),
    None: _NOT_BRAKING_HARD,
}
"""Stated longitudinal decision → kinematic longitudinal meta-actions of the plan that do not
contradict it: a stop brakes (to a standstill or on the way to one); a yield does not speed
up; a pass does not brake hard or stop; keeping distance does not accelerate hard; adapting
speed does not stand still; resuming does not slow down; no decision ("drive on") does not
brake hard or stop. ``gap_search`` is absent: compatible with every meta-action."""


def consistent(decision: LD | None, kinematic: LA) -> bool:
    """Whether a stated longitudinal decision is compatible with a plan's kinematic
    longitudinal meta-action (:data:`COMPATIBLE`)."""
    allowed = COMPATIBLE.get(decision)
    return allowed is None or kinematic in allowed


def horizon_ade(
    plans_ego_m: torch.Tensor, future_ego_m: torch.Tensor, valid: torch.Tensor, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Average displacement over the first ``steps`` waypoints.

    Args:
        plans_ego_m: ``(N, S, K, 2)`` S plans per sample.
        future_ego_m: ``(N, K, 2)`` the logged future; valid: ``(N, K)`` its logged steps.

    Returns:
        ``(N, S)`` ADE per plan (metres) and ``(N,)`` bool, samples with a logged step in the
        window.
    """
    err = torch.linalg.vector_norm(
        plans_ego_m[:, :, :steps] - future_ego_m[:, None, :steps], dim=-1
    )
    w = valid[:, None, :steps].to(err.dtype)
    n = w.sum(-1)
    return (err * w).sum(-1) / n.clamp_min(1.0), n[:, 0] > 0


@dataclass
class OpenLoopMetrics:
    """The figures of :func:`evaluate_open_loop` (see the module docstring).

    ``ade_m`` / ``min_ade_m`` / ``cv_ade_m`` map a horizon label (``"3.0s"``) to metres.
    """

    samples: int
    flow_samples: int
    ade_m: dict[str, float]
    min_ade_m: dict[str, float]
    cv_ade_m: dict[str, float]
    meta_accuracy: dict[str, float]
    decision_accuracy: dict[str, float]
    parse_rate: float
    consistency: float
    beats_cv_min_ade_3s: bool

    def to_json(self) -> dict[str, object]:
        """As a JSON object; an undefined figure (NaN, e.g. consistency without one parsed
        CoC) is ``null``, so the output stays strict JSON."""

        def clean(v: object) -> object:
            if isinstance(v, float) and math.isnan(v):
                return None
            return {k: clean(x) for k, x in v.items()} if isinstance(v, dict) else v

        return {k: clean(v) for k, v in asdict(self).items()}


def _mean(values: Sequence[bool]) -> float:
    return float(sum(values)) / len(values) if values else float("nan")


def score(
    plans_ego_m: torch.Tensor,
    speed_mps: torch.Tensor,
    future_ego_m: torch.Tensor,
    valid: torch.Tensor,
    meta: Sequence[MetaActions | None],
    coc: Sequence[ChainOfCausation | None],
    target_meta: Sequence[MetaActions],
    target_decisions: Sequence[tuple[str | None, str | None]],
    dt_s: float,
) -> OpenLoopMetrics:
    """The metrics of N decisions (pure: no model, tested on hand-built values).

    Args:
        plans_ego_m: ``(N, S, K, 2)`` the decisions' plans, the first being the plan.
        speed_mps: ``(N,)`` ego speeds (the constant-velocity baseline).
        future_ego_m, valid: ``(N, K, 2)`` logged futures and ``(N, K)`` logged steps.
        meta, coc: the parsed text of each decision (None: did not parse).
        target_meta: the samples' summarised meta-action labels.
        target_decisions: the samples' (longitudinal, lateral) decision texts.
    """
    n, s, k, _ = plans_ego_m.shape
    cv = constant_velocity(speed_mps.float(), k, dt_s)[:, None]
    ade, min_ade, cv_ade = {}, {}, {}
    for h in HORIZONS_S:
        steps = min(k, round(h / dt_s))
        e, ok = horizon_ade(plans_ego_m.float(), future_ego_m.float(), valid, steps)
        c, _ = horizon_ade(cv, future_ego_m.float(), valid, steps)
        key = f"{h:.1f}s"
        ade[key] = float(e[ok, 0].mean()) if ok.any() else float("nan")
        min_ade[key] = float(e[ok].min(1).values.mean()) if ok.any() else float("nan")
        cv_ade[key] = float(c[ok, 0].mean()) if ok.any() else float("nan")
    lon_ok, lat_ok, lane_ok = [], [], []
    for m, t in zip(meta, target_meta, strict=True):
        lon_ok.append(m is not None and m.longitudinal == t.longitudinal)
        lat_ok.append(m is not None and m.lateral == t.lateral)
        if t.lane is not None:
            lane_ok.append(m is not None and m.lane == t.lane)
    dec_lon, dec_lat = [], []
    for c_, (t_lon, t_lat) in zip(coc, target_decisions, strict=True):
        got_lon = c_.longitudinal.text if c_ is not None and c_.longitudinal is not None else None
        got_lat = c_.lateral.text if c_ is not None and c_.lateral is not None else None
        dec_lon.append(c_ is not None and got_lon == t_lon)
        dec_lat.append(c_ is not None and got_lat == t_lat)
    kinematic = fill_meta_actions(plans_ego_m[:, 0].float(), dt_s).longitudinal
    cons = [
        consistent(c_.longitudinal, LA(int(kin)))
        for c_, kin in zip(coc, kinematic, strict=True)
        if c_ is not None
    ]
    parsed = [m is not None and c_ is not None for m, c_ in zip(meta, coc, strict=True)]
    return OpenLoopMetrics(
        samples=n,
        flow_samples=s,
        ade_m=ade,
        min_ade_m=min_ade,
        cv_ade_m=cv_ade,
        meta_accuracy={
            "longitudinal": _mean(lon_ok),
            "lateral": _mean(lat_ok),
            "lane": _mean(lane_ok),
        },
        decision_accuracy={"longitudinal": _mean(dec_lon), "lateral": _mean(dec_lat)},
        parse_rate=_mean(parsed),
        consistency=_mean(cons),
        beats_cv_min_ade_3s=min_ade["3.0s"] < cv_ade["3.0s"],
    )


def evaluate_open_loop(
    model: VlaModel,
    data: TrainingSet,
    target_meta: Sequence[MetaActions],
    target_decisions: Sequence[tuple[str | None, str | None]],
    samples: int = 6,
    batch_size: int = 8,
    seed: int = 0,
) -> OpenLoopMetrics:
    """Decide on every sample of ``data`` and :func:`score` the decisions."""
    if len(data) == 0:
        raise ConfigError("no samples to evaluate")
    if not (isinstance(samples, int) and samples >= 1):
        raise ConfigError(f"flow samples per decision must be an int >= 1, got {samples!r}")
    plans: list[torch.Tensor] = []
    metas: list[MetaActions | None] = []
    cocs: list[ChainOfCausation | None] = []
    for i in range(0, len(data), batch_size):
        rows = torch.arange(i, min(len(data), i + batch_size))
        d = model.decide(data.inputs.index(rows), seed=seed, samples=samples)
        plans.append(d.waypoint_samples.cpu())
        metas.extend(d.meta)
        cocs.extend(d.coc)
    valid = data.controls_valid
    return score(
        torch.cat(plans), data.inputs.speed_mps, data.future_ego_m, valid, metas, cocs,
        target_meta, target_decisions, model.config.dt_s,
    )  # fmt: skip


def write_metrics(metrics: OpenLoopMetrics, run_dir: str | Path, extra: dict[str, object]) -> Path:
    """Write ``eval_metrics.json`` into the run directory; returns its path."""
    path = Path(run_dir) / METRICS_FILE
    path.write_text(json.dumps({**extra, **metrics.to_json()}, indent=2) + "\n")
    return path


__all__ = [
    "COMPATIBLE",
    "HORIZONS_S",
    "METRICS_FILE",
    "OpenLoopMetrics",
    "consistent",
    "evaluate_open_loop",
    "horizon_ade",
    "score",
    "write_metrics",
]
