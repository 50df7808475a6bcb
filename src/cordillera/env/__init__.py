"""Gymnasium interfaces over the simulator: single-scene, natively batched, and self-play.

``import cordillera`` registers ``cordillera/Drive-v0`` (:class:`DriveEnv`).
"""

from cordillera.env.config import EnvConfig, RewardConfig
from cordillera.env.observations import ObservationConfig

__all__ = ["EnvConfig", "ObservationConfig", "RewardConfig"]
