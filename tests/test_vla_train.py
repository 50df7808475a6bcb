"""VLA training: targets from samples, exact resume, run directory contents."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import safetensors.torch
import torch

from cordillera.errors import ConfigError
from cordillera.vla.config import TINY
from cordillera.vla.data import build_training_set
from cordillera.vla.model import VlaModel
from cordillera.vla.synthetic import synthetic_samples
from cordillera.vla.train import TrainOptions, batch_rows, load_run_model, lr_at, train_sft
from cordillera.vla.unicycle import integrate_controls

CFG = TINY.with_(
    cameras=TINY.cameras[:2], frames=2, image_width_px=64, image_height_px=32, text_layers=2,
    max_new_tokens=48,
)  # fmt: skip
OPTS = TrainOptions(steps_stage1=3, steps_stage2=3, batch_size=4, checkpoint_every=2,
                    progress=False)  # fmt: skip


def _data() -> object:
    samples, images = synthetic_samples(8, seed=3, cameras=CFG.cameras, frames=2)
    return build_training_set(samples, VlaModel(CFG), images.__getitem__)


def test_training_set_targets() -> None:
    samples, images = synthetic_samples(4, seed=3, cameras=CFG.cameras, frames=2)
    model = VlaModel(CFG)
    data = build_training_set(samples, model, images.__getitem__)
    assert data.inputs.frames.shape == (4, 2, 2, 32, 64, 3)
    for i, s in enumerate(samples):
        n = int(data.target_lengths[i])
        assert int(data.target_ids[i, n - 1]) == model.eos_id
        text = model.tokenizer.decode(data.target_ids[i, :n].tolist())
        assert text.startswith(s.coc.text())
    # the target controls integrate back to the logged future
    c = data.controls_norm
    wps = integrate_controls(
        c[..., 0] * CFG.accel_scale_mps2, c[..., 1] * CFG.curvature_scale_1pm,
        data.inputs.speed_mps, CFG.dt_s,
    )  # fmt: skip
    torch.testing.assert_close(wps, data.future_ego_m, atol=2e-2, rtol=0)


def test_schedule_and_batches_are_pure_functions_of_the_step() -> None:
    assert lr_at(0, 100, 1.0, 10) == 0.1 and abs(lr_at(100, 100, 1.0, 10) - 0.1) < 1e-9
    assert torch.equal(batch_rows(10, 4, 0, 1, 7), batch_rows(10, 4, 0, 1, 7))
    epoch = torch.cat([batch_rows(12, 4, 0, 1, s) for s in range(3)])
    assert sorted(epoch.tolist()) == list(range(12))


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path: Path) -> None:
    data = _data()
    full = train_sft(CFG, data, tmp_path / "full", OPTS)  # type: ignore[arg-type]
    assert full.steps_stage1 == 3 and full.steps_stage2 == 3
    # interrupted in stage 1, then in stage 2, then finished
    part = tmp_path / "part"
    r1 = train_sft(CFG, data, part, OPTS, stop_after=2)  # type: ignore[arg-type]
    assert r1.steps_stage1 == 2 and not (part / "model").exists()
    r2 = train_sft(CFG, data, part, OPTS, stop_after=4)  # type: ignore[arg-type]
    assert r2.resumed_from == {"stage": 1, "step": 2} and r2.steps_stage2 == 1
    r3 = train_sft(CFG, data, part, OPTS)  # type: ignore[arg-type]
    assert r3.resumed_from == {"stage": 2, "step": 1}
    a = safetensors.torch.load_file(str(tmp_path / "full" / "model" / "model.safetensors"))
    b = safetensors.torch.load_file(str(part / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert r3.final_loss_stage2 == full.final_loss_stage2
    # run directory: curves, per-step metrics (no duplicates after resumes), loadable model
    assert (part / "losses.png").stat().st_size > 0
    lines = [json.loads(x) for x in (part / "metrics.jsonl").read_text().splitlines()]
    assert [(x["stage"], x["step"]) for x in lines] == [
        (1, 0),
        (1, 1),
        (1, 2),
        (2, 0),
        (2, 1),
        (2, 2),
    ]
    assert load_run_model(part).config == CFG


def test_resume_with_other_options_is_refused(tmp_path: Path) -> None:
    data = _data()
    train_sft(CFG, data, tmp_path / "run", OPTS, stop_after=2)  # type: ignore[arg-type]
    other = dataclasses.replace(OPTS, seed=9, progress=True)
    with pytest.raises(ConfigError, match=r"other options \(seed 0 -> 9\)"):
        train_sft(CFG, data, tmp_path / "run", other)  # type: ignore[arg-type]
    # options that do not enter the weights may change
    same = dataclasses.replace(OPTS, checkpoint_every=5)
    assert train_sft(CFG, data, tmp_path / "run", same).resumed_from is not None  # type: ignore[arg-type]
