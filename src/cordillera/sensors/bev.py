"""Bird's-eye raster for compact policies: an ego-centred, ego-aligned multi-channel image.

Output ``(B, K, H, W)`` float32 in {0, 1}; row 0 is the far front (ego x grows upwards), column
0 the far left (ego y grows leftwards), the ego's reference point at the image centre. Static
channels are one gather per pixel from the scene's prepared :class:`~.ground.StaticMap`;
objects are exact point-in-oriented-box tests restricted to each box's bounding rectangle.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from cordillera.errors import ConfigError
from cordillera.scene.types import ObjectType, SignalState
from cordillera.sensors import ground
from cordillera.sensors.projection import box_corners, world_to_ego_boxes
from cordillera.sensors.raster_objects import _ragged_rect_pixels
from cordillera.sensors.world import RenderBatch

BEV_CHANNELS = (
    "drivable",  # drivable area (or paved lane bands when the map has no polygons)
    "lane_centerline",  # lane centerlines, ~0.5 m wide
    "road_line",  # painted lines and lane boundaries (not virtual ones)
    "crosswalk",
    "vehicle",  # objects by ObjectType, the ego itself excluded
    "pedestrian",
    "cyclist",
    "other",
    "route",  # the ego's route path, 2 m wide
    "stop",  # stop lines, and lanes whose signal is red / flashing red now
)
_STATIC_BITS = {
    0: ground.BEV_DRIVABLE,
    1: ground.BEV_LANE,
    2: ground.BEV_ROAD_LINE,
    3: ground.BEV_CROSSWALK,
    8: ground.BEV_ROUTE,
    9: ground.BEV_STOP_LINE,
}
_FIRST_OBJECT_CHANNEL = 4


@dataclass(frozen=True)
class BevConfig:
    """Size of the bird's-eye raster.

    Attributes:
        height_px, width_px: image size (H along ego x, W along ego y).
        resolution_m: metres per pixel.
        forward_offset_m: shift of the view ahead of the ego (0 = ego at the centre).
    """

    height_px: int = 128
    width_px: int = 128
    resolution_m: float = 0.5
    forward_offset_m: float = 0.0

    def __post_init__(self) -> None:
        for name in ("height_px", "width_px"):
            v = getattr(self, name)
            if not isinstance(v, int) or not 8 <= v <= 4096:
                raise ConfigError(f"{name} {v!r} not an int in [8, 4096]")
        if not 0.02 <= self.resolution_m <= 10.0:
            raise ConfigError(f"resolution_m {self.resolution_m!r} not in [0.02, 10]")
        if abs(self.forward_offset_m) > self.height_px * self.resolution_m / 2:
            raise ConfigError(
                f"forward_offset_m {self.forward_offset_m!r} puts the ego outside the view"
            )


def bev_pixel_xy_ego(cfg: BevConfig, device: torch.device | str = "cpu") -> Tensor:
    """``(H, W, 2)`` ego-frame ``(x, y)`` of every pixel centre."""
    i = torch.arange(cfg.height_px, dtype=torch.float32, device=device)
    j = torch.arange(cfg.width_px, dtype=torch.float32, device=device)
    x = (cfg.height_px / 2 - i - 0.5) * cfg.resolution_m + cfg.forward_offset_m
    y = (cfg.width_px / 2 - j - 0.5) * cfg.resolution_m
    return torch.stack(torch.broadcast_tensors(x[:, None], y[None, :]), -1)


def render_bev(batch: RenderBatch, cfg: BevConfig | None = None) -> Tensor:
    """``(B, K, H, W)`` float32 bird's-eye raster of every snapshot; channels
    :data:`BEV_CHANNELS`."""
    cfg = cfg or BevConfig()
    dev = batch.device
    b_n, h, w = batch.batch_size, cfg.height_px, cfg.width_px
    out = torch.zeros((b_n, len(BEV_CHANNELS), h * w), dtype=torch.float32, device=dev)

    # Static layers: ego pixel -> world -> texel, one gather per pixel.
    maps = batch.maps
    pose = batch.ego_pose_world
    cos, sin = torch.cos(pose[:, 2]), torch.sin(pose[:, 2])
    origin = torch.tensor([m.origin_xy_world_m for m in maps], dtype=torch.float32, device=dev)[
        batch.map_index
    ]
    res = torch.tensor([m.bev_resolution_m for m in maps], dtype=torch.float32, device=dev)[
        batch.map_index
    ]
    size = torch.tensor(
        [[m.bev_bits.shape[1], m.bev_bits.shape[0]] for m in maps], dtype=torch.int64, device=dev
    )[batch.map_index]  # (B, 2) W, H
    numel = torch.tensor(
        [0] + [m.bev_bits.numel() for m in maps[:-1]], dtype=torch.int64, device=dev
    )
    offset = torch.cumsum(numel, 0)[batch.map_index]
    affine = (
        torch.stack(
            [torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1), pose[:, :2] - origin], 1
        )
        / res[:, None, None]
    )  # (B, 3, 2)
    xy = bev_pixel_xy_ego(cfg, dev).reshape(-1, 2)
    xy1 = torch.cat([xy, torch.ones_like(xy[:, :1])], 1)
    uv = torch.matmul(xy1, affine).clamp_min_(0)  # (B, HW, 2)
    uv = torch.minimum(uv, (size - 1).to(uv.dtype)[:, None, :]).to(torch.int64)
    flat = uv[..., 1] * size[:, None, 0] + uv[..., 0] + offset[:, None]
    bits = torch.cat([m.bev_bits.flatten().to(dev) for m in maps])[flat]  # (B, HW)
    for ch, bit in _STATIC_BITS.items():
        out[:, ch] = (bits & bit) != 0

    # Lanes controlled by a red signal: (B, L_max + 1) table indexed by lane + 1.
    lane = torch.cat([m.bev_lane.flatten().to(dev) for m in maps])[flat]  # (B, HW)
    l_max = max(m.num_lanes for m in maps)
    red = (batch.signal_state == SignalState.RED) | (batch.signal_state == SignalState.FLASHING_RED)
    red &= batch.signal_valid & (batch.signal_lane >= 0)
    table = torch.zeros((b_n, l_max + 1), dtype=torch.bool, device=dev)
    rows = torch.arange(b_n, device=dev)[:, None].expand_as(red)
    table[rows[red], (batch.signal_lane + 1).clamp(0, l_max)[red]] = True
    out[:, 9] = torch.maximum(
        out[:, 9], torch.gather(table, 1, (lane + 1).clamp(0, l_max)).to(torch.float32)
    )

    _draw_objects(out, batch, cfg)
    return out.view(b_n, len(BEV_CHANNELS), h, w)


def _draw_objects(out: Tensor, batch: RenderBatch, cfg: BevConfig) -> None:
    """Set the object-type channels of ``out`` ``(B, K, H*W)`` inside every valid box."""
    dev = batch.device
    h, w, res = cfg.height_px, cfg.width_px, cfg.resolution_m
    boxes = world_to_ego_boxes(batch.boxes_world, batch.ego_pose_world)  # (B, N, 7)
    corners = box_corners(boxes)[..., :4, :2]  # (B, N, 4, 2): the footprint corners
    # Ego (x, y) -> continuous pixel coordinates (col, row).
    col = w / 2 - corners[..., 1] / res
    row = h / 2 - (corners[..., 0] - cfg.forward_offset_m) / res
    rect = torch.stack(
        [col.amin(-1).floor(), row.amin(-1).floor(), col.amax(-1).ceil(), row.amax(-1).ceil()], -1
    )
    rect[..., 0::2] = rect[..., 0::2].clamp(0, w)
    rect[..., 1::2] = rect[..., 1::2].clamp(0, h)
    rect = rect.to(torch.int64)
    ok = batch.object_valid & (rect[..., 2] > rect[..., 0]) & (rect[..., 3] > rect[..., 1])
    idx = torch.nonzero(ok)  # (Q, 2) rows (b, n)
    if len(idx) == 0:
        return
    qb, qn = idx.unbind(1)
    pair, col_i, row_i = _ragged_rect_pixels(rect[qb, qn])
    pix = row_i * w + col_i
    xy = bev_pixel_xy_ego(cfg, dev).reshape(-1, 2)[pix]  # (P, 2)
    box = boxes[qb, qn][pair]
    dx, dy = xy[:, 0] - box[:, 0], xy[:, 1] - box[:, 1]
    c, s = torch.cos(box[:, 6]), torch.sin(box[:, 6])
    inside = ((c * dx + s * dy).abs() <= box[:, 3] / 2) & ((c * dy - s * dx).abs() <= box[:, 4] / 2)
    kind = batch.object_type[qb, qn][pair].clamp(0, len(ObjectType) - 1)
    ch = _FIRST_OBJECT_CHANNEL + kind
    b_of = qb[pair]
    flat = (b_of * out.shape[1] + ch) * (h * w) + pix
    out.view(-1)[flat[inside]] = 1.0


BEV_RGB = (
    (90, 90, 96),
    (150, 150, 160),
    (240, 240, 240),
    (230, 210, 120),
    (60, 130, 240),
    (245, 130, 40),
    (170, 90, 240),
    (160, 160, 160),
    (220, 60, 60),
    (255, 40, 40),
)
"""A colour per channel for pictures (later channels paint over earlier ones)."""


def bev_to_rgb(bev: Tensor, background: tuple[int, int, int] = (30, 32, 36)) -> Tensor:
    """``(B, K, H, W)`` raster to ``(B, H, W, 3)`` uint8 picture, for humans."""
    b_n, k, h, w = bev.shape
    img = (
        torch.tensor(background, dtype=torch.uint8, device=bev.device).expand(b_n, h, w, 3).clone()
    )
    order = [0, 3, 8, 1, 2, 9, 7, 4, 6, 5]  # road first, then paint, then agents on top
    for ch in order[:k]:
        colour = torch.tensor(BEV_RGB[ch], dtype=torch.uint8, device=bev.device)
        img[bev[:, ch] > 0.5] = colour
    return img
