"""Complete a log whose ego has no (or too little) logged future, by closed-loop simulation.

CommonRoad planning problems log only the ego's initial state — the future is the planner's
to make — and interactive scenarios log every road user for one or two steps. There is no
behaviour in such a log to label. Completion makes one:

1. **Extend the logs** to the target length: every road user still present at the log's last
   step keeps its last speed along a path — the ego (at least at its lane's speed limit, else
   at :data:`EGO_CRUISE_MPS`) along its route, vehicles and cyclists
   along the lane graph (the straightest successor at each lane end), pedestrians and road
   users off the lane graph straight ahead; one that stands still stays where it is.
2. **Simulate** from the ego's last logged step: the ego is driven by the reactive IDM planner
   along its extended path, the other vehicles and cyclists by reactive IDM traffic along
   theirs (they brake for the ego, each other, red lights and stop signs); the rest replay
   the extended logs.
3. The simulated states replace the extended ones from that step on; the logged part is kept
   as it was. ``scene.extra["future_completion"]`` records where the simulation starts.

Samples labelled on a completed scene carry ``future_source = "simulated"``: their future is
the IDM planner's behaviour, not a human driver's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from cordillera.policy.base import ObservationRequest
from cordillera.policy.baselines import IdmPolicy
from cordillera.policy.inputs import InputBuilder
from cordillera.policy.plan import from_ego_frame
from cordillera.scene.derive import nearest_lane
from cordillera.scene.model import RoadMap, Scene
from cordillera.scene.types import ObjectType
from cordillera.sim.batch import SceneBatch
from cordillera.sim.config import SimConfig
from cordillera.sim.simulator import Simulator

F64 = npt.NDArray[np.float64]

STANDING_MPS = 0.5
"""Below this speed at the end of its log a road user is taken to stand (parked, queued)."""
EGO_CRUISE_MPS = 8.0
"""Least speed the ego's extended path is laid out at where the map gives no speed limit (a
planning problem may start at standstill); the ego's IDM planner accelerates smoothly towards
it."""
MAX_LANE_DISTANCE_M = 3.0
"""A road user farther than this from every heading-compatible centerline is off the lane
graph and continues straight."""
_MAX_LANES_CHAINED = 64
_LANE_FOLLOWERS = (int(ObjectType.VEHICLE), int(ObjectType.CYCLIST))


def needs_completion(scene: Scene, duration_s: float) -> bool:
    """Whether the ego's log spans less than ``duration_s`` (0 turns completion off)."""
    if duration_s <= 0:
        return False
    valid = scene.tracks.valid[scene.ego_index]
    if not valid.any():
        return False
    first = int(np.argmax(valid))
    last = len(valid) - 1 - int(np.argmax(valid[::-1]))
    return (last - first) * scene.dt_s < duration_s - 1e-9


def _straightest_successors(road_map: RoadMap) -> dict[int, int]:
    """Each lane's successor that continues its end direction best."""
    succ = road_map.lane_successors
    if len(succ) == 0:
        return {}
    lanes = road_map.lanes

    def direction(line: F64, at_end: bool) -> float:
        a, b = (line[-2], line[-1]) if at_end else (line[0], line[1])
        return float(np.arctan2(b[1] - a[1], b[0] - a[0]))

    best: dict[int, tuple[float, int]] = {}
    for frm, to in succ.tolist():
        if len(lanes[frm]) < 2 or len(lanes[to]) < 2:
            continue
        turn = abs(
            float(
                np.angle(np.exp(1j * (direction(lanes[to], False) - direction(lanes[frm], True))))
            )
        )
        if frm not in best or turn < best[frm][0]:
            best[frm] = (turn, to)
    return {k: v for k, (_, v) in best.items()}


def _from_projection(line: F64, xy: F64) -> F64:
    """The part of polyline ``line (P, 2)`` after the projection of ``xy``, starting there."""
    a, b = line[:-1], line[1:]
    ab = b - a
    t = np.clip(((xy - a) * ab).sum(-1) / np.maximum((ab**2).sum(-1), 1e-12), 0.0, 1.0)
    foot = a + t[:, None] * ab
    k = int(np.linalg.norm(foot - xy, axis=-1).argmin())
    return np.concatenate([foot[k : k + 1], line[k + 1 :]])


def _lane_path(
    road_map: RoadMap, successor: Mapping[int, int], lane: int, xy: F64, length_m: float
) -> F64:
    """``(P, 2)`` centerline path from the projection of ``xy`` on ``lane`` onwards, through
    the straightest successors, at least ``length_m`` long where the lane graph allows."""
    parts = [_from_projection(road_map.lanes[lane][:, :2], xy)]
    total = float(np.linalg.norm(np.diff(parts[0], axis=0), axis=-1).sum())
    seen = {lane}
    while total < length_m and len(seen) < _MAX_LANES_CHAINED:
        nxt = successor.get(lane)
        if nxt is None or nxt in seen:
            break
        lane = nxt
        seen.add(lane)
        line = road_map.lanes[lane][:, :2]
        parts.append(line)
        total += float(np.linalg.norm(np.diff(line, axis=0), axis=-1).sum())
    return np.concatenate(parts)


def _walk(path: F64, xy: F64, heading: float, distances_m: F64) -> tuple[F64, F64]:
    """Positions ``(K, 2)`` and headings ``(K,)`` at ``distances_m`` along ``xy`` + ``path``;
    past the path's end (or without one) the last direction continues straight."""
    pts = np.concatenate([xy[None], path]) if len(path) else xy[None]
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=-1)
    keep = np.concatenate([[True], seg > 1e-6])
    pts = pts[keep]
    if len(pts) >= 2:
        d = np.diff(pts, axis=0)
        seg_h = np.arctan2(d[:, 1], d[:, 0])
        end_h = float(seg_h[-1])
    else:
        seg_h = np.zeros(0)
        end_h = heading
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=-1))])
    beyond = np.maximum(distances_m - s[-1], 0.0)
    sd = np.minimum(distances_m, s[-1])
    out = np.stack([np.interp(sd, s, pts[:, 0]), np.interp(sd, s, pts[:, 1])], -1)
    out += beyond[:, None] * np.array([np.cos(end_h), np.sin(end_h)])
    if len(seg_h):
        k = np.clip(np.searchsorted(s, sd, side="right") - 1, 0, len(seg_h) - 1)
        h = np.where(beyond > 0, end_h, seg_h[k])
    else:
        h = np.full(len(distances_m), heading)
    return out, h


def _route_path(scene: Scene, xy: F64) -> F64:
    """The ego's route path ahead of ``xy`` (empty when the scene has none)."""
    path = scene.route.path_xyz_m[:, :2]
    if len(path) < 2:
        return np.zeros((0, 2))
    return _from_projection(path, xy)


def extend_logs(scene: Scene, num_steps: int) -> Scene:
    """``scene`` padded to ``num_steps``: the ego, and every road user present at the log's
    last step, carry on from their last logged state at its speed along their paths (see the
    module docstring); signals hold their last state."""
    tr, t0 = scene.tracks, scene.num_steps
    num_steps = max(num_steps, t0)
    extra_steps = num_steps - t0

    def pad(a: np.ndarray) -> np.ndarray:
        widths = [(0, 0)] * a.ndim
        widths[1] = (0, extra_steps)
        return np.pad(a, widths)

    xyz, heading, vel = pad(tr.xyz_m), pad(tr.heading_rad), pad(tr.velocity_mps)
    size, valid = pad(tr.size_lwh_m), pad(tr.valid)
    last = np.where(tr.valid, np.arange(t0), -1).max(1)
    cont = np.nonzero((last == t0 - 1) | (np.arange(tr.num_objects) == scene.ego_index))[0]
    cont = cont[(last[cont] >= 0) & (last[cont] < num_steps - 1)]
    at = last[cont]
    speed = np.linalg.norm(tr.velocity_mps[cont, at], axis=-1)
    lanes, lane_d = nearest_lane(scene.map, tr.xyz_m[cont, at, :2], tr.heading_rad[cont, at])
    successor = _straightest_successors(scene.map)
    for i, obj in enumerate(cont.tolist()):  # once per scene, not per simulation step
        t = int(at[i])
        ahead = np.arange(1, num_steps - t, dtype=np.float64) * scene.dt_s
        xy0 = tr.xyz_m[obj, t, :2]
        v = float(speed[i])
        is_ego = obj == scene.ego_index
        if is_ego:  # drives on at the lane's limit (or a town speed) if it was slower
            limit = scene.map.lane_speed_limit_mps[lanes[i]] if lanes[i] >= 0 else np.nan
            v = max(v, float(limit) if np.isfinite(limit) else EGO_CRUISE_MPS)
        path = np.zeros((0, 2))
        if v < STANDING_MPS:
            v = 0.0
        elif is_ego and len(route := _route_path(scene, xy0)) >= 2:
            path = route
        elif (
            int(tr.object_type[obj]) in _LANE_FOLLOWERS
            and lanes[i] >= 0
            and lane_d[i] <= MAX_LANE_DISTANCE_M
        ):
            path = _lane_path(scene.map, successor, int(lanes[i]), xy0, v * ahead[-1])
        xy, h = _walk(path, xy0, float(tr.heading_rad[obj, t]), v * ahead)
        xyz[obj, t + 1 :, :2] = xy
        xyz[obj, t + 1 :, 2] = tr.xyz_m[obj, t, 2]
        heading[obj, t + 1 :] = h
        vel[obj, t + 1 :] = v * np.stack([np.cos(h), np.sin(h)], -1)
        size[obj, t + 1 :] = tr.size_lwh_m[obj, t]
        valid[obj, t + 1 :] = True
    tracks = dataclasses.replace(
        tr, xyz_m=xyz, heading_rad=heading, velocity_mps=vel, size_lwh_m=size, valid=valid
    )
    state = scene.signals.state
    held = np.concatenate([state, np.repeat(state[:, -1:], extra_steps, 1)], 1)
    signals = dataclasses.replace(scene.signals, state=held.astype(np.int8))
    return dataclasses.replace(scene, tracks=tracks, signals=signals)


def complete_scene(scene: Scene, duration_s: float) -> Scene:
    """``scene`` lasting at least ``duration_s``, the ego's future after its last logged step
    simulated (see the module docstring). Returns ``scene`` unchanged when its ego's log is
    long enough."""
    if not needs_completion(scene, duration_s):
        return scene
    dt = scene.dt_s
    valid = scene.tracks.valid[scene.ego_index]
    first = int(np.argmax(valid))
    start = len(valid) - 1 - int(np.argmax(valid[::-1]))
    num_steps = max(scene.num_steps, first + round(duration_s / dt) + 1)
    ext = extend_logs(scene, num_steps)
    batch = SceneBatch.from_scenes([ext])
    sim = Simulator(batch, SimConfig(traffic="idm"))
    state = sim.reset(start_step=torch.tensor([start]))
    policy = IdmPolicy()
    policy.reset([ext])
    builder = InputBuilder(sim, [ext], ObservationRequest(privileged=True))
    builder.reset(state)
    ego = sim.ego_index
    rows = torch.arange(1)
    n = ext.tracks.num_objects
    states = []
    for _ in range(num_steps - 1 - start):
        waypoints = policy.plan_waypoints(builder(state))
        plan = from_ego_frame(waypoints, state.xy_m[rows, ego], state.heading_rad[rows, ego])
        state = sim.step_plan(state, plan.unsqueeze(1), ego.view(1, 1))
        states.append(state)
    # One copy out of the simulator after the loop: (N, S, ...) per field.
    xy = torch.stack([st.xy_m[0, :n] for st in states], 1).double().numpy()
    heading = torch.stack([st.heading_rad[0, :n] for st in states], 1).double().numpy()
    speed = torch.stack([st.speed_mps[0, :n] for st in states], 1).double().numpy()
    ok = torch.stack([st.valid[0, :n] for st in states], 1).numpy()
    tr = ext.tracks
    origin = batch.origin_world_xy_m[0].double().numpy()
    sl = slice(start + 1, num_steps)
    xyz = tr.xyz_m.copy()
    xyz[:, sl, :2] = np.where(ok[..., None], xy + origin, 0.0)
    xyz[:, sl, 2] = np.where(ok, tr.xyz_m[:, sl, 2], 0.0)
    head = tr.heading_rad.copy()
    head[:, sl] = np.where(ok, heading, 0.0)
    vel = tr.velocity_mps.copy()
    vel[:, sl] = np.where(
        ok[..., None], speed[..., None] * np.stack([np.cos(heading), np.sin(heading)], -1), 0.0
    )
    size = tr.size_lwh_m.copy()
    size[:, sl] = np.where(ok[..., None], tr.size_lwh_m[:, sl], 0.0)
    val = tr.valid.copy()
    val[:, sl] = ok
    tracks = dataclasses.replace(
        tr, xyz_m=xyz, heading_rad=head, velocity_mps=vel, size_lwh_m=size, valid=val
    )
    info: dict[str, Any] = {
        "from_step": start,
        "from_s": round(start * dt, 3),
        "num_steps": num_steps,
        "ego": "idm planner along its route",
        "traffic": "idm along the lane graph at the last logged speed",
    }
    return dataclasses.replace(
        ext, tracks=tracks, extra={**dict(scene.extra), "future_completion": info}
    )
