"""The VLA's shape: one frozen, typed record per model size, and the registry of named sizes.

A :class:`VlaConfig` fixes everything that decides the weights' shapes — the Qwen3-VL backbone
(text decoder and vision tower), the ego-history encoder, the flow-matching action expert —
and the input layout (cameras, frames per camera, the image size inside the model, history
steps) and the output contract (64 controls at 10 Hz). It is saved as JSON beside the weights
of every checkpoint, so a run directory is self-describing.

Named sizes (:data:`CONFIGS`): ``tiny`` (tests, CPU training in minutes), ``student``
(~1.5B, a Qwen3-VL-2B-like shape), ``teacher-10b`` and ``teacher-32b`` (Qwen3-VL-8B / -32B
shapes plus an action expert, about 10.0e9 and 32.0e9 parameters; instantiated on the meta
device for planning, see ``cordillera model info``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from cordillera.errors import ConfigError, require_numbers
from cordillera.sensors.presets import RING7_LAYOUT

RING7_CAMERAS: tuple[str, ...] = tuple(name for name, *_ in RING7_LAYOUT)
QWEN_VOCAB_SIZE = 151936
"""Vocabulary of the Qwen3 tokenizer: the teacher shapes keep it (they would start from a
Qwen3-VL checkpoint and its tokenizer)."""


@dataclass(frozen=True)
class VlaConfig:
    """Shape of one VLA driving model.

    Attributes:
        name: the registry name (``tiny``, ``student``...), or a user's label.
        text_hidden_size, text_layers, text_heads, text_kv_heads, text_head_dim,
            text_intermediate_size: the Qwen3 text decoder.
        vocab_size: rows of the token embedding; 0 = the size of Cordillera's tokenizer
            (rounded up to a multiple of 64), the default for models trained from scratch.
        tie_word_embeddings: share the input embedding with the output head.
        rope_theta: base of the text decoder's rotary embedding.
        mrope_section: rotary frequencies given to the (time, height, width) position axes of
            Qwen3-VL's multimodal RoPE; sums to ``text_head_dim // 2``.
        vision_depth, vision_hidden_size, vision_heads, vision_intermediate_size: the Qwen3-VL
            vision tower (a ViT over patches).
        patch_size: pixels per patch side; spatial_merge: patches merged per side into one
            language token (2 = 2x2 patches per token); temporal_patch: frames per patch in
            time (2 = consecutive frames of a camera are paired into one token).
        vision_position_grid: side of the learned square position grid of the vision tower.
        deepstack_layers: vision layers whose features are also added to the first text
            layers (Qwen3-VL's DeepStack).
        expert_hidden_size, expert_layers, expert_heads: the flow-matching action expert
            (a transformer decoder that cross-attends to the backbone's hidden states).
        flow_steps: Euler steps of the flow at inference (5: on held-out data the plans of 5
            and 10 steps score alike, see ``docs/vla.md``; a saved run keeps its own value).
        constrained_decoding: generate text under the output grammar (argmax over the tokens
            it allows; tokens it forces appended without a model step, see
            :mod:`cordillera.vla.grammar`); False = plain greedy decoding.
        cameras: camera names in prompt order (each gets a ``<cam:NAME>`` tag).
        frames: past frames per camera, oldest first, the newest at the decision time.
        image_width_px, image_height_px: size of each frame *inside the model*; camera
            frames of any size are resized to it (multiples of ``patch_size * spatial_merge``).
        history_steps: past ego positions the model reads (10 Hz, the current one included).
        horizon: controls and waypoints of a plan (64 = 6.4 s).
        dt_s: time between waypoints.
        accel_scale_mps2, curvature_scale_1pm: the action expert works on controls divided
            by these (so both channels are of order 1).
        max_curvature_1pm: curvature targets are clipped to this (slow, noisy logged steps
            would otherwise give huge curvatures).
        max_new_tokens: longest generated text (CoC + meta-action line).
        trajectory_tokens: 0, or bins per control of the optional discrete trajectory tokens
            (``<traj_k>``) appended to the training text (see ``docs/vla.md``).
        trajectory_token_stride: controls per trajectory token pair (8 = one pair per 0.8 s).
        backbone_path: a local Hugging Face Qwen3-VL checkpoint directory to start the
            backbone (and tokenizer) from, or ``""`` to build it from the fields above.
    """

    name: str = "custom"
    text_hidden_size: int = 128
    text_layers: int = 4
    text_heads: int = 4
    text_kv_heads: int = 2
    text_head_dim: int = 32
    text_intermediate_size: int = 384
    vocab_size: int = 0
    tie_word_embeddings: bool = True
    rope_theta: float = 10000.0
    mrope_section: tuple[int, int, int] = (6, 5, 5)
    vision_depth: int = 2
    vision_hidden_size: int = 128
    vision_heads: int = 4
    vision_intermediate_size: int = 256
    patch_size: int = 16
    spatial_merge: int = 2
    temporal_patch: int = 2
    vision_position_grid: int = 16
    deepstack_layers: tuple[int, ...] = (0,)
    expert_hidden_size: int = 128
    expert_layers: int = 2
    expert_heads: int = 4
    flow_steps: int = 5
    constrained_decoding: bool = True
    cameras: tuple[str, ...] = RING7_CAMERAS
    frames: int = 4
    image_width_px: int = 128
    image_height_px: int = 64
    history_steps: int = 20
    horizon: int = 64
    dt_s: float = 0.1
    accel_scale_mps2: float = 3.0
    curvature_scale_1pm: float = 0.05
    max_curvature_1pm: float = 0.3
    max_new_tokens: int = 96
    trajectory_tokens: int = 0
    trajectory_token_stride: int = 8
    backbone_path: str = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):  # from JSON: tuples come back as lists
                object.__setattr__(self, f.name, tuple(v))
        positive = (
            "text_hidden_size",
            "text_layers",
            "text_heads",
            "text_kv_heads",
            "text_head_dim",
            "text_intermediate_size",
            "vision_depth",
            "vision_hidden_size",
            "vision_heads",
            "vision_intermediate_size",
            "patch_size",
            "spatial_merge",
            "temporal_patch",
            "vision_position_grid",
            "expert_hidden_size",
            "expert_layers",
            "expert_heads",
            "flow_steps",
            "frames",
            "image_width_px",
            "image_height_px",
            "history_steps",
            "horizon",
            "max_new_tokens",
            "trajectory_token_stride",
        )
        require_numbers("VlaConfig", self, positive, integer=True)
        scales = ("dt_s", "accel_scale_mps2", "curvature_scale_1pm", "max_curvature_1pm")
        require_numbers("VlaConfig", self, scales)
        counts = ("vocab_size", "trajectory_tokens")
        require_numbers("VlaConfig", self, counts, integer=True, inclusive=True)
        if self.text_heads % self.text_kv_heads:
            raise ConfigError(
                f"VlaConfig.text_heads ({self.text_heads}) must be a multiple of "
                f"text_kv_heads ({self.text_kv_heads})"
            )
        if len(self.mrope_section) != 3 or sum(self.mrope_section) != self.text_head_dim // 2:
            raise ConfigError(
                f"VlaConfig.mrope_section {self.mrope_section} must be 3 numbers summing to "
                f"text_head_dim // 2 = {self.text_head_dim // 2}"
            )
        for name, size, heads in (
            ("vision", self.vision_hidden_size, self.vision_heads),
            ("expert", self.expert_hidden_size, self.expert_heads),
        ):
            if size % heads or (size // heads) % 4:
                raise ConfigError(
                    f"VlaConfig.{name}_hidden_size ({size}) must split into {name}_heads "
                    f"({heads}) heads of a size divisible by 4"
                )
        unit = self.patch_size * self.spatial_merge
        if self.image_width_px % unit or self.image_height_px % unit:
            raise ConfigError(
                f"VlaConfig image size {self.image_width_px}x{self.image_height_px} must be "
                f"a multiple of patch_size * spatial_merge = {unit}"
            )
        if self.frames % self.temporal_patch:
            raise ConfigError(
                f"VlaConfig.frames ({self.frames}) must be a multiple of temporal_patch "
                f"({self.temporal_patch})"
            )
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ConfigError(f"VlaConfig.cameras must be distinct names, got {self.cameras}")
        if any(d < 0 or d >= self.vision_depth for d in self.deepstack_layers):
            raise ConfigError(
                f"VlaConfig.deepstack_layers {self.deepstack_layers} must lie in "
                f"[0, vision_depth={self.vision_depth})"
            )
        if self.horizon % self.trajectory_token_stride:
            raise ConfigError(
                f"VlaConfig.horizon ({self.horizon}) must be a multiple of "
                f"trajectory_token_stride ({self.trajectory_token_stride})"
            )

    # -- derived layout ------------------------------------------------------------------
    @property
    def time_groups(self) -> int:
        """Vision tokens groups per camera along time (``frames // temporal_patch``)."""
        return self.frames // self.temporal_patch

    @property
    def tokens_per_group(self) -> int:
        """Language tokens of one camera's time group (merged patches of one frame pair)."""
        unit = self.patch_size * self.spatial_merge
        return (self.image_height_px // unit) * (self.image_width_px // unit)

    @property
    def image_tokens(self) -> int:
        """Image placeholder tokens of one prompt (all cameras, all time groups)."""
        return len(self.cameras) * self.time_groups * self.tokens_per_group

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> VlaConfig:
        """Inverse of :meth:`to_json`; unknown keys are an error (a newer checkpoint)."""
        known = {f.name for f in fields(VlaConfig)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"VlaConfig has no field(s) {unknown}")
        return VlaConfig(**data)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @staticmethod
    def load(path: Path) -> VlaConfig:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"{path}: not a readable VLA config ({e})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a VLA config is a JSON object, got {type(data).__name__}")
        return VlaConfig.from_json(data)

    def with_(self, **changes: Any) -> VlaConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


TINY = VlaConfig(name="tiny")
"""A few M parameters: 7 cameras x 4 frames become 7 x 2 x 8 = 112 image tokens (128x64
frames, 16-px patches merged 2x2, frame pairs); trains in minutes on a laptop CPU."""

STUDENT = VlaConfig(
    name="student",
    text_hidden_size=2048,
    text_layers=24,
    text_heads=16,
    text_kv_heads=8,
    text_head_dim=128,
    text_intermediate_size=6144,
    tie_word_embeddings=True,
    rope_theta=5_000_000.0,
    mrope_section=(24, 20, 20),
    vision_depth=24,
    vision_hidden_size=1024,
    vision_heads=16,
    vision_intermediate_size=4096,
    vision_position_grid=48,
    deepstack_layers=(5, 11, 17),
    expert_hidden_size=1024,
    expert_layers=8,
    expert_heads=16,
    image_width_px=448,
    image_height_px=256,
)
"""~1.8B: a Qwen3-VL-2B-like decoder (24 of its 28 layers) and vision tower with Cordillera's
small vocabulary, and a 1024-wide action expert."""

TEACHER_10B = VlaConfig(
    name="teacher-10b",
    text_hidden_size=4096,
    text_layers=36,
    text_heads=32,
    text_kv_heads=8,
    text_head_dim=128,
    text_intermediate_size=12288,
    vocab_size=QWEN_VOCAB_SIZE,
    tie_word_embeddings=False,
    rope_theta=5_000_000.0,
    mrope_section=(24, 20, 20),
    vision_depth=27,
    vision_hidden_size=1152,
    vision_heads=16,
    vision_intermediate_size=4304,
    vision_position_grid=48,
    deepstack_layers=(8, 16, 24),
    expert_hidden_size=2048,
    expert_layers=18,
    expert_heads=16,
    image_width_px=448,
    image_height_px=256,
)
"""Qwen3-VL-8B's shape (36 x 4096 decoder, 27-layer vision tower, Qwen vocabulary) plus a
2048-wide action expert: about 10.0e9 parameters."""

TEACHER_32B = TEACHER_10B.with_(
    name="teacher-32b",
    text_hidden_size=5120,
    text_layers=59,
    text_heads=64,
    text_intermediate_size=25600,
    expert_layers=16,
)
"""Qwen3-VL-32B's shape (5120-wide decoder, 59 of its 64 layers; the 8B's vision tower, as
the released 32B shares it) plus a 2048-wide action expert: about 32.0e9 parameters."""

CONFIGS: dict[str, VlaConfig] = {c.name: c for c in (TINY, STUDENT, TEACHER_10B, TEACHER_32B)}


def get_config(name: str) -> VlaConfig:
    """The named configuration; unknown names raise :class:`ConfigError` listing the names."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise ConfigError(f"unknown VLA config {name!r} (one of: {', '.join(CONFIGS)})") from None


__all__ = ["CONFIGS", "QWEN_VOCAB_SIZE", "RING7_CAMERAS", "VlaConfig", "get_config"]
