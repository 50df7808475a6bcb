"""The batched camera rasterizer: B snapshots × C cameras in a handful of tensor operations.

Per frame batch:

1. **Ground** — every ground pixel's ego-frame hit point is a rig constant
   (:mod:`.raster_setup`); one ``(B, 2, 3) @ (3, P)`` matmul per mip level maps them to texel
   coordinates of each snapshot's static map, and one int32 gather reads packed RGBA texels
   (:mod:`.ground`). Sky and haze pixels are rig constants too.
2. **Objects and signal heads** — exact ray–box casting restricted to each box's projected
   rectangle, nearest hit per pixel by ``scatter_reduce(amin)`` (:mod:`.raster_objects`),
   shaded by the face hit, with dark outlines, drawn over the ground in place.

The world is flat: the ground is the plane ``z_ego = -rig.ego_origin_height_m`` and every box
stands on it (its logged z is ignored), which keeps boxes and road consistent on sloped logs.
Lens distortion is not modelled. Output is deterministic for a given input.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cordillera.errors import ConfigError
from cordillera.scene.types import ObjectType, SignalState
from cordillera.sensors.ground import StaticMap, pack_rgba
from cordillera.sensors.projection import world_to_ego_boxes
from cordillera.sensors.raster_objects import FrameBuffers, draw_boxes
from cordillera.sensors.raster_setup import RasterConfig, RigRaster, build_rig_raster
from cordillera.sensors.renderer import CameraFrames
from cordillera.sensors.rig import CameraRig
from cordillera.sensors.world import RenderBatch

OBJECT_RGB = {
    ObjectType.VEHICLE: (52, 110, 220),
    ObjectType.PEDESTRIAN: (240, 120, 30),
    ObjectType.CYCLIST: (160, 70, 230),
    ObjectType.OTHER: (150, 150, 150),
}
SIGNAL_RGB = {
    SignalState.UNKNOWN: (70, 70, 70),
    SignalState.RED: (255, 40, 30),
    SignalState.YELLOW: (255, 200, 0),
    SignalState.GREEN: (40, 230, 80),
    SignalState.FLASHING_RED: (255, 90, 80),
    SignalState.FLASHING_YELLOW: (255, 220, 90),
}
# Lambert-like brightness per face (+x, -x, +y, -y, +z top, -z bottom): a fixed light from above
# and slightly ahead-left makes the three visible faces of a box distinguishable.
FACE_SHADE = (0.82, 0.62, 0.72, 0.52, 1.0, 0.4)
EDGE_SHADE = 0.35
SIGNAL_HEAD_LWH_M = (0.5, 0.5, 1.1)
_NUM_OBJECT_TYPES = len(OBJECT_RGB)
_GROUND_CHUNK = 1 << 17  # ground pixels per chunk on CPU (cache-sized temporaries)


def _palette() -> Tensor:
    """``(K * 12,)`` int32 packed colours: entry ``kind * 12 + edge * 6 + face`` for K = 4
    object types then 6 signal states (lit heads are not face-shaded), so that the shade code
    of :func:`~.raster_objects.draw_boxes` with ``box_tag = kind * 12`` indexes it."""
    base = [OBJECT_RGB[ObjectType(i)] for i in range(_NUM_OBJECT_TYPES)]
    base += [SIGNAL_RGB[SignalState(i)] for i in range(len(SIGNAL_RGB))]
    rows = []
    for k, rgb in enumerate(base):
        lit = k >= _NUM_OBJECT_TYPES
        for edge in (False, True):
            for face in range(6):
                s = 1.0 if lit else FACE_SHADE[face]
                s *= EDGE_SHADE if edge and not lit else 1.0
                rows.append([min(255, round(c * s)) for c in rgb])
    return pack_rgba(rows)


class Rasterizer:
    """The default :class:`~cordillera.sensors.renderer.Renderer`: a flat-world rasterizer.

    Rig constants are cached per (rig, device, texture resolution, mip levels); static maps are
    moved to the batch's device once and cached by identity.
    """

    name = "raster"

    def __init__(self, config: RasterConfig | None = None) -> None:
        self.config = config or RasterConfig()
        self._rigs: dict[tuple[CameraRig, str, float, int], RigRaster] = {}
        self._palettes: dict[str, Tensor] = {}
        self._atlas_maps: tuple[StaticMap, ...] | None = None
        self._atlas_device = ""
        self._atlas: dict[int, tuple[Tensor, Tensor, Tensor]] = {}

    def rig_raster(
        self, rig: CameraRig, device: torch.device, resolution_m: float, mip_levels: int
    ) -> RigRaster:
        key = (rig, str(device), resolution_m, mip_levels)
        if key not in self._rigs:
            self._rigs[key] = build_rig_raster(rig, resolution_m, mip_levels, self.config, device)
        return self._rigs[key]

    def render(self, batch: RenderBatch, rig: CameraRig) -> CameraFrames:
        """Render every camera of ``rig`` for every snapshot of ``batch`` (see module doc)."""
        cfg = self.config
        dev = batch.device
        m0 = batch.maps[0]
        rr = self.rig_raster(rig, dev, m0.resolution_m, len(m0.levels_rgba))
        b_n, c_n, h, w = batch.batch_size, rr.num_cameras, rr.height_px, rr.width_px
        n_px = b_n * c_n * h * w
        # Flat outputs with one extra sink element (see raster_objects.FrameBuffers).
        rgba = self._ground(batch, rr)
        depth = index = footprint = None
        if cfg.with_depth:
            depth = torch.empty(n_px + 1, dtype=torch.float32, device=dev)
            depth[:-1].view(b_n, -1).copy_(rr.ground_depth_m.expand(b_n, -1))
        if cfg.with_object_index:
            index = torch.full((n_px + 1,), -1, dtype=torch.int32, device=dev)
        boxes, kinds, valid, n_obj = self._boxes(batch, rr)
        palette = self._palettes.get(str(dev))
        if palette is None:
            palette = self._palettes.setdefault(str(dev), _palette().to(dev))
        fp = draw_boxes(
            boxes,
            valid,
            rr,
            FrameBuffers(rgba, depth, index),
            palette,
            kinds * 12,
            near_m=cfg.near_m,
            max_range_m=cfg.max_object_range_m,
            max_pairs=cfg.max_pairs,
            num_ids=n_obj,
            with_footprint=cfg.with_object_index,
        )
        rgb = rgba[:-1].view(torch.uint8).view(b_n, c_n, h, w, 4)[..., :3]
        if depth is not None:
            depth = depth[:-1].view(b_n, c_n, h, w)
        if index is not None:
            index = index[:-1].view(b_n, c_n, h, w)
            footprint = fp[..., :n_obj]
        return CameraFrames(
            rgb=rgb, depth=depth, object_index=index, footprint_px=footprint, camera_names=rig.names
        )

    def _ground(self, batch: RenderBatch, rr: RigRaster) -> Tensor:
        """``(B * C * H * W + 1,)`` int32 packed RGBA of sky, haze and textured ground, and a
        last sink element."""
        dev = batch.device
        maps = batch.maps
        b_n = batch.batch_size
        flat = torch.empty(b_n * len(rr.base_rgba) + 1, dtype=torch.int32, device=dev)
        out = flat[:-1].view(b_n, -1)
        out.copy_(rr.base_rgba.expand(b_n, -1))
        pose = batch.ego_pose_world
        cos, sin = torch.cos(pose[:, 2]), torch.sin(pose[:, 2])
        origin = torch.tensor([m.origin_xy_world_m for m in maps], dtype=torch.float32, device=dev)[
            batch.map_index
        ]  # (B, 2)
        # Ego ground (x, y, 1) -> world offset from the texture origin, in level-0 texels.
        res0 = torch.tensor([m.resolution_m for m in maps], dtype=torch.float32, device=dev)[
            batch.map_index
        ]
        affine = (
            torch.stack(
                [
                    torch.stack([cos, sin], 1),
                    torch.stack([-sin, cos], 1),
                    pose[:, :2] - origin,
                ],
                1,
            )
            / res0[:, None, None]
        )  # (B, 3, 2): [u, v] = [x, y, 1] @ affine
        affine_t = affine.transpose(1, 2)
        for group in rr.groups:  # a handful of mip levels
            if len(group.pixel) == 0:
                continue
            lv = group.level
            tex, sizes, offsets = self._level_atlas(maps, lv, dev)
            size = sizes[batch.map_index]  # (B, 2) as (W_l, H_l)
            bound = (size - 1).to(affine.dtype)[:, :, None]
            width = size[:, 0, None].to(torch.int32)
            off = offsets[batch.map_index, None]
            # (2, 3) @ (3, P) gives contiguous u and v rows (and ~4x faster than (P, 3) @ (3, 2)
            # with the same values).
            a_l = affine_t / float(2**lv)
            # A few snapshots at a time on CPU, so that the temporaries stay in cache.
            step = max(1, _GROUND_CHUNK // len(group.pixel)) if dev.type == "cpu" else b_n
            for b0 in range(0, b_n, step):
                b1 = min(b_n, b0 + step)
                uv = torch.matmul(a_l[b0:b1], group.ground_xy1)  # (b, 2, P_l)
                torch.minimum(uv.clamp_min_(0), bound[b0:b1], out=uv)
                # int32 texel arithmetic (the atlas has fewer than 2^31 texels): float to int64
                # conversion is not vectorised on CPU and costs ~5x more.
                uvi = uv.to(torch.int32)
                idx = uvi[:, 1] * width[b0:b1]
                idx += uvi[:, 0]
                idx += off[b0:b1]
                texels = tex.index_select(0, idx.view(-1)).view(idx.shape)
                out[b0:b1].index_copy_(1, group.pixel, texels)
        return flat

    def _level_atlas(
        self, maps: tuple[StaticMap, ...], level: int, dev: torch.device
    ) -> tuple[Tensor, Tensor, Tensor]:
        """All maps' level-``level`` textures as one flat int32 tensor, with ``(M, 2)`` sizes
        ``(W, H)`` and ``(M,)`` flat offsets. Cached for the last maps tuple seen (the
        simulator renders the same maps every step)."""
        same = (
            self._atlas_maps is not None
            and len(self._atlas_maps) == len(maps)
            and all(a is b for a, b in zip(self._atlas_maps, maps, strict=True))
        )
        if not same or self._atlas_device != str(dev):
            self._atlas_maps, self._atlas_device, self._atlas = maps, str(dev), {}
        if level not in self._atlas:
            texs = [m.levels_rgba[min(level, len(m.levels_rgba) - 1)] for m in maps]
            sizes = torch.tensor(
                [[t.shape[1], t.shape[0]] for t in texs], dtype=torch.int64, device=dev
            )
            numel = torch.tensor([0] + [t.numel() for t in texs[:-1]], dtype=torch.int64)
            if int(numel.sum()) + texs[-1].numel() >= 2**31:
                raise ConfigError("ground textures of one batch exceed 2^31 texels")
            self._atlas[level] = (
                torch.cat([t.flatten() for t in texs]).to(dev),
                sizes,
                torch.cumsum(numel, 0).to(device=dev, dtype=torch.int32),
            )
        return self._atlas[level]

    def _boxes(self, batch: RenderBatch, rr: RigRaster) -> tuple[Tensor, Tensor, Tensor, int]:
        """Objects then signal heads as ego-frame boxes standing on the ground plane.

        Returns boxes ``(B, N + S, 7)``, palette kind ``(B, N + S)``, valid ``(B, N + S)``, N.
        """
        cfg = self.config
        boxes = world_to_ego_boxes(batch.boxes_world, batch.ego_pose_world)
        boxes[..., 2] = rr.ground_z_ego_m + boxes[..., 5] / 2
        s_n = batch.signal_xyz_world.shape[1]
        b_n = batch.batch_size
        head = torch.tensor(SIGNAL_HEAD_LWH_M, dtype=torch.float32, device=batch.device)
        sig_world = torch.cat(
            [
                batch.signal_xyz_world[..., :2],
                torch.zeros((b_n, s_n, 1), device=batch.device),
                head.expand(b_n, s_n, 3),
                torch.zeros((b_n, s_n, 1), device=batch.device),
            ],
            -1,
        )
        sig = world_to_ego_boxes(sig_world, batch.ego_pose_world)
        sig[..., 2] = rr.ground_z_ego_m + cfg.signal_head_height_m
        kinds = torch.cat(
            [
                batch.object_type.clamp(0, _NUM_OBJECT_TYPES - 1),
                _NUM_OBJECT_TYPES + batch.signal_state.clamp(0, len(SIGNAL_RGB) - 1),
            ],
            1,
        )
        valid = torch.cat([batch.object_valid, batch.signal_valid], 1)
        return torch.cat([boxes, sig], 1), kinds, valid, batch.num_objects
