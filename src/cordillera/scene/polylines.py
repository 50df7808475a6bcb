"""Ragged sets of polylines and polygons stored as one point array plus offsets (CSR).

A map has hundreds of lanes of different lengths; storing them as one ``(P, 3)`` array with
``(K + 1,)`` offsets keeps every geometric query a single vectorised array operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cordillera.errors import SceneFormatError

Float64Array = npt.NDArray[np.float64]
Int64Array = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Polylines:
    """K polylines (or closed polygons) in one array.

    Attributes:
        points_m: ``(P, 3)`` float64 x, y, z points, metres, world frame.
        offsets: ``(K + 1,)`` int64; polyline ``k`` is ``points_m[offsets[k]:offsets[k + 1]]``.
            ``offsets[0] == 0`` and ``offsets[-1] == P``.
    """

    points_m: Float64Array
    offsets: Int64Array

    def __post_init__(self) -> None:
        self.validate()

    @staticmethod
    def empty() -> Polylines:
        return Polylines(np.zeros((0, 3), np.float64), np.zeros(1, np.int64))

    @staticmethod
    def from_list(polylines: Sequence[npt.ArrayLike]) -> Polylines:
        """Build from a sequence of ``(n_k, 2)`` or ``(n_k, 3)`` arrays (z defaults to 0)."""
        arrays = []
        for k, line in enumerate(polylines):
            a = np.asarray(line, dtype=np.float64)
            if a.ndim != 2 or a.shape[1] not in (2, 3):
                raise SceneFormatError(f"shape {a.shape} is not (n, 2) or (n, 3)", field=f"[{k}]")
            if a.shape[1] == 2:
                a = np.concatenate([a, np.zeros((len(a), 1))], axis=1)
            arrays.append(a)
        if not arrays:
            return Polylines.empty()
        lengths = np.array([len(a) for a in arrays], np.int64)
        offsets = np.concatenate([np.zeros(1, np.int64), np.cumsum(lengths)])
        return Polylines(np.concatenate(arrays, axis=0), offsets)

    def validate(self, field: str = "polylines") -> None:
        p, o = self.points_m, self.offsets
        if not isinstance(p, np.ndarray) or p.dtype != np.float64 or p.ndim != 2 or p.shape[1] != 3:
            raise SceneFormatError(
                f"points_m must be a (P, 3) float64 array, got {_describe(p)}", field=field
            )
        if not isinstance(o, np.ndarray) or o.dtype != np.int64 or o.ndim != 1 or len(o) < 1:
            raise SceneFormatError(
                f"offsets must be a (K + 1,) int64 array, got {_describe(o)}", field=field
            )
        if o[0] != 0 or o[-1] != len(p) or np.any(np.diff(o) < 0):
            raise SceneFormatError(
                f"offsets must rise from 0 to {len(p)}, got {o[:4]}...{o[-2:]}", field=field
            )
        if not np.all(np.isfinite(p)):
            bad = int(np.argwhere(~np.isfinite(p))[0, 0])
            raise SceneFormatError(f"non-finite point {p[bad]} at index {bad}", field=field)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, k: int) -> Float64Array:
        return self.points_m[self.offsets[k] : self.offsets[k + 1]]

    @property
    def num_points(self) -> npt.NDArray[np.int64]:
        """``(K,)`` number of points of each polyline."""
        return np.diff(self.offsets)

    @property
    def point_owner(self) -> npt.NDArray[np.int64]:
        """``(P,)`` index of the polyline each point belongs to."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.num_points)

    def segments(self) -> tuple[Float64Array, Float64Array, npt.NDArray[np.int64]]:
        """All consecutive-point segments: starts ``(S, 3)``, ends ``(S, 3)``, owners ``(S,)``.

        Polygons are *not* closed here; use :meth:`polygon_edges` for that.
        """
        owner = self.point_owner
        idx = np.nonzero(owner[:-1] == owner[1:])[0]
        return self.points_m[idx], self.points_m[idx + 1], owner[idx]

    def polygon_edges(self) -> tuple[Float64Array, Float64Array, npt.NDArray[np.int64]]:
        """Edges of every polygon, closing each ring: starts ``(E, 3)``, ends, owners."""
        owner = self.point_owner
        n = len(self.points_m)
        nxt = np.arange(1, n + 1, dtype=np.int64)
        last = self.offsets[1:] - 1
        nonempty = self.num_points > 0
        nxt[last[nonempty]] = self.offsets[:-1][nonempty]
        return self.points_m, self.points_m[nxt % max(n, 1)], owner

    def lengths_m(self) -> Float64Array:
        """``(K,)`` arc length of each polyline, metres."""
        starts, ends, owner = self.segments()
        seg = np.linalg.norm(ends[:, :2] - starts[:, :2], axis=1)
        return np.bincount(owner, weights=seg, minlength=len(self)).astype(np.float64)

    def select(self, keep: npt.NDArray[np.bool_]) -> Polylines:
        """The polylines whose ``keep`` flag is set, in order."""
        n = self.num_points
        pts = self.points_m[np.repeat(keep, n)]
        offsets = np.concatenate([np.zeros(1, np.int64), np.cumsum(n[keep])]).astype(np.int64)
        return Polylines(pts, offsets)


def _describe(a: object) -> str:
    if isinstance(a, np.ndarray):
        return f"{a.dtype} array of shape {a.shape}"
    return type(a).__name__
