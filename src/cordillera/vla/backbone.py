"""The Qwen3-VL backbone: built from a :class:`VlaConfig`, or read from a local checkpoint.

The backbone is ``transformers.Qwen3VLForConditionalGeneration``; Cordillera uses its parts
directly — the vision tower (``model.visual``), the text decoder (``model.language_model``),
the token embedding and the LM head — because its prompts mix in embeddings the class does
not know (ego-history tokens) and its layout is fixed per configuration (positions computed
once, see :mod:`cordillera.vla.inputs`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoTokenizer,
    PreTrainedConfig,
    PreTrainedTokenizerBase,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
)

from cordillera.errors import ConfigError
from cordillera.vla.config import VlaConfig
from cordillera.vla.tokenizer import IMAGE, build_tokenizer, padded_vocab_size, token_id

MAX_POSITIONS = 8192


def text_config(model: Qwen3VLForConditionalGeneration) -> PreTrainedConfig:
    """The backbone's text decoder config."""
    cfg = model.config.text_config
    if not isinstance(cfg, PreTrainedConfig):  # pragma: no cover - transformers builds it
        raise ConfigError(f"backbone text config is a {type(cfg).__name__}")
    return cfg


def qwen_config(config: VlaConfig, tokenizer: PreTrainedTokenizerBase) -> Qwen3VLConfig:
    """The transformers config of ``config``'s backbone (token ids from ``tokenizer``)."""
    vocab = config.vocab_size or padded_vocab_size(tokenizer)  # type: ignore[arg-type]
    if vocab < len(tokenizer):
        raise ConfigError(f"vocab_size {vocab} is smaller than the tokenizer ({len(tokenizer)})")
    image_id = token_id(tokenizer, IMAGE)
    text: dict[str, Any] = {
        "vocab_size": vocab,
        "hidden_size": config.text_hidden_size,
        "intermediate_size": config.text_intermediate_size,
        "num_hidden_layers": config.text_layers,
        "num_attention_heads": config.text_heads,
        "num_key_value_heads": config.text_kv_heads,
        "head_dim": config.text_head_dim,
        "max_position_embeddings": MAX_POSITIONS,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": config.rope_theta,
            "mrope_section": list(config.mrope_section),
            "mrope_interleaved": True,
        },
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": config.tie_word_embeddings,
    }
    vision: dict[str, Any] = {
        "depth": config.vision_depth,
        "hidden_size": config.vision_hidden_size,
        "intermediate_size": config.vision_intermediate_size,
        "num_heads": config.vision_heads,
        "patch_size": config.patch_size,
        "spatial_merge_size": config.spatial_merge,
        "temporal_patch_size": config.temporal_patch,
        "out_hidden_size": config.text_hidden_size,
        "num_position_embeddings": config.vision_position_grid**2,
        "deepstack_visual_indexes": list(config.deepstack_layers),
    }
    return Qwen3VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=image_id,
        # Cordillera prompts hold no video or vision-start/end tokens: point them at <image>
        # too (they are never looked up; the ids only need to be valid).
        video_token_id=image_id,
        vision_start_token_id=image_id,
        vision_end_token_id=image_id,
        tie_word_embeddings=config.tie_word_embeddings,
    )


class MatmulPatchEmbed(nn.Module):
    """Qwen3-VL's patch embedding computed as one matrix product.

    The original is a ``Conv3d`` whose kernel equals its stride and its input (one patch of
    ``channels x temporal_patch x patch x patch`` values), i.e. a linear map of each flattened
    patch; as a convolution it took ~40% of the tiny vision tower's CPU time. This module keeps
    the convolution's parameters (``proj``: same names, same checkpoints) and applies them
    with ``F.linear`` — the same sums in another order.
    """

    def __init__(self, embed: Any) -> None:
        super().__init__()
        self.patch_size = embed.patch_size
        self.temporal_patch_size = embed.temporal_patch_size
        self.in_channels = embed.in_channels
        self.embed_dim = embed.embed_dim
        self.proj: nn.Conv3d = embed.proj

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        w = self.proj.weight
        x = hidden_states.reshape(-1, w[0].numel()).to(w.dtype)
        out: torch.Tensor = F.linear(x, w.view(w.shape[0], -1), self.proj.bias)
        return out


def use_matmul_patch_embed(model: Qwen3VLForConditionalGeneration) -> None:
    """Swap the vision tower's convolutional patch embedding for :class:`MatmulPatchEmbed`
    (in place; parameters and their names unchanged)."""
    visual: Any = model.model.visual
    embed = visual.patch_embed
    if isinstance(embed, MatmulPatchEmbed):
        return
    proj = getattr(embed, "proj", None)
    if isinstance(proj, nn.Conv3d) and tuple(proj.kernel_size) == tuple(proj.stride):
        visual.patch_embed = MatmulPatchEmbed(embed)


def build_backbone(
    config: VlaConfig, tokenizer: PreTrainedTokenizerBase | None = None
) -> tuple[Qwen3VLForConditionalGeneration, PreTrainedTokenizerBase]:
    """A freshly initialised backbone of ``config`` and its tokenizer (Cordillera's when
    none is given); from ``config.backbone_path`` when set (see :func:`load_local_backbone`)."""
    if config.backbone_path:
        return load_local_backbone(config.backbone_path)
    tok = tokenizer if tokenizer is not None else build_tokenizer()
    return Qwen3VLForConditionalGeneration(qwen_config(config, tok)), tok


def load_local_backbone(
    path: str | Path,
) -> tuple[Qwen3VLForConditionalGeneration, PreTrainedTokenizerBase]:
    """A local Hugging Face Qwen3-VL checkpoint directory and its own tokenizer, extended with
    Cordillera's special tokens (the embedding grows to match). Reads safetensors weights
    only and never reaches the network."""
    p = Path(path)
    if not (p / "config.json").is_file():
        raise ConfigError(f"{p}: not a Hugging Face checkpoint directory (no config.json)")
    tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    specials = [t for t in build_tokenizer().all_special_tokens if t not in tok.get_vocab()]
    tok.add_special_tokens({"additional_special_tokens": specials})
    if tok.pad_token is None:
        tok.pad_token = "<pad>"
    if tok.eos_token is None:
        tok.eos_token = "<eos>"
    model = Qwen3VLForConditionalGeneration.from_pretrained(
        str(p), local_files_only=True, use_safetensors=True
    )
    embedding = model.get_input_embeddings()
    rows = int(embedding.num_embeddings) if isinstance(embedding, nn.Embedding) else 0
    if len(tok) > rows:
        model.resize_token_embeddings(len(tok), pad_to_multiple_of=64)
    model.config.image_token_id = token_id(tok, IMAGE)
    return model, tok


__all__ = [
    "MatmulPatchEmbed",
    "build_backbone",
    "load_local_backbone",
    "qwen_config",
    "text_config",
    "use_matmul_patch_embed",
]
