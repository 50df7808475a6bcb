"""Static map layers rasterized once per scene into top-down textures.

The camera rasterizer and the bird's-eye raster never touch polylines per frame: they gather
from these textures. A :class:`StaticMap` holds

* a colour mip pyramid for the cameras (packed RGBA in int32, level 0 at ``resolution_m``,
  each next level 2x coarser), so distant ground is box-filtered rather than aliased;
* a bit-mask texture and a lane-index texture for the bird's-eye raster (:mod:`.bev`).

Texture rows grow with world y and columns with world x; texel ``(r, c)`` covers
``[x0 + c*res, x0 + (c+1)*res) x [y0 + r*res, y0 + (r+1)*res)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor

from cordillera.errors import ConfigError
from cordillera.scene.model import RoadMap, Scene
from cordillera.scene.polylines import Polylines
from cordillera.scene.types import LaneType, RoadLineType

Float64Array = npt.NDArray[np.float64]

# Colours (RGB) of the ground layers; chosen to read well at 256x144 and to separate classes.
OFFROAD_RGB = (118, 124, 104)
ASPHALT_RGB = (72, 74, 78)
CURB_RGB = (150, 150, 146)
WHITE_RGB = (228, 228, 222)
YELLOW_RGB = (222, 178, 40)
CROSSWALK_RGB = (214, 214, 208)

# Bird's-eye static bits (see cordillera.sensors.bev for the channel list).
BEV_DRIVABLE, BEV_LANE, BEV_ROAD_LINE, BEV_CROSSWALK, BEV_ROUTE, BEV_STOP_LINE = (
    1,
    2,
    4,
    8,
    16,
    32,
)


@dataclass(frozen=True)
class GroundConfig:
    """How the static textures are built.

    Attributes:
        resolution_m: camera texture texel size, metres (0.1–0.3).
        margin_m: texture extends this far beyond the ego's logged positions, metres.
        mip_levels: number of pyramid levels (1 = no mip-mapping).
        lane_width_m: road width paved around vehicle-lane centerlines (in addition to the
            drivable-area polygons).
        dash_on_m, dash_off_m: dash and gap lengths of dashed road lines.
        bev_resolution_m: texel size of the bird's-eye layers.
        max_texture_px: largest allowed texture side; bigger extents raise ConfigError.
    """

    resolution_m: float = 0.1
    margin_m: float = 130.0
    mip_levels: int = 4
    lane_width_m: float = 3.6
    dash_on_m: float = 3.0
    dash_off_m: float = 6.0
    bev_resolution_m: float = 0.25
    max_texture_px: int = 8192

    def __post_init__(self) -> None:
        if not 0.02 <= self.resolution_m <= 1.0:
            raise ConfigError(f"resolution_m {self.resolution_m!r} not in [0.02, 1]")
        if not 0.0 <= self.margin_m <= 1000.0:
            raise ConfigError(f"margin_m {self.margin_m!r} not in [0, 1000]")
        if not 1 <= self.mip_levels <= 8:
            raise ConfigError(f"mip_levels {self.mip_levels!r} not in [1, 8]")
        for name in ("lane_width_m", "dash_on_m", "dash_off_m", "bev_resolution_m"):
            v = getattr(self, name)
            if not 0.0 < v <= 50.0:
                raise ConfigError(f"{name} {v!r} not in (0, 50]")
        if not 64 <= self.max_texture_px <= 32768:
            raise ConfigError(f"max_texture_px {self.max_texture_px!r} not in [64, 32768]")


@dataclass(frozen=True, eq=False)
class StaticMap:
    """One scene's prepared static layers (world frame of that scene).

    Attributes:
        origin_xy_world_m: ``(x0, y0)`` world position of texel (0, 0)'s corner, both textures.
        resolution_m: level-0 texel size of the colour pyramid.
        levels_rgba: per mip level, ``(H_l, W_l)`` int32 texels holding packed RGBA bytes.
        bev_resolution_m: texel size of the bird's-eye textures.
        bev_bits: ``(Hb, Wb)`` int32 OR of the ``BEV_*`` bits.
        bev_lane: ``(Hb, Wb)`` int32 index of the lane whose centerline covers the texel, -1.
        num_lanes: L, lanes in the map (``bev_lane`` values are in ``[-1, L)``).
    """

    origin_xy_world_m: tuple[float, float]
    resolution_m: float
    levels_rgba: tuple[Tensor, ...]
    bev_resolution_m: float
    bev_bits: Tensor
    bev_lane: Tensor
    num_lanes: int

    def to(self, device: torch.device | str) -> StaticMap:
        return StaticMap(
            self.origin_xy_world_m,
            self.resolution_m,
            tuple(t.to(device) for t in self.levels_rgba),
            self.bev_resolution_m,
            self.bev_bits.to(device),
            self.bev_lane.to(device),
            self.num_lanes,
        )


def pack_rgba(rgb: npt.ArrayLike) -> Tensor:
    """``(..., 3)`` uint8-valued colours to ``(...)`` int32 holding bytes R, G, B, 255 in memory
    order (so ``t.view(torch.uint8)`` reads them back)."""
    a = np.asarray(rgb, np.uint8)
    rgba = np.concatenate([a, np.full((*a.shape[:-1], 1), 255, np.uint8)], -1)
    return torch.from_numpy(np.ascontiguousarray(rgba).view(np.int32)[..., 0].copy())


def _dashes(line: Float64Array, on_m: float, off_m: float) -> list[Float64Array]:
    """The 'on' pieces of a dashed polyline ``(n, 2)``, each an ``(m, 2)`` polyline."""
    seg = np.linalg.norm(np.diff(line, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    total = float(s[-1])
    out = []
    period = on_m + off_m
    for start in np.arange(0.0, total, period):  # prepare-time only, per dash
        stop = min(start + on_m, total)
        inner = (s > start) & (s < stop)
        ss = np.concatenate([[start], s[inner], [stop]])
        out.append(np.stack([np.interp(ss, s, line[:, 0]), np.interp(ss, s, line[:, 1])], 1))
    return out


def _offset(line: Float64Array, d_m: float) -> Float64Array:
    """Polyline ``(n, 2)`` shifted ``d_m`` to its left."""
    t = np.gradient(line, axis=0)
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-9)
    return line + d_m * np.stack([-t[:, 1], t[:, 0]], 1)


class _Canvas:
    """A PIL image addressed in world metres (prepare-time drawing only)."""

    def __init__(
        self,
        mode: str,
        size_wh: tuple[int, int],
        origin: tuple[float, float],
        res: float,
        fill: int | tuple[int, ...],
    ) -> None:
        self.img = Image.new(mode, size_wh, fill)
        self.draw = ImageDraw.Draw(self.img)
        self.origin = origin
        self.res = res

    def px(self, xy: Float64Array) -> list[tuple[float, float]]:
        p = (xy[:, :2] - np.asarray(self.origin)) / self.res
        return [(float(a), float(b)) for a, b in p]

    def polygon(self, xy: Float64Array, fill: int | tuple[int, ...]) -> None:
        if len(xy) >= 3:
            self.draw.polygon(self.px(xy), fill=fill)

    def line(self, xy: Float64Array, fill: int | tuple[int, ...], width_m: float) -> None:
        if len(xy) >= 2:
            w = max(1, round(width_m / self.res))
            self.draw.line(self.px(xy), fill=fill, width=w, joint="curve" if w > 2 else None)


def _extent(scene: Scene, margin_m: float) -> tuple[Float64Array, Float64Array]:
    ego = scene.tracks.xyz_m[scene.ego_index, scene.tracks.valid[scene.ego_index], :2]
    return ego.min(0) - margin_m, ego.max(0) + margin_m


def _vehicle_lanes(m: RoadMap) -> Polylines:
    """Lanes a car drives on (bike lanes are not paved as road)."""
    return m.lanes.select(m.lane_type != LaneType.BIKE)


def _polys(p: Polylines) -> list[Float64Array]:
    return [p[k][:, :2] for k in range(len(p)) if len(p[k]) >= 2]


def _draw_camera_texture(
    scene: Scene, cfg: GroundConfig, origin: tuple[float, float], size_wh: tuple[int, int]
) -> npt.NDArray[np.uint8]:
    m = scene.map
    cv = _Canvas("RGB", size_wh, origin, cfg.resolution_m, OFFROAD_RGB)
    for poly in _polys(m.drivable_areas):
        cv.polygon(poly, ASPHALT_RGB)
    # Also pave a band around every vehicle lane: some sources have no drivable polygons
    # (generated, CommonRoad) and others' polygons miss parts of the roads (ScenarioNet
    # nuScenes), which would leave lanes running over grass.
    for lane in _polys(_vehicle_lanes(m)):
        cv.line(lane, ASPHALT_RGB, cfg.lane_width_m)
    for edge in _polys(m.road_edges):
        cv.line(edge, CURB_RGB, 0.3)
    img = np.asarray(cv.img).copy()
    _paint_crosswalks(img, m.crosswalks, origin, cfg.resolution_m)
    cv.img = Image.fromarray(img)
    cv.draw = ImageDraw.Draw(cv.img)
    for k in range(len(m.road_lines)):
        kind = RoadLineType(int(m.road_line_type[k]))
        line = m.road_lines[k][:, :2]
        if kind == RoadLineType.VIRTUAL or len(line) < 2:
            continue
        colour = YELLOW_RGB if kind.is_yellow else WHITE_RGB
        doubled = kind in (
            RoadLineType.DOUBLE_SOLID_WHITE,
            RoadLineType.DOUBLE_SOLID_YELLOW,
            RoadLineType.DOUBLE_DASHED_YELLOW,
            RoadLineType.SOLID_DASHED_YELLOW,
        )
        strands = [_offset(line, -0.15), _offset(line, 0.15)] if doubled else [line]
        for i, strand in enumerate(strands):
            dashed = kind.is_dashed or (kind == RoadLineType.SOLID_DASHED_YELLOW and i == 1)
            pieces = _dashes(strand, cfg.dash_on_m, cfg.dash_off_m) if dashed else [strand]
            for piece in pieces:
                cv.line(piece, colour, 0.2)
    for stop in _polys(m.stop_lines):
        cv.line(stop, WHITE_RGB, 0.45)
    return np.asarray(cv.img)


def _paint_crosswalks(
    img: npt.NDArray[np.uint8], crosswalks: Polylines, origin: tuple[float, float], res: float
) -> None:
    """Zebra stripes (0.6 m on / 0.6 m off across the walk's long axis) inside each polygon."""
    h, w = img.shape[:2]
    for poly in _polys(crosswalks):
        if len(poly) < 3:
            continue
        mask_img = Image.new("L", (w, h), 0)
        pts = [(float(a), float(b)) for a, b in (poly - np.asarray(origin)) / res]
        ImageDraw.Draw(mask_img).polygon(pts, fill=1)
        lo = np.floor(np.min(pts, axis=0)).astype(int).clip(0, [w, h])
        hi = (np.ceil(np.max(pts, axis=0)).astype(int) + 1).clip(0, [w, h])
        mask = np.asarray(mask_img)[lo[1] : hi[1], lo[0] : hi[0]].astype(bool)
        if not mask.any():
            continue
        edges = np.diff(np.vstack([poly, poly[:1]]), axis=0)
        axis = edges[int(np.argmax(np.linalg.norm(edges, axis=1)))]
        axis = axis / max(float(np.linalg.norm(axis)), 1e-9)
        rr, cc = np.mgrid[lo[1] : hi[1], lo[0] : hi[0]]
        along = (cc * axis[0] + rr * axis[1]) * res
        stripe = mask & (np.floor(along / 0.6) % 2 == 0)
        img[lo[1] : hi[1], lo[0] : hi[0]][stripe] = CROSSWALK_RGB


def _draw_bev(
    scene: Scene, cfg: GroundConfig, origin: tuple[float, float], size_wh: tuple[int, int]
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    m = scene.map
    res = cfg.bev_resolution_m
    bits = np.zeros((size_wh[1], size_wh[0]), np.int32)
    thin = max(0.5, 2 * res)

    def layer(draw_fn: object) -> npt.NDArray[np.bool_]:
        cv = _Canvas("L", size_wh, origin, res, 0)
        draw_fn(cv)  # type: ignore[operator]
        return np.asarray(cv.img) > 0

    def drivable(cv: _Canvas) -> None:
        for p in _polys(m.drivable_areas):
            cv.polygon(p, 1)
        for lane in _polys(_vehicle_lanes(m)):
            cv.line(lane, 1, cfg.lane_width_m)

    layers = {
        BEV_DRIVABLE: drivable,
        BEV_LANE: lambda cv: [cv.line(p, 1, thin) for p in _polys(m.lanes)],
        BEV_ROAD_LINE: lambda cv: [
            cv.line(m.road_lines[k][:, :2], 1, thin)
            for k in range(len(m.road_lines))
            if m.road_line_type[k] != RoadLineType.VIRTUAL
        ],
        BEV_CROSSWALK: lambda cv: [cv.polygon(p, 1) for p in _polys(m.crosswalks)],
        BEV_ROUTE: lambda cv: cv.line(scene.route.path_xyz_m[:, :2], 1, 2.0),
        BEV_STOP_LINE: lambda cv: [cv.line(p, 1, 1.0) for p in _polys(m.stop_lines)],
    }
    for bit, fn in layers.items():
        bits |= layer(fn).astype(np.int32) * bit
    # Lane index per texel, drawn in "I" (int32) mode; values are lane + 1 so 0 means none.
    lane_cv = _Canvas("I", size_wh, origin, res, 0)
    for k in range(len(m.lanes)):
        lane_cv.line(m.lanes[k][:, :2], k + 1, thin)
    lane = np.asarray(lane_cv.img, np.int32) - 1
    return bits, lane


def prepare_static_map(scene: Scene, config: GroundConfig | None = None) -> StaticMap:
    """Rasterize ``scene``'s map layers once (tens to hundreds of milliseconds)."""
    cfg = config or GroundConfig()
    lo, hi = _extent(scene, cfg.margin_m)
    scale = 2 ** (cfg.mip_levels - 1)
    # Level-0 size is a multiple of 2^(levels-1) so every level halves exactly.
    w = math.ceil((hi[0] - lo[0]) / cfg.resolution_m / scale) * scale
    h = math.ceil((hi[1] - lo[1]) / cfg.resolution_m / scale) * scale
    if max(w, h) > cfg.max_texture_px:
        raise ConfigError(
            f"scene {scene.scene_id!r}: ground texture {w}x{h} px exceeds "
            f"max_texture_px {cfg.max_texture_px}; raise resolution_m "
            f"({cfg.resolution_m}) or max_texture_px"
        )
    origin = (float(lo[0]), float(lo[1]))
    rgb = _draw_camera_texture(scene, cfg, origin, (w, h))
    # Border texels take the off-road colour: lookups clamp to the edge, so everything beyond
    # the texture reads as off-road ground.
    rgb = rgb.copy()
    rgb[[0, -1], :] = OFFROAD_RGB
    rgb[:, [0, -1]] = OFFROAD_RGB
    level = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()  # (1, 3, H, W)
    levels = [pack_rgba(rgb)]
    for _ in range(1, cfg.mip_levels):
        level = F.avg_pool2d(level, 2)
        arr = level[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
        levels.append(pack_rgba(arr))
    bw = math.ceil((hi[0] - lo[0]) / cfg.bev_resolution_m)
    bh = math.ceil((hi[1] - lo[1]) / cfg.bev_resolution_m)
    bits, lane = _draw_bev(scene, cfg, origin, (bw, bh))
    # Lookups clamp to the edge: empty border texels make everything beyond the texture empty.
    bits[[0, -1], :] = 0
    bits[:, [0, -1]] = 0
    lane[[0, -1], :] = -1
    lane[:, [0, -1]] = -1
    return StaticMap(
        origin,
        cfg.resolution_m,
        tuple(levels),
        cfg.bev_resolution_m,
        torch.from_numpy(bits),
        torch.from_numpy(lane),
        scene.map.num_lanes,
    )
