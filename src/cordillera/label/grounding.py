"""Camera frames of labelled keyframes and 2D groundings of the objects in them.

:func:`render_keyframes` renders, for K keyframe steps of a *logged* scene, the F most recent
frames of every camera (one :class:`~cordillera.sensors.world.RenderBatch`, one renderer call)
and measures, at each keyframe itself, every object's projected 2D box and visible fraction in
every camera. :func:`ground` turns those measurements into :class:`Grounding` records for the
causal objects of each keyframe.

Box convention (decided here, documented in ``docs/dataset.md``): ``bbox_xyxy`` is the
*amodal* box, i.e. the 2D hull of the object's 3D box projected into the image and clipped to
it, not the box of its visible pixels. It is exact (no pixel quantisation), stable from frame
to frame when the object is partly hidden, and marks where an occluded cause is (the jaywalker
behind a parked car) rather than the sliver of it that shows; how much of it shows is
``visible_fraction``, measured on the rendered per-pixel object map. For an unoccluded object
the two boxes agree to within a pixel. Boxes are projected standing on the rig's flat ground,
as the rasterizer draws them, so box and image agree on sloped logs too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from cordillera.errors import ConfigError
from cordillera.policy.plan import Grounding
from cordillera.scene.model import Scene
from cordillera.sensors.presets import get_rig
from cordillera.sensors.projection import (
    RigTensors,
    project_boxes,
    visible_fraction,
    world_to_ego_boxes,
)
from cordillera.sensors.renderer import Renderer, get_renderer
from cordillera.sensors.rig import CameraRig
from cordillera.sensors.world import RenderBatch

DEFAULT_FRAMES = 4
"""Camera frames stored per keyframe (the keyframe and the 3 before it)."""
DEFAULT_STRIDE_STEPS = 5
"""Steps between stored frames: 0.5 s at 10 Hz, so 4 frames span 1.5 s of history."""


@dataclass(frozen=True, eq=False)
class KeyframeImages:
    """Camera frames of K keyframes and per-object measurements at each keyframe.

    Attributes:
        scene_id: the scene rendered.
        rig_name: the rig's name (``ring7``, ``av2``, ...).
        camera_names: the C camera names, in rig order (the camera axis below).
        steps: ``(K,)`` int64 keyframe steps.
        frame_steps: ``(K, F)`` int64 step of each frame, oldest first; the last column is
            ``steps``. Steps before the log start (or before the ego is first logged) are
            clamped to the first renderable step, so early keyframes repeat their first frame.
        time_offset_s: ``(K, F)`` float64 frame time relative to its keyframe (<= 0).
        rgb: ``(K, F, C, H, W, 3)`` uint8 RGB images.
        object_ids: ``(N,)`` the scene's track ids (the object axis below).
        bbox_xyxy_px: ``(K, C, N, 4)`` float32 amodal 2D box of each object at the keyframe,
            pixels ``(x0, y0, x1, y1)`` clipped to the image; zeros where not in view.
        in_view: ``(K, C, N)`` bool: the object is logged at the keyframe (and is not the ego),
            part of it is in front of the camera and its box overlaps the image.
        visible_fraction: ``(K, C, N)`` float32 in [0, 1]: share of the object's in-image
            silhouette not hidden by other objects (0 where it is not drawn at all, e.g. beyond
            the renderer's range).
    """

    scene_id: str
    rig_name: str
    camera_names: tuple[str, ...]
    steps: npt.NDArray[np.int64]
    frame_steps: npt.NDArray[np.int64]
    time_offset_s: npt.NDArray[np.float64]
    rgb: npt.NDArray[np.uint8]
    object_ids: tuple[str, ...]
    bbox_xyxy_px: npt.NDArray[np.float32]
    in_view: npt.NDArray[np.bool_]
    visible_fraction: npt.NDArray[np.float32]

    def __post_init__(self) -> None:
        k, c, n = len(self.steps), len(self.camera_names), len(self.object_ids)
        f = self.frame_steps.shape[1] if self.frame_steps.ndim == 2 else -1
        want = {
            "steps": (k,),
            "frame_steps": (k, f),
            "time_offset_s": (k, f),
            "bbox_xyxy_px": (k, c, n, 4),
            "in_view": (k, c, n),
            "visible_fraction": (k, c, n),
        }
        for name, shape in want.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ConfigError(f"KeyframeImages.{name}: shape {got}, expected {shape}")
        if self.rgb.ndim != 6 or self.rgb.shape[:3] != (k, f, c) or self.rgb.shape[-1] != 3:
            raise ConfigError(
                f"KeyframeImages.rgb: shape {self.rgb.shape}, expected ({k}, {f}, {c}, H, W, 3)"
            )
        if self.rgb.dtype != np.uint8:
            raise ConfigError(f"KeyframeImages.rgb: dtype {self.rgb.dtype}, expected uint8")

    @property
    def num_frames(self) -> int:
        return int(self.frame_steps.shape[1])

    def keyframe_index(self, step: int) -> int:
        """Position of keyframe ``step`` on the K axis."""
        hit = np.nonzero(self.steps == step)[0]
        if len(hit) == 0:
            raise ConfigError(
                f"scene {self.scene_id!r}: step {step} is not a rendered keyframe "
                f"(rendered: {self.steps.tolist()})"
            )
        return int(hit[0])


def rig_for_scene(scene: Scene, width_px: int, height_px: int) -> tuple[str, CameraRig]:
    """The rig to label ``scene`` with: Argoverse 2's real rig when the scene carries camera
    calibration (``extra["cameras"]``, AV2 sensor logs), else the 7-camera ring; every camera
    at ``width_px x height_px`` (fields of view kept)."""
    name = "av2" if scene.extra.get("cameras") else "ring7"
    return name, get_rig(name, width_px, height_px, scene=scene)


def frame_steps_for(
    scene: Scene, steps: Sequence[int], frames: int, stride_steps: int
) -> npt.NDArray[np.int64]:
    """``(K, F)`` steps ``s - (F-1)*stride ... s`` per keyframe ``s``, each moved forward to the
    first step at which the ego is logged (the viewpoint must exist); raises
    :class:`ConfigError` for a keyframe outside the log or where the ego is not logged."""
    if frames < 1 or stride_steps < 1:
        raise ConfigError(f"frames {frames!r} and stride_steps {stride_steps!r} must be >= 1")
    s = np.asarray(list(steps), np.int64)
    if s.ndim != 1 or len(s) == 0:
        raise ConfigError(f"steps must be a non-empty list of ints, got {steps!r}")
    ego_valid = scene.tracks.valid[scene.ego_index]
    bad = (s < 0) | (s >= scene.num_steps)
    if bad.any() or not ego_valid[np.where(bad, 0, s)].all():
        first = int(s[bad | ~ego_valid[np.clip(s, 0, scene.num_steps - 1)]][0])
        raise ConfigError(
            f"keyframe step {first} of scene {scene.scene_id!r} is outside [0, "
            f"{scene.num_steps}) or the ego is not logged there"
        )
    want = s[:, None] - stride_steps * np.arange(frames - 1, -1, -1, dtype=np.int64)[None]
    # Next logged ego step at or after each wanted step; the keyframe itself is logged, so the
    # search never runs past it.
    logged = np.nonzero(ego_valid)[0]
    return logged[np.searchsorted(logged, np.maximum(want, 0))].astype(np.int64)


def render_keyframes(
    scene: Scene,
    steps: Sequence[int],
    rig: CameraRig,
    frames: int = DEFAULT_FRAMES,
    stride_steps: int = DEFAULT_STRIDE_STEPS,
    renderer: Renderer | None = None,
) -> KeyframeImages:
    """Render the past ``frames`` frames of every camera for each keyframe step of the logged
    ``scene`` and measure every object at the keyframes (see :class:`KeyframeImages`).

    All distinct frame steps are rendered in one batch (keyframes closer than the history span
    share frames). Memory is about ``distinct steps x C x H x W x 12`` bytes for colour, depth
    and object index, so callers with long logs at high resolution pass keyframes in chunks.
    The renderer (default ``raster``) must produce ``object_index`` and ``footprint_px``.
    """
    frame_steps = frame_steps_for(scene, steps, frames, stride_steps)
    unique, inverse = np.unique(frame_steps, return_inverse=True)
    inverse = inverse.reshape(frame_steps.shape)
    batch = RenderBatch.from_scene(scene, unique.tolist())
    renderer = renderer or get_renderer("raster")
    out = renderer.render(batch, rig)
    if out.object_index is None or out.footprint_px is None:
        raise ConfigError(
            "grounding needs a renderer that returns object_index and footprint_px; "
            f"{getattr(renderer, 'name', type(renderer).__name__)!r} returned none"
        )
    rgb = out.rgb.contiguous().cpu().numpy()[inverse]  # (K, F, C, H, W, 3)
    key_rows = torch.as_tensor(inverse[:, -1], device=out.object_index.device)
    vis = visible_fraction(out.object_index[key_rows], out.footprint_px[key_rows])
    bbox, in_view = _project_at(batch, key_rows.to(batch.device), rig)
    keys = frame_steps[:, -1]
    return KeyframeImages(
        scene_id=scene.scene_id,
        rig_name=rig.name,
        camera_names=rig.names,
        steps=keys,
        frame_steps=frame_steps,
        time_offset_s=((frame_steps - keys[:, None]) * float(scene.dt_s)).astype(np.float64),
        rgb=rgb,
        object_ids=tuple(str(i) for i in scene.tracks.object_id),
        bbox_xyxy_px=bbox.cpu().numpy(),
        in_view=in_view.cpu().numpy(),
        visible_fraction=vis.cpu().numpy().astype(np.float32),
    )


def _project_at(
    batch: RenderBatch, rows: torch.Tensor, rig: CameraRig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Amodal 2D boxes ``(K, C, N, 4)`` and in-view flags ``(K, C, N)`` of the objects of
    snapshots ``rows`` of ``batch``, standing on the rig's ground plane like the rasterizer
    draws them (its logged z is ignored)."""
    boxes = world_to_ego_boxes(batch.boxes_world[rows], batch.ego_pose_world[rows])
    boxes[..., 2] = -float(rig.ego_origin_height_m) + boxes[..., 5] / 2
    bbox, in_view = project_boxes(boxes, RigTensors.from_rig(rig, device=batch.device))
    in_view = in_view & batch.object_valid[rows][:, None, :]
    return torch.where(in_view[..., None], bbox, torch.zeros_like(bbox)), in_view


def ground(
    images: KeyframeImages,
    object_ids: Sequence[Sequence[str]],
    min_visible_fraction: float = 0.0,
) -> list[tuple[Grounding, ...]]:
    """Groundings of ``object_ids[k]`` (e.g. the causes, strongest first) at keyframe ``k``.

    For each id in the given order, one :class:`Grounding` per camera, in camera order, where
    the object is in view with a positive-area box and its visible fraction exceeds
    ``min_visible_fraction``. Ids that are not tracks of the scene (map causes such as
    ``"light:<lane>"`` or ``"road"``) have no groundings.
    """
    if len(object_ids) != len(images.steps):
        raise ConfigError(
            f"{len(object_ids)} object-id lists for {len(images.steps)} keyframes "
            f"of scene {images.scene_id!r}"
        )
    if not 0.0 <= min_visible_fraction < 1.0:
        raise ConfigError(f"min_visible_fraction {min_visible_fraction!r} not in [0, 1)")
    column = {oid: i for i, oid in enumerate(images.object_ids)}
    box = images.bbox_xyxy_px
    ok = (
        images.in_view
        & (images.visible_fraction > min_visible_fraction)
        & (box[..., 2] > box[..., 0])
        & (box[..., 3] > box[..., 1])
    )  # (K, C, N)
    out: list[tuple[Grounding, ...]] = []
    for k, ids in enumerate(object_ids):  # a few causes per keyframe
        found: list[Grounding] = []
        for oid in ids:
            n = column.get(oid)
            if n is None:
                continue
            for c in np.nonzero(ok[k, :, n])[0]:
                x0, y0, x1, y1 = (float(v) for v in box[k, c, n])
                found.append(
                    Grounding(
                        camera=images.camera_names[int(c)],
                        object_id=oid,
                        bbox_xyxy=(x0, y0, x1, y1),
                        visible_fraction=float(images.visible_fraction[k, c, n]),
                    )
                )
        out.append(tuple(found))
    return out
