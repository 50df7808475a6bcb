"""``cordillera train``: train the VLA on a labelled dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cordillera.cli.errors import reports_errors

train_app = typer.Typer(help="Train driving models.", no_args_is_help=True)


@train_app.command("sft")
@reports_errors
def sft(
    config: Annotated[str, typer.Option("--config", help="VLA configuration name.")] = "tiny",
    data: Annotated[
        Path, typer.Option("--data", help="Labelled dataset directory (cordillera label).")
    ] = Path("out/labels"),
    out: Annotated[Path, typer.Option("--out", help="Run directory.")] = Path("out/vla"),
    # Defaults sized for tiny on a 2-core CPU: ~9 min for the basic suite's ~70 samples
    # (docs/vla.md); larger sets or configs want more.
    steps_stage1: Annotated[int, typer.Option("--steps-stage1", help="Text steps.")] = 1000,
    steps_stage2: Annotated[int, typer.Option("--steps-stage2", help="Action steps.")] = 6000,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 8,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate of stage 1.")] = 1e-3,
    lr_expert: Annotated[float, typer.Option("--lr-expert", help="Stage 2's.")] = 1e-3,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N.")] = "cpu",
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every")] = 500,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--no-resume",
            help="Continue from OUT's checkpoint (the default when one exists).",
        ),
    ] = True,
) -> None:
    """Stage 1: backbone on CoC + meta-actions; stage 2: action expert, backbone frozen."""
    import json
    import shutil

    from cordillera.errors import ConfigError
    from cordillera.vla.config import get_config
    from cordillera.vla.data import build_training_set, load_training_samples, png_reader
    from cordillera.vla.model import VlaModel
    from cordillera.vla.train import CHECKPOINT_DIR, TrainOptions, train_sft

    cfg = get_config(config)
    opts = TrainOptions(
        steps_stage1=steps_stage1,
        steps_stage2=steps_stage2,
        batch_size=batch_size,
        lr=lr,
        lr_expert=lr_expert,
        seed=seed,
        device=device,
        checkpoint_every=checkpoint_every,
    )
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA device is available")
    samples = load_training_samples(data)
    # Only the tokenizer and layout are needed here (no weights: built on the meta device);
    # the training model is built, or resumed, by train_sft.
    with torch.device("meta"):
        shell = VlaModel(cfg)
    data_set = build_training_set(samples, shell, png_reader(data))
    # Only now that the data and device are known good is an old checkpoint given up.
    if not resume and (out / CHECKPOINT_DIR).exists():
        shutil.rmtree(out / CHECKPOINT_DIR)
    typer.echo(f"{len(data_set)} samples from {data}; training {cfg.name} into {out}")
    result = train_sft(cfg, data_set, out, opts)
    typer.echo(json.dumps({"run": result.run_dir, "seconds": round(result.seconds, 1),
                           "loss_stage1": result.final_loss_stage1,
                           "loss_stage2": result.final_loss_stage2}))  # fmt: skip
