"""The course's modular layer API: `*_forward(...) -> (out, cache)`, `*_backward(dout, cache)`.

Names, arguments and return values are the course's (see docs/nn.md), so assignment code runs
unchanged. The difference is where gradients come from: a `_forward` wraps its array inputs
in fresh leaf Tensors (sharing memory, no copy), runs the `nn.functional` op, and keeps the
recorded graph in `cache`; the matching `_backward` runs backward on that graph and reads the
leaves' `.grad`. No gradient formula is written twice. The exceptions are the deliberately
naive loop versions of convolution and pooling (layers_naive.py, re-exported here).

Pairs that map onto autotensor's design:
- `batchnorm_backward` backpropagates through the composite twin's graph (mean, var, sqrt,
  ... recorded op by op when it is first called), `batchnorm_backward_alt` through the fused
  op's closed-form backward;
- `conv_*_naive` / `max_pool_*_naive` are loops, `conv_*_fast` / `max_pool_*_fast` the fused ops.
"""

from __future__ import annotations

import numpy as np

from autotensor import Tensor, enable_grad, use_fused, validate
from autotensor import reshape as at_reshape

from . import functional as F
from .layers_naive import (
    conv_backward_naive,
    conv_forward_naive,
    conv_output_shape,
    max_pool_backward_naive,
    max_pool_forward_naive,
    pool_output_shape,
)
from .normalization import read_bn_param

__all__ = [
    "affine_forward", "affine_backward", "relu_forward", "relu_backward",
    "affine_relu_forward", "affine_relu_backward", "softmax_loss", "svm_loss",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "layernorm_forward", "layernorm_backward", "spatial_groupnorm_forward",
    "spatial_groupnorm_backward", "dropout_forward", "dropout_backward",
    "conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive",
    "max_pool_backward_naive", "conv_forward_fast", "conv_backward_fast",
    "max_pool_forward_fast", "max_pool_backward_fast", "spatial_batchnorm_forward",
    "spatial_batchnorm_backward", "conv_relu_forward", "conv_relu_backward",
    "conv_relu_pool_forward", "conv_relu_pool_backward",
]


class LayerCache:
    """What a `_forward` keeps in its cache: its inputs as leaf Tensors and its output Tensor,
    the graph recorded between them (not the engine's tape itself)."""

    __slots__ = ("inputs", "out")

    def __init__(self, inputs, out):
        self.inputs, self.out = inputs, out

    def backward(self, dout):
        """Gradients of sum(out * dout) w.r.t. each input, as a tuple of ndarrays.

        The graph is kept (retain_graph) so a backward may be called again with the same cache.
        """
        for t in self.inputs:
            t.grad = None
        self.out.backward(dout, retain_graph=True)
        return tuple(t.grad if t.grad is not None else np.zeros_like(t.data)
                     for t in self.inputs)


def _leaf(a):
    """A leaf Tensor sharing the memory of array `a`.

    Integer arrays become float64 copies: the course passes some (its spatial batch norm
    check uses `gamma = np.asarray([3, 4, 5])`) and numpy's arithmetic would promote them.
    """
    a = np.asarray(a)
    return Tensor(a if np.issubdtype(a.dtype, np.floating) else a.astype(np.float64),
                  requires_grad=True)


def _record(fn, *arrays):
    """Run `fn` on leaf Tensors wrapping `arrays`; returns (output array, LayerCache)."""
    leaves = tuple(_leaf(a) for a in arrays)
    with enable_grad():
        out = fn(*leaves)
    return out.data, LayerCache(leaves, out)


# ---- affine and relu ---------------------------------------------------------------------------
def affine_forward(x, w, b):
    """out = x.reshape(N, D) @ w + b for x (N, d1, ..., dk), w (D, M), b (M,)."""
    return _record(F.affine, x, w, b)


def affine_backward(dout, cache):
    """Returns (dx, dw, db), dx shaped like x."""
    return cache.backward(dout)


def relu_forward(x):
    """out = max(x, 0)."""
    return _record(F.relu, x)


def relu_backward(dout, cache):
    """Returns dx."""
    return cache.backward(dout)[0]


def affine_relu_forward(x, w, b):
    """out = relu(affine(x, w, b))."""
    return _record(lambda x, w, b: F.relu(F.affine(x, w, b)), x, w, b)


def affine_relu_backward(dout, cache):
    """Returns (dx, dw, db)."""
    return cache.backward(dout)


# ---- losses ------------------------------------------------------------------------------------
def _loss(fn, x, y):
    x = _leaf(x)
    with enable_grad():
        loss = fn(x, y)
    loss.backward()
    return loss.item(), x.grad


def softmax_loss(x, y):
    """Mean softmax cross-entropy of scores x (N, C) with labels y (N,): returns (loss, dx)."""
    return _loss(F.softmax_cross_entropy, x, y)


def svm_loss(x, y):
    """Mean multiclass hinge loss (margin 1, correct class excluded): returns (loss, dx)."""
    return _loss(F.svm_loss, x, y)


# ---- normalisation -----------------------------------------------------------------------------
class BatchNormCache:
    """batchnorm_forward's cache: the fused op's recorded graph (`fused`), and the composite
    twin's graph on the same leaves (`composite()`), recorded when first asked for."""

    __slots__ = ("fused", "_settings", "_composite")

    def __init__(self, fused, settings):
        self.fused, self._settings, self._composite = fused, settings, None

    def composite(self):
        """The twin's graph: the forward call replayed op by op (mean, var, sqrt, ...) on the
        saved leaves, with settings snapshotted at forward time, so the dict's running
        statistics are neither read again nor updated a second time."""
        if self._composite is None:
            with enable_grad(), use_fused(False):
                out = self._settings.batch_norm(*self.fused.inputs)
            self._composite = LayerCache(self.fused.inputs, out)
        return self._composite


def batchnorm_forward(x, gamma, beta, bn_param):
    """Batch norm of x (N, D): returns (out, cache).

    bn_param: 'mode' ('train' | 'test'), optional 'eps' (1e-5), 'momentum' (0.9),
    'running_mean' / 'running_var' (created as zeros on first use, updated in place in train
    mode: running = momentum * running + (1 - momentum) * batch statistic). Train mode uses the
    batch mean and biased variance, test mode the running statistics.

    The output and the running-statistics update come from the fused op, whose graph is the
    only one recorded here; `batchnorm_backward` records the composite twin's when called.
    """
    leaves = tuple(_leaf(a) for a in (x, gamma, beta))
    settings = read_bn_param(bn_param, leaves[0], "batchnorm_forward")
    replay = settings.snapshot()
    # NOTE: in test mode the fused op keeps the statistics it normalised with for its
    # backward; it gets the snapshot's copies, so a later train-mode call on the same bn_param
    # (which updates the dict's arrays in place) cannot change this call's gradients.
    with enable_grad(), use_fused(True):
        out = (settings if settings.training else replay).batch_norm(*leaves)
    return out.data, BatchNormCache(LayerCache(leaves, out), replay)


def batchnorm_backward(dout, cache):
    """Returns (dx, dgamma, dbeta), backpropagated op by op through the composite graph."""
    return cache.composite().backward(dout)


def batchnorm_backward_alt(dout, cache):
    """Returns (dx, dgamma, dbeta) from the fused op's closed-form backward (the faster one)."""
    return cache.fused.backward(dout)


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Batch norm of x (N, C, H, W) per channel over N, H and W (fused op); returns (out, cache).

    bn_param as for `batchnorm_forward`, with running statistics of shape (C,).
    """
    if np.ndim(x) != 4:
        raise ValueError(f"spatial_batchnorm_forward: x must be (N, C, H, W), got {np.shape(x)}")

    def bn(x, gamma, beta):
        return read_bn_param(bn_param, x, "spatial_batchnorm_forward").batch_norm(x, gamma, beta)

    with use_fused(True):
        return _record(bn, x, gamma, beta)


def spatial_batchnorm_backward(dout, cache):
    """Returns (dx, dgamma, dbeta)."""
    return cache.backward(dout)


def layernorm_forward(x, gamma, beta, ln_param):
    """Layer norm of x (N, D) over each sample's features; ln_param: optional 'eps' (1e-5).

    The same in train and test mode. Returns (out, cache).
    """
    validate.param_dict("layernorm_forward", "ln_param", ln_param)
    eps = validate.number("layernorm_forward", "ln_param['eps']", ln_param.get("eps", 1e-5),
                          "> 0")
    return _record(lambda x, g, b: F.layer_norm(x, g, b, eps), x, gamma, beta)


def layernorm_backward(dout, cache):
    """Returns (dx, dgamma, dbeta)."""
    return cache.backward(dout)


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """Group norm of x (N, C, H, W): each sample's C channels in G groups of C / G, each
    normalised over its channels and positions, then per-channel gamma and beta, shaped
    (1, C, 1, 1) as the course has them ((C,) works too). gn_param: optional 'eps' (1e-5).
    The same in train and test mode. Returns (out, cache)."""
    owner = "spatial_groupnorm_forward"
    validate.param_dict(owner, "gn_param", gn_param)
    eps = validate.number(owner, "gn_param['eps']", gn_param.get("eps", 1e-5), "> 0")
    G = validate.size(owner, "G", G)
    if np.ndim(x) != 4 or np.shape(x)[1] % G:
        raise ValueError(f"{owner}: x must be (N, C, H, W) with C divisible by G={G}, got "
                         f"{np.shape(x)}")
    c = np.shape(x)[1]
    for name, p in (("gamma", gamma), ("beta", beta)):
        if np.shape(p) not in ((1, c, 1, 1), (c,)):
            raise ValueError(f"{owner}: {name} must have shape (1, {c}, 1, 1), got "
                             f"{np.shape(p)}")

    def gn(x, gamma, beta):
        return F.group_norm(x, G, at_reshape(gamma, (c,)), at_reshape(beta, (c,)), eps)

    return _record(gn, x, gamma, beta)


def spatial_groupnorm_backward(dout, cache):
    """Returns (dx, dgamma, dbeta), dgamma and dbeta shaped like gamma and beta."""
    return cache.backward(dout)


# ---- dropout -----------------------------------------------------------------------------------
def dropout_forward(x, dropout_param):
    """Inverted dropout; returns (out, cache).

    dropout_param: 'p' the KEEP probability (the course's convention), 'mode' ('train' |
    'test'), optional 'seed': numpy's global RNG is reseeded with it on every call, in both
    modes, as the course does, so the mask repeats. Test mode returns x unchanged.
    """
    validate.param_dict("dropout_forward", "dropout_param", dropout_param, ("p", "mode"))
    keep, mode = dropout_param["p"], dropout_param["mode"]
    validate.probability("dropout_forward", "dropout_param['p']", keep, "the keep probability")
    validate.choice("dropout_forward", "dropout_param['mode']", mode, ("train", "test"))
    seed = validate.seed("dropout_forward", "dropout_param['seed']", dropout_param.get("seed"))
    return _record(lambda x: F.dropout_keep(x, keep, mode == "train", seed), x)


def dropout_backward(dout, cache):
    """Returns dx."""
    return cache.backward(dout)[0]


# ---- convolution and pooling (fast: the fused ops) ---------------------------------------------
def _conv(x, w, b, conv_param):
    return F.conv2d(x, w, b, stride=conv_param["stride"], pad=conv_param["pad"])


def _pool(x, pool_param):
    ph, pw = pool_param["pool_height"], pool_param["pool_width"]
    return F.max_pool2d(x, ph if ph == pw else (ph, pw), pool_param["stride"])


def _check_conv(owner, x, w, b, conv_param):
    validate.param_dict(owner, "conv_param", conv_param, ("stride", "pad"))
    conv_output_shape(np.shape(x), np.shape(w), conv_param["stride"], conv_param["pad"],
                      np.shape(b))


def _check_pool(owner, x, pool_param):
    validate.param_dict(owner, "pool_param", pool_param, ("pool_height", "pool_width", "stride"))
    pool_output_shape(np.shape(x), pool_param["pool_height"], pool_param["pool_width"],
                      pool_param["stride"])


def conv_forward_fast(x, w, b, conv_param):
    """The naive convolution's contract, computed by the fused conv2d; returns (out, cache)."""
    _check_conv("conv_forward_fast", x, w, b, conv_param)
    with use_fused(True):
        return _record(lambda x, w, b: _conv(x, w, b, conv_param), x, w, b)


def conv_backward_fast(dout, cache):
    """Returns (dx, dw, db)."""
    return cache.backward(dout)


def max_pool_forward_fast(x, pool_param):
    """The naive max pool's contract, computed by the fused max_pool2d; returns (out, cache)."""
    _check_pool("max_pool_forward_fast", x, pool_param)
    with use_fused(True):
        return _record(lambda x: _pool(x, pool_param), x)


def max_pool_backward_fast(dout, cache):
    """Returns dx."""
    return cache.backward(dout)[0]


def conv_relu_forward(x, w, b, conv_param):
    """out = relu(conv(x, w, b)); returns (out, cache)."""
    _check_conv("conv_relu_forward", x, w, b, conv_param)
    with use_fused(True):
        return _record(lambda x, w, b: F.relu(_conv(x, w, b, conv_param)), x, w, b)


def conv_relu_backward(dout, cache):
    """Returns (dx, dw, db)."""
    return cache.backward(dout)


def conv_relu_pool_forward(x, w, b, conv_param, pool_param):
    """out = max_pool(relu(conv(x, w, b))); returns (out, cache)."""
    _check_conv("conv_relu_pool_forward", x, w, b, conv_param)
    validate.param_dict("conv_relu_pool_forward", "pool_param", pool_param,
                        ("pool_height", "pool_width", "stride"))
    with use_fused(True):
        return _record(lambda x, w, b: _pool(F.relu(_conv(x, w, b, conv_param)), pool_param),
                       x, w, b)


def conv_relu_pool_backward(dout, cache):
    """Returns (dx, dw, db)."""
    return cache.backward(dout)
