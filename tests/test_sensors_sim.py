"""Cameras on simulated states: a state at a logged step renders like the log itself."""

from __future__ import annotations

import torch

from cordillera.sensors.presets import ring7
from cordillera.sensors.renderer import get_renderer
from cordillera.sensors.sim_frames import render_batch_from_state
from cordillera.sensors.world import RenderBatch, static_map_for
from cordillera.sim.config import SimConfig
from cordillera.sim.simulator import Simulator
from scene_builders import Obj, straight_road_scene


def test_sim_state_renders_like_the_logged_scene() -> None:
    scene = straight_road_scene(
        Obj(0.0, 0.0, 8.0), [Obj(15.0, 0.0, 5.0), Obj(-12.0, 3.5, 9.0)], num_steps=30
    )
    sim = Simulator([scene], SimConfig(traffic="log"))
    state = sim.reset()
    for _ in range(5):
        state = sim.step_plan(state, sim.log_plan(state))
    static = static_map_for(scene)
    rig = ring7(64, 36)
    renderer = get_renderer("raster")
    from_sim = renderer.render(render_batch_from_state(sim, state, [static]), rig)
    from_log = renderer.render(RenderBatch.from_scene(scene, [5], static), rig)
    ids_sim, ids_log = from_sim.object_index, from_log.object_index
    assert ids_sim is not None and ids_log is not None
    # The ego follows its log within millimetres, so the views agree almost pixel for pixel.
    agree = (ids_sim == ids_log).float().mean().item()
    assert agree > 0.99
    assert set(torch.unique(ids_sim).tolist()) == {-1, 1, 2}
