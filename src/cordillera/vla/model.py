"""The reasoning VLA driving model: 360° camera frames in; CoC, meta-actions and a plan out.

:class:`VlaModel` = a Qwen3-VL backbone (vision tower + text decoder, :mod:`.backbone`), an
ego encoder that turns the ego history into prompt tokens (:mod:`.inputs`), and a
flow-matching action expert that cross-attends to the backbone's hidden states
(:mod:`.action_expert`) and whose 64 controls are integrated into waypoints
(:mod:`.unicycle`).

* training: :meth:`VlaModel.text_loss` (stage 1, next-token cross-entropy of the CoC and
  meta-action text given the prompt) and :meth:`VlaModel.memory` + the expert's
  flow-matching loss (stage 2, backbone frozen);
* inference: :meth:`VlaModel.decide` — greedy text generation under the output grammar
  (:mod:`.grammar`, jump-forward over forced tokens) through lean decoder passes
  (:mod:`.decoder`), then the flow from seeded noise, for a batch of decisions;
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
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache, PreTrainedTokenizerBase, Qwen3VLConfig
from transformers import Qwen3VLForConditionalGeneration as _Qwen3VL
from transformers.vision_utils import (
    get_vision_cu_seqlens,
    get_vision_interpolation_indices_and_weights,
    get_vision_position_ids,
)

from cordillera.errors import ConfigError
from cordillera.policy.plan import ChainOfCausation
from cordillera.vla.action_expert import ActionExpert
from cordillera.vla.backbone import build_backbone, text_config, use_matmul_patch_embed
from cordillera.vla.config import VlaConfig
from cordillera.vla.decoder import DecoderWeights, LeanDecoder
from cordillera.vla.grammar import Node, OutputGrammar, build_grammar
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
        use_matmul_patch_embed(self.backbone)
        # Constant per configuration and device, computed on first use (not weights).
        self._grammar: tuple[OutputGrammar | None] | None = None
        self._layout_cache: dict[tuple[object, ...], Any] = {}
        self._decoder_weights: DecoderWeights | None = None  # rebuilt when parameters change

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
        visual = self.backbone.model.visual
        vis = visual(
            pixels.to(visual.dtype), grid_thw=grid, return_dict=True, **self._vision_layout(grid)
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

    def _vision_layout(self, grid: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the vision tower derives from the patch grid alone (position-embedding
        interpolation taps, rotary positions, attention segments): the same for every call
        with this batch size, so computed once (transformers' precompute hooks)."""
        key = ("vision", tuple(grid.shape), str(grid.device))
        out = self._layout_cache.get(key)
        if out is None:
            visual: Any = self.backbone.model.visual
            # Ordinary tensors even when first called under inference_mode (a training pass
            # may use them later).
            with torch.inference_mode(False), torch.no_grad():
                g = grid.clone()
                idx, w = get_vision_interpolation_indices_and_weights(
                    g,
                    num_grid_per_side=visual.num_grid_per_side,
                    mode=visual.interpolation_mode,
                    align_corners=visual.interpolation_align_corners,
                    spatial_merge_size=visual.spatial_merge_size,
                )
                out = {
                    "interp_indices": idx,
                    "interp_weights": w,
                    "position_ids": get_vision_position_ids(g, visual.spatial_merge_size),
                    "cu_seqlens": get_vision_cu_seqlens(g),
                }
            self._layout_cache[key] = out
        return dict(out)  # the tower pops what it uses

    def _rope(
        self, which: str, length: int, like: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(1, length, head_dim)`` rotary cos/sin of the prompt's positions (``"prompt"``)
        or of the text positions after it (``"text"``), computed once per device and dtype."""
        key = ("rope", which, length, str(like.device), like.dtype)
        out = self._layout_cache.get(key)
        if out is None:
            with torch.inference_mode(False), torch.no_grad():
                if which == "prompt":
                    pos = self._prompt_pos[:, None, :length].clone()
                else:
                    pos = self._text_positions(1, 0, length)
                lm: Any = self.language_model
                out = lm.rotary_emb(torch.empty((), dtype=like.dtype, device=like.device), pos)
            self._layout_cache[key] = out
        return out

    @property
    def grammar(self) -> OutputGrammar | None:
        """The output grammar (None where the tokenizer cannot express it), built on first
        use; ``config.constrained_decoding`` decides whether :meth:`generate` uses it."""
        if self._grammar is None:
            cfg = self.config
            rows = int(self.backbone.lm_head.out_features)
            g = build_grammar(self.tokenizer, rows, cfg.trajectory_tokens, cfg.horizon,
                              cfg.trajectory_token_stride)  # fmt: skip
            self._grammar = (g,)
        return self._grammar[0]

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
    def prefill(self, inputs: VlaInputs, max_new_tokens: int) -> tuple[LeanDecoder, torch.Tensor]:
        """The prompt pass of :meth:`generate`: a :class:`LeanDecoder` holding the prompt's
        keys and values (room for ``max_new_tokens`` more) and the ``(B, P, D)`` final hidden
        states of the prompt."""
        emb, _, _, deepstack = self.prompt(inputs)
        p = emb.shape[1]
        weights = self._decoder_weights
        if weights is None or not weights.current(self.language_model):
            with torch.inference_mode(False), torch.no_grad():  # ordinary tensors, kept
                weights = self._decoder_weights = DecoderWeights(self.language_model)
        dec = LeanDecoder(weights, inputs.batch_size, p + max_new_tokens)
        cos, sin = self._rope("prompt", p, emb)
        return dec, dec.forward(emb, cos, sin, 0, None, deepstack, self._image_index)

    @torch.no_grad()  # not inference_mode: tests compare its memory with autograd passes
    def generate(
        self, inputs: VlaInputs, max_new_tokens: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Greedy text, stopping when every row has written ``<eos>``.

        With ``config.constrained_decoding`` (the default) the text follows the output grammar
        (:mod:`cordillera.vla.grammar`): each choice is the argmax over the tokens the grammar
        allows there, and the tokens it forces (template words, ``longitudinal=`` after
        ``<meta>``...) are appended without asking the model and fed in the same pass as the
        choice before them (jump-forward decoding). Passes run through :class:`LeanDecoder`
        with a key/value buffer; rows of a batch advance by their own counts (padding slots
        are masked out).

        Returns:
            ``(B, T)`` generated ids (``<eos>`` then padding after it), ``(B,)`` lengths
            (``<eos>`` included), ``(B, L, D)`` hidden states of the prompt and the fed tokens
            (every generated token but the last), and the ``(B, L)`` memory padding mask.
        """
        n_max = max_new_tokens or self.config.max_new_tokens
        b = inputs.batch_size
        dec, h = self.prefill(inputs, n_max)
        p = h.shape[1]
        hidden = h.new_empty((b, p + n_max, h.shape[-1]))
        hidden[:, :p] = h
        head = self.backbone.lm_head
        embed = self.backbone.get_input_embeddings()
        assert isinstance(embed, nn.Embedding)
        embedding = embed.weight
        logits = F.linear(h[:, -1], head.weight, head.bias)  # (B, V)
        text_cos, text_sin = self._rope("text", n_max, h)
        grammar = self.grammar if self.config.constrained_decoding else None
        rows = range(b)
        nodes: list[Node | None] = [grammar.start if grammar is not None else None] * b
        out: list[list[int]] = [[] for _ in rows]
        done = [False] * b
        slots: list[list[tuple[int, int]]] = [[(0, p)] for _ in rows]  # (first, count) runs
        slot, ragged = p, False
        choosing = list(rows)
        while choosing:
            picks = self._choose(logits, [(nodes[r], n_max - len(out[r])) for r in choosing])
            feeds: list[list[int]] = [[] for _ in rows]
            first_pos = [0] * b  # text position of each row's first fed token
            for r, tok in zip(choosing, picks, strict=True):
                chunk, node = [tok], nodes[r]
                while True:
                    if grammar is not None and node is not None:
                        node = grammar.advance(node, tok)
                    if tok == self.eos_id or len(out[r]) + len(chunk) >= n_max:
                        done[r] = True
                        break
                    left = n_max - len(out[r]) - len(chunk)
                    tok_f = None
                    if grammar is not None and node is not None:
                        tok_f = grammar.forced(node, left)
                    if tok_f is None:
                        break
                    chunk.append(tok_f)
                    tok = tok_f
                first_pos[r] = len(out[r])
                out[r].extend(chunk)
                nodes[r] = node
                feeds[r] = chunk[:-1] if done[r] else chunk
            lens = [len(f) for f in feeds]
            n = max(lens)
            if n == 0:
                break
            ragged = ragged or min(lens) < n
            ids = torch.tensor([f + [self.pad_id] * (n - len(f)) for f in feeds], device=h.device)
            if ragged:
                pos = torch.tensor(first_pos, device=h.device)[:, None]
                pos = (pos + torch.arange(n, device=h.device)).clamp_max(n_max - 1)
                cos, sin = text_cos[0][pos], text_sin[0][pos]
                mask = self._ragged_mask(slots, slot, lens, h.device)
            else:
                cos = text_cos[:, first_pos[0] : first_pos[0] + n]
                sin = text_sin[:, first_pos[0] : first_pos[0] + n]
                mask = None
            for r in rows:
                if lens[r]:
                    slots[r].append((slot, lens[r]))
            if slot + n > hidden.shape[1]:
                hidden = torch.cat([hidden, hidden.new_empty((b, slot + n, hidden.shape[2]))], 1)
            h = dec.forward(F.embedding(ids, embedding), cos, sin, slot, mask)
            hidden[:, slot : slot + n] = h
            slot += n
            choosing = [r for r in rows if not done[r]]
            if len(choosing) == b and not ragged:
                last = h[:, -1]
            elif choosing:
                at = torch.tensor([lens[r] - 1 for r in choosing], device=h.device)
                last = h[torch.tensor(choosing, device=h.device), at]
            if choosing:
                logits = F.linear(last, head.weight, head.bias)
        lengths = torch.tensor([len(o) for o in out], dtype=torch.long, device=h.device)
        width = max(len(o) for o in out)
        ids_out = torch.tensor([o + [self.pad_id] * (width - len(o)) for o in out],
                               device=h.device)  # fmt: skip
        memory = self._gather_memory(hidden, slots, p, lengths) if ragged else hidden[:, :slot]
        return ids_out, lengths, memory, self._memory_pad(memory.shape[1], lengths)

    def _choose(self, logits: torch.Tensor, states: list[tuple[Any, int]]) -> list[int]:
        """The greedy token of each row: the argmax over what the grammar allows at the row's
        state (everything when decoding unconstrained)."""
        grammar = self.grammar if self.config.constrained_decoding else None
        if grammar is None or states[0][0] is None:
            return [int(t) for t in logits.argmax(-1).tolist()]
        masks = [grammar.allowed(node, left, logits.device) for node, left in states]
        allowed = masks[0][None] if len(masks) == 1 else torch.stack(masks)
        masked = torch.where(allowed, logits, float("-inf"))
        return [int(t) for t in masked.argmax(-1).tolist()]

    @staticmethod
    def _ragged_mask(
        slots: list[list[tuple[int, int]]], slot: int, lens: list[int], device: torch.device
    ) -> torch.Tensor:
        """``(B, 1, n, slot + n)`` bool for a pass writing slots ``[slot, slot + n)``: each
        query attends to its row's earlier real slots and, causally, to its own chunk's."""
        n = max(lens)
        valid = torch.zeros((len(slots), slot + n), dtype=torch.bool)
        for r, runs in enumerate(slots):
            for first, count in runs:
                valid[r, first : first + count] = True
            valid[r, slot : slot + lens[r]] = True
        causal = torch.arange(slot + n)[None] <= torch.arange(n)[:, None] + slot
        return (valid[:, None] & causal[None])[:, None].to(device)

    def _gather_memory(
        self,
        hidden: torch.Tensor,
        spans: list[list[tuple[int, int]]],
        prompt: int,
        lengths: torch.Tensor,
    ) -> torch.Tensor:
        """``(B, P + T - 1, D)``: each row's real slots in order, left-aligned."""
        width = prompt + int(lengths.max()) - 1
        index = torch.zeros((len(spans), width), dtype=torch.long)
        for r, runs in enumerate(spans):
            row = torch.cat([torch.arange(first, first + n) for first, n in runs])
            index[r, : len(row)] = row
        index = index.to(hidden.device)
        return hidden.gather(1, index[..., None].expand(-1, -1, hidden.shape[2]))

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
        norm = self.expert.sample(
            memory, memory_pad, inputs.ego_state().to(memory.device, memory.dtype),
            self.config.flow_steps, gen, samples,
        )  # fmt: skip
        controls = self.controls_from_norm(norm.float())
        speed = inputs.speed_mps.float().to(memory.device).repeat_interleave(samples, 0)
        wps = integrate_controls(controls[..., 0], controls[..., 1], speed, self.config.dt_s)
        k = self.config.horizon
        return wps.view(b, samples, k, 2), controls.view(b, samples, k, 2)

    @torch.inference_mode()
    def decide(self, inputs: VlaInputs, seed: int = 0, samples: int = 1) -> VlaDecision:
        """B decisions: text (CoC + meta-actions) by greedy decoding (under the output grammar,
        see :meth:`generate`), then ``samples`` plans from the flow (noise from ``seed``; the
        first is the plan)."""
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
        tokenizer = load_tokenizer(d / TOKENIZER_DIR)
        backbone_config = None  # built from the VLA config, which fixes the backbone's shape
        if config.backbone_path:  # a local checkpoint's shape is only in the saved file
            try:
                bb = json.loads((d / BACKBONE_CONFIG_FILE).read_text())
            except json.JSONDecodeError as e:
                raise ConfigError(f"{d / BACKBONE_CONFIG_FILE}: not JSON ({e})") from None
            backbone_config = Qwen3VLConfig.from_dict(bb)
        model = cls(config, tokenizer, backbone_config)
        try:
            missing, unexpected = safetensors.torch.load_model(
                model, str(d / WEIGHTS_FILE), strict=True, device=str(device)
            )
        except (safetensors.SafetensorError, RuntimeError) as e:
            raise ConfigError(
                f"{d / WEIGHTS_FILE}: weights do not fit the saved configuration "
                f"({str(e).splitlines()[0][:300]})"
            ) from None
        if missing or unexpected:  # pragma: no cover - strict=True raises first
            raise ConfigError(f"{d}: weights do not match (missing {missing}, extra {unexpected})")
        return model.to(device).eval()


__all__ = ["VlaDecision", "VlaModel"]
