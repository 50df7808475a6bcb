"""Labelled samples → the tensors the VLA trains on.

:func:`load_training_samples` is the seam to the labelled dataset (``label/dataset.py``'s
``read_samples``); :func:`build_training_set` turns samples into one :class:`TrainingSet`
of stacked tensors — frames resized to the model's size once (uint8, so 300 samples of
7 cameras x 4 frames take ~200 MB), target token ids, and target controls from the logged
future by the inverse unicycle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from cordillera.errors import ConfigError
from cordillera.label.dataset import DatasetError, read_samples
from cordillera.label.record import LabelSample
from cordillera.vla.inputs import VlaInputs, fit_history, resize_frames
from cordillera.vla.model import VlaModel
from cordillera.vla.text import format_target
from cordillera.vla.unicycle import controls_from_waypoints

ImageReader = Callable[[str], npt.NDArray[np.uint8]]
"""Reads one frame, ``(H, W, 3)`` uint8, from its path relative to the dataset root."""


def load_training_samples(root: str | Path) -> list[LabelSample]:
    """The valid labelled samples of the dataset at ``root``."""
    samples: list[LabelSample] = [s for s in read_samples(Path(root)) if s.valid]
    if not samples:
        raise ConfigError(f"{root}: no valid labelled samples")
    return samples


def png_reader(root: str | Path) -> ImageReader:
    """An :data:`ImageReader` of image files under ``root``."""
    from PIL import Image

    base = Path(root)

    def read(rel: str) -> npt.NDArray[np.uint8]:
        try:
            with Image.open(base / rel) as im:
                return np.asarray(im.convert("RGB"), dtype=np.uint8)
        except (OSError, ValueError) as e:  # missing, truncated or not an image
            raise DatasetError(f"camera frame unreadable ({e})", path=base / rel) from None

    return read


@dataclass(frozen=True, eq=False)
class TrainingSet:
    """N training samples as tensors (CPU).

    Attributes:
        inputs: the model inputs (frames already at the model's size).
        target_ids: ``(N, T)`` target tokens, ``<eos>``-terminated, right-padded.
        target_lengths: ``(N,)`` target tokens per sample (``<eos>`` included).
        controls_norm: ``(N, K, 2)`` normalised (acceleration, curvature) of the logged future.
        controls_valid: ``(N, K)`` bool, steps of the logged future.
        future_ego_m: ``(N, K, 2)`` the logged future positions (for evaluation).
        sample_ids: N sample keys.
    """

    inputs: VlaInputs
    target_ids: torch.Tensor
    target_lengths: torch.Tensor
    controls_norm: torch.Tensor
    controls_valid: torch.Tensor
    future_ego_m: torch.Tensor
    sample_ids: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.target_ids.shape[0])

    @property
    def target_mask(self) -> torch.Tensor:
        t = self.target_ids.shape[1]
        return torch.arange(t)[None] < self.target_lengths[:, None]


def sample_frames(sample: LabelSample, model: VlaModel, read: ImageReader) -> torch.Tensor:
    """``(C, F, h, w, 3)`` uint8 frames of ``sample`` at the model's size, cameras in the
    model's order; a camera or frame the sample lacks is black (the model learns to do
    without it, as with a failed camera)."""
    cfg = model.config
    h, w = cfg.image_height_px, cfg.image_width_px
    out = torch.zeros((len(cfg.cameras), cfg.frames, h, w, 3), dtype=torch.uint8)
    n_frames = 1 + max((f.frame for f in sample.frames), default=-1)
    cam_index = {c: i for i, c in enumerate(cfg.cameras)}
    slots: list[tuple[int, int]] = []
    images: list[torch.Tensor] = []
    for ref in sample.frames:
        ci = cam_index.get(ref.camera)
        fi = cfg.frames - n_frames + ref.frame  # align the newest frames
        if ci is None or not 0 <= fi < cfg.frames:
            continue
        img = torch.from_numpy(np.array(read(ref.path), copy=True))  # a writable copy
        if img.ndim != 3 or img.shape[-1] != 3:
            raise ConfigError(f"{ref.path}: expected an (H, W, 3) image, got {tuple(img.shape)}")
        slots.append((ci, fi))
        images.append(img)
    if images and all(im.shape == images[0].shape for im in images):
        resized = list(resize_frames(torch.stack(images), w, h))  # one call for the sample
    else:
        resized = [resize_frames(im, w, h) for im in images]
    for (ci, fi), im in zip(slots, resized, strict=True):
        out[ci, fi] = im
    return out


def build_training_set(
    samples: Sequence[LabelSample], model: VlaModel, read: ImageReader
) -> TrainingSet:
    """Tensors of ``samples`` for ``model`` (frames through ``read``)."""
    if not samples:
        raise ConfigError("no samples to train on")
    cfg = model.config
    k = cfg.horizon
    frames = torch.stack([sample_frames(s, model, read) for s in samples])
    hist = torch.stack(
        [fit_history(torch.as_tensor(s.ego_history_ego_m)[None].float(), cfg.history_steps)[0]
         for s in samples]
    )  # fmt: skip
    f32 = torch.float32
    speed = torch.tensor([s.ego_speed_mps for s in samples], dtype=f32)
    accel = torch.tensor([s.ego_accel_mps2 for s in samples], dtype=f32)
    yaw = torch.tensor([s.ego_yaw_rate_rps for s in samples], dtype=f32)
    future = torch.stack([torch.as_tensor(s.future_ego_m[:k]).float() for s in samples])
    if future.shape[1] != k:
        raise ConfigError(f"samples hold {future.shape[1]} future steps; the model plans {k}")
    a, kappa = controls_from_waypoints(future, speed, cfg.dt_s, cfg.max_curvature_1pm)
    controls = torch.stack([a / cfg.accel_scale_mps2, kappa / cfg.curvature_scale_1pm], -1)
    valid_steps = torch.tensor([s.future_valid_steps for s in samples])
    valid = torch.arange(k)[None] < valid_steps[:, None]
    texts = [
        format_target(s, c, cfg.trajectory_tokens, cfg.trajectory_token_stride)
        for s, c in zip(samples, controls, strict=True)
    ]
    tok = model.tokenizer
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    # Keep <eos> last when a target is cut at the generation limit.
    ids = [x if len(x) <= cfg.max_new_tokens else [*x[: cfg.max_new_tokens - 1], model.eos_id]
           for x in ids]  # fmt: skip
    t = max(len(x) for x in ids)
    target = torch.full((len(ids), t), model.pad_id, dtype=torch.long)
    for i, x in enumerate(ids):
        target[i, : len(x)] = torch.tensor(x, dtype=torch.long)
    return TrainingSet(
        inputs=VlaInputs(frames, hist, speed, accel, yaw),
        target_ids=target,
        target_lengths=torch.tensor([len(x) for x in ids], dtype=torch.long),
        controls_norm=controls,
        controls_valid=valid,
        future_ego_m=future,
        sample_ids=tuple(s.sample_id for s in samples),
    )


__all__ = [
    "ImageReader",
    "TrainingSet",
    "build_training_set",
    "load_training_samples",
    "png_reader",
    "sample_frames",
]
