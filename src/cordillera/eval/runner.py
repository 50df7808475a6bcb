"""Closed-loop evaluation of any :class:`~cordillera.policy.base.Policy` on a set of scenes.

All scenes (times repeats) run as one simulator batch: every step the policy is called once
for all B rollouts, its plans are tracked by the controller, the checks are recorded, and at
the end the registered metrics score the trace. With an output folder the run is saved
(``metrics.json``, arrays, camera snapshots; see :mod:`cordillera.eval.results`) and a
self-contained ``report.html`` is written next to it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import cordillera
from cordillera.env.scenes import ScenesSpec, resolve_scenes
from cordillera.errors import ConfigError
from cordillera.eval.results import (
    EVENT_FLAGS,
    Decision,
    MetricsTable,
    RolloutMeta,
    RunArrays,
    RunMeta,
    metrics_table,
    save_run,
)
from cordillera.metrics import MetricResult, compute_metrics
from cordillera.policy.base import Policy
from cordillera.policy.inputs import InputBuilder
from cordillera.policy.plan import ChainOfCausation, Plan, PlanError
from cordillera.scene.model import Scene
from cordillera.sim.checks import StepChecks
from cordillera.sim.config import SimConfig, TrafficMode
from cordillera.sim.rollout import RolloutRecorder, RolloutTrace
from cordillera.sim.runner import agents_of_interest
from cordillera.sim.simulator import Simulator
from cordillera.sim.state import SimState


@dataclass(frozen=True)
class EvalConfig:
    """How an evaluation runs (the traffic mode is an argument of :func:`evaluate`).

    Attributes:
        repeats: rollouts per scene (differ only for stochastic policies or traffic).
        max_seconds: simulated seconds per rollout at most (default: to the end of the
            longest scene; frames past a scene's own end are recorded but not scored).
        start_step: log step the rollouts start at.
        seed: torch seed of the run (the caller's RNG state is restored afterwards).
        device: torch device of the simulator and the policy inputs.
        camera_snapshots: camera-ring pictures per scene, evenly spaced in time (0: none).
        camera_rig: rig preset of the snapshots (``ring7``, ``ring6``, ``av2``).
        camera_width_px, camera_height_px: image size of each camera of a snapshot.
        report: write ``report.html`` into the output folder.
        progress: show a progress bar over the steps.
    """

    repeats: int = 1
    max_seconds: float | None = None
    start_step: int = 0
    seed: int = 0
    device: str = "cpu"
    camera_snapshots: int = 3
    camera_rig: str = "ring7"
    camera_width_px: int = 256
    camera_height_px: int = 144
    report: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("repeats", "camera_width_px", "camera_height_px"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"EvalConfig.{name} must be an int >= 1, got {v!r}")
        if not isinstance(self.camera_snapshots, int) or self.camera_snapshots < 0:
            raise ConfigError(
                f"EvalConfig.camera_snapshots must be an int >= 0, got {self.camera_snapshots!r}"
            )
        if self.max_seconds is not None and not (
            math.isfinite(self.max_seconds) and self.max_seconds > 0
        ):
            raise ConfigError(f"EvalConfig.max_seconds must be > 0, got {self.max_seconds!r}")
        if self.start_step < 0:
            raise ConfigError(f"EvalConfig.start_step must be >= 0, got {self.start_step}")


@dataclass(frozen=True, eq=False)
class EvalResult:
    """An evaluation: the scored trace, its tables and where it was written.

    Attributes:
        scenes: the U distinct scenes; rollout b ran ``scenes[scene_of[b]]``.
        scene_of: ``(B,)`` scene of each rollout (B = U × repeats, scene-major).
        trace: the ego's :class:`RolloutTrace` (steps past a scene's end are not valid).
        metrics: every registered metric, per rollout.
        table: the ``metrics.json`` content.
        meta, arrays: what the report needs (saved in ``out_dir`` when given).
        out_dir: the run folder, or None.
        timings_s: wall seconds per phase.
    """

    policy: str
    traffic: str
    scenes: tuple[Scene, ...]
    scene_of: torch.Tensor
    trace: RolloutTrace
    metrics: dict[str, MetricResult]
    table: MetricsTable
    meta: RunMeta
    arrays: RunArrays
    out_dir: Path | None
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def scene_seconds(self) -> float:
        """Simulated seconds inside the scenes' logs, summed over rollouts."""
        return sum(r.num_frames - 1 for r in self.meta.rollouts) * self.trace.dt_s


class _StepLog:
    """Per-step records for the report, kept by reference and stacked once at the end."""

    def __init__(self, state: SimState) -> None:
        self.states = [state]
        self.plans: list[torch.Tensor] = []
        self.meta: list[torch.Tensor] = []
        self.events: list[torch.Tensor] = []
        self.hit: list[torch.Tensor] = []
        self.coc: list[tuple[ChainOfCausation | None, ...]] = []

    def append(self, plan: Plan, plan_local: torch.Tensor, nxt: SimState, c: StepChecks) -> None:
        if self.plans and plan_local.shape != self.plans[0].shape:
            raise PlanError(
                f"plans changed shape during the run: {tuple(self.plans[0].shape)} -> "
                f"{tuple(plan_local.shape)}"
            )
        self.states.append(nxt)
        self.plans.append(plan_local)
        self.meta.append(torch.stack([plan.longitudinal, plan.lateral, plan.lane], -1))
        flags = torch.zeros_like(c.collision[:, 0], dtype=torch.uint8)
        for name, check in (
            ("collision", c.collision),
            ("at_fault_collision", c.at_fault_collision),
            ("offroad", c.offroad),
            ("red_light", c.red_light_violation),
            ("against_traffic", c.against_traffic),
            ("ttc", c.ttc_violation),
        ):
            flags |= check[:, 0].to(torch.uint8) * EVENT_FLAGS[name]
        self.events.append(flags)
        self.hit.append(c.collision_object[:, 0])
        self.coc.append(plan.coc)


def _decisions(
    coc: Sequence[tuple[ChainOfCausation | None, ...]], row: int, frames: int, dt_s: float
) -> tuple[Decision, ...]:
    """The CoC traces of rollout ``row`` within its first ``frames`` frames, one entry per run
    of identical decisions with identical causes (their ids and kinds): the rendered text of
    a held decision changes every step with distances and speeds, so comparing texts would
    list the same decision ten times a second. Each entry keeps its first text."""
    out: list[Decision] = []
    last: tuple[object, ...] | None = None
    for step, per_row in enumerate(coc[: max(frames - 1, 0)]):
        c = per_row[row]
        if c is None:
            last = None
            continue
        lon = c.longitudinal.text if c.longitudinal else None
        lat = c.lateral.text if c.lateral else None
        causes = tuple(f"{x.kind} {x.object_id}" for x in c.causes)
        key = (lon, lat, causes)
        if key != last:
            out.append(Decision(step, step + 1, round(step * dt_s, 3), lon, lat, c.text(), causes))
        else:
            out[-1] = dataclasses.replace(out[-1], end_step=step + 1)
        last = key
    if last is not None:  # the final frame shows the state after the last decision
        out[-1] = dataclasses.replace(out[-1], end_step=frames)
    return tuple(out)


def _arrays(sim: Simulator, log: _StepLog, frames: torch.Tensor) -> RunArrays:
    """Stack the step log into :class:`RunArrays` (frames ``(B, F)`` log steps)."""
    bt, u = sim.batch, sim.scene_of
    b = sim.batch_size
    ego = sim.ego_index
    xy = torch.stack([s.xy_m for s in log.states], 1)
    plans = torch.stack([*log.plans, log.plans[-1]], 1)
    meta = torch.stack([*log.meta, log.meta[-1]], 1)
    events = torch.stack([torch.zeros_like(log.events[0]), *log.events], 1)
    hit = torch.stack([torch.full_like(log.hit[0], -1), *log.hit], 1)
    t = frames.clamp(max=bt.max_steps - 1)
    in_log = frames < bt.num_steps.index_select(0, u).unsqueeze(1)
    rows = u.view(b, 1)
    sig = torch.arange(bt.signal_xy_m.shape[1], device=u.device).view(1, -1, 1)

    def np_(x: torch.Tensor) -> np.ndarray:
        return x.detach().cpu().contiguous().numpy()

    return RunArrays(
        xy_m=np_(xy.float()),
        heading_rad=np_(torch.stack([s.heading_rad for s in log.states], 1).float()),
        valid=np_(torch.stack([s.valid for s in log.states], 1)),
        ego_speed_mps=np_(
            torch.stack([s.speed_mps.gather(1, ego.view(b, 1))[:, 0] for s in log.states], 1)
        ),
        plan_xy_m=np_(plans.float()),
        meta_actions=np_(meta.to(torch.int8)),
        events=np_(events),
        collision_object=np_(hit.to(torch.int32)),
        log_ego_xy_m=np_(bt.log_xy_m[rows, ego.view(b, 1), t]),
        log_ego_valid=np_(bt.log_valid[rows, ego.view(b, 1), t] & in_log),
        size_lw_m=np_(sim.size_lw_m.float()),
        object_type=np_(bt.object_type.index_select(0, u).to(torch.int8)),
        ego_index=np_(ego.long()),
        signal_xy_m=np_(bt.signal_xy_m.index_select(0, u).float()),
        signal_state=np_(bt.signal_state[rows.unsqueeze(-1), sig, t.unsqueeze(1)].to(torch.int8)),
        signal_valid=np_(bt.signal_valid.index_select(0, u)),
    )


def _mask_past_scene_end(trace: RolloutTrace, num_steps: torch.Tensor) -> RolloutTrace:
    """Steps past each scene's log are not scored: shorter scenes of a batch keep running
    (the batch steps together) but have no log, route or traffic there."""
    inside = trace.step < num_steps.index_select(0, trace.scene_of).unsqueeze(1)
    return dataclasses.replace(trace, valid=trace.valid & inside.unsqueeze(-1))


def evaluate(
    policy: Policy,
    scenes: ScenesSpec = None,
    traffic: TrafficMode = "idm",
    out_dir: str | Path | None = None,
    config: EvalConfig | None = None,
) -> EvalResult:
    """Drive ``policy`` in closed loop on ``scenes`` and score it.

    Args:
        policy: any :class:`Policy`; called once per step for all rollouts, replanning every
            step (it may cache internally).
        scenes: a suite name, a path, or :class:`Scene` objects (default: the ``default``
            suite); all must share one ``dt_s``.
        traffic: ``"idm"`` (reactive) or ``"log"`` (replay) for the other agents.
        out_dir: where to save the run and its report; None keeps everything in memory.
        config: everything else (:class:`EvalConfig`).
    """
    cfg = config or EvalConfig()
    timings: dict[str, float] = {}
    start = time.perf_counter()
    if not isinstance(policy, Policy):
        raise ConfigError(f"{policy!r} is not a Policy (name, request, reset, act)")
    unique = tuple(resolve_scenes(scenes, seed=cfg.seed))
    dts = sorted({round(s.dt_s, 9) for s in unique})
    if len(dts) > 1:
        raise ConfigError(f"scenes must share one dt_s to run as one batch, got {dts}")
    scene_of = torch.arange(len(unique)).repeat_interleave(cfg.repeats).to(cfg.device)
    sim = Simulator(
        unique,
        SimConfig(traffic=traffic, start_step=cfg.start_step),
        scene_of=scene_of,
        device=cfg.device,
    )
    steps = int(sim.batch.num_steps.max()) - 1 - cfg.start_step
    if cfg.max_seconds is not None:
        steps = min(steps, max(1, round(cfg.max_seconds / sim.dt_s)))
    timings["setup"] = time.perf_counter() - start  # scenes to padded tensors, grids
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(cfg.seed)
        trace, log = _simulate(policy, sim, unique, steps, cfg)
    timings["simulate"] = time.perf_counter() - start
    b = sim.batch_size
    frames = cfg.start_step + torch.arange(steps + 1, device=scene_of.device).expand(b, -1)
    num_frames = (sim.batch.num_steps.index_select(0, scene_of) - cfg.start_step).clamp(
        max=steps + 1
    )
    trace = _mask_past_scene_end(trace, sim.batch.num_steps)
    start = time.perf_counter()
    metrics = compute_metrics(trace)
    table = metrics_table(
        metrics,
        scene_of,
        [s.scene_id for s in unique],
        [s.source for s in unique],
        policy.name,
        traffic,
    )
    arrays = _arrays(sim, log, frames)
    timings["metrics"] = time.perf_counter() - start
    nf = [int(n) for n in num_frames.tolist()]
    rollouts = tuple(
        RolloutMeta(
            row=r,
            scene_index=int(scene_of[r]),
            scene_id=unique[int(scene_of[r])].scene_id,
            source=unique[int(scene_of[r])].source,
            repeat=r % cfg.repeats,
            num_frames=nf[r],
            decisions=_decisions(log.coc, r, nf[r], sim.dt_s),
        )
        for r in range(b)  # once per rollout, after the run
    )
    meta = RunMeta(
        policy=policy.name,
        traffic=traffic,
        dt_s=sim.dt_s,
        created_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        version=cordillera.__version__,
        rollouts=rollouts,
        timings_s=timings,
    )
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        meta = _write(out, sim, unique, log, num_frames, table, meta, arrays, cfg, timings)
    return EvalResult(
        policy.name, traffic, unique, scene_of, trace, metrics, table, meta, arrays, out, timings
    )


def _write(
    out: Path,
    sim: Simulator,
    scenes: Sequence[Scene],
    log: _StepLog,
    num_frames: torch.Tensor,
    table: MetricsTable,
    meta: RunMeta,
    arrays: RunArrays,
    cfg: EvalConfig,
    timings: dict[str, float],
) -> RunMeta:
    """Save the run, then add camera snapshots and the report. The scores are on disk before
    the (slower, optional) pictures are made, so a failing renderer loses no rollout."""
    from cordillera.eval.media import render_snapshots, scene_maps
    from cordillera.eval.report import write_report

    start = time.perf_counter()
    meta = dataclasses.replace(meta, maps=scene_maps(scenes, sim, arrays, meta.rollouts))
    save_run(out, table, meta, arrays)
    timings["save"] = time.perf_counter() - start
    if cfg.camera_snapshots:
        start = time.perf_counter()
        shots = render_snapshots(sim, scenes, log.states, num_frames, cfg, out)
        rollouts = tuple(
            dataclasses.replace(r, snapshots=shots.get(r.row, ())) for r in meta.rollouts
        )
        meta = dataclasses.replace(meta, rollouts=rollouts, camera_rig=cfg.camera_rig)
        timings["cameras"] = time.perf_counter() - start
    save_run(out, table, meta, arrays)
    if cfg.report:
        start = time.perf_counter()
        write_report([out], out / "report.html")
        timings["report"] = time.perf_counter() - start
        save_run(out, table, meta, arrays)  # with the report's time
    return meta


def _simulate(
    policy: Policy, sim: Simulator, scenes: Sequence[Scene], steps: int, cfg: EvalConfig
) -> tuple[RolloutTrace, _StepLog]:
    """The closed loop: one batched policy call and one simulator step per step."""
    state = sim.reset()
    b = sim.batch_size
    rows = torch.arange(b, device=state.step.device)
    ego = sim.ego_index
    agents = agents_of_interest(sim, state)  # (B, 1): the ego
    builder = InputBuilder(sim, scenes, policy.request)
    builder.reset(state)
    policy.reset([scenes[int(u)] for u in sim.scene_of.tolist()])
    recorder = RolloutRecorder(sim.scene_of, agents)
    log = _StepLog(state)
    checks: StepChecks | None = None
    bar = tqdm(
        range(steps),
        desc=f"eval {policy.name}",
        unit="step",
        disable=not cfg.progress,
        leave=False,
        mininterval=0.5,
    )
    for _ in bar:
        plan = policy.act(builder(state))
        if plan.batch_size != b:
            raise PlanError(f"policy {policy.name!r} returned {plan.batch_size} plans for {b}")
        local = plan.to_local(state.xy_m[rows, ego], state.heading_rad[rows, ego])
        nxt = sim.step_plan(state, local.unsqueeze(1), agents)
        checks = sim.checks(agents, state, nxt, checks)
        recorder.append(nxt, checks)
        log.append(plan, local, nxt, checks)
        state = nxt
    return recorder.finish(sim.batch), log


__all__ = ["EvalConfig", "EvalResult", "evaluate"]
