"""Resolve what a user names as "scenes": a suite name, a path, or Scene objects."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cordillera.errors import ConfigError
from cordillera.scene.model import Scene
from cordillera.scene.readers import find_sources, read_scene

ScenesSpec = str | Path | Sequence[Scene] | None


def resolve_scenes(spec: ScenesSpec, seed: int = 0) -> list[Scene]:
    """Scenes for ``spec``: ``None`` → the generated default suite; a known suite name →
    that generated suite; any other string or path → every scene under it; a sequence of
    :class:`Scene` → itself."""
    if spec is None:
        spec = "default"
    if isinstance(spec, str | Path):
        from cordillera.scene.generate import SUITES, generate_suite

        if isinstance(spec, str) and spec in SUITES:
            return generate_suite(spec, seed=seed)
        path = Path(spec)
        if not path.exists():
            raise ConfigError(
                f"scenes {str(spec)!r} is neither a suite ({', '.join(sorted(SUITES))}) "
                "nor an existing path"
            )
        return [read_scene(p, f) for p, f in find_sources(path)]
    scenes = list(spec)
    if not scenes or not all(isinstance(s, Scene) for s in scenes):
        raise ConfigError("scenes must be a non-empty sequence of Scene objects")
    return scenes
