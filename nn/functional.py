"""Neural-network ops on Tensors: `from autotensor.nn import functional as F`.

Everything defined here is a composition of autotensor's primitive ops, so the tape derives
every gradient; nothing in this file has a backward of its own. The fused fast paths (conv,
pooling, batch norm) live in `autotensor.fused` with their composite twins, the losses in
loss_functional.py, embedding and attention beside their modules: all are re-exported here so
one namespace holds every layer op.
"""

from __future__ import annotations

import numpy as np

import autotensor as at
from autotensor import validate
from autotensor.fused import (
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
    avg_pool2d,
    batch_norm,
    conv2d,
    conv_transpose2d,
    max_pool2d,
)
from autotensor.tensor import _data, _tensor

from .embedding import embedding
from .loss_functional import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)

# Every differentiable function of F; autotensor/op_table.py holds a gradcheck row for each. The
# fused ops (autotensor.fused), the losses (loss_functional.py), embedding and attention live
# beside their modules and are re-exported here, so one namespace holds every layer op.
__all__ = [
    # linear, activations, dropout
    "affine", "linear", "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "silu", "elu",
    "softplus", "hardtanh", "softmax", "log_softmax", "dropout",
    # the course's losses, then PyTorch's
    "softmax_cross_entropy", "svm_loss", "cross_entropy", "nll_loss", "mse_loss", "l1_loss",
    "smooth_l1_loss", "huber_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
    "kl_div",
    # normalisation
    "layer_norm", "group_norm", "batch_norm",
    # convolution and pooling
    "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    # embeddings and attention
    "embedding", "scaled_dot_product_attention",
]


# ---- linear and activations --------------------------------------------------------------------
def affine(x, w, b=None):
    """x @ w + b, x (N, d1, ..., dk) flattened to (N, D); w (D, M), b (M,) -> out (N, M)."""
    x, w = _tensor(x), _tensor(w)
    if x.ndim < 1 or w.ndim != 2:
        raise ValueError(f"affine: need x of shape (N, ...) and w of shape (D, M), got x "
                         f"{x.shape} and w {w.shape}")
    d = int(np.prod(x.shape[1:]))
    if d != w.shape[0]:
        raise ValueError(f"affine: x of shape {x.shape} flattens to ({x.shape[0]}, {d}) but w "
                         f"has shape {w.shape}: w.shape[0] must be {d}")
    if b is not None and np.shape(_data(b)) != (w.shape[1],):
        raise ValueError(f"affine: b must have shape ({w.shape[1]},) to match w {w.shape}, got "
                         f"{np.shape(_data(b))}")
    if x.ndim != 2:
        x = at.reshape(x, (x.shape[0], d))
    out = x @ w
    return out if b is None else out + b


def linear(input, weight, bias=None):  # noqa: A002
    """PyTorch's F.linear: input (*, in) @ weight.T + bias, weight in PyTorch's (out, in) layout
    (nn.Linear stores (in, out) and computes x @ weight: see docs/nn.md)."""
    x, w = _tensor(input), _tensor(weight)
    if x.ndim < 1 or w.ndim != 2 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"linear: need input (*, in) and weight (out, in), got input {x.shape} "
                         f"and weight {w.shape}")
    if bias is not None and np.shape(_data(bias)) != (w.shape[0],):
        raise ValueError(f"linear: bias must have shape ({w.shape[0]},) to match weight "
                         f"{w.shape}, got {np.shape(_data(bias))}")
    out = x @ w.T
    return out if bias is None else out + bias


def _not_inplace(fn, inplace):
    """Refuse inplace=True: an activation overwriting its input would corrupt the arrays that
    earlier ops saved for backward (docs/nn.md, "Activations")."""
    if inplace is not False:
        raise ValueError(f"{fn}: only inplace=False is supported (autotensor activations always "
                         f"return a new tensor), got inplace={inplace!r}")


def relu(input, inplace=False):  # noqa: A002 (PyTorch's argument names, here and below)
    """max(x, 0) elementwise; the gradient at 0 is 0, as PyTorch's."""
    _not_inplace("relu", inplace)
    return at.relu(input)


def leaky_relu(input, negative_slope=0.01, inplace=False):  # noqa: A002
    """x where x > 0, else negative_slope * x."""
    slope = float(validate.number("leaky_relu", "negative_slope", negative_slope))
    _not_inplace("leaky_relu", inplace)
    x = _tensor(input)
    return at.where(x.data > 0, x, x * slope)


def sigmoid(input):  # noqa: A002
    """1 / (1 + exp(-x)) elementwise."""
    return at.sigmoid(input)


def tanh(input):  # noqa: A002
    """tanh(x) elementwise."""
    return at.tanh(input)


_SQRT_HALF = 0.5 ** 0.5
_SQRT_2_OVER_PI = (2.0 / np.pi) ** 0.5


def gelu(input, approximate="none"):  # noqa: A002
    """x * Phi(x) with Phi the standard normal CDF: 0.5 x (1 + erf(x / sqrt 2)); with
    approximate="tanh", 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))."""
    validate.choice("gelu", "approximate", approximate, ("none", "tanh"))
    x = _tensor(input)
    if approximate == "tanh":
        inner = (x + x * x * x * 0.044715) * _SQRT_2_OVER_PI
        return x * (at.tanh(inner) + 1.0) * 0.5
    return x * (at.erf(x * _SQRT_HALF) + 1.0) * 0.5


def silu(input, inplace=False):  # noqa: A002
    """x * sigmoid(x) (the swish)."""
    _not_inplace("silu", inplace)
    x = _tensor(input)
    return x * at.sigmoid(x)


def elu(input, alpha=1.0, inplace=False):  # noqa: A002
    """x where x > 0, else alpha * (exp(x) - 1); at x = 0 the gradient is alpha, as PyTorch's."""
    alpha = float(validate.number("elu", "alpha", alpha))
    _not_inplace("elu", inplace)
    x = _tensor(input)
    pos = x.data > 0
    # NOTE: exp sees 0 where x > 0, so a large x never overflows in the unused branch (an inf
    # there would turn the masked-out zero gradient into nan). exp(x) - 1 rather than expm1:
    # the gradient is then exp(x) itself, as PyTorch's, where expm1's (out + 1) would lose
    # the relative precision of exp(x) for x << 0.
    return at.where(pos, x, (at.exp(at.where(pos, 0.0, x)) - 1.0) * alpha)


def softplus(input, beta=1.0, threshold=20.0):  # noqa: A002
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (as PyTorch)."""
    beta = float(validate.number("softplus", "beta", beta))
    threshold = float(validate.number("softplus", "threshold", threshold))
    if beta == 0:
        raise ValueError("softplus: beta must be nonzero, got 0")
    x = _tensor(input)
    linear = x.data * beta > threshold
    bx = at.where(linear, 0.0, x * beta)      # NOTE: no exp overflow in the unused branch
    return at.where(linear, x, at.log1p(at.exp(bx)) * (1.0 / beta))


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):  # noqa: A002
    """x clipped to [min_val, max_val]; the gradient is 1 strictly inside, 0 on the bounds
    (PyTorch's rule; `clamp` passes it on the bounds)."""
    lo = float(validate.number("hardtanh", "min_val", min_val))
    hi = float(validate.number("hardtanh", "max_val", max_val))
    if lo > hi:
        raise ValueError(f"hardtanh: min_val must be <= max_val, got {lo} > {hi}")
    _not_inplace("hardtanh", inplace)
    x = _tensor(input)
    inside = (x.data > lo) & (x.data < hi)
    return at.where(inside, x, np.clip(x.data, lo, hi).astype(x.dtype))


def _softmax_dim(fn, input, dim, dtype):
    """(x, dim) for softmax/log_softmax: dim required, x cast to dtype first if given."""
    x = _tensor(input)
    if dim is None:
        # NOTE: PyTorch guesses a dim here (0 for 0-, 1- and 3-D input, else 1) with a
        # deprecation warning; a guessed axis is a silent bug, so we refuse.
        raise ValueError(f"{fn}: dim is required (e.g. {fn}(x, dim=-1)); PyTorch's implicit "
                         f"choice of dim is deprecated and not supported, got x of shape "
                         f"{x.shape}")
    if not validate.is_int(dim) or not -max(x.ndim, 1) <= dim < max(x.ndim, 1):
        raise ValueError(f"{fn}: dim must be an int in [{-max(x.ndim, 1)}, {max(x.ndim, 1)}) "
                         f"for x of shape {x.shape}, got {dim!r}")
    if dtype is not None:
        x = at.astype(x, dtype)
    return x, int(dim)


def softmax(input, dim=None, dtype=None):  # noqa: A002
    """exp(x) / sum(exp(x)) along `dim` (required); `dtype` casts x first, as PyTorch's."""
    x, dim = _softmax_dim("softmax", input, dim, dtype)
    return at.softmax(x, dim=dim)


def log_softmax(input, dim=None, dtype=None):  # noqa: A002
    """x - logsumexp(x) along `dim` (required), stable for large logits."""
    x, dim = _softmax_dim("log_softmax", input, dim, dtype)
    return at.log_softmax(x, dim=dim)


# The activations above that PyTorch added after the course; each has an op_table row.
# ---- dropout ------------------------------------------------------------------------------------
def dropout(x, p=0.5, training=True, seed=None):
    """Inverted dropout: zero each element with probability `p`, scale survivors by 1 / (1 - p).

    `p` is the DROP probability (PyTorch's convention; the course's `dropout_param['p']` is the
    keep probability). Outside training x is returned unchanged. With a `seed` the same mask
    is drawn on every call (what gradient checks need), from `np.random.RandomState(seed)`:
    numpy's global RNG is left alone. Without one the global RNG is used, so
    `np.random.seed(...)` makes runs repeatable.
    """
    validate.probability("dropout", "p", p, "the probability of zeroing an element")
    validate.seed("dropout", "seed", seed)
    rand = np.random.RandomState(seed).rand if seed is not None else np.random.rand
    return _inverted_dropout(x, 1.0 - float(p), training, rand)


def dropout_keep(x, keep, training=True, seed=None):
    """`dropout` as the course's layers and models do it: `keep` is the KEEP probability.

    The mask is `np.random.rand(*x.shape) < keep`. With a `seed`, numpy's global RNG is first
    reseeded with it, in training and evaluation alike, exactly as the course's
    `dropout_forward` calls `np.random.seed(seed)`: the mask repeats on every call, and every
    later global draw (the next model's weights, say) is the course's too.
    """
    keep = float(validate.probability("dropout", "keep", keep, "the keep probability"))
    validate.seed("dropout", "seed", seed)
    if seed is not None:
        np.random.seed(seed)
    return _inverted_dropout(x, keep, training, np.random.rand)


def _inverted_dropout(x, keep, training, rand):
    """x * (rand(*x.shape) < keep) / keep in training, x itself otherwise."""
    x = _tensor(x)
    if not training or keep == 1.0:
        return x
    kept = rand(*x.shape) < keep
    # NOTE: keep == 0 drops everything; the scale 1/keep would be inf, so the mask is all zeros.
    scale = 1.0 / keep if keep > 0 else 0.0
    mask = kept.astype(x.dtype) * x.dtype.type(scale)      # in x's dtype: no float32 upcast
    return x * mask


# ---- losses ------------------------------------------------------------------------------------
def check_labels(fn, scores_shape, y):
    """y as an int array of shape (N,) with values in [0, C) for scores of shape (N, C).

    A ValueError naming `fn` and the shapes otherwise (the rules: `validate.labels`). The models
    call it before their forward pass, so a bad y leaves them (batch-norm running statistics
    included) untouched.
    """
    scores_shape = tuple(scores_shape)
    if len(scores_shape) != 2:
        raise ValueError(f"{fn}: scores must have shape (N, C), got {scores_shape}")
    n, c = scores_shape
    return validate.labels(fn, "labels y", _data(y), n=n, num_classes=c,
                           against=f" for scores {scores_shape}")


def _batch_mean(n):
    """The factor 1 / n that averages a sum over a batch of n samples.

    NOTE: an empty batch (n = 0) gives nan, as PyTorch's mean reduction does, rather than a
    ZeroDivisionError; the gradient is then an empty (0, C) array.
    """
    return 1.0 / n if n else float("nan")


def softmax_cross_entropy(scores, y):
    """Mean over the batch of -log softmax(scores)[i, y[i]]; scores (N, C), y int (N,).

    An empty batch gives nan (as in PyTorch)."""
    scores = _tensor(scores)
    y = check_labels("softmax_cross_entropy", scores.shape, y)
    n = scores.shape[0]
    logp = at.log_softmax(scores, axis=1)
    return -at.sum(logp[np.arange(n), y]) * _batch_mean(n)


def svm_loss(scores, y):
    """Mean over the batch of sum_{j != y[i]} max(0, scores[i, j] - scores[i, y[i]] + 1).

    An empty batch gives nan (as in PyTorch's multi_margin_loss)."""
    scores = _tensor(scores)
    y = check_labels("svm_loss", scores.shape, y)
    n = scores.shape[0]
    correct = at.reshape(scores[np.arange(n), y], (n, 1))
    margins = at.relu(scores - correct + 1.0)
    # The correct class is excluded: its margin is always exactly 1, masked to 0 here.
    others = np.ones(scores.shape, dtype=scores.dtype)
    others[np.arange(n), y] = 0
    return at.sum(margins * others) * _batch_mean(n)


# ---- normalisation -----------------------------------------------------------------------------
def normalized_shape_of(owner, shape):
    """`shape` (an int or a tuple/list of ints >= 1) as a tuple; a ValueError otherwise."""
    if validate.is_int(shape):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not shape:
        raise ValueError(f"{owner}: normalized_shape must be an int or a non-empty tuple of "
                         f"ints, got {shape!r}")
    return tuple(validate.size(owner, f"normalized_shape[{i}]", n) for i, n in enumerate(shape))


def _is_shape(v):
    """True for what PyTorch takes as a normalized_shape: an int, a tuple/list of ints."""
    return validate.is_int(v) or (isinstance(v, (tuple, list)) and len(v) > 0
                                  and all(validate.is_int(n) for n in v))


def _standardize(x, axes, eps):
    """(x - mean) / sqrt(var + eps) over `axes`, the biased variance (as PyTorch and the course)."""
    mu = at.mean(x, axes, keepdims=True)
    xc = x - mu
    var = at.mean(xc * xc, axes, keepdims=True)
    # NOTE: eps inside the square root, as in the course and PyTorch.
    return xc / at.sqrt(var + float(eps))


def layer_norm(input, normalized_shape=None, weight=None, bias=None, eps=1e-5, *,  # noqa: A002
               gamma=None, beta=None):
    """Normalise each sample over its trailing axes, then scale and shift.

    PyTorch's form `layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5)`:
    statistics over the last len(normalized_shape) axes, which must equal normalized_shape;
    weight and bias, when given, have that shape. The course's form
    `layer_norm(x, gamma, beta, eps=1e-5)` (DESIGN.md) is told apart by its second argument
    being an array or Tensor, not an int or a tuple/list of ints: the statistics are then taken
    over the last gamma.ndim axes, x needs a leading batch axis and beta is required.
    """
    if gamma is not None or not _is_shape(normalized_shape):
        # The course's positional layer_norm(x, gamma, beta, eps) lands in these slots.
        return _layer_norm_course(input, normalized_shape if gamma is None else gamma,
                                  weight if beta is None else beta,
                                  eps if bias is None else bias)
    shape = normalized_shape_of("layer_norm", normalized_shape)
    validate.number("layer_norm", "eps", eps, "> 0")
    x = _tensor(input)
    k = len(shape)
    if x.ndim < k or tuple(x.shape[x.ndim - k:]) != shape:
        raise ValueError(f"layer_norm: normalized_shape {shape} must equal the last {k} "
                         f"dimension(s) of input {x.shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and np.shape(_data(p)) != shape:
            raise ValueError(f"layer_norm: {name} must have shape normalized_shape {shape}, "
                             f"got {np.shape(_data(p))}")
    out = _standardize(x, tuple(range(x.ndim - k, x.ndim)), eps)
    out = out if weight is None else out * weight
    return out if bias is None else out + bias


def _layer_norm_course(x, gamma, beta, eps):
    """layer_norm(x, gamma, beta, eps=1e-5): the course's form (positional or by keyword)."""
    validate.number("layer_norm", "eps", eps, "> 0")
    if gamma is None or beta is None:
        raise ValueError("layer_norm: needs normalized_shape (PyTorch's form) or gamma and "
                         "beta (the course's form)")
    x, gamma = _tensor(x), _tensor(gamma)
    k = gamma.ndim
    if k == 0 or x.ndim <= k or x.shape[x.ndim - k:] != gamma.shape:
        raise ValueError(f"layer_norm: gamma of shape {gamma.shape} must match the trailing axes "
                         f"of x {x.shape} (x needs a leading batch axis)")
    if np.shape(_data(beta)) != gamma.shape:
        raise ValueError(f"layer_norm: beta must have gamma's shape {gamma.shape}")
    return _standardize(x, tuple(range(x.ndim - k, x.ndim)), eps) * gamma + beta


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):  # noqa: A002
    """Group norm of input (N, C, *): each sample's channels split into num_groups groups of
    C / num_groups, each normalised over its channels and positions; then per-channel weight
    and bias (C,) when given. Same in training and evaluation."""
    x = _tensor(input)
    g = validate.size("group_norm", "num_groups", num_groups)
    validate.number("group_norm", "eps", eps, "> 0")
    if x.ndim < 2 or x.shape[1] % g:
        raise ValueError(f"group_norm: input must be (N, C, *) with C divisible by num_groups "
                         f"{g}, got shape {x.shape}")
    c = x.shape[1]
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and np.shape(_data(p)) != (c,):
            raise ValueError(f"group_norm: {name} must have shape ({c},) for input {x.shape}, "
                             f"got {np.shape(_data(p))}")
    grouped = at.reshape(x, (x.shape[0], g, -1))
    out = at.reshape(_standardize(grouped, (2,), eps), x.shape)
    per_channel = (1, c) + (1,) * (x.ndim - 2)
    if weight is not None:
        out = out * at.reshape(weight, per_channel)
    return out if bias is None else out + at.reshape(bias, per_channel)


# ---- attention: imported last, as nn/attention.py itself uses F.dropout ------------------------
from .attention import scaled_dot_product_attention  # noqa: E402
