"""Candidate causes of the ego's behaviour at a keyframe, and how each can be taken away.

Candidates are the objects near the ego over the decision window (nearest first, objects on
the ego's future path before the others), the traffic lights that control the ego's path ahead
while not green, and the stop signs on it. Each carries the intervention that removes it in a
counterfactual re-simulation and the geometry the decision rules read (where it is relative
to the ego, how it moves).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cordillera.label.config import LabelerConfig
from cordillera.scene.model import Scene
from cordillera.scene.types import ObjectType, SignalState

F64 = npt.NDArray[np.float64]
ON_PATH_M = 3.5
"""An object passing within this lateral distance of the ego's future path is on its path."""
PATH_LOOKAHEAD_M = 80.0
"""Lights, stop signs and on-path objects up to this far along the path are candidates."""
STATIONARY_MPS = 0.5


@dataclass(frozen=True)
class Candidate:
    """One suspected cause.

    Attributes:
        cause_id: object id, ``"light:<lane>"`` or ``"stop_sign:<i>"``.
        kind: ``vehicle``, ``pedestrian``, ``cyclist``, ``other``, ``traffic_light``,
            ``stop_sign``.
        intervention: ``"removed"`` (object or stop sign) or ``"set green"`` (light).
        index: the object's row in the tracks, the light's signal rows' lane, or the stop
            sign's index.
        signal_rows: the signal heads of a light candidate (all set green together).
        ahead_m, lateral_m: position at the keyframe in the ego frame (x forward, y left).
        distance_m: distance from the ego at the keyframe.
        relative_heading_rad: its heading minus the ego's, wrapped to (-pi, pi].
        speed_mps: its speed at the keyframe.
        stationary: it does not move over the decision window.
        min_speed_mps: its lowest speed over the decision window.
        on_path: it comes within :data:`ON_PATH_M` of the ego's future path.
    """

    cause_id: str
    kind: str
    intervention: str
    index: int
    signal_rows: tuple[int, ...] = ()
    ahead_m: float = 0.0
    lateral_m: float = 0.0
    distance_m: float = 0.0
    relative_heading_rad: float = 0.0
    speed_mps: float = 0.0
    stationary: bool = False
    min_speed_mps: float = 0.0
    on_path: bool = False

    @property
    def crossing(self) -> bool:
        """Moving across or against the ego's direction (a crossing / oncoming road user)."""
        return abs(self.relative_heading_rad) > np.pi / 4 and not self.stationary


def object_kind(object_type: int) -> str:
    try:
        return ObjectType(int(object_type)).name.lower()
    except ValueError:
        return "other"


def _wrap(a: F64) -> F64:
    return np.asarray((a + np.pi) % (2 * np.pi) - np.pi, np.float64)


def _path_distance(points: F64, path: F64) -> tuple[F64, F64]:
    """Distance of ``points (..., 2)`` to the polyline ``path (P, 2)`` and the arc length of
    the foot point (vectorised over points and segments)."""
    a, b = path[:-1], path[1:]
    ab = b - a
    len2 = np.maximum((ab**2).sum(-1), 1e-12)
    rel = points[..., None, :] - a  # (..., S, 2)
    t = np.clip((rel * ab).sum(-1) / len2, 0.0, 1.0)
    d = np.linalg.norm(rel - t[..., None] * ab, axis=-1)
    k = d.argmin(-1)
    seg_s = np.concatenate([[0.0], np.cumsum(np.sqrt(len2))])
    s = seg_s[k] + np.take_along_axis(t, k[..., None], -1)[..., 0] * np.sqrt(len2[k])
    return d.min(-1), s


def find_candidates(scene: Scene, step: int, config: LabelerConfig) -> list[Candidate]:
    """The candidate causes at log ``step``, strongest suspects first (at most
    ``config.max_candidates``)."""
    tr, e, dt = scene.tracks, scene.ego_index, scene.dt_s
    t_end = min(step + round(config.decision_window_s / dt), scene.num_steps - 1)
    ego_xy = tr.xyz_m[e, :, :2].astype(np.float64)
    ego_ok = tr.valid[e]
    fut = ego_xy[step : scene.num_steps][ego_ok[step:]]
    h0 = float(tr.heading_rad[e, step])
    # The ego's path ahead: its logged future, extended straight so a stopped ego still has one.
    if len(fut) == 0:
        fut = ego_xy[step][None]
    valid_ahead = np.nonzero(ego_ok[step:])[0]  # the log may have gaps
    h_end = float(tr.heading_rad[e, step + (valid_ahead[-1] if len(valid_ahead) else 0)])
    ahead_line = np.linspace(1.0, PATH_LOOKAHEAD_M, 16)[:, None]
    path = np.concatenate([fut, fut[-1] + ahead_line * [np.cos(h_end), np.sin(h_end)]])
    c, s = np.cos(h0), np.sin(h0)
    out: list[tuple[float, Candidate]] = []

    win = slice(step, t_end + 1)
    xy = tr.xyz_m[:, win, :2].astype(np.float64)  # (N, W, 2)
    ok = tr.valid[:, win]
    d_ego = np.linalg.norm(xy - ego_xy[None, win], axis=-1)
    d_ego = np.where(ok & ego_ok[None, win], d_ego, np.inf).min(1)  # (N,)
    d_path, s_path = _path_distance(xy, path)  # (N, W)
    # Ahead of the ego on its path at the same moment: a follower driving over the ego's
    # path behind it is not in its way.
    ego_s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=-1))])
    ego_s_now = ego_s[np.minimum(np.arange(xy.shape[1]), len(ego_s) - 1)]  # (W,)
    on_path = ok & (d_path < ON_PATH_M) & (s_path > ego_s_now[None])
    on_path_any: npt.NDArray[np.bool_] = np.asarray(on_path.any(1), bool)
    speed = np.linalg.norm(tr.velocity_mps[:, win], axis=-1)  # (N, W)
    rel = tr.xyz_m[:, step, :2] - ego_xy[step]  # (N, 2)
    ahead, lateral = rel[:, 0] * c + rel[:, 1] * s, -rel[:, 0] * s + rel[:, 1] * c
    # Near enough (or on the path), and not behind the ego unless it comes into its way.
    keep = tr.valid[:, step] & ((d_ego <= config.candidate_radius_m) | on_path_any)
    keep &= (ahead >= -5.0) | on_path_any
    keep[e] = False
    stationary = np.where(ok, speed, 0.0).max(1) < STATIONARY_MPS
    min_speed = np.where(ok, speed, np.inf).min(1)
    rel_heading = _wrap(tr.heading_rad[:, step] - h0)
    for i in np.nonzero(keep)[0]:  # records of the few kept objects
        cand = Candidate(
            cause_id=str(tr.object_id[i]),
            kind=object_kind(tr.object_type[i]),
            intervention="removed",
            index=int(i),
            ahead_m=float(ahead[i]),
            lateral_m=float(lateral[i]),
            distance_m=float(np.hypot(*rel[i])),
            relative_heading_rad=float(rel_heading[i]),
            speed_mps=float(speed[i, 0]),
            stationary=bool(stationary[i]),
            min_speed_mps=float(min_speed[i]),
            on_path=bool(on_path_any[i]),
        )
        # On-path objects first (nearest first), then the others by closest approach.
        out.append(((0.0 if cand.on_path else 1000.0) + float(d_ego[i]), cand))
    out += [(d, cand) for d, cand in _lights(scene, step, path, config)]
    out += [(d, cand) for d, cand in _stop_signs(scene, step, path)]
    out.sort(key=lambda p: (p[0], p[1].cause_id))
    return [cand for _, cand in out[: config.max_candidates]]


def _lights(
    scene: Scene, step: int, path: F64, config: LabelerConfig
) -> list[tuple[float, Candidate]]:
    """Lights whose stop point is on the ego's path ahead and not green at ``step``."""
    sig = scene.signals
    if len(sig.lane) == 0:
        return []
    d, s = _path_distance(sig.stop_point_xyz_m[:, :2], path)
    state = sig.state[:, step]
    hit = (d < ON_PATH_M) & (s <= PATH_LOOKAHEAD_M) & (state != int(SignalState.GREEN))
    out = []
    for lane in sorted({int(x) for x in sig.lane[hit]}):
        rows = tuple(int(r) for r in np.nonzero(hit & (sig.lane == lane))[0])
        dist = float(s[list(rows)].min())
        out.append(
            (
                dist,
                Candidate(
                    cause_id=f"light:{lane}",
                    kind="traffic_light",
                    intervention="set green",
                    index=lane,
                    signal_rows=rows,
                    ahead_m=dist,
                    distance_m=dist,
                    stationary=True,
                    on_path=True,
                ),
            )
        )
    return out


def _stop_signs(scene: Scene, step: int, path: F64) -> list[tuple[float, Candidate]]:
    m = scene.map
    if len(m.stop_sign_xyz_m) == 0:
        return []
    d, s = _path_distance(m.stop_sign_xyz_m[:, :2], path)
    out = []
    for j in np.nonzero((d < 2 * ON_PATH_M) & (s <= PATH_LOOKAHEAD_M))[0]:
        out.append(
            (
                float(s[j]),
                Candidate(
                    cause_id=f"stop_sign:{int(j)}",
                    kind="stop_sign",
                    intervention="removed",
                    index=int(j),
                    ahead_m=float(s[j]),
                    distance_m=float(s[j]),
                    stationary=True,
                    on_path=True,
                ),
            )
        )
    return out
