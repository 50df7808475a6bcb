"""The batched camera rasterizer: B snapshots × C cameras in a handful of tensor operations.

Per frame batch:

1. **Ground** — every ground pixel's ego-frame hit point is a rig constant
   (:mod:`.raster_setup`); one ``(P, 3) @ (B, 3, 2)`` matmul per mip level maps them to texel
   coordinates of each snapshot's static map, and one int32 gather reads packed RGBA texels
   (:mod:`.ground`). Sky and haze pixels are rig constants too.
2. **Objects and signal heads** — exact ray–box casting restricted to each box's projected
   rectangle, nearest hit per pixel by ``scatter_reduce(amin)`` (:mod:`.raster_objects`),
   shaded by the face hit, with dark outlines.

The world is flat: the ground is the plane ``z_ego = -rig.ego_origin_height_m`` and every box
stands on it (its logged z is ignored), which keeps boxes and road consistent on sloped logs.
Lens distortion is not modelled. Output is deterministic for a given input.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cordillera.scene.types import ObjectType, SignalState
from cordillera.sensors.ground import StaticMap, pack_rgba
from cordillera.sensors.projection import world_to_ego_boxes
from cordillera.sensors.raster_objects import cast_boxes
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


def _palette() -> Tensor:
    """``(2 * K * 6,)`` int32 packed colours: entry ``(edge * K + kind) * 6 + face`` for
    K = 4 object types then 6 signal states (lit heads are not face-shaded)."""
    base = [OBJECT_RGB[ObjectType(i)] for i in range(_NUM_OBJECT_TYPES)]
    base += [SIGNAL_RGB[SignalState(i)] for i in range(len(SIGNAL_RGB))]
    rows = []
    for edge in (False, True):
        for k, rgb in enumerate(base):
            lit = k >= _NUM_OBJECT_TYPES
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
        rgba = self._ground(batch, rr)  # (B, C*H*W) int32

        boxes, kinds, valid, n_obj = self._boxes(batch, rr)
        hits = cast_boxes(
            boxes,
            valid,
            rr,
            cfg.near_m,
            cfg.max_object_range_m,
            cfg.max_pairs,
            with_footprint=cfg.with_object_index,
        )
        palette = self._palettes.get(str(dev))
        if palette is None:
            palette = self._palettes.setdefault(str(dev), _palette().to(dev))
        b_of_hit = hits.pixel // (c_n * h * w)
        kind = kinds[b_of_hit, hits.box]
        colour = palette[
            (
                (hits.edge.to(torch.int64) * (_NUM_OBJECT_TYPES + len(SIGNAL_RGB)) + kind) * 6
                + hits.face
            )
        ]
        flat = rgba.view(-1)
        flat[hits.pixel] = colour
        rgb = rgba.view(torch.uint8).view(b_n, c_n, h, w, 4)[..., :3]

        depth = index = footprint = None
        if cfg.with_depth:
            depth = rr.ground_depth_m.expand(b_n, -1).clone()
            depth.view(-1)[hits.pixel] = hits.depth_m
            depth = depth.view(b_n, c_n, h, w)
        if cfg.with_object_index:
            index = torch.full((b_n * c_n * h * w,), -1, dtype=torch.int32, device=dev)
            is_obj = hits.box < n_obj
            index[hits.pixel[is_obj]] = hits.box[is_obj].to(torch.int32)
            index = index.view(b_n, c_n, h, w)
            footprint = hits.footprint_px[..., :n_obj]
        return CameraFrames(
            rgb=rgb, depth=depth, object_index=index, footprint_px=footprint, camera_names=rig.names
        )

    def _ground(self, batch: RenderBatch, rr: RigRaster) -> Tensor:
        """``(B, C*H*W)`` int32 packed RGBA of sky, haze and textured ground."""
        dev = batch.device
        maps = batch.maps
        b_n = batch.batch_size
        out = rr.base_rgba.expand(b_n, -1).clone()
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
        for group in rr.groups:  # a handful of mip levels
            if len(group.pixel) == 0:
                continue
            lv = group.level
            tex, sizes, offsets = self._level_atlas(maps, lv, dev)
            size = sizes[batch.map_index]  # (B, 2) as (W_l, H_l)
            uv = torch.matmul(group.ground_xy1, affine / float(2**lv))  # (B, P_l, 2)
            uv = torch.minimum(uv.clamp_min_(0), (size - 1).to(uv.dtype)[:, None, :])
            uvi = uv.to(torch.int64)
            flat = uvi[..., 1] * size[:, None, 0] + uvi[..., 0] + offsets[batch.map_index, None]
            out[:, group.pixel] = tex[flat]
        return out

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
            self._atlas[level] = (
                torch.cat([t.flatten() for t in texs]).to(dev),
                sizes,
                torch.cumsum(numel, 0).to(dev),
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
