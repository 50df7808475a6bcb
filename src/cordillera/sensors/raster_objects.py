"""Exact ray casting of oriented boxes, only where they can appear.

Every box is projected (near-plane clipped) to a screen rectangle per camera; only the pixels
inside those rectangles become (pixel, box) candidate pairs, enumerated with a ragged arange.
Each pair is a ray–box slab test in the box's own frame; the nearest hit per pixel wins via a
``scatter_reduce(amin)`` on an int32 key ``depth_cm << 16 | box``, so ties break towards the
lower box index and the output is deterministic.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from cordillera.sensors.projection import project_boxes
from cordillera.sensors.raster_setup import RigRaster

NO_KEY = torch.iinfo(torch.int32).max
_MAX_DEPTH_CM = 32767  # 15 bits of the int32 key


@dataclass(frozen=True, eq=False)
class BoxHits:
    """Visible box surface per pixel after occlusion, for one batch of frames.

    Attributes:
        pixel: ``(K,)`` int64 flat index into ``(B * C * H * W)`` of each winning pixel.
        box: ``(K,)`` int64 index of the box seen there (into the renderer's box list).
        depth_m: ``(K,)`` float32 camera depth of the hit.
        face: ``(K,)`` int64 face hit: 0 +x, 1 -x, 2 +y, 3 -y, 4 +z (top), 5 -z (box frame).
        edge: ``(K,)`` bool, the hit lies within about one pixel of a box edge.
        footprint_px: ``(B, C, M)`` int64 pixels whose ray hits each box, ignoring occlusion.
    """

    pixel: Tensor
    box: Tensor
    depth_m: Tensor
    face: Tensor
    edge: Tensor
    footprint_px: Tensor


def _ragged_rect_pixels(rect: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Pixels inside integer rectangles ``(Q, 4)`` ``[x0, y0, x1, y1)``.

    Returns ``(pair, col, row)``, each ``(P,)`` int64: for every pixel of every rectangle, the
    rectangle's index and the pixel's column and row.
    """
    w = rect[:, 2] - rect[:, 0]
    counts = w * (rect[:, 3] - rect[:, 1])
    pair = torch.repeat_interleave(torch.arange(len(rect), device=rect.device), counts)
    starts = torch.cumsum(counts, 0) - counts
    local = torch.arange(len(pair), device=rect.device) - starts[pair]
    wp = w[pair]
    row = torch.div(local, wp, rounding_mode="floor")
    col = local - row * wp + rect[pair, 0]
    return pair, col, row + rect[pair, 1]


# Rows of the (F, Q) per-pair feature table built by _pair_features.
_M, _A, _B, _W, _X0, _Y0 = 0, 9, 12, 15, 16, 17
_NUM_FEATURES = 18


def _pair_features(boxes: Tensor, qc: Tensor, rect: Tensor, rr: RigRaster) -> Tensor:
    """``(18, Q)`` float32 per (camera, box) pair, one feature per row so that gathering them
    per pixel gives contiguous vectors.

    Rows 0-8: the 3x3 matrix (column-major) taking pixel ``(col, row, 1)`` to the pixel-centre
    ray direction in the box frame, camera-depth parameterised (intrinsics, the +0.5 pixel
    centre, camera-to-ego and ego-to-box rotations folded together); rows 9-11 and 12-14: the
    slab planes ``-half - o`` and ``half - o`` (``o``: camera centre in the box frame); rows
    15-17: the pair's rectangle width, x0 and y0 in pixels.
    """
    k = rr.rig_t.intrinsics[qc]  # (Q, 3, 3)
    pix_to_cam = torch.zeros_like(k)
    pix_to_cam[:, 0, 0] = 1 / k[:, 0, 0]
    pix_to_cam[:, 1, 1] = 1 / k[:, 1, 1]
    pix_to_cam[:, 0, 2] = (0.5 - k[:, 0, 2]) / k[:, 0, 0]
    pix_to_cam[:, 1, 2] = (0.5 - k[:, 1, 2]) / k[:, 1, 1]
    pix_to_cam[:, 2, 2] = 1.0
    cos, sin = torch.cos(boxes[:, 6]), torch.sin(boxes[:, 6])
    ego_to_box = torch.zeros_like(k)
    ego_to_box[:, 0, 0], ego_to_box[:, 0, 1] = cos, sin
    ego_to_box[:, 1, 0], ego_to_box[:, 1, 1] = -sin, cos
    ego_to_box[:, 2, 2] = 1.0
    m = ego_to_box @ rr.rig_t.camera_to_ego[qc, :3, :3] @ pix_to_cam  # (Q, 3, 3)
    o = (ego_to_box @ (rr.ray_origin_ego[qc] - boxes[:, :3])[..., None])[..., 0]
    half = boxes[:, 3:6] / 2
    geo = rect.to(m.dtype)
    return torch.cat(
        [
            m.transpose(1, 2).reshape(-1, 9),
            -half - o,
            half - o,
            (geo[:, 2] - geo[:, 0])[:, None],
            geo[:, :2],
        ],
        1,
    ).T.contiguous()


def _slab(f: Tensor, col: Tensor, row: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Entry and exit ray parameters per axis, ``([near_x, near_y, near_z], [far_x, ...])``, of
    the rays through pixels ``(col, row)`` (float ``(P,)``) against boxes with features ``f``
    ``(18, P)``. Axis-parallel rays give 1/d = +-inf, which the min/max handle."""
    near, far = [], []
    for a in range(3):  # the three slabs, on contiguous (P,) vectors
        d = torch.addcmul(torch.addcmul(f[_M + 6 + a], f[_M + a], col), f[_M + 3 + a], row)
        inv = d.reciprocal_()
        t1 = f[_A + a] * inv
        t2 = f[_B + a] * inv
        near.append(torch.minimum(t1, t2))
        far.append(torch.maximum(t1, t2))
    return near, far


def cast_boxes(
    boxes_ego: Tensor,
    valid: Tensor,
    rr: RigRaster,
    near_m: float,
    max_range_m: float,
    max_pairs: int,
    with_footprint: bool = True,
) -> BoxHits:
    """Ray-cast ego-frame boxes ``(B, M, 7)`` (``valid`` ``(B, M)``) into every camera.

    Boxes are culled beyond ``max_range_m`` and where no part is in front of the near plane.
    Boxes are expected to stand on or above the ground plane, so a box hit is always in front
    of the ground and no ground depth test is needed. ``footprint_px`` is all zeros unless
    ``with_footprint``.
    """
    dev = boxes_ego.device
    b_n, m_n = valid.shape
    c_n, h, w = rr.num_cameras, rr.height_px, rr.width_px
    hw = h * w
    keep = valid & (boxes_ego[..., :2].norm(dim=-1) <= max_range_m)
    bbox, in_view = project_boxes(boxes_ego, rr.rig_t, near_m)  # (B, C, M, 4), (B, C, M)
    idx = torch.nonzero(in_view & keep[:, None, :])  # (Q, 3) rows (b, c, m)
    footprint = torch.zeros(b_n * c_n * m_n, dtype=torch.int64, device=dev)
    if len(idx) == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=dev)
        return BoxHits(
            empty,
            empty,
            torch.zeros(0, device=dev),
            empty,
            torch.zeros(0, dtype=torch.bool, device=dev),
            footprint.view(b_n, c_n, m_n),
        )
    qb, qc, qm = idx.unbind(1)
    r = bbox[qb, qc, qm]
    rect = torch.stack([r[:, 0].floor(), r[:, 1].floor(), r[:, 2].ceil(), r[:, 3].ceil()], 1)
    rect[:, 2] = rect[:, 2].clamp(max=w)
    rect[:, 3] = rect[:, 3].clamp(max=h)
    feats = _pair_features(boxes_ego[qb, qm], qc, rect, rr)  # (18, Q)
    counts = ((rect[:, 2] - rect[:, 0]) * (rect[:, 3] - rect[:, 1])).to(torch.int64)
    out_base = (qb * c_n + qc) * hw  # flat offset of each pair's image in the batch
    key_box = qm.to(torch.int32)

    # Chunk the pairs so the per-pair temporaries stay under max_pairs elements.
    cum = torch.cumsum(counts, 0)
    total = int(cum[-1])
    bounds = [0]
    if total > max_pairs:
        cuts = torch.searchsorted(cum, torch.arange(max_pairs, total, max_pairs, device=dev))
        bounds += sorted(set(cuts.tolist()))
    bounds.append(len(idx))
    starts = (cum - counts).to(torch.int32)
    keys, pix_all, pair_all, t_all = [], [], [], []
    buf = torch.full((b_n * c_n * hw,), NO_KEY, dtype=torch.int32, device=dev)
    for lo, hi in itertools.pairwise(bounds):  # usually one chunk
        if hi <= lo:
            continue
        n_pix = int(cum[hi - 1]) - (int(cum[lo - 1]) if lo > 0 else 0)
        pair = torch.repeat_interleave(
            torch.arange(lo, hi, device=dev), counts[lo:hi], output_size=n_pix
        )
        f = feats.index_select(1, pair)  # (18, P), contiguous rows
        # Pixel of each pair element, in float32 (exact: values stay far below 2^24).
        local = (
            torch.arange(n_pix, dtype=torch.int32, device=dev)
            + (starts[lo] - starts.index_select(0, pair))
        ).to(f.dtype)
        row = torch.floor((local + 0.5) / f[_W])
        col = torch.addcmul(local, row, f[_W], value=-1.0).add_(f[_X0])
        row += f[_Y0]
        near, far = _slab(f, col, row)
        t_near = torch.maximum(torch.maximum(near[0], near[1]), near[2])
        t_far = torch.minimum(torch.minimum(far[0], far[1]), far[2])
        hit_i = torch.nonzero((t_near <= t_far) & (t_near > near_m)).flatten()
        pair, t = pair[hit_i], t_near[hit_i]
        gpix = out_base[pair] + row[hit_i].to(torch.int64) * w + col[hit_i].to(torch.int64)
        if with_footprint:
            per_pair = torch.bincount(pair - lo, minlength=hi - lo)
            footprint.index_add_(0, ((qb * c_n + qc) * m_n + qm)[lo:hi], per_pair)
        key = ((t * 100).to(torch.int32).clamp_(max=_MAX_DEPTH_CM) << 16) | key_box[pair]
        buf.scatter_reduce_(0, gpix, key, "amin")
        keys.append(key)
        pix_all.append(gpix)
        pair_all.append(pair)
        t_all.append(t)
    # One chunk is the common case: skip the concatenation copies then.
    key, gpix, pair, t = (
        x[0] if len(x) == 1 else torch.cat(x) for x in (keys, pix_all, pair_all, t_all)
    )
    win = torch.nonzero(buf[gpix] == key).flatten()
    gpix, pair, t = gpix[win], pair[win], t[win]
    face, edge = _shade_inputs(
        feats.index_select(1, pair), gpix % hw, w, t, 1.3 / rr.focal_px[qc[pair]]
    )
    return BoxHits(
        pixel=gpix,
        box=qm[pair],
        depth_m=t,
        face=face,
        edge=edge,
        footprint_px=footprint.view(b_n, c_n, m_n),
    )


def _shade_inputs(
    f: Tensor, pix: Tensor, width_px: int, t: Tensor, edge_per_m: Tensor
) -> tuple[Tensor, Tensor]:
    """Face hit (0 +x, 1 -x, ... 5 -z) and outline flag of winning hits (features ``f``)."""
    row = torch.div(pix, width_px, rounding_mode="floor")
    col = (pix - row * width_px).to(f.dtype)
    near, _ = _slab(f, col, row.to(f.dtype))
    axis = torch.stack(near, 1).argmax(1)  # the entry face is on the slab entered last
    d = torch.stack(
        [
            torch.addcmul(
                torch.addcmul(f[_M + 6 + a], f[_M + a], col), f[_M + 3 + a], row.to(f.dtype)
            )
            for a in range(3)
        ],
        1,
    )
    half = (f[_B : _B + 3] - f[_A : _A + 3]).T / 2
    o = -(f[_B : _B + 3] + f[_A : _A + 3]).T / 2
    margin = half - (o + t[:, None] * d).abs()  # metres to each pair of side faces
    margin.scatter_(1, axis[:, None], torch.full_like(t[:, None], 1e9))  # ignore own axis
    # Outline: about 1.3 pixels wide at the hit's depth.
    edge = margin.amin(1) < edge_per_m * t
    sign = torch.gather(d, 1, axis[:, None])[:, 0] > 0
    return axis * 2 + sign.to(torch.int64), edge
