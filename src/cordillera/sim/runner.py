"""Closed-loop rollouts: drive a simulator with a policy function and record a trace."""

from __future__ import annotations

from collections.abc import Callable

import torch

from cordillera.sim.checks import StepChecks
from cordillera.sim.rollout import RolloutRecorder, RolloutTrace
from cordillera.sim.simulator import Simulator
from cordillera.sim.state import SimState

PlanFn = Callable[[SimState, torch.Tensor], torch.Tensor]
"""Maps a state and the controlled agents ``(B, M)`` to their plans ``(B, M, K, 2)`` in the
local frame (e.g. ``lambda state, agents: sim.log_plan(state, agents=agents)``)."""


def agents_of_interest(sim: Simulator, state: SimState) -> torch.Tensor:
    """``(B, M)`` the ego first, then every other controlled object (self-play), padded with
    the ego's index where a rollout controls fewer objects."""
    b, n = state.controlled.shape
    ego = sim.ego_index
    others = state.controlled.clone()
    others[torch.arange(b, device=ego.device), ego] = False
    m = 1 + int(others.sum(1).max()) if bool(others.any()) else 1
    # Stable order: controlled objects by index, the ego first.
    rank = torch.where(others, torch.arange(n, device=ego.device).expand(b, n), n)
    order = torch.sort(rank, dim=1).values[:, : m - 1]
    order = torch.where(order < n, order, ego.view(b, 1))
    return torch.cat([ego.view(b, 1), order], 1)


def run_rollout(
    sim: Simulator,
    plan_fn: PlanFn,
    num_steps: int | None = None,
    state: SimState | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[RolloutTrace, SimState]:
    """Run ``num_steps`` closed-loop steps (default: to the end of the longest scene).

    Every step the policy sees the current state, returns plans, the simulator tracks them and
    the checks of the agents of interest are recorded. Returns the trace and the final state.
    """
    state = sim.reset() if state is None else state
    if num_steps is None:
        num_steps = int(sim.batch.num_steps.max()) - 1 - sim.config.start_step
    agents = agents_of_interest(sim, state)
    recorder = RolloutRecorder(sim.scene_of, agents)
    checks: StepChecks | None = None
    for i in range(num_steps):
        nxt = sim.step_plan(state, plan_fn(state, agents), agents)
        checks = sim.checks(agents, state, nxt, checks)
        recorder.append(nxt, checks)
        state = nxt
        if progress is not None:
            progress(i)
    return recorder.finish(sim.batch), state
