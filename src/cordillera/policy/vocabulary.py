"""The closed vocabularies every policy, label and trace shares (VISION.md, "Meta-actions").

* kinematic labels, derived from a trajectory: :class:`LongitudinalAction`,
  :class:`LateralAction`, :class:`LaneAction` (the lane family needs the map);
* decisions stated in a Chain-of-Causation, at most one per axis: :class:`LongitudinalDecision`,
  :class:`LateralDecision`.

All are ``IntEnum`` so that labels are stored as small integer arrays; every member also has a
snake_case text form (``LongitudinalDecision.KEEP_DISTANCE.text == "keep_distance"``) and
``Vocabulary.parse(text)`` reads it back.
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import Self, TypeVar

from cordillera.errors import CordilleraError


class UnknownLabelError(CordilleraError, ValueError):
    """A label name that is not in its vocabulary; the message lists the valid names."""


class _Vocabulary(IntEnum):
    """An IntEnum with a snake_case text form and a forgiving parser."""

    @property
    def text(self) -> str:
        """The snake_case name, as written in a CoC trace (``"keep_distance"``)."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Self:
        """The member named ``text``: case, spaces, hyphens and slashes are ignored
        (``"Keep distance"``, ``"keep-distance"``, ``"KEEP_DISTANCE"``), and the aliases the
        VISION vocabulary uses (``"overtake"`` for ``PASS``) are accepted."""
        key = re.sub(r"[^0-9a-z]+", "_", str(text).strip().lower()).strip("_")
        key = _ALIASES.get((cls.__name__, key), key)
        member = cls.__members__.get(key.upper())
        if member is None:
            names = ", ".join(m.text for m in cls)
            raise UnknownLabelError(f"{text!r} is not a {cls.__name__} (one of: {names})")
        return member


class LongitudinalAction(_Vocabulary):
    """Kinematic longitudinal label of one step, from speed and acceleration along the heading."""

    GENTLE_ACCELERATION = 0
    STRONG_ACCELERATION = 1
    MAINTAIN_SPEED = 2
    GENTLE_DECELERATION = 3
    STRONG_DECELERATION = 4
    STOP = 5
    REVERSE = 6


class LateralAction(_Vocabulary):
    """Kinematic lateral label of one step, from the steering curvature (yaw rate / speed).

    ``REVERSE_LEFT``/``REVERSE_RIGHT`` are reversing with the wheels steered left/right (the
    vehicle backs towards its left/right); reversing straight is ``GO_STRAIGHT``, as is a
    standing vehicle.
    """

    GO_STRAIGHT = 0
    STEER_LEFT = 1
    STEER_RIGHT = 2
    SHARP_STEER_LEFT = 3
    SHARP_STEER_RIGHT = 4
    REVERSE_LEFT = 5
    REVERSE_RIGHT = 6


class LaneAction(_Vocabulary):
    """Kinematic lane label of one step, relative to the map's lanes."""

    LANE_KEEP = 0
    LEFT_LANE_CHANGE = 1
    RIGHT_LANE_CHANGE = 2
    SLIGHT_SHIFT_LEFT = 3
    SLIGHT_SHIFT_RIGHT = 4
    TURN_LEFT = 5
    TURN_RIGHT = 6


class LongitudinalDecision(_Vocabulary):
    """Longitudinal decision stated in a Chain-of-Causation (``PASS`` is pass / overtake)."""

    STOP = 0
    YIELD = 1
    PASS = 2
    GAP_SEARCH = 3
    KEEP_DISTANCE = 4
    ADAPT_SPEED = 5
    RESUME_SPEED = 6


class LateralDecision(_Vocabulary):
    """Lateral decision stated in a Chain-of-Causation."""

    LANE_CHANGE = 0
    NUDGE = 1
    TURN = 2
    MERGE = 3
    KEEP_LANE = 4


_ALIASES: dict[tuple[str, str], str] = {
    ("LongitudinalDecision", "overtake"): "pass",
    ("LongitudinalDecision", "pass_overtake"): "pass",
    ("LateralDecision", "lane_keep"): "keep_lane",
}
_NUM_LABELS = 7  # size of every kinematic vocabulary
_V = TypeVar("_V", bound=_Vocabulary)


def format_label(label: IntEnum) -> str:
    """The snake_case text of a vocabulary member (``"left_lane_change"``)."""
    return label.name.lower()


def parse_label(vocabulary: type[_V], text: str) -> _V:
    """The member of ``vocabulary`` named ``text`` (see :meth:`_Vocabulary.parse`)."""
    return vocabulary.parse(text)
