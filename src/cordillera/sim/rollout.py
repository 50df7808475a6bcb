"""A rollout's record: per-step states and checks of the agents of interest, stacked over time.

The simulator appends one ``(state, checks)`` pair per step to a :class:`RolloutRecorder`
and calls :meth:`RolloutRecorder.finish` at the end; metrics read only the resulting
:class:`RolloutTrace` (they never see the simulator), so a trace can be saved, re-scored or
built by hand in tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cordillera.errors import CordilleraError
from cordillera.sim.batch import SceneBatch
from cordillera.sim.checks import StepChecks
from cordillera.sim.geometry import project_onto_polyline
from cordillera.sim.state import SimState


@dataclass(frozen=True, eq=False)
class RolloutTrace:
    """B rollouts × T recorded steps × M agents of interest (agent 0 is the ego by contract).

    Positions are in each scene's local frame (see :class:`SceneBatch`).

    Attributes:
        dt_s: seconds between recorded steps.
        scene_of: ``(B,)`` scene of each rollout in the batch it was simulated on.
        agent_index: ``(B, M)`` long object index (in N) of each agent of interest.
        ego_mask: ``(B, M)`` the agent is its scene's ego (route metrics apply to it only).
        step: ``(B, T)`` long log step of each recorded step.
        xy_m: ``(B, T, M, 2)`` positions; heading_rad, speed_mps ``(B, T, M)``.
        valid: ``(B, T, M)`` the agent exists at the step.
        checks: :class:`StepChecks` whose fields are ``(B, T, M)``.
        log_xy_m: ``(B, T, M, 2)`` the agents' logged positions at the same steps;
            log_valid ``(B, T, M)``.
        object_type: ``(B, N)`` long :class:`ObjectType` of every object (for collisions).
        route_length_m: ``(B,)`` length of the route (0 where the scene has no usable route).
        log_route_progress_m: ``(B, M)`` how far the logged ego advanced along the route
            between the first and last recorded steps at which its log is valid — the human
            reference for progress; 0 for other agents.
        log_progress_valid: ``(B, M)`` the reference exists (ego with a route and a log).
    """

    dt_s: float
    scene_of: torch.Tensor
    agent_index: torch.Tensor
    ego_mask: torch.Tensor
    step: torch.Tensor
    xy_m: torch.Tensor
    heading_rad: torch.Tensor
    speed_mps: torch.Tensor
    valid: torch.Tensor
    checks: StepChecks
    log_xy_m: torch.Tensor
    log_valid: torch.Tensor
    object_type: torch.Tensor
    route_length_m: torch.Tensor
    log_route_progress_m: torch.Tensor
    log_progress_valid: torch.Tensor

    def __post_init__(self) -> None:
        self.validate()

    @property
    def batch_size(self) -> int:
        return int(self.valid.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.valid.shape[1])

    @property
    def num_agents(self) -> int:
        return int(self.valid.shape[2])

    def validate(self) -> None:
        """Raise :class:`CordilleraError` on inconsistent shapes or a non-positive ``dt_s``."""
        if not self.dt_s > 0:
            raise CordilleraError(f"RolloutTrace.dt_s must be > 0, got {self.dt_s!r}")
        b, t, m = self.valid.shape
        want = {
            "scene_of": (b,),
            "agent_index": (b, m),
            "ego_mask": (b, m),
            "step": (b, t),
            "xy_m": (b, t, m, 2),
            "heading_rad": (b, t, m),
            "speed_mps": (b, t, m),
            "log_xy_m": (b, t, m, 2),
            "log_valid": (b, t, m),
            "route_length_m": (b,),
            "log_route_progress_m": (b, m),
            "log_progress_valid": (b, m),
        }
        for name, shape in want.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise CordilleraError(f"RolloutTrace.{name} has shape {got}, expected {shape}")
        if self.object_type.ndim != 2 or self.object_type.shape[0] != b:
            raise CordilleraError(
                f"RolloutTrace.object_type has shape {tuple(self.object_type.shape)}, "
                f"expected ({b}, N)"
            )
        self.checks.validate()
        if tuple(self.checks.collision.shape) != (b, t, m):
            raise CordilleraError(
                f"RolloutTrace.checks are {tuple(self.checks.collision.shape)}, "
                f"expected {(b, t, m)}"
            )


def log_route_progress(
    batch: SceneBatch, scene_of: torch.Tensor, log_xy_m: torch.Tensor, log_valid: torch.Tensor
) -> torch.Tensor:
    """``(B,)`` route progress of logged positions ``(B, T, 2)`` between their first and last
    valid steps (0 where fewer than one valid step)."""
    b, t = log_valid.shape
    steps = torch.arange(t, device=log_valid.device)
    first = torch.where(log_valid, steps, t).amin(1).clamp(max=t - 1)
    last = torch.where(log_valid, steps, -1).amax(1).clamp(min=0)
    ends = torch.stack([first, last], 1).unsqueeze(-1).expand(b, 2, 2)
    pts = torch.gather(log_xy_m, 1, ends)
    s, _, _ = project_onto_polyline(
        pts, batch.route_xy_m, batch.route_s_m, batch.route_valid, scene_of=scene_of
    )
    return torch.where(log_valid.any(1), s[:, 1] - s[:, 0], 0.0)


class RolloutRecorder:
    """Collects ``(state, checks)`` each step and stacks them into a :class:`RolloutTrace`.

    Args:
        scene_of: ``(B,)`` scene of each rollout.
        agent_index: ``(B, M)`` long objects of interest, the same every step.
    """

    def __init__(self, scene_of: torch.Tensor, agent_index: torch.Tensor) -> None:
        if agent_index.ndim != 2 or scene_of.shape != agent_index.shape[:1]:
            raise CordilleraError(
                f"agent_index {tuple(agent_index.shape)} must be (B, M) with scene_of "
                f"{tuple(scene_of.shape)} = (B,)"
            )
        self.scene_of = scene_of
        self.agent_index = agent_index
        self._steps: list[torch.Tensor] = []
        self._xy: list[torch.Tensor] = []
        self._heading: list[torch.Tensor] = []
        self._speed: list[torch.Tensor] = []
        self._valid: list[torch.Tensor] = []
        self._checks: list[StepChecks] = []

    def __len__(self) -> int:
        return len(self._checks)

    def append(self, state: SimState, checks: StepChecks) -> None:
        """Record one step (tensors are kept by reference, not copied)."""
        idx = self.agent_index
        b, m = idx.shape
        self._steps.append(state.step)
        self._xy.append(torch.gather(state.xy_m, 1, idx.unsqueeze(-1).expand(b, m, 2)))
        self._heading.append(torch.gather(state.heading_rad, 1, idx))
        self._speed.append(torch.gather(state.speed_mps, 1, idx))
        self._valid.append(torch.gather(state.valid, 1, idx))
        self._checks.append(checks)

    def finish(self, batch: SceneBatch) -> RolloutTrace:
        """The stacked trace; ``batch`` supplies logs, object types and the route."""
        if not self._checks:
            raise CordilleraError("RolloutRecorder.finish called before any step was appended")
        so, idx = self.scene_of, self.agent_index
        step = torch.stack(self._steps, 1)
        t_idx = step.clamp(0, batch.max_steps - 1)
        rows, objs = so.view(-1, 1, 1), idx.unsqueeze(1)
        in_log = (step < batch.num_steps.index_select(0, so).unsqueeze(1)).unsqueeze(-1)
        log_xy = batch.log_xy_m[rows, objs, t_idx.unsqueeze(-1)]
        log_valid = batch.log_valid[rows, objs, t_idx.unsqueeze(-1)] & in_log
        ego_mask = idx == batch.ego_index.index_select(0, so).unsqueeze(1)
        route_length = batch.route_length_m.index_select(0, so)
        has_route = route_length > 0
        # The human reference is the ego's; other agents have no route (0, invalid).
        col = ego_mask.long().argmax(1)
        b = idx.shape[0]
        pick = col.view(b, 1, 1, 1).expand(b, step.shape[1], 1, 2)
        ego_log_xy = torch.gather(log_xy, 2, pick).squeeze(2)
        ego_log_ok = torch.gather(log_valid, 2, pick[..., 0]).squeeze(2)
        ref = log_route_progress(batch, so, ego_log_xy, ego_log_ok)
        ref_ok = ego_mask & (has_route & ego_log_ok.any(1)).unsqueeze(1)
        return RolloutTrace(
            dt_s=batch.dt_s,
            scene_of=so,
            agent_index=idx,
            ego_mask=ego_mask,
            step=step,
            xy_m=torch.stack(self._xy, 1),
            heading_rad=torch.stack(self._heading, 1),
            speed_mps=torch.stack(self._speed, 1),
            valid=torch.stack(self._valid, 1),
            checks=StepChecks.stack(self._checks, dim=1),
            log_xy_m=log_xy,
            log_valid=log_valid,
            object_type=batch.object_type.index_select(0, so),
            route_length_m=route_length,
            log_route_progress_m=torch.where(ref_ok, ref.unsqueeze(1), 0.0),
            log_progress_valid=ref_ok,
        )
