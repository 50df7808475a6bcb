"""Keyframe rendering and 2D grounding on hand-built straight roads whose geometry is known."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cordillera.errors import ConfigError
from cordillera.label.grounding import ground, render_keyframes, rig_for_scene
from cordillera.scene.types import ObjectType
from cordillera.sensors import get_renderer, ring7
from cordillera.sensors.world import RenderBatch
from scene_builders import Obj, straight_road_scene

W, H = 256, 144
BUS = (10.0, 2.5, 3.2)  # taller than the 1.6 m camera mount: its box spans the horizon
CAR = (4.5, 1.9, 1.5)
PED = (0.6, 0.6, 1.75)


def test_object_ahead_is_grounded_centred_in_the_front_camera() -> None:
    sc = straight_road_scene(Obj(0.0, speed_mps=5.0), [Obj(25.0, speed_mps=5.0, size_lwh_m=BUS)])
    _, rig = rig_for_scene(sc, W, H)
    img = render_keyframes(sc, [20], rig)
    (gs,) = ground(img, [["obj1"]])
    by_cam = {g.camera: g for g in gs}
    # Seen by both forward cameras, and by no side or rear one.
    assert list(by_cam) == ["front_wide_120fov", "front_tele_30fov"]
    for g in gs:
        x0, y0, x1, y1 = g.bbox_xyxy
        assert x0 < W / 2 < x1 and y0 < H / 2 < y1, g
        assert abs((x0 + x1) / 2 - W / 2) < 0.5, g  # straight ahead: symmetric about the axis
        assert g.visible_fraction > 0.98, g
    # The tele camera magnifies 120/30 fov: about 6.4 x the focal length, so ~6.4 x the width.
    wide, tele = by_cam["front_wide_120fov"].bbox_xyxy, by_cam["front_tele_30fov"].bbox_xyxy
    ratio = (tele[2] - tele[0]) / (wide[2] - wide[0])
    assert ratio == pytest.approx(np.tan(np.radians(60)) / np.tan(np.radians(15)), rel=0.05)


def test_amodal_box_matches_the_rendered_silhouette() -> None:
    """The projected box (standing on the ground like the raster draws it) bounds exactly the
    object's pixels when nothing hides it, also when the log puts the box 2 m up a slope."""
    sc = straight_road_scene(Obj(0.0), [Obj(14.0, 1.5, size_lwh_m=CAR, heading_rad=0.4)])
    tr = sc.tracks
    xyz = tr.xyz_m.copy()
    xyz[1, :, 2] = 2.0
    sc = dataclasses.replace(sc, tracks=dataclasses.replace(tr, xyz_m=xyz))
    rig = ring7(W, H)
    img = render_keyframes(sc, [10], rig, frames=1)
    frames = get_renderer().render(RenderBatch.from_scene(sc, [10]), rig)
    assert frames.object_index is not None
    mask = frames.object_index[0, 0] == 1  # front wide camera, object 1
    ys, xs = torch.nonzero(mask, as_tuple=True)
    pixel_box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert np.allclose(img.bbox_xyxy_px[0, 0, 1], [float(v) for v in pixel_box], atol=1.0)
    assert np.array_equal(img.rgb[0, 0], frames.rgb[0].numpy())


def test_hidden_object_has_a_low_visible_fraction() -> None:
    """A pedestrian about to step out from behind a bus (the long-tail jaywalker)."""
    ego = Obj(0.0)
    ped = Obj(20.0, 3.9, kind=ObjectType.PEDESTRIAN, size_lwh_m=PED)
    open_road = render_keyframes(straight_road_scene(ego, [ped]), [0], ring7(W, H))
    behind_bus = render_keyframes(
        straight_road_scene(ego, [ped, Obj(12.0, size_lwh_m=BUS)]), [0], ring7(W, H)
    )
    tele = 1  # front_tele_30fov
    assert open_road.visible_fraction[0, tele, 1] > 0.98
    assert 0.0 < behind_bus.visible_fraction[0, tele, 1] < 0.4
    # Its box is where it would be without the bus (amodal), not the sliver that shows.
    assert np.allclose(behind_bus.bbox_xyxy_px[0, tele, 1], open_road.bbox_xyxy_px[0, tele, 1])
    (seen,) = ground(behind_bus, [["obj1"]])
    assert [g.camera for g in seen] == ["front_wide_120fov", "front_tele_30fov"]
    assert all(g.visible_fraction < 0.4 for g in seen)
    assert ground(behind_bus, [["obj1"]], min_visible_fraction=0.4) == [()]


def test_object_behind_is_not_in_the_front_camera() -> None:
    sc = straight_road_scene(Obj(0.0), [Obj(-15.0, size_lwh_m=CAR)])
    img = render_keyframes(sc, [0], ring7(W, H))
    (gs,) = ground(img, [["obj1"]])
    cams = [g.camera for g in gs]
    assert "front_wide_120fov" not in cams and "front_tele_30fov" not in cams
    assert "rear_tele_30fov" in cams
    assert not img.in_view[0, 0, 1] and np.all(img.bbox_xyxy_px[0, 0, 1] == 0)


def test_frames_history_shapes_and_clamping() -> None:
    sc = straight_road_scene(
        Obj(0.0, speed_mps=5.0, valid_steps=(3, 60)),
        [Obj(20.0, kind=ObjectType.PEDESTRIAN, size_lwh_m=PED)],
    )
    rig = ring7(64, 36)
    img = render_keyframes(sc, [8, 30], rig, frames=3, stride_steps=5)
    assert img.rgb.shape == (2, 3, 7, 36, 64, 3) and img.rgb.dtype == np.uint8
    # Steps before the ego is first logged (step 3) move forward to it.
    assert img.frame_steps.tolist() == [[3, 3, 8], [20, 25, 30]]
    assert np.allclose(img.time_offset_s, [[-0.5, -0.5, 0.0], [-1.0, -0.5, 0.0]])
    # Equal steps render equal frames; the ego moved between steps 20 and 30.
    assert np.array_equal(img.rgb[0, 0], img.rgb[0, 1])
    assert not np.array_equal(img.rgb[1, 0], img.rgb[1, 2])
    assert img.bbox_xyxy_px.shape == (2, 7, 2, 4) and img.object_ids == ("ego", "obj1")
    assert not img.in_view[:, :, 0].any()  # the ego is the viewpoint, never an object
    with pytest.raises(ConfigError, match=r"step 1 .* ego is not logged"):
        render_keyframes(sc, [1], rig)


def test_ground_skips_map_causes_and_checks_its_input() -> None:
    sc = straight_road_scene(Obj(0.0), [Obj(20.0, size_lwh_m=CAR)])
    img = render_keyframes(sc, [0, 5], ring7(64, 36), frames=1)
    per_key = ground(img, [["road", "light:0", "obj1"], []])
    assert [g.object_id for g in per_key[0]] == ["obj1", "obj1"]
    assert per_key[1] == ()
    with pytest.raises(ConfigError, match="1 object-id lists for 2 keyframes"):
        ground(img, [["obj1"]])


def test_rig_for_scene_uses_the_logged_calibration_when_present() -> None:
    sc = straight_road_scene(Obj(0.0))
    name, rig = rig_for_scene(sc, 64, 36)
    assert name == "ring7" and rig.num_cameras == 7 and rig.resolution_hw == (36, 64)
    cams = [c.to_dict() for c in ring7(1920, 1080).select(["front_wide_120fov"]).cameras]
    cams[0]["name"] = "ring_front_center"
    name, rig = rig_for_scene(dataclasses.replace(sc, extra={"cameras": cams}), 64, 36)
    assert name == "av2" and rig.names == ("ring_front_center",)
    assert rig.resolution_hw == (36, 64)
