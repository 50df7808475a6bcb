"""Batched geometry against exact references (shapely, brute force, hand values)."""

from __future__ import annotations

import math

import numpy as np
import shapely
import torch
from shapely.geometry import LineString, Point

from cordillera.scene.polylines import Polylines
from cordillera.sim.geometry import (
    box_corners,
    boxes_overlap,
    grid_lookup,
    nearest_lane_point,
    project_onto_polyline,
    swept_boxes_contact,
    wrap_angle,
)
from cordillera.sim.grids import make_grid_frame, rasterize_polygons
from cordillera.sim.lane_index import lane_index_for

TOL = 1e-3


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.float32)


def _random_boxes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    xy = rng.uniform(-3.5, 3.5, (n, 2))
    heading = rng.uniform(-math.pi, math.pi, n)
    lw = np.stack([rng.uniform(0.3, 6, n), rng.uniform(0.2, 3, n)], 1)
    return xy, heading, lw


def _polygons(xy: np.ndarray, heading: np.ndarray, lw: np.ndarray) -> np.ndarray:
    corners = box_corners(_t(xy), _t(heading), _t(lw)).double().numpy()
    return shapely.polygons(corners)


def test_box_corners_order_and_values() -> None:
    c = box_corners(_t(np.array([1.0, 2.0])), torch.tensor(math.pi / 2), _t(np.array([4.0, 2.0])))
    # heading +y: front-left is at +y front, -x left.
    expect = [[0.0, 4.0], [0.0, 0.0], [2.0, 0.0], [2.0, 4.0]]
    assert torch.allclose(c, torch.tensor(expect), atol=1e-6)


def test_boxes_overlap_matches_shapely() -> None:
    rng = np.random.default_rng(0)
    n = 6000
    a, b = _random_boxes(rng, n), _random_boxes(rng, n)
    got = boxes_overlap(*(_t(x) for x in a), *(_t(x) for x in b)).numpy()
    pa, pb = _polygons(*a), _polygons(*b)
    ref = shapely.intersects(pa, pb)
    # Near-tangent pairs are ambiguous in float32: shrinking or growing A by TOL flips them.
    robust = shapely.intersects(shapely.buffer(pa, -TOL), pb) == shapely.intersects(
        shapely.buffer(pa, TOL, join_style="mitre"), pb
    )
    assert robust.sum() > 0.95 * n
    assert 0.2 < ref[robust].mean() < 0.8  # both outcomes well represented
    np.testing.assert_array_equal(got[robust], ref[robust])


def test_boxes_overlap_broadcasts_and_handles_segments() -> None:
    a_xy = torch.zeros(3, 1, 2)
    b_xy = torch.tensor([[[0.0, 0.0], [5.0, 0.0]]])
    out = boxes_overlap(
        a_xy,
        torch.zeros(3, 1),
        torch.ones(3, 1, 2),
        b_xy,
        torch.zeros(1, 2),
        torch.tensor([[[0.0, 2.0], [0.0, 2.0]]]),
    )
    assert out.shape == (3, 2)
    assert out[:, 0].all() and not out[:, 1].any()


def test_swept_contact_matches_sampled_overlap() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    a, b = _random_boxes(rng, n), _random_boxes(rng, n)
    b = (a[0] + rng.uniform(-15, 15, (n, 2)), *b[1:])
    va, vb = rng.uniform(-10, 10, (n, 2)), rng.uniform(-10, 10, (n, 2))
    ta = [_t(x) for x in a]
    tb = [_t(x) for x in b]
    t_in, t_out = swept_boxes_contact(ta[0], ta[1], ta[2], _t(va), tb[0], tb[1], tb[2], _t(vb))
    times = torch.linspace(-2.0, 3.0, 501)
    for k in range(0, 501, 5):
        t = times[k]
        sampled = boxes_overlap(ta[0] + t * _t(va), ta[1], ta[2], tb[0] + t * _t(vb), tb[1], tb[2])
        inside = (t_in <= t) & (t <= t_out)
        far = ((t - t_in).abs() > 1e-3) & ((t - t_out).abs() > 1e-3)
        assert torch.equal(sampled[far], inside[far])
    assert (t_in < t_out).float().mean() > 0.2


def test_swept_contact_head_on_hand_case() -> None:
    # Two 4 m cars 30 m apart nose to nose... centres 30 m apart, closing at 10 + 5 m/s:
    # gap 26 m closes at 15 m/s -> contact at 26 / 15 s.
    t_in, t_out = swept_boxes_contact(
        torch.tensor([0.0, 0.0]),
        torch.tensor(0.0),
        torch.tensor([4.0, 2.0]),
        torch.tensor([10.0, 0.0]),
        torch.tensor([30.0, 0.0]),
        torch.tensor(math.pi),
        torch.tensor([4.0, 2.0]),
        torch.tensor([-5.0, 0.0]),
    )
    assert math.isclose(float(t_in), 26.0 / 15.0, rel_tol=1e-6)
    assert math.isclose(float(t_out), 34.0 / 15.0, rel_tol=1e-6)


def test_grid_lookup_matches_shapely_point_in_polygon() -> None:
    rng = np.random.default_rng(2)
    rings = []
    for _ in range(12):
        c = rng.uniform(-40, 40, 2)
        ang = np.sort(rng.uniform(0, 2 * math.pi, 7))
        rad = rng.uniform(3, 12, 7)
        rings.append(c + np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1))
    polys = Polylines.from_list(rings)
    origin = np.array([1000.0, -500.0])  # world offset of the local frame
    frame = make_grid_frame(np.array([-60.0, -55.0]), np.array([58.0, 61.0]))
    grid = rasterize_polygons(Polylines.from_list([r + origin for r in rings]), origin, frame)
    area = shapely.union_all(shapely.polygons([polys[k][:, :2] for k in range(len(polys))]))
    pts = rng.uniform(-70, 70, (20000, 2))
    ref = shapely.contains_xy(area, pts[:, 0], pts[:, 1])
    # Second scene: an empty grid, to check that scene_of picks the right one.
    flat = torch.cat(
        [torch.from_numpy(grid.copy()).reshape(-1), torch.zeros(grid.size, dtype=torch.bool)]
    )
    offsets = torch.tensor([0, grid.size])
    hw = torch.tensor([grid.shape, grid.shape])
    origins = _t(np.stack([frame.origin_xy_m, frame.origin_xy_m]))

    def grid_lookup_at(scene_of: torch.Tensor, pts_: torch.Tensor) -> torch.Tensor:
        return grid_lookup(flat, offsets, hw, origins, frame.resolution_m, scene_of, pts_)

    xy = _t(pts).view(2, -1, 2)
    got = grid_lookup_at(torch.tensor([0, 0]), xy).reshape(-1)
    band = shapely.distance(area.boundary, shapely.points(pts)) > 1.5 * frame.resolution_m
    assert band.sum() > 0.9 * len(pts)
    np.testing.assert_array_equal(got.numpy()[band], ref[band])
    empty = grid_lookup_at(torch.tensor([1, 1]), xy)
    assert not empty.any()
    lo = frame.origin_xy_m
    outside = _t(np.array([[[lo[0] - 1.0, 0.0], [0.0, 1e6], [math.nan, 0.0]]]))
    assert not grid_lookup_at(torch.tensor([0]), outside).any()


def _random_polyline(rng: np.random.Generator, n: int) -> np.ndarray:
    steps = rng.normal(0, 1, (n - 1, 2)) * rng.uniform(0.5, 5)
    return np.concatenate([rng.uniform(-5, 5, (1, 2)), steps], 0).cumsum(0)


def test_project_onto_polyline_matches_shapely() -> None:
    rng = np.random.default_rng(3)
    b, p, m = 40, 30, 25
    line = np.zeros((b, p, 2))
    valid = np.zeros((b, p), bool)
    lines = []
    for i in range(b):
        n = int(rng.integers(2, p + 1))
        line[i, :n] = _random_polyline(rng, n)
        valid[i, :n] = True
        lines.append(LineString(line[i, :n]))
    seg = np.linalg.norm(np.diff(line, axis=1), axis=-1) * valid[:, 1:]
    s_line = np.concatenate([np.zeros((b, 1)), seg.cumsum(1)], 1)
    pts = rng.uniform(-25, 25, (b, m, 2))
    s, lat, _ = project_onto_polyline(_t(pts), _t(line), _t(s_line), torch.from_numpy(valid))
    for i in range(b):
        for j in range(m):
            pt = Point(pts[i, j])
            dist = lines[i].distance(pt)
            assert abs(abs(float(lat[i, j])) - dist) < 2e-3
            # Ties between equally near segments may pick a different one than shapely; the
            # returned arc length must still land on a nearest point.
            assert abs(lines[i].interpolate(float(s[i, j])).distance(pt) - dist) < 2e-3
    # Signed lateral: left of a straight line along +x is positive, heading 0.
    s1, lat1, t1 = project_onto_polyline(
        torch.tensor([[[2.0, 3.0], [5.0, -1.0]]]),
        torch.tensor([[[0.0, 0.0], [10.0, 0.0]]]),
        torch.tensor([[0.0, 10.0]]),
        torch.tensor([[True, True]]),
    )
    assert torch.allclose(s1, torch.tensor([[2.0, 5.0]]))
    assert torch.allclose(lat1, torch.tensor([[3.0, -1.0]]))
    assert torch.allclose(t1, torch.zeros(1, 2))


def test_project_onto_polyline_scene_of_and_single_point() -> None:
    line = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 5.0]]])
    valid = torch.tensor([[True, False], [True, True]])
    s_line = torch.tensor([[0.0, 0.0], [0.0, 4.0]])
    pts = torch.tensor([[[3.0, 4.0]], [[0.0, 3.0]], [[2.0, 2.0]]])
    s, lat, _ = project_onto_polyline(pts, line, s_line, valid, scene_of=torch.tensor([0, 1, 1]))
    assert torch.allclose(s[:, 0], torch.tensor([0.0, 2.0, 1.0]))
    assert torch.allclose(lat.abs()[:, 0], torch.tensor([5.0, 1.0, 1.0]))


def _grid_map(spacing: float = 25.0, extent: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Lane samples of a Manhattan grid: two opposite lanes per street, 1 m apart samples."""
    xs, hs = [], []
    s = np.arange(0.0, spacing * extent + 1e-9, 1.0)
    for k in range(extent + 1):
        c = k * spacing
        for off, h in ((-1.8, 0.0), (1.8, math.pi)):
            pts = np.stack([s, np.full_like(s, c + off)], 1)
            xs.append(pts if h == 0.0 else pts[::-1])
            hs.append(np.full(len(s), h))
            pts = np.stack([np.full_like(s, c - off), s], 1)
            xs.append(pts if h == 0.0 else pts[::-1])
            hs.append(np.full(len(s), h + math.pi / 2))
    return np.concatenate(xs), np.concatenate(hs)


def test_nearest_lane_point_matches_brute_force_with_prefilter() -> None:
    lane_xy, lane_h = _grid_map()
    assert len(lane_xy) > 3000  # large enough that the group prefilter is active
    rng = np.random.default_rng(4)
    q = rng.uniform(-5, 155, (2, 500, 2))
    qh = rng.uniform(-math.pi, math.pi, (2, 500))
    u_xy, u_h = _t(lane_xy)[None], _t(lane_h)[None]
    u_ok = torch.ones(1, len(lane_xy), dtype=torch.bool)
    for max_diff in (math.pi / 4, math.pi / 2, math.pi):
        idx, lat, head, found = nearest_lane_point(
            _t(q), _t(qh), u_xy, u_h, u_ok, max_diff, scene_of=torch.tensor([0, 0])
        )
        d = np.linalg.norm(q[:, :, None] - lane_xy[None, None], axis=-1)
        dh = np.abs(wrap_angle(_t(lane_h[None, None] - qh[..., None])).numpy())
        d = np.where(dh <= max_diff + 1e-6, d, np.inf)
        best = d.min(-1)
        got = np.linalg.norm(q - lane_xy[idx.numpy()], axis=-1)
        near = best < 8.0  # exactness is promised near lanes, where it matters
        assert near.mean() > 0.5
        np.testing.assert_allclose(got[near], best[near], atol=1e-3)
        assert found[near].all()
        f = found.numpy()
        assert np.all(np.abs(wrap_angle(head - _t(qh)).numpy())[f] <= max_diff + 1e-5)
        assert torch.all(lat[found] <= torch.from_numpy(best).float()[found] + 1e-3)


def test_nearest_lane_point_lateral_and_not_found() -> None:
    lane_xy = torch.tensor([[[float(i), 0.0] for i in range(11)]])
    lane_h = torch.zeros(1, 11)
    ok = torch.ones(1, 11, dtype=torch.bool)
    pts = torch.tensor([[[3.3, 1.5], [14.0, 0.0], [5.0, -2.0]]])
    idx, lat, _, found = nearest_lane_point(pts, torch.zeros(1, 3), lane_xy, lane_h, ok, 0.5)
    assert idx.tolist() == [[3, 10, 5]]
    # Between samples: the perpendicular distance; beyond the lane's end: distance to it.
    assert torch.allclose(lat, torch.tensor([[1.5, 3.5, 2.0]]))
    assert found.all()
    _, lat2, _, found2 = nearest_lane_point(
        pts, torch.full((1, 3), math.pi), lane_xy, lane_h, ok, 0.5
    )
    assert not found2.any() and torch.isinf(lat2).all()


def test_nearest_lane_point_empty_map_and_index_cache() -> None:
    pts, head = torch.zeros(2, 3, 2), torch.zeros(2, 3)
    empty = nearest_lane_point(
        pts,
        head,
        torch.zeros(1, 0, 2),
        torch.zeros(1, 0),
        torch.zeros(1, 0, dtype=torch.bool),
        math.pi,
        scene_of=torch.tensor([0, 0]),
    )
    assert not empty[3].any() and (empty[0] == -1).all()
    lane_xy, lane_h = _grid_map(extent=2)
    xy, h = _t(lane_xy)[None], _t(lane_h)[None]
    ok = torch.ones(1, len(lane_xy), dtype=torch.bool)
    first = lane_index_for(xy, h, ok)
    assert lane_index_for(xy, h, ok) is first  # built once per set of lane tensors
    xy.add_(0.0)  # an in-place change invalidates it
    assert lane_index_for(xy, h, ok) is not first
