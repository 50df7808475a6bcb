"""Typed errors of the egodriver services, and the gRPC status code each one maps to.

A request that breaks the contract raises :class:`ContractViolation` carrying the status the
server answers with (``INVALID_ARGUMENT`` for a malformed field, ``FAILED_PRECONDITION`` for a
call out of order, ``NOT_FOUND`` for an unknown session, ...); the servicer turns it into
``context.abort(code, message)`` in one place, so no handler writes wire codes by hand.
"""

from __future__ import annotations

import grpc

from cordillera.errors import CordilleraError


class ServiceError(CordilleraError):
    """A service that cannot be set up (a policy that cannot be served, a port not bound)."""


class ContractViolation(CordilleraError):
    """A request the egodriver contract does not allow; ``code`` is the gRPC answer.

    Attributes:
        code: the gRPC status the server answers with.
        field: the offending request field (dotted), or ``""``.
    """

    def __init__(self, code: grpc.StatusCode, message: str, *, field: str = "") -> None:
        self.code = code
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


def invalid(message: str, field: str = "") -> ContractViolation:
    """``INVALID_ARGUMENT``: a malformed or out-of-range field."""
    return ContractViolation(grpc.StatusCode.INVALID_ARGUMENT, message, field=field)


def precondition(message: str, field: str = "") -> ContractViolation:
    """``FAILED_PRECONDITION``: a well-formed call the session is not ready for."""
    return ContractViolation(grpc.StatusCode.FAILED_PRECONDITION, message, field=field)


class RemoteDriverError(CordilleraError):
    """An external egodriver service failed a call (unreachable, deadline, refused request)."""


__all__ = ["ContractViolation", "RemoteDriverError", "ServiceError", "invalid", "precondition"]
