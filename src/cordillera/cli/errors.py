"""Turn Cordillera's typed errors into a one-line message and a non-zero exit code."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console

from cordillera.errors import CordilleraError

P = ParamSpec("P")
R = TypeVar("R")
err_console = Console(stderr=True)


def reports_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command so a :class:`CordilleraError` prints ``error: ...`` and exits with 2."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except CordilleraError as e:
            err_console.print(f"[bold red]error:[/] {e}", highlight=False, markup=True)
            raise typer.Exit(code=2) from None

    return wrapper
