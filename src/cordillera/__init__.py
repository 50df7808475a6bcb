"""Cordillera: reasoning driving policies trained and evaluated in closed loop.

Packages, lowest first (nothing lower imports anything higher):
``scene`` → ``sim`` → ``sensors`` → ``metrics`` → ``policy`` → ``eval`` / ``rl`` / ``label``
→ ``services`` → ``cli``; ``viz`` draws any of them.
"""

__version__ = "0.1.0"
