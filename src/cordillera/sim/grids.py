"""Top-down occupancy grids of map layers (drivable area, crosswalks), built once per scene.

Point-in-drivable-area for every box corner of every agent at every step is then a single
gather instead of a point-in-polygon test against hundreds of polygons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from cordillera.scene.model import Scene
from cordillera.scene.polylines import Polylines

GRID_RESOLUTION_M = 0.25
GRID_MARGIN_M = 30.0


@dataclass(frozen=True, eq=False)
class GridFrame:
    """Placement of a top-down grid in a scene's local frame.

    Attributes:
        origin_xy_m: ``(2,)`` local-frame position of the grid's (0, 0) cell corner.
        resolution_m: cell size in metres.
        shape_hw: ``(H, W)`` cells; row index grows with y, column with x.
    """

    origin_xy_m: npt.NDArray[np.float64]
    resolution_m: float
    shape_hw: tuple[int, int]


def scene_extent_xy(
    scene: Scene, origin_world_xy: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``(2,)`` low and high corners (local frame) covering the map and all valid tracks."""
    pts = [scene.tracks.xyz_m[scene.tracks.valid][:, :2]]
    m = scene.map
    for poly in (m.lanes, m.drivable_areas, m.road_edges, m.crosswalks, m.road_lines):
        if len(poly.points_m):
            pts.append(poly.points_m[:, :2])
    allp = np.concatenate(pts, axis=0) - origin_world_xy
    return allp.min(axis=0) - GRID_MARGIN_M, allp.max(axis=0) + GRID_MARGIN_M


def rasterize_polygons(
    polys: Polylines, origin_world_xy: npt.NDArray[np.float64], frame: GridFrame
) -> npt.NDArray[np.bool_]:
    """``(H, W)`` bool grid, True inside any polygon (rings given without the closing point)."""
    h, w = frame.shape_hw
    img = Image.new("1", (w, h), 0)
    draw = ImageDraw.Draw(img)
    res = frame.resolution_m
    for k in range(len(polys)):  # load time only: one call per polygon, not per step
        ring = polys[k][:, :2] - origin_world_xy - frame.origin_xy_m
        if len(ring) < 3:
            continue
        draw.polygon([tuple(p) for p in (ring / res).tolist()], fill=1, outline=1)
    return np.asarray(img, dtype=bool)


def make_grid_frame(
    lo: npt.NDArray[np.float64],
    hi: npt.NDArray[np.float64],
    resolution_m: float = GRID_RESOLUTION_M,
) -> GridFrame:
    w = int(np.ceil((hi[0] - lo[0]) / resolution_m))
    h = int(np.ceil((hi[1] - lo[1]) / resolution_m))
    return GridFrame(
        origin_xy_m=lo.astype(np.float64),
        resolution_m=resolution_m,
        shape_hw=(max(h, 1), max(w, 1)),
    )
