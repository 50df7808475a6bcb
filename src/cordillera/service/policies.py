"""Which Cordillera policies can be served, and how a server builds one per session.

A served policy sees only what the egodriver contract carries: camera frames, the ego's poses
and dynamics, and the route. A policy that asks for the simulator's state (``privileged``), the
vector observation or the bird's-eye raster cannot be served, and :func:`servable_policy` says
so before a port is opened. Map-based lane labels are switched off by default (a runtime sends
no map), which makes ``constant-velocity`` servable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from cordillera.errors import ConfigError
from cordillera.policy.base import Policy
from cordillera.policy.registry import get_policy, policy_config
from cordillera.sensors.presets import get_rig
from cordillera.service.errors import ServiceError

PolicyFactory = Callable[[], Policy]
"""Builds a fresh policy: one per session, since policies keep per-episode state."""

DEFAULT_SERVED_POLICY = "route-follower"


def servable_policy(name: str, **options: Any) -> PolicyFactory:
    """A factory of policy ``name`` configured by ``options``, checked to be servable.

    Raises:
        ConfigError: unknown name or option.
        ServiceError: the policy needs observations a runtime does not send.
    """
    fields = {f.name for f in dataclasses.fields(policy_config(name))}
    if "lane_meta_actions" in fields:
        options = {"lane_meta_actions": False, **options}
    policy_config(name, **options)  # raises ConfigError on an unknown option

    def factory() -> Policy:
        return get_policy(name, **options)

    check_servable(factory(), name)
    return factory


def check_servable(policy: Policy, name: str) -> tuple[str, ...]:
    """The camera names ``policy`` observes (empty: none); raises :class:`ServiceError` when it
    needs what the contract does not carry."""
    req = policy.request
    missing = [
        what
        for what, needed in (
            ("the simulator's state (privileged)", req.privileged),
            ("the vector observation", req.vector),
            ("the bird's-eye raster", req.bev),
        )
        if needed
    ]
    if missing:
        raise ServiceError(
            f"policy {name!r} needs {' and '.join(missing)}, which an egodriver runtime does not "
            "send (it sends cameras, ego poses and the route); servable policies observe only "
            f"those, e.g. {DEFAULT_SERVED_POLICY!r} or 'constant-velocity'"
        )
    if req.cameras is None:
        return ()
    try:
        rig = get_rig(req.cameras.rig, req.cameras.width_px, req.cameras.height_px)
    except ConfigError as e:
        raise ServiceError(f"policy {name!r} asks for cameras a server cannot name: {e}") from e
    return rig.names


__all__ = [
    "DEFAULT_SERVED_POLICY",
    "PolicyFactory",
    "check_servable",
    "servable_policy",
]
