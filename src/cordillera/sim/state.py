"""The simulator's dynamic state: a typed record of batched tensors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from cordillera.errors import CordilleraError


@dataclass(frozen=True, eq=False)
class SimState:
    """State of B rollouts × N objects at one step, in each scene's local frame.

    Attributes:
        step: ``(B,)`` int64 log step index this state corresponds to.
        xy_m: ``(B, N, 2)`` box centres.
        heading_rad: ``(B, N)`` yaw, CCW from +x.
        speed_mps: ``(B, N)`` signed speed along the heading.
        accel_mps2: ``(B, N)`` longitudinal acceleration applied over the last step.
        yaw_rate_rps: ``(B, N)`` yaw rate over the last step.
        valid: ``(B, N)`` the object exists now.
        controlled: ``(B, N)`` driven by the caller's actions.
        reactive: ``(B, N)`` driven by IDM along its logged path.
        path_s_m: ``(B, N)`` arc length travelled along the logged path (reactive agents).
        stop_wait_s: ``(B, N)`` time a reactive agent has been halted at a stop sign.
        reactive_rows: ``(B, R)`` int64 the reactive objects, compacted (padding rows hold
            the ego's index); reactive_rows_ok ``(B, R)`` marks the real ones.
        neighbours: ``(B, R, C)`` int64 nearest objects ahead of each reactive object (leader
            candidates), refreshed every few steps.
        neighbour_age: steps since ``neighbours`` was computed.
    """

    step: torch.Tensor
    xy_m: torch.Tensor
    heading_rad: torch.Tensor
    speed_mps: torch.Tensor
    accel_mps2: torch.Tensor
    yaw_rate_rps: torch.Tensor
    valid: torch.Tensor
    controlled: torch.Tensor
    reactive: torch.Tensor
    path_s_m: torch.Tensor
    stop_wait_s: torch.Tensor
    reactive_rows: torch.Tensor
    reactive_rows_ok: torch.Tensor
    neighbours: torch.Tensor
    neighbour_age: int = 0

    @property
    def batch_size(self) -> int:
        return int(self.xy_m.shape[0])

    @property
    def num_objects(self) -> int:
        return int(self.xy_m.shape[1])

    def replace(self, **changes: Any) -> SimState:
        """A copy with some fields replaced."""
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        b, n = self.valid.shape
        for f in dataclasses.fields(self):
            t = getattr(self, f.name)
            if f.name in ("neighbours", "neighbour_age", "reactive_rows", "reactive_rows_ok"):
                continue
            want = (b,) if f.name == "step" else (b, n, 2) if f.name == "xy_m" else (b, n)
            if tuple(t.shape) != want:
                raise CordilleraError(
                    f"SimState.{f.name} has shape {tuple(t.shape)}, expected {want}"
                )
        if not bool(torch.isfinite(self.xy_m[self.valid]).all()):
            raise CordilleraError("SimState.xy_m has non-finite positions for valid objects")
