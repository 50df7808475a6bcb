"""Junction layouts: a signalised 4-way intersection, a stop-controlled T-junction, a roundabout.

World frame: x east, y north, metres, junction centre at the origin; traffic keeps right.
Arms are named by compass side (``E``, ``N``, ``W``, ``S``). Each junction geometry is written
once in the frame of its south arm and rotated onto the others, so the four arms agree exactly.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cordillera.scene.generate.mapbuild import LANE_WIDTH_M, Layout, MapBuilder, road_section
from cordillera.scene.generate.paths import F64, Path, arc, concat, line, strip_polygon
from cordillera.scene.generate.roads import URBAN_MPS
from cordillera.scene.types import RoadLineType

ARMS = ("E", "N", "W", "S")
ARM_ANGLE = {"E": 0.0, "N": np.pi / 2, "W": np.pi, "S": 1.5 * np.pi}
ARM_LENGTH_M = 160.0
GUTTER_M = 0.5
CURB_RADIUS_M = 6.0


def _rot(pts: F64, ang: float) -> F64:
    """Points ``(..., 2)`` rotated by ``ang`` radians about the origin (the junction centre)."""
    c, s = np.cos(ang), np.sin(ang)
    return pts @ np.array([[c, s], [-s, c]])


def _rotated(path: Path, ang: float) -> Path:
    """``path`` rotated by ``ang`` radians about the origin."""
    return Path.from_points(_rot(path.xy_m, ang))


def _ring(pts: npt.ArrayLike) -> F64:
    """A polygon ring ``(n, 2)`` from a list of corners."""
    return np.asarray(pts, np.float64)


def _arm(mb: MapBuilder, arm: str, start_m: float, lanes: int, speed: float) -> None:
    """Road from ``start_m`` out to the border; names ``{arm}_out{k}`` / ``{arm}_in{k}``."""
    u = np.array([np.cos(ARM_ANGLE[arm]), np.sin(ARM_ANGLE[arm])])
    ref = line(start_m * u, (start_m + ARM_LENGTH_M) * u, step_m=4.0)
    out, inn = road_section(mb, ref, arm, lanes, lanes, speed, strip_m=GUTTER_M)
    for k in range(lanes):
        mb.named[f"{arm}_out{k}"], mb.named[f"{arm}_in{k}"] = out[k], inn[k]


def _crosswalk(
    mb: MapBuilder, arm: str, near_m: float, far_m: float, half_w: float, group: str | None
) -> None:
    ang = ARM_ANGLE[arm] - 1.5 * np.pi
    ring = _rot(
        np.array([[-half_w, -near_m], [half_w, -near_m], [half_w, -far_m], [-half_w, -far_m]]), ang
    )
    mid = (near_m + far_m) / 2
    a, b = _rot(np.array([[half_w, -mid], [-half_w, -mid]]), ang)
    mb.crosswalk(ring, a, b, group)


def _phases(mb: MapBuilder, order: list[tuple[str, float]], yellow_s: float, red_s: float) -> None:
    """Per-group (state, duration) cycle: each phase green, yellow, all-red in turn."""
    from cordillera.scene.types import SignalState as S

    cycle = sum(g + yellow_s + red_s for _, g in order)
    t = 0.0
    for group, green in order:
        before, after = t, cycle - t - green - yellow_s
        mb.phase_plan[group] = [
            (int(S.RED), before),
            (int(S.GREEN), green),
            (int(S.YELLOW), yellow_s),
            (int(S.RED), after),
        ]
        t += green + yellow_s + red_s


def intersection(through_green_s: float = 15.0, left_green_s: float = 7.0) -> Layout:
    """Signalised 4-way junction, two lanes each way, protected left turns.

    Lane 0 (inner) turns left or goes straight, lane 1 goes straight or turns right. Each
    connector has its own signal head in group ``NS_thr``, ``NS_left``, ``EW_thr`` or
    ``EW_left``; the cycle runs NS through, NS left, EW through, EW left (3 s yellow and 1.5 s
    all-red after each). Pedestrians on a crosswalk walk with the through phase parallel to
    them. Connectors are named ``{arm}_left``, ``{arm}_thr{k}``, ``{arm}_right``.
    """
    mb = MapBuilder("intersection")
    w, n = LANE_WIDTH_M, 2
    wc = n * w + GUTTER_M  # curb offset from the centre line
    c = wc + CURB_RADIUS_M  # where the corner arcs end on each arm
    d = c + 6.0  # stop line / arm start
    for arm in ARMS:
        _arm(mb, arm, d, n, URBAN_MPS)
        ang = ARM_ANGLE[arm] - 1.5 * np.pi  # rotation from the south arm's frame
        for k in range(n):
            lane = mb.named[f"{arm}_in{k}"]
            mb.stop_line(_rot(np.array([[k * w, -d], [(k + 1) * w, -d]]), ang), lane)
        _crosswalk(mb, arm, c + 0.5, c + 4.5, wc, "EW_thr" if arm in "NS" else "NS_thr")
        for side in (-1.0, 1.0):
            mb.edge(_rot(np.array([[side * wc, -c], [side * wc, -d]]), ang))
        corner = arc((c, -c), CURB_RADIUS_M, np.pi, np.pi / 2)  # SE corner in the S frame
        mb.edge(_rot(corner.xy_m, ang))
        mb.area(_rot(np.concatenate([[[wc, -wc]], corner.xy_m]), ang))
    mb.area(_ring([[-d, -wc], [d, -wc], [d, wc], [-d, wc]]))
    mb.area(_ring([[-wc, -d], [wc, -d], [wc, d], [-wc, d]]))
    for a_i, arm in enumerate(ARMS):
        ang = ARM_ANGLE[arm] - 1.5 * np.pi
        ns = "NS" if arm in "NS" else "EW"
        x0, x1 = 0.5 * w, 1.5 * w
        moves = {
            "left": (
                0,
                ARMS[(a_i + 3) % 4],
                0,
                concat(
                    [
                        line((x0, -d), (x0, -c), 1.0),
                        arc((-c, -c), c + x0, 0.0, np.pi / 2),
                        line((-c, x0), (-d, x0), 1.0),
                    ]
                ),
            ),
            "thr0": (0, ARMS[(a_i + 2) % 4], 0, line((x0, -d), (x0, d), 2.0)),
            "thr1": (1, ARMS[(a_i + 2) % 4], 1, line((x1, -d), (x1, d), 2.0)),
            "right": (
                1,
                ARMS[(a_i + 1) % 4],
                1,
                concat(
                    [
                        line((x1, -d), (x1, -c), 1.0),
                        arc((c, -c), c - x1, np.pi, np.pi / 2),
                        line((c, -x1), (d, -x1), 1.0),
                    ]
                ),
            ),
        }
        for mv, (k_in, to_arm, k_out, geom) in moves.items():
            lane = mb.lane(f"{arm}_{mv}", _rotated(geom, ang), URBAN_MPS, junction=True)
            mb.connect(mb.named[f"{arm}_in{k_in}"], lane)
            mb.connect(lane, mb.named[f"{to_arm}_out{k_out}"])
            mb.signal(lane, f"{ns}_left" if mv == "left" else f"{ns}_thr")
        mb.neighbours(mb.named[f"{arm}_thr0"], mb.named[f"{arm}_thr1"])
    _phases(
        mb,
        [
            ("NS_thr", through_green_s),
            ("NS_left", left_green_s),
            ("EW_thr", through_green_s),
            ("EW_left", left_green_s),
        ],
        3.0,
        1.5,
    )
    return mb.build()


def t_junction() -> Layout:
    """A T-junction: an east-west major road, a minor road from the south with a stop sign.

    One lane each way. Named lanes: ``W_in``/``W_out``, ``E_in``/``E_out``, ``S_in``/``S_out``
    (arms), ``EB_thr``, ``WB_thr``, ``EB_right``, ``WB_left``, ``S_right``, ``S_left``
    (junction connectors). Right of way: major through > major left turn > minor road.
    """
    mb = MapBuilder("t-junction")
    w = LANE_WIDTH_M
    wc = w + GUTTER_M
    c = wc + CURB_RADIUS_M
    dm, dn = c + 2.0, c + 6.0  # major junction half-length; minor stop line
    h = 0.5 * w
    arms = {"W": (np.pi, dm), "E": (0.0, dm), "S": (1.5 * np.pi, dn)}
    for arm, (a, start) in arms.items():
        u = np.array([np.cos(a), np.sin(a)])
        ref = line(start * u, (start + ARM_LENGTH_M) * u, step_m=4.0)
        out, inn = road_section(mb, ref, arm, 1, 1, URBAN_MPS, strip_m=GUTTER_M)
        mb.named[f"{arm}_out"], mb.named[f"{arm}_in"] = out[0], inn[0]
    conn = {
        "EB_thr": (1.0, line((-dm, -h), (dm, -h), 2.0), "W_in", "E_out"),
        "WB_thr": (1.0, line((dm, h), (-dm, h), 2.0), "E_in", "W_out"),
        "EB_right": (
            1.0,
            concat(
                [
                    line((-dm, -h), (-c, -h), 1.0),
                    arc((-c, -c), c - h, np.pi / 2, 0.0),
                    line((-h, -c), (-h, -dn), 1.0),
                ]
            ),
            "W_in",
            "S_out",
        ),
        "WB_left": (
            0.5,
            concat(
                [
                    line((dm, h), (c, h), 1.0),
                    arc((c, -c), c + h, np.pi / 2, np.pi),
                    line((-h, -c), (-h, -dn), 1.0),
                ]
            ),
            "E_in",
            "S_out",
        ),
        "S_right": (
            0.0,
            concat(
                [
                    line((h, -dn), (h, -c), 1.0),
                    arc((c, -c), c - h, np.pi, np.pi / 2),
                    line((c, -h), (dm, -h), 1.0),
                ]
            ),
            "S_in",
            "E_out",
        ),
        "S_left": (
            0.0,
            concat(
                [
                    line((h, -dn), (h, -c), 1.0),
                    arc((-c, -c), c + h, 0.0, np.pi / 2),
                    line((-c, h), (-dm, h), 1.0),
                ]
            ),
            "S_in",
            "W_out",
        ),
    }
    for name, (rank, geom, src, dst) in conn.items():
        lane = mb.lane(name, geom, URBAN_MPS, rank=rank, junction=True)
        mb.connect(mb.named[src], lane)
        mb.connect(lane, mb.named[dst])
    s_in = mb.named["S_in"]
    mb.stop_line([[0.0, -dn], [w, -dn]], s_in)
    mb.stop_sign((wc + 0.8, -dn - 0.5), s_in)
    _crosswalk(mb, "S", c + 0.5, c + 4.5, wc, None)
    mb.area(_ring([[-dm, -wc], [dm, -wc], [dm, wc], [-dm, wc]]))
    mb.area(_ring([[-wc, -dn], [wc, -dn], [wc, -wc + 0.1], [-wc, -wc + 0.1]]))
    sw = arc((-c, -c), CURB_RADIUS_M, np.pi / 2, 0.0)
    se = arc((c, -c), CURB_RADIUS_M, np.pi, np.pi / 2)
    mb.area(np.concatenate([[[-wc, -wc]], sw.xy_m]))
    mb.area(np.concatenate([[[wc, -wc]], se.xy_m]))
    mb.edge([[-dm, wc], [dm, wc]])
    mb.line([[-dm, w], [dm, w]], RoadLineType.SOLID_WHITE)
    for sign in (-1.0, 1.0):
        mb.edge([[sign * dm, -wc], [sign * c, -wc]])
        mb.edge([[sign * wc, -c], [sign * wc, -dn]])
        mb.line([[sign * dm, -w], [sign * c, -w]], RoadLineType.SOLID_WHITE)
    mb.edge(sw.xy_m)
    mb.edge(se.xy_m)
    return mb.build()


def roundabout(radius_m: float = 18.0, entry_radius_m: float = 12.0) -> Layout:
    """A single-lane roundabout (counter-clockwise) with four one-lane-each-way arms.

    The circulating lane is split at every entry and exit point: ``R{arm}_pass`` passes an arm
    (from its exit point to its entry point), ``R{arm}_run`` runs on to the next arm's exit.
    Entries ``N{arm}`` join the ring tangentially on an arc of ``entry_radius_m`` and yield to
    circulating traffic; exits ``X{arm}`` leave it the same way. Crosswalks on every arm.
    """
    mb = MapBuilder("roundabout")
    w = LANE_WIDTH_M
    h = 0.5 * w
    half_ring = 2.75
    r_in, r_out = radius_m - half_ring, radius_m + half_ring
    re = entry_radius_m
    xc = float(np.sqrt((radius_m + re) ** 2 - (h + re) ** 2))  # entry arc centre, E frame
    delta = float(np.arctan2(h + re, xc))  # polar angle of the tangent point on the ring
    d = xc + 7.0  # arm start
    wc = w + GUTTER_M
    for arm in ARMS:
        u = np.array([np.cos(ARM_ANGLE[arm]), np.sin(ARM_ANGLE[arm])])
        ref = line(d * u, (d + ARM_LENGTH_M) * u, step_m=4.0)
        out, inn = road_section(mb, ref, arm, 1, 1, URBAN_MPS, strip_m=GUTTER_M)
        mb.named[f"{arm}_out"], mb.named[f"{arm}_in"] = out[0], inn[0]
        _crosswalk(mb, arm, d + 3.0, d + 7.0, wc, None)
    tang = np.arctan2(-(h + re), -xc)  # angle of the tangent point seen from the arc centre
    entry = concat([line((d, h), (xc, h), 1.0), arc((xc, h + re), re, -np.pi / 2, tang)])
    exit_ = concat([arc((xc, -h - re), re, -tang, np.pi / 2), line((xc, -h), (d, -h), 1.0)])
    flare: dict[tuple[str, str], float] = {}
    for k, arm in enumerate(ARMS):
        a = ARM_ANGLE[arm]
        nxt = ARMS[(k + 1) % 4]
        a_next = ARM_ANGLE[nxt] if nxt != "E" else 2 * np.pi
        ring_pass = arc((0, 0), radius_m, a - delta, a + delta)
        ring_run = arc((0, 0), radius_m, a + delta, a_next - delta)
        mb.lane(f"R{arm}_pass", ring_pass, URBAN_MPS, junction=True)
        mb.lane(f"R{arm}_run", ring_run, URBAN_MPS, junction=True)
        ent, ext = _rotated(entry, a), _rotated(exit_, a)
        mb.lane(f"N{arm}", ent, URBAN_MPS, rank=0.0, junction=True)
        mb.lane(f"X{arm}", ext, URBAN_MPS, junction=True)
        for p, key in ((ent, "entry"), (ext, "exit")):
            mb.area(strip_polygon(p, 2.5, 2.5))
            curb = p.offset(-2.25).xyz()
            outside = np.linalg.norm(curb[:, :2], axis=1) >= r_out
            mb.edge(curb[outside])
            # Polar angle where this flare's curb meets the ring's outer curb.
            meet = curb[outside][0 if key == "exit" else -1]
            flare[arm, key] = float(np.arctan2(meet[1], meet[0]))
            island = np.linalg.norm(p.offset(h).xy_m, axis=1) >= r_out
            mb.edge(p.offset(h).xyz()[island])
    for k, arm in enumerate(ARMS):
        nxt = ARMS[(k + 1) % 4]
        mb.connect(mb.named[f"{arm}_in"], mb.named[f"N{arm}"])
        mb.connect(mb.named[f"N{arm}"], mb.named[f"R{arm}_run"])
        mb.connect(mb.named[f"R{arm}_pass"], mb.named[f"R{arm}_run"])
        mb.connect(mb.named[f"R{arm}_run"], mb.named[f"R{nxt}_pass"])
        mb.connect(mb.named[f"R{arm}_run"], mb.named[f"X{nxt}"])
        mb.connect(mb.named[f"X{arm}"], mb.named[f"{arm}_out"])
        a = ARM_ANGLE[arm]
        a_next = ARM_ANGLE[nxt] if nxt != "E" else 2 * np.pi
        # Outer curb between this arm's entry and the next arm's exit, where the flares end.
        a0 = flare[arm, "entry"] % (2 * np.pi)
        a1 = flare[nxt, "exit"] % (2 * np.pi)
        mb.edge(arc((0, 0), r_out, a0, a1 if a1 > a0 else a1 + 2 * np.pi).xyz())
        for q in range(4):  # the circulating carriageway as annulus sectors
            a0 = a + q * (a_next - a) / 4
            a1 = a + (q + 1) * (a_next - a) / 4
            outer = arc((0, 0), r_out, a0, a1).xy_m
            inner = arc((0, 0), r_in, a0, a1).xy_m[::-1]
            mb.area(np.concatenate([outer, inner]))
    mb.edge(arc((0, 0), r_in, 0.0, 2 * np.pi).xyz())
    return mb.build()
