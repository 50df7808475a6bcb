"""The renderer interface: anything that turns a :class:`RenderBatch` into camera images.

The rasterizer is the default implementation. A learned or remote renderer (e.g. a neural
renderer behind gRPC, provided by the services package) plugs in by wrapping its function in a
:class:`CallableRenderer`, registered by name; callers only ever see :class:`Renderer`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from torch import Tensor

from cordillera.errors import ConfigError

if TYPE_CHECKING:
    from cordillera.sensors.rig import CameraRig
    from cordillera.sensors.world import RenderBatch


@dataclass(frozen=True, eq=False)
class CameraFrames:
    """Images of C cameras for B snapshots.

    Attributes:
        rgb: ``(B, C, H, W, 3)`` uint8 RGB (may be a strided view; call ``.contiguous()`` when a
            dense buffer is needed).
        depth: ``(B, C, H, W)`` float32 camera depth (z in the camera frame), metres; ``inf`` for
            sky; ``None`` when the renderer does not produce depth.
        object_index: ``(B, C, H, W)`` int32 index of the object seen at each pixel (into the
            batch's N objects), -1 for none; ``None`` when not produced.
        footprint_px: ``(B, C, N)`` int64 pixels each object would cover alone (its silhouette,
            for :func:`~cordillera.sensors.projection.visible_fraction`); ``None`` when not
            produced.
        camera_names: the C camera names, in order.
    """

    rgb: Tensor
    depth: Tensor | None
    object_index: Tensor | None
    footprint_px: Tensor | None
    camera_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.rgb.dim() != 5 or self.rgb.shape[-1] != 3:
            raise ConfigError(f"CameraFrames.rgb must be (B, C, H, W, 3), got {self.rgb.shape}")
        if self.rgb.shape[1] != len(self.camera_names):
            raise ConfigError(
                f"CameraFrames has {self.rgb.shape[1]} cameras but names {self.camera_names}"
            )
        for name in ("depth", "object_index"):
            t = getattr(self, name)
            if t is not None and tuple(t.shape) != tuple(self.rgb.shape[:4]):
                raise ConfigError(
                    f"CameraFrames.{name} shape {tuple(t.shape)} != {tuple(self.rgb.shape[:4])}"
                )


@runtime_checkable
class Renderer(Protocol):
    """Renders every camera of a rig for every snapshot of a batch."""

    def render(self, batch: RenderBatch, rig: CameraRig) -> CameraFrames: ...


RenderFn = Callable[["RenderBatch", "CameraRig"], CameraFrames]


class CallableRenderer:
    """Adapts a plain function ``fn(batch, rig) -> CameraFrames`` to :class:`Renderer`.

    This is how an external renderer is plugged in: the services package wraps its gRPC client
    call in a function with that signature. The adapter checks that the function returned one
    frame per snapshot and camera at the rig's resolution, so a broken backend fails loudly here
    rather than deep inside a policy.
    """

    def __init__(self, fn: RenderFn, name: str = "callable") -> None:
        if not callable(fn):
            raise ConfigError(f"CallableRenderer needs a callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = name

    def render(self, batch: RenderBatch, rig: CameraRig) -> CameraFrames:
        frames = self.fn(batch, rig)
        if not isinstance(frames, CameraFrames):
            raise ConfigError(
                f"renderer {self.name!r} returned {type(frames).__name__}, not CameraFrames"
            )
        h, w = rig.resolution_hw
        want = (batch.batch_size, rig.num_cameras, h, w, 3)
        if tuple(frames.rgb.shape) != want:
            raise ConfigError(
                f"renderer {self.name!r} returned rgb {tuple(frames.rgb.shape)}, expected {want}"
            )
        return frames


_REGISTRY: dict[str, Callable[[], Renderer]] = {}


def register_renderer(name: str, factory: Callable[[], Renderer]) -> None:
    """Make ``get_renderer(name)`` build a renderer with ``factory()``; names are unique."""
    if name in _REGISTRY:
        raise ConfigError(f"renderer {name!r} is already registered")
    _REGISTRY[name] = factory


def get_renderer(name: str = "raster") -> Renderer:
    """A new renderer by registered name (``raster`` is always available)."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown renderer {name!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name]()


def renderer_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def _raster() -> Renderer:
    from cordillera.sensors.raster import Rasterizer  # avoids an import cycle with raster.py

    return Rasterizer()


register_renderer("raster", _raster)
