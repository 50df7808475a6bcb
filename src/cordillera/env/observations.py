"""Vector observations in each agent's own frame, with a documented, named layout.

Layout of one agent's observation (float32, agent frame: x forward, y left, metres, m/s):

=================  ======  ==========================================================
block              width   per entry
=================  ======  ==========================================================
``ego``            7       speed, accel, yaw rate, length, width, progress along
                           route / 100 m, distance to route end / 100 m
``objects``        K × 11  rel x, rel y, cos/sin rel heading, rel vx, rel vy, length,
                           width, is vehicle, is pedestrian, is cyclist (0 = empty slot)
``object_valid``   K       1 where the slot holds an object
``lanes``          L × 4   rel x, rel y, cos/sin rel lane heading (nearest lane points)
``lane_valid``     L       1 where the slot holds a lane point
``route``          R × 2   rel x, rel y of route points every ``route_spacing_m`` ahead
``signals``        S × 6   rel x, rel y, is red, is yellow, is green, is unknown
``signal_valid``   S       1 where the slot holds a signal
=================  ======  ==========================================================

Nearest lane points come from the simulator's lane index (lane samples bucketed per scene),
so the cost per agent does not grow with the size of the map; lanes farther than the
index's search radius (10 m) are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cordillera.errors import ConfigError
from cordillera.scene.types import ObjectType, SignalState
from cordillera.sim.batch import SceneBatch
from cordillera.sim.dynamics import wrap_angle
from cordillera.sim.geometry import lane_candidates
from cordillera.sim.state import SimState
from cordillera.sim.traffic import uniform_path_lookup

EGO_FEATURES = 7
OBJECT_FEATURES = 11
LANE_FEATURES = 4
ROUTE_FEATURES = 2
SIGNAL_FEATURES = 6


@dataclass(frozen=True)
class ObservationConfig:
    """Sizes of the vector observation.

    Attributes:
        num_objects: K nearest other objects.
        num_lane_points: L nearest lane centerline points.
        num_route_points: R route points ahead.
        route_spacing_m: spacing of the route points.
        num_signals: S nearest signal stop points.
        max_range_m: objects, lanes and signals farther than this are left out.
    """

    num_objects: int = 16
    num_lane_points: int = 32
    num_route_points: int = 10
    route_spacing_m: float = 5.0
    num_signals: int = 4
    max_range_m: float = 60.0

    def __post_init__(self) -> None:
        for name in ("num_objects", "num_lane_points", "num_route_points", "num_signals"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"ObservationConfig.{name} must be an int >= 1, got {v!r}")
        if not self.route_spacing_m > 0 or not self.max_range_m > 0:
            raise ConfigError("ObservationConfig route_spacing_m and max_range_m must be > 0")

    def layout(self) -> dict[str, slice]:
        """Named slices of the flat observation vector."""
        widths = {
            "ego": EGO_FEATURES,
            "objects": self.num_objects * OBJECT_FEATURES,
            "object_valid": self.num_objects,
            "lanes": self.num_lane_points * LANE_FEATURES,
            "lane_valid": self.num_lane_points,
            "route": self.num_route_points * ROUTE_FEATURES,
            "signals": self.num_signals * SIGNAL_FEATURES,
            "signal_valid": self.num_signals,
        }
        out, start = {}, 0
        for name, w in widths.items():
            out[name] = slice(start, start + w)
            start += w
        return out

    @property
    def size(self) -> int:
        return max(s.stop for s in self.layout().values())


def _to_frame(
    xy: torch.Tensor, origin: torch.Tensor, heading: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(..., 2)`` points relative to poses ``origin (B, M, 2)``, ``heading (B, M)``.

    ``xy`` is ``(B, M, K, 2)``; returns rel x and rel y ``(B, M, K)``."""
    d = xy - origin.unsqueeze(2)
    c, s = torch.cos(heading).unsqueeze(-1), torch.sin(heading).unsqueeze(-1)
    return c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]


class Observer:
    """Builds vector observations for chosen agents of a simulator's rollouts."""

    def __init__(
        self, batch: SceneBatch, scene_of: torch.Tensor, config: ObservationConfig | None = None
    ) -> None:
        self.batch = batch
        self.scene_of = scene_of
        self.config = config or ObservationConfig()

    @property
    def size(self) -> int:
        return self.config.size

    def __call__(
        self,
        state: SimState,
        agent_index: torch.Tensor,
        route_progress_m: torch.Tensor,
        route_length_m: torch.Tensor,
    ) -> torch.Tensor:
        """``(B, M, D)`` observations of agents ``agent_index`` ``(B, M)``.

        An agent's route is its logged path (where the recorded driver went, extended
        straight ahead); ``route_progress_m`` ``(B, M)`` is its arc length along it now and
        ``route_length_m`` ``(B, M)`` the logged part's length.
        """
        cfg = self.config
        b, m = agent_index.shape
        g = self.scene_of
        ar = torch.arange(b, device=agent_index.device).unsqueeze(1)
        xy = state.xy_m[ar, agent_index]  # (B, M, 2)
        heading = state.heading_rad[ar, agent_index]
        u = g.view(b, 1)
        own_size = self.batch.size_lw_m[u, agent_index]
        route_len = route_length_m
        ego = torch.stack(
            [
                state.speed_mps[ar, agent_index],
                state.accel_mps2[ar, agent_index],
                state.yaw_rate_rps[ar, agent_index],
                own_size[..., 0],
                own_size[..., 1],
                route_progress_m / 100.0,
                (route_len - route_progress_m) / 100.0,
            ],
            -1,
        )

        # K nearest other valid objects.
        n = state.num_objects
        d = torch.linalg.vector_norm(state.xy_m.unsqueeze(1) - xy.unsqueeze(2), dim=-1)
        is_self = torch.zeros(b, m, n, dtype=torch.bool, device=d.device)
        is_self.scatter_(2, agent_index.unsqueeze(-1), True)
        ok = state.valid.unsqueeze(1) & ~is_self & (d < cfg.max_range_m)
        d = torch.where(ok, d, torch.inf)
        k = min(cfg.num_objects, n)
        nd, idx = torch.topk(d, k, dim=-1, largest=False)
        found = torch.isfinite(nd)
        bi = ar.unsqueeze(-1)
        oxy = state.xy_m[bi, idx]
        rx, ry = _to_frame(oxy, xy, heading)
        rh = wrap_angle(state.heading_rad[bi, idx] - heading.unsqueeze(-1))
        ov = state.speed_mps[bi, idx]
        oh = state.heading_rad[bi, idx]
        sv = state.speed_mps[ar, agent_index].unsqueeze(-1)
        vx = ov * torch.cos(oh - heading.unsqueeze(-1)) - sv
        vy = ov * torch.sin(oh - heading.unsqueeze(-1))
        osz = self.batch.size_lw_m[u.unsqueeze(-1), idx]
        ot = self.batch.object_type[u.unsqueeze(-1), idx]
        objects = torch.stack(
            [
                rx,
                ry,
                torch.cos(rh),
                torch.sin(rh),
                vx,
                vy,
                osz[..., 0],
                osz[..., 1],
                (ot == ObjectType.VEHICLE).float(),
                (ot == ObjectType.PEDESTRIAN).float(),
                (ot == ObjectType.CYCLIST).float(),
            ],
            -1,
        ) * found.unsqueeze(-1)
        objects = _pad(objects, cfg.num_objects)
        object_valid = _pad(found.float(), cfg.num_objects)

        # Nearest lane points (any direction) among the lane index's candidates.
        (cand,) = lane_candidates(
            xy,
            heading,
            self.batch.lane_xy_m,
            self.batch.lane_heading_rad,
            self.batch.lane_point_valid,
            [(-1.0, math.pi)],
            scene_of=g,
        )
        if cand.idx.shape[-1]:
            cd = torch.linalg.vector_norm(cand.xy - xy.unsqueeze(2), dim=-1)
            cd = torch.where(cand.ok, cd, torch.inf)
            kl = min(cfg.num_lane_points, cand.idx.shape[-1])
            ld, li = torch.topk(cd, kl, dim=-1, largest=False)
            lfound = torch.isfinite(ld)
            pxy = torch.gather(cand.xy, 2, li.unsqueeze(-1).expand(*li.shape, 2))
            lx, ly = _to_frame(pxy, xy, heading)
            lh = wrap_angle(torch.gather(cand.heading, 2, li) - heading.unsqueeze(-1))
            lanes = torch.stack([lx, ly, torch.cos(lh), torch.sin(lh)], -1) * lfound.unsqueeze(-1)
        else:
            lanes = torch.zeros(b, m, 0, LANE_FEATURES, device=xy.device)
            lfound = torch.zeros(b, m, 0, dtype=torch.bool, device=xy.device)
        lanes = _pad(lanes, cfg.num_lane_points)
        lane_valid = _pad(lfound.float(), cfg.num_lane_points)

        # Route points ahead.
        ahead = route_progress_m.unsqueeze(-1) + cfg.route_spacing_m * torch.arange(
            1, cfg.num_route_points + 1, device=xy.device
        )
        rxy, _ = uniform_path_lookup(self.batch, g, ahead, agent_index)
        qx, qy = _to_frame(rxy, xy, heading)
        route = torch.stack([qx, qy], -1)

        # Nearest signals with their current state.
        sig_xy = self.batch.signal_xy_m.index_select(0, g)
        s_count = sig_xy.shape[1]
        if s_count:
            t = state.step.clamp(max=self.batch.max_steps - 1)
            sig = torch.arange(s_count, device=xy.device).view(1, s_count)
            st = self.batch.signal_state[u, sig, t.view(b, 1)]  # (B, S)
            sd = torch.linalg.vector_norm(sig_xy.unsqueeze(1) - xy.unsqueeze(2), dim=-1)
            sok = self.batch.signal_valid.index_select(0, g).unsqueeze(1) & (sd < cfg.max_range_m)
            sd = torch.where(sok, sd, torch.inf)
            ks = min(cfg.num_signals, s_count)
            sdist, si = torch.topk(sd, ks, dim=-1, largest=False)
            sfound = torch.isfinite(sdist)
            sx, sy = _to_frame(sig_xy[bi, si], xy, heading)
            sst = st[bi, si]
            red = (sst == SignalState.RED) | (sst == SignalState.FLASHING_RED)
            yellow = (sst == SignalState.YELLOW) | (sst == SignalState.FLASHING_YELLOW)
            green = sst == SignalState.GREEN
            unknown = ~(red | yellow | green)
            signals = torch.stack(
                [sx, sy, red.float(), yellow.float(), green.float(), unknown.float()], -1
            ) * sfound.unsqueeze(-1)
        else:
            signals = torch.zeros(b, m, 0, SIGNAL_FEATURES, device=xy.device)
            sfound = torch.zeros(b, m, 0, dtype=torch.bool, device=xy.device)
        signals = _pad(signals, cfg.num_signals)
        signal_valid = _pad(sfound.float(), cfg.num_signals)

        return torch.cat(
            [
                ego,
                objects.flatten(2),
                object_valid,
                lanes.flatten(2),
                lane_valid,
                route.flatten(2),
                signals.flatten(2),
                signal_valid,
            ],
            -1,
        ).float()


def _pad(x: torch.Tensor, k: int) -> torch.Tensor:
    """Zero-pad axis 2 of ``x`` to length ``k``."""
    have = x.shape[2]
    if have >= k:
        return x
    pad = torch.zeros(*x.shape[:2], k - have, *x.shape[3:], dtype=x.dtype, device=x.device)
    return torch.cat([x, pad], 2)
