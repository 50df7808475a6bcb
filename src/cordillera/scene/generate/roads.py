"""Road layouts without junctions: a multi-lane straight road and a highway on-ramp merge.

World frame: x east, y north, metres; traffic keeps right, so eastbound lanes lie at y < 0.
Lanes are split into ~100 m segments joined by successor edges, as real maps are.
"""

from __future__ import annotations

import numpy as np

from cordillera.scene.generate.mapbuild import (
    LANE_WIDTH_M,
    Layout,
    MapBuilder,
    chain,
    road_section,
)
from cordillera.scene.generate.paths import concat, hermite, line, strip_polygon
from cordillera.scene.types import RoadLineType

URBAN_MPS = 13.9  # 50 km/h
ARTERIAL_MPS = 16.7  # 60 km/h
HIGHWAY_MPS = 25.0  # 90 km/h
RAMP_MPS = 20.0


def straight(
    lanes_per_direction: int = 2,
    strip: str = "bike",
    length_m: float = 520.0,
    speed_mps: float = ARTERIAL_MPS,
) -> Layout:
    """A straight two-way road along x, ``lanes_per_direction`` lanes each way.

    ``strip``: ``"bike"`` puts a 1.8 m bike lane outside the outer lanes, ``"parking"`` a 2.4 m
    parking strip (drivable, for parked cars). Named lanes: ``E{k}_{seg}`` eastbound and
    ``W{k}_{seg}`` westbound (k = 0 innermost), ``bikeE_{seg}`` / ``bikeW_{seg}``.
    """
    mb = MapBuilder("straight")
    strip_m = {"bike": 1.8, "parking": 2.4}.get(strip, 0.5)
    n_seg = 5
    xs = np.linspace(-length_m / 2, length_m / 2, n_seg + 1)
    fwd, bwd, bike_f, bike_b = [], [], [], []
    for k in range(n_seg):
        ref = line((xs[k], 0.0), (xs[k + 1], 0.0), step_m=4.0)
        f, b = road_section(
            mb,
            ref,
            f"seg{k}",
            lanes_per_direction,
            lanes_per_direction,
            speed_mps,
            strip_m=strip_m,
            strip=strip,
        )
        fwd.append(f)
        bwd.append(b)
        for m, ln in enumerate(f):
            mb.named[f"E{m}_{k}"] = ln
        for m, ln in enumerate(b):
            mb.named[f"W{m}_{k}"] = ln
        if strip == "bike":
            bike_f.append([mb.named[f"seg{k}_bike_f"]])
            bike_b.append([mb.named[f"seg{k}_bike_b"]])
            mb.named[f"bikeE_{k}"] = bike_f[-1][0]
            mb.named[f"bikeW_{k}"] = bike_b[-1][0]
    chain(mb, fwd)
    chain(mb, bwd, reverse=True)
    if strip == "bike":
        chain(mb, bike_f)
        chain(mb, bike_b, reverse=True)
    return mb.build()


def merge(length_m: float = 760.0) -> Layout:
    """A divided two-lane highway along x with an on-ramp joining the rightmost eastbound lane.

    The ramp curves in from the south-west, runs as a 90 m acceleration lane beside the main
    road and tapers into lane ``E1`` at x = 0, where its lane's successor is the main lane's
    segment after the merge (as is the successor of the main lane before it). Named lanes:
    ``E{k}_{seg}``, ``W{k}_{seg}`` (segments 0..3, the merge at the end of segment 1),
    ``ramp_0`` (the curve), ``ramp_1`` (acceleration lane and taper).
    """
    mb = MapBuilder("merge")
    w = LANE_WIDTH_M
    xs = [-length_m / 2 - 20.0, -130.0, 0.0, 200.0, length_m / 2 + 80.0]
    fwd, bwd = [], []
    for k in range(4):
        ref = line((xs[k], 0.0), (xs[k + 1], 0.0), step_m=4.0)
        beside_ramp = k == 1
        f, b = road_section(
            mb,
            ref,
            f"seg{k}",
            2,
            2,
            HIGHWAY_MPS,
            strip_m=1.0,
            sidewalk_m=0.0,
            lines=not beside_ramp,
            edges=not beside_ramp,
        )
        fwd.append(f)
        bwd.append(b)
        for m, ln in enumerate(f):
            mb.named[f"E{m}_{k}"] = ln
        for m, ln in enumerate(b):
            mb.named[f"W{m}_{k}"] = ln
        if beside_ramp:
            mb.line(ref.xyz(), RoadLineType.DOUBLE_SOLID_YELLOW)
            mb.line(ref.offset(-w).xyz(), RoadLineType.DASHED_WHITE)
            mb.line(ref.offset(w).xyz(), RoadLineType.DASHED_WHITE)
            mb.line(ref.offset(2 * w).xyz(), RoadLineType.SOLID_WHITE)
            mb.edge(ref.offset(2 * w + 1.0).xyz())
            mb.line(line((xs[1], -2 * w), (-40.0, -2 * w)).xyz(), RoadLineType.DASHED_WHITE)
            mb.line(line((-40.0, -2 * w), (0.0, -2 * w)).xyz(), RoadLineType.SOLID_WHITE)
    chain(mb, fwd)
    chain(mb, bwd, reverse=True)
    y_acc = -2.5 * w  # acceleration-lane centre, one lane right of E1
    curve = hermite((-330.0, -75.0), 0.32, (xs[1], y_acc), 0.0, step_m=2.0, tangent_scale=0.35)
    accel = concat(
        [
            line((xs[1], y_acc), (-40.0, y_acc), step_m=4.0),
            hermite((-40.0, y_acc), 0.0, (0.0, -1.5 * w), 0.0, step_m=1.0),
        ]
    )
    r0 = mb.lane("ramp_0", curve, RAMP_MPS, rank=0.0)
    r1 = mb.lane("ramp_1", accel, RAMP_MPS, rank=0.0)
    mb.connect(r0, r1)
    mb.connect(r1, mb.named["E1_2"])
    mb.named["ramp_0"], mb.named["ramp_1"] = r0, r1
    for p in (curve, accel):
        mb.area(strip_polygon(p, 2.3, 2.3))
    mb.edge(curve.offset(-2.3).xyz())
    mb.edge(curve.offset(2.3).xyz())
    mb.edge(accel.offset(-2.3).xyz())
    mb.line(curve.offset(-1.75).xyz(), RoadLineType.SOLID_WHITE)
    mb.line(curve.offset(1.75).xyz(), RoadLineType.SOLID_WHITE)
    return mb.build()
