"""Exact ray casting of oriented boxes, only where they can appear.

Every box is projected (near-plane clipped) to a screen rectangle per camera; each rectangle
row is cut into tiles of ``_TILE`` pixels, and each (tile, box) pair is a ray–box slab test in
the box's own frame for the tile's pixels. Tiles make every per-pixel operation a broadcast of
per-tile values against a ``(tiles, _TILE)`` grid, so nothing is gathered per pixel; the price
is the padding at the right end of each row (masked out as misses).

The nearest hit per pixel wins via a ``scatter_reduce(amin)`` on an int32 key
``depth_cm << 16 | box``, so ties break towards the lower box index and the output is
deterministic. Tiles are processed in cache-sized chunks of whole images; once an image's
boxes are all cast, the candidates whose key equals their pixel's minimum are the winners and
are written straight into the output buffers (the others into a sink element).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from cordillera.errors import ConfigError
from cordillera.sensors.projection import project_boxes
from cordillera.sensors.raster_setup import RigRaster

NO_KEY = torch.iinfo(torch.int32).max  # key of a candidate that misses its box
_EMPTY = NO_KEY - 1  # minimum key of a pixel that no box hits: never equal to a candidate's key
_MAX_DEPTH_CM = 32767  # 15 bits of the int32 key
_MAX_BOXES = 65535  # 16 bits of the key; box 65535 with the largest depth would equal NO_KEY
# Tile width in pixels: 16 float32 lanes fill an AVX-512 register, so broadcast operations on
# (tiles, 16) grids stay vectorised, while the padding wasted per rectangle row stays small.
_TILE = 16
# Candidates per chunk on the CPU: the ~20 live (chunk,) temporaries then fit in L2, which is
# 3-4x faster per element than streaming million-element temporaries through memory.
_CPU_CHUNK = 1 << 16


@dataclass(frozen=True, eq=False)
class FrameBuffers:
    """Flat ``(B * C * H * W + 1,)`` outputs that :func:`draw_boxes` draws over in place; the
    last element of each is a sink that absorbs the writes of hidden candidates.

    Attributes:
        rgba: int32 packed colours, the background already drawn.
        depth: float32 camera depth, the background's already there; None to skip.
        index: int32 object index, -1 already there; None to skip.
    """

    rgba: Tensor
    depth: Tensor | None
    index: Tensor | None


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


# Columns of the (Q, F) per-pair float table of _pair_features; per axis a of the box frame,
# the pixel-centre ray direction is d_a = M0_a * col + M1_a * row + M2_a (camera-depth
# parameterised), the slab planes are A_a = -half_a - o_a and B_a = half_a - o_a (o: camera
# centre in the box frame).
_M0, _M1, _M2, _A, _B, _HALF, _O, _EDGE = 0, 3, 6, 9, 12, 15, 18, 21


def _pair_features(boxes: Tensor, qc: Tensor, rr: RigRaster) -> Tensor:
    """``(Q, 22)`` float32 per (camera, box) pair (columns above).

    ``M`` takes pixel ``(col, row, 1)`` to the pixel-centre ray direction in the box frame
    (intrinsics, the +0.5 pixel centre, camera-to-ego and ego-to-box rotations folded
    together); ``EDGE`` is the outline width per metre of depth.
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
    a, b = -half - o, half - o
    return torch.cat(
        [
            m.transpose(1, 2).reshape(-1, 9),
            a,
            b,
            (b - a) / 2,  # half extents and camera centre, rounded as the shading used them
            -(b + a) / 2,
            (1.3 / rr.focal_px[qc])[:, None],  # outline: ~1.3 px wide at the hit's depth
        ],
        1,
    )


@dataclass(frozen=True, eq=False)
class _Tiles:
    """Every rectangle row cut into ``ceil(width / _TILE)`` tiles, in pair order; ``(S,)`` each.

    Attributes:
        pair: int64 (camera, box) pair of the tile.
        row, x0: int64 pixel row and first column.
        cols: int64 columns of the tile inside its rectangle (the rest is padding).
        image: int64 flat ``b * C + c`` image of the tile.
        pixel: int64 flat ``(B * C * H * W)`` index of the tile's first pixel.
    """

    pair: Tensor
    row: Tensor
    x0: Tensor
    cols: Tensor
    image: Tensor
    pixel: Tensor


def _tiles(rect: Tensor, img: Tensor, rr: RigRaster) -> _Tiles:
    """Tiles of integer-valued rectangles ``(Q, 4)`` ``[x0, y0, x1, y1)`` of images ``img``."""
    dev = rect.device
    x0, y0, x1, y1 = rect.to(torch.int64).unbind(1)
    per_row = torch.div(x1 - x0 + (_TILE - 1), _TILE, rounding_mode="floor")
    counts = (y1 - y0) * per_row
    s_n = int(counts.sum())
    pair = torch.repeat_interleave(torch.arange(len(rect), device=dev), counts, output_size=s_n)
    local = torch.arange(s_n, device=dev) - (torch.cumsum(counts, 0) - counts)[pair]
    pr = per_row[pair]
    row_in = torch.div(local, pr, rounding_mode="floor")
    row = y0[pair] + row_in
    tx0 = x0[pair] + (local - row_in * pr) * _TILE
    image = img[pair]
    pixel = (image * rr.height_px + row) * rr.width_px + tx0
    return _Tiles(pair, row, tx0, (x1[pair] - tx0).clamp_(max=_TILE), image, pixel)


def _groups(tiles: _Tiles, num_images: int, chunk: int) -> list[int]:
    """Tile indices that cut the tiles into groups of whole images, about ``chunk`` tiles each
    (an image with more tiles makes a group of its own)."""
    s_n = len(tiles.pair)
    per_image = torch.bincount(tiles.image, minlength=num_images)
    img_end = torch.cumsum(per_image, 0)
    targets = torch.arange(chunk, max(s_n, chunk), chunk, device=img_end.device)
    fits = torch.searchsorted(img_end, targets, right=True)  # images ending by each target
    cuts = img_end[fits[fits > 0] - 1]
    return sorted({0, s_n, *cuts.tolist()})


def draw_boxes(
    boxes_ego: Tensor,
    valid: Tensor,
    rr: RigRaster,
    out: FrameBuffers,
    palette: Tensor,
    box_tag: Tensor,
    *,
    near_m: float,
    max_range_m: float,
    max_pairs: int,
    num_ids: int,
    with_footprint: bool = True,
) -> Tensor:
    """Ray-cast ego-frame boxes ``(B, M, 7)`` (``valid`` ``(B, M)``) into every camera and draw
    the visible surfaces into ``out``. Returns ``(B, C, M)`` int64 footprints: the pixels
    whose ray hits each box, ignoring occlusion (all zeros unless ``with_footprint``).

    Colours are ``palette[box_tag + face + 6 * edge]`` (``face`` 0 +x, 1 -x, 2 +y, 3 -y, 4 +z
    top, 5 -z in the box frame; ``edge``: the hit lies within about 1.3 pixels of a box edge).
    Boxes ``>= num_ids`` occlude but leave the object index alone. Boxes are culled beyond
    ``max_range_m`` and where no part is in front of the near plane; they are expected to
    stand on or above the ground plane, so a box hit is always in front of the background and
    no depth test against it is needed. At most ``max_pairs`` (pixel, box) candidates are
    processed at once, except that the winners of an image that has more wait for its last
    chunk.
    """
    dev = boxes_ego.device
    b_n, m_n = valid.shape
    if m_n > _MAX_BOXES:
        raise ConfigError(f"{m_n} boxes per snapshot; the rasterizer draws at most {_MAX_BOXES}")
    c_n, hw = rr.num_cameras, rr.height_px * rr.width_px
    footprint = torch.zeros(b_n * c_n * m_n, dtype=torch.int64, device=dev)
    # Project only the boxes that can be drawn (about half of the padded rows in a batch).
    keep = valid & (boxes_ego[..., :2].norm(dim=-1) <= max_range_m)
    kept = torch.nonzero(keep.view(-1)).flatten()  # flat b * M + m, ascending
    boxes_k = boxes_ego.reshape(-1, 7).index_select(0, kept)
    bbox, in_view = project_boxes(boxes_k, rr.rig_t, near_m)  # (C, K, 4), (C, K)
    qc, qk = torch.nonzero(in_view).unbind(1)
    if len(qk) == 0:
        return footprint.view(b_n, c_n, m_n)
    q_flat = kept.index_select(0, qk)
    img = torch.div(q_flat, m_n, rounding_mode="floor") * c_n + qc  # flat b * C + c
    # Pairs in image order (b, c, m), so that chunks hold whole images.
    order = torch.argsort(img * len(kept) + qk)
    qc, qk, q_flat, img = qc[order], qk[order], q_flat[order], img[order]
    qm = q_flat % m_n
    r = bbox[qc, qk]
    rect = torch.stack(
        [
            r[:, 0].floor(),
            r[:, 1].floor(),
            r[:, 2].ceil().clamp(max=rr.width_px),
            r[:, 3].ceil().clamp(max=rr.height_px),
        ],
        1,
    )
    tiles = _tiles(rect, img, rr)
    feats = _pair_features(boxes_k.index_select(0, qk), qc, rr)  # (Q, F)
    key_box = qm.to(torch.int32)
    ids = torch.where(qm < num_ids, key_box, -1)
    # Per pair and axis, the face code of a hit entering through that axis' slab: the ray
    # enters through the face the camera lies beyond, -face (odd code) when A = -half - o > 0.
    codes = torch.arange(0, 6, 2, device=dev) + (feats[:, _A : _A + 3] > 0)
    codes += box_tag.reshape(-1).index_select(0, q_flat)[:, None]
    # As float differences to code 0, for the float select in _cast_tiles (float broadcasts
    # vectorise over a 16-pixel tile, uint8 ones do not).
    codes = torch.cat([codes[:, :1], codes[:, 1:] - codes[:, :1]], 1).to(feats.dtype)
    slot = img * m_n + qm

    # On CPU, chunks sized so that the temporaries stay in L2 (per thread).
    cpu_chunk = _CPU_CHUNK * torch.get_num_threads() if dev.type == "cpu" else max_pairs
    chunk = max(1, min(max_pairs, cpu_chunk) // _TILE)
    cols = torch.arange(_TILE, device=dev)
    # Tile column offsets for each count of columns inside the rectangle; padding columns get
    # NaN coordinates, which make every comparison of the slab test false (a miss).
    col_table = torch.arange(_TILE, dtype=feats.dtype, device=dev).repeat(_TILE + 1, 1)
    col_table.masked_fill_(cols >= torch.arange(_TILE + 1, device=dev)[:, None], torch.nan)
    near_up = _next_up(near_m)
    sink = len(out.rgba) - 1
    for g_lo, g_hi in itertools.pairwise(_groups(tiles, b_n * c_n, chunk)):
        base = int(tiles.image[g_lo]) * hw
        # The padding columns of a row's last tile index pixels of the next row (or of the
        # _TILE slack past the last image): harmless, as their key is NO_KEY.
        n_buf = (int(tiles.image[g_hi - 1]) + 1) * hw - base + _TILE
        buf = torch.full((n_buf,), _EMPTY, dtype=torch.int32, device=dev)
        pending = []
        for lo in range(g_lo, g_hi, chunk):  # one chunk unless a single image has more
            hi = min(g_hi, lo + chunk)
            tp = tiles.pair[lo:hi]
            col = col_table.index_select(0, tiles.cols[lo:hi]).add_(tiles.x0[lo:hi, None])
            key, t, shade, hit = _cast_tiles(
                feats.index_select(0, tp),
                col,
                tiles.row[lo:hi, None].to(col.dtype),
                key_box.index_select(0, tp)[:, None],
                codes.index_select(0, tp),
                near_up,
            )
            if with_footprint:
                footprint.index_add_(0, slot.index_select(0, tp), hit.sum(1))
            pix = ((tiles.pixel[lo:hi] - base)[:, None] + cols).view(-1)
            key = key.view(-1)
            buf.scatter_reduce_(0, pix, key, "amin")
            pending.append((tp, pix, key, t, shade))
        # The group's images are complete: candidates whose key is their pixel's minimum
        # are the winners (keys are unique per pixel, the box being part of them). They keep
        # their pixel; hidden candidates and padding write to the sink, which is cheaper than
        # compacting the winners first.
        for tp, pix, key, t, shade in pending:
            lost = (buf.index_select(0, pix) != key).view(torch.uint8).to(torch.int64)
            dst = torch.maximum(pix, lost * (sink - base)).clamp_(max=sink - base).add_(base)
            out.rgba.scatter_(0, dst, palette.index_select(0, shade.view(-1)))
            if out.depth is not None:
                out.depth.scatter_(0, dst, t.view(-1))
            if out.index is not None:
                tile_ids = ids.index_select(0, tp)[:, None].expand(-1, _TILE)
                out.index.scatter_(0, dst, tile_ids.reshape(-1))
    return footprint.view(b_n, c_n, m_n)


def _next_up(x: float) -> float:
    """The smallest float32 above ``x``: ``t > x`` is ``t - _next_up(x) >= 0`` for float32 t."""
    return float(np.nextafter(np.float32(x), np.float32(np.inf)))


def _cast_tiles(
    f: Tensor, col: Tensor, rowf: Tensor, key_box: Tensor, codes: Tensor, near_up: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Slab test of the ``(n, _TILE)`` pixels ``(col, row)`` of ``n`` tiles (pair features
    ``f`` ``(n, F)``, ``rowf`` ``(n, 1)``, ``codes`` ``(n, 3)``: shade code (face and tag) of
    a hit through the x slab, and the differences of the y and z slabs' codes to it). Hits
    are entered beyond ``near_up`` (the float32 after the near plane).

    Returns the amin key (``NO_KEY`` for misses), the entry depth, the shade code and the hit
    mask, all ``(n, _TILE)``. The float operations, and their order, are those of a per-pixel
    slab test, so results do not depend on the tiling. Masks are combined arithmetically (as
    0 / 1 floats), because ``where`` and ``masked_fill`` cost ~30x more per element on CPU.
    """
    f = f.T[..., None]  # (F, n, 1): per-tile columns that broadcast along the tile
    row = rowf.expand_as(col).contiguous()
    d, near, far = [], [], []
    for ax in range(3):  # the three slabs
        # Two fused multiply-adds, as the per-pixel code had them (addcmul is an FMA on CPU);
        # the broadcast operand is made dense first because addcmul with two broadcast inputs
        # falls off the vectorised path.
        da = f[_M2 + ax].expand_as(col).clone().addcmul_(f[_M0 + ax], col)
        da.addcmul_(f[_M1 + ax], row)
        t1 = da.reciprocal()  # axis-parallel rays give +-inf, which min / max handle
        t2 = t1 * f[_B + ax]
        t1 *= f[_A + ax]
        d.append(da)
        near.append(torch.minimum(t1, t2))
        far.append(torch.maximum(t1, t2, out=t2))
    m01 = torch.maximum(near[0], near[1])
    t = torch.maximum(m01, near[2])
    t_far = torch.minimum(torch.minimum(far[0], far[1], out=far[0]), far[2], out=far[0])
    # hit: t <= t_far and t > near_m, as one comparison (the signs of these float differences
    # are exact; NaN, from padding columns and degenerate rays, compares false).
    hit = torch.minimum(t_far.sub_(t), t - near_up) >= 0
    dcm = (t * 100).to(torch.int32).clamp_(0, _MAX_DEPTH_CM)  # NaN / inf only on misses
    key = (dcm << 16) | key_box
    key |= (~hit).to(torch.int32) * NO_KEY

    # Face: the entry face is on the slab entered last (the first of equal maxima, as argmax).
    # Outline: the hit lies within ~1.3 px of either other pair of faces; the own axis'
    # margin (about 0) is pushed out of the min by adding 1e30 (exact, and cheap unlike where).
    on1 = (near[1] > near[0]).view(torch.uint8).to(t.dtype)
    on2 = (near[2] > m01).view(torch.uint8).to(t.dtype)
    on1 -= on1 * on2
    on0 = 1 - on1 - on2
    margin = []
    for ax, own in enumerate((on0, on1, on2)):
        p = torch.mul(t, d[ax], out=d[ax]).add_(f[_O + ax]).abs_()
        margin.append(torch.sub(f[_HALF + ax], p, out=p).add_(own, alpha=1e30))
    edge = torch.minimum(torch.minimum(margin[0], margin[1]), margin[2]) < f[_EDGE] * t
    # Exactly one of on0 / on1 / on2 is 1: the face code is code0 + on1 * (code1 - code0) + ...
    shade = torch.mul(on1, codes[:, 1:2], out=on1).add_(on2 * codes[:, 2:3]).add_(codes[:, 0:1])
    shade = shade.add_(edge.view(torch.uint8).to(t.dtype), alpha=6).to(torch.int32)
    return key, t, shade, hit
