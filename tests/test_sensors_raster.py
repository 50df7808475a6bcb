"""The batched rasterizer, the bird's-eye raster and the renderer interface on hand-built scenes."""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pytest
import torch

from cordillera.errors import ConfigError
from cordillera.scene.model import Scene
from cordillera.scene.types import ObjectType, SignalState
from cordillera.sensors.bev import BEV_CHANNELS, render_bev
from cordillera.sensors.ground import StaticMap
from cordillera.sensors.presets import ring7
from cordillera.sensors.projection import visible_fraction
from cordillera.sensors.raster import SIGNAL_RGB, Rasterizer
from cordillera.sensors.raster_setup import RasterConfig
from cordillera.sensors.renderer import (
    CallableRenderer,
    CameraFrames,
    Renderer,
    get_renderer,
)
from cordillera.sensors.rig import CameraRig
from cordillera.sensors.toy import toy_scene
from cordillera.sensors.world import RenderBatch, static_map_for

V, P = ObjectType.VEHICLE, ObjectType.PEDESTRIAN
RIG = ring7(256, 144)
FRONT = RIG.index("front_wide_120fov")


@functools.cache
def _toy_map() -> StaticMap:
    """Every toy scene has the same road: rasterize it once for the whole module."""
    return static_map_for(toy_scene())


def _batch(scene: Scene, steps: list[int]) -> RenderBatch:
    return RenderBatch.from_scene(scene, steps, static_map=_toy_map())


def _render(objects: list, **kw: object) -> tuple[CameraFrames, RenderBatch]:
    batch = _batch(toy_scene(objects, **kw), [0])  # type: ignore[arg-type]
    return Rasterizer().render(batch, RIG), batch


def test_output_dtype_and_shape() -> None:
    scene = toy_scene([(15.0, 0.0, 0.0, 4.5, 1.9, V)], num_steps=3)
    frames = Rasterizer().render(_batch(scene, [0, 1, 2]), RIG)
    assert frames.rgb.shape == (3, 7, 144, 256, 3) and frames.rgb.dtype == torch.uint8
    assert frames.depth is not None and frames.depth.shape == (3, 7, 144, 256)
    assert frames.depth.dtype == torch.float32
    assert frames.object_index is not None and frames.object_index.dtype == torch.int32
    assert frames.footprint_px is not None and frames.footprint_px.shape == (3, 7, 2)
    assert frames.camera_names == RIG.names


def test_flat_ground_depth_matches_the_analytic_value() -> None:
    frames, _ = _render([])
    cam = RIG.cameras[FRONT]
    for row in (80, 100, 143):
        # Camera 1.6 m above the ground, no pitch: depth = h * fy / (v - cy) at pixel centre.
        expected = cam.translation_m[2] * cam.fy_px / (row + 0.5 - cam.cy_px)
        assert frames.depth is not None
        assert float(frames.depth[0, FRONT, row, 128]) == pytest.approx(expected, rel=1e-4)
    assert math.isinf(float(frames.depth[0, FRONT, 10, 128]))  # sky


def test_object_ahead_appears_in_front_cameras_only_and_never_behind() -> None:
    frames, _ = _render([(20.0, 0.0, 0.0, 4.5, 1.9, V)])
    idx = frames.object_index
    assert idx is not None
    seen = {RIG.names[c] for c in range(7) if (idx[0, c] == 1).any()}
    assert seen == {"front_wide_120fov", "front_tele_30fov"}
    frames, _ = _render([(-15.0, 0.0, 0.0, 4.5, 1.9, V)])
    assert frames.object_index is not None
    for name in (
        "front_wide_120fov",
        "front_tele_30fov",
        "cross_left_120fov",
        "cross_right_120fov",
    ):
        assert not (frames.object_index[0, RIG.index(name)] == 1).any()
    assert (frames.object_index[0, RIG.index("rear_tele_30fov")] == 1).any()


def test_rendered_object_pixels_agree_with_projected_boxes() -> None:
    from cordillera.sensors.projection import RigTensors, project_boxes, world_to_ego_boxes

    frames, batch = _render([(12.0, 2.0, 0.4, 4.5, 1.9, V)])
    ego = world_to_ego_boxes(batch.boxes_world, batch.ego_pose_world)
    bbox, in_view = project_boxes(ego, RigTensors.from_rig(RIG))
    assert frames.object_index is not None
    rows, cols = torch.nonzero(frames.object_index[0, FRONT] == 1).unbind(1)
    x0, y0, x1, y1 = bbox[0, FRONT, 1].tolist()
    assert in_view[0, FRONT, 1]
    assert cols.min() >= math.floor(x0) and cols.max() < math.ceil(x1)
    assert rows.min() >= math.floor(y0) and rows.max() < math.ceil(y1)
    assert cols.min() <= x0 + 1 and cols.max() >= x1 - 2  # tight, not just inside


def test_near_box_hides_far_box() -> None:
    frames, _ = _render([(10.0, 0.0, 0.0, 4.5, 1.9, V), (25.0, 0.0, 0.0, 4.5, 1.9, V)])
    idx = frames.object_index
    assert idx is not None and frames.footprint_px is not None
    assert int(idx[0, FRONT, 72, 128]) == 1
    vis = visible_fraction(idx, frames.footprint_px)
    assert float(vis[0, FRONT, 1]) == pytest.approx(1.0)
    assert frames.footprint_px[0, FRONT, 2] > 0  # the far car is in view ...
    assert float(vis[0, FRONT, 2]) < 0.05  # ... but hidden behind the near one


def test_visible_fraction_of_a_half_occluded_object() -> None:
    # A thin 4 m wide board 30 m ahead, centred on the camera's axis; a tall wall 10 m ahead
    # whose right face lies in the camera's vertical plane hides exactly its left half.
    board = (31.3, 0.0, 0.0, 0.2, 4.0, ObjectType.OTHER)
    wall = (11.3, 1.5, 0.0, 0.5, 3.0, V)
    frames, _ = _render([board])
    assert frames.object_index is not None and frames.footprint_px is not None
    alone = visible_fraction(frames.object_index, frames.footprint_px)
    assert float(alone[0, FRONT, 1]) == pytest.approx(1.0)
    frames, _ = _render([board, wall])
    assert frames.object_index is not None and frames.footprint_px is not None
    half = visible_fraction(frames.object_index, frames.footprint_px)
    assert float(half[0, FRONT, 1]) == pytest.approx(0.5, abs=0.05)


def test_deterministic_output() -> None:
    objs = [
        (10.0, 0.0, 0.0, 4.5, 1.9, V),
        (10.0, 0.0, 0.0, 4.5, 1.9, V),  # exact overlap
        (6.0, -3.0, 1.0, 0.6, 0.6, P),
    ]
    a, _ = _render(objs)
    b, _ = _render(objs)
    assert torch.equal(a.rgb, b.rgb)
    assert a.object_index is not None and b.object_index is not None
    assert torch.equal(a.object_index, b.object_index)
    assert int(a.object_index[0, FRONT, 72, 128]) == 1  # ties go to the lower index


def test_lit_signal_head_and_ground_layers_are_drawn() -> None:
    frames, _ = _render([], signal_state=SignalState.RED)
    tele = frames.rgb[0, RIG.index("front_tele_30fov")].reshape(-1, 3)
    red = torch.tensor(SIGNAL_RGB[SignalState.RED], dtype=torch.uint8)
    assert (tele == red).all(-1).any()
    front = frames.rgb[0, FRONT]
    # Asphalt right below the camera, sky at the top, and white paint somewhere on the road.
    assert front[143, 128].tolist() != front[0, 128].tolist()
    assert (front[72:].int().sum(-1) > 600).any()


def test_batch_of_several_scenes_pads_objects() -> None:
    one = toy_scene([(15.0, 0.0, 0.0, 4.5, 1.9, V)])
    three = toy_scene(
        [
            (15.0, 3.6, 0.0, 4.5, 1.9, V),
            (8.0, -3.0, 0.0, 0.6, 0.6, P),
            (30.0, 0.0, 0.0, 4.5, 1.9, V),
        ]
    )
    batch = RenderBatch.from_scenes([one, three], [[0], [0]])
    assert batch.boxes_world.shape == (2, 4, 7) and len(batch.maps) == 2
    assert batch.map_index.tolist() == [0, 1] and not batch.object_valid[0, 2:].any()
    frames = Rasterizer().render(batch, RIG)
    single = Rasterizer().render(_batch(three, [0]), RIG)
    assert torch.equal(frames.rgb[1], single.rgb[0])
    with pytest.raises(ConfigError, match="step 5"):
        RenderBatch.from_scene(one, [5])


def _mean_brightness(renderer: Renderer, batch: RenderBatch, rig: CameraRig) -> torch.Tensor:
    """A stand-in caller: code that only knows the Renderer protocol."""
    return renderer.render(batch, rig).rgb.float().mean(dim=(2, 3, 4))


def test_callable_renderer_swap_leaves_callers_unchanged() -> None:
    batch = _batch(toy_scene([(12.0, 0.0, 0.0, 4.5, 1.9, V)]), [0])
    raster = get_renderer("raster")
    calls: list[int] = []

    def remote(b: RenderBatch, rig: CameraRig) -> CameraFrames:
        calls.append(b.batch_size)  # e.g. a gRPC round trip to a neural renderer
        return Rasterizer().render(b, rig)

    wrapped = CallableRenderer(remote, name="fake-remote")
    assert isinstance(wrapped, Renderer) and isinstance(raster, Renderer)
    assert torch.equal(_mean_brightness(raster, batch, RIG), _mean_brightness(wrapped, batch, RIG))
    assert calls == [1]

    def broken(b: RenderBatch, rig: CameraRig) -> CameraFrames:
        rgb = torch.zeros((b.batch_size, rig.num_cameras, 10, 10, 3), dtype=torch.uint8)
        return CameraFrames(rgb, None, None, None, rig.names)

    with pytest.raises(ConfigError, match="expected"):
        CallableRenderer(broken).render(batch, RIG)
    with pytest.raises(ConfigError, match="unknown renderer"):
        get_renderer("nerf")


def test_bev_raster_channels() -> None:
    scene = toy_scene(
        [(10.0, 0.0, 0.0, 4.5, 1.9, V), (0.0, -5.0, 0.0, 0.6, 0.6, P)], signal_state=SignalState.RED
    )
    bev = render_bev(_batch(scene, [0]))
    assert bev.shape == (1, len(BEV_CHANNELS), 128, 128) and bev.dtype == torch.float32
    ch = {n: i for i, n in enumerate(BEV_CHANNELS)}
    # Row 0 is 32 m ahead; the car 10 m ahead is 20 rows above the centre, on the ego's column.
    assert bev[0, ch["vehicle"], 64 - 20, 63:65].all()
    assert not bev[0, ch["vehicle"], 64 + 20].any()
    # The pedestrian 5 m to the right is 10 columns right of the centre.
    assert bev[0, ch["pedestrian"], 63:65, 64 + 10].all()
    assert bev[0, ch["drivable"], 64, 64] == 1 and bev[0, ch["drivable"], 64, 0] == 0
    assert bev[0, ch["route"], 64, 64] == 1
    # The red signal marks its whole lane (y = 0) in the stop channel.
    assert bev[0, ch["stop"], 10, 63:65].any() and bev[0, ch["stop"], 10, 64 - 7] == 0
    green = render_bev(_batch(toy_scene(signal_state=SignalState.GREEN), [0]))
    assert green[0, ch["stop"], 10, 63:65].sum() == 0
    assert bev[0, ch["lane_centerline"], 64, 63:65].any()
    np.testing.assert_array_equal(bev[0, ch["lane_centerline"], 64, 58:62].numpy(), [0] * 4)


def _ray_cast_reference(batch: RenderBatch, rig: CameraRig) -> tuple[torch.Tensor, torch.Tensor]:
    """Object index and depth of every pixel by brute force: a float64 slab test of every pixel
    ray against every box (objects, then signal heads), nearest hit wins."""
    r = Rasterizer()
    rr = r.rig_raster(rig, torch.device("cpu"), 0.1, 1)
    boxes, _, valid, n_obj = r._boxes(batch, rr)
    boxes = boxes.double()
    origin = rr.ray_origin_ego.double().repeat_interleave(rr.height_px * rr.width_px, 0)  # (P, 3)
    d = rr.ray_dir_ego.double()  # (P, 3), camera depth parameterised
    cos, sin = torch.cos(boxes[..., 6]), torch.sin(boxes[..., 6])  # (B, M)
    rel = origin[:, None, None] - boxes[..., :3]  # (P, B, M, 3)

    def to_box(v: torch.Tensor) -> torch.Tensor:
        x, y = v[..., 0], v[..., 1]
        return torch.stack([cos * x + sin * y, -sin * x + cos * y, v[..., 2]], -1)

    o, dd = to_box(rel), to_box(d[:, None, None].expand_as(rel))
    half = boxes[..., 3:6] / 2
    t1, t2 = (-half - o) / dd, (half - o) / dd
    t_near = torch.minimum(t1, t2).amax(-1)
    t_far = torch.maximum(t1, t2).amin(-1)
    hit = (t_near <= t_far) & (t_near > RasterConfig().near_m) & valid
    t = torch.where(hit, t_near, torch.inf)  # (P, B, M)
    depth, box = t.min(-1)
    index = torch.where(depth.isfinite() & (box < n_obj), box, -1)
    shape = (rig.num_cameras, rig.resolution_hw[0], rig.resolution_hw[1], batch.batch_size)
    return index.T.reshape(shape[3], *shape[:3]), depth.T.reshape(shape[3], *shape[:3])


def test_rasterizer_matches_a_per_pixel_ray_cast() -> None:
    objects = [
        (14.0, 0.5, 0.3, 4.5, 1.9, V),
        (22.0, -3.0, -0.2, 4.5, 1.9, V),
        (6.0, -3.0, 1.0, 0.6, 0.6, P),
        (0.5, 3.2, 0.0, 12.0, 2.5, V),  # beside the ego: straddles several near planes
        (-9.0, 0.3, 3.0, 4.5, 1.9, V),
    ]
    batch = _batch(toy_scene(objects), [0])
    rig = ring7(97, 61)  # widths that are not a multiple of the 16-pixel tiles
    frames = Rasterizer().render(batch, rig)
    ref_index, ref_depth = _ray_cast_reference(batch, rig)
    assert frames.object_index is not None and frames.depth is not None
    assert set(ref_index.unique().tolist()) == {-1, 1, 2, 3, 4, 5}
    same = frames.object_index == ref_index
    assert same.float().mean() > 0.9995  # float32 vs float64 at silhouette edges only
    hit = same & (ref_index >= 0)
    torch.testing.assert_close(frames.depth[hit], ref_depth[hit].float(), rtol=1e-5, atol=1e-5)


def test_candidate_chunking_does_not_change_the_images() -> None:
    objects = [(8.0 + 3 * i, 3.5 * (i % 3 - 1), 0.2 * i, 4.5, 1.9, V) for i in range(12)]
    batch = _batch(toy_scene(objects, signal_state=SignalState.GREEN), [0])
    whole = Rasterizer().render(batch, RIG)
    # ~60 tiles per chunk: images split over chunks, whose winners wait for the last one.
    small = Rasterizer(RasterConfig(max_pairs=1000)).render(batch, RIG)
    for a, b in [
        (whole.rgb, small.rgb),
        (whole.depth, small.depth),
        (whole.object_index, small.object_index),
        (whole.footprint_px, small.footprint_px),
    ]:
        assert a is not None and b is not None and torch.equal(a, b)


def test_signal_heads_occlude_but_have_no_object_index() -> None:
    # A tall board right behind the lit signal head: the head covers part of it.
    board = (30.0, 3.5, 0.0, 0.3, 3.0, ObjectType.OTHER)
    frames, batch = _render([board], signal_state=SignalState.RED)
    tele = RIG.index("front_tele_30fov")
    assert frames.object_index is not None and frames.depth is not None
    red = frames.rgb[0, tele] == torch.tensor(SIGNAL_RGB[SignalState.RED], dtype=torch.uint8)
    head = red.all(-1)
    assert head.any()
    assert (frames.object_index[0, tele][head] == -1).all()
    assert frames.object_index.max() < batch.num_objects
    assert torch.isfinite(frames.depth[0, tele][head]).all()


def test_too_many_boxes_per_snapshot_is_a_config_error() -> None:
    batch = _batch(toy_scene(), [0])
    n = 1 << 16
    big = dataclasses.replace(
        batch,
        boxes_world=torch.zeros((1, n, 7)),
        object_type=torch.zeros((1, n), dtype=torch.int64),
        object_valid=torch.zeros((1, n), dtype=torch.bool),
    )
    with pytest.raises(ConfigError, match="at most"):
        Rasterizer().render(big, RIG)
