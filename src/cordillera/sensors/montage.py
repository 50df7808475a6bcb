"""One picture of a surround rig: camera images placed around a bird's-eye view by yaw."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from cordillera.sensors.rig import CameraRig

# Slots of a 3x3 grid around the centre, (row, col) and the ego yaw they stand for (front up).
_SLOTS = (
    ((0, 1), 0.0),
    ((0, 0), 45.0),
    ((1, 0), 90.0),
    ((2, 0), 135.0),
    ((2, 1), 180.0),
    ((2, 2), -135.0),
    ((1, 2), -90.0),
    ((0, 2), -45.0),
)


def camera_yaw_deg(rig: CameraRig) -> list[float]:
    """Ego yaw (degrees, CCW from forward) of every camera's optical axis."""
    out = []
    for cam in rig.cameras:
        axis = cam.camera_to_ego[:3, 2]
        out.append(math.degrees(math.atan2(axis[1], axis[0])))
    return out


def ring_layout(rig: CameraRig) -> list[tuple[int, int]]:
    """Grid cell ``(row, col)`` of each camera: nearest free slot by yaw, wide cameras first.
    Rigs of more than 8 cameras get extra rows below the grid."""
    yaws = camera_yaw_deg(rig)
    order = sorted(range(len(yaws)), key=lambda i: rig.cameras[i].fx_px / rig.cameras[i].width_px)
    free = list(_SLOTS)
    cells: dict[int, tuple[int, int]] = {}
    extra = 0
    for i in order:  # a handful of cameras
        if not free:
            cells[i] = (3 + extra // 3, extra % 3)
            extra += 1
            continue

        def gap(slot: tuple[tuple[int, int], float], yaw: float = yaws[i]) -> float:
            return abs((slot[1] - yaw + 180.0) % 360.0 - 180.0)

        best = min(free, key=gap)
        free.remove(best)
        cells[i] = best[0]
    return [cells[i] for i in range(len(yaws))]


def ring_montage(
    images: npt.NDArray[np.uint8], rig: CameraRig, centre: npt.NDArray[np.uint8], title: str = ""
) -> Image.Image:
    """Compose ``(C, H, W, 3)`` camera images and a ``(h, w, 3)`` centre picture (scaled to fit a
    cell) into one labelled image."""
    _, h, w, _ = images.shape
    cells = ring_layout(rig)
    rows = max(3, max(r for r, _ in cells) + 1)
    pad, label_h, title_h = 4, 14, 18 if title else 0
    cell_w, cell_h = w + pad, h + label_h + pad
    canvas = Image.new("RGB", (3 * cell_w + pad, rows * cell_h + pad + title_h), (20, 22, 26))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad + 2, 3), title, fill=(235, 235, 235))

    def origin(row: int, col: int) -> tuple[int, int]:
        return pad + col * cell_w, title_h + pad + row * cell_h

    for i, (row, col) in enumerate(cells):
        x, y = origin(row, col)
        draw.text((x + 2, y), rig.cameras[i].name, fill=(235, 235, 235))
        canvas.paste(Image.fromarray(images[i]), (x, y + label_h))
    centre_img = Image.fromarray(centre)
    scale = min(w / centre_img.width, (h + label_h) / centre_img.height)
    size = (max(1, round(centre_img.width * scale)), max(1, round(centre_img.height * scale)))
    centre_img = centre_img.resize(size, Image.Resampling.NEAREST)
    x, y = origin(1, 1)
    canvas.paste(centre_img, (x + (w - size[0]) // 2, y + (h + label_h - size[1]) // 2))
    return canvas
