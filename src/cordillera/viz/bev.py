"""Bird's-eye pictures of a scene: map, tracks coloured by type, ego highlighted."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: pictures are written to files, never shown in a window
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection

from cordillera.scene.model import Scene
from cordillera.scene.polylines import Polylines
from cordillera.scene.types import ObjectType, RoadLineType, SignalState

TYPE_COLOURS = {
    ObjectType.VEHICLE: "#3b82f6",
    ObjectType.PEDESTRIAN: "#f97316",
    ObjectType.CYCLIST: "#a855f7",
    ObjectType.OTHER: "#9ca3af",
}
EGO_COLOUR = "#dc2626"
SIGNAL_COLOURS = {
    SignalState.UNKNOWN: "#6b7280",
    SignalState.RED: "#ef4444",
    SignalState.YELLOW: "#eab308",
    SignalState.GREEN: "#22c55e",
    SignalState.FLASHING_RED: "#f87171",
    SignalState.FLASHING_YELLOW: "#fde047",
}


def box_corners_xy(
    xy: npt.NDArray[np.float64], heading: npt.NDArray[np.float64], lw: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """``(..., 4, 2)`` corners of boxes with centres ``(..., 2)`` and sizes ``(..., 2)``."""
    c, s = np.cos(heading)[..., None], np.sin(heading)[..., None]
    half = lw / 2.0
    local = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], np.float64)  # (4, 2)
    dx = local[:, 0] * half[..., :1]
    dy = local[:, 1] * half[..., 1:2]
    return np.stack([xy[..., :1] + c * dx - s * dy, xy[..., 1:2] + s * dx + c * dy], axis=-1)


def _lines(poly: Polylines) -> list[npt.NDArray[np.float64]]:
    return [poly[k][:, :2] for k in range(len(poly)) if len(poly[k]) >= 2]


def draw_map(ax: Axes, scene: Scene, step: int) -> None:
    """Map layers, bottom to top: drivable area, crosswalks, lanes, lines, stop lines, signals."""
    m = scene.map
    if len(m.drivable_areas):
        ax.add_collection(
            PolyCollection(
                _lines(m.drivable_areas), facecolors="#e5e7eb", edgecolors="none", zorder=0
            )
        )
    if len(m.crosswalks):
        ax.add_collection(
            PolyCollection(
                _lines(m.crosswalks),
                facecolors="#fde68a",
                edgecolors="#ca8a04",
                linewidths=0.4,
                zorder=1,
            )
        )
    if len(m.lanes):
        ax.add_collection(
            LineCollection(
                _lines(m.lanes), colors="#94a3b8", linewidths=0.5, linestyles=(0, (4, 3)), zorder=2
            )
        )
    if len(m.road_lines):
        types = m.road_line_type
        colours = np.where(
            np.isin(types, [int(t) for t in RoadLineType if t.is_yellow]), "#ca8a04", "#475569"
        )
        keep = types != RoadLineType.VIRTUAL
        kept = [int(k) for k in np.nonzero(keep)[0] if len(m.road_lines[int(k)]) > 1]
        lines = [m.road_lines[k][:, :2] for k in kept]
        cols = [str(colours[k]) for k in kept]
        ax.add_collection(LineCollection(lines, colors=cols, linewidths=0.8, zorder=3))
    if len(m.road_edges):
        ax.add_collection(
            LineCollection(_lines(m.road_edges), colors="#111827", linewidths=1.2, zorder=3)
        )
    if len(m.stop_lines):
        ax.add_collection(
            LineCollection(_lines(m.stop_lines), colors="#111827", linewidths=2.0, zorder=4)
        )
    if len(m.stop_sign_xyz_m):
        ax.scatter(
            m.stop_sign_xyz_m[:, 0],
            m.stop_sign_xyz_m[:, 1],
            marker="8",
            s=40,
            c="#b91c1c",
            edgecolors="white",
            zorder=6,
        )
    sig = scene.signals
    if len(sig.lane):
        states = sig.state[:, min(step, scene.num_steps - 1)]
        ax.scatter(
            sig.stop_point_xyz_m[:, 0],
            sig.stop_point_xyz_m[:, 1],
            s=30,
            zorder=6,
            c=[SIGNAL_COLOURS[SignalState(int(s))] for s in states],
            edgecolors="black",
            linewidths=0.5,
        )


def draw_tracks(ax: Axes, scene: Scene, step: int) -> None:
    """Trails of every valid track, and boxes at ``step`` coloured by type; the ego in red."""
    tr = scene.tracks
    trails = []
    colours = []
    for i in np.nonzero(tr.valid.any(axis=1))[0]:
        pts = tr.xyz_m[i, tr.valid[i], :2]
        if len(pts) > 1:
            trails.append(pts)
            colours.append(
                EGO_COLOUR
                if i == scene.ego_index
                else TYPE_COLOURS[ObjectType(int(tr.object_type[i]))]
            )
    ax.add_collection(LineCollection(trails, colors=colours, linewidths=0.6, alpha=0.5, zorder=7))
    if len(scene.route.path_xyz_m) > 1:
        ax.plot(*scene.route.path_xyz_m[:, :2].T, color=EGO_COLOUR, lw=2.5, alpha=0.15, zorder=5)
    alive = tr.valid[:, step]
    corners = box_corners_xy(
        tr.xyz_m[alive, step, :2], tr.heading_rad[alive, step], tr.size_lwh_m[alive, step, :2]
    )
    idx = np.nonzero(alive)[0]
    face = [
        EGO_COLOUR if i == scene.ego_index else TYPE_COLOURS[ObjectType(int(t))]
        for i, t in zip(idx, tr.object_type[alive], strict=True)
    ]
    ax.add_collection(
        PolyCollection(list(corners), facecolors=face, edgecolors="black", linewidths=0.4, zorder=8)
    )


def draw_scene(
    scene: Scene, out: str | Path, step: int | None = None, view_radius_m: float | None = None
) -> Path:
    """Write a bird's-eye PNG of ``scene`` at ``step`` (default: the middle step)."""
    step = scene.num_steps // 2 if step is None else int(np.clip(step, 0, scene.num_steps - 1))
    fig, ax = plt.subplots(figsize=(9, 9), dpi=110)
    draw_map(ax, scene, step)
    draw_tracks(ax, scene, step)
    tr = scene.tracks
    ego_pts = tr.xyz_m[scene.ego_index, tr.valid[scene.ego_index], :2]
    if view_radius_m is None:
        lo, hi = ego_pts.min(0), ego_pts.max(0)
        centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2 + 35.0, 50.0)
    else:
        centre, half = ego_pts[len(ego_pts) // 2], view_radius_m
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_aspect("equal")
    ax.set_facecolor("#f8fafc")
    ax.set_title(
        f"{scene.source}: {scene.scene_id}  (t = {step * scene.dt_s:.1f} s, "
        f"{scene.num_objects} objects)",
        fontsize=10,
    )
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    handles = [
        plt.Line2D([], [], marker="s", ls="", color=c, label=t.name.lower())
        for t, c in TYPE_COLOURS.items()
    ]
    handles.append(plt.Line2D([], [], marker="s", ls="", color=EGO_COLOUR, label="ego"))
    ax.legend(handles=handles, loc="upper right", fontsize=8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    return out
