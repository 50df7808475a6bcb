"""What the VLA reads, and how it becomes one prompt: camera frames, ego history, ego state.

A prompt has the same layout for every sample of a configuration (so a batch needs no
padding, and the layout is computed once)::

    <cam:front_wide_120fov> <t-2> <image>×n <t-0> <image>×n  <cam:front_tele_30fov> …
    <hist>×(H+1) <coc>

* per camera, per time group of ``temporal_patch`` frames (oldest first), a time tag —
  frames back from the newest, of the group's newest frame — and the group's image tokens
  (merged patches, in row-major order), whose embeddings come from Qwen3-VL's vision tower;
* H ego-history tokens (one per past position) and one ego-state token (speed,
  acceleration, yaw rate), whose embeddings come from :class:`EgoEncoder`;
* ``<coc>``: the model writes the CoC and the meta-action line from here.

Positions follow Qwen3-VL's multimodal RoPE (``get_rope_index``): text tokens advance all
three axes by one; an image group's tokens share a time position and spread over height and
width; the next token starts after the group's larger side.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedTokenizerBase

from cordillera.errors import ConfigError
from cordillera.vla.config import VlaConfig
from cordillera.vla.tokenizer import COC, HIST, IMAGE, camera_tag, time_tag, token_id

HISTORY_SCALE_M = 10.0
SPEED_SCALE_MPS = 10.0
ACCEL_SCALE_MPS2 = 3.0
YAW_RATE_SCALE_RPS = 0.5
IMAGE_MEAN = 0.5
IMAGE_STD = 0.5
"""Qwen3-VL's pixel normalisation: ``(x / 255 - 0.5) / 0.5``."""


@dataclass(frozen=True, eq=False)
class VlaInputs:
    """A batch of B decisions' inputs (tensors on one device).

    Attributes:
        frames: ``(B, C, F, H, W, 3)`` uint8 camera frames, cameras in the config's order,
            frames oldest first (the last at decision time); any H, W (resized inside).
        ego_history_ego_m: ``(B, Hh, 2)`` past ego positions in the ego frame at decision
            time, oldest first, the last the origin; any Hh >= 1 (the last H are used, the
            oldest repeated when fewer).
        speed_mps, accel_mps2, yaw_rate_rps: ``(B,)`` ego state at decision time.
    """

    frames: torch.Tensor
    ego_history_ego_m: torch.Tensor
    speed_mps: torch.Tensor
    accel_mps2: torch.Tensor
    yaw_rate_rps: torch.Tensor

    def __post_init__(self) -> None:
        f = self.frames
        if f.ndim != 6 or f.shape[-1] != 3 or f.dtype != torch.uint8:
            raise ConfigError(
                f"frames must be (B, C, F, H, W, 3) uint8, got {tuple(f.shape)} {f.dtype}"
            )
        b = f.shape[0]
        h = self.ego_history_ego_m
        if h.ndim != 3 or h.shape[0] != b or h.shape[2] != 2 or h.shape[1] < 1:
            raise ConfigError(f"ego_history_ego_m must be ({b}, H, 2), got {tuple(h.shape)}")
        for name in ("speed_mps", "accel_mps2", "yaw_rate_rps"):
            if tuple(getattr(self, name).shape) != (b,):
                raise ConfigError(f"{name} must be ({b},), got {tuple(getattr(self, name).shape)}")

    @property
    def batch_size(self) -> int:
        return int(self.frames.shape[0])

    def to(self, device: torch.device | str) -> VlaInputs:
        return VlaInputs(
            self.frames.to(device),
            self.ego_history_ego_m.to(device),
            self.speed_mps.to(device),
            self.accel_mps2.to(device),
            self.yaw_rate_rps.to(device),
        )

    def index(self, rows: torch.Tensor) -> VlaInputs:
        """The decisions at ``rows`` (a batch of the batch)."""
        return VlaInputs(
            self.frames[rows],
            self.ego_history_ego_m[rows],
            self.speed_mps[rows],
            self.accel_mps2[rows],
            self.yaw_rate_rps[rows],
        )

    def ego_state(self) -> torch.Tensor:
        """``(B, 3)`` normalised (speed, acceleration, yaw rate)."""
        return torch.stack(
            [
                self.speed_mps / SPEED_SCALE_MPS,
                self.accel_mps2 / ACCEL_SCALE_MPS2,
                self.yaw_rate_rps / YAW_RATE_SCALE_RPS,
            ],
            -1,
        ).float()


def resize_frames(frames: torch.Tensor, width_px: int, height_px: int) -> torch.Tensor:
    """``(..., H, W, 3)`` uint8 frames resized to the model's size, rounded back to uint8 (so
    a cached resized dataset and a live decision see equal pixels).

    Downscaling uses area averaging (each output pixel is the mean of the input pixels it
    covers: antialiased by construction, and ~10x cheaper on a CPU than antialiased bilinear,
    which mattered at 28 frames per decision); upscaling is bilinear. Where the width shrinks
    by a whole factor (256 -> 128 px), the area sums are formed directly — columns added in
    groups, rows summed by a 0/1 window matrix — instead of ``adaptive_avg_pool2d``: sums of
    integers below 2**24 are exact in float32 in any order (matrix products at full float32
    precision, the default), and each is divided once by its pixel count, so the pixels are
    bit-identical (tested) at about half the cost."""
    *lead, h, w, _ = frames.shape
    if (h, w) == (height_px, width_px):
        return frames
    window = (-(-h // height_px) + 1) * (w // width_px)  # most pixels an output averages
    exact = window * 255 < 2**24 and torch.get_float32_matmul_precision() == "highest"
    if height_px <= h and width_px <= w and w % width_px == 0 and exact:
        return _area_whole_width(frames.reshape(-1, h, w, 3), width_px, height_px).reshape(
            *lead, height_px, width_px, 3
        )
    x = frames.reshape(-1, h, w, 3).permute(0, 3, 1, 2).float()
    if height_px <= h and width_px <= w:
        x = F.adaptive_avg_pool2d(x, (height_px, width_px))
    else:
        x = F.interpolate(x, size=(height_px, width_px), mode="bilinear", antialias=True)
    x = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return x.reshape(*lead, height_px, width_px, 3)


def _windows(size: int, out: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(out, size)`` 0/1 matrix of adaptive pooling's windows (``floor(i·size/out)`` to
    ``ceil((i+1)·size/out)``) and ``(out,)`` window lengths."""
    i = torch.arange(out, device=device)
    start = (i * size) // out
    end = -((-(i + 1) * size) // out)
    j = torch.arange(size, device=device)
    inside = (j[None] >= start[:, None]) & (j[None] < end[:, None])
    return inside.float(), (end - start).float()


def _area_whole_width(x: torch.Tensor, width_px: int, height_px: int) -> torch.Tensor:
    """Area averaging of ``(N, H, W, 3)`` uint8 with ``W`` a multiple of ``width_px``."""
    n, h, w, _ = x.shape
    r = w // width_px
    cols = x.float().view(n, h, width_px, r, 3)
    sums = cols[:, :, :, 0]
    for k in range(1, r):
        sums = sums + cols[:, :, :, k]
    rows, counts = _windows(h, height_px, x.device)
    sums = torch.matmul(rows, sums.reshape(n, h, width_px * 3)).view(n, height_px, width_px, 3)
    mean = sums / (counts[:, None, None] * r)
    return mean.round().clamp(0, 255).to(torch.uint8)


def frames_to_patches(frames: torch.Tensor, config: VlaConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen3-VL's ``pixel_values`` and ``grid_thw`` from ``(B, C, F, h, w, 3)`` uint8 frames
    already at the model's size.

    Each camera is one vision input of ``F / temporal_patch`` time groups; patches are ordered
    as Qwen3-VL's image processor orders them (each spatial-merge block contiguous), so the
    vision tower's merger sees the right neighbours.

    Returns:
        ``(B·C·gt·gh·gw, 3·tp·p·p)`` float pixel values and ``(B·C, 3)`` int64 grids
        ``(gt, gh, gw)`` in patches.
    """
    b, c, f, h, w, _ = frames.shape
    p, m, tp = config.patch_size, config.spatial_merge, config.temporal_patch
    gt, gh, gw = f // tp, h // p, w // p
    x = frames.permute(0, 1, 2, 5, 3, 4)  # (B, C, F, 3, h, w)
    x = x.reshape(b * c, gt, tp, 3, gh // m, m, p, gw // m, m, p)
    # -> (N, gt, gh/m, gw/m, m, m, 3, tp, p, p), the processor's patch order; reordered as
    # uint8 (a quarter of the bytes), then normalised
    x = x.permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)
    x = x.reshape(b * c * gt * gh * gw, 3 * tp * p * p)
    pixels = (x.float() / 255.0 - IMAGE_MEAN) / IMAGE_STD
    grid = torch.tensor([gt, gh, gw], dtype=torch.long, device=frames.device).expand(b * c, 3)
    return pixels, grid.contiguous()


@dataclass(frozen=True, eq=False)
class PromptLayout:
    """The token layout of every prompt of one configuration.

    Attributes:
        input_ids: ``(P,)`` token ids (placeholders where embeddings are replaced).
        position_ids: ``(3, P)`` multimodal RoPE positions (time, height, width).
        image_index: ``(C·gt·n,)`` prompt positions of the image tokens, in vision-tower order.
        history_index: ``(H + 1,)`` prompt positions of the ego tokens (history, then state).
        next_position: the RoPE position of the first generated token.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    image_index: torch.Tensor
    history_index: torch.Tensor
    next_position: int

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[0])


def build_layout(config: VlaConfig, tokenizer: PreTrainedTokenizerBase) -> PromptLayout:
    """The prompt layout of ``config`` with ``tokenizer``'s ids (see the module docstring)."""

    def tid(token: str) -> int:
        return token_id(tokenizer, token)

    m = config.spatial_merge
    unit = config.patch_size * m
    gh, gw = config.image_height_px // unit, config.image_width_px // unit
    ids: list[int] = []
    pos: list[torch.Tensor] = []
    image_index: list[int] = []
    cur = 0

    def text(token: str) -> None:
        nonlocal cur
        ids.append(tid(token))
        pos.append(torch.full((3, 1), cur, dtype=torch.long))
        cur += 1

    for cam in config.cameras:
        text(camera_tag(cam))
        for g in range(config.time_groups):
            newest = g * config.temporal_patch + config.temporal_patch - 1
            text(time_tag(config.frames - 1 - newest))
            hh, ww = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
            grid = torch.stack([torch.zeros_like(hh), hh, ww]).reshape(3, -1) + cur
            image_index.extend(range(len(ids), len(ids) + gh * gw))
            ids.extend([tid(IMAGE)] * (gh * gw))
            pos.append(grid)
            cur += max(gh, gw)
    history_start = len(ids)
    for _ in range(config.history_steps + 1):
        text(HIST)
    text(COC)
    return PromptLayout(
        input_ids=torch.tensor(ids, dtype=torch.long),
        position_ids=torch.cat(pos, 1),
        image_index=torch.tensor(image_index, dtype=torch.long),
        history_index=torch.arange(history_start, history_start + config.history_steps + 1),
        next_position=cur,
    )


class EgoEncoder(nn.Module):
    """Embeddings of the ego tokens: one per past position, one for the current state.

    Args:
        history_steps: H, positions read (the last H of the input history).
        hidden: the backbone's embedding width.
    """

    def __init__(self, history_steps: int, hidden: int) -> None:
        super().__init__()
        self.history_steps = history_steps
        self.point_mlp = nn.Sequential(nn.Linear(2, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.state_mlp = nn.Sequential(nn.Linear(3, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.step_embed = nn.Parameter(torch.randn(history_steps + 1, hidden) * 0.02)

    def forward(self, inputs: VlaInputs) -> torch.Tensor:
        """``(B, H + 1, hidden)`` embeddings."""
        hist = fit_history(inputs.ego_history_ego_m, self.history_steps).float()
        points = self.point_mlp(hist / HISTORY_SCALE_M)
        state = self.state_mlp(inputs.ego_state())[:, None]
        out: torch.Tensor = torch.cat([points, state], 1) + self.step_embed[None]
        return out


def fit_history(history: torch.Tensor, steps: int) -> torch.Tensor:
    """``(B, steps, 2)``: the last ``steps`` rows of ``(B, Hh, 2)``, the oldest repeated in
    front when Hh < steps."""
    h = history[:, -steps:]
    if h.shape[1] < steps:
        pad = h[:, :1].expand(-1, steps - h.shape[1], -1)
        h = torch.cat([pad, h], 1)
    return h


__all__ = [
    "EgoEncoder",
    "PromptLayout",
    "VlaInputs",
    "build_layout",
    "fit_history",
    "frames_to_patches",
    "resize_frames",
]
