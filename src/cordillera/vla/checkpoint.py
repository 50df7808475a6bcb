"""Training checkpoints without pickle: model and optimizer tensors in safetensors, the rest
in JSON.

A checkpoint directory holds a saved model (:meth:`VlaModel.save_pretrained`),
``optimizer.safetensors`` (every optimizer state tensor, keyed ``"<param index>.<name>"``)
and ``trainer_state.json`` (stage, step, losses, the optimizer's param groups). It is written
to a temporary sibling and renamed into place, so an interrupted save never leaves a torn
checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from cordillera.errors import ConfigError

OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"


def optimizer_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], list[Any]]:
    """The optimizer's state tensors (flat, safetensors-ready) and its param groups (JSON)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"{idx}.{name}"] = t.detach().cpu().contiguous()
    return tensors, sd["param_groups"]


def load_optimizer_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], param_groups: list[Any]
) -> None:
    """Inverse of :func:`optimizer_tensors` (tensors go to each parameter's device)."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})


def write_checkpoint(
    directory: Path,
    save_model: Any,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
) -> None:
    """Atomically (re)write the checkpoint at ``directory``; ``save_model(dir)`` writes the
    model files."""
    tmp = directory.with_name(directory.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_model(tmp)
    tensors, groups = optimizer_tensors(optimizer)
    safetensors.torch.save_file(tensors, str(tmp / OPTIMIZER_FILE))
    (tmp / STATE_FILE).write_text(json.dumps({**state, "param_groups": groups}, indent=1))
    old = directory.with_name(directory.name + ".old")
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    if old.exists():
        shutil.rmtree(old)


def read_state(directory: Path) -> dict[str, Any] | None:
    """The trainer state of the checkpoint at ``directory``, or None when there is none."""
    p = directory / STATE_FILE
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}: corrupt trainer state ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: trainer state must be a JSON object")
    return data


def read_optimizer(
    directory: Path, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    """Load the checkpoint's optimizer state into ``optimizer``."""
    device = next(iter(optimizer.param_groups[0]["params"])).device
    tensors = safetensors.torch.load_file(str(directory / OPTIMIZER_FILE), device=str(device))
    # AdamW keeps its step counter on the CPU unless running fused/capturable.
    tensors = {k: (v.cpu() if k.endswith(".step") else v) for k, v in tensors.items()}
    load_optimizer_tensors(optimizer, tensors, state["param_groups"])


__all__ = [
    "OPTIMIZER_FILE",
    "STATE_FILE",
    "load_optimizer_tensors",
    "optimizer_tensors",
    "read_optimizer",
    "read_state",
    "write_checkpoint",
]
