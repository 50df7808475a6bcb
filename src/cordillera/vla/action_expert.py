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
from typing import cast

import torch
import torch.nn.functional as F
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
        samples: int = 1,
    ) -> torch.Tensor:
        """``(B·S, K, 2)`` normalised controls: ``steps`` Euler steps of the flow from seeded
        noise (``generator`` on the memory's device), S = ``samples`` draws per row of
        ``memory`` (rows ``b·S … b·S + S - 1`` are row b's draws).

        Nothing that is constant along the flow is computed per step: the memory's projection
        and every layer's cross-attention keys and values are computed once per decision (not
        per draw either: the draws of a row share them), the time conditioning of all steps
        in one batch. The layers run functionally on their own weights (the arithmetic of
        :meth:`forward`, tested equal)."""
        b, k = memory.shape[0], self.step_embed.shape[0]
        n = b * samples
        x = torch.randn(
            (n, k, CONTROL_DIM), generator=generator, device=memory.device, dtype=memory.dtype
        )
        layers = cast(list[nn.TransformerDecoderLayer], list(self.decoder))
        if not all(_lean(layer) for layer in layers):  # pragma: no cover - built lean
            return self._sample_modules(memory, memory_pad, ego_state, steps, x, samples)
        mem = self.memory_proj(memory)
        # (B, 1, 1, L): True = attend; no mask at all where nothing is padding
        keep = ~memory_pad[:, None, None, :] if bool(memory_pad.any()) else None
        cross = [_cross_kv(layer, mem) for layer in layers]
        dt = 1.0 / steps
        times = torch.tensor([i * dt for i in range(steps)], device=memory.device)
        cond = self.time_mlp(time_embedding(times, self.hidden)).to(memory.dtype)  # (steps, E)
        state = self.state_mlp(ego_state).repeat_interleave(samples, 0)[:, None]  # (B·S, 1, E)
        base = self.step_embed[None] + state  # (B·S, K, E)
        norm, head = cast(nn.LayerNorm, self.out[0]), cast(nn.Linear, self.out[1])
        for i in range(steps):
            h = self.in_proj(x) + base + cond[i]
            for layer, (kmem, vmem) in zip(layers, cross, strict=True):
                h = _layer_step(layer, h, kmem, vmem, keep, b)
            v = F.linear(_ln(h, norm), head.weight, head.bias)
            x = x + dt * v
        return x

    def _sample_modules(
        self,
        memory: torch.Tensor,
        memory_pad: torch.Tensor,
        ego_state: torch.Tensor,
        steps: int,
        x: torch.Tensor,
        samples: int,
    ) -> torch.Tensor:
        rep = lambda t: t.repeat_interleave(samples, 0)  # noqa: E731
        memory, memory_pad, ego_state = rep(memory), rep(memory_pad), rep(ego_state)
        dt = 1.0 / steps
        for i in range(steps):
            t = torch.full((x.shape[0],), i * dt, device=memory.device, dtype=memory.dtype)
            x = x + dt * self(x, t, memory, memory_pad, ego_state)
        return x


def _lean(layer: nn.TransformerDecoderLayer) -> bool:
    """A layer :func:`_layer_step` reproduces: pre-norm, no dropout, packed projections."""
    drops = (layer.dropout, layer.dropout1, layer.dropout2, layer.dropout3)
    no_dropout = not layer.training or (
        all(d.p == 0.0 for d in drops)
        and layer.self_attn.dropout == 0.0
        and layer.multihead_attn.dropout == 0.0
    )
    return bool(
        layer.norm_first
        and no_dropout
        and layer.self_attn._qkv_same_embed_dim
        and layer.multihead_attn._qkv_same_embed_dim
        and layer.self_attn.in_proj_bias is not None
        and layer.multihead_attn.in_proj_bias is not None
    )


def _ln(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``(N, L, E)`` -> ``(N, heads, L, E / heads)``."""
    n, length, e = x.shape
    return x.view(n, length, heads, e // heads).transpose(1, 2)


def _cross_kv(
    layer: nn.TransformerDecoderLayer, mem: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The cross-attention keys and values of projected memory ``(B, L, E)``, per head."""
    attn = layer.multihead_attn
    e = attn.embed_dim
    w, bias = attn.in_proj_weight, attn.in_proj_bias
    assert bias is not None
    kv = F.linear(mem, w[e:], bias[e:])
    return _heads(kv[..., :e], attn.num_heads), _heads(kv[..., e:], attn.num_heads)


def _layer_step(
    layer: nn.TransformerDecoderLayer,
    h: torch.Tensor,
    kmem: torch.Tensor,
    vmem: torch.Tensor,
    keep: torch.Tensor | None,
    b: int,
) -> torch.Tensor:
    """One pre-norm decoder layer on ``(B·S, K, E)`` queries, the memory's keys and values
    given (``(B, heads, L, E / heads)``, shared by a row's S draws)."""
    n, k, e = h.shape
    sa, ca = layer.self_attn, layer.multihead_attn
    heads = sa.num_heads
    qkv = F.linear(_ln(h, layer.norm1), sa.in_proj_weight, sa.in_proj_bias)
    qkv = qkv.view(n, k, 3, heads, e // heads).permute(2, 0, 3, 1, 4)
    a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
    h = h + F.linear(a.transpose(1, 2).reshape(n, k, e), sa.out_proj.weight, sa.out_proj.bias)
    # Cross-attention: a row's draws are one longer query sequence over its memory.
    w, bias = ca.in_proj_weight, ca.in_proj_bias
    assert bias is not None
    q = F.linear(_ln(h, layer.norm2), w[:e], bias[:e]).view(b, -1, e)
    a = F.scaled_dot_product_attention(_heads(q, ca.num_heads), kmem, vmem, attn_mask=keep)
    a = a.transpose(1, 2).reshape(n, k, e)
    h = h + F.linear(a, ca.out_proj.weight, ca.out_proj.bias)
    l1, l2 = layer.linear1, layer.linear2
    y = layer.activation(F.linear(_ln(h, layer.norm3), l1.weight, l1.bias))
    y = F.linear(y, l2.weight, l2.bias)
    out: torch.Tensor = h + y
    return out


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
