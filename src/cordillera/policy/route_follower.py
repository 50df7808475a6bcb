"""``route-follower``: a policy that drives from what the egodriver contract carries.

A served policy sees what a runtime sends -- cameras, the ego's poses and the route -- and never
the simulator's state, so the privileged baselines (``idm``, ``pdm``, ``log-replay``) cannot be
served. This one follows the route at a cruise speed, slowing for its curvature and for its end,
from the route and the ego's speed alone; it runs unchanged in Cordillera's own simulator. It is
the reference driver of ``cordillera serve``, as ``route_follower`` is carla-driver-interface's.

Batched over B rollouts with torch; no loop over waypoints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from cordillera.errors import require_numbers
from cordillera.policy.base import ObservationRequest, PolicyInput
from cordillera.policy.meta_fill import make_plan
from cordillera.policy.plan import PLAN_HORIZON, CausalObject, ChainOfCausation, Plan
from cordillera.policy.vocabulary import LateralDecision, LongitudinalDecision
from cordillera.scene.model import Scene


@dataclass(frozen=True)
class RouteFollowerConfig:
    """Configuration of ``route-follower``.

    Attributes:
        cruise_speed_mps: speed on a straight, open route.
        max_accel_mps2, max_decel_mps2: speed changes within the plan.
        max_lateral_accel_mps2: curve speed limit, ``v = sqrt(a_lat / curvature)``.
        dt_s: waypoint spacing (10 Hz).
    """

    cruise_speed_mps: float = 8.0
    max_accel_mps2: float = 2.0
    max_decel_mps2: float = 4.0
    max_lateral_accel_mps2: float = 2.5
    dt_s: float = 0.1

    def __post_init__(self) -> None:
        names = ("cruise_speed_mps", "max_accel_mps2", "max_decel_mps2", "max_lateral_accel_mps2")
        require_numbers("RouteFollowerConfig", self, (*names, "dt_s"))


def sample_polyline(path: torch.Tensor, s_m: torch.Tensor) -> torch.Tensor:
    """``(B, K, 2)`` points at arc lengths ``s_m (B, K)`` along polylines ``path (B, P, 2)``;
    continued straight along the last segment past the end."""
    seg = torch.diff(path, dim=1)  # (B, P-1, 2)
    length = torch.linalg.vector_norm(seg, dim=-1).clamp_min(1e-6)
    arc = torch.cat([torch.zeros_like(length[:, :1]), torch.cumsum(length, 1)], 1)  # (B, P)
    i = (torch.searchsorted(arc.contiguous(), s_m.contiguous(), right=True) - 1).clamp(
        0, seg.shape[1] - 1
    )
    start = torch.gather(path, 1, i.unsqueeze(-1).expand(*i.shape, 2))
    direction = torch.gather(seg / length.unsqueeze(-1), 1, i.unsqueeze(-1).expand(*i.shape, 2))
    along = s_m - torch.gather(arc, 1, i)
    return start + along.unsqueeze(-1) * direction


def max_curvature(path: torch.Tensor) -> torch.Tensor:
    """``(B,)`` the largest turning per metre between consecutive segments of ``(B, P, 2)``."""
    seg = torch.diff(path, dim=1)
    if seg.shape[1] < 2:
        return torch.zeros(path.shape[0], dtype=path.dtype, device=path.device)
    heading = torch.atan2(seg[..., 1], seg[..., 0])
    turn = torch.remainder(torch.diff(heading, dim=1) + math.pi, 2 * math.pi) - math.pi
    length = torch.linalg.vector_norm(seg, dim=-1)
    span = (0.5 * (length[:, 1:] + length[:, :-1])).clamp_min(0.5)
    return (turn.abs() / span).amax(1)


class RouteFollowerPolicy:
    """``route-follower``: the route at cruise speed, eased for curves and the route's end."""

    name = "route-follower"

    def __init__(self, config: RouteFollowerConfig | None = None) -> None:
        self.config = config or RouteFollowerConfig()
        self.request = ObservationRequest(ego_history_steps=1)

    def reset(self, scenes: Sequence[Scene]) -> None:
        """Stateless between decisions: nothing to forget."""

    def act(self, inputs: PolicyInput) -> Plan:
        cfg = self.config
        route = inputs.route_ego_m.float()
        b = route.shape[0]
        # From the ego to the route: an ego beside its route converges onto it.
        path = torch.cat([torch.zeros_like(route[:, :1]), route], 1)
        length = torch.linalg.vector_norm(torch.diff(path, dim=1), dim=-1).sum(1)
        v0 = inputs.ego_speed_mps.float().clamp_min(0.0)

        curve = max_curvature(path[:, 1:])
        v_curve = torch.sqrt(cfg.max_lateral_accel_mps2 / curve.clamp_min(1e-6))
        v_end = torch.sqrt(2.0 * cfg.max_decel_mps2 * length)
        cruise = torch.full_like(v0, cfg.cruise_speed_mps)
        target = torch.minimum(torch.minimum(cruise, v_curve), v_end)

        t = torch.arange(1, PLAN_HORIZON + 1, dtype=v0.dtype, device=v0.device) * cfg.dt_s
        up = torch.minimum(target[:, None], v0[:, None] + cfg.max_accel_mps2 * t)
        down = torch.maximum(target[:, None], v0[:, None] - cfg.max_decel_mps2 * t)
        v = torch.where((target >= v0)[:, None], up, down)
        prev = torch.cat([v0[:, None], v[:, :-1]], 1)
        s = torch.cumsum(0.5 * (prev + v) * cfg.dt_s, 1)
        waypoints = sample_polyline(path, s)

        coc = self._coc(v0, target, v_curve, v_end, b)
        return make_plan(waypoints, cfg.dt_s, None, coc)

    def _coc(
        self,
        v0: torch.Tensor,
        target: torch.Tensor,
        v_curve: torch.Tensor,
        v_end: torch.Tensor,
        b: int,
    ) -> list[ChainOfCausation]:
        """One trace per rollout: the speed decision and its cause on the route."""
        cruise = self.config.cruise_speed_mps
        rows = zip(
            v0.tolist(), target.tolist(), v_curve.tolist(), v_end.tolist(), strict=True
        )  # B rows, not waypoints
        out = []
        for speed, tgt, curve, end in rows:
            causes: tuple[CausalObject, ...] = ()
            if tgt < cruise - 0.05:
                lon: LongitudinalDecision | None = LongitudinalDecision.ADAPT_SPEED
                what = "curving ahead" if curve <= end else "ending ahead"
                causes = (CausalObject("route", "road", what, effect=round(cruise - tgt, 2)),)
            elif speed > tgt + 0.5:  # above cruise: ease down to it
                lon = LongitudinalDecision.ADAPT_SPEED
            elif speed < tgt - 0.5:
                lon = LongitudinalDecision.RESUME_SPEED
            else:
                lon = None
            out.append(
                ChainOfCausation(
                    longitudinal=lon,
                    lateral=LateralDecision.KEEP_LANE,
                    causes=causes,
                    ego_motion=f"driving at {speed:.1f} m/s towards {tgt:.1f} m/s",
                )
            )
        assert len(out) == b
        return out


__all__ = ["RouteFollowerConfig", "RouteFollowerPolicy", "max_curvature", "sample_polyline"]
