"""Lean inference passes through the Qwen3-VL text decoder: the prompt, then chunks of tokens.

At tiny sizes a decoder pass is a few dozen small kernels; the transformers wrappers around
them (mask building, position bookkeeping, cache objects, attention dispatch) cost more than
the kernels. :class:`LeanDecoder` runs the same layers functionally on the modules' own
weights: RMSNorm, the q/k head norms, rotary embeddings (cos/sin given per position), grouped
attention over a preallocated key/value buffer and the gated MLP — the arithmetic of
``Qwen3VLTextDecoderLayer``, checked against the model-level pass by the tests.

A pass takes ``n`` tokens per row (jump-forward decoding feeds a run of grammar-forced tokens
in one pass) written to buffer slots ``[start, start + n)``; a row's padding slots are masked
out of every later attention (``valid``), so rows of a batch may advance by different counts.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

FUSE_LIMIT = 16 * 1024 * 1024
"""Weights (elements) up to which a decoder's q/k/v and gate/up projections are also kept
concatenated, one matrix product each instead of three and two (small decoders are
overhead-bound; a large one is not, and would pay the copy in memory)."""


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """Qwen3's RMSNorm: in float32, then scaled by ``weight`` in the input's dtype (fused
    ``F.rms_norm`` for float32 inputs: the same arithmetic, bit for bit)."""
    if x.dtype == torch.float32:
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    h = x.float()
    h = (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
    return h if weight is None else weight * h


def _rotate_half_matrix(dim: int, like: torch.Tensor) -> torch.Tensor:
    """``R`` with ``x @ R == rotate_half(x)`` exactly (one nonzero ±1 per column)."""
    half = dim // 2
    r = torch.zeros((dim, dim), dtype=like.dtype, device=like.device)
    i = torch.arange(half, device=like.device)
    r[i + half, i] = -1.0
    r[i, i + half] = 1.0
    return r


_Weights = tuple[torch.Tensor, torch.Tensor | None]


def _weights(*linears: nn.Linear, fuse: bool = False) -> _Weights:
    if not fuse:
        return linears[0].weight, linears[0].bias
    bias = [m.bias for m in linears]
    b = None if any(x is None for x in bias) else torch.cat([x for x in bias if x is not None])
    return torch.cat([m.weight for m in linears]), b


class _Layer:
    """One decoder layer's weights, read once (no module calls in the loop)."""

    def __init__(self, layer: Any, fuse: bool) -> None:
        attn, mlp = layer.self_attn, layer.mlp
        self.ln1 = layer.input_layernorm.weight
        self.ln1_eps = float(layer.input_layernorm.variance_epsilon)
        self.ln2 = layer.post_attention_layernorm.weight
        self.ln2_eps = float(layer.post_attention_layernorm.variance_epsilon)
        self.head_dim = int(attn.head_dim)
        self.heads = int(attn.q_proj.out_features) // self.head_dim
        self.kv_heads = int(attn.k_proj.out_features) // self.head_dim
        self.scaling = float(attn.scaling)
        self.fused = fuse
        self.qkv = _weights(attn.q_proj, attn.k_proj, attn.v_proj, fuse=fuse)
        self.q, self.k, self.v = _weights(attn.q_proj), _weights(attn.k_proj), _weights(attn.v_proj)
        self.o = _weights(attn.o_proj)
        # q and k are normalised per head with their own weights: one norm over both.
        self.qk_norm = torch.cat(
            [
                attn.q_norm.weight.expand(self.heads, -1),
                attn.k_norm.weight.expand(self.kv_heads, -1),
            ]
        )
        self.qk_eps = float(attn.q_norm.variance_epsilon)
        if float(attn.k_norm.variance_epsilon) != self.qk_eps:  # pragma: no cover - Qwen3 shares
            raise ValueError("q and k norms with different epsilons")
        self.inner = int(mlp.gate_proj.out_features)
        self.gate_up = _weights(mlp.gate_proj, mlp.up_proj, fuse=fuse)
        self.gate, self.up = _weights(mlp.gate_proj), _weights(mlp.up_proj)
        self.down = _weights(mlp.down_proj)
        silu = isinstance(mlp.act_fn, nn.SiLU) or type(mlp.act_fn).__name__ == "SiLUActivation"
        self.act = F.silu if silu else mlp.act_fn


def _linear(x: torch.Tensor, wb: _Weights) -> torch.Tensor:
    return F.linear(x, wb[0], wb[1])


class DecoderWeights:
    """The text decoder's weights as :class:`LeanDecoder` reads them (concatenated where
    small, see :data:`FUSE_LIMIT`), reusable while the parameters do not change."""

    def __init__(self, language_model: Any) -> None:
        self.key = self.key_of(language_model)
        mats = ("q_proj", "k_proj", "v_proj")
        size = sum(
            getattr(layer.self_attn, m).weight.numel()
            for layer in language_model.layers
            for m in mats
        ) + sum(
            layer.mlp.gate_proj.weight.numel() + layer.mlp.up_proj.weight.numel()
            for layer in language_model.layers
        )
        with torch.no_grad():
            self.layers = [_Layer(layer, size <= FUSE_LIMIT) for layer in language_model.layers]
        self.norm = language_model.norm.weight
        self.norm_eps = float(language_model.norm.variance_epsilon)

    @staticmethod
    def key_of(language_model: Any) -> tuple[tuple[int, int], ...]:
        """Storage and in-place version of every parameter: changes when any is updated."""
        return tuple((p.data_ptr(), p._version) for p in language_model.parameters())

    def current(self, language_model: Any) -> bool:
        return self.key == self.key_of(language_model)


class LeanDecoder:
    """Incremental passes through the text decoder's layers with a key/value buffer.

    Args:
        weights: the decoder's :class:`DecoderWeights`.
        batch: B rows; capacity: buffer slots (grown on demand).
    """

    def __init__(self, weights: DecoderWeights, batch: int, capacity: int) -> None:
        self.layers = weights.layers
        self.norm, self.norm_eps = weights.norm, weights.norm_eps
        first = self.layers[0]
        ref = self.norm
        shape = (batch, first.kv_heads, capacity, first.head_dim)
        self.keys = [ref.new_zeros(shape) for _ in self.layers]
        self.values = [ref.new_zeros(shape) for _ in self.layers]
        self.rot = _rotate_half_matrix(first.head_dim, ref)
        self.batch = batch

    @property
    def capacity(self) -> int:
        return int(self.keys[0].shape[2])

    def reserve(self, slots: int) -> None:
        """Grow the buffer to at least ``slots`` slots (contents kept)."""
        if slots <= self.capacity:
            return
        extra = max(slots, 2 * self.capacity) - self.capacity
        grow = lambda t: torch.cat([t, t.new_zeros((*t.shape[:2], extra, t.shape[3]))], 2)  # noqa: E731
        self.keys = [grow(t) for t in self.keys]
        self.values = [grow(t) for t in self.values]

    def forward(
        self,
        h: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        start: int,
        mask: torch.Tensor | None = None,
        deepstack: list[torch.Tensor] | None = None,
        deepstack_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final (normed) hidden states ``(B, n, D)`` of ``n`` input embeddings per row.

        Args:
            h: ``(B, n, D)`` input embeddings, written to slots ``[start, start + n)``.
            cos, sin: ``(B or 1, n, head_dim)`` rotary embeddings of their positions.
            mask: ``(B or 1, 1, n, start + n)`` bool (True = attend), or None: causal within
                the chunk over every earlier slot (a single token needs no mask).
            deepstack, deepstack_index: visual features added after the first layers at the
                given positions of the chunk (the prompt pass; Qwen3-VL's DeepStack).
        """
        b, n, _ = h.shape
        end = start + n
        self.reserve(end)
        cos, sin = cos[:, :, None], sin[:, :, None]
        causal = mask is None and n > 1
        if causal and start > 0:
            i = torch.arange(n, device=h.device)[:, None] + start
            mask = torch.arange(end, device=h.device)[None] <= i
            causal = False
        rot = self.rot
        for li, layer in enumerate(self.layers):
            hd, nh, nkv = layer.head_dim, layer.heads, layer.kv_heads
            x = rms_norm(h, layer.ln1, layer.ln1_eps)
            if layer.fused:
                qkv = _linear(x, layer.qkv)
                qk = qkv[..., : (nh + nkv) * hd].view(b, n, nh + nkv, hd)
                v = qkv[..., (nh + nkv) * hd :].view(b, n, nkv, hd)
            else:
                q = _linear(x, layer.q).view(b, n, nh, hd)
                qk = torch.cat([q, _linear(x, layer.k).view(b, n, nkv, hd)], 2)
                v = _linear(x, layer.v).view(b, n, nkv, hd)
            qk = rms_norm(qk, None, layer.qk_eps) * layer.qk_norm
            qk = qk * cos + (qk @ rot) * sin  # rotate_half(qk) == qk @ rot, exactly
            kb, vb = self.keys[li], self.values[li]
            kb[:, :, start:end] = qk[:, :, nh:].transpose(1, 2)
            vb[:, :, start:end] = v.transpose(1, 2)
            a = F.scaled_dot_product_attention(
                qk[:, :, :nh].transpose(1, 2),
                kb[:, :, :end],
                vb[:, :, :end],
                attn_mask=mask,
                is_causal=causal,
                scale=layer.scaling,
                enable_gqa=nkv != nh,
            )
            h = h + _linear(a.transpose(1, 2).reshape(b, n, -1), layer.o)
            x = rms_norm(h, layer.ln2, layer.ln2_eps)
            if layer.fused:
                gu = _linear(x, layer.gate_up)
                g, u = gu[..., : layer.inner], gu[..., layer.inner :]
            else:
                g, u = _linear(x, layer.gate), _linear(x, layer.up)
            h = h + _linear(layer.act(g) * u, layer.down)
            if deepstack is not None and deepstack_index is not None and li < len(deepstack):
                feats = deepstack[li].to(h.dtype).view(b, -1, h.shape[-1])
                h = h.index_add(1, deepstack_index, feats)
        return rms_norm(h, self.norm, self.norm_eps)


__all__ = ["FUSE_LIMIT", "DecoderWeights", "LeanDecoder", "rms_norm"]
