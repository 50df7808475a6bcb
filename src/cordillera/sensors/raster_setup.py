"""Per-rig precomputation of the camera rasterizer: everything that depends only on the rig.

With a flat ground plane fixed in the ego frame, every pixel's ray, its ground hit point (ego
frame), its ground depth and whether it sees sky are constants of the rig. Per frame, only the
ego pose moves those ground points through the world, so the ground is one affine transform and
one texture gather per pixel (see :mod:`.raster`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from cordillera.errors import ConfigError
from cordillera.sensors.ground import pack_rgba
from cordillera.sensors.projection import RigTensors, pixel_rays_ego
from cordillera.sensors.rig import CameraRig

SKY_HORIZON_RGB = (206, 214, 222)
SKY_ZENITH_RGB = (96, 140, 200)
HAZE_RGB = (168, 174, 170)


@dataclass(frozen=True)
class RasterConfig:
    """Settings of the camera rasterizer.

    Attributes:
        near_m: near plane, metres of camera depth.
        max_object_range_m: boxes farther than this (ego-frame xy distance) are not drawn.
        ground_range_m: ground beyond this distance from the camera is drawn as uniform haze.
        mip_bias: added to the log2 mip level (positive = blurrier, less aliasing).
        max_pairs: most (pixel, box) candidate pairs processed at once (bounds memory).
        with_depth: also return per-pixel depth in metres.
        with_object_index: also return per-pixel object index and silhouette sizes.
        signal_head_height_m: height of the lit traffic-light head's centre above the ground.
    """

    near_m: float = 0.1
    max_object_range_m: float = 120.0
    ground_range_m: float = 150.0
    mip_bias: float = 0.0
    max_pairs: int = 2_000_000
    with_depth: bool = True
    with_object_index: bool = True
    signal_head_height_m: float = 5.0

    def __post_init__(self) -> None:
        if not 0.001 <= self.near_m <= 10.0:
            raise ConfigError(f"near_m {self.near_m!r} not in [0.001, 10]")
        if not 1.0 <= self.max_object_range_m <= 300.0:
            raise ConfigError(
                f"max_object_range_m {self.max_object_range_m!r} not in [1, 300]"
                " (depth keys are quantised to 1 cm below 327 m)"
            )
        if not 1.0 <= self.ground_range_m <= 10000.0:
            raise ConfigError(f"ground_range_m {self.ground_range_m!r} not in [1, 10000]")
        if not -4.0 <= self.mip_bias <= 4.0:
            raise ConfigError(f"mip_bias {self.mip_bias!r} not in [-4, 4]")
        if not 1000 <= self.max_pairs <= 1_000_000_000:
            raise ConfigError(f"max_pairs {self.max_pairs!r} not in [1e3, 1e9]")
        if not 0.5 <= self.signal_head_height_m <= 20.0:
            raise ConfigError(
                f"signal_head_height_m {self.signal_head_height_m!r} not in [0.5, 20]"
            )


@dataclass(frozen=True, eq=False)
class GroundLevelGroup:
    """The ground pixels that sample mip level ``level``.

    Attributes:
        level: mip level.
        pixel: ``(P_l,)`` int64 flat index into the ``(C * H * W)`` pixels of one rig frame.
        ground_xy1: ``(3, P_l)`` float32 rows ``x``, ``y``, ``1`` of each pixel's ego-frame
            ground hit (as rows, so that the per-frame affine map is one matmul whose output
            rows ``u`` and ``v`` are contiguous).
    """

    level: int
    pixel: Tensor
    ground_xy1: Tensor


@dataclass(frozen=True, eq=False)
class RigRaster:
    """Rig constants of the camera rasterizer (see module docstring).

    Attributes:
        num_cameras, height_px, width_px: C, H, W.
        rig_t: the rig as tensors.
        ray_origin_ego: ``(C, 3)`` camera centres, ego frame.
        ray_dir_ego: ``(C * H * W, 3)`` pixel-centre ray directions, ego frame, scaled so the
            ray parameter is the camera depth.
        ground_depth_m: ``(C * H * W,)`` camera depth of the ground hit, ``inf`` for sky.
        base_rgba: ``(C * H * W,)`` int32 packed colour of the sky and haze pixels (ground
            pixels are overwritten every frame).
        groups: ground pixels by mip level.
        ground_z_ego_m: height of the ground plane in the ego frame.
        focal_px: ``(C,)`` mean focal length, for pixel-size-aware outlines.
    """

    num_cameras: int
    height_px: int
    width_px: int
    rig_t: RigTensors
    ray_origin_ego: Tensor
    ray_dir_ego: Tensor
    ground_depth_m: Tensor
    base_rgba: Tensor
    groups: tuple[GroundLevelGroup, ...]
    ground_z_ego_m: float
    focal_px: Tensor


def _lerp_rgb(a: tuple[int, ...], b: tuple[int, ...], w: Tensor) -> Tensor:
    ta = torch.tensor(a, dtype=torch.float32, device=w.device)
    tb = torch.tensor(b, dtype=torch.float32, device=w.device)
    return (ta + (tb - ta) * w[..., None]).round().clamp(0, 255).to(torch.uint8)


def build_rig_raster(
    rig: CameraRig,
    texture_resolution_m: float,
    mip_levels: int,
    config: RasterConfig,
    device: torch.device | str = "cpu",
) -> RigRaster:
    """Precompute the rig constants (milliseconds; cache the result per rig)."""
    h, w = rig.resolution_hw
    c = rig.num_cameras
    rig_t = RigTensors.from_rig(rig, device)
    origin, d = pixel_rays_ego(rig_t, h, w)  # (C, 3), (C, H, W, 3)
    ground_z = -float(rig.ego_origin_height_m)
    dz = d[..., 2]
    oz = origin[:, 2, None, None]
    down = dz < -1e-6
    t = torch.where(
        down,
        (ground_z - oz) / torch.where(down, dz, -torch.ones_like(dz)),
        torch.full_like(dz, math.inf),
    )  # camera depth of the ground hit
    hit_xy = origin[:, None, None, :2] + t[..., None] * d[..., :2]
    hit_xy = torch.where(down[..., None], hit_xy, torch.zeros_like(hit_xy))
    dist = (hit_xy - origin[:, None, None, :2]).norm(dim=-1)
    ground = down & (dist <= config.ground_range_m)
    haze = down & ~ground

    # Sky gradient by elevation angle; haze is a flat band between the ground and the horizon.
    elev = torch.atan2(dz, d[..., :2].norm(dim=-1))
    sky = _lerp_rgb(SKY_HORIZON_RGB, SKY_ZENITH_RGB, (elev / 0.6).clamp(0, 1))
    sky = torch.where(
        haze[..., None], torch.tensor(HAZE_RGB, dtype=torch.uint8, device=sky.device), sky
    )
    base = pack_rgba(sky.cpu().numpy()).to(device).flatten()

    # Mip level from the ground footprint of a pixel: sqrt of the area spanned by the ground
    # hits of its right and lower neighbours (one-sided differences at the image border).
    gx = torch.cat(
        [hit_xy[:, :, 1:] - hit_xy[:, :, :-1], hit_xy[:, :, -1:] - hit_xy[:, :, -2:-1]], 2
    )
    gy = torch.cat([hit_xy[:, 1:] - hit_xy[:, :-1], hit_xy[:, -1:] - hit_xy[:, -2:-1]], 1)
    area = (gx[..., 0] * gy[..., 1] - gx[..., 1] * gy[..., 0]).abs()
    level = torch.log2(area.sqrt().clamp_min(1e-6) / texture_resolution_m) + config.mip_bias
    level = level.round().clamp(0, mip_levels - 1).to(torch.int64)
    flat_ground = ground.flatten()
    flat_level = level.flatten()
    xy1 = torch.cat([hit_xy.flatten(0, 2), torch.ones_like(hit_xy.flatten(0, 2)[:, :1])], 1)
    groups = []
    for lv in range(mip_levels):  # a handful of levels, set up once per rig
        pix = torch.nonzero(flat_ground & (flat_level == lv)).flatten()
        groups.append(GroundLevelGroup(lv, pix, xy1[pix].T.contiguous()))
    k = rig_t.intrinsics
    return RigRaster(
        num_cameras=c,
        height_px=h,
        width_px=w,
        rig_t=rig_t,
        ray_origin_ego=origin,
        ray_dir_ego=d.reshape(-1, 3).contiguous(),
        ground_depth_m=torch.where(ground | haze, t, torch.full_like(t, math.inf)).flatten(),
        base_rgba=base,
        groups=tuple(groups),
        ground_z_ego_m=ground_z,
        focal_px=(k[:, 0, 0] + k[:, 1, 1]) / 2,
    )
