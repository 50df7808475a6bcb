"""Policies by name: ``get_policy("pdm", replan_every_steps=5)``.

Every registered policy has one frozen config dataclass; keyword arguments of
:func:`get_policy` become that config's fields (validated in its ``__post_init__``), and an
unknown policy name or field raises :class:`cordillera.errors.ConfigError` naming the valid
ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cordillera.errors import ConfigError
from cordillera.policy.base import Policy
from cordillera.policy.baselines import (
    ConstantVelocityConfig,
    ConstantVelocityPolicy,
    IdmPolicy,
    IdmPolicyConfig,
    LogReplayConfig,
    LogReplayPolicy,
)
from cordillera.policy.pdm import PdmConfig, PdmPolicy
from cordillera.policy.route_follower import RouteFollowerConfig, RouteFollowerPolicy


@dataclass(frozen=True)
class PolicyEntry:
    """A registered policy: its config class and the factory that builds it from a config."""

    config_type: type[Any]
    build: Callable[[Any], Policy]
    summary: str


_REGISTRY: dict[str, PolicyEntry] = {
    "log-replay": PolicyEntry(
        LogReplayConfig, LogReplayPolicy, "the ego's logged future (privileged)"
    ),
    "constant-velocity": PolicyEntry(
        ConstantVelocityConfig, ConstantVelocityPolicy, "current speed and heading held"
    ),
    "idm": PolicyEntry(IdmPolicyConfig, IdmPolicy, "IDM lane follower on the logged path"),
    "pdm": PolicyEntry(
        PdmConfig, PdmPolicy, "PDM-Closed-like planner with a Chain-of-Causation (default)"
    ),
    "route-follower": PolicyEntry(
        RouteFollowerConfig,
        RouteFollowerPolicy,
        "follows the route from ego speed and route alone (servable over egodriver)",
    ),
}
DEFAULT_POLICY = "pdm"


def policy_names() -> list[str]:
    """Registered policy names, sorted."""
    return sorted(_REGISTRY)


VLA_PREFIX = "vla:"
"""``vla:RUN_DIR`` names a trained VLA run (:mod:`cordillera.vla.policy`)."""


def policy_config(name: str, **kwargs: Any) -> Any:
    """The frozen config of policy ``name`` with ``kwargs`` as its fields."""
    if name.startswith(VLA_PREFIX):
        kwargs = {"run_dir": name[len(VLA_PREFIX) :], **kwargs}
    entry = _entry(name)
    fields = {f.name for f in dataclasses.fields(entry.config_type)}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise ConfigError(
            f"policy {name!r} has no option(s) {', '.join(unknown)}; "
            f"its options are: {', '.join(sorted(fields))}"
        )
    return entry.config_type(**kwargs)


def get_policy(name: str, **kwargs: Any) -> Policy:
    """A new policy ``name`` configured by ``kwargs`` (fields of its config dataclass)."""
    entry = _entry(name)
    return entry.build(policy_config(name, **kwargs))


def _entry(name: str) -> PolicyEntry:
    if name.startswith(VLA_PREFIX):
        # Imported here: the VLA pulls in transformers, which the other policies never need.
        from cordillera.vla.policy import VlaPolicy, VlaPolicyConfig

        return PolicyEntry(VlaPolicyConfig, VlaPolicy, "a trained VLA run (vla:RUN_DIR)")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown policy {name!r}; registered policies: {', '.join(policy_names())}, "
            f"or {VLA_PREFIX}RUN_DIR"
        ) from None


__all__ = [
    "DEFAULT_POLICY",
    "VLA_PREFIX",
    "PolicyEntry",
    "get_policy",
    "policy_config",
    "policy_names",
]
