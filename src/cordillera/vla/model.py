"""The reasoning VLA driving model: 360° camera frames in; CoC, meta-actions and a plan out.

:class:`VlaModel` = a Qwen3-VL backbone (vision tower + text decoder, :mod:`.backbone`), an
ego encoder that turns the ego history into prompt tokens (:mod:`.inputs`), and a
flow-matching action expert that cross-attends to the backbone's hidden states
(:mod:`.action_expert`) and whose 64 controls are integrated into waypoints
(:mod:`.unicycle`).

* training: :meth:`VlaModel.text_loss` (stage 1, next-token cross-entropy of the CoC and
  meta-action text given the prompt) and :meth:`VlaModel.memory` + the expert's
  flow-matching loss (stage 2, backbone frozen);
* inference: :meth:`VlaModel.decide` — greedy text generation with a KV cache, then the flow
  from seeded noise, for a batch of decisions;
* checkpoints: :meth:`VlaModel.save_pretrained` / :meth:`VlaModel.from_pretrained` — config
  JSON, the backbone's transformers config JSON, tokenizer files and safetensors weights;
  nothing is unpickled on load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn
from transformers import DynamicCache, PreTrainedTokenizerBase, Qwen3VLConfig
from transformers import Qwen3VLForConditionalGeneration as _Qwen3VL

from cordillera.errors import ConfigError
from cordillera.policy.plan import ChainOfCausation
from cordillera.vla.action_expert import ActionExpert
from cordillera.vla.backbone import build_backbone, text_config
from cordillera.vla.config import VlaConfig
from cordillera.vla.inputs import EgoEncoder, VlaInputs, build_layout, frames_to_patches
from cordillera.vla.inputs import resize_frames as _resize
from cordillera.vla.text import MetaActions, parse_output
from cordillera.vla.tokenizer import EOS, load_tokenizer, token_id
from cordillera.vla.unicycle import integrate_controls

CONFIG_FILE = "vla_config.json"
BACKBONE_CONFIG_FILE = "backbone_config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"


@dataclass(frozen=True, eq=False)
class VlaDecision:
    """The model's output for B decisions.

    Attributes:
        waypoints_ego_m: ``(B, K, 2)`` the plan (first sample), ego frame at decision time.
        waypoint_samples: ``(B, S, K, 2)`` S plans from S noise draws (S = ``samples``).
        controls: ``(B, K, 2)`` the plan's (acceleration m/s², curvature 1/m).
        texts: B generated texts (with special tokens, up to ``<eos>``).
        coc: B parsed Chain-of-Causation traces (None where the text did not parse).
        meta: B parsed meta-actions (None where the line did not parse).
        new_tokens: ``(B,)`` tokens generated per decision (``<eos>`` included).
    """

    waypoints_ego_m: torch.Tensor
    waypoint_samples: torch.Tensor
    controls: torch.Tensor
    texts: tuple[str, ...]
    coc: tuple[ChainOfCausation | None, ...]
    meta: tuple[MetaActions | None, ...]
    new_tokens: torch.Tensor


class VlaModel(nn.Module):
    """The VLA (see the module docstring).

    Args:
        config: the model's shape.
        tokenizer: the tokenizer (Cordillera's, built in code, when None).
        backbone_config: the backbone's transformers config (from ``config`` when None; a
            saved run passes its own, which also covers a backbone read from a checkpoint).
    """

    _prompt_ids: torch.Tensor
    _prompt_pos: torch.Tensor
    _image_index: torch.Tensor
    _history_index: torch.Tensor

    def __init__(
        self,
        config: VlaConfig,
        tokenizer: PreTrainedTokenizerBase | None = None,
        backbone_config: Qwen3VLConfig | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        if backbone_config is not None:
            if tokenizer is None:
                raise ConfigError("a backbone config needs its tokenizer")
            self.backbone = _Qwen3VL(backbone_config)
            self.tokenizer = tokenizer
        else:
            self.backbone, self.tokenizer = build_backbone(config, tokenizer)
        hidden = int(text_config(self.backbone).hidden_size)
        self.ego = EgoEncoder(config.history_steps, hidden)
        self.expert = ActionExpert(
            hidden, config.expert_hidden_size, config.expert_layers, config.expert_heads,
            config.horizon,
        )  # fmt: skip
        layout = build_layout(config, self.tokenizer)
        self.layout = layout
        # Layout tensors follow the model to its device (not saved: derived from the config).
        self.register_buffer("_prompt_ids", layout.input_ids, persistent=False)
        self.register_buffer("_prompt_pos", layout.position_ids, persistent=False)
        self.register_buffer("_image_index", layout.image_index, persistent=False)
        self.register_buffer("_history_index", layout.history_index, persistent=False)
        self.eos_id = token_id(self.tokenizer, EOS)
        self.pad_id = int(self.tokenizer.pad_token_id or 0)

    # -- parts ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.expert.step_embed.device

    @property
    def language_model(self) -> nn.Module:
        lm: nn.Module = self.backbone.model.language_model
        return lm

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.backbone.get_input_embeddings()(ids)
        return out

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per part: vision tower, language model (embeddings and head included),
        ego encoder, action expert, and the total (tied weights counted once)."""
        seen: set[int] = set()

        def count(module: nn.Module) -> int:
            n = 0
            for p in module.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    n += p.numel()
            return n

        parts = {
            "vision": count(self.backbone.model.visual),
            "language": count(self.backbone.model.language_model) + count(self.backbone.lm_head),
            "ego_encoder": count(self.ego),
            "action_expert": count(self.expert),
        }
        parts["total"] = sum(parts.values())
        return parts

    # -- prompt --------------------------------------------------------------------------
    def resize_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames at the model's image size (the first preprocessing step; see
        :func:`cordillera.vla.inputs.resize_frames`)."""
        return _resize(frames, self.config.image_width_px, self.config.image_height_px)

    def prompt(
        self, inputs: VlaInputs
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Embeddings of B prompts and what the decoder needs with them.

        Returns:
            ``(B, P, D)`` input embeddings, ``(3, B, P)`` positions, ``(B, P)`` bool mask of
            the image tokens, and the DeepStack features (``(B·n_image, D)`` per layer).
        """
        cfg = self.config
        b = inputs.batch_size
        if inputs.frames.shape[1:3] != (len(cfg.cameras), cfg.frames):
            raise ConfigError(
                f"frames hold {tuple(inputs.frames.shape[1:3])} (cameras, frames); the model "
                f"reads ({len(cfg.cameras)}, {cfg.frames})"
            )
        frames = self.resize_frames(inputs.frames)
        pixels, grid = frames_to_patches(frames, cfg)
        vis = self.backbone.model.visual(
            pixels.to(self.backbone.model.visual.dtype), grid_thw=grid, return_dict=True
        )
        image_embeds = vis.pooler_output  # (B·C·gt·n, D), cameras in batch order
        emb = self.embed_tokens(self._prompt_ids)[None].expand(b, -1, -1).clone()
        d = emb.shape[-1]
        emb[:, self._image_index] = image_embeds.reshape(b, -1, d).to(emb.dtype)
        emb[:, self._history_index] = self.ego(inputs).to(emb.dtype)
        visual_mask = torch.zeros(emb.shape[:2], dtype=torch.bool, device=emb.device)
        visual_mask[:, self._image_index] = True
        pos = self._prompt_pos[:, None].expand(-1, b, -1)
        return emb, pos, visual_mask, list(vis.deepstack_features)

    def _decode(
        self,
        embeds: torch.Tensor,
        positions: torch.Tensor,
        cache: DynamicCache | None = None,
        visual_mask: torch.Tensor | None = None,
        deepstack: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``(B, L, D)`` final hidden states of the text decoder."""
        out = self.language_model(
            inputs_embeds=embeds,
            position_ids=positions,
            cache=cache,
            use_cache=cache is not None,
            visual_pos_masks=visual_mask,
            deepstack_visual_embeds=deepstack,
        )
        hidden: torch.Tensor = out.last_hidden_state
        return hidden

    def _text_positions(self, b: int, start: int, length: int) -> torch.Tensor:
        p = torch.arange(length, device=self.device) + self.layout.next_position + start
        return p.view(1, 1, -1).expand(3, b, -1)

    # -- training ------------------------------------------------------------------------
    def forward_text(
        self, inputs: VlaInputs, target_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced pass over prompt + target.

        Args:
            target_ids: ``(B, T)`` target tokens (``<eos>``-terminated, right-padded).

        Returns:
            ``(B, P + T, D)`` hidden states and ``(B, T, V)`` logits predicting each target
            token (from the position before it).
        """
        emb, pos, vmask, deepstack = self.prompt(inputs)
        b, t = target_ids.shape
        p = emb.shape[1]
        emb = torch.cat([emb, self.embed_tokens(target_ids)], 1)
        pos = torch.cat([pos, self._text_positions(b, 0, t)], 2)
        vmask = torch.cat([vmask, vmask.new_zeros(b, t)], 1)
        hidden = self._decode(emb, pos, None, vmask, deepstack)
        logits: torch.Tensor = self.backbone.lm_head(hidden[:, p - 1 : p + t - 1])
        return hidden, logits

    def text_loss(
        self, inputs: VlaInputs, target_ids: torch.Tensor, target_mask: torch.Tensor
    ) -> torch.Tensor:
        """Stage 1: mean next-token cross-entropy over the target tokens (``(B, T)`` ids and
        bool mask of real tokens)."""
        _, logits = self.forward_text(inputs, target_ids)
        loss = nn.functional.cross_entropy(
            logits.float().flatten(0, 1), target_ids.flatten(), reduction="none"
        )
        w = target_mask.flatten().to(loss.dtype)
        return (loss * w).sum() / w.sum().clamp_min(1.0)

    def memory(
        self, inputs: VlaInputs, target_ids: torch.Tensor, target_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What the action expert attends to, from teacher-forced text: ``(B, P + T, D)``
        hidden states and the ``(B, P + T)`` padding mask (True past the prompt and the
        target's tokens before ``<eos>`` — exactly what :meth:`decide` gives the expert)."""
        hidden, _ = self.forward_text(inputs, target_ids)
        return hidden, self._memory_pad(hidden.shape[1], target_lengths)

    def _memory_pad(self, length: int, target_lengths: torch.Tensor) -> torch.Tensor:
        # Valid: the prompt and the target tokens before <eos> (length - 1 of them).
        valid = self.layout.length + (target_lengths - 1).clamp_min(0)
        return torch.arange(length, device=self.device)[None] >= valid[:, None].to(self.device)

    # -- inference -----------------------------------------------------------------------
    def _step(
        self, embeds: torch.Tensor, cos_sin: tuple[torch.Tensor, torch.Tensor], cache: DynamicCache
    ) -> torch.Tensor:
        """One decode step through the text decoder's layers, bypassing the model-level
        wrapper (mask building, position bookkeeping: ~2/3 of a step's time at tiny sizes).

        A single query attends to every cached key, so no mask is needed; the positions'
        rotary embeddings come precomputed (``cos_sin``). Returns ``(B, 1, D)`` final hidden
        states, equal to :meth:`_decode` on the same token (tested)."""
        lm: Any = self.language_model
        h = embeds
        for layer in lm.layers:
            h = layer(h, position_embeddings=cos_sin, attention_mask=None, cache=cache,
                      use_cache=True)  # fmt: skip
        out: torch.Tensor = lm.norm(h)
        return out

    @torch.no_grad()  # not inference_mode: tests compare its memory with autograd passes
    def generate(
        self, inputs: VlaInputs, max_new_tokens: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Greedy text with a KV cache, stopping when every row has written ``<eos>``.

        Returns:
            ``(B, T)`` generated ids (``<eos>`` then padding after it), ``(B,)`` lengths
            (``<eos>`` included), ``(B, L, D)`` hidden states of prompt + fed tokens and the
            ``(B, L)`` memory padding mask.
        """
        n_max = max_new_tokens or self.config.max_new_tokens
        b = inputs.batch_size
        emb, pos, vmask, deepstack = self.prompt(inputs)
        cache = DynamicCache(config=text_config(self.backbone))
        hidden = [self._decode(emb, pos, cache, vmask, deepstack)]
        head = self.backbone.lm_head
        tok = head(hidden[-1][:, -1]).argmax(-1)
        # Rotary embeddings of every position the loop may feed, computed once.
        text_pos = self._text_positions(b, 0, n_max)
        lm: Any = self.language_model
        cos, sin = lm.rotary_emb(emb, text_pos)
        done = torch.zeros(b, dtype=torch.bool, device=self.device)
        lengths = torch.full((b,), n_max, dtype=torch.long, device=self.device)
        out: list[torch.Tensor] = []
        for step in range(n_max):
            out.append(tok)
            newly = (tok == self.eos_id) & ~done
            lengths = torch.where(newly, step + 1, lengths)
            done = done | newly
            if step == n_max - 1 or bool(done.all()):
                break
            e = self.embed_tokens(tok)[:, None]
            cs = (cos[:, step : step + 1], sin[:, step : step + 1])
            hidden.append(self._step(e, cs, cache))
            nxt = head(hidden[-1][:, -1]).argmax(-1)
            tok = torch.where(done, self.pad_id, nxt)
        ids = torch.stack(out, 1)
        h = torch.cat(hidden, 1)
        return ids, lengths, h, self._memory_pad(h.shape[1], lengths)

    def controls_from_norm(self, controls_norm: torch.Tensor) -> torch.Tensor:
        """``(..., K, 2)`` physical controls from normalised ones."""
        scale = torch.tensor(
            [self.config.accel_scale_mps2, self.config.curvature_scale_1pm],
            device=controls_norm.device,
            dtype=controls_norm.dtype,
        )
        return controls_norm * scale

    @torch.no_grad()
    def sample_plans(
        self,
        memory: torch.Tensor,
        memory_pad: torch.Tensor,
        inputs: VlaInputs,
        seed: int = 0,
        samples: int = 1,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, S, K, 2)`` waypoints and ``(B, S, K, 2)`` controls from S flow samples."""
        b = memory.shape[0]
        gen = torch.Generator(device=memory.device).manual_seed(seed)
        rep = lambda x: x.repeat_interleave(samples, 0)  # noqa: E731
        norm = self.expert.sample(
            rep(memory), rep(memory_pad), rep(inputs.ego_state().to(memory.dtype)),
            self.config.flow_steps, gen,
        )  # fmt: skip
        controls = self.controls_from_norm(norm.float())
        speed = rep(inputs.speed_mps.float().to(memory.device))
        wps = integrate_controls(controls[..., 0], controls[..., 1], speed, self.config.dt_s)
        k = self.config.horizon
        return wps.view(b, samples, k, 2), controls.view(b, samples, k, 2)

    @torch.inference_mode()
    def decide(self, inputs: VlaInputs, seed: int = 0, samples: int = 1) -> VlaDecision:
        """B decisions: text (CoC + meta-actions) by greedy decoding, then ``samples`` plans
        from the flow (noise from ``seed``; the first is the plan)."""
        inputs = inputs.to(self.device)
        ids, lengths, memory, pad = self.generate(inputs)
        texts = tuple(
            str(self.tokenizer.decode(row[: int(n)].tolist(), skip_special_tokens=False))
            for row, n in zip(ids, lengths, strict=True)
        )
        parsed = [parse_output(t) for t in texts]
        wps, controls = self.sample_plans(memory, pad, inputs, seed, samples)
        return VlaDecision(
            waypoints_ego_m=wps[:, 0],
            waypoint_samples=wps,
            controls=controls[:, 0],
            texts=texts,
            coc=tuple(c for c, _ in parsed),
            meta=tuple(m for _, m in parsed),
            new_tokens=lengths,
        )

    # -- checkpoints ---------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the model to ``directory``: config JSON, backbone config JSON, tokenizer
        files and ``model.safetensors``. Returns the directory."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.config.save(d / CONFIG_FILE)
        (d / BACKBONE_CONFIG_FILE).write_text(self.backbone.config.to_json_string())
        self.tokenizer.save_pretrained(str(d / TOKENIZER_DIR))
        # save_model handles tied weights (stored once, restored shared).
        safetensors.torch.save_model(self, str(d / WEIGHTS_FILE))
        return d

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> VlaModel:
        """Read a model written by :meth:`save_pretrained` (safetensors and JSON only)."""
        d = Path(directory)
        for name in (CONFIG_FILE, BACKBONE_CONFIG_FILE, WEIGHTS_FILE):
            if not (d / name).is_file():
                raise ConfigError(f"{d}: not a saved VLA model (no {name})")
        config = VlaConfig.load(d / CONFIG_FILE)
        try:
            bb = json.loads((d / BACKBONE_CONFIG_FILE).read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"{d / BACKBONE_CONFIG_FILE}: not JSON ({e})") from None
        backbone_config = Qwen3VLConfig.from_dict(bb)
        model = cls(config, load_tokenizer(d / TOKENIZER_DIR), backbone_config)
        missing, unexpected = safetensors.torch.load_model(
            model, str(d / WEIGHTS_FILE), strict=True, device=str(device)
        )
        if missing or unexpected:  # pragma: no cover - strict=True raises first
            raise ConfigError(f"{d}: weights do not match (missing {missing}, extra {unexpected})")
        return model.to(device).eval()


__all__ = ["VlaDecision", "VlaModel"]
