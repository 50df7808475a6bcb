"""VLA decision latency on this machine: one ``VlaModel.decide`` for B = 1 with the 7-camera
ring at 256x144 and 4 frames per camera (what ``--policy vla:RUN`` observes in closed loop).

    python benchmarks/vla_latency.py                        # tiny, untrained weights
    python benchmarks/vla_latency.py --run /tmp/vla_run     # a trained run's model
    python benchmarks/vla_latency.py --json                 # one JSON object
    python benchmarks/vla_latency.py --run R --flow-steps 10 --unconstrained   # variants
    python benchmarks/vla_latency.py --threads 1            # one intra-op thread

An untrained model never writes ``<eos>`` and so always generates ``max_new_tokens``: its
figure is the worst case; a trained run stops at ``<eos>``. Reported (milliseconds, medians
unless said): ``decision_latency_ms`` (p50 of the whole ``decide``), ``p90``, and where the
time goes — ``resize_ms`` (frames to the model's size), ``prompt_ms`` (resize, vision tower
and the decoder's pass over the prompt), ``text_ms`` (the greedy decode loop), ``action_ms``
(flow sampling), ``per_token_ms`` (``text_ms`` per generated token after the first),
``new_tokens``, ``decode_passes`` (decoder passes after the prompt's: fewer than tokens with
the grammar's jump-forward), ``flow_steps`` and ``constrained_decoding``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from cordillera.vla.config import get_config
from cordillera.vla.decoder import LeanDecoder
from cordillera.vla.inputs import VlaInputs
from cordillera.vla.model import VlaModel


def _inputs(model: VlaModel, width: int, height: int, seed: int = 0) -> VlaInputs:
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (1, len(cfg.cameras), cfg.frames, height, width, 3),
                           generator=g, dtype=torch.uint8)  # fmt: skip
    hist = torch.stack([torch.linspace(-20.0, 0.0, 21), torch.zeros(21)], -1)[None]
    one = torch.ones(1)
    return VlaInputs(frames, hist, 10.0 * one, 0.0 * one, 0.0 * one)


def _ms(fn: Callable[[], object], repeats: int) -> list[float]:
    out: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(1000.0 * (time.perf_counter() - t0))
    return out


def measure(model: VlaModel, repeats: int, width: int, height: int) -> dict[str, float]:
    inputs = _inputs(model, width, height)
    with torch.inference_mode():
        for _ in range(3):  # warm-up
            model.decide(inputs)
        total = _ms(lambda: model.decide(inputs), repeats)
        new_tokens = int(model.decide(inputs).new_tokens[0])
        passes = _count_passes(model, inputs) - 1  # the prompt's is not a decode pass
        resize = _ms(lambda: model.resize_frames(inputs.frames), repeats)
        prompt = _ms(lambda: _prompt_pass(model, inputs), repeats)
        text = _ms(lambda: model.generate(inputs), repeats)
        _, _, memory, pad = model.generate(inputs)
        action = _ms(lambda: model.sample_plans(memory, pad, inputs), repeats)
    med = statistics.median
    decode = max(0.0, med(text) - med(prompt))
    return {
        "decision_latency_ms": round(med(total), 2),
        "p90": round(statistics.quantiles(total, n=10)[-1], 2),
        "resize_ms": round(med(resize), 2),
        "prompt_ms": round(med(prompt), 2),
        "text_ms": round(decode, 2),
        "action_ms": round(med(action), 2),
        "per_token_ms": round(decode / max(1, new_tokens - 1), 3),
        "new_tokens": new_tokens,
        "decode_passes": passes,
        "flow_steps": model.config.flow_steps,
        "constrained_decoding": model.config.constrained_decoding,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
    }


def _prompt_pass(model: VlaModel, inputs: VlaInputs) -> torch.Tensor:
    """Resize, vision tower and the decoder's pass over the prompt (the first token's cost)."""
    return model.prefill(inputs, model.config.max_new_tokens)[1]


def _count_passes(model: VlaModel, inputs: VlaInputs) -> int:
    """Decoder passes of one ``generate`` (the prompt's included)."""
    calls = 0
    forward = LeanDecoder.forward

    def counting(self: LeanDecoder, *args: object, **kwargs: object) -> torch.Tensor:
        nonlocal calls
        calls += 1
        return forward(self, *args, **kwargs)  # type: ignore[arg-type]

    LeanDecoder.forward = counting  # type: ignore[method-assign]
    try:
        model.generate(inputs)
    finally:
        LeanDecoder.forward = forward  # type: ignore[method-assign]
    return calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="tiny", help="configuration (untrained weights)")
    ap.add_argument("--run", default="", help="a training run directory (its final model)")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--height", type=int, default=144)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--flow-steps", type=int, default=0, help="override the model's flow_steps")
    ap.add_argument("--unconstrained", action="store_true", help="plain greedy decoding")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: as is)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run:
        from cordillera.vla.train import load_run_model

        model = load_run_model(args.run)
    else:
        torch.manual_seed(0)
        model = VlaModel(get_config(args.config)).eval()
    if args.flow_steps:
        model.config = model.config.with_(flow_steps=args.flow_steps)
    if args.unconstrained:
        model.config = model.config.with_(constrained_decoding=False)
    out = {"config": model.config.name, "run": args.run or None,
           **measure(model, args.repeats, args.width, args.height)}  # fmt: skip
    if args.json:
        print(json.dumps(out))
        return
    for k, v in out.items():
        print(f"{k:>22}: {v}")


if __name__ == "__main__":
    main()
