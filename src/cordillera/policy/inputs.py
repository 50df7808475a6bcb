"""Build what a policy observes (:class:`PolicyInput`) from simulator states, every decision.

The builder keeps the history a policy asked for — the ego's past positions and, for camera
policies, a rolling buffer of past frames per camera — and renders the camera ring and the
bird's-eye raster only when requested.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cordillera.env.observations import ObservationConfig, Observer
from cordillera.policy.base import ObservationRequest, PolicyInput
from cordillera.policy.plan import to_ego_frame
from cordillera.scene.model import Scene
from cordillera.sensors.bev import render_bev
from cordillera.sensors.presets import get_rig
from cordillera.sensors.renderer import get_renderer
from cordillera.sensors.sim_frames import render_batch_from_state
from cordillera.sensors.world import static_map_for
from cordillera.sim.simulator import Simulator
from cordillera.sim.state import SimState
from cordillera.sim.traffic import track_path_progress, uniform_path_lookup

ROUTE_POINTS = 10
ROUTE_SPACING_M = 5.0


class InputBuilder:
    """Turns the states of a simulator's rollouts into :class:`PolicyInput`.

    Args:
        sim: the simulator (its scenes, in batch order, are ``scenes``).
        scenes: the simulator batch's scenes (for static maps and camera calibration).
        request: what the policy observes.
    """

    def __init__(
        self, sim: Simulator, scenes: Sequence[Scene], request: ObservationRequest
    ) -> None:
        self.sim = sim
        self.request = request
        self.observer = (
            Observer(sim.batch, sim.scene_of, ObservationConfig()) if (request.vector) else None
        )
        self.maps = [static_map_for(s) for s in scenes] if (request.cameras or request.bev) else []
        cam = request.cameras
        self.rig = get_rig(cam.rig, cam.width_px, cam.height_px, scene=scenes[0]) if cam else None
        self.renderer = get_renderer("raster") if cam else None
        self._history: list[SimState] = []
        self._frames: torch.Tensor | None = None
        self._progress: torch.Tensor | None = None

    def reset(self, state: SimState) -> None:
        """Forget the history; ``state`` is the first of new episodes."""
        self._history = [state]
        self._frames = None
        b = state.batch_size
        ego = self.sim.ego_index.view(b, 1)
        self._progress = torch.gather(self.sim.log_s_at(state.step), 1, ego)

    def __call__(self, state: SimState) -> PolicyInput:
        """The inputs of the decision at ``state`` (call once per simulation step)."""
        req = self.request
        sim = self.sim
        b = state.batch_size
        rows = torch.arange(b, device=state.step.device)
        ego = sim.ego_index
        if not self._history or self._history[-1] is not state:
            self._history.append(state)
        self._history = self._history[-req.ego_history_steps :]
        past = list(self._history)
        while len(past) < req.ego_history_steps:  # pad before the first step with it
            past.insert(0, past[0])
        hist = torch.stack([s.xy_m[rows, ego] for s in past], 1)  # (B, H, 2)
        xy, heading = state.xy_m[rows, ego], state.heading_rad[rows, ego]

        # Route ahead: the ego's logged path, from its current progress along it.
        assert self._progress is not None, "reset() first"
        ego_col = ego.view(b, 1)
        self._progress = track_path_progress(
            sim.batch, sim.scene_of, ego_col, xy.unsqueeze(1), self._progress
        )
        ahead = self._progress.unsqueeze(-1) + ROUTE_SPACING_M * torch.arange(
            1, ROUTE_POINTS + 1, device=xy.device
        )
        route, _ = uniform_path_lookup(sim.batch, sim.scene_of, ahead, ego_col)

        vector = bev = cameras = None
        names: tuple[str, ...] = ()
        if self.observer is not None:
            length = sim.batch.log_s_m[
                sim.scene_of.view(b, 1),
                ego_col,
                (sim.batch.num_steps.index_select(0, sim.scene_of) - 1).view(b, 1),
            ]
            vector = self.observer(state, ego_col, self._progress, length)[:, 0]
        if req.bev or req.cameras:
            batch = render_batch_from_state(sim, state, self.maps)
            if req.bev:
                bev = render_bev(batch)
            if req.cameras is not None:
                assert self.renderer is not None and self.rig is not None
                frame = self.renderer.render(batch, self.rig).rgb.contiguous()  # (B, C, H, W, 3)
                cameras = self._push_frame(frame, state)
                names = tuple(c.name for c in self.rig.cameras)
        return PolicyInput(
            time_s=state.step.float() * sim.dt_s,
            ego_history_ego_m=to_ego_frame(hist, xy, heading),
            ego_speed_mps=state.speed_mps[rows, ego],
            ego_accel_mps2=state.accel_mps2[rows, ego],
            ego_yaw_rate_rps=state.yaw_rate_rps[rows, ego],
            route_ego_m=to_ego_frame(route[:, 0], xy, heading),
            vector=vector,
            bev=bev,
            cameras=cameras,
            camera_names=names,
            sim=sim if req.privileged else None,
            state=state if req.privileged else None,
        )

    def _push_frame(self, frame: torch.Tensor, state: SimState) -> torch.Tensor:
        """Keep ``frames`` past frames per camera, ``frame_stride_steps`` apart (oldest first);
        before enough history exists the oldest available frame fills the gap."""
        cam = self.request.cameras
        assert cam is not None
        span = (cam.frames - 1) * cam.frame_stride_steps + 1
        if self._frames is None:
            self._frames = frame.unsqueeze(2).expand(-1, -1, span, -1, -1, -1).clone()
        else:
            self._frames = torch.cat([self._frames[:, :, 1:], frame.unsqueeze(2)], 2)
        pick = torch.arange(0, span, cam.frame_stride_steps, device=frame.device)
        return self._frames.index_select(2, pick)
