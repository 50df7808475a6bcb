"""AlpaSim's driver contract (``egodriver.EgodriverService``), both ways.

* :mod:`~cordillera.service.server`: any servable Cordillera policy as an egodriver service
  (``cordillera serve``), so it runs inside an AlpaSim deployment.
* :mod:`~cordillera.service.client`: :class:`RemoteDriverPolicy`, an external egodriver service
  driving Cordillera's simulator (``cordillera eval --driver grpc://HOST:PORT``).
* :mod:`~cordillera.service.contract`: the conversions between the contract's messages (from
  ``carla-driver-interface``'s generated modules, never redeclared) and Cordillera's arrays.

Dependency direction: ``policy``, ``sensors`` and ``sim`` below; only ``cli`` above.
"""

from cordillera.service.client import RemoteDriverConfig, RemoteDriverPolicy, parse_driver_url
from cordillera.service.errors import ContractViolation, RemoteDriverError, ServiceError
from cordillera.service.policies import servable_policy
from cordillera.service.server import PolicyServer, ServeConfig, serve

__all__ = [
    "ContractViolation",
    "PolicyServer",
    "RemoteDriverConfig",
    "RemoteDriverError",
    "RemoteDriverPolicy",
    "ServeConfig",
    "ServiceError",
    "parse_driver_url",
    "servable_policy",
    "serve",
]
