"""The generator's traffic model: IDM longitudinal control along fixed paths, at 10 Hz.

Every agent moves along its reference path; only its arc length ``s(t)`` is simulated. Each
step is vectorised over agents and agent pairs (the only Python loop is over time):

* vehicles and cyclists accelerate by the intelligent driver model towards the most
  constraining of: real leaders (agents ahead on shared lanes, or about to merge in front),
  and *virtual stopped obstacles* — the stop line of a red (or stoppable yellow) signal, a
  stop sign until the vehicle has stopped there and waited, the entry of a junction conflict
  while another agent has right of way, and a crosswalk while a pedestrian is on or stepping
  onto it. The chosen acceleration passes through a first-order lag (reaction and response);
* pedestrians walk at their own speed and wait at the curb for the walk signal, and before a
  lane a vehicle can no longer stop for;
* scripted events (a hard brake, a jaywalker's start) change one agent's inputs, never the
  reactions of others, so a reaction in the log always comes from the interaction.

The result records, for each agent and step, which object (or control) bound its acceleration,
which is how a scene's designed event is checked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cordillera.scene.generate.agents import ScenePlan
from cordillera.scene.generate.interact import MERGE, PED, Relations, relations
from cordillera.scene.generate.paths import F64, PathBatch
from cordillera.scene.types import SignalState

FREE, SIGNAL, STOP_SIGN = -1, -2, -3
"""Codes in :attr:`SimResult.cause` besides agent indices."""

MAX_DECEL_MPS2 = 8.0  # hardest braking any vehicle applies
EMERGENCY_DECEL_MPS2 = 6.0  # "can it still stop before a conflict / a red line?"
COMFORT_DECEL_MPS2 = 3.5  # stopping for a yellow light or a pedestrian, as a courtesy
LAT_ACCEL_MPS2 = 2.0  # curve speed: v = sqrt(a_lat / |curvature|)
CONFLICT_HORIZON_S = 5.0  # equal-rank conflicts: who arrives within this claims the junction
HOLD_BUFFER_M = 1.0  # a yielding vehicle's stop point before the conflict zone
ACCEPT_GAP_S = 1.5  # headway a minor-road driver leaves before a major-road vehicle arrives
STOP_HEADWAY_S = 0.3  # IDM time headway towards stop points (drivers brake *to* a line)
STOP_LINE_GAP_M = 1.0  # standstill gap to a stop line
STOP_SIGN_WAIT_S = 1.5  # shortest full stop at a stop sign (1.5–2.0 s by driver)


@dataclass(frozen=True, eq=False)
class SimResult:
    """Arc-length trajectories of every agent.

    Attributes:
        s_m: ``(N, T)`` arc length of the box centre on the agent's path.
        v_mps: ``(N, T)`` speed along the path.
        a_mps2: ``(N, T)`` applied acceleration.
        valid: ``(N, T)`` whether the agent exists (spawned and not yet off the map).
        cause: ``(N, T)`` int32 what bound the acceleration: an agent index, or
            :data:`FREE`, :data:`SIGNAL`, :data:`STOP_SIGN`.
    """

    s_m: F64
    v_mps: F64
    a_mps2: F64
    valid: npt.NDArray[np.bool_]
    cause: npt.NDArray[np.int32]


def speed_profiles(plan: ScenePlan) -> list[F64]:
    """Desired speed at each vertex of each agent's path, m/s.

    Lane speed limit × the driver's factor, capped by the curve speed, then lowered ahead of
    every slow stretch so that reaching it needs at most comfortable braking (a driver looks
    ahead at a bend; IDM alone would not).
    """
    lay = plan.layout
    out = []
    for a in plan.agents:
        s = a.path.s_m
        if a.behaviour == "static":
            out.append(np.zeros_like(s))
            continue
        if a.lanes:
            k = np.clip(
                np.searchsorted(np.asarray(a.lane_start_m), s, side="right") - 1,
                0,
                len(a.lanes) - 1,
            )
            limit = lay.road_map.lane_speed_limit_mps[np.asarray(a.lanes)[k]]
            v = np.minimum(limit * a.driver.speed_factor, a.speed_mps)
        else:
            v = np.full_like(s, a.speed_mps)
        curv = np.abs(a.path.curvature(s))
        v = np.minimum(v, np.sqrt(LAT_ACCEL_MPS2 / np.maximum(curv, 1e-6)))
        if a.slow_after_m is not None:
            v = np.where(s >= a.slow_after_m[0], np.minimum(v, a.slow_after_m[1]), v)
        # min over s' >= s of v(s')² + 2 b (s' - s): a reverse running minimum.
        b = 1.5
        reach = np.minimum.accumulate((v**2 + 2 * b * s)[::-1])[::-1] - 2 * b * s
        out.append(np.sqrt(np.maximum(reach, 0.0)))
    return out


def idm_accel(
    v: F64, v_des: F64, gap: F64, v_lead: F64, t_head: F64, a_max: F64, b: F64, s0: F64
) -> F64:
    """IDM acceleration for gaps ``gap`` to leaders moving at ``v_lead`` (broadcasting)."""
    s_star = s0 + np.maximum(0.0, v * t_head + v * (v - v_lead) / (2 * np.sqrt(a_max * b)))
    free = 1.0 - (v / np.maximum(v_des, 0.1)) ** 4
    return a_max * (free - (s_star / np.maximum(gap, 0.05)) ** 2)


def eta(dist_m: F64, v_mps: F64, accel_mps2: float = 1.5) -> F64:
    """Time to cover ``dist_m`` from speed ``v_mps`` while accelerating at ``accel_mps2``."""
    return (np.sqrt(v_mps**2 + 2 * accel_mps2 * dist_m) - v_mps) / accel_mps2


def simulate(plan: ScenePlan, rel: Relations | None = None) -> SimResult:
    """Integrate all agents over ``plan.num_steps`` steps of ``plan.dt_s``."""
    rel = relations(plan) if rel is None else rel
    ag = plan.agents
    n, steps, dt = len(ag), plan.num_steps, plan.dt_s
    batch = PathBatch([a.path for a in ag])
    idx = np.arange(n)
    vdes_tab = batch.pack(speed_profiles(plan))
    lat_tab = batch.pack(
        [a.lateral_m if a.lateral_m is not None else np.zeros(len(a.path.s_m)) for a in ag]
    )
    length = np.array([a.size_lwh_m[0] for a in ag])
    width = np.array([a.size_lwh_m[1] for a in ag])
    hl = length / 2
    kind = np.array([a.behaviour for a in ag])
    idm, walk = kind == "idm", kind == "walk"
    drv = [a.driver for a in ag]
    t_head = np.array([d.headway_s for d in drv])
    a_max = np.array([d.accel_mps2 for d in drv])
    b_comf = np.array([d.decel_mps2 for d in drv])
    s0_gap = np.array([d.min_gap_m for d in drv])
    lag = np.minimum(1.0, dt / np.array([max(d.lag_s, dt) for d in drv]))
    t_start = np.array([a.t_start_s for a in ag])
    ignore = np.array([a.ignore_signals for a in ag])
    brake_at = np.array([np.inf if a.brake_at_s is None else a.brake_at_s for a in ag])
    brake_dec = np.array([a.brake_decel_mps2 for a in ag])
    brake_to = np.array([a.brake_to_mps for a in ag])
    walk_at = np.array([a.walk_at_s for a in ag])
    heedless = np.array([a.heedless for a in ag])
    ped_speed = np.array([a.speed_mps for a in ag])
    path_len = batch.length_m
    groups = sorted(plan.walk)
    walk_ok = np.stack([plan.walk[g] for g in groups]) if groups else np.zeros((1, steps), bool)
    stop_wait = STOP_SIGN_WAIT_S + 0.25 * (idx % 3)  # deterministic spread over drivers

    # Pair-invariant pieces, (N, N): i is the row (the one deciding), j the column.
    rel_ok = np.isfinite(rel.off)
    lo_j, hi_j, conv_j, div_j = rel.lo.T, rel.hi.T, rel.conv.T, rel.div.T
    rank_i, rank_j = rel.cf_rank, rel.cf_rank.T
    e_i, x_i = rel.cf_enter, rel.cf_exit
    e_j, x_j = e_i.T, x_i.T
    has_cf = rel.cf_kind != 0
    veh_pair = idm[:, None] & idm[None, :] & has_cf & (rel.cf_kind != PED)
    ped_pair = idm[:, None] & walk[None, :] & (rel.cf_kind == PED)  # vehicle i, pedestrian j
    ped_pair_t = ped_pair.T  # pedestrian i, vehicle j
    premerge = rel.merge & (rank_i < rank_j) & rel_ok
    lat_room = (width[:, None] + width[None, :]) / 2 + 0.4
    jlow = idx[None, :] < idx[:, None]
    eye = np.eye(n, dtype=bool)

    s = np.array([a.s0_m for a in ag], np.float64)
    v = np.array([a.v0_mps for a in ag], np.float64)
    acc = np.zeros(n)
    spawned = t_start <= 0.0
    done = np.zeros(n, bool)
    stop_done = ~np.isfinite(rel.stop_sign_s)
    stop_timer = np.zeros(n)
    ydec = np.full(rel.head.shape, -1, np.int8)
    out_s, out_v, out_a = np.zeros((n, steps)), np.zeros((n, steps)), np.zeros((n, steps))
    out_valid = np.zeros((n, steps), bool)
    out_cause = np.full((n, steps), FREE, np.int32)

    for t in range(steps):
        now = t * dt
        alive = spawned & ~done
        out_s[:, t], out_v[:, t], out_a[:, t], out_valid[:, t] = s, v, acc, alive
        front, rear = s + hl, s - hl
        lat = batch.values(idx, s, lat_tab)
        both = alive[:, None] & alive[None, :] & ~eye

        # --- leaders on shared lanes (and majors about to merge in front of a minor).
        pj = s[None, :] + rel.off
        vi, vj = v[:, None], v[None, :]
        gap_now = pj - s[:, None] - (hl[:, None] + hl[None, :])
        on_run = (front[None, :] > lo_j - conv_j) & (rear[None, :] < hi_j + div_j)
        ahead = (pj > s[:, None]) & (front[:, None] < rel.hi + rel.div)
        lateral_ok = np.abs(lat[:, None] - lat[None, :]) < lat_room
        lead = both & rel_ok & ahead & lateral_ok & on_run
        # A vehicle about to merge into a higher-ranked stream plans against where each of its
        # vehicles will be when it reaches the merge (t_i: accelerating from its speed). It
        # follows one that will be ahead by then, so passing alongside now is no emergency.
        to_merge = np.maximum(e_i - front[:, None], 0.0)
        gap_fut = gap_now + vj * eta(to_merge, vi) - to_merge
        merging = (
            premerge
            & both
            & (front[:, None] < e_i)
            & (rel.lo - front[:, None] < 100.0)
            & (lo_j - front[None, :] < 120.0)
        )
        virt = merging & ((gap_now > 0) | (gap_fut > s0_gap[:, None] + 1.0))
        # Courtesy: a major-stream driver also keeps distance to a merging car already ahead.
        courtesy = (
            premerge.T
            & both
            & (front[None, :] < e_j)
            & (lo_j - front[None, :] < 40.0)
            & (gap_now > 0)
            & (front[:, None] < rel.lo)
        )
        lead = np.where(merging, virt, lead | courtesy)
        gap_lead = np.where(
            lead,
            np.where(merging, np.maximum(gap_now, np.minimum(gap_fut, to_merge)), gap_now),
            np.inf,
        )

        # --- signals: red, or a yellow the driver decided (once, at its onset) to stop for.
        heads = rel.head
        has_head = heads >= 0
        state = (
            np.where(has_head, plan.signal_state[np.maximum(heads, 0), t], 0)
            if len(plan.signal_state)
            else np.zeros(heads.shape, np.int8)
        )
        dist_sig = rel.head_s - front[:, None]
        red = has_head & (state == SignalState.RED)
        yel = has_head & (state == SignalState.YELLOW)
        newy = yel & (ydec < 0)
        ydec[newy] = (dist_sig > v[:, None] ** 2 / (2 * COMFORT_DECEL_MPS2))[newy]
        ydec[~yel] = -1
        stoppable = dist_sig > v[:, None] ** 2 / (2 * EMERGENCY_DECEL_MPS2) - 0.5
        stop_for = (red & stoppable) | (yel & (ydec == 1))
        must_sig = stop_for & (dist_sig > -0.5) & ~ignore[:, None]
        gap_sig = np.where(must_sig, dist_sig, np.inf).min(axis=1)
        # What others expect: a runner looks like it will stop until it is at the line.
        expect_stop = np.where(ignore[:, None], (red | yel) & (dist_sig > 2.0), must_sig)
        block_s = np.where(expect_stop, rel.head_s, np.inf).min(axis=1)

        # --- stop signs: hold at the line until stopped there for the driver's wait.
        dist_ss = rel.stop_sign_s - front
        at_line = alive & ~stop_done & (dist_ss > -1.0) & (dist_ss < 4.0) & (v < 0.3)
        stop_timer = np.where(at_line, stop_timer + dt, 0.0)
        stop_done |= stop_timer >= stop_wait
        must_ss = ~stop_done & (dist_ss > -1.0) & alive
        gap_ss = np.where(must_ss, dist_ss, np.inf)
        block_s = np.minimum(block_s, np.where(must_ss, rel.stop_sign_s, np.inf))

        # --- vehicle-vehicle conflicts (junction crossings, merges).
        entered_i, entered_j = front[:, None] >= e_i, front[None, :] >= e_j
        cleared_i, cleared_j = rear[:, None] >= x_i, rear[None, :] >= x_j
        can_stop_i = front[:, None] + vi**2 / (2 * EMERGENCY_DECEL_MPS2) < e_i - 0.5
        can_stop_j = front[None, :] + vj**2 / (2 * EMERGENCY_DECEL_MPS2) < e_j - 0.5
        occ_i = (entered_i | ~can_stop_i) & ~cleared_i
        occ_j = (entered_j | ~can_stop_j) & ~cleared_j
        tta_i = np.maximum(e_i - front[:, None], 0.0) / np.maximum(vi, 1.0)
        tta_j = np.maximum(e_j - front[None, :], 0.0) / np.maximum(vj, 1.0)
        blocked_j = block_s[None, :] < e_j
        # A vehicle standing still and not pulling away (queued, waiting) claims nothing yet.
        idle_j = ((v < 0.5) & (acc <= 0.1))[None, :] & ~occ_j
        first = (tta_j < tta_i - 0.3) | ((np.abs(tta_j - tta_i) <= 0.3) & jlow)
        prio_j = np.where(
            rank_j > rank_i,
            ~occ_i,
            np.where(rank_j < rank_i, occ_j & ~occ_i, (occ_j & ~occ_i) | (~occ_i & ~occ_j & first)),
        )
        claim_j = ~cleared_j & ~blocked_j & ~idle_j & (occ_j | (tta_j < CONFLICT_HORIZON_S))
        # Gap acceptance against a higher-ranked stream: wait unless it arrives only after this
        # vehicle has cleared the conflict, with margin. At a merge: unless it will be ahead
        # (then ``virt`` follows it) or far enough behind to follow this vehicle safely.
        clear_i = eta(np.maximum(x_i - rear[:, None], 0.0), vi)
        arrive_j = eta(np.maximum(e_j - front[None, :], 0.0), vj)
        gap_claim = (
            ~cleared_j & ~blocked_j & ~idle_j & (occ_j | (arrive_j < clear_i + ACCEPT_GAP_S))
        )
        behind_room = -gap_fut - 2 * (hl[:, None] + hl[None, :])
        merge_claim = ~cleared_j & ~idle_j & ~virt & (behind_room < s0_gap[:, None] + 1.2 * vj)
        gap_claim = np.where(rel.cf_kind == MERGE, merge_claim, gap_claim)
        claim_j = np.where(rank_j > rank_i, gap_claim, claim_j)
        # Never yield to a merging vehicle that is itself following you in (``virt.T``).
        yield_v = veh_pair & both & ~occ_i & prio_j & claim_j & ~virt & ~virt.T

        # --- pedestrians: wait at the curb for the walk signal and for committed vehicles.
        occ_comf = (
            (front[:, None] + vi**2 / (2 * COMFORT_DECEL_MPS2) >= e_i - 0.5) | entered_i
        ) & ~cleared_i  # vehicle i cannot stop comfortably for ped j
        ped_front = s + hl  # (pedestrian rows only)
        ped_wait_veh = (
            ped_pair_t & both & occ_comf.T & (ped_front[:, None] < e_i - 0.1) & ~heedless[:, None]
        )
        hold_p = np.where(ped_wait_veh, e_i - 0.2, np.inf).min(axis=1)
        g = np.maximum(rel.walk_group, 0)
        no_walk = (rel.walk_group >= 0) & ~walk_ok[g, t] & (ped_front < rel.curb_s + 0.05)
        hold_p = np.where(no_walk & ~heedless, np.minimum(hold_p, rel.curb_s), hold_p)
        hold_p = np.where(now < walk_at, s + hl, hold_p)  # a jaywalker still hidden
        moving_p = walk & alive & (hold_p > ped_front + 0.05)
        ped_claim = (
            moving_p[None, :] & (front[None, :] > e_j - 2.5 * ped_speed[None, :]) & ~cleared_j
        )
        stop_room = np.where(heedless[None, :], MAX_DECEL_MPS2, COMFORT_DECEL_MPS2)
        can_stop_ped = front[:, None] + vi**2 / (2 * stop_room) < e_i - 0.3
        yield_p = ped_pair & both & ped_claim & ~entered_i & can_stop_ped

        hold_gap = np.where(yield_v | yield_p, e_i - HOLD_BUFFER_M - front[:, None], np.inf)

        # --- IDM over every candidate obstacle; the binding one is the cause.
        v_des = batch.values(idx, s, vdes_tab)
        gaps = np.concatenate([gap_lead, hold_gap, gap_sig[:, None], gap_ss[:, None]], axis=1)
        vl = np.concatenate([np.broadcast_to(v[None, :], (n, n)), np.zeros((n, n + 2))], axis=1)
        # Stop points (holds, lines) take no time headway and a short standstill gap: drivers
        # brake *to* a line; with a headway IDM would creep up to it for many seconds.
        heads_col = np.concatenate(
            [np.broadcast_to(t_head[:, None], (n, n)), np.full((n, n + 2), STOP_HEADWAY_S)], axis=1
        )
        s0_col = np.concatenate(
            [np.broadcast_to(s0_gap[:, None], (n, 2 * n)), np.full((n, 2), STOP_LINE_GAP_M)], axis=1
        )
        col = (vi, v_des[:, None], gaps, vl, heads_col, a_max[:, None], b_comf[:, None], s0_col)
        with np.errstate(invalid="ignore"):
            a_obs = np.where(np.isfinite(gaps), idm_accel(*col), np.inf)

        k = np.argmin(a_obs, axis=1)
        a_bind = a_obs[idx, k]
        a_free = np.maximum(
            idm_accel(v, v_des, np.full(n, np.inf), v, t_head, a_max, b_comf, s0_gap), -3.0
        )
        target = np.minimum(a_free, a_bind)
        cause = np.where(
            a_bind < a_free,
            np.select([k < n, k < 2 * n, k == 2 * n], [k, k - n, SIGNAL], STOP_SIGN),
            FREE,
        )
        out_cause[:, t] = np.where(alive & idm, cause, FREE)
        acc = np.clip(acc + (target - acc) * lag, -MAX_DECEL_MPS2, a_max)
        braking = now >= brake_at
        acc = np.where(braking, np.where(v > brake_to, np.minimum(-brake_dec, acc), 0.0), acc)
        v_next = np.maximum(v + acc * dt, 0.0)
        v_next = np.where(braking & (v > brake_to), np.maximum(v_next, brake_to), v_next)
        s_next = s + 0.5 * (v + v_next) * dt

        # Pedestrians: walk at their pace, never past their hold point.
        vp = np.clip(np.where(moving_p, ped_speed, 0.0), v - 2.0 * dt, v + 2.0 * dt)
        sp = np.minimum(s + vp * dt, np.maximum(hold_p - hl, s))
        s_next = np.where(walk, sp, s_next)
        v_next = np.where(walk, (sp - s) / dt, v_next)
        move = alive & (idm | walk)
        s = np.where(move, s_next, s)
        v = np.where(move, v_next, v)
        acc = np.where(idm & alive, acc, 0.0)

        # Leave at the map border; enter once the entry is clear.
        done |= alive & (s + hl >= path_len - 0.1)
        pending = ~spawned & (now + dt >= t_start)
        if pending.any():
            near = (
                alive[None, :]
                & rel_ok
                & (np.abs(pj - s[:, None]) < hl[:, None] + hl[None, :] + 8.0 + 1.5 * v[:, None])
            ).any(axis=1)
            spawned |= pending & ~near
    return SimResult(out_s, out_v, out_a, out_valid, out_cause)
