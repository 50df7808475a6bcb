"""Camera rigs and projection geometry against hand computations and real AV2 calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tests.conftest import shared_path

from cordillera.errors import ConfigError
from cordillera.sensors.presets import (
    RING6_NAMES,
    get_rig,
    rig_from_av2_calibration,
    rig_from_scene,
    ring6,
    ring7,
    yaw_coverage_deg,
)
from cordillera.sensors.projection import (
    RigTensors,
    box_corners,
    project_boxes,
    project_points,
    world_to_ego_boxes,
    world_to_ego_points,
)
from cordillera.sensors.rig import CameraRig, PinholeCamera, quaternion_to_matrix
from cordillera.sensors.toy import toy_scene

AV2_LOG = ("av2", "test_data", "sensor", "val", "7fab2350-7eaf-3b7e-a39d-6937a4c1bede")


def _rig_t(rig: CameraRig) -> RigTensors:
    return RigTensors.from_rig(rig)


def test_known_points_land_on_hand_computed_pixels() -> None:
    rig = ring7(256, 144)
    cam = rig.cameras[rig.index("front_wide_120fov")]
    f = 128 / math.tan(math.radians(60))  # 120° horizontal FOV over 256 px
    assert cam.fx_px == pytest.approx(f)
    # Camera at (1.3, 0, 1.6) looking +x: a point 10 m ahead, 2 m right, 1 m down.
    pts = torch.tensor([[11.3, 0.0, 1.6], [11.3, -2.0, 0.6]])
    uv, depth, front, inside = project_points(pts, _rig_t(rig))
    c = rig.index("front_wide_120fov")
    np.testing.assert_allclose(uv[c, 0].numpy(), [128.0, 72.0], atol=1e-4)
    np.testing.assert_allclose(uv[c, 1].numpy(), [128 + f * 0.2, 72 + f * 0.1], atol=1e-4)
    np.testing.assert_allclose(depth[c].numpy(), [10.0, 10.0], atol=1e-5)
    assert front[c].all() and inside[c].all()
    # The cross-left camera looks along +y: the same points are 90° off its axis.
    assert not inside[rig.index("cross_left_120fov")].any()


def test_rig_covers_360_and_ring6_is_documented_subset() -> None:
    assert yaw_coverage_deg(ring7()) == 1.0
    assert yaw_coverage_deg(ring6()) == 1.0
    assert ring6().names == RING6_NAMES
    assert len(ring7()) == 7 and "rear_tele_30fov" not in ring6().names


def test_objects_behind_a_camera_never_project_into_it() -> None:
    rig_t = _rig_t(ring7())
    front = ring7().index("front_wide_120fov")
    behind = torch.tensor([[-5.0, 0.0, 1.0], [0.5, 3.0, 1.0], [-30.0, -10.0, 5.0]])
    _, _, in_front, inside = project_points(behind, rig_t)
    assert not in_front[front].any() and not inside[front].any()
    box = torch.tensor([[[-10.0, 0.0, 0.8, 4.5, 1.9, 1.6, 0.3]]])
    _, in_view = project_boxes(box, rig_t)
    assert not in_view[0, front, 0]


def test_object_ahead_in_front_cameras_not_rear() -> None:
    rig = ring7()
    boxes = torch.tensor([[[25.0, 0.0, 0.8, 4.5, 1.9, 1.6, 0.0]]])
    bbox, in_view = project_boxes(boxes, _rig_t(rig))
    seen = {name for name, v in zip(rig.names, in_view[0, :, 0].tolist(), strict=True) if v}
    assert seen == {"front_wide_120fov", "front_tele_30fov"}
    tele = bbox[0, rig.index("front_tele_30fov"), 0]
    wide = bbox[0, rig.index("front_wide_120fov"), 0]
    assert (tele[2] - tele[0]) > 3 * (wide[2] - wide[0])  # the tele camera magnifies


def test_seam_point_back_projects_to_the_same_ego_point() -> None:
    rig = ring7()
    rig_t = _rig_t(rig)
    # 45° to the left, inside both the front-wide (±60°) and cross-left (30..150°) views.
    p = torch.tensor([[1.3 + 10 * math.cos(math.pi / 4), 10 * math.sin(math.pi / 4), 1.0]])
    uv, depth, _, inside = project_points(p, rig_t)
    cams = [rig.index("front_wide_120fov"), rig.index("cross_left_120fov")]
    assert inside[cams, 0].all()
    for c in cams:
        k = rig_t.intrinsics[c]
        ray_cam = torch.tensor(
            [(uv[c, 0, 0] - k[0, 2]) / k[0, 0], (uv[c, 0, 1] - k[1, 2]) / k[1, 1], 1.0]
        )
        c2e = rig_t.camera_to_ego[c]
        back = c2e[:3, :3] @ (ray_cam * depth[c, 0]) + c2e[:3, 3]
        np.testing.assert_allclose(back.numpy(), p[0].numpy(), atol=1e-4)


def test_near_plane_clipping_gives_sane_boxes_for_a_straddling_box() -> None:
    rig = ring7()
    rig_t = _rig_t(rig)
    c = rig.index("front_wide_120fov")
    # A 20 m long truck beside the ego, from 8 m behind to 12 m ahead of the camera.
    box = torch.tensor([[3.3, -3.0, 1.5, 20.0, 2.5, 3.0, 0.0]])
    bbox, in_view = project_boxes(box[None], rig_t)
    x0, y0, x1, y1 = bbox[0, c, 0].tolist()
    assert in_view[0, c, 0]
    assert 0 <= x0 < x1 <= 256 and 0 <= y0 < y1 <= 144
    # Brute force: dense surface samples in front of the near plane bound the same box.
    g = torch.linspace(-0.5, 0.5, 41)
    pts = []
    for axis in range(3):  # six faces of the box
        for sign in (-0.5, 0.5):
            a, b = torch.meshgrid(g, g, indexing="ij")
            local = torch.zeros(a.numel(), 3)
            others = [i for i in range(3) if i != axis]
            local[:, axis] = sign
            local[:, others[0]], local[:, others[1]] = a.flatten(), b.flatten()
            pts.append(local * box[0, 3:6] + box[0, :3])
    uv, _, front, _ = project_points(torch.cat(pts), rig_t)
    u = uv[c, front[c], 0].clamp(0, 256)
    v = uv[c, front[c], 1].clamp(0, 144)
    assert x0 == pytest.approx(float(u.min()), abs=1.0)
    assert x1 == pytest.approx(float(u.max()), abs=1.0)
    assert y0 == pytest.approx(float(v.min()), abs=1.0)
    assert y1 == pytest.approx(float(v.max()), abs=1.0)
    # The straddling box reaches the right image border; naive corner projection would not.
    assert x1 == pytest.approx(256.0)


def test_world_ego_transforms_round_trip() -> None:
    pose = torch.tensor([[10.0, -4.0, 0.7]])
    boxes_w = torch.tensor([[[13.0, -2.0, 0.5, 4.0, 2.0, 1.5, 1.2]]])
    ego = world_to_ego_boxes(boxes_w, pose)
    assert float(ego[0, 0, 6]) == pytest.approx(0.5, abs=1e-6)
    c, s = math.cos(0.7), math.sin(0.7)
    assert ego[0, 0, :2].tolist() == pytest.approx([c * 3 + s * 2, -s * 3 + c * 2], abs=1e-5)
    pts = world_to_ego_points(box_corners(boxes_w), pose)
    np.testing.assert_allclose(pts.numpy(), box_corners(ego).numpy(), atol=1e-5)


def test_rig_validation_and_json_round_trip() -> None:
    rig = ring7()
    back = CameraRig.from_dict(rig.to_dict())
    assert back == rig
    with pytest.raises(ConfigError, match="-3"):
        PinholeCamera("c", 10, 10, -3.0, 1.0, 5.0, 5.0, (1.0, 0, 0, 0), (0, 0, 0))
    with pytest.raises(ConfigError, match="duplicate"):
        CameraRig("x", (rig.cameras[0], rig.cameras[0]))
    with pytest.raises(ConfigError, match="missing key"):
        PinholeCamera.from_dict({"name": "a"})
    with pytest.raises(ConfigError, match="no camera calibration"):
        rig_from_scene(toy_scene())
    with pytest.raises(ConfigError, match="unknown rig"):
        get_rig("ring9")


def test_resize_keeps_field_of_view() -> None:
    cam = ring7(1920, 1080).cameras[0]
    small = cam.resized(256, 144)
    assert small.hfov_deg == pytest.approx(cam.hfov_deg)
    assert small.cx_px == pytest.approx(128.0) and small.fy_px == pytest.approx(small.fx_px)


def _quat_rows(table: dict[str, list[float]], i: int) -> np.ndarray:
    return quaternion_to_matrix(*(table[k][i] for k in ("qw", "qx", "qy", "qz")))


def test_av2_cuboids_project_like_a_hand_computation() -> None:
    import pyarrow.feather as feather

    log = shared_path(*AV2_LOG)
    rig = rig_from_av2_calibration(log)
    assert rig.names[0] == "ring_front_center" and len(rig) == 7
    intr = {
        r["sensor_name"]: r
        for r in feather.read_table(log / "calibration" / "intrinsics.feather").to_pylist()
    }
    extr = feather.read_table(log / "calibration" / "egovehicle_SE3_sensor.feather").to_pydict()
    ann = feather.read_table(log / "annotations.feather").to_pydict()
    t0 = ann["timestamp_ns"][0]
    rows = [i for i, t in enumerate(ann["timestamp_ns"]) if t == t0]
    # Boxes in the AV2 ego frame (annotations are ego-frame; yaw-only rotations).
    boxes = torch.tensor(
        [
            [
                ann["tx_m"][i],
                ann["ty_m"][i],
                ann["tz_m"][i],
                ann["length_m"][i],
                ann["width_m"][i],
                ann["height_m"][i],
                2 * math.atan2(ann["qz"][i], ann["qw"][i]),
            ]
            for i in rows
        ],
        dtype=torch.float64,
    )
    rig_t = RigTensors.from_rig(rig, dtype=torch.float64)
    corners = box_corners(boxes)  # (N, 8, 3)
    uv, depth, front, _ = project_points(corners.reshape(-1, 3), rig_t)
    checked = 0
    for c, name in enumerate(rig.names):
        j = extr["sensor_name"].index(name)
        r = _quat_rows(extr, j)
        t = np.array([extr["tx_m"][j], extr["ty_m"][j], extr["tz_m"][j]])
        k = intr[name]
        for n, i in enumerate(rows):
            # Hand computation: full annotation quaternion, camera = R^T (p - t), pinhole.
            r_obj = _quat_rows(ann, i)
            centre = np.array([ann["tx_m"][i], ann["ty_m"][i], ann["tz_m"][i]])
            half = np.array([ann["length_m"][i], ann["width_m"][i], ann["height_m"][i]]) / 2
            for corner in range(8):
                sign = np.array([(corner >> b & 1) * 2 - 1 for b in range(3)])
                p_cam = r.T @ (r_obj @ (sign * half) + centre - t)
                if p_cam[2] <= 0.1:
                    assert not front[c, n * 8 + corner]
                    continue
                u = k["fx_px"] * p_cam[0] / p_cam[2] + k["cx_px"]
                v = k["fy_px"] * p_cam[1] / p_cam[2] + k["cy_px"]
                assert uv[c, n * 8 + corner].tolist() == pytest.approx([u, v], abs=1e-3)
                assert float(depth[c, n * 8 + corner]) == pytest.approx(p_cam[2], abs=1e-6)
                checked += 1
    assert checked > 500
    # The box truck 17 m ahead-right is in the front-right camera, not the rear ones.
    _, in_view = project_boxes(boxes.float()[None], RigTensors.from_rig(rig))
    truck = next(n for n, i in enumerate(rows) if ann["category"][i] == "BOX_TRUCK")
    assert in_view[0, rig.index("ring_front_right"), truck]
    assert not in_view[0, rig.index("ring_rear_left"), truck]


def test_av2_scene_rig_is_rebased_to_the_box_centre() -> None:
    from cordillera.scene.readers import read_scene

    log = shared_path(*AV2_LOG)
    raw = rig_from_av2_calibration(log)
    scene = read_scene(log)
    rig = rig_from_scene(scene)
    assert rig.names == raw.names
    # Same camera height above the road in both frames.
    h_raw = raw.cameras[0].translation_m[2] + raw.ego_origin_height_m
    h_new = rig.cameras[0].translation_m[2] + rig.ego_origin_height_m
    assert h_new == pytest.approx(h_raw)
    small = get_rig("av2", 256, 144, scene=scene)
    assert small.resolution_hw == (144, 256)


def _project_boxes_by_clipped_vertices(boxes: torch.Tensor, rig_t: RigTensors, near_m: float):
    """The direct definition: bounding rectangle of all 24 clipped edge endpoints."""
    from cordillera.sensors.projection import clipped_box_points, ego_to_camera_points

    cam = ego_to_camera_points(box_corners(boxes).flatten(-3, -2), rig_t)
    pts, keep = clipped_box_points(cam.unflatten(-2, (boxes.shape[-2], 8)), near_m)
    z = pts[..., 2].clamp_min(near_m)
    k = rig_t.intrinsics[:, None, None]
    u = k[..., 0, 0] * pts[..., 0] / z + k[..., 0, 2]
    v = k[..., 1, 1] * pts[..., 1] / z + k[..., 1, 2]
    big = torch.finfo(u.dtype).max
    x0, y0 = torch.where(keep, u, big).amin(-1), torch.where(keep, v, big).amin(-1)
    x1, y1 = torch.where(keep, u, -big).amax(-1), torch.where(keep, v, -big).amax(-1)
    wh = rig_t.size_wh_px[:, None]
    box = torch.stack(
        [x0.clamp(min=0).minimum(wh[..., 0]), y0.clamp(min=0).minimum(wh[..., 1]),
         x1.clamp(max=wh[..., 0]).clamp(min=0), y1.clamp(max=wh[..., 1]).clamp(min=0)], -1
    )  # fmt: skip
    in_view = keep.any(-1) & (box[..., 2] > box[..., 0]) & (box[..., 3] > box[..., 1])
    return torch.where(in_view[..., None], box, torch.zeros_like(box)), in_view


def test_project_boxes_equals_the_clipped_vertex_definition() -> None:
    # Boxes all around the rig, many straddling some camera's near plane or behind it.
    g = torch.Generator().manual_seed(3)
    n = 400
    xy = (torch.rand(n, 2, generator=g) - 0.5) * torch.tensor([40.0, 16.0])
    size = torch.rand(n, 3, generator=g) * torch.tensor([12.0, 3.0, 3.0]) + 0.3
    yaw = (torch.rand(n, 1, generator=g) - 0.5) * 6.3
    boxes = torch.cat([xy, size[:, 2:] / 2 - 0.3, size, yaw], 1)[None]  # (1, N, 7)
    rig_t = _rig_t(ring7(256, 144))
    for near in (0.1, 1.0):
        bbox, in_view = project_boxes(boxes, rig_t, near)
        ref_box, ref_view = _project_boxes_by_clipped_vertices(boxes, rig_t, near)
        assert torch.equal(in_view, ref_view) and torch.equal(bbox, ref_box)
        assert 0 < int(in_view.sum()) < in_view.numel()
