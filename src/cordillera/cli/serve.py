"""``cordillera serve``: a Cordillera policy as an AlpaSim egodriver gRPC service."""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import Annotated, Any

import typer

from cordillera.cli.errors import reports_errors
from cordillera.errors import ConfigError


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as policy options; a VALUE that parses as JSON is that value."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ConfigError(f"--option must be KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@reports_errors
def serve(
    policy: Annotated[
        str, typer.Option(help="Policy to serve (route-follower, constant-velocity, ...).")
    ] = "route-follower",
    host: Annotated[
        str, typer.Option(help="Interface to bind (0.0.0.0 exposes it to the network).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: any free port, printed).")] = 50051,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", help="Policy option KEY=VALUE (repeatable; JSON values)."),
    ] = None,
    max_workers: Annotated[int, typer.Option(help="Request handler threads.")] = 16,
    max_sessions: Annotated[int, typer.Option(help="Open sessions at most.")] = 256,
    session_idle_timeout: Annotated[
        float, typer.Option(help="Seconds without a call after which a session is freed.")
    ] = 300.0,
    log_level: Annotated[str, typer.Option(help="Python log level.")] = "WARNING",
) -> None:
    """Serve a policy over AlpaSim's egodriver contract (egodriver.EgodriverService) until
    interrupted: one session per runtime rollout; frames, ego poses and route in, a timestamped
    world-frame trajectory out, the CoC and meta-actions in the debug payload."""
    from cordillera.service.policies import servable_policy
    from cordillera.service.server import ServeConfig
    from cordillera.service.server import serve as start

    levels = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    if log_level.upper() not in levels:
        raise ConfigError(f"--log-level must be one of {', '.join(levels)}, got {log_level!r}")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    config = ServeConfig(
        host=host,
        port=port,
        max_workers=max_workers,
        max_sessions=max_sessions,
        session_idle_timeout_s=session_idle_timeout,
    )
    factory = servable_policy(policy, **parse_options(option or []))
    server = start(factory, policy, config)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    # One parseable line: tests and scripts read the bound port from it.
    print(f"serving {policy} on {server.address} (egodriver.EgodriverService)", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
