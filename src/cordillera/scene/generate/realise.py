"""From a :class:`~.agents.ScenePlan` to a validated :class:`~cordillera.scene.model.Scene`.

Simulates the plan, turns arc lengths into world-frame boxes, and guarantees a collision-free
log: if two boxes ever overlap (an unlucky draw of initial states the rule-based traffic could
not resolve), the unprotected agent of the pair is dropped and the plan simulated again. The ego
and a designed cause are protected; if they collide with each other the design is rejected
(:class:`DesignRejected`) and the caller draws another.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cordillera.scene.generate.agents import ScenePlan
from cordillera.scene.generate.paths import F64, PathBatch
from cordillera.scene.generate.traffic import SimResult, simulate
from cordillera.scene.model import Route, Scene, Tracks, TrafficSignals

MAX_CLEANUP_ROUNDS = 8
BOX_MARGIN_M = 0.05  # check slightly inflated boxes so that "touching" never reaches a log


class DesignRejected(Exception):
    """A protected pair (ego and designed cause) collided, or the design's checks failed."""


@dataclass(frozen=True, eq=False)
class Realised:
    """A simulated plan: the plan actually used (after dropping colliders), its log and scene."""

    plan: ScenePlan
    sim: SimResult
    tracks: Tracks


def tracks_from(plan: ScenePlan, sim: SimResult) -> Tracks:
    """World-frame tracks of a simulated plan (invalid steps hold zeros)."""
    ag = plan.agents
    n, t = sim.s_m.shape
    batch = PathBatch([a.path for a in ag])
    idx = np.broadcast_to(np.arange(n)[:, None], (n, t))
    xy, heading = batch.pose(idx, sim.s_m)
    lat_tabs, slope_tabs = [], []
    for a in ag:
        d = a.lateral_m if a.lateral_m is not None else np.zeros(len(a.path.s_m))
        lat_tabs.append(d)
        slope_tabs.append(np.gradient(d, a.path.s_m) if len(d) > 2 else np.zeros(len(d)))
    d = batch.values(idx, sim.s_m, batch.pack(lat_tabs))
    heading = heading + np.arctan(batch.values(idx, sim.s_m, batch.pack(slope_tabs)))
    path_h = batch.pose(idx, sim.s_m)[1]
    xy = xy + d[..., None] * np.stack([-np.sin(path_h), np.cos(path_h)], axis=-1)
    heading = np.angle(np.exp(1j * heading))  # wrap to (-π, π]
    size = np.array([a.size_lwh_m for a in ag], np.float64)
    valid = sim.valid
    xyz = np.concatenate([xy, np.broadcast_to(size[:, None, 2:3] / 2, (n, t, 1))], axis=-1)
    vel = sim.v_mps[..., None] * np.stack([np.cos(heading), np.sin(heading)], axis=-1)
    m = valid[..., None]
    return Tracks(
        object_id=np.array([a.object_id for a in ag], dtype=str),
        object_type=np.array([int(a.object_type) for a in ag], np.int8),
        xyz_m=np.where(m, xyz, 0.0),
        heading_rad=np.where(valid, heading, 0.0),
        velocity_mps=np.where(m, vel, 0.0),
        size_lwh_m=np.where(m, np.broadcast_to(size[:, None, :], (n, t, 3)), 0.0),
        valid=valid.copy(),
    )


def box_corners(xy: F64, heading: F64, lw: F64) -> F64:
    """``(..., 4, 2)`` corners of oriented boxes (centres ``(..., 2)``, sizes ``(..., 2)``)."""
    c, s = np.cos(heading)[..., None], np.sin(heading)[..., None]
    sx = np.array([1.0, 1.0, -1.0, -1.0]) * lw[..., :1] / 2
    sy = np.array([1.0, -1.0, -1.0, 1.0]) * lw[..., 1:2] / 2
    return np.stack([xy[..., :1] + c * sx - s * sy, xy[..., 1:2] + s * sx + c * sy], axis=-1)


def collisions(tracks: Tracks, margin_m: float = BOX_MARGIN_M) -> npt.NDArray[np.int64]:
    """``(K, 3)`` rows ``[i, j, step]`` (i < j) where valid oriented boxes overlap (SAT)."""
    xy = tracks.xyz_m[..., :2]
    lw = tracks.size_lwh_m[..., :2] + 2 * margin_m
    radius = np.linalg.norm(lw, axis=-1) / 2  # (N, T)
    n = tracks.num_objects
    iu, ju = np.triu_indices(n, 1)
    d = np.linalg.norm(xy[iu] - xy[ju], axis=-1)  # (P, T)
    close = tracks.valid[iu] & tracks.valid[ju] & (d < radius[iu] + radius[ju])
    p, t = np.nonzero(close)
    if len(p) == 0:
        return np.zeros((0, 3), np.int64)
    i, j = iu[p], ju[p]
    ca = box_corners(xy[i, t], tracks.heading_rad[i, t], lw[i, t])  # (K, 4, 2)
    cb = box_corners(xy[j, t], tracks.heading_rad[j, t], lw[j, t])
    ha, hb = tracks.heading_rad[i, t], tracks.heading_rad[j, t]
    axes = np.stack(
        [np.stack([np.cos(h), np.sin(h)], -1) for h in (ha, ha + np.pi / 2, hb, hb + np.pi / 2)],
        axis=1,
    )  # (K, 4, 2)
    pa = np.einsum("kcd,kad->kac", ca, axes)  # (K, axes, corners)
    pb = np.einsum("kcd,kad->kac", cb, axes)
    separated = (pa.max(-1) < pb.min(-1)) | (pb.max(-1) < pa.min(-1))
    hit = ~separated.any(axis=1)
    return np.stack([i[hit], j[hit], t[hit]], axis=1).astype(np.int64)


def realise(plan: ScenePlan) -> Realised:
    """Simulate ``plan``, dropping unprotected colliders until the log is collision-free."""
    for _ in range(MAX_CLEANUP_ROUNDS):
        sim = simulate(plan)
        tracks = tracks_from(plan, sim)
        hits = collisions(tracks)
        if len(hits) == 0:
            return Realised(plan, sim, tracks)
        drop: set[str] = set()
        for i, j in sorted({(int(a), int(b)) for a, b, _ in hits}):
            ai, aj = plan.agents[i], plan.agents[j]
            if ai.protected and aj.protected:
                raise DesignRejected(f"{ai.object_id} and {aj.object_id} collide")
            # Drop the later-listed (less central to the scene) unprotected agent.
            drop.add(aj.object_id if not aj.protected else ai.object_id)
        plan = plan.without(drop)
    raise DesignRejected("collisions remain after cleanup")


def build_scene(real: Realised, scene_id: str, extra: dict[str, object]) -> Scene:
    """The validated scene of a realised plan."""
    plan = real.plan
    lay = plan.layout
    ego = plan.agents[plan.ego]
    heads = lay.heads
    signals = TrafficSignals(
        lane=np.array([h.lane for h in heads], np.int32),
        stop_point_xyz_m=np.array(
            [[*lay.lane_paths[h.lane].xy_m[0], 0.0] for h in heads], np.float64
        ).reshape(-1, 3),
        state=np.ascontiguousarray(plan.signal_state.astype(np.int8)),
    )
    route = Route(lanes=np.array(ego.lanes, np.int32), path_xyz_m=ego.path.resample(1.0).xyz())
    return Scene(
        scene_id=scene_id,
        source="generated",
        license="Apache-2.0",
        dt_s=float(plan.dt_s),
        ego_index=int(plan.ego),
        tracks=real.tracks,
        map=lay.road_map,
        signals=signals,
        route=route,
        extra=extra,
    )
