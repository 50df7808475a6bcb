"""Completing short logs by simulation: hand-derived motion on a straight road, the logged part
kept verbatim, determinism, and labels for every real CommonRoad scenario."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_path
from cordillera.errors import ConfigError
from cordillera.label.completion import complete_scene, extend_logs, needs_completion
from cordillera.label.config import LabelerConfig
from cordillera.label.pipeline import label_scene
from cordillera.label.run import iter_scenes
from cordillera.scene.types import ObjectType
from scene_builders import Obj, straight_road_scene


def _planning_problem(others: list[Obj], ego_speed_mps: float = 10.0, steps: int = 1):
    """A log of ``steps`` steps, as a CommonRoad planning problem or interactive scenario
    gives: every road user's state at the start only."""
    return straight_road_scene(Obj(0.0, speed_mps=ego_speed_mps), others, num_steps=steps)


def test_extension_keeps_speed_along_the_lane_and_parked_objects_hold() -> None:
    sc = _planning_problem(
        [
            Obj(30.0, 3.5, speed_mps=6.0),  # a car in the left lane
            Obj(60.0, 0.0, speed_mps=0.0),  # a parked car
            Obj(20.0, -4.0, speed_mps=1.5, kind=ObjectType.PEDESTRIAN, heading_rad=np.pi / 2),
        ]
    )
    ext = extend_logs(sc, 51)
    tr = ext.tracks
    t = np.arange(51) * 0.1
    assert tr.valid.all()
    np.testing.assert_allclose(tr.xyz_m[1, :, 0], 30.0 + 6.0 * t, atol=1e-9)
    np.testing.assert_allclose(tr.xyz_m[1, :, 1], 3.5, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(tr.velocity_mps[1], axis=-1), 6.0)
    np.testing.assert_allclose(tr.xyz_m[2, :, :2], [[60.0, 0.0]] * 51)
    # The pedestrian walks straight on, across the road.
    np.testing.assert_allclose(tr.xyz_m[3, :, 1], -4.0 + 1.5 * t, atol=1e-9)
    # The ego's path is laid out along its route at the lane's speed limit (20 m/s).
    np.testing.assert_allclose(tr.xyz_m[0, 1:, 0], 20.0 * t[1:], atol=1e-9)
    assert ext.signals.state.shape[1] == 51


def test_completed_ego_follows_a_car_and_stops_behind_a_parked_one() -> None:
    sc = _planning_problem([Obj(30.0, 3.5, speed_mps=6.0), Obj(60.0, 0.0, speed_mps=0.0)])
    assert needs_completion(sc, 10.0) and not needs_completion(sc, 0.0)
    done = complete_scene(sc, 10.0)
    tr = done.tracks
    assert done.num_steps == 101 and tr.valid.all()
    assert done.extra["future_completion"]["from_step"] == 0  # type: ignore[index]
    np.testing.assert_array_equal(tr.xyz_m[:, 0], sc.tracks.xyz_m[:, 0])
    # The car in the other lane keeps its 6 m/s under IDM: nothing is ahead of it.
    np.testing.assert_allclose(tr.xyz_m[1, :, 0], 30.0 + 6.0 * np.arange(101) * 0.1, atol=0.01)
    # The ego drives on, then stops behind the parked car without touching it.
    ego_x = tr.xyz_m[0, :, 0]
    speed = np.linalg.norm(tr.velocity_mps[0], axis=-1)
    assert np.all(np.diff(ego_x) >= -1e-6)
    assert speed[-1] < 0.3
    gap = 60.0 - ego_x[-1] - 4.5
    assert 1.0 < gap < 6.0, gap
    np.testing.assert_allclose(tr.xyz_m[0, :, 1], 0.0, atol=0.05)


def test_logged_part_is_kept_and_completion_is_deterministic() -> None:
    sc = straight_road_scene(
        Obj(0.0, speed_mps=8.0), [Obj(40.0, speed_mps=8.0)], num_steps=60
    )  # 5.9 s: short of 10 s
    a, b = complete_scene(sc, 10.0), complete_scene(sc, 10.0)
    assert a.num_steps == 101
    for name in ("xyz_m", "heading_rad", "velocity_mps", "valid", "size_lwh_m"):
        np.testing.assert_array_equal(getattr(a.tracks, name), getattr(b.tracks, name))
        np.testing.assert_array_equal(getattr(a.tracks, name)[:, :60], getattr(sc.tracks, name))
    assert a.extra["future_completion"]["from_step"] == 59  # type: ignore[index]
    # A long enough log is left alone.
    assert complete_scene(sc, 5.0) is sc


def test_config_rejects_negative_completion() -> None:
    with pytest.raises(ConfigError, match="completion_s"):
        LabelerConfig(completion_s=-1.0)


def test_every_commonroad_scenario_gets_labels() -> None:
    root = shared_path("commonroad")
    cfg = LabelerConfig()
    count = 0
    for scene in iter_scenes([root]):
        out = label_scene(scene, cfg, render=False)
        assert out.samples, scene.scene_id
        count += 1
        for s in out.samples:
            assert s.future_source == "simulated"
            assert s.future_ego_m.shape == (cfg.horizon_steps, 2)
            assert np.isfinite(s.future_ego_m).all()
            assert s.coc_text
    assert count >= 20
