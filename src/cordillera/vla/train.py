"""Supervised fine-tuning of the VLA in two stages, with exact resume.

* stage 1 trains the backbone (vision tower, text decoder) and the ego encoder on the text:
  next-token cross-entropy of the CoC and the meta-action line (and trajectory tokens when
  configured) given the prompt;
* stage 2 trains the action expert with the backbone frozen: rectified-flow velocity MSE on
  the controls of the logged future, attending to the backbone's hidden states of the prompt
  and the (teacher-forced) target text. Those hidden states do not change in stage 2, so
  they are computed once when they fit in memory.

Every random draw — the model's initialisation, each step's batch, each step's flow noise —
is a pure function of the seed, the stage and the step, so a run resumed from a checkpoint
ends with the same weights as one that never stopped. Checkpoints (:mod:`.checkpoint`) hold
safetensors and JSON only. The run directory receives ``model/`` (the final model),
``checkpoint/``, ``metrics.jsonl`` (one loss per step) and ``losses.png``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from cordillera.errors import ConfigError, require_numbers
from cordillera.vla.action_expert import flow_matching_loss
from cordillera.vla.backbone import text_config
from cordillera.vla.checkpoint import read_optimizer, read_state, write_checkpoint
from cordillera.vla.config import VlaConfig
from cordillera.vla.data import TrainingSet
from cordillera.vla.model import VlaModel

CHECKPOINT_DIR = "checkpoint"
MODEL_DIR = "model"
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "losses.png"
MEMORY_CACHE_BYTES = 2 * 1024**3
"""Stage 2 caches the frozen backbone's hidden states of all samples below this size."""


@dataclass(frozen=True)
class TrainOptions:
    """How ``cordillera train sft`` trains.

    Attributes:
        steps_stage1, steps_stage2: optimiser steps of each stage (0 skips a stage).
        batch_size: samples per step.
        lr, lr_expert: peak learning rates of stage 1 (backbone) and stage 2 (expert).
        warmup_steps: linear warm-up of each stage, then cosine decay to 10%.
        weight_decay: AdamW's.
        seed: every random draw derives from it.
        device: ``cpu`` or ``cuda`` (or ``cuda:N``).
        checkpoint_every: steps between checkpoints (and one at the end of each stage).
        progress: show a progress bar.
    """

    steps_stage1: int = 1000
    steps_stage2: int = 6000
    batch_size: int = 8
    lr: float = 1e-3
    lr_expert: float = 1e-3
    warmup_steps: int = 20
    weight_decay: float = 0.01
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 500
    progress: bool = True

    def __post_init__(self) -> None:
        owner = "TrainOptions"
        steps = ("steps_stage1", "steps_stage2", "warmup_steps")
        require_numbers(owner, self, steps, integer=True, inclusive=True)
        require_numbers(owner, self, ("batch_size", "checkpoint_every"), integer=True)
        require_numbers(owner, self, ("lr", "lr_expert", "weight_decay"), inclusive=True)
        require_numbers(owner, self, ("lr", "lr_expert"))


@dataclass
class TrainResult:
    """What a training run did (also written as ``train_summary.json``)."""

    run_dir: str
    steps_stage1: int
    steps_stage2: int
    resumed_from: dict[str, int] | None
    final_loss_stage1: float | None
    final_loss_stage2: float | None
    seconds: float
    parameters: dict[str, int] = field(default_factory=dict)


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to 10% of it."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def batch_rows(n: int, batch_size: int, seed: int, stage: int, step: int) -> torch.Tensor:
    """The sample rows of ``step``: consecutive slices of a per-epoch permutation that
    depends only on (seed, stage, epoch)."""
    per_epoch = max(1, n // batch_size)
    epoch, i = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(_mix(seed, stage, epoch))
    perm = torch.randperm(n, generator=g)
    if n < batch_size:  # tiny datasets: sample with repetition, still deterministic
        return torch.randint(n, (batch_size,), generator=g)
    return perm[i * batch_size : (i + 1) * batch_size]


def _mix(*parts: int) -> int:
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (p & 0xFFFFFFFF)) * 1099511628211) % (1 << 61)
    return h


def _stage_params(model: VlaModel, stage: int) -> list[torch.nn.Parameter]:
    mods: list[torch.nn.Module] = [model.backbone, model.ego] if stage == 1 else [model.expert]
    seen: set[int] = set()
    out: list[torch.nn.Parameter] = []
    for m in mods:
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def _optimizer(model: VlaModel, stage: int, opts: TrainOptions) -> torch.optim.AdamW:
    for p in model.parameters():
        p.requires_grad_(False)
    params = _stage_params(model, stage)
    for p in params:
        p.requires_grad_(True)
    lr = opts.lr if stage == 1 else opts.lr_expert
    # foreach=False: the plain per-parameter loop is bitwise reproducible across resumes.
    return torch.optim.AdamW(params, lr=lr, weight_decay=opts.weight_decay, foreach=False)


class _Memory:
    """Stage 2's view of the frozen backbone: hidden states per batch of rows, cached for the
    whole set when small enough."""

    def __init__(self, model: VlaModel, data: TrainingSet, batch_size: int) -> None:
        self.model = model
        self.data = data
        n, t = data.target_ids.shape
        d = int(text_config(model.backbone).hidden_size)
        size = n * (model.layout.length + t) * d * 4
        self.cache: tuple[torch.Tensor, torch.Tensor] | None = None
        if size <= MEMORY_CACHE_BYTES:
            hs, pads = [], []
            for i in range(0, n, batch_size):
                rows = torch.arange(i, min(n, i + batch_size))
                h, p = self._compute(rows)
                hs.append(h.cpu())
                pads.append(p.cpu())
            self.cache = (torch.cat(hs), torch.cat(pads))

    @torch.no_grad()
    def _compute(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dev = self.model.device
        d = self.data
        return self.model.memory(
            d.inputs.index(rows).to(dev), d.target_ids[rows].to(dev), d.target_lengths[rows]
        )

    def __call__(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dev = self.model.device
        if self.cache is not None:
            return self.cache[0][rows].to(dev), self.cache[1][rows].to(dev)
        return self._compute(rows)


def _steps(stage: int, start: int, total: int, opts: TrainOptions, desc: str) -> Iterator[int]:
    bar = tqdm(
        range(start, total), initial=start, total=total, desc=desc, disable=not opts.progress,
        dynamic_ncols=True, leave=True,
    )  # fmt: skip
    yield from bar


def train_sft(
    config: VlaConfig,
    data: TrainingSet,
    run_dir: str | Path,
    opts: TrainOptions,
    stop_after: int | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
) -> TrainResult:
    """Train ``config`` on ``data`` into ``run_dir``, resuming from its checkpoint if any.

    Args:
        stop_after: stop (after checkpointing) once this many steps (both stages counted)
            are done — to test resuming.
        on_step: called with (stage, step, loss) after every step.
    """
    t0 = time.perf_counter()
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    ckpt = run / CHECKPOINT_DIR
    device = torch.device(opts.device)
    state = read_state(ckpt)
    resumed: dict[str, int] | None = None
    if state is not None:
        if VlaConfig.from_json(state.get("config", {})) != config:
            raise ConfigError(f"{ckpt}: checkpoint of another model config; use another --out")
        _check_same_options(ckpt, state.get("options"), opts)
        model = VlaModel.from_pretrained(ckpt, device)
        resumed = {"stage": int(state["stage"]), "step": int(state["step"])}
        losses: dict[str, list[float]] = state["losses"]
    else:
        torch.manual_seed(opts.seed)
        model = VlaModel(config).to(device)
        losses = {"stage1": [], "stage2": []}
    (run / "vla_config.json").write_text(json.dumps(config.to_json(), indent=2))
    # The metrics log restarts from the checkpoint's losses (steps after it are redone).
    with (run / METRICS_FILE).open("w") as f:
        for key, values in losses.items():
            for i, v in enumerate(values):
                f.write(json.dumps({"stage": int(key[-1]), "step": i, "loss": v}) + "\n")
    done_steps = len(losses["stage1"]) + len(losses["stage2"])
    n = len(data)

    def checkpoint(stage: int, step: int, opt: torch.optim.Optimizer) -> None:
        write_checkpoint(
            ckpt,
            model.save_pretrained,
            opt,
            {"stage": stage, "step": step, "losses": losses, "config": config.to_json(),
             "options": asdict(opts)},
        )  # fmt: skip

    def should_stop() -> bool:
        return stop_after is not None and done_steps >= stop_after

    stages = ((1, opts.steps_stage1, opts.lr), (2, opts.steps_stage2, opts.lr_expert))
    for stage, total, peak in stages:
        key = f"stage{stage}"
        start = len(losses[key])
        if start >= total:
            continue
        if should_stop():
            break
        opt = _optimizer(model, stage, opts)
        if resumed is not None and resumed["stage"] == stage and start > 0:
            assert state is not None
            read_optimizer(ckpt, opt, state)
        model.train()
        memory = _Memory(model, data, opts.batch_size) if stage == 2 else None
        if stage == 2:
            model.backbone.eval()
        for step in _steps(stage, start, total, opts, f"stage {stage}"):
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, peak, opts.warmup_steps)
            rows = batch_rows(n, opts.batch_size, opts.seed, stage, step)
            if stage == 1:
                inputs = data.inputs.index(rows).to(device)
                loss = model.text_loss(
                    inputs, data.target_ids[rows].to(device), data.target_mask[rows].to(device)
                )
            else:
                assert memory is not None
                mem, pad = memory(rows)
                gen = torch.Generator(device=device).manual_seed(_mix(opts.seed, 2, step))
                loss = flow_matching_loss(
                    model.expert,
                    data.controls_norm[rows].to(device),
                    data.controls_valid[rows].to(device),
                    mem,
                    pad,
                    data.inputs.index(rows).ego_state().to(device),
                    gen,
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(_stage_params(model, stage), 1.0, foreach=False)
            opt.step()
            value = float(loss.detach())
            losses[key].append(value)
            done_steps += 1
            with (run / METRICS_FILE).open("a") as f:
                f.write(json.dumps({"stage": stage, "step": step, "loss": value}) + "\n")
            if on_step is not None:
                on_step(stage, step, value)
            last = step + 1 == total
            if last or (step + 1) % opts.checkpoint_every == 0 or should_stop():
                checkpoint(stage, step + 1, opt)
            if should_stop():
                break
        if should_stop():
            break

    finished = len(losses["stage1"]) >= opts.steps_stage1 and len(losses["stage2"]) >= (
        opts.steps_stage2
    )
    if finished:
        model.eval()
        model.save_pretrained(run / MODEL_DIR)
        plot_losses(losses, run / CURVES_FILE)
    result = TrainResult(
        run_dir=str(run),
        steps_stage1=len(losses["stage1"]),
        steps_stage2=len(losses["stage2"]),
        resumed_from=resumed,
        final_loss_stage1=losses["stage1"][-1] if losses["stage1"] else None,
        final_loss_stage2=losses["stage2"][-1] if losses["stage2"] else None,
        seconds=time.perf_counter() - t0,
        parameters=model.parameter_counts(),
    )
    (run / "train_summary.json").write_text(json.dumps(asdict(result), indent=2))
    return result


RESUME_FREE_OPTIONS = ("device", "checkpoint_every", "progress")
"""Options a resumed run may change: they do not enter the weights."""


def _check_same_options(ckpt: Path, saved: Any, opts: TrainOptions) -> None:
    """A resumed run continues the same trajectory only with the same options (seed, batch,
    schedule, learning rates): a difference is an error naming it, not a silent new run."""
    if not isinstance(saved, dict):
        return
    now = asdict(opts)
    changed = sorted(
        k for k in now if k not in RESUME_FREE_OPTIONS and k in saved and saved[k] != now[k]
    )
    if changed:
        diff = ", ".join(f"{k} {saved[k]!r} -> {now[k]!r}" for k in changed)
        raise ConfigError(
            f"{ckpt}: the checkpoint was trained with other options ({diff}); "
            "resume with the same ones, or train into another --out (or --no-resume)"
        )


def plot_losses(losses: dict[str, list[float]], path: Path) -> None:
    """Both stages' loss curves (log scale, with a trailing mean) in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    titles = {"stage1": "stage 1: text cross-entropy", "stage2": "stage 2: flow matching"}
    for ax, (key, title) in zip(axes, titles.items(), strict=True):
        values = losses.get(key, [])
        steps = np.arange(1, len(values) + 1)
        ax.plot(steps, values, lw=0.6, alpha=0.35, label="per step")
        if len(values) >= 20:  # per-step flow losses are noisy: a trailing mean shows the trend
            w = max(10, len(values) // 50)
            mean = np.convolve(np.asarray(values), np.ones(w) / w, mode="valid")
            ax.plot(steps[w - 1 :], mean, lw=1.6, label=f"mean of {w}")
            ax.legend(loc="upper right", fontsize=8)
        if values and min(values) > 0:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def load_run_model(run_dir: str | Path, device: str = "cpu") -> VlaModel:
    """The final model of a finished run."""
    d = Path(run_dir) / MODEL_DIR
    if not d.is_dir():
        raise ConfigError(f"{run_dir}: no trained model (no {MODEL_DIR}/); did training finish?")
    return VlaModel.from_pretrained(d, device)


def summary(result: TrainResult) -> dict[str, Any]:
    return asdict(result)


__all__ = [
    "TrainOptions",
    "TrainResult",
    "batch_rows",
    "load_run_model",
    "lr_at",
    "plot_losses",
    "train_sft",
]
