"""``vla:RUN_DIR``: a trained VLA run as a closed-loop :class:`~cordillera.policy.base.Policy`.

Each decision feeds the 7-camera ring (4 frames per camera, 0.5 s apart) and the ego history
to :meth:`VlaModel.decide` and fills the :class:`Plan` completely:

* the trajectory: the action expert's waypoints (ego frame at the decision);
* meta-actions: the model's own ``<meta>`` line; where it did not parse, the kinematic labels
  of the model's trajectory (:func:`cordillera.policy.meta_fill.fill_meta_actions`), so a
  plan never lacks them; the lane family is -1 when the model wrote ``lane=none``;
* the CoC parsed from the generated sentence (None where it did not parse); no groundings
  (the model does not emit boxes).

Re-deciding costs a backbone pass, so the policy decides every ``replan_every_steps`` and in
between re-issues the held plan moved into the current ego frame. The policy sees no
simulator state: the pose of the decision's ego frame in the current one is dead-reckoned
from what every policy gets — the decision's origin is the ego history's row ``k`` steps
back, and the heading change is the yaw rate integrated over the steps since (trapezoid).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from cordillera.errors import ConfigError
from cordillera.policy.base import CameraRequest, ObservationRequest, PolicyInput
from cordillera.policy.meta_fill import fill_meta_actions
from cordillera.policy.plan import Plan
from cordillera.scene.model import Scene
from cordillera.vla.inputs import VlaInputs
from cordillera.vla.model import VlaDecision, VlaModel


@dataclass(frozen=True)
class VlaPolicyConfig:
    """Configuration of ``vla:RUN_DIR``.

    Attributes:
        run_dir: a finished ``cordillera train sft`` run (its ``model/``), or a directory
            written by :meth:`VlaModel.save_pretrained`.
        replan_every_steps: simulation steps between decisions (5 = 0.5 s); the plan is held,
            moved into the current ego frame, in between.
        seed: the flow's noise seed (a decision is a deterministic function of it).
        device: torch device of the model.
    """

    run_dir: str = ""
    replan_every_steps: int = 5
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not self.run_dir:
            raise ConfigError("VlaPolicyConfig.run_dir is required (vla:RUN_DIR)")
        if not isinstance(self.replan_every_steps, int) or self.replan_every_steps < 1:
            raise ConfigError(
                "VlaPolicyConfig.replan_every_steps must be an int >= 1, got "
                f"{self.replan_every_steps!r}"
            )


def load_policy_model(run_dir: str | Path, device: str = "cpu") -> VlaModel:
    """The model of a run directory (``RUN/model``) or of a saved model directory."""
    d = Path(run_dir)
    if not d.is_dir():
        raise ConfigError(f"vla:{run_dir}: no such run directory")
    target = d / "model" if (d / "model").is_dir() else d
    try:
        return VlaModel.from_pretrained(target, device)
    except ConfigError as e:
        raise ConfigError(f"vla:{run_dir}: not a trained VLA run ({e})") from None


def plan_from_decision(decision: VlaDecision, dt_s: float) -> Plan:
    """A complete :class:`Plan` of B decisions: meta-actions from the model's text, filled
    from the model's own trajectory where the text did not parse."""
    wps = decision.waypoints_ego_m.float().cpu()
    kinematic = fill_meta_actions(wps, dt_s)
    lon = kinematic.longitudinal.long().clone()
    lat = kinematic.lateral.long().clone()
    lane = torch.full_like(lon, -1)
    for i, m in enumerate(decision.meta):
        if m is not None:
            lon[i], lat[i] = int(m.longitudinal), int(m.lateral)
            lane[i] = int(m.lane) if m.lane is not None else -1
    return Plan(wps, lon, lat, lane, coc=tuple(decision.coc))


def hold_plan(
    waypoints_ego_m: torch.Tensor,
    origin_now_m: torch.Tensor,
    heading_change_rad: torch.Tensor,
    steps: int,
) -> torch.Tensor:
    """``(B, K, 2)`` a plan made ``steps`` ago, in the current ego frame: its not yet driven
    waypoints (the first ``steps`` dropped, the last repeated at the end), moved from the
    decision's ego frame, whose origin is at ``origin_now_m (B, 2)`` and whose heading is
    ``-heading_change_rad (B,)`` in the current frame."""
    k = waypoints_ego_m.shape[1]
    ahead = waypoints_ego_m[:, min(steps, k - 1) :]
    if ahead.shape[1] < k:
        ahead = torch.cat([ahead, ahead[:, -1:].expand(-1, k - ahead.shape[1], -1)], 1)
    # The decision frame in the current frame: rotate by -Δψ, then shift by its origin.
    c, s = torch.cos(-heading_change_rad)[:, None], torch.sin(-heading_change_rad)[:, None]
    x, y = ahead[..., 0], ahead[..., 1]
    return torch.stack([c * x - s * y, s * x + c * y], -1) + origin_now_m[:, None]


class VlaPolicy:
    """``vla:RUN_DIR`` (see the module docstring)."""

    def __init__(self, config: VlaPolicyConfig | str) -> None:
        if isinstance(config, str):
            config = VlaPolicyConfig(run_dir=config)
        self.config = config
        self.name = f"vla:{config.run_dir}"
        self.model = load_policy_model(config.run_dir, config.device)
        cfg = self.model.config
        self.request = ObservationRequest(
            cameras=CameraRequest(rig="ring7", width_px=256, height_px=144, frames=cfg.frames,
                                  frame_stride_steps=5),
            # the model reads history_steps; holding a plan reads the decision's row
            ego_history_steps=max(cfg.history_steps, config.replan_every_steps + 1),
        )  # fmt: skip
        self._plan: Plan | None = None
        self._since = 0
        self._yaw_change = torch.zeros(0)
        self._last_yaw_rate = torch.zeros(0)
        self._last_time = torch.zeros(0)

    def reset(self, scenes: Sequence[Scene]) -> None:
        self._plan = None
        self._since = 0

    def _camera_order(self, names: tuple[str, ...]) -> list[int]:
        index = {n: i for i, n in enumerate(names)}
        missing = [c for c in self.model.config.cameras if c not in index]
        if missing:
            raise ConfigError(f"{self.name}: the inputs lack camera(s) {missing}; got {names}")
        return [index[c] for c in self.model.config.cameras]

    def decide(self, inputs: PolicyInput) -> VlaDecision:
        """The model's decision on ``inputs`` (no plan holding)."""
        if inputs.cameras is None:
            raise ConfigError(f"{self.name}: needs camera frames (request.cameras)")
        frames = inputs.cameras[:, self._camera_order(inputs.camera_names)]
        vla_in = VlaInputs(
            frames,
            inputs.ego_history_ego_m.float(),
            inputs.ego_speed_mps.float(),
            inputs.ego_accel_mps2.float(),
            inputs.ego_yaw_rate_rps.float(),
        )
        return self.model.decide(vla_in, seed=self.config.seed)

    def act(self, inputs: PolicyInput) -> Plan:
        b = inputs.batch_size
        time_s = inputs.time_s.float().cpu()
        yaw_rate = inputs.ego_yaw_rate_rps.float().cpu()
        held = self._plan
        hist_len = inputs.ego_history_ego_m.shape[1]
        if (
            held is not None
            and held.batch_size == b
            and self._since + 1 < self.config.replan_every_steps
            and self._since + 1 < hist_len
        ):
            self._since += 1
            dt = (time_s - self._last_time).clamp_min(0.0)
            self._yaw_change = self._yaw_change + 0.5 * (yaw_rate + self._last_yaw_rate) * dt
            self._last_time, self._last_yaw_rate = time_s, yaw_rate
            origin = inputs.ego_history_ego_m[:, -1 - self._since].float().cpu()
            wps = hold_plan(held.waypoints_ego_m, origin, self._yaw_change, self._since)
            return Plan(wps, held.longitudinal, held.lateral, held.lane, held.coc)
        decision = self.decide(inputs)
        plan = plan_from_decision(decision, self.model.config.dt_s)
        self._plan, self._since = plan, 0
        self._yaw_change = torch.zeros(b)
        self._last_time, self._last_yaw_rate = time_s, yaw_rate
        return plan


__all__ = [
    "VlaPolicy",
    "VlaPolicyConfig",
    "hold_plan",
    "load_policy_model",
    "plan_from_decision",
]
