"""The Plan / Chain-of-Causation contract."""

from __future__ import annotations

import math

import pytest
import torch

from cordillera.policy.plan import (
    CausalObject,
    ChainOfCausation,
    Plan,
    PlanError,
    to_ego_frame,
)
from cordillera.policy.vocabulary import LateralDecision, LongitudinalDecision


@pytest.mark.parametrize("lon", list(LongitudinalDecision))
@pytest.mark.parametrize("lat", [*LateralDecision, None])
def test_coc_round_trips_and_names_every_decision(
    lon: LongitudinalDecision, lat: LateralDecision | None
) -> None:
    coc = ChainOfCausation(
        lon,
        lat,
        (CausalObject("ped7", "pedestrian", "crossing 12 m ahead", 4.2),),
        "slowing from 9.1 m/s",
        (-1.5, 0.0),
    )
    assert ChainOfCausation.from_json(coc.to_json()) == coc
    text = coc.text()
    assert lon.text.replace("_", " ") in text.lower()
    if lat is not None:
        assert lat.text.replace("_", " ") in text.lower()
    assert "pedestrian ped7 is crossing 12 m ahead" in text
    assert 1 <= text.count(". ") + 1 <= 2


def test_plan_validation_and_frames() -> None:
    w = torch.stack([torch.linspace(1, 64, 64), torch.zeros(64)], -1).unsqueeze(0)
    zero = torch.zeros(1, dtype=torch.long)
    plan = Plan(w, zero, zero, torch.full((1,), -1))
    assert plan.coc == (None,) and plan.groundings == ((),)
    ego_xy, ego_h = torch.tensor([[10.0, 5.0]]), torch.tensor([torch.pi / 2])
    local = plan.to_local(ego_xy, ego_h)
    assert torch.allclose(local[0, 0], torch.tensor([10.0, 6.0]), atol=1e-5)
    assert torch.allclose(to_ego_frame(local, ego_xy, ego_h), w, atol=1e-4)
    with pytest.raises(PlanError, match="non-finite"):
        Plan(w * float("nan"), zero, zero, zero)
    with pytest.raises(PlanError, match="lateral"):
        Plan(w, zero, torch.tensor([9]), zero)


def test_plan_poses_keep_the_vehicle_axis_when_reversing_and_turning() -> None:
    from cordillera.policy.meta_actions import MetaActionConfig
    from cordillera.policy.meta_fill import plan_poses

    cfg = MetaActionConfig()
    # Forward 2 m, then back along the same line: the axis stays at 0 (reversing, not a U-turn).
    x = torch.cat([torch.linspace(0.1, 2.0, 20), torch.linspace(1.9, 0.0, 20)])
    fwd_back = torch.stack([x, torch.zeros_like(x)], -1).unsqueeze(0)
    _, heading = plan_poses(fwd_back, 0.1, cfg)
    assert torch.allclose(heading, torch.zeros_like(heading), atol=1e-5)
    # A quarter circle to the left: the heading rises smoothly from 0 towards pi/2.
    a = torch.linspace(0.05, math.pi / 2, 40)
    arc = torch.stack([10 * torch.sin(a), 10 * (1 - torch.cos(a))], -1).unsqueeze(0)
    _, heading = plan_poses(arc, 0.1, cfg)
    assert bool((torch.diff(heading[0]) >= -1e-6).all())
    assert heading[0, -1].item() == pytest.approx(math.pi / 2, abs=0.1)
