"""Shared pieces of the metric definitions: time indexing, collision bookkeeping, smoothing."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import torch

from cordillera.errors import CordilleraError
from cordillera.scene.types import ObjectType
from cordillera.sim.rollout import RolloutTrace

LOW_PROGRESS_M = 5.0
"""Reference progress below which progress is not judged: NAVSIM PDMScorerConfig
``progress_distance_threshold`` and AlpaSim ``min_gt_distance_for_full_score_m``."""
AGENT_TYPES = (int(ObjectType.VEHICLE), int(ObjectType.PEDESTRIAN), int(ObjectType.CYCLIST))
"""nuPlan AGENT_TYPES (vehicle, pedestrian, bicycle): at-fault contact with one zeroes NC."""


def steps_like(x: torch.Tensor) -> torch.Tensor:
    """``(1, T, 1)`` step indices for a ``(B, T, M)`` tensor."""
    return torch.arange(x.shape[1], device=x.device).view(1, -1, 1)


def first_last(ok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, M)`` first and last step where ``ok (B, T, M)`` (clamped to [0, T-1])."""
    t = ok.shape[1]
    steps = steps_like(ok)
    first = torch.where(ok, steps, t).amin(1).clamp(max=t - 1)
    last = torch.where(ok, steps, -1).amax(1).clamp(min=0)
    return first, last


def at_step(x: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """``x (B, T, M)`` at per-agent steps ``(B, M)`` -> ``(B, M)``."""
    return torch.gather(x, 1, step.unsqueeze(1)).squeeze(1)


def counted_at_fault(trace: RolloutTrace) -> torch.Tensor:
    """``(B, T, M)`` at-fault contacts that count, with NAVSIM's once-per-object rule.

    NAVSIM classifies a contact with an object when it happens; once an object has been
    touched without fault (or was already touching at the start), later contacts with it are
    ignored. Here: an at-fault step counts unless the same object had an exempt contact at an
    earlier step, and contacts at the first recorded step are exempt (pre-existing).
    """
    c = trace.checks
    hit = c.collision & trace.valid
    fault = c.at_fault_collision & hit
    t = steps_like(hit)
    exempt = hit & (~fault | (t == 0))
    obj = c.collision_object.clamp(min=0).permute(0, 2, 1)  # (B, M, T)
    b, m, steps = obj.shape
    src = torch.where(exempt, t, steps).permute(0, 2, 1)
    first_exempt = torch.full(
        (b, m, trace.object_type.shape[1]), steps, device=obj.device, dtype=src.dtype
    )
    first_exempt.scatter_reduce_(2, obj, src, reduce="amin", include_self=True)
    exempt_from = torch.gather(first_exempt, 2, obj).permute(0, 2, 1)
    return fault & (t > 0) & (exempt_from > t)


def collision_object_is_agent(trace: RolloutTrace) -> torch.Tensor:
    """``(B, T, M)`` the recorded collision object is a vehicle, pedestrian or cyclist."""
    obj = trace.checks.collision_object.clamp(min=0)
    b, t, m = obj.shape
    otype = torch.gather(trace.object_type, 1, obj.reshape(b, t * m)).view(b, t, m)
    return torch.isin(otype, torch.tensor(AGENT_TYPES, device=otype.device))


def progress(trace: RolloutTrace) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Route progress ``(B, M)`` of the agents between their first and last live steps, the
    human reference ``(B, M)``, and where both are defined (ego, route, log)."""
    first, last = first_last(trace.valid)
    rp = trace.checks.route_progress_m
    prog = at_step(rp, last) - at_step(rp, first)
    ok = (
        trace.log_progress_valid
        & trace.ego_mask
        & trace.valid.any(1)
        & (trace.route_length_m > 0).unsqueeze(1)
    )
    return prog, trace.log_route_progress_m, ok


def fill_invalid(x: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """``x (B, T, M)`` with steps where not ``ok`` holding the previous (else next) valid
    value, so smoothing filters see no jumps to placeholder zeros."""
    t = x.shape[1]
    steps = steps_like(x).expand_as(x)
    last = torch.where(ok, steps, -1).cummax(1).values
    first = torch.where(ok, steps, t).amin(1, keepdim=True).clamp(max=t - 1)
    return torch.gather(x, 1, torch.where(last >= 0, last, first))


def unwrap(angle: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Phase-unwrapped angles along ``dim`` (steps of at most pi), as NAVSIM's _phase_unwrap."""
    d = torch.diff(angle, dim=dim)
    adj = torch.cumsum(torch.round(d / (2 * math.pi)), dim=dim)
    zero = torch.zeros_like(angle.narrow(dim, 0, 1))
    return angle - 2 * math.pi * torch.cat([zero, adj], dim=dim)


@lru_cache(maxsize=64)
def _savgol_np(n: int, window: int, poly: int, deriv: int, delta: float) -> npt.NDArray[np.float64]:
    w = min(window, n)
    if poly >= w:
        raise CordilleraError(f"Savitzky-Golay needs polyorder {poly} < window {w} (n = {n})")
    out = np.zeros((n, n))
    half = (w - 1) // 2
    for i in range(n):  # built once per (n, filter) and cached
        start = min(max(i - half, 0), n - w)
        x = np.arange(start, start + w, dtype=np.float64) - i
        pinv = np.linalg.pinv(np.vander(x, poly + 1, increasing=True))
        out[i, start : start + w] = math.factorial(deriv) * pinv[deriv] / delta**deriv
    return out


def savgol(x: torch.Tensor, window: int, poly: int, deriv: int, delta: float) -> torch.Tensor:
    """Savitzky-Golay smoothing / derivative of ``x (B, T, M)`` along T.

    Each output is the ``deriv``-th derivative at that sample of the degree-``poly`` least-
    squares fit to ``min(window, T)`` samples centred on it (shifted inward at the ends) —
    scipy's ``savgol_filter(mode="interp")``, which NAVSIM uses; for even windows we centre
    on the sample where scipy evaluates half a sample later.
    """
    mat = _savgol_np(x.shape[1], window, poly, deriv, float(delta))
    op = torch.as_tensor(mat, dtype=x.dtype, device=x.device)
    return torch.einsum("st,btm->bsm", op, x)
