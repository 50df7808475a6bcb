"""Scene parts derived from others when a source does not provide them (route, lane lookup)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cordillera.scene.model import RoadMap, Route, Tracks

_QUERY_CHUNK = 32
_SEARCH_MARGIN_M = 30.0


def nearest_lane(
    road_map: RoadMap, xy_m: npt.NDArray[np.float64], heading_rad: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float64]]:
    """Nearest heading-compatible lane of each query pose.

    Args:
        road_map: the map.
        xy_m: ``(Q, 2)`` query positions, world frame.
        heading_rad: ``(Q,)`` query headings; lanes whose direction differs by more than 90°
            are ignored.

    Returns:
        ``(Q,)`` int32 lane index (-1 when the map has no lanes) and ``(Q,)`` distance in metres
        to that lane's centerline.
    """
    q = len(xy_m)
    if road_map.num_lanes == 0 or q == 0:
        return np.full(q, -1, np.int32), np.full(q, np.inf)
    a, b, owner = road_map.lanes.segments()
    if len(a) == 0:
        return np.full(q, -1, np.int32), np.full(q, np.inf)
    a2, ab = a[:, :2], b[:, :2] - a[:, :2]
    seg_heading = np.arctan2(ab[:, 1], ab[:, 0])
    ab_len2 = np.maximum((ab**2).sum(-1), 1e-12)
    best = np.full(q, -1, np.int32)
    best_d = np.full(q, np.inf)
    seg_lo = np.minimum(a2, b[:, :2])
    seg_hi = np.maximum(a2, b[:, :2])
    # Queries come in driving order, so a run of consecutive ones covers a small area: test
    # only the segments whose bounding box lies near that run's bounding box.
    for lo in range(0, q, _QUERY_CHUNK):
        p2 = xy_m[lo : lo + _QUERY_CHUNK]
        near = np.all(seg_lo <= p2.max(0) + _SEARCH_MARGIN_M, axis=1) & np.all(
            seg_hi >= p2.min(0) - _SEARCH_MARGIN_M, axis=1
        )
        idx = np.nonzero(near)[0]
        if len(idx) == 0:
            continue
        p = p2[:, None, :]
        t = np.clip(((p - a2[idx]) * ab[idx]).sum(-1) / ab_len2[idx], 0.0, 1.0)
        d = np.linalg.norm(a2[idx] + t[..., None] * ab[idx] - p, axis=-1)
        h = heading_rad[lo : lo + _QUERY_CHUNK, None]
        dh = np.angle(np.exp(1j * (seg_heading[idx][None] - h)))
        d = np.where(np.abs(dh) <= np.pi / 2, d, np.inf)
        k = d.argmin(axis=1)
        dk = d[np.arange(len(k)), k]
        best[lo : lo + _QUERY_CHUNK] = np.where(np.isfinite(dk), owner[idx][k], -1)
        best_d[lo : lo + _QUERY_CHUNK] = dk
    return best, best_d


def route_from_log(
    tracks: Tracks, ego_index: int, road_map: RoadMap, max_lane_distance_m: float = 3.0
) -> Route:
    """The route a logged ego drove: its valid positions as the path, and the lanes it used.

    Lanes are the nearest heading-compatible lane at each valid step (within
    ``max_lane_distance_m``), with consecutive repeats removed.
    """
    valid = tracks.valid[ego_index]
    path = tracks.xyz_m[ego_index, valid].astype(np.float64)
    heading = tracks.heading_rad[ego_index, valid]
    lane, dist = nearest_lane(road_map, path[:, :2], heading)
    lane = lane[(lane >= 0) & (dist <= max_lane_distance_m)]
    if len(lane):
        keep = np.concatenate([[True], lane[1:] != lane[:-1]])
        lane = lane[keep]
    return Route(lanes=lane.astype(np.int32), path_xyz_m=np.ascontiguousarray(path))
