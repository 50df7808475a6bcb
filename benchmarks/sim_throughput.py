"""Simulator throughput on one process.

    python benchmarks/sim_throughput.py [--json] [--device cpu|cuda]

(a) self-play: controlled agent-steps per second with observations, checks and rewards
    computed — 16 rollouts of a 64-vehicle highway, every vehicle controlled;
(b) scene-seconds simulated per wall-second on the real nuScenes-mini scenes with IDM traffic
    and every per-step check on, batched as RL batches them (many rollouts of each scene);
(c) the same figure for highway-env's ``highway-fast-v0`` measured in this run (optional
    ``peers`` extra), and the ratio (b) / (c).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from _common import SHARED_DATA
from _scenes import dense_highway
from cordillera.env.config import EnvConfig, RewardConfig
from cordillera.env.vector import SelfPlayEnv
from cordillera.scene.readers import find_sources, read_scene
from cordillera.sim.config import SimConfig
from cordillera.sim.simulator import Simulator


def self_play_agent_steps_per_s(
    envs: int, agents: int, steps: int, device: str, compile_kernels: bool
) -> dict:
    scenes = [dense_highway(agents, seed=s) for s in range(envs)]
    # Agents stay in play for the whole measurement (no removal on contact), so every step
    # advances envs x agents controlled agents.
    reward = RewardConfig(terminate_on_collision=False, terminate_on_offroad=False)
    config = EnvConfig(
        sim=SimConfig(compile=compile_kernels), max_episode_steps=10_000, reward=reward
    )
    env = SelfPlayEnv(envs, scenes=scenes, config=config, device=device, seed=0)
    env.reset(seed=0)
    gen = torch.Generator(device="cpu").manual_seed(0)
    shape = (envs, env.num_agents, 2)
    actions = [(torch.rand(shape, generator=gen) * 0.4 - 0.2).to(device) for _ in range(8)]
    for i in range(5):  # warm-up (and compilation, when asked for)
        env.step(actions[i % 8])
    live_steps = 0
    start = time.perf_counter()
    for i in range(steps):
        live = (~env.core.agent_done).sum()
        env.step(actions[i % 8])
        live_steps += int(live)
    elapsed = time.perf_counter() - start
    return {
        "agent_steps_per_s": live_steps / elapsed,
        "envs": envs,
        "agents_per_env": env.num_agents,
        "steps": steps,
        "seconds": elapsed,
    }


def nuscenes_scene_seconds_per_s(
    rollouts_per_scene: int, device: str, compile_kernels: bool
) -> dict | None:
    root = SHARED_DATA / "scenarionet" / "nuscenes"
    if not root.exists():
        return None
    scenes = [read_scene(p, f) for p, f in find_sources(root)]
    scene_of = torch.arange(len(scenes)).repeat_interleave(rollouts_per_scene)
    config = SimConfig(traffic="idm", compile=compile_kernels)
    sim = Simulator(scenes, config, scene_of=scene_of, device=device)
    agents = sim.ego_index.view(-1, 1)
    steps = int(sim.batch.num_steps.min()) - 1
    state = sim.reset()
    checks = None
    for _ in range(3):  # warm-up (and compilation, when asked for)
        nxt = sim.step_plan(state, sim.log_plan(state, agents, horizon=16), agents)
        checks = sim.checks(agents, state, nxt, checks)
    state, checks = sim.reset(), None
    start = time.perf_counter()
    for _ in range(steps):
        nxt = sim.step_plan(state, sim.log_plan(state, horizon=16, agents=agents), agents)
        checks = sim.checks(agents, state, nxt, checks)
        state = nxt
    if device != "cpu":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    simulated = sim.batch_size * steps * sim.dt_s
    return {
        "scene_seconds_per_s": simulated / elapsed,
        "rollouts": sim.batch_size,
        "scenes": len(scenes),
        "steps": steps,
        "seconds": elapsed,
    }


def highway_fast_scene_seconds_per_s(seconds: float = 20.0) -> dict | None:
    try:
        import gymnasium as gym
        import highway_env  # noqa: F401  (registers the envs)
    except ImportError:
        return None
    env = gym.make("highway-fast-v0")
    per_step_s = 1.0 / env.unwrapped.config["policy_frequency"]
    env.reset(seed=0)
    env.action_space.seed(0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    return {"scene_seconds_per_s": steps * per_step_s / elapsed, "steps": steps, "seconds": elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--envs", type=int, default=16)
    parser.add_argument("--agents", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rollouts-per-scene", type=int, default=32)
    parser.add_argument("--peer-seconds", type=float, default=20.0)
    parser.add_argument(
        "--compile",
        action="store_true",
        help="compile the kernels with torch.compile (~1-2 min first)",
    )
    args = parser.parse_args()
    a = self_play_agent_steps_per_s(args.envs, args.agents, args.steps, args.device, args.compile)
    b = nuscenes_scene_seconds_per_s(args.rollouts_per_scene, args.device, args.compile)
    c = highway_fast_scene_seconds_per_s(args.peer_seconds)
    b_rate = b["scene_seconds_per_s"] if b else None
    c_rate = c["scene_seconds_per_s"] if c else None
    out = {
        "agent_steps_per_s": a["agent_steps_per_s"],
        "scene_seconds_per_s": b_rate,
        "highway_fast_scene_seconds_per_s": c_rate,
        "ratio_vs_highway_fast": (b_rate / c_rate) if b_rate and c_rate else None,
        "device": args.device,
        "compiled": args.compile,
        "torch_threads": torch.get_num_threads(),
        "self_play": a,
        "nuscenes_idm": b,
        "highway_fast": c,
    }
    if args.json:
        print(json.dumps(out))
        return 0
    print(
        f"(a) self-play, {a['envs']} rollouts x {a['agents_per_env']} agents: "
        f"{a['agent_steps_per_s']:,.0f} controlled agent-steps/s (target 700,000)"
    )
    if b:
        print(
            f"(b) nuScenes-mini, IDM traffic, all checks, {b['rollouts']} rollouts of "
            f"{b['scenes']} scenes: {b_rate:,.0f} scene-seconds/s (target 5,000)"
        )
    else:
        print("(b) skipped: no nuScenes data under ../shared/data")
    if c:
        print(f"(c) highway-env highway-fast-v0: {c_rate:,.1f} scene-seconds/s")
        if b_rate:
            print(f"    ratio (b)/(c): {b_rate / c_rate:,.0f}x (target 100x)")
    else:
        print("(c) skipped: highway-env not installed (pip install -e '.[peers]')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
