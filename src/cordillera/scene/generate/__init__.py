"""Procedural scenes: Cordillera's embedded default, no data needed.

Generated scenes are full scenes of the same model as converted real logs — a vector map
(lanes with successors, neighbours and speed limits; painted lines; curbs; drivable areas;
crosswalks; stop lines and signs), every object's track at 10 Hz, signal states per step, the
ego's route and metadata — so everything downstream treats them alike. They are seeded and
deterministic: the same ``(kind, seed)`` gives bit-identical arrays.

Public API: :func:`generate_suite`, :func:`generate_scene`, :data:`SUITES`, :data:`KINDS`,
:data:`LAYOUTS`, :data:`VARIANTS`. :func:`plan_scene` exposes the simulated plan (agents and
traffic model input) for counterfactual re-simulation.
"""

from cordillera.scene.generate.suites import (
    KINDS,
    LAYOUTS,
    SUITES,
    VARIANTS,
    Suite,
    generate_scene,
    generate_suite,
    plan_scene,
)

__all__ = [
    "KINDS",
    "LAYOUTS",
    "SUITES",
    "VARIANTS",
    "Suite",
    "generate_scene",
    "generate_suite",
    "plan_scene",
]
