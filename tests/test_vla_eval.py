"""Open-loop VLA metrics on hand-built decisions: ADE / minADE with hand-derived values, the
constant-velocity baseline, accuracies, parse rate and the consistency table."""

from __future__ import annotations

import pytest
import torch

from cordillera.policy.plan import ChainOfCausation
from cordillera.policy.vocabulary import LaneAction, LateralAction
from cordillera.policy.vocabulary import LongitudinalAction as LA
from cordillera.policy.vocabulary import LongitudinalDecision as LD
from cordillera.vla.evaluate import COMPATIBLE, consistent, horizon_ade, score
from cordillera.vla.text import MetaActions

K, DT = 64, 0.1


def _straight(speed: float, n: int = 1) -> torch.Tensor:
    t = torch.arange(1, K + 1, dtype=torch.float32) * DT
    return torch.stack([speed * t, torch.zeros(K)], -1).expand(n, K, 2).clone()


def test_horizon_ade_hand_values_and_masking() -> None:
    future = _straight(10.0)  # (1, K, 2)
    # Plan 0 exact; plan 1 offset 1 m sideways everywhere; plan 2 offset 3 m.
    plans = torch.stack([future[0], future[0] + torch.tensor([0.0, 1.0]),
                         future[0] + torch.tensor([0.0, 3.0])])[None]  # fmt: skip
    valid = torch.ones(1, K, dtype=torch.bool)
    ade, ok = horizon_ade(plans, future, valid, 10)
    torch.testing.assert_close(ade, torch.tensor([[0.0, 1.0, 3.0]]))
    assert ok.tolist() == [True]
    # A linearly growing error e_k = k (k = 1..10) averages to 5.5 over 1 s; only the first
    # 4 steps logged: (1 + 2 + 3 + 4) / 4 = 2.5.
    grow = future.clone()
    grow[0, :, 1] = torch.arange(1, K + 1, dtype=torch.float32)
    ade, _ = horizon_ade(grow[:, None], future, valid, 10)
    assert float(ade) == pytest.approx(5.5)
    part = torch.arange(K)[None] < 4
    ade, ok = horizon_ade(grow[:, None], future, part, 10)
    assert float(ade) == pytest.approx(2.5) and ok.tolist() == [True]
    _, ok = horizon_ade(grow[:, None], future, torch.zeros(1, K, dtype=torch.bool), 10)
    assert ok.tolist() == [False]


def test_score_against_constant_velocity_and_labels() -> None:
    # The ego drives at 10 m/s but the log brakes to a stop: x = 10 t - 2.5 t² (a = -5).
    t = torch.arange(1, K + 1, dtype=torch.float32) * DT
    x = torch.where(t < 2.0, 10 * t - 2.5 * t**2, torch.tensor(10.0))
    future = torch.stack([x, torch.zeros(K)], -1)[None]
    plans = torch.stack([future[0] + torch.tensor([0.0, 0.5]), _straight(10.0)[0]])[None]
    valid = torch.ones(1, K, dtype=torch.bool)
    target = MetaActions(LA.STRONG_DECELERATION, LateralAction.GO_STRAIGHT, LaneAction.LANE_KEEP)
    said = MetaActions(LA.STRONG_DECELERATION, LateralAction.GO_STRAIGHT, None)
    coc = ChainOfCausation(LD.STOP, None)
    m = score(plans, torch.tensor([10.0]), future, valid, [said], [coc], [target],
              [("stop", None)], DT)  # fmt: skip
    # The first draw is 0.5 m off everywhere; the second is the CV plan.
    assert m.ade_m["3.0s"] == pytest.approx(0.5)
    assert m.min_ade_m["3.0s"] == pytest.approx(0.5)
    # CV error at 3 s: mean over k = 1..30 of 2.5 t² (t < 2) and 10 t - 10 (t >= 2).
    tt = t[:30]
    cv = torch.where(tt < 2.0, 2.5 * tt**2, 10 * tt - 10).mean()
    assert m.cv_ade_m["3.0s"] == pytest.approx(float(cv), rel=1e-5)
    assert m.beats_cv_min_ade_3s
    assert m.meta_accuracy == {"longitudinal": 1.0, "lateral": 1.0, "lane": 0.0}
    assert m.decision_accuracy == {"longitudinal": 1.0, "lateral": 1.0}
    assert m.parse_rate == 1.0
    assert m.consistency == 1.0  # a stop stated, a plan braking to a standstill


def test_unparsed_text_counts_against_parse_rate_and_accuracy() -> None:
    future = _straight(5.0, 2)
    plans = future[:, None]
    valid = torch.ones(2, K, dtype=torch.bool)
    target = MetaActions(LA.MAINTAIN_SPEED, LateralAction.GO_STRAIGHT, None)
    m = score(plans, torch.tensor([5.0, 5.0]), future, valid,
              [target, None], [ChainOfCausation(None, None), None], [target, target],
              [(None, None), (None, None)], DT)  # fmt: skip
    assert m.parse_rate == 0.5
    assert m.meta_accuracy["longitudinal"] == 0.5
    assert m.decision_accuracy["longitudinal"] == 0.5
    assert m.consistency == 1.0  # only parsed CoCs count: "drive on" at constant speed
    assert m.min_ade_m["0.5s"] == pytest.approx(0.0, abs=1e-6)
    assert m.cv_ade_m["5.0s"] == pytest.approx(0.0, abs=1e-5)


def test_consistency_table() -> None:
    assert consistent(LD.STOP, LA.STOP) and consistent(LD.STOP, LA.GENTLE_DECELERATION)
    assert not consistent(LD.STOP, LA.GENTLE_ACCELERATION)
    assert consistent(LD.YIELD, LA.MAINTAIN_SPEED) and not consistent(
        LD.YIELD, LA.STRONG_ACCELERATION
    )
    assert consistent(LD.RESUME_SPEED, LA.GENTLE_ACCELERATION)
    assert not consistent(LD.RESUME_SPEED, LA.STOP)
    assert not consistent(LD.KEEP_DISTANCE, LA.STRONG_ACCELERATION)
    assert not consistent(None, LA.STOP) and consistent(None, LA.MAINTAIN_SPEED)
    assert consistent(LD.GAP_SEARCH, LA.STOP)  # not in the table: anything goes
    assert all(allowed for allowed in COMPATIBLE.values())
