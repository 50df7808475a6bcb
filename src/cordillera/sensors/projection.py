"""Projection and grounding geometry: points and 3D boxes into every camera of a rig.

All functions are batched torch (float32 by default), device-agnostic, and loop over neither
cameras nor boxes. Frames and pixel conventions are those of :mod:`cordillera.sensors.rig`.
A 3D box is ``(x, y, z, length, width, height, yaw)``: centre, size along its own x / y / z, and
yaw counter-clockwise about z, in whatever frame its centre is given (world or ego).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from cordillera.sensors.rig import CameraRig

NEAR_M = 0.1
"""Default near plane, metres along the optical axis: points closer are 'behind' the camera."""

# Unit-cube corners: bit 0 -> x sign, bit 1 -> y sign, bit 2 -> z sign.
_CORNER_SIGNS = torch.tensor(
    [[(i & 1) * 2 - 1, ((i >> 1) & 1) * 2 - 1, ((i >> 2) & 1) * 2 - 1] for i in range(8)],
    dtype=torch.float32,
)
# The 12 box edges as corner index pairs (corners that differ in exactly one bit).
BOX_EDGES = torch.tensor(
    [[i, i | (1 << b)] for i in range(8) for b in range(3) if not i & (1 << b)], dtype=torch.long
)


@dataclass(frozen=True, eq=False)
class RigTensors:
    """A rig's calibration as tensors on one device.

    Attributes:
        intrinsics: ``(C, 3, 3)`` K matrices.
        camera_to_ego: ``(C, 4, 4)``; ego_to_camera: ``(C, 4, 4)`` its inverse.
        size_wh_px: ``(C, 2)`` image width and height in pixels.
    """

    intrinsics: Tensor
    camera_to_ego: Tensor
    ego_to_camera: Tensor
    size_wh_px: Tensor

    @staticmethod
    def from_rig(
        rig: CameraRig, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> RigTensors:
        c2e = torch.as_tensor(rig.camera_to_ego(), dtype=torch.float64)
        e2c = torch.linalg.inv(c2e)  # in float64 so the float32 result is exact to rounding
        wh = [[c.width_px, c.height_px] for c in rig.cameras]
        return RigTensors(
            intrinsics=torch.as_tensor(rig.intrinsics(), dtype=dtype, device=device),
            camera_to_ego=c2e.to(device=device, dtype=dtype),
            ego_to_camera=e2c.to(device=device, dtype=dtype),
            size_wh_px=torch.tensor(wh, dtype=dtype, device=device),
        )


def ego_to_world_points(xyz_ego_m: Tensor, ego_pose_world: Tensor) -> Tensor:
    """``(B, ..., 3)`` ego-frame points into the world frame of planar ego poses ``(B, 3)``
    ``(x_m, y_m, yaw_rad)`` (z passes through unchanged)."""
    shape = (-1,) + (1,) * (xyz_ego_m.dim() - 2)
    c = torch.cos(ego_pose_world[:, 2]).view(shape)
    s = torch.sin(ego_pose_world[:, 2]).view(shape)
    x, y = xyz_ego_m[..., 0], xyz_ego_m[..., 1]
    return torch.stack(
        [
            c * x - s * y + ego_pose_world[:, 0].view(shape),
            s * x + c * y + ego_pose_world[:, 1].view(shape),
            xyz_ego_m[..., 2],
        ],
        -1,
    )


def world_to_ego_points(xyz_world_m: Tensor, ego_pose_world: Tensor) -> Tensor:
    """Inverse of :func:`ego_to_world_points`: ``(B, ..., 3)`` world points into the ego frame."""
    shape = (-1,) + (1,) * (xyz_world_m.dim() - 2)
    c = torch.cos(ego_pose_world[:, 2]).view(shape)
    s = torch.sin(ego_pose_world[:, 2]).view(shape)
    dx = xyz_world_m[..., 0] - ego_pose_world[:, 0].view(shape)
    dy = xyz_world_m[..., 1] - ego_pose_world[:, 1].view(shape)
    return torch.stack([c * dx + s * dy, -s * dx + c * dy, xyz_world_m[..., 2]], -1)


def world_to_ego_boxes(boxes_world: Tensor, ego_pose_world: Tensor) -> Tensor:
    """``(B, N, 7)`` world boxes into the ego frame of poses ``(B, 3)`` (yaw wrapped to ±π)."""
    centre = world_to_ego_points(boxes_world[..., :3], ego_pose_world)
    yaw = boxes_world[..., 6] - ego_pose_world[:, 2:3]
    yaw = torch.atan2(torch.sin(yaw), torch.cos(yaw))
    return torch.cat([centre, boxes_world[..., 3:6], yaw[..., None]], -1)


def box_corners(boxes: Tensor) -> Tensor:
    """``(..., 8, 3)`` corners of boxes ``(..., 7)``, in the boxes' frame. Corner ``i`` has the
    signs of bits 0/1/2 of ``i`` along the box's own x / y / z."""
    signs = _CORNER_SIGNS.to(device=boxes.device, dtype=boxes.dtype)
    local = signs * (boxes[..., None, 3:6] / 2)  # (..., 8, 3)
    c = torch.cos(boxes[..., 6])[..., None]
    s = torch.sin(boxes[..., 6])[..., None]
    x = c * local[..., 0] - s * local[..., 1] + boxes[..., None, 0]
    y = s * local[..., 0] + c * local[..., 1] + boxes[..., None, 1]
    return torch.stack([x, y, local[..., 2] + boxes[..., None, 2]], -1)


def ego_to_camera_points(xyz_ego_m: Tensor, rig_t: RigTensors) -> Tensor:
    """``(..., P, 3)`` ego points into every camera: ``(..., C, P, 3)`` camera-frame metres."""
    r = rig_t.ego_to_camera[:, :3, :3]  # (C, 3, 3)
    t = rig_t.ego_to_camera[:, :3, 3]  # (C, 3)
    return torch.einsum("cij,...pj->...cpi", r, xyz_ego_m) + t[:, None, :]


def camera_to_pixels(
    xyz_cam_m: Tensor, rig_t: RigTensors, near_m: float = NEAR_M
) -> tuple[Tensor, Tensor, Tensor]:
    """Pinhole projection of camera-frame points ``(..., C, P, 3)``.

    Returns:
        uv_px ``(..., C, P, 2)`` (meaningless where not in front), depth_m ``(..., C, P)`` (z in
        the camera frame), in_front ``(..., C, P)`` bool (``depth_m > near_m``).
    """
    z = xyz_cam_m[..., 2]
    in_front = z > near_m
    zs = torch.where(in_front, z, torch.ones_like(z))  # avoid inf/NaN behind the camera
    k = rig_t.intrinsics  # (C, 3, 3), broadcast over the leading batch dims below
    u = k[:, 0, 0, None] * xyz_cam_m[..., 0] / zs + k[:, 0, 2, None]
    v = k[:, 1, 1, None] * xyz_cam_m[..., 1] / zs + k[:, 1, 2, None]
    return torch.stack([u, v], -1), z, in_front


def project_points(
    xyz_ego_m: Tensor, rig_t: RigTensors, near_m: float = NEAR_M
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Ego-frame points ``(..., P, 3)`` into the pixels of every camera.

    Returns:
        uv_px ``(..., C, P, 2)``, depth_m ``(..., C, P)``, in_front ``(..., C, P)`` and
        in_image ``(..., C, P)`` (in front and inside ``[0, W) x [0, H)``).
    """
    uv, z, front = camera_to_pixels(ego_to_camera_points(xyz_ego_m, rig_t), rig_t, near_m)
    wh = rig_t.size_wh_px[:, None, :]  # (C, 1, 2)
    inside = front & (uv >= 0).all(-1) & (uv < wh).all(-1)
    return uv, z, front, inside


def pixel_rays_ego(rig_t: RigTensors, height_px: int, width_px: int) -> tuple[Tensor, Tensor]:
    """Rays through every pixel centre.

    Returns:
        origin_ego_m ``(C, 3)`` camera centres and dir_ego ``(C, H, W, 3)`` directions scaled so
        that their camera-frame z is 1: a ray parameter ``t`` *is* the depth in metres.
    """
    dev, dt = rig_t.intrinsics.device, rig_t.intrinsics.dtype
    v, u = torch.meshgrid(
        torch.arange(height_px, device=dev, dtype=dt) + 0.5,
        torch.arange(width_px, device=dev, dtype=dt) + 0.5,
        indexing="ij",
    )
    k = rig_t.intrinsics
    x = (u[None] - k[:, 0, 2, None, None]) / k[:, 0, 0, None, None]  # (C, H, W)
    y = (v[None] - k[:, 1, 2, None, None]) / k[:, 1, 1, None, None]
    d_cam = torch.stack([x, y, torch.ones_like(x)], -1)  # (C, H, W, 3)
    d_ego = torch.einsum("cij,chwj->chwi", rig_t.camera_to_ego[:, :3, :3], d_cam)
    return rig_t.camera_to_ego[:, :3, 3], d_ego


def clipped_box_points(corners_cam_m: Tensor, near_m: float = NEAR_M) -> tuple[Tensor, Tensor]:
    """Vertices of boxes clipped to the half-space ``z >= near_m`` (camera frame).

    The clipped solid's vertices are the endpoints of its 12 edges after each edge is clipped
    at the near plane, so its projection is the hull of those points' projections and never
    flips through infinity for corners behind the camera.

    Args:
        corners_cam_m: ``(..., 8, 3)`` box corners in a camera frame.

    Returns:
        points ``(..., 24, 3)`` (two per edge) and keep ``(..., 24)`` (False for edges entirely
        behind the near plane).
    """
    e = BOX_EDGES.to(corners_cam_m.device)
    a = corners_cam_m[..., e[:, 0], :]  # (..., 12, 3)
    b = corners_cam_m[..., e[:, 1], :]
    za, zb = a[..., 2:3], b[..., 2:3]
    # Where an edge crosses the plane, t is the fraction from a to the crossing.
    t = (near_m - za) / torch.where((zb - za).abs() > 1e-9, zb - za, torch.ones_like(za))
    cross = a + t.clamp(0, 1) * (b - a)
    a_in, b_in = za >= near_m, zb >= near_m
    a2 = torch.where(a_in, a, cross)
    b2 = torch.where(b_in, b, cross)
    keep = (a_in | b_in)[..., 0]
    return torch.cat([a2, b2], -2), torch.cat([keep, keep], -1)


def _pixels(xyz: Tensor, k: Tensor, near_m: float) -> tuple[Tensor, Tensor]:
    """Pinhole ``(u, v)`` of camera-frame points ``(3, ...)`` with depth clamped to ``near_m``;
    ``k`` broadcasts against ``xyz[0]`` as ``(..., 3, 3)``."""
    z = xyz[2].clamp_min(near_m)
    u = k[..., 0, 0] * xyz[0] / z + k[..., 0, 2]
    v = k[..., 1, 1] * xyz[1] / z + k[..., 1, 2]
    return u, v


def project_boxes(
    boxes_ego: Tensor, rig_t: RigTensors, near_m: float = NEAR_M
) -> tuple[Tensor, Tensor]:
    """2D boxes of ego-frame 3D boxes in every camera, near-plane clipped, image clipped.

    Args:
        boxes_ego: ``(..., N, 7)`` boxes in the ego frame.

    Returns:
        bbox_xyxy_px ``(..., C, N, 4)`` float ``(x0, y0, x1, y1)`` clipped to ``[0, W] x [0, H]``
        (zeros where not visible), and in_view ``(..., C, N)`` bool: part of the box is in
        front of the near plane and its projection overlaps the image with positive area.
    """
    corners = box_corners(boxes_ego)  # (..., N, 8, 3)
    cam = ego_to_camera_points(corners.flatten(-3, -2), rig_t)  # (..., C, N*8, 3)
    # Coordinate- and corner-major (3, 8, ..., C, N): elementwise work on long contiguous rows,
    # and the min / max over corners reduce a leading dim.
    cam = cam.unflatten(-2, (boxes_ego.shape[-2], 8)).movedim(-2, 0).movedim(-1, 0).contiguous()
    k = rig_t.intrinsics[:, None]  # (C, 1, 3, 3)
    front = cam[2] >= near_m  # (8, ..., C, N)
    u, v = _pixels(cam, k, near_m)
    # Masked corners get +-1e30 added: exact for kept ones, and far cheaper than where().
    off = (1 - front.view(torch.uint8).to(u.dtype)) * 1e30
    x0, y0 = (u + off).amin(0), (v + off).amin(0)
    x1, y1 = (u - off).amax(0), (v - off).amax(0)
    keep = front.any(0)
    # Boxes that straddle the near plane (a few percent) also reach the points where their
    # edges cross it, which bound the clipped solid's projection (see clipped_box_points).
    cut = torch.nonzero(keep & ~front.all(0), as_tuple=True)
    if len(cut[0]):
        cam_cut = cam[(slice(None), slice(None), *cut)]  # (3, 8, S)
        e = BOX_EDGES.to(cam.device)
        a, b = cam_cut[:, e[:, 0]], cam_cut[:, e[:, 1]]  # (3, 12, S)
        za, zb = a[2], b[2]
        dz = torch.where((zb - za).abs() > 1e-9, zb - za, torch.ones_like(za))
        cross = a + ((near_m - za) / dz).clamp(0, 1) * (b - a)
        k_cut = rig_t.intrinsics[cut[-2]]  # (S, 3, 3)
        cu, cv = _pixels(cross, k_cut, near_m)
        off = (1 - ((za >= near_m) ^ (zb >= near_m)).view(torch.uint8).to(u.dtype)) * 1e30
        x0[cut] = torch.minimum(x0[cut], (cu + off).amin(0))
        y0[cut] = torch.minimum(y0[cut], (cv + off).amin(0))
        x1[cut] = torch.maximum(x1[cut], (cu - off).amax(0))
        y1[cut] = torch.maximum(y1[cut], (cv - off).amax(0))
    w = rig_t.size_wh_px[:, 0, None]
    h = rig_t.size_wh_px[:, 1, None]
    box = torch.stack(
        [
            x0.clamp(min=0).minimum(w),
            y0.clamp(min=0).minimum(h),
            x1.clamp(max=w).clamp(min=0),
            y1.clamp(max=h).clamp(min=0),
        ],
        -1,
    )
    in_view = keep & (box[..., 2] > box[..., 0]) & (box[..., 3] > box[..., 1])
    return box * in_view[..., None].view(torch.uint8).to(box.dtype), in_view


def visible_fraction(object_index: Tensor, footprint_px: Tensor) -> Tensor:
    """Fraction of each object's silhouette that is visible in each camera.

    Definition: ``visible pixels / footprint pixels`` where *visible pixels* count the object's
    id in the rendered per-pixel object map (so occluders in front of it are subtracted) and
    *footprint pixels* count the pixels whose ray hits the object's box at all, i.e. the
    silhouette it would have alone in an empty world (clipped to the image; the rasterizer
    returns it as ``CameraFrames.footprint_px``).

    Args:
        object_index: ``(B, C, H, W)`` int object index per pixel, -1 for none.
        footprint_px: ``(B, C, N)`` int silhouette pixel counts.

    Returns:
        ``(B, C, N)`` float32 in [0, 1]; 0 where the footprint is empty.
    """
    b, c, n = footprint_px.shape
    idx = object_index.flatten(2).long()  # (B, C, HW)
    hit = idx >= 0
    flat = (torch.arange(b * c, device=idx.device).view(b, c, 1) * n + idx.clamp_min(0))[hit]
    visible = torch.bincount(flat, minlength=b * c * n).view(b, c, n)
    fp = footprint_px.to(torch.float32)
    return torch.where(fp > 0, visible.to(torch.float32) / fp.clamp_min(1), torch.zeros_like(fp))
