"""What the sensors see: a typed batch of B world snapshots (scenes × times) as tensors.

The simulator builds the same :class:`RenderBatch` from its state each step (ego pose, boxes,
signal states, and the index of each rollout's prepared :class:`StaticMap`); offline tools
build one from logged scenes with :meth:`RenderBatch.from_scene` / :meth:`from_scenes`.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from cordillera.errors import ConfigError
from cordillera.scene.model import Scene
from cordillera.sensors.ground import GroundConfig, StaticMap, prepare_static_map

_MAP_CACHE: weakref.WeakKeyDictionary[Scene, StaticMap] = weakref.WeakKeyDictionary()


def static_map_for(scene: Scene, config: GroundConfig | None = None) -> StaticMap:
    """The scene's prepared static map; cached per scene object for the default config."""
    if config is not None and config != GroundConfig():
        return prepare_static_map(scene, config)
    cached = _MAP_CACHE.get(scene)
    if cached is None:
        cached = prepare_static_map(scene)
        _MAP_CACHE[scene] = cached
    return cached


@dataclass(frozen=True, eq=False)
class RenderBatch:
    """B snapshots to render. All tensors share one device; coordinates are each snapshot's
    scene world frame (metres, radians CCW from +x).

    Attributes:
        ego_pose_world: ``(B, 3)`` float32 ego ``(x_m, y_m, yaw_rad)``: the ego frame's origin
            (the rig's reference point) and heading.
        boxes_world: ``(B, N, 7)`` float32 object boxes ``(x, y, z, length, width, height,
            yaw)``, centre in the world frame.
        object_type: ``(B, N)`` int64 :class:`~cordillera.scene.types.ObjectType`.
        object_valid: ``(B, N)`` bool; invalid rows (padding, the ego itself) are not drawn.
        signal_xyz_world: ``(B, S, 3)`` float32 traffic-signal stop points.
        signal_state: ``(B, S)`` int64 :class:`~cordillera.scene.types.SignalState`.
        signal_lane: ``(B, S)`` int64 controlled lane of each signal (index in its map), -1.
        signal_valid: ``(B, S)`` bool.
        map_index: ``(B,)`` int64 index into ``maps`` of each snapshot's static map.
        maps: the prepared static maps (textures live on the same device as the tensors).
    """

    ego_pose_world: Tensor
    boxes_world: Tensor
    object_type: Tensor
    object_valid: Tensor
    signal_xyz_world: Tensor
    signal_state: Tensor
    signal_lane: Tensor
    signal_valid: Tensor
    map_index: Tensor
    maps: tuple[StaticMap, ...]

    def __post_init__(self) -> None:
        b = self.ego_pose_world.shape[0]
        n = self.boxes_world.shape[1] if self.boxes_world.dim() == 3 else -1
        s = self.signal_xyz_world.shape[1] if self.signal_xyz_world.dim() == 3 else -1
        want = {
            "ego_pose_world": ((b, 3), torch.float32),
            "boxes_world": ((b, n, 7), torch.float32),
            "object_type": ((b, n), torch.int64),
            "object_valid": ((b, n), torch.bool),
            "signal_xyz_world": ((b, s, 3), torch.float32),
            "signal_state": ((b, s), torch.int64),
            "signal_lane": ((b, s), torch.int64),
            "signal_valid": ((b, s), torch.bool),
            "map_index": ((b,), torch.int64),
        }
        for name, (shape, dtype) in want.items():
            t = getattr(self, name)
            if not isinstance(t, Tensor) or tuple(t.shape) != shape or t.dtype != dtype:
                got = (tuple(t.shape), t.dtype) if isinstance(t, Tensor) else type(t).__name__
                raise ConfigError(f"RenderBatch.{name}: got {got}, expected {shape} {dtype}")
            if t.device != self.ego_pose_world.device:
                raise ConfigError(
                    f"RenderBatch.{name} is on {t.device}, not {self.ego_pose_world.device}"
                )
        if b == 0 or not self.maps:
            raise ConfigError(
                f"RenderBatch needs B >= 1 and a map, got B={b}, {len(self.maps)} maps"
            )

    @property
    def batch_size(self) -> int:
        return int(self.ego_pose_world.shape[0])

    @property
    def num_objects(self) -> int:
        return int(self.boxes_world.shape[1])

    @property
    def device(self) -> torch.device:
        return self.ego_pose_world.device

    def validate(self) -> None:
        """Value checks (they synchronise with the device, so not run on construction)."""
        if bool(((self.map_index < 0) | (self.map_index >= len(self.maps))).any()):
            raise ConfigError(
                f"RenderBatch.map_index outside [0, {len(self.maps)}): {self.map_index.tolist()}"
            )
        ok = torch.isfinite(self.boxes_world).all(-1) | ~self.object_valid
        if not bool(ok.all()) or not bool(torch.isfinite(self.ego_pose_world).all()):
            raise ConfigError("RenderBatch has non-finite ego poses or valid boxes")

    def to(self, device: torch.device | str) -> RenderBatch:
        tensors = {
            f.name: getattr(self, f.name).to(device)
            for f in dataclasses.fields(self)
            if f.name != "maps"
        }
        return RenderBatch(**tensors, maps=tuple(m.to(device) for m in self.maps))

    @staticmethod
    def from_scene(
        scene: Scene,
        steps: Sequence[int],
        static_map: StaticMap | None = None,
    ) -> RenderBatch:
        """Snapshots of a logged scene at ``steps`` (the ego at each step is the viewpoint and
        is itself not drawn; object ``i`` of the batch is track ``i`` of the scene)."""
        steps_a = np.asarray(list(steps), np.int64)
        if steps_a.ndim != 1 or len(steps_a) == 0:
            raise ConfigError(f"steps must be a non-empty list of ints, got {steps!r}")
        bad = (steps_a < 0) | (steps_a >= scene.num_steps)
        if bad.any():
            raise ConfigError(
                f"step {int(steps_a[bad][0])} outside [0, {scene.num_steps}) "
                f"of scene {scene.scene_id!r}"
            )
        tr = scene.tracks
        e = scene.ego_index
        if not tr.valid[e, steps_a].all():
            s = int(steps_a[~tr.valid[e, steps_a]][0])
            raise ConfigError(
                f"the ego of scene {scene.scene_id!r} is not valid at step {s} "
                f"(t = {s * scene.dt_s:.2f} s)"
            )
        pose = np.stack(
            [tr.xyz_m[e, steps_a, 0], tr.xyz_m[e, steps_a, 1], tr.heading_rad[e, steps_a]], 1
        )
        boxes = np.concatenate(
            [tr.xyz_m[:, steps_a], tr.size_lwh_m[:, steps_a], tr.heading_rad[:, steps_a, None]], -1
        ).transpose(1, 0, 2)
        valid = tr.valid[:, steps_a].T.copy()
        valid[:, e] = False
        sig = scene.signals
        b = len(steps_a)
        s_n = sig.lane.shape[0]
        f32 = torch.float32
        return RenderBatch(
            ego_pose_world=torch.as_tensor(pose, dtype=f32),
            boxes_world=torch.as_tensor(boxes, dtype=f32),
            object_type=torch.as_tensor(np.repeat(tr.object_type[None], b, 0), dtype=torch.int64),
            object_valid=torch.as_tensor(valid),
            signal_xyz_world=torch.as_tensor(
                np.repeat(sig.stop_point_xyz_m[None], b, 0), dtype=f32
            ),
            signal_state=torch.as_tensor(sig.state[:, steps_a].T.copy(), dtype=torch.int64),
            signal_lane=torch.as_tensor(np.repeat(sig.lane[None], b, 0), dtype=torch.int64),
            signal_valid=torch.ones((b, s_n), dtype=torch.bool),
            map_index=torch.zeros(b, dtype=torch.int64),
            maps=(static_map or static_map_for(scene),),
        )

    @staticmethod
    def from_scenes(scenes: Sequence[Scene], steps: Sequence[Sequence[int]]) -> RenderBatch:
        """Snapshots of several scenes (``steps[i]`` of ``scenes[i]``), stacked and padded."""
        if len(scenes) != len(steps):
            raise ConfigError(f"{len(scenes)} scenes but {len(steps)} step lists")
        return RenderBatch.concat(
            [RenderBatch.from_scene(sc, st) for sc, st in zip(scenes, steps, strict=True)]
        )

    @staticmethod
    def concat(batches: Sequence[RenderBatch]) -> RenderBatch:
        """Stack batches along B, padding N and S with invalid rows and merging map lists."""
        if not batches:
            raise ConfigError("concat needs at least one RenderBatch")
        n = max(b.num_objects for b in batches)
        s = max(b.signal_xyz_world.shape[1] for b in batches)

        def pad(t: Tensor, size: int, value: float | bool) -> Tensor:
            extra = size - t.shape[1]
            if extra == 0:
                return t
            filler = torch.full(
                (t.shape[0], extra, *t.shape[2:]), value, dtype=t.dtype, device=t.device
            )
            return torch.cat([t, filler], 1)

        offsets = np.cumsum([0] + [len(b.maps) for b in batches])
        return RenderBatch(
            ego_pose_world=torch.cat([b.ego_pose_world for b in batches]),
            boxes_world=torch.cat([pad(b.boxes_world, n, 0.0) for b in batches]),
            object_type=torch.cat([pad(b.object_type, n, 0) for b in batches]),
            object_valid=torch.cat([pad(b.object_valid, n, False) for b in batches]),
            signal_xyz_world=torch.cat([pad(b.signal_xyz_world, s, 0.0) for b in batches]),
            signal_state=torch.cat([pad(b.signal_state, s, 0) for b in batches]),
            signal_lane=torch.cat([pad(b.signal_lane, s, -1) for b in batches]),
            signal_valid=torch.cat([pad(b.signal_valid, s, False) for b in batches]),
            map_index=torch.cat(
                [b.map_index + int(o) for b, o in zip(batches, offsets[:-1], strict=True)]
            ),
            maps=tuple(m for b in batches for m in b.maps),
        )
