"""Parameter counts of a VLA configuration, without allocating its weights.

The model is built under ``torch.device("meta")``: every tensor has a shape and no storage,
so the 32B teacher is counted in a second on a laptop.
"""

from __future__ import annotations

import torch

from cordillera.vla.config import VlaConfig
from cordillera.vla.model import VlaModel


def parameter_counts(config: VlaConfig) -> dict[str, int]:
    """Parameters per part (``vision``, ``language``, ``ego_encoder``, ``action_expert``) and
    ``total``, counted on the meta device (tied weights once)."""
    with torch.device("meta"):
        model = VlaModel(config)
    return model.parameter_counts()


__all__ = ["parameter_counts"]
