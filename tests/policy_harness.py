"""Drive a policy on a hand-built scene: the set-up shared by the policy tests."""

from __future__ import annotations

from cordillera.policy.base import Policy
from cordillera.policy.inputs import InputBuilder
from cordillera.scene.model import Scene
from cordillera.sim.config import SimConfig, TrafficMode
from cordillera.sim.simulator import Simulator
from cordillera.sim.state import SimState


def setup_policy(
    scene: Scene, policy: Policy, traffic: TrafficMode
) -> tuple[Simulator, InputBuilder, SimState]:
    """A one-rollout simulator on ``scene``, ``policy`` reset on it, and its input builder."""
    sim = Simulator([scene], SimConfig(traffic=traffic))
    state = sim.reset()
    policy.reset([scene])
    builder = InputBuilder(sim, [scene], policy.request)
    builder.reset(state)
    return sim, builder, state
