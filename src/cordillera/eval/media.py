"""What a run folder keeps for its report besides arrays: camera-ring snapshots rendered from
the simulated states, and each scene's vector map around the ego's drive.

Both are produced once, at evaluation time, so ``cordillera report`` rebuilds a report from a
run folder alone (no scene files, no renderer).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import shapely
import torch

from cordillera.eval.results import MapLayers, RolloutMeta, RunArrays, Snapshot
from cordillera.scene.model import Scene
from cordillera.scene.polylines import Polylines
from cordillera.scene.types import RoadLineType
from cordillera.sim.simulator import Simulator
from cordillera.sim.state import SimState

if TYPE_CHECKING:
    from cordillera.eval.runner import EvalConfig
    from cordillera.sensors.world import RenderBatch

MAP_MARGIN_M = 80.0
"""Map kept around the ego's drive: the viewer shows 40 m around the ego, zoomable to 2x."""
MAP_SIMPLIFY_M = 0.1
"""Douglas-Peucker tolerance of map polylines: invisible at report scale, ~3x fewer points."""
SNAPSHOT_JPEG_QUALITY = 82
SNAPSHOT_TEXEL_M = 0.2
"""Ground textures of the snapshots: 20 cm texels are plenty for report thumbnails and cost a
quarter of the default 10 cm (the static map dominates a snapshot's cost)."""


def _take_rows(batch: RenderBatch, rows: torch.Tensor) -> RenderBatch:
    """The snapshots ``rows`` of a render batch (every per-snapshot tensor is ``(B, ...)``)."""
    changes = {
        f.name: getattr(batch, f.name).index_select(0, rows)
        for f in dataclasses.fields(batch)
        if isinstance(getattr(batch, f.name), torch.Tensor)
    }
    return dataclasses.replace(batch, **changes)


def snapshot_frames(num_frames: torch.Tensor, count: int) -> torch.Tensor:
    """``(B, count)`` frames evenly spaced from the first to the last frame inside each
    rollout's scene (``num_frames`` ``(B,)``)."""
    frac = torch.linspace(0.0, 1.0, count, device=num_frames.device)
    if count == 1:
        frac = torch.full((1,), 0.5, device=num_frames.device)
    return torch.round(frac * (num_frames - 1).unsqueeze(1).float()).long()


def render_snapshots(
    sim: Simulator,
    scenes: Sequence[Scene],
    states: Sequence[SimState],
    num_frames: torch.Tensor,
    cfg: EvalConfig,
    out_dir: Path,
) -> dict[int, tuple[Snapshot, ...]]:
    """Render the camera ring (and a bird's-eye raster in its centre) of the first repeat of
    every scene at ``cfg.camera_snapshots`` times; write ``cameras/<row>_<k>.jpg``.

    One batched render per snapshot index k: each rollout's state at its own k-th time is
    gathered from the recorded ``states`` (frame f is ``states[f]``).
    """
    from cordillera.sensors.bev import BevConfig, bev_to_rgb, render_bev
    from cordillera.sensors.ground import GroundConfig
    from cordillera.sensors.montage import ring_montage
    from cordillera.sensors.presets import get_rig
    from cordillera.sensors.renderer import get_renderer
    from cordillera.sensors.sim_frames import render_batch_from_state
    from cordillera.sensors.world import static_map_for

    rig = get_rig(cfg.camera_rig, cfg.camera_width_px, cfg.camera_height_px, scene=scenes[0])
    renderer = get_renderer("raster")
    ground = GroundConfig(resolution_m=SNAPSHOT_TEXEL_M, margin_m=MAP_MARGIN_M, mip_levels=3)
    maps = [static_map_for(s, ground) for s in scenes]
    b = sim.batch_size
    dev = num_frames.device
    rows = torch.arange(b, device=dev)
    keep = rows[rows % cfg.repeats == 0]  # the report shows the first repeat of each scene
    frames = snapshot_frames(num_frames, cfg.camera_snapshots)  # (B, k)
    xy = torch.stack([s.xy_m for s in states], 1)  # (B, F, N, 2)
    heading = torch.stack([s.heading_rad for s in states], 1)
    valid = torch.stack([s.valid for s in states], 1)
    folder = out_dir / "cameras"
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[int, list[Snapshot]] = {int(r): [] for r in keep}
    bev_cfg = BevConfig(height_px=160, width_px=160, resolution_m=0.5)
    for k in range(frames.shape[1]):  # a handful of snapshot times, each one batched render
        f = frames[:, k]
        state = states[0].replace(
            step=states[0].step + f,
            xy_m=xy[rows, f],
            heading_rad=heading[rows, f],
            valid=valid[rows, f],
        )
        with torch.inference_mode():
            batch = _take_rows(render_batch_from_state(sim, state, maps), keep)
            rgb = renderer.render(batch, rig).rgb.contiguous().cpu().numpy()
            bev = bev_to_rgb(render_bev(batch, bev_cfg)).cpu().numpy()
        for i, r in enumerate(keep.tolist()):  # write one picture per kept rollout
            frame = int(f[r])
            t_s = round(frame * sim.dt_s, 3)
            scene = scenes[int(sim.scene_of[r])]
            title = f"{scene.scene_id}   t = {t_s:.1f} s"
            img = ring_montage(rgb[i], rig, bev[i], title)
            name = f"cameras/{r:03d}_{k}.jpg"
            img.convert("RGB").save(out_dir / name, quality=SNAPSHOT_JPEG_QUALITY, optimize=True)
            out[r].append(Snapshot(frame, t_s, name))
    return {r: tuple(v) for r, v in out.items()}


def _layer(
    poly: Polylines,
    origin: npt.NDArray[np.float64],
    lo: npt.NDArray[np.float64],
    hi: npt.NDArray[np.float64],
    select: npt.NDArray[np.bool_] | None = None,
) -> list[list[float]]:
    """Polylines (local frame, simplified, rounded to 1 cm) that reach into ``[lo, hi]``."""
    if len(poly) == 0:
        return []
    keep = poly.num_points >= 2
    if select is not None:
        keep &= select
    owner = poly.point_owner
    xy = poly.points_m[:, :2] - origin
    inside = np.all((xy >= lo) & (xy <= hi), axis=1)
    near = np.zeros(len(poly), bool)
    near[owner[inside]] = True
    keep &= near
    idx = np.nonzero(keep)[0]
    if len(idx) == 0:
        return []
    pts_mask = keep[owner]
    # Kept polylines renumbered 0..len(idx)-1: shapely wants every target index filled.
    lines = shapely.linestrings(xy[pts_mask], indices=np.searchsorted(idx, owner[pts_mask]))
    lines = shapely.simplify(lines, MAP_SIMPLIFY_M)
    coords, which = shapely.get_coordinates(lines, return_index=True)
    coords = np.round(coords, 2)
    splits = np.searchsorted(which, np.arange(1, len(lines)))
    return [c.ravel().tolist() for c in np.split(coords, splits) if len(c) >= 2]


def map_layers(
    scene: Scene,
    origin_world_xy_m: npt.NDArray[np.float64],
    lo_m: npt.NDArray[np.float64],
    hi_m: npt.NDArray[np.float64],
) -> MapLayers:
    """The scene's map in its local frame (world minus ``origin_world_xy_m``), restricted to
    features reaching into the box ``[lo_m, hi_m]`` (local frame)."""
    m = scene.map
    types = m.road_line_type
    yellow = np.isin(types, [int(t) for t in RoadLineType if t.is_yellow])
    dashed = np.isin(types, [int(t) for t in RoadLineType if t.is_dashed])
    painted = types != int(RoadLineType.VIRTUAL)
    args = (origin_world_xy_m, lo_m, hi_m)
    stop_signs = m.stop_sign_xyz_m[:, :2] - origin_world_xy_m
    return {
        "drivable": _layer(m.drivable_areas, *args),
        "crosswalks": _layer(m.crosswalks, *args),
        "lanes": _layer(m.lanes, *args),
        "white": _layer(m.road_lines, *args, painted & ~yellow & ~dashed),
        "white_dashed": _layer(m.road_lines, *args, painted & ~yellow & dashed),
        "yellow": _layer(m.road_lines, *args, painted & yellow & ~dashed),
        "yellow_dashed": _layer(m.road_lines, *args, painted & yellow & dashed),
        "edges": _layer(m.road_edges, *args),
        "stop_lines": _layer(m.stop_lines, *args),
        "stop_signs": [np.round(stop_signs, 2).ravel().tolist()],
    }


def scene_maps(
    scenes: Sequence[Scene], sim: Simulator, arrays: RunArrays, rollouts: Sequence[RolloutMeta]
) -> tuple[MapLayers, ...]:
    """Per scene, the map around where its rollouts' egos drove and where its log ego went."""
    origin = sim.batch.origin_world_xy_m.double().cpu().numpy()
    rows = np.arange(arrays.xy_m.shape[0])
    ego_xy = arrays.xy_m[rows, :, arrays.ego_index]  # (B, F, 2)
    out = []
    for u, scene in enumerate(scenes):  # once per scene
        mine = [r.row for r in rollouts if r.scene_index == u]
        pts = [arrays.log_ego_xy_m[r][arrays.log_ego_valid[r]] for r in mine]
        pts += [ego_xy[r, : rollouts[r].num_frames] for r in mine]
        allp = np.concatenate([p for p in pts if len(p)] or [np.zeros((1, 2))]).astype(np.float64)
        lo, hi = allp.min(0) - MAP_MARGIN_M, allp.max(0) + MAP_MARGIN_M
        out.append(map_layers(scene, origin[u], lo, hi))
    return tuple(out)
