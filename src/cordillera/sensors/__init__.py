"""Sensors: surround camera rigs, projection and grounding geometry, and batched rasterizers.

Dependency direction: ``scene -> sim -> sensors``; this package imports only :mod:`scene`.
"""

from cordillera.sensors.presets import get_rig, rig_from_av2_calibration, ring6, ring7
from cordillera.sensors.renderer import (
    CallableRenderer,
    CameraFrames,
    Renderer,
    get_renderer,
    register_renderer,
)
from cordillera.sensors.rig import CameraRig, PinholeCamera
from cordillera.sensors.world import RenderBatch

__all__ = [
    "CallableRenderer",
    "CameraFrames",
    "CameraRig",
    "PinholeCamera",
    "RenderBatch",
    "Renderer",
    "get_renderer",
    "get_rig",
    "register_renderer",
    "rig_from_av2_calibration",
    "ring6",
    "ring7",
]
