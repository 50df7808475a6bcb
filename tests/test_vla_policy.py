"""``vla:RUN_DIR`` as a policy: a complete Plan per decision, plan holding between
decisions, the registry name, a typed error for a bad run, and a short closed loop."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from cordillera.errors import ConfigError
from cordillera.policy.base import Policy, PolicyInput
from cordillera.policy.registry import get_policy
from cordillera.vla.config import TINY
from cordillera.vla.model import VlaModel
from cordillera.vla.policy import VlaPolicy, hold_plan

CFG = TINY.with_(max_new_tokens=6)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("vla_run")
    VlaModel(CFG).eval().save_pretrained(d / "model")
    return d


def _inputs(policy: VlaPolicy, b: int = 2, t: float = 0.0) -> PolicyInput:
    g = torch.Generator().manual_seed(0)
    names = policy.model.config.cameras
    frames = torch.randint(0, 256, (b, len(names), 4, 144, 256, 3), generator=g, dtype=torch.uint8)
    h = policy.request.ego_history_steps
    hist = torch.stack([torch.linspace(-(h - 1), 0.0, h), torch.zeros(h)], -1).expand(b, h, 2)
    z = torch.zeros(b)
    return PolicyInput(
        time_s=z + t, ego_history_ego_m=hist, ego_speed_mps=z + 10.0, ego_accel_mps2=z,
        ego_yaw_rate_rps=z, route_ego_m=torch.zeros(b, 1, 2),
        cameras=frames.flip(1), camera_names=tuple(reversed(names)),
    )  # fmt: skip


def test_registry_name_builds_the_policy_and_plan_is_complete(run_dir: Path) -> None:
    policy = get_policy(f"vla:{run_dir}")
    assert isinstance(policy, VlaPolicy) and isinstance(policy, Policy)
    assert policy.name == f"vla:{run_dir}"
    cams = policy.request.cameras
    assert cams is not None and (cams.rig, cams.frames, cams.width_px) == ("ring7", 4, 256)
    plan = policy.act(_inputs(policy))
    assert plan.waypoints_ego_m.shape == (2, 64, 2)
    assert plan.longitudinal.shape == (2,) and plan.lateral.shape == (2,)
    assert len(plan.coc) == 2 and len(plan.groundings) == 2
    # Untrained text does not parse: meta-actions come from the plan's own trajectory.
    assert int(plan.longitudinal.min()) >= 0 and int(plan.lateral.min()) >= 0


def test_bad_run_dir_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such run directory"):
        get_policy(f"vla:{tmp_path / 'missing'}")
    with pytest.raises(ConfigError, match="not a trained VLA run"):
        get_policy(f"vla:{tmp_path}")
    with pytest.raises(ConfigError, match="replan_every_steps"):
        get_policy(f"vla:{tmp_path}", replan_every_steps=0)


def test_held_plan_is_moved_into_the_current_ego_frame(run_dir: Path) -> None:
    # Driven 1 m ahead and turned by +90°: a point 2 m ahead of the old frame is 1 m ahead
    # of the old origin, i.e. at (0, -1) in the new frame (old +x is the new -y).
    wps = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]])
    got = hold_plan(wps, torch.tensor([[-1.0, 0.0]]), torch.tensor([math.pi / 2]), 1)
    # Expected: old (x, y) -> rotate by -90° -> (y, -x), then shift by the old origin.
    want = torch.tensor([[[-1.0, -2.0], [-1.0, -3.0], [-1.0, -3.0]]])
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    policy = VlaPolicy(str(run_dir))
    first = policy.act(_inputs(policy, t=0.0))
    calls = 0
    decide = policy.decide

    def counting(inputs: PolicyInput):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return decide(inputs)

    policy.decide = counting  # type: ignore[method-assign]
    second = policy.act(_inputs(policy, t=0.1))
    assert calls == 0 and second.coc == first.coc
    assert torch.equal(second.longitudinal, first.longitudinal)


@pytest.mark.slow
def test_short_closed_loop_on_a_generated_scene(run_dir: Path) -> None:
    from cordillera.eval import EvalConfig, evaluate
    from cordillera.scene.generate import generate_scene

    scene = generate_scene("straight", 0)
    res = evaluate(get_policy(f"vla:{run_dir}"), [scene], "log", None,
                   EvalConfig(max_seconds=1.0, progress=False))  # fmt: skip
    assert len(res.table.scenes) == 1
    assert 0.0 <= float(res.table.aggregate["epdms"]) <= 1.0


def test_a_vla_run_is_servable(run_dir: Path) -> None:
    from cordillera.service.policies import check_servable, servable_policy

    factory = servable_policy(f"vla:{run_dir}")
    assert len(check_servable(factory(), "vla")) == 7  # the ring's cameras, nothing privileged
