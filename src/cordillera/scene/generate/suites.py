"""Scene kinds and suites: what ``generate_scene`` and ``generate_suite`` can build.

A *kind* is a layout (``straight``, ``intersection``, ``t-junction``, ``merge``,
``roundabout``) or a long-tail variant (``stopped-vehicle``, ``jaywalker``, ``cut-in``,
``hard-brake``, ``red-light-runner``). A scene is a pure function of ``(kind, seed)``: its
random generator is seeded with ``[crc32(kind), seed, attempt]`` (no global state, no clock),
and its id is ``gen-{kind}-s{seed}`` whichever suite asks for it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cordillera.errors import ConfigError
from cordillera.scene.generate import basic, longtail
from cordillera.scene.generate.agents import ScenePlan
from cordillera.scene.generate.realise import DesignRejected, Realised, build_scene, realise
from cordillera.scene.model import Scene

GENERATOR_VERSION = 1
MAX_ATTEMPTS = 8

LAYOUTS: dict[str, Callable[[np.random.Generator, int], ScenePlan]] = {
    "straight": basic.straight_scene,
    "intersection": basic.intersection_scene,
    "t-junction": basic.t_junction_scene,
    "merge": basic.merge_scene,
    "roundabout": basic.roundabout_scene,
}
VARIANTS = longtail.VARIANTS
KINDS = (*LAYOUTS, *VARIANTS)


@dataclass(frozen=True)
class Suite:
    """A named list of ``(kind, seed offset)`` pairs; a suite seed shifts every offset."""

    description: str
    members: tuple[tuple[str, int], ...]

    def scenes(self, seed: int) -> list[tuple[str, int]]:
        """The ``(kind, seed)`` of every scene for suite seed ``seed``."""
        return [(kind, seed * 100 + k) for kind, k in self.members]


SUITES: dict[str, Suite] = {
    "default": Suite(
        "one scene of each layout and of each long-tail variant (README demo, default evaluation)",
        tuple((k, 0) for k in KINDS),
    ),
    "long-tail": Suite(
        "each long-tail variant with four seeds", tuple((k, s) for k in VARIANTS for s in range(4))
    ),
    "basic": Suite("each layout with two seeds", tuple((k, s) for k in LAYOUTS for s in range(2))),
    **{k: Suite(f"{k} with four seeds", tuple((k, s) for s in range(4))) for k in KINDS},
}


def plan_scene(kind: str, seed: int) -> tuple[Realised, dict[str, object]]:
    """The realised plan of ``(kind, seed)`` and its design facts (long-tail: checked).

    A long-tail design whose checks fail is redrawn with the next attempt number, so the
    result is still a pure function of ``(kind, seed)``.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown scene kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    last: Exception | None = None
    for attempt in range(MAX_ATTEMPTS):
        rng = np.random.default_rng([zlib.crc32(kind.encode()), seed, attempt])
        try:
            if kind in LAYOUTS:
                plan = LAYOUTS[kind](rng, seed)
                real = _ego_stays(realise(plan))
                return real, dict(plan.design)
            plan, design = VARIANTS[kind](rng, seed)
            real = _ego_stays(realise(plan))
            return real, longtail.check_design(real, design)
        except DesignRejected as e:
            last = e
    raise RuntimeError(f"no valid {kind} design for seed {seed} in {MAX_ATTEMPTS} attempts: {last}")


def _ego_stays(real: Realised) -> Realised:
    """Reject a log whose ego leaves the map, or ends within 20 m of its route's end."""
    plan, sim = real.plan, real.sim
    ego = plan.agents[plan.ego]
    if not sim.valid[plan.ego].all() or ego.path.length_m - sim.s_m[plan.ego, -1] < 25.0:
        raise DesignRejected("the ego runs out of route")
    return real


def generate_scene(kind: str, seed: int = 0, *, suite: str = "") -> Scene:
    """One generated scene of ``kind`` (a layout or a long-tail variant) for ``seed``."""
    real, design = plan_scene(kind, seed)
    extra: dict[str, object] = {
        "generator": "cordillera.scene.generate",
        "generator_version": GENERATOR_VERSION,
        "layout": real.plan.layout.name,
        "scenario": kind,
        "seed": int(seed),
        "suite": suite or kind,
        **design,
    }
    return build_scene(real, f"gen-{kind}-s{seed}", extra)


def generate_suite(name: str, seed: int = 0) -> list[Scene]:
    """Every scene of suite ``name`` for suite seed ``seed`` (see :data:`SUITES`)."""
    if name not in SUITES:
        raise ConfigError(f"unknown suite {name!r}; valid suites: {', '.join(SUITES)}")
    return [generate_scene(kind, s, suite=name) for kind, s in SUITES[name].scenes(seed)]
