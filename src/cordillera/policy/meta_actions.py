"""Meta-action vocabularies and the kinematic meta-action labeler.

Every policy's ``Plan`` carries one meta-action per family for its trajectory; policies that do
not reason derive them here from the trajectory, and the reasoning auto-labeler labels logs the
same way. Two kinds of vocabulary live in this module (VISION.md, "Meta-actions"):

* **kinematic labels**, derived from a trajectory: :class:`LongitudinalAction`,
  :class:`LateralAction` and (with the map, see :mod:`cordillera.policy.meta_action_lanes`)
  :class:`LaneAction`;
* **decisions** stated in a Chain-of-Causation: :class:`LongitudinalDecision`,
  :class:`LateralDecision`, at most one per axis.

All are ``IntEnum`` so that labels are stored as ``int8`` arrays; every member also has a
snake_case text form (``LongitudinalDecision.KEEP_DISTANCE.text == "keep_distance"``) and
``Vocabulary.parse(text)`` reads it back. :data:`NO_LABEL` (-1) marks steps with no label.

Labelling works on batches of trajectories ``(B, T)`` in torch (so a policy on a GPU calls it
directly; numpy inputs are accepted and converted): per-step displacements and headings are
smoothed by robust weighted local linear fits (tolerant of log noise, pose and timing
glitches, gaps and nuScenes' 2 Hz interpolation), each step is classified by thresholds of
:class:`MetaActionConfig`, and runs shorter than ``min_segment_s`` are absorbed by their
neighbours so labels do not flicker. Thresholds and their sources: ``docs/meta_actions.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from cordillera.errors import ConfigError, CordilleraError
from cordillera.policy.vocabulary import _NUM_LABELS

# The vocabularies live in cordillera.policy.vocabulary; they are re-exported here because
# labels and vocabularies are used together.
from cordillera.policy.vocabulary import LaneAction as LaneAction
from cordillera.policy.vocabulary import LateralAction as LateralAction
from cordillera.policy.vocabulary import LateralDecision as LateralDecision
from cordillera.policy.vocabulary import LongitudinalAction as LongitudinalAction
from cordillera.policy.vocabulary import LongitudinalDecision as LongitudinalDecision
from cordillera.policy.vocabulary import UnknownLabelError as UnknownLabelError
from cordillera.policy.vocabulary import format_label as format_label
from cordillera.policy.vocabulary import parse_label as parse_label

if TYPE_CHECKING:  # the lane labeler imports this module; only the type comes back
    from cordillera.policy.meta_action_lanes import LaneLabels

NO_LABEL = -1
"""Label value of a step that has none (an invalid input step)."""

TensorLike = torch.Tensor | npt.NDArray[np.generic]
"""A torch tensor or a numpy array; numpy inputs are converted to CPU tensors."""


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ConfigError(f"MetaActionConfig.{name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class MetaActionConfig:
    """Thresholds of the kinematic labeler (sources in ``docs/meta_actions.md``).

    Attributes:
        smoothing_window_s: window of the local linear fits that give speed, heading, yaw
            rate and lateral position; 1 s spans two nuScenes keyframes (2 Hz).
        acceleration_window_s: window of the fit that gives acceleration (a second derivative
            needs more samples to be quiet: 5 cm position noise gives ~0.1 m/s² over 2 s).
        min_segment_s: shortest run of one label; shorter runs take the label of the run
            before them (or after, at the start), so labels do not flicker.
        outlier_speed_mps: difference between a step's displacement / dt and its local fit
            at which the step gets no weight in the refit (Tukey bisquare): drops the pose
            and timing glitches of real logs (5 cm noise is ~0.7 m/s per step).
        outlier_heading_rad: the same for a heading's residual to its local fit (single
            yaw flips of trackers).
        stop_speed_mps: below this speed a vehicle is standing (``STOP``); moving backwards
            faster than it is ``REVERSE``.
        gentle_acceleration_mps2, strong_acceleration_mps2: acceleration along the heading
            from which a step is gentle / strong acceleration.
        gentle_deceleration_mps2, strong_deceleration_mps2: the same for braking (positive).
        steer_curvature_1pm: steering curvature (1 / radius) from which a step is a steer
            (radius 100 m); below it the vehicle goes straight.
        sharp_steer_curvature_1pm: curvature from which a steer is sharp (radius 25 m:
            intersection turns, tight bends).
        curvature_min_speed_mps: curvature is yaw rate / speed with the speed floored here,
            so heading jitter of a crawling vehicle does not read as a sharp steer.
        lane_width_m: lane width for the lane-relative thresholds (maps carry centerlines,
            not widths).
        slight_shift_min_lane_fraction: smallest net lateral move, in lane widths, that is a
            slight shift rather than lane keeping (0.15 x 3.5 m = 0.5 m).
        lane_change_min_lane_fraction: net lateral move, in lane widths, that is a lane change
            even where the map shows no lane to move into (e.g. overtaking in the oncoming lane).
        lane_switch_min_lane_fraction: jump of the lateral offset, in lane widths, at which a
            change of nearest lane is a move to a side lane (not to a successor or connector).
        lateral_motion_min_speed_mps: lateral speed from which a step is part of a lateral move.
        max_lane_distance_m: farthest lane centerline a pose is matched to.
        max_lane_heading_diff_rad: largest heading difference between a pose and its lane.
        lane_heading_cost_m_per_rad: metres of distance one radian of heading difference
            costs when choosing the lane of a pose (picks the right connector at junctions).
        turn_min_heading_change_rad: net heading change of a run of turning that makes it a turn.
        turn_min_yaw_rate_rps: yaw rate from which a moving step is part of a run of turning.
        turn_needs_junction: a turn must pass through a junction lane (a fork or merge of
            the lane graph, or a lane next to one) or be as tight as a sharp steer; a gentle
            bend of a single road is lane keeping. Ignored where the map has no successors.
    """

    smoothing_window_s: float = 1.0
    acceleration_window_s: float = 2.0
    min_segment_s: float = 1.0
    outlier_speed_mps: float = 4.0
    outlier_heading_rad: float = 0.3
    stop_speed_mps: float = 0.3
    gentle_acceleration_mps2: float = 0.5
    strong_acceleration_mps2: float = 2.0
    gentle_deceleration_mps2: float = 0.5
    strong_deceleration_mps2: float = 2.0
    steer_curvature_1pm: float = 0.01
    sharp_steer_curvature_1pm: float = 0.04
    curvature_min_speed_mps: float = 1.0
    lane_width_m: float = 3.5
    slight_shift_min_lane_fraction: float = 0.15
    lane_change_min_lane_fraction: float = 0.75
    lane_switch_min_lane_fraction: float = 0.5
    lateral_motion_min_speed_mps: float = 0.1
    max_lane_distance_m: float = 5.0
    max_lane_heading_diff_rad: float = math.radians(60.0)
    lane_heading_cost_m_per_rad: float = 2.0
    turn_min_heading_change_rad: float = math.radians(45.0)
    turn_min_yaw_rate_rps: float = 0.05
    turn_needs_junction: bool = True

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if name != "turn_needs_junction":
                _positive(name, value)
        if not isinstance(self.turn_needs_junction, bool):
            raise ConfigError(
                f"MetaActionConfig.turn_needs_junction must be a bool, "
                f"got {self.turn_needs_junction!r}"
            )
        for low, high in (
            ("gentle_acceleration_mps2", "strong_acceleration_mps2"),
            ("gentle_deceleration_mps2", "strong_deceleration_mps2"),
            ("steer_curvature_1pm", "sharp_steer_curvature_1pm"),
            ("slight_shift_min_lane_fraction", "lane_change_min_lane_fraction"),
        ):
            if getattr(self, low) >= getattr(self, high):
                raise ConfigError(
                    f"MetaActionConfig.{low} ({getattr(self, low)!r}) must be below "
                    f"{high} ({getattr(self, high)!r})"
                )
        for name in ("max_lane_heading_diff_rad", "turn_min_heading_change_rad"):
            if getattr(self, name) > math.pi:
                raise ConfigError(
                    f"MetaActionConfig.{name} must be at most pi, got {getattr(self, name)!r}"
                )


@dataclass(frozen=True, eq=False)
class Kinematics:
    """Smoothed kinematics of B trajectories over T steps (tensors on the input's device).

    Attributes:
        speed_mps: ``(B, T)`` velocity along the heading (negative when reversing).
        accel_mps2: ``(B, T)`` acceleration along the heading.
        heading_rad: ``(B, T)`` smoothed, unwrapped heading, world frame, CCW from +x.
        yaw_rate_rps: ``(B, T)`` heading rate, CCW positive.
        curvature_1pm: ``(B, T)`` steering curvature ``yaw_rate / speed`` (speed floored at
            ``curvature_min_speed_mps``): positive when steering left, in either direction.
        valid: ``(B, T)`` bool; where False the values are 0.
    """

    speed_mps: torch.Tensor
    accel_mps2: torch.Tensor
    heading_rad: torch.Tensor
    yaw_rate_rps: torch.Tensor
    curvature_1pm: torch.Tensor
    valid: torch.Tensor


@dataclass(frozen=True, eq=False)
class KinematicLabels:
    """Per-step kinematic labels of B trajectories.

    Attributes:
        longitudinal: ``(B, T)`` int8 :class:`LongitudinalAction`, :data:`NO_LABEL` where
            not ``valid``.
        lateral: ``(B, T)`` int8 :class:`LateralAction`, :data:`NO_LABEL` where not ``valid``.
        valid: ``(B, T)`` bool, the input steps that were valid and had neighbours to fit.
        kinematics: the smoothed signals the labels were read from.
    """

    longitudinal: torch.Tensor
    lateral: torch.Tensor
    valid: torch.Tensor
    kinematics: Kinematics


class Segment(NamedTuple):
    """A run of one label: steps ``start`` (inclusive) to ``end`` (exclusive)."""

    start: int
    end: int
    label: int


def as_inputs(
    xy_m: TensorLike, heading_rad: TensorLike | None, valid: TensorLike | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Checked ``(B, T, 2)`` positions, ``(B, T)`` headings and ``(B, T)`` validity as tensors.

    Positions and headings become float64 when the positions are float64, float32
    otherwise; non-finite values are zeroed and their steps made invalid. ``valid=None``
    means every step is valid; ``heading_rad=None`` gives zeros.
    """
    xy = torch.as_tensor(xy_m)
    device = xy.device
    heading = (
        torch.zeros(xy.shape[:2], device=device)
        if heading_rad is None
        else torch.as_tensor(heading_rad, device=device)
    )
    dtype = torch.float64 if xy.dtype == torch.float64 else torch.float32
    xy, heading = xy.to(dtype), heading.to(dtype)
    if xy.ndim != 3 or xy.shape[-1] != 2:
        raise CordilleraError(f"xy_m must be (B, T, 2), got shape {tuple(xy.shape)}")
    if heading.shape != xy.shape[:2]:
        raise CordilleraError(
            f"heading_rad must be (B, T) = {tuple(xy.shape[:2])}, got {tuple(heading.shape)}"
        )
    ok = (
        torch.ones(xy.shape[:2], dtype=torch.bool, device=device)
        if valid is None
        else torch.as_tensor(valid, device=device)
    )
    if ok.shape != xy.shape[:2] or ok.dtype != torch.bool:
        raise CordilleraError(
            f"valid must be a (B, T) = {tuple(xy.shape[:2])} bool array, "
            f"got {ok.dtype} of shape {tuple(ok.shape)}"
        )
    ok = ok & torch.isfinite(xy).all(-1) & torch.isfinite(heading)
    xy = torch.where(ok.unsqueeze(-1), xy, 0.0)
    heading = torch.where(ok, heading, 0.0)
    return xy, heading, ok


def _check_dt(dt_s: float) -> float:
    if not (isinstance(dt_s, int | float) and math.isfinite(dt_s) and dt_s > 0):
        raise CordilleraError(f"dt_s must be a positive number of seconds, got {dt_s!r}")
    return float(dt_s)


def steps_of(seconds: float, dt_s: float) -> int:
    """A duration as a whole number of steps (at least 1)."""
    return max(1, round(seconds / dt_s))


def fill_invalid(x: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """``x (B, T, ...)`` with steps where not ``ok`` holding the previous (else next) valid
    value, so unwrapping and fitting see no jumps to placeholder zeros."""
    b, t = ok.shape
    if t == 0:
        return x
    idx = torch.arange(t, device=ok.device).expand(b, t)
    last = torch.where(ok, idx, -1).cummax(1).values
    first = torch.where(ok, idx, t).amin(1, keepdim=True).clamp(max=t - 1)
    src = torch.where(last >= 0, last, first)
    return torch.gather(x, 1, src.view(b, t, *([1] * (x.ndim - 2))).expand_as(x))


def _unwrap(angle: torch.Tensor) -> torch.Tensor:
    """Phase-unwrapped ``(B, T)`` angles along T (steps of at most pi)."""
    d = torch.diff(angle, dim=1)
    adj = torch.cumsum(torch.round(d / (2 * math.pi)), dim=1)
    return angle - 2 * math.pi * F.pad(adj, (1, 0))


def local_poly(
    x: torch.Tensor, w: torch.Tensor, half: int, degree: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted local polynomial fit of ``x (B, T, C)`` around every step.

    At step t, fits ``x[t + k] ≈ sum_j beta_j k^j`` over ``|k| <= half`` with tricube kernel
    weights times ``w (B, T)`` (0 at invalid steps), so gaps and the ends are handled by
    one-sided fits instead of zero padding. A tiny ridge on the highest coefficient keeps
    windows with too few samples solvable (as a lower-degree fit).

    Returns:
        ``(B, T, C, degree + 1)`` coefficients in units of x per step**j (``beta_1 / dt`` is
        the rate of change per second), and ``(B, T)`` the number of valid samples in each
        window.
    """
    b, t, c = x.shape
    k = torch.arange(-half, half + 1, dtype=x.dtype, device=x.device)
    kern = (1 - (k.abs() / (half + 1)) ** 3) ** 3
    basis = torch.stack([kern * k**m for m in range(2 * degree + 1)])  # (2d + 1, W)
    moments = F.conv1d(w.unsqueeze(1), basis.unsqueeze(1), padding=half)  # (B, 2d + 1, T)
    xw = (x * w.unsqueeze(-1)).permute(0, 2, 1).reshape(b * c, 1, t)
    rhs = F.conv1d(xw, basis[: degree + 1].unsqueeze(1), padding=half)
    rhs = rhs.view(b, c, degree + 1, t).permute(0, 1, 3, 2).unsqueeze(-1)  # (B, C, T, d + 1, 1)
    ij = torch.arange(degree + 1, device=x.device)
    gram = moments.permute(0, 2, 1)[:, :, ij[:, None] + ij[None, :]]  # (B, T, d + 1, d + 1)
    ridge = torch.zeros(degree + 1, dtype=x.dtype, device=x.device)
    ridge[-1] = 1e-6
    eye = torch.eye(degree + 1, dtype=x.dtype, device=x.device)
    # A ridge relative to the window's own scale keeps the solve well posed when the weights
    # leave the fit degenerate (a window of one valid step, a path folding back on itself).
    scale = gram.diagonal(dim1=-2, dim2=-1).mean(-1)[..., None, None].clamp_min(1e-6)
    gram = gram + torch.diag(ridge) * gram[..., :1, :1] + 1e-5 * scale * eye
    coef = torch.linalg.solve(gram.unsqueeze(1), rhs).squeeze(-1)  # (B, C, T, d + 1)
    ones = torch.ones(1, 1, 2 * half + 1, dtype=x.dtype, device=x.device)
    count = F.conv1d(w.unsqueeze(1), ones, padding=half).squeeze(1)
    return coef.permute(0, 2, 1, 3), count


def derive_kinematics(
    xy_m: TensorLike,
    heading_rad: TensorLike | None,
    dt_s: float,
    valid: TensorLike | None = None,
    config: MetaActionConfig | None = None,
) -> Kinematics:
    """Smoothed speed, acceleration, heading, yaw rate and curvature of B trajectories.

    Args:
        xy_m: ``(B, T, 2)`` positions, world frame.
        heading_rad: ``(B, T)`` headings, CCW from world +x (the vehicle's, not its course:
            a reversing vehicle moves against it); None takes the direction of motion, held
            while standing (for waypoint-only plans; reversing then reads as driving forward).
        dt_s: seconds between steps.
        valid: ``(B, T)`` bool, or None for all valid.
        config: thresholds (windows); defaults to :class:`MetaActionConfig` ``()``.
    """
    cfg = config or MetaActionConfig()
    dt = _check_dt(dt_s)
    xy, heading, ok = as_inputs(xy_m, heading_rad, valid)
    if xy.shape[1] == 0:
        return Kinematics(heading, heading, heading, heading, heading, ok)
    w = ok.to(xy.dtype)
    half_v = max(1, steps_of(cfg.smoothing_window_s, dt) // 2)
    half_a = max(1, steps_of(cfg.acceleration_window_s, dt) // 2)
    # Fit the per-step displacements, not the positions: a skipped or duplicated log sample
    # (nuScenes timing glitches) corrupts one displacement but shifts every later position.
    # inc[:, t] = xy[t] - xy[t - 1] lies at time t - 1/2; inc[:, 0] has no weight.
    xy = fill_invalid(xy, ok)
    inc = F.pad(xy[:, 1:] - xy[:, :-1], (0, 0, 1, 0))
    w_inc = F.pad(w[:, 1:] * w[:, :-1], (1, 0))
    # Local *linear* fits: in a symmetric window the slope equals the local quadratic's, and
    # at the one-sided ends its variance is several times smaller.
    fit, count = local_poly(inc, w_inc, half_v)
    # One robustness pass (LOWESS): Tukey's bisquare of each displacement's residual to its
    # local fit drops glitches and leaves ordinary noise (a few cm per step) almost untouched.
    resid = torch.linalg.vector_norm(inc - fit[..., 0], dim=-1) / (cfg.outlier_speed_mps * dt)
    w_inc = w_inc * (1 - resid.clamp(max=1.0) ** 2) ** 2
    fit_v, _ = local_poly(inc, w_inc, half_v)
    fit_a, _ = local_poly(inc, w_inc, half_a)
    # The line in the displacement index, evaluated half a step later (at time t).
    vel = (fit_v[..., 0] + 0.5 * fit_v[..., 1]) / dt  # (B, T, 2)
    acc = fit_a[..., 1] / dt**2
    if heading_rad is None:  # the direction of motion, held while standing
        course = torch.atan2(vel[..., 1], vel[..., 0])
        moving = ok & (torch.linalg.vector_norm(vel, dim=-1) >= cfg.stop_speed_mps)
        heading = fill_invalid(course, moving)
    psi_raw = _unwrap(fill_invalid(heading, ok)).unsqueeze(-1)
    fit_h, _ = local_poly(psi_raw, w, half_v)
    resid_h = (psi_raw - fit_h[..., 0]).abs()[..., 0] / cfg.outlier_heading_rad
    w_h = w * (1 - resid_h.clamp(max=1.0) ** 2) ** 2
    yaw_rate = local_poly(psi_raw, w_h, half_v)[0][:, :, 0, 1] / dt
    # The heading itself from a quadratic: a line evaluated at a one-sided end lags a turn
    # (the net heading change of a turn that starts with the log would come out short).
    psi = local_poly(psi_raw, w_h, half_v, degree=2)[0][:, :, 0, 0]
    cos, sin = torch.cos(psi), torch.sin(psi)
    speed = vel[..., 0] * cos + vel[..., 1] * sin
    accel = acc[..., 0] * cos + acc[..., 1] * sin
    # yaw_rate / speed, with the speed floored so a crawling vehicle's jitter stays small;
    # dividing by the signed speed makes reversing with the wheels turned left positive.
    curvature = yaw_rate * speed / speed.square().clamp(min=cfg.curvature_min_speed_mps**2)
    out_ok = ok & (count >= 1)

    def z(v: torch.Tensor) -> torch.Tensor:
        return torch.where(out_ok, v, 0.0)

    return Kinematics(z(speed), z(accel), z(psi), z(yaw_rate), z(curvature), out_ok)


def _classify_longitudinal(kin: Kinematics, cfg: MetaActionConfig) -> torch.Tensor:
    u, a = kin.speed_mps, kin.accel_mps2
    out = torch.full_like(u, int(LongitudinalAction.MAINTAIN_SPEED), dtype=torch.long)
    for cond, label in (
        (a >= cfg.gentle_acceleration_mps2, LongitudinalAction.GENTLE_ACCELERATION),
        (a >= cfg.strong_acceleration_mps2, LongitudinalAction.STRONG_ACCELERATION),
        (a <= -cfg.gentle_deceleration_mps2, LongitudinalAction.GENTLE_DECELERATION),
        (a <= -cfg.strong_deceleration_mps2, LongitudinalAction.STRONG_DECELERATION),
        (u.abs() < cfg.stop_speed_mps, LongitudinalAction.STOP),
        (u <= -cfg.stop_speed_mps, LongitudinalAction.REVERSE),
    ):  # later conditions override earlier ones
        out = torch.where(cond, int(label), out)
    return out


def _classify_lateral(kin: Kinematics, cfg: MetaActionConfig) -> torch.Tensor:
    u, kappa = kin.speed_mps, kin.curvature_1pm
    fwd, back = u >= cfg.stop_speed_mps, u <= -cfg.stop_speed_mps
    steer, sharp = cfg.steer_curvature_1pm, cfg.sharp_steer_curvature_1pm
    out = torch.full_like(u, int(LateralAction.GO_STRAIGHT), dtype=torch.long)
    for cond, label in (
        (fwd & (kappa >= steer), LateralAction.STEER_LEFT),
        (fwd & (kappa >= sharp), LateralAction.SHARP_STEER_LEFT),
        (fwd & (kappa <= -steer), LateralAction.STEER_RIGHT),
        (fwd & (kappa <= -sharp), LateralAction.SHARP_STEER_RIGHT),
        (back & (kappa >= steer), LateralAction.REVERSE_LEFT),
        (back & (kappa <= -steer), LateralAction.REVERSE_RIGHT),
    ):
        out = torch.where(cond, int(label), out)
    return out


def label_kinematic(
    xy_m: TensorLike,
    heading_rad: TensorLike | None,
    dt_s: float,
    valid: TensorLike | None = None,
    config: MetaActionConfig | None = None,
) -> KinematicLabels:
    """Per-step longitudinal and lateral labels of B trajectories.

    Args:
        xy_m: ``(B, T, 2)`` positions, world frame (any frame: only differences matter).
        heading_rad: ``(B, T)`` vehicle headings, CCW from +x, or None for the direction of
            motion (see :func:`derive_kinematics`).
        dt_s: seconds between steps (0.1 at 10 Hz).
        valid: ``(B, T)`` bool, or None for all valid.
        config: thresholds; defaults to :class:`MetaActionConfig` ``()``.

    Returns:
        Labels on the input's device; runs are at least ``min_segment_s`` long (or fill a
        whole valid stretch). Pure and row-independent: a batch is labelled as its rows are.
    """
    cfg = config or MetaActionConfig()
    kin = derive_kinematics(xy_m, heading_rad, dt_s, valid, cfg)
    min_steps = steps_of(cfg.min_segment_s, float(dt_s))
    out = []
    for raw in (_classify_longitudinal(kin, cfg), _classify_lateral(kin, cfg)):
        labels = torch.where(kin.valid, raw, NO_LABEL)
        out.append(debounce(labels, min_steps).to(torch.int8))
    return KinematicLabels(out[0], out[1], kin.valid, kin)


def run_ids(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Runs of equal consecutive values in ``labels (B, T)``.

    Returns:
        ``(B, T)`` long id of each step's run, unique over the batch (``row * T + k``), and
        ``(B, T)`` the length of that run in steps.
    """
    b, t = labels.shape
    change = torch.ones_like(labels, dtype=torch.bool)
    change[:, 1:] = labels[:, 1:] != labels[:, :-1]
    rid = torch.cumsum(change.long(), 1) - 1 + t * torch.arange(b, device=labels.device)[:, None]
    length = torch.bincount(rid.flatten(), minlength=b * t)[rid]
    return rid, length


def debounce(labels: torch.Tensor, min_steps: int) -> torch.Tensor:
    """Labels ``(B, T)`` (long or int8 in ``[0, 7)``, :data:`NO_LABEL` at invalid steps) with
    no run shorter than ``min_steps`` inside a stretch of valid steps.

    A short run takes the label of the nearest long run before it in its stretch (after it
    when it comes first); a stretch with no long run takes its most frequent label (ties to
    the lower label). Invalid steps are kept. Vectorised: no loop over rows or steps.
    """
    lab = labels.long()
    b, t = lab.shape
    ok = lab >= 0
    idx = torch.arange(t, device=lab.device).expand(b, t)
    _, length = run_ids(lab)
    long_run = ok & (length >= min_steps)
    starts = ok & ~F.pad(ok, (1, 0))[:, :-1]
    stretch = torch.cumsum(starts.long(), 1)  # id of each step's valid stretch within its row
    prev = torch.where(long_run, idx, -1).cummax(1).values
    nxt = torch.flip(torch.flip(torch.where(long_run, idx, t), [1]).cummin(1).values, [1])
    prev_ok = (prev >= 0) & (stretch.gather(1, prev.clamp(min=0)) == stretch)
    next_ok = (nxt < t) & (stretch.gather(1, nxt.clamp(max=t - 1)) == stretch)
    src = torch.where(prev_ok, prev, torch.where(next_ok, nxt, idx))
    out = torch.where(ok & ~long_run, lab.gather(1, src), lab)
    # Stretches with no long run at all: their most frequent label.
    key = (torch.arange(b, device=lab.device)[:, None] * (t + 1) + stretch) * _NUM_LABELS
    counts = torch.zeros(b * (t + 1) * _NUM_LABELS, device=lab.device, dtype=torch.long)
    counts.index_add_(0, (key + lab.clamp(min=0))[ok], torch.ones_like(lab[ok]))
    mode = counts.view(-1, _NUM_LABELS).argmax(1)[key // _NUM_LABELS]
    orphan = ok & ~prev_ok & ~next_ok & ~long_run
    return torch.where(orphan, mode, out).to(labels.dtype)


def segments(labels: TensorLike) -> list[list[Segment]]:
    """Runs of equal labels of each row of ``labels (B, T)`` (or one row ``(T,)``), in order;
    steps with :data:`NO_LABEL` belong to no segment."""
    lab = torch.as_tensor(labels).detach().cpu().long()
    if lab.ndim == 1:
        lab = lab.unsqueeze(0)
    if lab.ndim != 2:
        raise CordilleraError(f"labels must be (B, T) or (T,), got shape {tuple(lab.shape)}")
    rid, length = run_ids(lab)
    first = torch.ones_like(lab, dtype=torch.bool)
    first[:, 1:] = rid[:, 1:] != rid[:, :-1]
    first &= lab >= 0
    rows, starts = torch.nonzero(first, as_tuple=True)
    lengths, values = length[rows, starts], lab[rows, starts]
    out: list[list[Segment]] = [[] for _ in range(lab.shape[0])]
    cols = (rows.tolist(), starts.tolist(), lengths.tolist(), values.tolist())
    for r, s, n, v in zip(*cols, strict=True):
        out[r].append(Segment(s, s + n, v))  # one pass over runs, once, at the end
    return out


@dataclass(frozen=True, eq=False)
class MetaActionSummary:
    """One meta-action per family for each of B trajectories (a plan's meta-actions).

    Attributes:
        longitudinal, lateral, lane: ``(B,)`` int8 labels, :data:`NO_LABEL` for a row with
            no valid step.
        lane_valid: ``(B,)`` bool, whether the lane label came from the map.
    """

    longitudinal: torch.Tensor
    lateral: torch.Tensor
    lane: torch.Tensor
    lane_valid: torch.Tensor

    def row(
        self, i: int
    ) -> tuple[LongitudinalAction | None, LateralAction | None, LaneAction | None]:
        """The three labels of row ``i`` as enum members (None where there is no label)."""
        lon, lat, lane = int(self.longitudinal[i]), int(self.lateral[i]), int(self.lane[i])
        return (
            LongitudinalAction(lon) if lon >= 0 else None,
            LateralAction(lat) if lat >= 0 else None,
            LaneAction(lane) if lane >= 0 else None,
        )


# Lane labels that name a manoeuvre outrank keeping the lane in a summary, however short:
# a 6.4 s plan that contains a 4 s lane change is a lane-change plan.
_LANE_TIER = torch.tensor([0, 2, 2, 1, 1, 3, 3])


def _dominant(labels: torch.Tensor, tier: torch.Tensor | None = None) -> torch.Tensor:
    """``(B,)`` most frequent valid label of each row of ``labels (B, T)``; with ``tier``
    ``(L,)``, a label present in a higher tier wins regardless of count."""
    lab = labels.long()
    ok = lab >= 0
    counts = (F.one_hot(lab.clamp(min=0), _NUM_LABELS) * ok.unsqueeze(-1)).sum(1)  # (B, L)
    score = counts.clone()
    if tier is not None:
        score += (counts > 0) * tier.to(lab.device) * (lab.shape[1] + 1)
    return torch.where(ok.any(1), score.argmax(1), NO_LABEL)


def summarize(kinematic: KinematicLabels, lanes: LaneLabels | None = None) -> MetaActionSummary:
    """The dominant label per family of each of B trajectories (e.g. 64-step plans).

    * longitudinal: ``STOP`` when the trajectory ends standing (the plan's point is to
      halt), else the label held longest;
    * lateral: the label held longest while moving (standing steps vote only when the
      trajectory never moves);
    * lane: the manoeuvre of highest rank present (turn > lane change > slight shift), else
      ``LANE_KEEP``; ``LANE_KEEP`` with ``lane_valid`` False when ``lanes`` is None.

    Ties go to the lower label value.
    """
    return summarize_ids(
        kinematic.longitudinal,
        kinematic.lateral,
        kinematic.valid,
        None if lanes is None else lanes.lane,
        None if lanes is None else lanes.valid,
    )


def summarize_ids(
    longitudinal: torch.Tensor,
    lateral: torch.Tensor,
    valid: torch.Tensor,
    lane: torch.Tensor | None = None,
    lane_valid: torch.Tensor | None = None,
) -> MetaActionSummary:
    """:func:`summarize` on label ids: ``(B, T)`` longitudinal, lateral and lane labels
    (:data:`NO_LABEL` where there is none), ``valid`` ``(B, T)`` and ``lane_valid`` ``(B, T)``
    (lane None: no lane labels) — for labels that come from elsewhere than a fit, e.g. a
    labelled dataset."""
    lon_lab = longitudinal.long()
    b, t = lon_lab.shape
    idx = torch.arange(t, device=lon_lab.device).expand(b, t)
    if t == 0:  # nothing to summarise: every family has no label
        none = torch.full((b,), NO_LABEL, dtype=torch.int8, device=lon_lab.device)
        return MetaActionSummary(none, none, none, torch.zeros_like(none, dtype=torch.bool))
    last = torch.where(lon_lab >= 0, idx, -1).amax(1).clamp(min=0)
    ends_stopped = lon_lab.gather(1, last[:, None])[:, 0] == int(LongitudinalAction.STOP)
    lon = torch.where(ends_stopped, int(LongitudinalAction.STOP), _dominant(lon_lab))
    # Standing steps say nothing about steering: they vote only if the plan never moves.
    lat_lab = lateral.long()
    moving = (lat_lab >= 0) & (lon_lab != int(LongitudinalAction.STOP))
    lat = torch.where(
        moving.any(1), _dominant(torch.where(moving, lat_lab, NO_LABEL)), _dominant(lat_lab)
    )
    if lane is None or lane_valid is None:
        lane_out = torch.where(valid.any(1), int(LaneAction.LANE_KEEP), NO_LABEL)
        lane_ok = torch.zeros(b, dtype=torch.bool, device=lon_lab.device)
    else:
        lane_out = _dominant(lane, _LANE_TIER)
        lane_ok = lane_valid.any(1)
    i8 = torch.int8
    return MetaActionSummary(lon.to(i8), lat.to(i8), lane_out.to(i8), lane_ok)
