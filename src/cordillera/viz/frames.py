"""Bird's-eye frames of simulated states, and animated rollouts (GIF)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
import torch
from matplotlib.collections import PolyCollection
from PIL import Image

from cordillera.scene.model import Scene
from cordillera.scene.types import ObjectType
from cordillera.sim.batch import SceneBatch
from cordillera.sim.state import SimState
from cordillera.viz.bev import EGO_COLOUR, TYPE_COLOURS, box_corners_xy, draw_map

Uint8Image = npt.NDArray[np.uint8]


class FrameDrawer:
    """Draws one scene's map once, then any number of states over it.

    Args:
        scene: the scene (for its map and object types).
        origin_world_xy_m: ``(2,)`` the simulator's local-frame origin (``SceneBatch``).
        view_radius_m: half-width of the view around the ego.
        size_px: output image side in pixels.
    """

    def __init__(
        self,
        scene: Scene,
        origin_world_xy_m: npt.NDArray[np.float64],
        view_radius_m: float = 45.0,
        size_px: int = 560,
    ) -> None:
        self.scene = scene
        self.origin = np.asarray(origin_world_xy_m, np.float64)
        self.radius = view_radius_m
        dpi = 100
        self.fig, self.ax = plt.subplots(figsize=(size_px / dpi, size_px / dpi), dpi=dpi)
        self.fig.subplots_adjust(0, 0, 1, 1)
        self.ax.set_facecolor("#f8fafc")
        self.ax.set_aspect("equal")
        self.ax.set_axis_off()
        draw_map(self.ax, scene, 0)
        self.boxes = PolyCollection([], edgecolors="black", linewidths=0.5, zorder=8)
        self.ax.add_collection(self.boxes)
        (self.plan_line,) = self.ax.plot([], [], color=EGO_COLOUR, lw=1.5, ls="--", zorder=9)
        self.text = self.ax.text(
            0.02,
            0.97,
            "",
            transform=self.ax.transAxes,
            va="top",
            fontsize=9,
            family="monospace",
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
        )
        types = scene.tracks.object_type
        self.colours = np.array([TYPE_COLOURS[ObjectType(int(t))] for t in types], dtype=object)
        self.colours[scene.ego_index] = EGO_COLOUR

    def draw(
        self,
        xy_m: npt.NDArray[np.float64],
        heading_rad: npt.NDArray[np.float64],
        size_lw_m: npt.NDArray[np.float64],
        valid: npt.NDArray[np.bool_],
        caption: str = "",
        plan_xy_m: npt.NDArray[np.float64] | None = None,
    ) -> Uint8Image:
        """One RGB frame. Inputs are local-frame ``(N, 2)`` / ``(N,)`` arrays of the scene's
        objects (padding beyond the scene's N is ignored); ``plan_xy_m`` ``(K, 2)``."""
        n = self.scene.num_objects
        world = xy_m[:n] + self.origin
        alive = valid[:n]
        corners = box_corners_xy(world[alive], heading_rad[:n][alive], size_lw_m[:n][alive])
        self.boxes.set_verts(list(corners))
        self.boxes.set_facecolor(list(self.colours[:n][alive]))
        if plan_xy_m is not None:
            p = plan_xy_m + self.origin
            self.plan_line.set_data(p[:, 0], p[:, 1])
        centre = world[self.scene.ego_index]
        self.ax.set_xlim(centre[0] - self.radius, centre[0] + self.radius)
        self.ax.set_ylim(centre[1] - self.radius, centre[1] + self.radius)
        self.text.set_text(caption)
        self.fig.canvas.draw()
        buf = np.asarray(self.fig.canvas.buffer_rgba())  # type: ignore[attr-defined]
        return buf[..., :3].copy()

    def close(self) -> None:
        plt.close(self.fig)


def state_frame(
    drawer: FrameDrawer,
    batch: SceneBatch,
    scene_of: torch.Tensor,
    state: SimState,
    row: int,
    caption: str = "",
) -> Uint8Image:
    """A frame of rollout ``row`` of a simulator state."""
    u = int(scene_of[row])
    return drawer.draw(
        state.xy_m[row].double().cpu().numpy(),
        state.heading_rad[row].double().cpu().numpy(),
        batch.size_lw_m[u].double().cpu().numpy(),
        state.valid[row].cpu().numpy(),
        caption,
    )


def write_gif(frames: Sequence[Uint8Image], path: str | Path, fps: float = 10.0) -> Path:
    """Write frames as an animated GIF (looping)."""
    if not frames:
        raise ValueError("no frames to write")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(
        out,
        save_all=True,
        append_images=images[1:],
        loop=0,
        duration=round(1000 / fps),
        optimize=False,
    )
    return out
