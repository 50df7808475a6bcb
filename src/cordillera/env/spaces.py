"""Gymnasium spaces of the environments."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from cordillera.env.config import EnvConfig


def observation_space(config: EnvConfig) -> spaces.Box:
    """``(D,)`` float32 vector (layout in :mod:`cordillera.env.observations`)."""
    d = config.observation.size
    return spaces.Box(low=-np.inf, high=np.inf, shape=(d,), dtype=np.float32)


def action_space(config: EnvConfig) -> spaces.Box:
    """``(2,)`` normalised controls, or ``(K, 2)`` agent-frame waypoints in metres."""
    if config.action == "plan":
        k = config.plan_horizon
        return spaces.Box(low=-500.0, high=500.0, shape=(k, 2), dtype=np.float32)
    return spaces.Box(low=-1.0, high=1.0, shape=(2,), dtype=np.float32)
