"""Synthetic labelled samples in memory: for tests, benchmarks and smoke runs of the VLA.

Each sample is a consistent little world: the ego drives with a constant acceleration and
curvature (clipped so it never reverses), its future is that motion, its labels say so
(``stop`` / ``yield`` when it brakes, ``turn`` when it curves), and its camera frames carry
the cue — a coloured block in the front camera whose colour and position encode the decision
— so a model can learn text from pixels and the plan from the history.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from cordillera.label.record import CameraFrameRef, LabelSample
from cordillera.policy.plan import CausalObject, ChainOfCausation
from cordillera.policy.vocabulary import LateralDecision, LongitudinalDecision
from cordillera.vla.config import RING7_CAMERAS
from cordillera.vla.unicycle import integrate_controls

DT_S = 0.1


def _labels(
    accel: float, curvature: float, speeds: npt.NDArray[np.float32]
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    k = len(speeds)
    if accel < -1.5:
        lon = "strong_deceleration"
    elif accel < -0.3:
        lon = "gentle_deceleration"
    elif accel > 0.3:
        lon = "gentle_acceleration"
    else:
        lon = "maintain_speed"
    lons = tuple("stop" if v < 0.2 else lon for v in speeds)
    lat = (
        "go_straight"
        if abs(curvature) < 0.01
        else ("steer_left" if curvature > 0 else "steer_right")
    )
    lane = (
        "lane_keep" if abs(curvature) < 0.01 else ("turn_left" if curvature > 0 else "turn_right")
    )
    return lons, (lat,) * k, (lane,) * k


def synthetic_samples(
    n: int,
    seed: int = 0,
    cameras: tuple[str, ...] = RING7_CAMERAS,
    frames: int = 4,
    width_px: int = 256,
    height_px: int = 144,
    history_steps: int = 20,
    horizon: int = 64,
) -> tuple[list[LabelSample], dict[str, npt.NDArray[np.uint8]]]:
    """``n`` samples and their images (path → ``(H, W, 3)`` uint8), deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    samples: list[LabelSample] = []
    images: dict[str, npt.NDArray[np.uint8]] = {}
    for i in range(n):
        speed = float(rng.uniform(2.0, 15.0))
        kind = int(rng.integers(0, 3))  # 0 cruise, 1 brake for a pedestrian, 2 turn
        accel = float(rng.uniform(-3.0, -1.0)) if kind == 1 else float(rng.uniform(-0.2, 0.8))
        curvature = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.03, 0.08)) if kind == 2 else 0.0
        # Past: the same speed, straight; history positions end at the origin.
        t_hist = np.arange(-(history_steps - 1), 1, dtype=np.float32) * DT_S
        hist = np.stack([speed * t_hist, np.zeros_like(t_hist)], -1).astype(np.float32)
        a = torch.full((1, horizon), accel)
        k = torch.full((1, horizon), curvature)
        future = integrate_controls(a, k, torch.tensor([speed]), DT_S)[0].numpy()
        speeds = (speed + accel * DT_S * np.arange(1, horizon + 1)).clip(min=0.0)
        lons, lats, lanes = _labels(accel, curvature, speeds.astype(np.float32))
        if kind == 1:
            dist = int(rng.integers(8, 30))
            coc = ChainOfCausation(
                LongitudinalDecision.YIELD,
                None,
                (
                    CausalObject(
                        str(int(rng.integers(1, 40))), "pedestrian", f"crossing {dist} m ahead", 2.0
                    ),
                ),
                ego_motion=f"slowing from {speed:.1f} m/s",
            )
        elif kind == 2:
            coc = ChainOfCausation(
                None, LateralDecision.TURN, (), ego_motion=f"keeping {speed:.1f} m/s"
            )
        else:
            coc = ChainOfCausation(
                LongitudinalDecision.RESUME_SPEED if accel > 0.3 else None,
                LateralDecision.KEEP_LANE,
                (),
                ego_motion=f"keeping {speed:.1f} m/s",
            )
        refs = []
        colour = np.array([[60, 60, 60], [220, 40, 40], [40, 40, 220]][kind], dtype=np.uint8)
        for ci, cam in enumerate(cameras):
            for f in range(frames):
                img = np.full((height_px, width_px, 3), 90 + 10 * ci, dtype=np.uint8)
                img[height_px // 2 :] = 50  # road
                if ci == 0:
                    x0 = width_px // 2 - 30 + int(20 * np.sign(curvature))
                    img[height_px // 3 : height_px // 2 + 10, x0 : x0 + 60] = colour
                path = f"images/{i:05d}/{cam}_{f}.png"
                images[path] = img
                refs.append(CameraFrameRef(cam, f, -0.5 * (frames - 1 - f), path))
        samples.append(
            LabelSample(
                scene_id=f"synthetic-{seed}-{i:05d}",
                source="generated",
                time_s=2.0,
                step=20,
                keyframe_reason="regular",
                ego_history_ego_m=hist,
                ego_speed_mps=speed,
                ego_accel_mps2=0.0,
                ego_yaw_rate_rps=0.0,
                future_ego_m=future.astype(np.float32),
                future_valid_steps=horizon,
                route_ego_m=np.zeros((0, 2), dtype=np.float32),
                meta_longitudinal=lons,
                meta_lateral=lats,
                meta_lane=lanes,
                decision_longitudinal=coc.longitudinal.text if coc.longitudinal else None,
                decision_lateral=coc.lateral.text if coc.lateral else None,
                coc=coc,
                rig="ring7",
                frames=tuple(refs),
            )
        )
    return samples, images


__all__ = ["synthetic_samples"]
