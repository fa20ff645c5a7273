"""`Embedding` and `F.embedding`: rows of a weight matrix looked up by integer indices.

    emb = nn.Embedding(10, 3)              # weight (10, 3), drawn from N(0, 1)
    out = emb(np.array([[1, 2], [4, 9]]))  # (2, 2, 3)

The lookup is `weight[indices]` on the tape, so a repeated index accumulates its gradient and the
gradient is differentiable again. `padding_idx` names a row that gets no gradient (its output is
still the row's value, as in PyTorch). PyTorch's `max_norm`, `scale_grad_by_freq` and `sparse`
are refused with a NotImplementedError (docs/nn.md, "Embeddings and recurrent layers").
"""

from __future__ import annotations

import numpy as np

import autotensor as at
from autotensor import validate
from autotensor.random import default_generator
from autotensor.tensor import Tensor, _tensor

from .module import Module, Parameter

__all__ = ["Embedding", "embedding"]


def _indices(fn, indices, num):
    """`indices` (an int ndarray, integer Tensor or nested list) as an int ndarray in [0, num)."""
    if isinstance(indices, Tensor):
        indices = indices.data
    idx = np.asarray(indices)
    if not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"{fn}: input must hold integer indices (an int ndarray or an integer "
                        f"Tensor), got dtype {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= num):
        raise ValueError(f"{fn}: indices must lie in [0, {num}) for a weight of {num} rows, got "
                         f"values from {idx.min()} to {idx.max()}")
    return idx


def _padding_idx(fn, padding_idx, num):
    """None, or padding_idx in [-num, num) as a row number in [0, num) (PyTorch's rule)."""
    if padding_idx is None:
        return None
    p = validate.size(fn, "padding_idx", padding_idx, minimum=-num)
    if p >= num:
        raise ValueError(f"{fn}: padding_idx must lie in [-{num}, {num}) for {num} embeddings, "
                         f"got {p}")
    return p % num


def _refuse_unsupported(fn, max_norm, scale_grad_by_freq, sparse):
    for name, value, off in (("max_norm", max_norm, None), ("scale_grad_by_freq",
                             scale_grad_by_freq, False), ("sparse", sparse, False)):
        if value != off:
            raise NotImplementedError(f"{fn}: {name}={value!r} is not supported (autotensor has "
                                      f"no {name} embeddings); leave it at {off!r}")


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,  # noqa: A002
              scale_grad_by_freq=False, sparse=False):
    """weight[input]: input int (*), weight (num_embeddings, embedding_dim) -> (*, embedding_dim).

    Rows picked by `padding_idx` pass their value but no gradient to the weight.
    """
    _refuse_unsupported("embedding", max_norm, scale_grad_by_freq, sparse)
    weight = _tensor(weight)
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must have shape (num_embeddings, embedding_dim), "
                         f"got {weight.shape}")
    num = weight.shape[0]
    idx = _indices("embedding", input, num)
    padding_idx = _padding_idx("embedding", padding_idx, num)
    out = weight[idx]
    if padding_idx is None or not np.any(idx == padding_idx):
        return out
    # NOTE: the padding rows are read from a detached weight, so their value is the row's
    # (zero unless the user wrote to it) and the gradient of that row stays zero.
    pad = (idx == padding_idx)[..., None]
    return at.where(pad, weight.detach()[idx], out)


class Embedding(Module):
    """A lookup table of `num_embeddings` vectors of size `embedding_dim`: weight (num, dim).

    weight starts N(0, 1) (drawn from `autotensor.random`), with the `padding_idx` row zeroed.
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None,
                 norm_type=2.0, scale_grad_by_freq=False, sparse=False, dtype=np.float64):
        super().__init__()
        _refuse_unsupported("Embedding", max_norm, scale_grad_by_freq, sparse)
        self.num_embeddings = validate.size("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = validate.size("Embedding", "embedding_dim", embedding_dim)
        self.padding_idx = _padding_idx("Embedding", padding_idx, self.num_embeddings)
        shape = (self.num_embeddings, self.embedding_dim)
        self.weight = Parameter(default_generator.standard_normal(shape).astype(dtype))
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None):
        """An Embedding whose weight is a copy of `embeddings` (num, dim); frozen by default."""
        data = np.array(embeddings.data if isinstance(embeddings, Tensor) else embeddings)
        if data.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must have shape "
                             f"(num_embeddings, embedding_dim), got {data.shape}")
        emb = cls(*data.shape, padding_idx=padding_idx, dtype=data.dtype)
        emb.weight.data[...] = data
        emb.weight.requires_grad = not freeze
        return emb

    def forward(self, input):  # noqa: A002 (PyTorch's argument name)
        return embedding(input, self.weight, self.padding_idx)

    def extra_repr(self):
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
