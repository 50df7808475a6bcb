"""Gymnasium interfaces: env checker, determinism, batched autoreset, self-play."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import cordillera  # noqa: F401  (registers cordillera/Drive-v0)
from cordillera.env.config import EnvConfig
from cordillera.env.drive import DriveEnv
from cordillera.env.observations import ObservationConfig
from cordillera.env.vector import DriveVectorEnv, SelfPlayEnv
from cordillera.sim.config import SimConfig
from scene_builders import Obj, straight_road_scene


def _scenes() -> list:  # type: ignore[type-arg]
    return [
        straight_road_scene(
            Obj(0.0, 0.0, 10.0), [Obj(30.0, 0.0, 8.0), Obj(10.0, 3.5, 9.0)], num_steps=60
        ),
        straight_road_scene(
            Obj(0.0, 3.5, 6.0), [Obj(25.0, 3.5, 0.0), Obj(-20.0, 0.0, 12.0)], num_steps=40
        ),
    ]


def test_drive_env_passes_the_gymnasium_checker() -> None:
    env = DriveEnv(scenes=_scenes())
    check_env(env, skip_render_check=True)


def test_registered_default_needs_no_data() -> None:
    env = gym.make("cordillera/Drive-v0")
    obs, info = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape
    assert info["scene_id"].startswith("gen-")
    obs, reward, _terminated, _truncated, info = env.step(np.zeros(2, np.float32))
    assert np.isfinite(obs).all() and np.isfinite(reward)


def test_same_seed_same_episode_bit_for_bit() -> None:
    def episode(seed: int) -> list[np.ndarray]:
        env = DriveEnv(scenes=_scenes())
        obs, _ = env.reset(seed=seed)
        out = [obs]
        rng = np.random.default_rng(seed)
        for _ in range(30):
            obs, *_ = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
            out.append(obs)
        return out

    a, b = episode(3), episode(3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_observation_layout_matches_hand_geometry() -> None:
    cfg = ObservationConfig(num_objects=4)
    env = DriveEnv(scenes=_scenes()[:1], observation=cfg)
    obs, _ = env.reset(seed=0)
    lay = cfg.layout()
    ego = obs[lay["ego"]]
    assert ego[0] == pytest.approx(10.0)  # speed
    objects = obs[lay["objects"]].reshape(4, 11)
    valid = obs[lay["object_valid"]]
    assert valid.tolist() == [1.0, 1.0, 0.0, 0.0]
    # Nearest first: the car 10 m ahead in the left lane, then the one 30 m ahead.
    assert objects[0, :2] == pytest.approx([10.0, 3.5])
    assert objects[1, :2] == pytest.approx([30.0, 0.0])
    assert objects[1, 4] == pytest.approx(-2.0)  # relative vx: 8 - 10 m/s
    route = obs[lay["route"]].reshape(-1, 2)
    assert route[0] == pytest.approx([5.0, 0.0], abs=1e-3)


def test_driving_off_the_road_terminates_with_a_penalty() -> None:
    env = DriveEnv(scenes=_scenes()[:1])
    env.reset(seed=0)
    for _ in range(60):
        _, reward, terminated, _truncated, info = env.step(np.array([0.0, 1.0], np.float32))
        if terminated:
            assert info["offroad"] and reward < 0
            return
    pytest.fail("steering hard right never left the road")


def test_vector_env_autoresets_in_the_same_step() -> None:
    env = DriveVectorEnv(4, scenes=_scenes(), config=EnvConfig(max_episode_steps=10), seed=1)
    assert env.metadata["autoreset_mode"].value == "SameStep"
    obs, _ = env.reset(seed=1)
    assert obs.shape == (4, env.single_observation_space.shape[0])
    for _i in range(10):
        obs, _rew, _term, trunc, info = env.step(np.zeros((4, 2), np.float32))
    assert trunc.all()
    assert info["_final_obs"].all() and info["final_obs"].shape == obs.shape
    assert int(env.core.episode_steps.max()) == 0  # already restarted


def test_self_play_controls_every_vehicle() -> None:
    env = SelfPlayEnv(2, scenes=_scenes(), config=EnvConfig(sim=SimConfig(traffic="log")))
    obs, info = env.reset(seed=0)
    assert env.num_agents == 3 and obs.shape[:2] == (2, 3)
    assert info["agent_mask"].all()
    actions = torch.zeros(2, 3, 2)
    actions[..., 0] = 1.0  # everyone accelerates
    before = env.core.state.speed_mps.clone()  # type: ignore[union-attr]
    obs, reward, _done, _term, _trunc, info = env.step(actions)
    after = env.core.state.speed_mps  # type: ignore[union-attr]
    assert bool((after > before + 0.3).all())
    assert reward.shape == (2, 3)
