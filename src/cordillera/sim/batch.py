"""Static scene data as padded torch tensors: logs, map samples, signals, route, grids.

A :class:`SceneBatch` holds U *unique* scenes; a simulation batch of B rollouts points into it
with ``scene_of`` ``(B,)``, so 256 rollouts of 10 scenes store each log and grid once.

Frame: every scene gets a *local* frame, the world frame shifted so that the ego's first valid
position is the origin (no rotation). float32 is then precise to well under a millimetre over
the few kilometres a scene spans, while world coordinates (AV2 city frames) would not be.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
import torch
from PIL import Image, ImageDraw

from cordillera.errors import ConfigError
from cordillera.scene.model import Scene
from cordillera.scene.polylines import Polylines
from cordillera.scene.types import SignalState
from cordillera.sim.grids import GridFrame, make_grid_frame, rasterize_polygons, scene_extent_xy

F64 = npt.NDArray[np.float64]
LANE_SAMPLE_SPACING_M = 1.0
ROUTE_SAMPLE_SPACING_M = 1.0
# Where a map's drivable layer is incomplete, lanes count as drivable this wide (a lane plus
# its shoulder); see _drivable_grid.
LANE_DRIVABLE_WIDTH_M = 5.0
MIN_LANE_COVERAGE = 0.98
PATH_EXTENSION_M = 100.0
PATH_SPACING_M = 0.5


def resample_polyline(
    xy: npt.NDArray[np.float64], spacing_m: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Points every ``spacing_m`` along a ``(n, 2)`` polyline, and their arc lengths ``s``."""
    if len(xy) == 1:
        return xy.copy(), np.zeros(1)
    seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 0:
        return xy[:1].copy(), np.zeros(1)
    s_new = np.linspace(0.0, s[-1], max(2, int(np.ceil(s[-1] / spacing_m)) + 1))
    keep = np.concatenate([[True], seg > 1e-9])
    s_k, xy_k = s[keep], xy[keep]
    out = np.stack([np.interp(s_new, s_k, xy_k[:, 0]), np.interp(s_new, s_k, xy_k[:, 1])], 1)
    return out, s_new


def polyline_headings(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``(n,)`` tangent heading at each point of a ``(n, 2)`` polyline (forward differences)."""
    if len(xy) < 2:
        return np.zeros(len(xy))
    d = np.diff(xy, axis=0)
    h = np.arctan2(d[:, 1], d[:, 0])
    return np.concatenate([h, h[-1:]])


@dataclass(frozen=True, eq=False)
class SceneBatch:
    """U scenes as padded tensors on one device. All positions in each scene's local frame.

    Logs (N objects, T steps, padded):
        log_xy_m ``(U, N, T, 2)``, log_heading_rad ``(U, N, T)``, log_speed_mps ``(U, N, T)``
        (signed, along heading), log_valid ``(U, N, T)``; size_lw_m ``(U, N, 2)`` and
        height_m ``(U, N)`` (median over valid steps); object_type ``(U, N)`` int64;
        object_mask ``(U, N)`` (real object, not padding); ego_index ``(U,)``; num_steps ``(U,)``.
    Log paths for path-following traffic:
        log_xy_filled_m ``(U, N, T, 2)`` logged positions with gaps filled (nearest valid);
        log_s_m ``(U, N, T)`` arc length along the filled log at each step;
        path_xyh ``(U, N, P, 3)`` x, y, heading resampled every ``path_spacing_m`` of arc
        length from 0 to the log's end plus a straight extension, padded with the last point;
        path_num_points ``(U, N)`` points in use per path; log_s_m ``(U, N, T)``
        arc length of each logged step.
    Map samples:
        lane_xy_m ``(U, Lp, 2)`` centerline points every ~1 m, lane_heading_rad ``(U, Lp)``,
        lane_of_point ``(U, Lp)``, lane_point_valid ``(U, Lp)``.
    Route:
        route_xy_m ``(U, R, 2)``, route_s_m ``(U, R)``, route_valid ``(U, R)``,
        route_length_m ``(U,)``.
    Signals / stop signs:
        signal_xy_m ``(U, S, 2)`` stop points, signal_heading_rad ``(U, S)`` direction of the
        controlled lane there, signal_state ``(U, S, T)`` int64 :class:`SignalState`,
        signal_valid ``(U, S)``; signal_applies ``(U, N, S)`` whether each object's logged path
        runs through the signal's controlled lane (heads that share a stop point but control
        other connectors — a red left-turn arrow beside a green through light — do not apply);
        stop_sign_xy_m ``(U, M, 2)``, stop_sign_heading_rad ``(U, M)``,
        stop_sign_valid ``(U, M)``.
    Grids (G = max cells, all scenes share resolution):
        drivable_flat ``(sum of H·W,)`` bool, every scene's drivable-area grid flattened
        row-major one after another; grid_offset ``(U,)`` where each starts; grid_hw ``(U, 2)``
        its (H, W) cells; grid_origin_xy_m ``(U, 2)``,
        grid_resolution_m.
    Provenance: origin_world_xy_m ``(U, 2)`` float64 (local = world - origin), scene_ids.
    """

    scene_ids: tuple[str, ...]
    dt_s: float
    origin_world_xy_m: torch.Tensor
    ego_index: torch.Tensor
    num_steps: torch.Tensor
    log_xy_m: torch.Tensor
    log_heading_rad: torch.Tensor
    log_speed_mps: torch.Tensor
    log_valid: torch.Tensor
    log_s_m: torch.Tensor
    log_xy_filled_m: torch.Tensor
    path_xyh: torch.Tensor
    path_num_points: torch.Tensor
    size_lw_m: torch.Tensor
    height_m: torch.Tensor
    object_type: torch.Tensor
    object_mask: torch.Tensor
    lane_xy_m: torch.Tensor
    lane_heading_rad: torch.Tensor
    lane_of_point: torch.Tensor
    lane_point_valid: torch.Tensor
    route_xy_m: torch.Tensor
    route_s_m: torch.Tensor
    route_valid: torch.Tensor
    route_length_m: torch.Tensor
    signal_xy_m: torch.Tensor
    signal_heading_rad: torch.Tensor
    signal_state: torch.Tensor
    signal_valid: torch.Tensor
    signal_applies: torch.Tensor
    stop_sign_xy_m: torch.Tensor
    stop_sign_heading_rad: torch.Tensor
    stop_sign_valid: torch.Tensor
    drivable_flat: torch.Tensor
    grid_offset: torch.Tensor
    grid_hw: torch.Tensor
    grid_origin_xy_m: torch.Tensor
    grid_resolution_m: float
    path_spacing_m: float

    @property
    def num_scenes(self) -> int:
        return len(self.scene_ids)

    @property
    def max_objects(self) -> int:
        return int(self.log_xy_m.shape[1])

    @property
    def max_steps(self) -> int:
        return int(self.log_xy_m.shape[2])

    @property
    def device(self) -> torch.device:
        return self.log_xy_m.device

    def select(self, index: torch.Tensor | Sequence[int]) -> SceneBatch:
        """A batch of the scenes at ``index`` ``(U',)`` (repeats allowed: cheap copies to edit,
        e.g. counterfactual variants of one scene). Per-scene tensors are gathered; the flat
        drivable grids are shared, their offsets gathered."""
        idx = torch.as_tensor(index, dtype=torch.long, device=self.device)
        u = self.num_scenes
        fields: dict[str, object] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor) and f.name != "drivable_flat" and v.shape[:1] == (u,):
                v = v.index_select(0, idx)
            fields[f.name] = v
        fields["scene_ids"] = tuple(self.scene_ids[i] for i in idx.tolist())
        return SceneBatch(**fields)  # type: ignore[arg-type]

    @staticmethod
    def from_scenes(scenes: Sequence[Scene], device: str | torch.device = "cpu") -> SceneBatch:
        """Tensorise ``scenes`` (all must share ``dt_s``)."""
        if not scenes:
            raise ConfigError("a scene batch needs at least one scene")
        dts = {round(s.dt_s, 9) for s in scenes}
        if len(dts) != 1:
            raise ConfigError(f"scenes in one batch must share dt_s, got {sorted(dts)}")
        parts = [_scene_arrays(s) for s in scenes]
        out: dict[str, torch.Tensor] = {}
        # Grids differ in size per scene: concatenated flat, not padded (padding ten city
        # blocks to the largest one costs hundreds of MB).
        grids = [p.pop("_drivable") for p in parts]
        sizes = np.array([g.size for g in grids], np.int64)
        out["drivable_flat"] = torch.from_numpy(np.concatenate([g.ravel() for g in grids])).to(
            device
        )
        out["grid_offset"] = torch.from_numpy(np.cumsum(sizes) - sizes).to(device)
        out["grid_hw"] = torch.tensor([g.shape for g in grids], dtype=torch.int64, device=device)
        for key in parts[0]:
            arrays = [p[key] for p in parts]
            out[key] = torch.from_numpy(_pad_stack(arrays, key)).to(device)
        return SceneBatch(
            scene_ids=tuple(s.scene_id for s in scenes),
            dt_s=float(scenes[0].dt_s),
            grid_resolution_m=float(parts[0]["_res"][0]),
            path_spacing_m=PATH_SPACING_M,
            **{k: v for k, v in out.items() if not k.startswith("_")},
        )


_PAD_VALUES = {"object_type": 3, "signal_state": int(SignalState.UNKNOWN)}


SIGNAL_PROBE_M = 15.0
"""Arc length along a signal's controlled lane, from its stop point, of the probe point a path
must pass to be controlled by it (far enough for a turn connector to have left the through
one)."""
SIGNAL_PATH_TOLERANCE_M = 2.5


def _signal_applies(
    scene: Scene, path_xyh: F64, sig_xy: F64, origin: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """``(N, S)`` whether each object's path passes a signal's stop point and a probe point
    :data:`SIGNAL_PROBE_M` along its controlled lane (downstream where the lane goes on past
    the stop point, else upstream); signals of unknown lane apply to every path through their
    stop point."""
    n, s = path_xyh.shape[0], len(sig_xy)
    if s == 0 or n == 0:
        return np.zeros((n, s), bool)
    lanes = scene.map.lanes
    probes = sig_xy.astype(np.float64).copy()
    for j, lane in enumerate(scene.signals.lane):  # signals of one scene, load time only
        if lane < 0 or lane >= len(lanes):
            continue
        pts = lanes[int(lane)][:, :2] - origin
        if len(pts) < 2:
            continue
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=-1))])
        at = arc[int(np.linalg.norm(pts - sig_xy[j], axis=-1).argmin())]
        want = at + SIGNAL_PROBE_M if arc[-1] - at >= SIGNAL_PROBE_M / 2 else at - SIGNAL_PROBE_M
        want = float(np.clip(want, 0.0, arc[-1]))
        probes[j] = [np.interp(want, arc, pts[:, 0]), np.interp(want, arc, pts[:, 1])]
    xy = path_xyh[:, :, :2]  # (N, P, 2)

    def near(points: F64) -> npt.NDArray[np.bool_]:
        d = np.linalg.norm(xy[:, :, None, :] - points[None, None], axis=-1)  # (N, P, S)
        return np.asarray(d.min(1) < SIGNAL_PATH_TOLERANCE_M)

    return near(sig_xy.astype(np.float64)) & near(probes)


def _pad_stack(arrays: list[npt.NDArray[np.generic]], key: str) -> npt.NDArray[np.generic]:
    shape = tuple(max(a.shape[d] for a in arrays) for d in range(arrays[0].ndim))
    out = np.full((len(arrays), *shape), _PAD_VALUES.get(key, 0), dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        index: tuple[int | slice, ...] = (i, *(slice(0, n) for n in a.shape))
        out[index] = a
    if key in (
        "path_xy_m",
        "path_s_m",
        "path_heading_rad",
    ):  # keep padded steps on the last path point
        for i, a in enumerate(arrays):
            t = a.shape[1]
            out[i, : a.shape[0], t:] = a[:, -1:]
    return out


def _scene_arrays(scene: Scene) -> dict[str, npt.NDArray[np.generic]]:
    tr = scene.tracks
    ego = scene.ego_index
    first = int(np.argmax(tr.valid[ego]))
    origin = tr.xyz_m[ego, first, :2].astype(np.float64)
    valid = tr.valid
    xy = np.where(valid[..., None], tr.xyz_m[..., :2] - origin, 0.0)
    heading = np.where(valid, tr.heading_rad, 0.0)
    vel = tr.velocity_mps
    speed = np.where(valid, vel[..., 0] * np.cos(heading) + vel[..., 1] * np.sin(heading), 0.0)
    filled_xy, log_s, path_xyh, path_n = _log_paths(xy, heading, valid)
    sizes = np.where(valid[..., None], tr.size_lwh_m, np.nan)
    with np.errstate(all="ignore"):
        med = np.nan_to_num(np.nanmedian(sizes, axis=1), nan=1.0)
    med = np.maximum(med, 0.1)
    lane_xy, lane_h, lane_of = _lane_samples(scene.map.lanes, origin)
    route_src = (
        scene.route.path_xyz_m[:, :2] - origin
        if len(scene.route.path_xyz_m)
        else xy[ego, valid[ego]]
    )
    if len(route_src) >= 2:
        route_xy, route_s = resample_polyline(route_src, ROUTE_SAMPLE_SPACING_M)
    else:
        route_xy, route_s = route_src[:1].reshape(-1, 2), np.zeros(len(route_src[:1]))
    sig = scene.signals
    sig_xy = sig.stop_point_xyz_m[:, :2] - origin
    sig_h = _lane_heading_at(scene, sig.lane, sig_xy, origin)
    m = scene.map
    ss_xy = m.stop_sign_xyz_m[:, :2] - origin
    ss_h = _lane_heading_at(scene, m.stop_sign_lane, ss_xy, origin)
    lo, hi = scene_extent_xy(scene, origin)
    frame = make_grid_frame(lo, hi)
    drivable = _drivable_grid(m.drivable_areas, m.lanes, lane_xy, origin, frame)
    return {
        "origin_world_xy_m": origin,
        "ego_index": np.array(ego, np.int64),
        "num_steps": np.array(scene.num_steps, np.int64),
        "log_xy_m": xy.astype(np.float32),
        "log_heading_rad": heading.astype(np.float32),
        "log_speed_mps": speed.astype(np.float32),
        "log_valid": valid.copy(),
        "log_s_m": log_s.astype(np.float32),
        "log_xy_filled_m": filled_xy.astype(np.float32),
        "path_xyh": path_xyh.astype(np.float32),
        "path_num_points": path_n.astype(np.int64),
        "size_lw_m": med[:, :2].astype(np.float32),
        "height_m": med[:, 2].astype(np.float32),
        "object_type": tr.object_type.astype(np.int64),
        "object_mask": np.ones(tr.num_objects, bool),
        "lane_xy_m": lane_xy.astype(np.float32),
        "lane_heading_rad": lane_h.astype(np.float32),
        "lane_of_point": lane_of.astype(np.int64),
        "lane_point_valid": np.ones(len(lane_xy), bool),
        "route_xy_m": route_xy.astype(np.float32),
        "route_s_m": route_s.astype(np.float32),
        "route_valid": np.ones(len(route_xy), bool),
        "route_length_m": np.array(route_s[-1] if len(route_s) else 0.0, np.float32),
        "signal_xy_m": sig_xy.astype(np.float32),
        "signal_heading_rad": sig_h.astype(np.float32),
        "signal_state": sig.state.astype(np.int64),
        "signal_valid": np.ones(len(sig_xy), bool),
        "signal_applies": _signal_applies(scene, path_xyh, sig_xy, origin),
        "stop_sign_xy_m": ss_xy.astype(np.float32),
        "stop_sign_heading_rad": ss_h.astype(np.float32),
        "stop_sign_valid": np.ones(len(ss_xy), bool),
        "_drivable": drivable,
        "grid_origin_xy_m": frame.origin_xy_m.astype(np.float32),
        "_res": np.array([frame.resolution_m]),
    }


def _log_paths(
    xy: npt.NDArray[np.float64], heading: npt.NDArray[np.float64], valid: npt.NDArray[np.bool_]
) -> tuple[F64, F64, F64, npt.NDArray[np.int64]]:
    """Gap-filled logs and the uniformly resampled path each object drove.

    Invalid steps take the nearest earlier valid position (the first valid one before the
    object appears), so the path is defined everywhere. Returns ``filled (N, T, 2)``, the arc
    length of every step ``(N, T)``, the path ``(N, P, 3)`` (x, y, heading every
    ``PATH_SPACING_M``, extended straight ahead by ``PATH_EXTENSION_M``) and points per path.
    """
    n, t = valid.shape
    idx = np.where(valid, np.arange(t)[None], -1)
    fwd = np.maximum.accumulate(idx, axis=1)
    first = np.argmax(valid, axis=1)
    fwd = np.where(fwd < 0, first[:, None], fwd)
    filled: F64 = np.take_along_axis(xy, fwd[..., None].repeat(2, -1), axis=1)
    filled_h = np.take_along_axis(heading, fwd, axis=1)
    seg = np.linalg.norm(np.diff(filled, axis=1), axis=-1)
    log_s: F64 = np.concatenate([np.zeros((n, 1)), np.cumsum(seg, axis=1)], axis=1)
    counts = np.floor((log_s[:, -1] + PATH_EXTENSION_M) / PATH_SPACING_M).astype(np.int64) + 1
    p = int(counts.max()) if n else 1
    path: F64 = np.zeros((n, p, 3))
    for i in range(n):  # load time only
        s_new = np.arange(counts[i]) * PATH_SPACING_M
        h_last = filled_h[i, -1]
        s_i = np.concatenate([log_s[i], [log_s[i, -1] + PATH_EXTENSION_M]])
        x_i = np.concatenate(
            [filled[i, :, 0], [filled[i, -1, 0] + PATH_EXTENSION_M * np.cos(h_last)]]
        )
        y_i = np.concatenate(
            [filled[i, :, 1], [filled[i, -1, 1] + PATH_EXTENSION_M * np.sin(h_last)]]
        )
        h_i = np.concatenate([filled_h[i], [h_last]])
        keep = np.concatenate([[True], np.diff(s_i) > 1e-6])
        s_k = s_i[keep]
        path[i, : counts[i], 0] = np.interp(s_new, s_k, x_i[keep])
        path[i, : counts[i], 1] = np.interp(s_new, s_k, y_i[keep])
        c = np.interp(s_new, s_k, np.cos(h_i[keep]))
        sn = np.interp(s_new, s_k, np.sin(h_i[keep]))
        path[i, : counts[i], 2] = np.arctan2(sn, c)
        path[i, counts[i] :] = path[i, counts[i] - 1]
    return filled, log_s, path, counts


def _lane_samples(
    lanes: Polylines, origin: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], ...]:
    xs, hs, owners = [np.zeros((0, 2))], [np.zeros(0)], [np.zeros(0, np.int64)]
    for k in range(len(lanes)):  # load time only
        line = lanes[k][:, :2] - origin
        if len(line) < 2:
            continue
        pts, _ = resample_polyline(line, LANE_SAMPLE_SPACING_M)
        xs.append(pts)
        hs.append(polyline_headings(pts))
        owners.append(np.full(len(pts), k, np.int64))
    return np.concatenate(xs), np.concatenate(hs), np.concatenate(owners)


def _lane_heading_at(
    scene: Scene,
    lane: npt.NDArray[np.int32],
    xy: npt.NDArray[np.float64],
    origin: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Heading of ``lane[i]`` at the point nearest ``xy[i]`` (0 where the lane is unknown)."""
    out = np.zeros(len(xy))
    for i, k in enumerate(lane.tolist()):  # load time only; a handful of signs and lights
        if k < 0:
            continue
        line = scene.map.lanes[k][:, :2] - origin
        if len(line) < 2:
            continue
        h = polyline_headings(line)
        out[i] = h[int(np.argmin(np.linalg.norm(line - xy[i], axis=1)))]
    return out


def _drivable_grid(
    areas: Polylines,
    lanes: Polylines,
    lane_xy: F64,
    origin: npt.NDArray[np.float64],
    frame: GridFrame,
) -> npt.NDArray[np.bool_]:
    """The drivable-area grid: the map's drivable polygons, completed from the lanes when
    they leave lanes uncovered.

    Some exports carry an incomplete drivable layer (ScenarioNet's nuScenes has lane
    polygons only, without junction connectors); when fewer than ``MIN_LANE_COVERAGE`` of
    the lane centerline samples lie on it, every lane also counts as drivable
    ``LANE_DRIVABLE_WIDTH_M`` wide. Complete layers (Argoverse 2, CommonRoad, generated
    scenes) are used as they are.
    """
    grid = rasterize_polygons(areas, origin, frame) if len(areas) else None
    if grid is not None and len(lane_xy):
        ij = np.floor((lane_xy - frame.origin_xy_m) / frame.resolution_m).astype(np.int64)
        h, w = frame.shape_hw
        inside = (ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)
        covered = np.zeros(len(ij), bool)
        covered[inside] = grid[ij[inside, 1], ij[inside, 0]]
        if covered.mean() >= MIN_LANE_COVERAGE:
            return grid
    lanes_grid = _rasterize_lanes(lanes, origin, frame)
    return lanes_grid if grid is None else grid | lanes_grid


def _rasterize_lanes(
    lanes: Polylines, origin: npt.NDArray[np.float64], frame: GridFrame
) -> npt.NDArray[np.bool_]:
    """Drivable grid from lane centerlines buffered to ``LANE_DRIVABLE_WIDTH_M``."""
    h, w = frame.shape_hw
    img = Image.new("1", (w, h), 0)
    draw = ImageDraw.Draw(img)
    half = LANE_DRIVABLE_WIDTH_M / 2
    for k in range(len(lanes)):  # load time only
        line = lanes[k][:, :2] - origin - frame.origin_xy_m
        if len(line) < 2:
            continue
        area = shapely.LineString(line).buffer(half, quad_segs=4)
        for poly in getattr(area, "geoms", [area]):
            ring = np.asarray(poly.exterior.coords) / frame.resolution_m
            draw.polygon([tuple(p) for p in ring.tolist()], fill=1, outline=1)
    return np.asarray(img, dtype=bool)
