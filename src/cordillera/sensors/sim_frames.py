"""Render batches from simulator states, so closed-loop rollouts can be seen by cameras."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cordillera.errors import ConfigError
from cordillera.sensors.world import RenderBatch, StaticMap
from cordillera.sim.simulator import Simulator
from cordillera.sim.state import SimState


def render_batch_from_state(
    sim: Simulator, state: SimState, maps: Sequence[StaticMap]
) -> RenderBatch:
    """A :class:`RenderBatch` of every rollout of ``state``, seen from each rollout's ego.

    ``maps[u]`` is the prepared static map (:func:`~cordillera.sensors.world.static_map_for`)
    of scene ``u`` of the simulator's batch. The simulator works in each scene's local frame;
    the renderer in its world frame, so the scene origin is added back here.
    """
    bt = sim.batch
    if len(maps) != bt.num_scenes:
        raise ConfigError(f"need one static map per scene ({bt.num_scenes}), got {len(maps)}")
    b, _n = state.valid.shape
    u = sim.scene_of
    origin = bt.origin_world_xy_m.index_select(0, u).to(torch.float64)  # (B, 2)
    rows = torch.arange(b, device=u.device)
    ego = sim.ego_index
    ego_xy = state.xy_m[rows, ego].to(torch.float64) + origin
    pose = torch.cat([ego_xy, state.heading_rad[rows, ego].unsqueeze(-1).double()], -1)
    xy = state.xy_m.to(torch.float64) + origin.unsqueeze(1)
    lw = sim.size_lw_m
    height = bt.height_m.index_select(0, u)
    # Flat world: the box stands on the ground.
    boxes = torch.cat(
        [
            xy,
            (height / 2).unsqueeze(-1).double(),
            lw.double(),
            height.unsqueeze(-1).double(),
            state.heading_rad.unsqueeze(-1).double(),
        ],
        -1,
    )
    valid = state.valid.clone()
    valid[rows, ego] = False
    s_count = bt.signal_xy_m.shape[1]
    sig = torch.arange(s_count, device=u.device).view(1, s_count)
    t = state.step.clamp(max=bt.max_steps - 1).view(b, 1)
    sig_xy = bt.signal_xy_m[u.view(b, 1), sig].double() + origin.unsqueeze(1)
    sig_xyz = torch.cat([sig_xy, torch.zeros_like(sig_xy[..., :1])], -1)
    f32 = torch.float32
    return RenderBatch(
        ego_pose_world=pose.to(f32),
        boxes_world=boxes.to(f32),
        object_type=bt.object_type.index_select(0, u),
        object_valid=valid,
        signal_xyz_world=sig_xyz.to(f32),
        signal_state=bt.signal_state[u.view(b, 1), sig, t],
        signal_lane=torch.full((b, s_count), -1, dtype=torch.int64, device=u.device),
        signal_valid=bt.signal_valid[u.view(b, 1), sig],
        map_index=u.clone(),
        maps=tuple(maps),
    )
