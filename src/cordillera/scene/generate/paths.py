"""Arc-length parameterised polylines: the geometry every generated lane and agent path uses.

A :class:`Path` is a 2D polyline with its cumulative arc length ``s`` (metres from the first
point) and the unwrapped tangent heading at each vertex, so position, heading and curvature at
any ``s`` are single ``np.interp`` calls. :class:`PathBatch` packs many paths into one array so
that N agents at N arc lengths are evaluated with one interpolation per quantity (no Python loop
over agents in the simulator's step).

Frames: world frame of the generated scene, metres; headings radians CCW from +x; the lateral
offset ``d`` is positive to the *left* of the direction of travel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Path:
    """One polyline parameterised by arc length.

    Attributes:
        xy_m: ``(P, 2)`` vertices, world frame, P >= 2, no repeated consecutive points.
        s_m: ``(P,)`` cumulative arc length at each vertex, ``s_m[0] == 0``.
        heading_rad: ``(P,)`` unwrapped tangent heading at each vertex (segment headings
            averaged at inner vertices), so interpolation never jumps by 2π.
    """

    xy_m: F64
    s_m: F64
    heading_rad: F64

    @staticmethod
    def from_points(xy: npt.ArrayLike) -> Path:
        """Build from ``(P, 2)`` points; consecutive duplicates (< 1 mm apart) are dropped."""
        pts = np.asarray(xy, np.float64)[:, :2]
        step = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        keep = np.concatenate([[True], step > 1e-3])
        pts = pts[keep]
        if len(pts) < 2:
            raise ValueError(f"a path needs two distinct points, got {len(pts)}")
        d = np.diff(pts, axis=0)
        seg = np.linalg.norm(d, axis=1)
        s = np.concatenate([[0.0], np.cumsum(seg)])
        seg_h = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
        # Vertex heading: mean of the two adjacent segments (they differ by < π after unwrap).
        h = np.concatenate([seg_h[:1], (seg_h[:-1] + seg_h[1:]) / 2.0, seg_h[-1:]])
        return Path(pts, s, h)

    @property
    def length_m(self) -> float:
        """Total arc length, metres."""
        return float(self.s_m[-1])

    def position(self, s: npt.ArrayLike) -> F64:
        """``(..., 2)`` points at arc lengths ``s`` (clamped to the path's ends)."""
        s = np.asarray(s, np.float64)
        return np.stack(
            [np.interp(s, self.s_m, self.xy_m[:, 0]), np.interp(s, self.s_m, self.xy_m[:, 1])],
            axis=-1,
        )

    def heading(self, s: npt.ArrayLike) -> F64:
        """Tangent heading at ``s``, radians (unwrapped along the path)."""
        return np.interp(np.asarray(s, np.float64), self.s_m, self.heading_rad)

    def curvature(self, s: npt.ArrayLike) -> F64:
        """Signed curvature dθ/ds at ``s``, 1/m (positive turning left)."""
        k = np.gradient(self.heading_rad, self.s_m) if len(self.s_m) > 2 else np.zeros(2)
        return np.interp(np.asarray(s, np.float64), self.s_m, k)

    def offset(self, d_m: float) -> Path:
        """The parallel path ``d_m`` to the left (negative: right) of this one."""
        n = np.stack([-np.sin(self.heading_rad), np.cos(self.heading_rad)], axis=1)
        return Path.from_points(self.xy_m + d_m * n)

    def resample(self, step_m: float) -> Path:
        """The same curve with vertices every ``step_m`` or closer (end points kept)."""
        n = max(int(np.ceil(self.length_m / step_m)), 1)
        return Path.from_points(self.position(np.linspace(0.0, self.length_m, n + 1)))

    def sub(self, s0: float, s1: float) -> Path:
        """The piece between arc lengths ``s0 < s1``."""
        inner = self.xy_m[(self.s_m > s0) & (self.s_m < s1)]
        return Path.from_points(np.concatenate([self.position([s0]), inner, self.position([s1])]))

    def reversed(self) -> Path:
        """The same curve travelled the other way."""
        return Path.from_points(self.xy_m[::-1])

    def xyz(self) -> F64:
        """``(P, 3)`` vertices with z = 0 (the generator's ground plane)."""
        return np.concatenate([self.xy_m, np.zeros((len(self.xy_m), 1))], axis=1)


def line(p0: npt.ArrayLike, p1: npt.ArrayLike, step_m: float = 2.0) -> Path:
    """Straight path from ``p0`` to ``p1`` with vertices every ``step_m`` or closer."""
    return Path.from_points(np.array([p0, p1], np.float64)).resample(step_m)


def arc(
    centre: npt.ArrayLike, radius_m: float, a0_rad: float, a1_rad: float, step_m: float = 1.0
) -> Path:
    """Circular arc around ``centre`` from polar angle ``a0`` to ``a1`` (a1 > a0: CCW)."""
    n = max(int(np.ceil(abs(a1_rad - a0_rad) * radius_m / step_m)), 2)
    a = np.linspace(a0_rad, a1_rad, n + 1)
    c = np.asarray(centre, np.float64)
    return Path.from_points(
        np.stack([c[0] + radius_m * np.cos(a), c[1] + radius_m * np.sin(a)], axis=1)
    )


def hermite(
    p0: npt.ArrayLike,
    h0_rad: float,
    p1: npt.ArrayLike,
    h1_rad: float,
    step_m: float = 1.0,
    tangent_scale: float = 0.4,
) -> Path:
    """Smooth cubic Bézier from ``p0`` (leaving at heading ``h0``) to ``p1`` (arriving at ``h1``).

    The control points sit ``tangent_scale`` × chord along each heading, which keeps the
    curvature bounded for the 30–120° turns of junction connectors.
    """
    a, b = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
    k = tangent_scale * float(np.linalg.norm(b - a))
    c0 = a + k * np.array([np.cos(h0_rad), np.sin(h0_rad)])
    c1 = b - k * np.array([np.cos(h1_rad), np.sin(h1_rad)])
    t = np.linspace(0.0, 1.0, 400)[:, None]
    pts = (1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * c0 + 3 * (1 - t) * t**2 * c1 + t**3 * b
    return Path.from_points(pts).resample(step_m)


def concat(paths: Sequence[Path]) -> Path:
    """Join paths end to start (each next path should begin where the previous one ends)."""
    return Path.from_points(np.concatenate([p.xy_m for p in paths], axis=0))


def strip_polygon(path: Path, left_m: float, right_m: float) -> F64:
    """``(2P, 2)`` ring covering ``left_m`` to the left and ``right_m`` to the right of ``path``."""
    n = np.stack([-np.sin(path.heading_rad), np.cos(path.heading_rad)], axis=1)
    return np.concatenate([path.xy_m + left_m * n, (path.xy_m - right_m * n)[::-1]], axis=0)


def first_crossing(a: Path, b: Path) -> tuple[float, float, float] | None:
    """Where polylines ``a`` and ``b`` first cross (along ``a``).

    Returns ``(s_a, s_b, angle_rad)`` — arc lengths on each path and the crossing angle in
    ``[0, π/2]`` — or ``None`` when they do not cross. Touching end points count as crossing.
    """
    lo = np.maximum(a.xy_m.min(0), b.xy_m.min(0))
    hi = np.minimum(a.xy_m.max(0), b.xy_m.max(0))
    if np.any(lo > hi + 1e-9):
        return None
    p, r = a.xy_m[:-1, None, :], np.diff(a.xy_m, axis=0)[:, None, :]  # (A, 1, 2)
    q, u = b.xy_m[None, :-1, :], np.diff(b.xy_m, axis=0)[None, :, :]  # (1, B, 2)
    den = r[..., 0] * u[..., 1] - r[..., 1] * u[..., 0]  # (A, B)
    qp = q - p
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (qp[..., 0] * u[..., 1] - qp[..., 1] * u[..., 0]) / den
        w = (qp[..., 0] * r[..., 1] - qp[..., 1] * r[..., 0]) / den
    eps = 1e-9
    hit = (np.abs(den) > 1e-12) & (t >= -eps) & (t <= 1 + eps) & (w >= -eps) & (w <= 1 + eps)
    if not hit.any():
        return None
    ia, ib = np.argwhere(hit)[np.argmin(np.argwhere(hit)[:, 0] + t[hit])]
    seg_a = np.diff(a.s_m)[ia]
    seg_b = np.diff(b.s_m)[ib]
    s_a = float(a.s_m[ia] + np.clip(t[ia, ib], 0, 1) * seg_a)
    s_b = float(b.s_m[ib] + np.clip(w[ia, ib], 0, 1) * seg_b)
    ra, ub = r[ia, 0], u[0, ib]
    cos = abs(float(ra @ ub)) / (np.linalg.norm(ra) * np.linalg.norm(ub))
    return s_a, s_b, float(np.arccos(np.clip(cos, 0.0, 1.0)))


def distance_to_polyline(pts: F64, poly: Path) -> F64:
    """``(Q,)`` distance from each of ``pts`` ``(Q, 2)`` to the polyline ``poly``."""
    a = poly.xy_m[:-1][None]
    ab = np.diff(poly.xy_m, axis=0)[None]
    p = pts[:, None, :]
    t = np.clip(((p - a) * ab).sum(-1) / np.maximum((ab**2).sum(-1), 1e-12), 0.0, 1.0)
    d = np.linalg.norm(a + t[..., None] * ab - p, axis=-1)
    return np.asarray(d.min(axis=1), np.float64)


class PathBatch:
    """N paths packed for vectorised evaluation at one arc length per path.

    Every path's vertices are stored in one sorted key array ``key = index * stride + s``
    (``stride`` exceeds every path length), so one ``np.interp`` evaluates all N paths at once.
    Queries are clamped to each path's ends.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.num = len(paths)
        self.length_m = np.array([p.length_m for p in paths], np.float64)
        self.stride = float(self.length_m.max(initial=1.0)) + 10.0
        idx = np.concatenate([np.full(len(p.s_m), i, np.float64) for i, p in enumerate(paths)])
        self._key = idx * self.stride + np.concatenate([p.s_m for p in paths])
        self._x = np.concatenate([p.xy_m[:, 0] for p in paths])
        self._y = np.concatenate([p.xy_m[:, 1] for p in paths])
        self._h = np.concatenate([p.heading_rad for p in paths])

    def keys(self, index: npt.ArrayLike, s: npt.ArrayLike) -> F64:
        """Sorted-array keys of arc lengths ``s`` on paths ``index`` (broadcast together)."""
        i = np.asarray(index, np.float64)
        return i * self.stride + np.clip(s, 0.0, self.length_m[np.asarray(index, np.int64)])

    def values(self, index: npt.ArrayLike, s: npt.ArrayLike, table: F64) -> F64:
        """Interpolate a per-vertex ``table`` (aligned with the packed vertices) at ``s``."""
        return np.interp(self.keys(index, s), self._key, table)

    def pose(self, index: npt.ArrayLike, s: npt.ArrayLike) -> tuple[F64, F64]:
        """Positions ``(..., 2)`` and headings ``(...)`` of paths ``index`` at ``s``."""
        k = self.keys(index, s)
        xy = np.stack([np.interp(k, self._key, self._x), np.interp(k, self._key, self._y)], -1)
        return xy, np.interp(k, self._key, self._h)

    def pack(self, per_path: Sequence[F64]) -> F64:
        """Concatenate per-vertex tables (one ``(P_i,)`` array per path) into a packed table."""
        return np.concatenate([np.asarray(t, np.float64) for t in per_path])
