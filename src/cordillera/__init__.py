"""Cordillera: reasoning driving policies trained and evaluated in closed loop.

Packages, lowest first (nothing lower imports anything higher):
``scene`` → ``sim`` → ``sensors`` → ``metrics`` → ``env`` / ``policy`` → ``eval`` / ``rl`` /
``label`` → ``services`` → ``cli``; ``viz`` draws any of them.
"""

import gymnasium

__version__ = "0.1.0"

if "cordillera/Drive-v0" not in gymnasium.registry:
    gymnasium.register(id="cordillera/Drive-v0", entry_point="cordillera.env.drive:DriveEnv")
