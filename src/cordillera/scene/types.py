"""Closed vocabularies of the scene model, stored as small integers in arrays."""

from __future__ import annotations

from enum import IntEnum


class ObjectType(IntEnum):
    """What a track is. Static clutter (cones, barriers) is ``OTHER``."""

    VEHICLE = 0
    PEDESTRIAN = 1
    CYCLIST = 2
    OTHER = 3


class LaneType(IntEnum):
    """Who a lane is for."""

    UNKNOWN = 0
    VEHICLE = 1
    BIKE = 2
    BUS = 3


class RoadLineType(IntEnum):
    """Painted lines and lane boundaries. ``VIRTUAL`` is a boundary with no paint."""

    UNKNOWN = 0
    SOLID_WHITE = 1
    DASHED_WHITE = 2
    DOUBLE_SOLID_WHITE = 3
    SOLID_YELLOW = 4
    DASHED_YELLOW = 5
    DOUBLE_SOLID_YELLOW = 6
    DOUBLE_DASHED_YELLOW = 7
    SOLID_DASHED_YELLOW = 8
    VIRTUAL = 9

    @property
    def is_dashed(self) -> bool:
        return self in (
            RoadLineType.DASHED_WHITE,
            RoadLineType.DASHED_YELLOW,
            RoadLineType.DOUBLE_DASHED_YELLOW,
        )

    @property
    def is_yellow(self) -> bool:
        return self in (
            RoadLineType.SOLID_YELLOW,
            RoadLineType.DASHED_YELLOW,
            RoadLineType.DOUBLE_SOLID_YELLOW,
            RoadLineType.DOUBLE_DASHED_YELLOW,
            RoadLineType.SOLID_DASHED_YELLOW,
        )


class SignalState(IntEnum):
    """State of the traffic light controlling one lane at one step (arrows folded in)."""

    UNKNOWN = 0
    RED = 1
    YELLOW = 2
    GREEN = 3
    FLASHING_RED = 4
    FLASHING_YELLOW = 5

    @property
    def must_stop(self) -> bool:
        """Whether a vehicle facing this state must stop before the stop point."""
        return self in (SignalState.RED, SignalState.FLASHING_RED)
