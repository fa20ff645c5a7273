"""Attention: `F.scaled_dot_product_attention` and `nn.MultiheadAttention`, as PyTorch's.

Both are compositions of Tensor ops (matmul, softmax, masked_fill), so the tape derives every
gradient, at any order. They share one kernel, `_attend`: scores = q k^T * scale, masks,
softmax over the keys, dropout, weights @ v.

Mask conventions differ between the two, exactly as in PyTorch:
- `scaled_dot_product_attention`: a bool `attn_mask` is True where a query MAY attend;
- `MultiheadAttention`: a bool `attn_mask` or `key_padding_mask` is True where it may NOT.
A float mask is added to the scores in both (use -inf to forbid).
"""

from __future__ import annotations

import math

import numpy as np

import autotensor as at
from autotensor import validate
from autotensor.random import default_generator
from autotensor.tensor import Tensor, _data, _tensor

from . import functional as F
from .linear import Linear
from .module import Module, Parameter


def _mask(fn, name, mask):
    """A bool ndarray, or a float Tensor (kept in the graph: a float mask may require grad)."""
    if isinstance(mask, Tensor):
        if mask.dtype == bool:
            return mask.data
    else:
        mask = np.asarray(mask)
        if mask.dtype == bool:
            return mask
    if not np.issubdtype(mask.dtype, np.floating):
        raise TypeError(f"{fn}: {name} must be a bool or floating mask, got dtype {mask.dtype}")
    return _tensor(mask)


def _apply_mask(scores, mask, forbid_where):
    """scores with -inf where the bool `mask` equals `forbid_where`, or plus a float mask."""
    if isinstance(mask, np.ndarray):
        return scores.masked_fill(mask if forbid_where else ~mask, -np.inf)
    return scores + mask


def _attend(q, k, v, masks, dropout_p, scale, forbid_where):
    """(softmax(q k^T * scale + masks) @ v, the weights); masks apply in order."""
    scores = (q @ k.transpose(-2, -1)) * scale
    for mask in masks:
        scores = _apply_mask(scores, mask, forbid_where)
    weights = at.softmax(scores, dim=-1)
    if dropout_p > 0:
        weights = F.dropout(weights, dropout_p)
    return weights @ v, weights


def _repeat_heads(x, groups):
    """(..., H, S, E) -> (..., H * groups, S, E), each head repeated `groups` times in a row."""
    shape = x.shape
    x = x.unsqueeze(-3).expand(*shape[:-2], groups, *shape[-2:])
    return x.reshape(*shape[:-3], shape[-3] * groups, *shape[-2:])


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False):
    """softmax(query @ key^T * scale + mask) @ value over any leading batch dims.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev). `scale` defaults
    to 1 / sqrt(E). A bool `attn_mask` (broadcast to (..., L, S)) is True where attention is
    ALLOWED; a float one is added to the scores. `is_causal=True` lets query i attend to keys
    0..i only (no attn_mask then). Dropout with probability `dropout_p` is applied to the
    weights whenever dropout_p > 0, as PyTorch's. With enable_gqa=True, key and value may have
    fewer heads (dim -3) than query, each shared by a group of query heads.
    """
    fn = "scaled_dot_product_attention"
    q, k, v = _tensor(query), _tensor(key), _tensor(value)
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"{fn}: query, key and value need at least 2 dims (..., seq, features), "
                         f"got shapes {q.shape}, {k.shape}, {v.shape}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"{fn}: need query (..., L, E), key (..., S, E), value (..., S, Ev), got "
                         f"shapes {q.shape}, {k.shape}, {v.shape}")
    validate.probability(fn, "dropout_p", dropout_p)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    scale = float(validate.number(fn, "scale", scale))
    if enable_gqa and k.ndim >= 3 and q.ndim >= 3 and k.shape[-3] != q.shape[-3]:
        heads, kv_heads = q.shape[-3], k.shape[-3]
        if heads % kv_heads or v.shape[-3] != kv_heads:
            raise ValueError(f"{fn}: with enable_gqa the query heads ({heads}) must be a multiple "
                             f"of the key/value heads, got key {k.shape} and value {v.shape}")
        k, v = _repeat_heads(k, heads // kv_heads), _repeat_heads(v, heads // kv_heads)
    masks = []
    if is_causal:
        if attn_mask is not None:
            raise ValueError(f"{fn}: give attn_mask or is_causal=True, not both")
        masks.append(np.tri(q.shape[-2], k.shape[-2], dtype=bool))
    elif attn_mask is not None:
        masks.append(_mask(fn, "attn_mask", attn_mask))
    return _attend(q, k, v, masks, float(dropout_p), scale, forbid_where=False)[0]


class MultiheadAttention(Module):
    """Multi-head attention, PyTorch's module: the same parameters, shapes and masks.

    Parameters: `in_proj_weight` (3E, E) stacking the q, k, v projections (x @ W.T, PyTorch's
    layout), `in_proj_bias` (3E,), and `out_proj`, an `nn.Linear(E, E)` whose weight is stored
    (in, out) like every autotensor Linear (copying from PyTorch: transpose out_proj.weight).
    Inputs are (L, N, E) (or (N, L, E) with batch_first=True; (L, E) unbatched). forward
    returns (attn_output, attn_weights), the weights averaged over heads unless
    average_attn_weights=False, or None when need_weights=False.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
                 add_zero_attn=False, kdim=None, vdim=None, batch_first=False, device=None,
                 dtype=None):
        super().__init__()
        name = "MultiheadAttention"
        self.embed_dim = validate.size(name, "embed_dim", embed_dim)
        self.num_heads = validate.size(name, "num_heads", num_heads)
        if self.embed_dim % self.num_heads:
            raise ValueError(f"{name}: embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads})")
        self.head_dim = self.embed_dim // self.num_heads
        self.dropout = float(validate.probability(name, "dropout", dropout))
        self.batch_first = bool(batch_first)
        for arg, value, default in (("add_bias_kv", add_bias_kv, False),
                                    ("add_zero_attn", add_zero_attn, False),
                                    ("kdim", kdim, None), ("vdim", vdim, None)):
            if value != default and not (arg in ("kdim", "vdim") and value == embed_dim):
                raise ValueError(f"{name}: {arg}={value!r} is not supported (only "
                                 f"{arg}={default!r}; see docs/nn.md)")
        if device not in (None, "cpu"):
            raise ValueError(f"{name}: device must be None or 'cpu', got {device!r}")
        dtype = np.dtype(np.float64 if dtype is None else dtype)
        e = self.embed_dim
        self.kdim = self.vdim = e
        self.in_proj_weight = Parameter(np.empty((3 * e, e), dtype))
        self.in_proj_bias = Parameter(np.zeros(3 * e, dtype)) if bias else None
        self.out_proj = Linear(e, e, bias=bias, dtype=dtype)
        self._reset_parameters()

    def _reset_parameters(self):
        """PyTorch's initialisation, drawn from autotensor's global generator: in_proj_weight
        Xavier-uniform, out_proj.weight U(-1/sqrt(E), 1/sqrt(E)), biases zero."""
        e, rng = self.embed_dim, default_generator
        bound = math.sqrt(6.0 / (e + 3 * e))
        self.in_proj_weight.data[...] = rng.uniform(-bound, bound, (3 * e, e))
        self.out_proj.weight.data[...] = rng.uniform(-1 / math.sqrt(e), 1 / math.sqrt(e), (e, e))
        for b in (self.in_proj_bias, self.out_proj.bias):
            if b is not None:
                b.data[...] = 0

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        fn = "MultiheadAttention"
        q, k, v = _tensor(query), _tensor(key), _tensor(value)
        batched = q.ndim == 3
        if q.ndim not in (2, 3) or k.ndim != q.ndim or v.ndim != q.ndim:
            raise ValueError(f"{fn}: query, key, value must all be 3-D (batched) or 2-D, got "
                             f"shapes {q.shape}, {k.shape}, {v.shape}")
        if not batched:
            q, k, v = q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0)
        elif not self.batch_first:
            q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
        (n, length, e), s = q.shape, k.shape[1]
        if e != self.embed_dim or k.shape[2] != e or v.shape[2] != e or v.shape[:2] != k.shape[:2]:
            raise ValueError(f"{fn}: expected query, key, value with embed_dim {self.embed_dim} "
                             f"and key, value of the same length, got {_shapes(query, key, value)}")
        if is_causal and attn_mask is None:
            raise ValueError(f"{fn}: is_causal=True is a hint that attn_mask is the causal mask; "
                             "it needs attn_mask (e.g. nn.Transformer.generate_square_subsequent"
                             "_mask's, or a bool np.triu(np.ones((L, L), bool), 1))")
        masks = self._masks(attn_mask, key_padding_mask, n, length, s, batched)
        heads = [self._project(x, i).reshape(n, x.shape[1], self.num_heads, self.head_dim)
                 .transpose(1, 2) for i, x in enumerate((q, k, v))]
        dropout_p = self.dropout if self.training else 0.0
        out, weights = _attend(*heads, masks, dropout_p, 1.0 / math.sqrt(self.head_dim),
                               forbid_where=True)
        out = out.transpose(1, 2).reshape(n, length, e) @ self.out_proj.weight
        if self.out_proj.bias is not None:
            out = out + self.out_proj.bias
        if not batched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(dim=1)
        return out, weights if batched else weights.squeeze(0)

    def _project(self, x, i):
        """x @ W_i.T + b_i with W_i the i-th (E, E) block of in_proj_weight (q, k, v)."""
        e = self.embed_dim
        out = x @ self.in_proj_weight[i * e:(i + 1) * e].T
        return out if self.in_proj_bias is None else out + self.in_proj_bias[i * e:(i + 1) * e]

    def _masks(self, attn_mask, key_padding_mask, n, length, s, batched):
        """The masks as `_attend` applies them to scores of shape (N, H, L, S)."""
        fn, masks = "MultiheadAttention", []
        if attn_mask is not None:
            mask = _mask(fn, "attn_mask", attn_mask)
            if mask.shape == (length, s):
                masks.append(mask)
            elif mask.shape == (n * self.num_heads, length, s):
                masks.append(mask.reshape(n, self.num_heads, length, s))
            else:
                raise ValueError(f"{fn}: attn_mask must have shape (L, S) = {(length, s)} or "
                                 f"(N * num_heads, L, S) = {(n * self.num_heads, length, s)}, "
                                 f"got {mask.shape}")
        if key_padding_mask is not None:
            mask = _mask(fn, "key_padding_mask", key_padding_mask)
            want = (n, s) if batched else (s,)
            if mask.shape != want:
                raise ValueError(f"{fn}: key_padding_mask must have shape (N, S), or (S,) for "
                                 f"unbatched input, here {want}, got {mask.shape}")
            masks.append(mask.reshape(n, 1, 1, s))
        return masks

    def extra_repr(self):
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
                f"batch_first={self.batch_first}")


def _shapes(*xs):
    return ", ".join(str(np.shape(_data(x))) for x in xs)
