"""The VLA's text: a Chain-of-Causation sentence, then one meta-action line.

What the model writes after the prompt's ``<coc>`` tag (the training target)::

    Yield: pedestrian 12 is crossing 14 m ahead. The ego is slowing from 8.2 m/s.<meta>
    longitudinal=gentle_deceleration lateral=go_straight lane=lane_keep<eos>

* the CoC part is exactly :meth:`ChainOfCausation.text` (decisions, the strongest cause with
  its id, kind and behaviour, the ego's motion);
* after ``<meta>``, one ``family=label`` per kinematic family, in the order longitudinal,
  lateral, lane (``lane=none`` when the map gave no lane label);
* with the discrete-trajectory option, ``<traj_k>`` tokens follow the meta line (two per
  ``trajectory_token_stride`` controls, see :func:`trajectory_tokens_text`).

:func:`parse_output` reads the generated text back into typed values and returns ``None`` for
the part that does not parse, so a decision can report how often its text was parseable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from cordillera.label.record import LabelSample
from cordillera.policy.meta_actions import NO_LABEL, summarize_ids
from cordillera.policy.plan import CausalObject, ChainOfCausation
from cordillera.policy.vocabulary import (
    LaneAction,
    LateralAction,
    LateralDecision,
    LongitudinalAction,
    LongitudinalDecision,
    UnknownLabelError,
)
from cordillera.vla.tokenizer import EOS, META, trajectory_token

CAUSE_KINDS = (
    "traffic_light",
    "stop_sign",
    "vehicle",
    "pedestrian",
    "cyclist",
    "other",
    "road",
)


@dataclass(frozen=True)
class MetaActions:
    """One kinematic meta-action per family (a plan's meta-actions).

    Attributes:
        longitudinal, lateral: the labels; lane: the lane label, None where no map gave one.
    """

    longitudinal: LongitudinalAction
    lateral: LateralAction
    lane: LaneAction | None

    def line(self) -> str:
        """``longitudinal=... lateral=... lane=...`` (the text after ``<meta>``)."""
        lane = self.lane.text if self.lane is not None else "none"
        return f"longitudinal={self.longitudinal.text} lateral={self.lateral.text} lane={lane}"


def summarize_labels(
    longitudinal: Sequence[str], lateral: Sequence[str], lane: Sequence[str]
) -> MetaActions:
    """One label per family from per-step label texts, by the rules of
    :func:`cordillera.policy.meta_actions.summarize` (so the VLA is taught what the
    baselines' plans report): longitudinal ``stop`` when the future ends standing, else the
    label held longest; lateral the label held longest while moving; lane the highest-ranked
    manoeuvre present (turn > lane change > slight shift > keep; the most frequent within its
    rank), None when no step has one.
    """
    if not longitudinal or len(lateral) != len(longitudinal):
        raise UnknownLabelError(
            f"need one longitudinal and one lateral label per step, got "
            f"{len(longitudinal)} and {len(lateral)}"
        )
    lon = [int(LongitudinalAction.parse(t)) for t in longitudinal]
    lat = [int(LateralAction.parse(t)) for t in lateral]
    lanes = [int(LaneAction.parse(t)) if t else NO_LABEL for t in lane]
    has_lane = any(v != NO_LABEL for v in lanes)
    lane_ids = torch.tensor([lanes]) if has_lane else None
    summary = summarize_ids(
        torch.tensor([lon]),
        torch.tensor([lat]),
        torch.ones(1, len(lon), dtype=torch.bool),
        lane_ids,
        None if lane_ids is None else lane_ids >= 0,
    )
    return MetaActions(
        LongitudinalAction(int(summary.longitudinal[0])),
        LateralAction(int(summary.lateral[0])),
        LaneAction(int(summary.lane[0])) if has_lane else None,
    )


def sample_meta_actions(sample: LabelSample) -> MetaActions:
    """The meta-actions a sample teaches (its per-step labels summarised)."""
    k = max(1, min(sample.future_valid_steps, len(sample.meta_longitudinal)))
    return summarize_labels(
        sample.meta_longitudinal[:k], sample.meta_lateral[:k], sample.meta_lane[:k]
    )


def trajectory_tokens_text(controls_norm: torch.Tensor, bins: int, stride: int) -> str:
    """Discrete trajectory tokens of ``(K, 2)`` normalised controls: the mean of each run of
    ``stride`` controls, per channel, quantised to ``bins`` uniform bins over [-1, 1]
    (``<traj_a><traj_k>`` per run: acceleration bin, then curvature bin)."""
    k = controls_norm.shape[0] - controls_norm.shape[0] % stride
    means = controls_norm[:k].reshape(-1, stride, 2).mean(1).clamp(-1.0, 1.0)
    idx = ((means + 1.0) * 0.5 * (bins - 1)).round().long()
    return "".join(trajectory_token(int(i)) for i in idx.flatten())


def format_target(
    sample: LabelSample, controls_norm: torch.Tensor | None = None, bins: int = 0, stride: int = 8
) -> str:
    """The text the model is trained to write for ``sample`` (after the prompt's ``<coc>``);
    with ``bins > 0`` and ``controls_norm`` (``(K, 2)``), the trajectory tokens follow."""
    text = f"{sample.coc.text()}{META} {sample_meta_actions(sample).line()}"
    if bins > 0 and controls_norm is not None:
        text += trajectory_tokens_text(controls_norm, bins, stride)
    return text + EOS


_COC_RE = re.compile(r"^(?P<what>[^:]+):\s*(?P<rest>.*?)(?:\s*The ego is (?P<ego>.*)\.)?$")
_CAUSE_RE = re.compile(
    r"^(?P<kind>" + "|".join(k.replace("_", " ") for k in CAUSE_KINDS) + r")\s+(?P<id>\S+)"
    r"\s+is\s+(?P<behaviour>.*?)(?:\s*\(and (?P<more>\d+) more\))?\.$"
)
_META_RE = re.compile(r"longitudinal=(\S+)\s+lateral=(\S+)\s+lane=(\S+)")


def parse_coc(text: str) -> ChainOfCausation | None:
    """The CoC of a sentence written by :meth:`ChainOfCausation.text`, or None.

    The sentence names only the strongest cause: the others (``"(and 2 more)"``) and the
    causes' effects are not recoverable and come back absent / 0.
    """
    m = _COC_RE.match(" ".join(text.split()))
    if m is None:
        return None
    longitudinal: LongitudinalDecision | None = None
    lateral: LateralDecision | None = None
    what = m["what"].strip().lower()
    if what != "drive on":
        for part in what.split(" and "):
            try:
                longitudinal_d = LongitudinalDecision.parse(part)
            except UnknownLabelError:
                try:
                    lateral_d = LateralDecision.parse(part)
                except UnknownLabelError:
                    return None
                if lateral is not None:
                    return None
                lateral = lateral_d
                continue
            if longitudinal is not None:
                return None
            longitudinal = longitudinal_d
    rest = m["rest"].strip()
    causes: tuple[CausalObject, ...] = ()
    if rest != "nothing on the path requires otherwise.":
        c = _CAUSE_RE.match(rest)
        if c is None:
            return None
        causes = (CausalObject(c["id"], c["kind"].replace(" ", "_"), c["behaviour"]),)
    return ChainOfCausation(longitudinal, lateral, causes, ego_motion=(m["ego"] or "").strip())


def parse_meta(text: str) -> MetaActions | None:
    """The meta-actions of a ``longitudinal=... lateral=... lane=...`` line, or None."""
    m = _META_RE.search(text)
    if m is None:
        return None
    try:
        lane = None if m[3] == "none" else LaneAction.parse(m[3])
        return MetaActions(LongitudinalAction.parse(m[1]), LateralAction.parse(m[2]), lane)
    except UnknownLabelError:
        return None


def parse_output(text: str) -> tuple[ChainOfCausation | None, MetaActions | None]:
    """The CoC and the meta-actions of a generated text (decoded with its special tokens;
    a leading ``<coc>`` and anything from ``<eos>`` on are ignored); None for a part that
    does not parse."""
    body = text.split(EOS, 1)[0].replace("<coc>", " ")
    body = re.sub(r"<traj_\d+>", " ", body)
    if META not in body:
        return parse_coc(body.strip()), None
    coc_text, meta_text = body.split(META, 1)
    return parse_coc(coc_text.strip()), parse_meta(meta_text)


__all__ = [
    "CAUSE_KINDS",
    "MetaActions",
    "format_target",
    "parse_coc",
    "parse_meta",
    "parse_output",
    "sample_meta_actions",
    "summarize_labels",
    "trajectory_tokens_text",
]
