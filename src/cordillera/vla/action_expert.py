"""The flow-matching action expert: K controls from the backbone's hidden states.

A small transformer decoder: its K queries are the noisy normalised controls (acceleration,
curvature) of the plan plus a step embedding; it self-attends over the plan, cross-attends to
the backbone's hidden states (prompt, CoC and meta-action text) and is conditioned on the flow
time and the ego's current state. It predicts the rectified-flow velocity

    x_t = (1 - t)·x_0 + t·x_1,   target velocity = x_1 - x_0,

from noise ``x_0 ~ N(0, I)`` at t = 0 to data ``x_1`` at t = 1. Sampling integrates it with
``flow_steps`` Euler steps from noise drawn from a seeded generator, so a decision is a
deterministic function of its inputs and seed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

CONTROL_DIM = 2
"""(acceleration, curvature) per step."""


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """``(B, dim)`` sinusoidal embedding of flow times ``(B,)`` in [0, 1]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    angles = (t[:, None].float() * 1000.0) * freqs[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], -1)


class ActionExpert(nn.Module):
    """Velocity field ``v(x_t, t | memory, ego state)`` over ``(B, K, 2)`` normalised controls.

    Args:
        memory_dim: width of the backbone's hidden states.
        hidden: the expert's width; layers, heads: its decoder layers and attention heads.
        horizon: K, controls per plan.
    """

    def __init__(self, memory_dim: int, hidden: int, layers: int, heads: int, horizon: int):
        super().__init__()
        self.hidden = hidden
        self.memory_proj = nn.Sequential(nn.LayerNorm(memory_dim), nn.Linear(memory_dim, hidden))
        self.in_proj = nn.Linear(CONTROL_DIM, hidden)
        self.step_embed = nn.Parameter(torch.randn(horizon, hidden) * 0.02)
        self.time_mlp = nn.Sequential(
            nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden)
        )
        # The current speed, acceleration and yaw rate go straight to the expert: the plan
        # starts from them, and a direct path is easier to learn than through the text.
        self.state_mlp = nn.Sequential(nn.Linear(3, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.decoder = nn.ModuleList(
            nn.TransformerDecoderLayer(
                hidden,
                heads,
                dim_feedforward=4 * hidden,
                dropout=0.0,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(layers)
        )
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, CONTROL_DIM))

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        memory: torch.Tensor,
        memory_pad: torch.Tensor,
        ego_state: torch.Tensor,
    ) -> torch.Tensor:
        """Velocity ``(B, K, 2)`` at noisy controls ``x_t`` ``(B, K, 2)`` and times ``t`` ``(B,)``.

        Args:
            memory: ``(B, L, memory_dim)`` backbone hidden states.
            memory_pad: ``(B, L)`` bool, True at padding positions of ``memory``.
            ego_state: ``(B, 3)`` normalised (speed, acceleration, yaw rate).
        """
        cond = self.time_mlp(time_embedding(t, self.hidden)) + self.state_mlp(ego_state)
        h = self.in_proj(x_t) + self.step_embed[None] + cond[:, None]
        mem = self.memory_proj(memory)
        for layer in self.decoder:
            h = layer(h, mem, memory_key_padding_mask=memory_pad)
        out: torch.Tensor = self.out(h)
        return out

    def sample(
        self,
        memory: torch.Tensor,
        memory_pad: torch.Tensor,
        ego_state: torch.Tensor,
        steps: int,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """``(B, K, 2)`` normalised controls: ``steps`` Euler steps of the flow from seeded
        noise (``generator`` on the memory's device)."""
        b = memory.shape[0]
        k = self.step_embed.shape[0]
        x = torch.randn(
            (b, k, CONTROL_DIM), generator=generator, device=memory.device, dtype=memory.dtype
        )
        # The memory projection does not depend on t: run it once, not once per step.
        mem = self.memory_proj(memory)
        state = self.state_mlp(ego_state)
        dt = 1.0 / steps
        for i in range(steps):
            t = torch.full((b,), i * dt, device=memory.device, dtype=memory.dtype)
            cond = self.time_mlp(time_embedding(t, self.hidden)) + state
            h = self.in_proj(x) + self.step_embed[None] + cond[:, None]
            for layer in self.decoder:
                h = layer(h, mem, memory_key_padding_mask=memory_pad)
            x = x + dt * self.out(h)
        return x


def flow_matching_loss(
    expert: ActionExpert,
    controls_norm: torch.Tensor,
    valid: torch.Tensor,
    memory: torch.Tensor,
    memory_pad: torch.Tensor,
    ego_state: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """Rectified-flow velocity MSE over the valid steps.

    Args:
        controls_norm: ``(B, K, 2)`` target normalised controls (x_1).
        valid: ``(B, K)`` bool, steps of the logged future (padding is not learnt).
        generator: draws the noise and the flow times (seeded per training step).
    """
    b = controls_norm.shape[0]
    noise = torch.randn(controls_norm.shape, generator=generator, device=controls_norm.device).to(
        controls_norm.dtype
    )
    t = torch.rand((b,), generator=generator, device=controls_norm.device).to(controls_norm.dtype)
    x_t = (1.0 - t[:, None, None]) * noise + t[:, None, None] * controls_norm
    pred = expert(x_t, t, memory, memory_pad, ego_state)
    err = ((pred - (controls_norm - noise)) ** 2).sum(-1)  # (B, K)
    w = valid.to(err.dtype)
    return (err * w).sum() / w.sum().clamp_min(1.0)


__all__ = ["CONTROL_DIM", "ActionExpert", "flow_matching_loss", "time_embedding"]
