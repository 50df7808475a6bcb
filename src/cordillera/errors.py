"""Typed errors shared by every Cordillera package.

Every error that reaches a user names *where* the problem is (file, field) and *what* the bad
value was, so a malformed log never surfaces as a deep traceback or as silent garbage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path


class CordilleraError(Exception):
    """Base class of every error Cordillera raises on purpose."""


class SceneFormatError(CordilleraError):
    """A scene (a source log, a stored scene or an in-memory one) is malformed.

    Attributes:
        path: the file the scene came from, or ``None`` for an in-memory scene.
        field: dotted name of the offending field (``tracks.xyz_m``, ``map_features.lane_12``).
        reason: what is wrong, with the bad value where one exists.
    """

    def __init__(self, reason: str, *, field: str = "", path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        self.field = field
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        where = []
        if self.path:
            where.append(f"file {self.path}")
        if self.field:
            where.append(f"field {self.field}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.reason}" if prefix else self.reason

    def at(self, path: str | Path) -> SceneFormatError:
        """The same error, attributed to ``path`` (keeps a path already set)."""
        if self.path is not None:
            return self
        return type(self)(self.reason, field=self.field, path=path)


class UnsafePickleError(SceneFormatError):
    """A pickle asked to construct something other than plain containers and numpy arrays."""


class UnknownFormatError(SceneFormatError):
    """A path holds no scene format Cordillera can read."""


class ConfigError(CordilleraError, ValueError):
    """A configuration value is out of its documented range."""


def require_numbers(
    owner: str,
    obj: object,
    names: Iterable[str],
    *,
    integer: bool = False,
    minimum: float = 0.0,
    inclusive: bool = False,
) -> None:
    """Raise :class:`ConfigError` (``owner.name must be ..., got value``) unless every
    attribute ``names`` of ``obj`` is a finite number above ``minimum`` (or equal to it when
    ``inclusive``), and an int when ``integer``. Booleans and strings (say, from a hand-edited
    JSON file) are not numbers here, so they fail with the message, not deep inside a
    comparison."""
    kind = "an int" if integer else "a number"
    bound = f"{'>=' if inclusive else '>'} {minimum:g}"
    for name in names:
        v = getattr(obj, name)
        ok = (
            isinstance(v, int if integer else int | float)
            and not isinstance(v, bool)
            and math.isfinite(v)
            and (v >= minimum if inclusive else v > minimum)
        )
        if not ok:
            raise ConfigError(f"{owner}.{name} must be {kind} {bound}, got {v!r}")
