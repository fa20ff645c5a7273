"""The course's networks, with gradients from the tape: `model.loss(X, y)` calls `backward()`.

Each model keeps `params`, a dict of ndarrays (W1, b1, ..., gamma1, beta1, ...), exactly as
the course's do, so the course's Solver and update rules work on them. `loss` wraps every
array in a leaf Tensor (sharing memory, no copy), computes the forward pass with
`nn.functional`, calls `loss.backward()` and returns the leaves' `.grad` keyed like `params`.

Initialisation follows the course draw for draw: layer by layer, W before b, weights
`weight_scale * np.random.randn(fan_in, fan_out)` from numpy's global RNG, biases and betas
zero, gammas one. So `np.random.seed(231)` before building gives the course's numbers.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np

from autotensor import Tensor, no_grad, validate
from autotensor import sum as at_sum
from autotensor.fused.geometry import pool2d_output_shape

from . import functional as F
from .normalization import (
    bn_buffers,
    load_bn_buffers,
    new_bn_params,
    read_bn_param,
    set_bn_mode,
)

__all__ = ["TwoLayerNet", "FullyConnectedNet", "ThreeLayerConvNet", "two_layer_net",
           "init_two_layer_model"]


def _leaves(params):
    """Each params array as a leaf Tensor sharing its memory."""
    return {k: Tensor(v, requires_grad=True) for k, v in params.items()}


def _l2(p, names, reg):
    """0.5 * reg * sum of squares of the named weights (biases, gammas, betas excluded)."""
    total = None
    for k in names:
        term = at_sum(p[k] * p[k])
        total = term if total is None else total + term
    return total * (0.5 * float(reg))


def _check_y(fn, X, y, num_classes):
    """Bad labels raise before the forward pass, which would update batch-norm statistics."""
    if y is not None:
        F.check_labels(fn, (np.shape(X)[0] if np.ndim(X) else 0, num_classes), y)


def _finish(scores, y, p, weight_names, reg):
    """Data loss + L2 term, backward, and (loss, grads keyed like params)."""
    loss = F.softmax_cross_entropy(scores, y)
    if reg:
        loss = loss + _l2(p, weight_names, reg)
    loss.backward()
    grads = {k: t.grad if t.grad is not None else np.zeros_like(t.data) for k, t in p.items()}
    return loss.item(), grads


def _check_init(owner, weight_scale, reg, sizes):
    """The arguments every model constructor shares: {name: size} and two numbers >= 0."""
    for name, value in sizes.items():
        validate.size(owner, name, value)
    validate.number(owner, "weight_scale", weight_scale, ">= 0")
    validate.number(owner, "reg", reg, ">= 0")


def _bn(h, p, i, bn_param, caller):
    """Batch norm of layer i as the course's bn_param dict asks (its running stats updated)."""
    return read_bn_param(bn_param, h, caller).batch_norm(h, p[f"gamma{i}"], p[f"beta{i}"])


class _BatchNormBuffers:
    """The running statistics in a model's `bn_params` dicts, as the Solver checkpoints them."""

    @property
    def buffers(self):
        """{'bn_params.{i}.running_mean': ndarray, ...}: the live arrays, not copies."""
        return bn_buffers(self.bn_params)

    def load_buffers(self, arrays):
        """Set the running statistics from `arrays`, named as `buffers` names them (a name not
        there yet, before the first training call, is added). Checked before anything is
        assigned: a mismatch raises ValueError and changes nothing."""
        load_bn_buffers(self.bn_params, arrays, self.params)


class TwoLayerNet:
    """affine - relu - affine - softmax, with the course's constructor and `loss` contract.

    params: W1 (input_dim, hidden_dim), b1, W2 (hidden_dim, num_classes), b2; float64.
    """

    def __init__(self, input_dim=3 * 32 * 32, hidden_dim=100, num_classes=10, weight_scale=1e-3,
                 reg=0.0):
        _check_init("TwoLayerNet", weight_scale, reg, {"input_dim": input_dim,
                                                       "hidden_dim": hidden_dim,
                                                       "num_classes": num_classes})
        self.reg = reg
        ws = float(weight_scale)
        self.params = {
            "W1": ws * np.random.randn(input_dim, hidden_dim), "b1": np.zeros(hidden_dim),
            "W2": ws * np.random.randn(hidden_dim, num_classes), "b2": np.zeros(num_classes),
        }

    def loss(self, X, y=None):
        """Scores (N, C) when y is None; else (loss, grads) with grads keyed like params."""
        _check_y("TwoLayerNet.loss", X, y, self.params["W2"].shape[1])
        p = _leaves(self.params)
        with no_grad() if y is None else nullcontext():
            scores = F.affine(F.relu(F.affine(X, p["W1"], p["b1"])), p["W2"], p["b2"])
        if y is None:
            return scores.data
        return _finish(scores, y, p, ("W1", "W2"), self.reg)


def _legacy_spellings(owner, keep, normalization, dropout, use_batchnorm):
    """(dropout_keep_ratio, normalization) from today's names or the course's older ones.

    `dropout=` is what the 2016-2019 course models passed on as `dropout_param['p']`, which
    this package's `dropout_forward` reads as the KEEP probability (the course's meaning from
    2018 on, when 1 meant no dropout). 0 also means no dropout: the 2016-2017 default, when a
    keep probability of 0 made no sense anyway. (2016-2017 read 'p' as the DROP probability:
    such code's dropout=q is dropout=1 - q here.) `use_batchnorm=True` is
    normalization='batchnorm'. A name and its older spelling both given (today's counted as
    given when it differs from its default) is a ValueError.
    """
    if dropout is not None:
        if keep != 1:
            raise ValueError(f"{owner}: give dropout_keep_ratio or the older dropout, not both "
                             f"(got dropout_keep_ratio={keep!r}, dropout={dropout!r})")
        validate.number(owner, "dropout", dropout, "in [0, 1]", "the keep probability; 0 or 1: "
                        "no dropout")
        keep = 1 if dropout == 0 else dropout
    if use_batchnorm is not None:
        if normalization is not None:
            raise ValueError(f"{owner}: give normalization or the older use_batchnorm, not both "
                             f"(got normalization={normalization!r}, "
                             f"use_batchnorm={use_batchnorm!r})")
        if not isinstance(use_batchnorm, (bool, np.bool_)):
            raise ValueError(f"{owner}: use_batchnorm must be True or False, got "
                             f"{use_batchnorm!r}")
        normalization = "batchnorm" if use_batchnorm else None
    return keep, normalization


class FullyConnectedNet(_BatchNormBuffers):
    """{affine - [batch/layer norm] - relu - [dropout]} x (L - 1) - affine - softmax.

    hidden_dims: list of hidden sizes; dropout_keep_ratio: the KEEP probability (1 means no
    dropout); normalization: None, 'batchnorm' or 'layernorm'. The course's older spellings are
    accepted by keyword instead: `dropout` (2016-2019) = the keep probability, with 0 and 1 both
    meaning no dropout, and `use_batchnorm` (2016-2017) = True for 'batchnorm' (see
    `_legacy_spellings`). seed: when given, every dropout
    layer reseeds numpy's global RNG with it, as the course does, so the masks repeat on every
    call (for gradient checks) and later global draws are the course's too. params are cast to
    `dtype`, and so is X in `loss`, so a float32 model computes in float32 throughout.
    """

    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10, dropout_keep_ratio=1,
                 normalization=None, reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=None, *,
                 dropout=None, use_batchnorm=None):
        owner = "FullyConnectedNet"
        dropout_keep_ratio, normalization = _legacy_spellings(
            owner, dropout_keep_ratio, normalization, dropout, use_batchnorm)
        validate.choice(owner, "normalization", normalization, (None, "batchnorm", "layernorm"))
        validate.number(owner, "dropout_keep_ratio", dropout_keep_ratio, "in (0, 1]")
        validate.seed(owner, "seed", seed)
        if not isinstance(hidden_dims, (list, tuple, np.ndarray)):
            raise ValueError(f"{owner}: hidden_dims must be a list of sizes, got "
                             f"{hidden_dims!r}")
        _check_init(owner, weight_scale, reg, {
            "input_dim": input_dim, "num_classes": num_classes,
            **{f"hidden_dims[{i}]": d for i, d in enumerate(hidden_dims)}})
        self.normalization = normalization
        self.use_dropout = dropout_keep_ratio != 1
        self.reg = reg
        self.num_layers = 1 + len(hidden_dims)
        self.dtype = dtype
        self.params = {}
        dims = [input_dim, *hidden_dims, num_classes]
        ws = float(weight_scale)
        for i in range(1, self.num_layers + 1):
            self.params[f"W{i}"] = ws * np.random.randn(dims[i - 1], dims[i])
            self.params[f"b{i}"] = np.zeros(dims[i])
            if normalization and i < self.num_layers:
                self.params[f"gamma{i}"] = np.ones(dims[i])
                self.params[f"beta{i}"] = np.zeros(dims[i])

        # Course-compatible state: notebooks read and set these dicts (e.g. bn_params[i]['mode']);
        # the Solver checkpoints their arrays through `buffers` / `load_buffers`.
        self.dropout_param = {}
        if self.use_dropout:
            self.dropout_param = {"mode": "train", "p": dropout_keep_ratio}
            if seed is not None:
                self.dropout_param["seed"] = seed
        self.bn_params = []
        if normalization == "batchnorm":
            self.bn_params = new_bn_params(self.num_layers - 1)
        elif normalization == "layernorm":
            self.bn_params = [{} for _ in range(self.num_layers - 1)]

        for k, v in self.params.items():
            self.params[k] = v.astype(dtype)

    def loss(self, X, y=None):
        """Scores (N, C) when y is None (test mode); else (loss, grads) in train mode."""
        X = np.asarray(X).astype(self.dtype, copy=False)
        _check_y("FullyConnectedNet.loss", X, y, self.params[f"W{self.num_layers}"].shape[1])
        mode = "test" if y is None else "train"
        if self.use_dropout:
            self.dropout_param["mode"] = mode
        if self.normalization == "batchnorm":
            set_bn_mode(self.bn_params, mode)
        p = _leaves(self.params)
        with no_grad() if y is None else nullcontext():
            h = X
            for i in range(1, self.num_layers):
                h = F.affine(h, p[f"W{i}"], p[f"b{i}"])
                if self.normalization == "batchnorm":
                    h = _bn(h, p, i, self.bn_params[i - 1], "FullyConnectedNet.loss")
                elif self.normalization == "layernorm":
                    h = F.layer_norm(h, p[f"gamma{i}"], p[f"beta{i}"],
                                     self.bn_params[i - 1].get("eps", 1e-5))
                h = F.relu(h)
                if self.use_dropout:
                    h = F.dropout_keep(h, self.dropout_param["p"], mode == "train",
                                       self.dropout_param.get("seed"))
            L = self.num_layers
            scores = F.affine(h, p[f"W{L}"], p[f"b{L}"])
        if y is None:
            return scores.data
        weights = [f"W{i}" for i in range(1, self.num_layers + 1)]
        return _finish(scores, y, p, weights, self.reg)


class ThreeLayerConvNet(_BatchNormBuffers):
    """conv - [spatial bn] - relu - 2x2 max pool - affine - [bn] - relu - affine - softmax.

    The conv keeps the spatial size for odd filter sizes (stride 1, pad (filter_size - 1) // 2).
    params: W1 (num_filters, C, filter_size, filter_size), b1, W2 (num_filters * H' * W',
    hidden_dim), b2, W3 (hidden_dim, num_classes), b3, plus gamma1/beta1 (num_filters) and
    gamma2/beta2 (hidden_dim) with use_batchnorm. Cast to `dtype`, as X is in `loss`.
    """

    def __init__(self, input_dim=(3, 32, 32), num_filters=32, filter_size=7, hidden_dim=100,
                 num_classes=10, weight_scale=1e-3, reg=0.0, dtype=np.float32,
                 use_batchnorm=False):
        owner = "ThreeLayerConvNet"
        if not isinstance(input_dim, (tuple, list)) or len(input_dim) != 3:
            raise ValueError(f"{owner}: input_dim must be a (C, H, W) triple of sizes, got "
                             f"{input_dim!r}")
        _check_init(owner, weight_scale, reg, {
            **{f"input_dim[{i}]": d for i, d in enumerate(input_dim)}, "num_filters": num_filters,
            "filter_size": filter_size, "hidden_dim": hidden_dim, "num_classes": num_classes})
        C, H, W = input_dim
        self.reg = reg
        self.dtype = dtype
        self.use_batchnorm = use_batchnorm
        self.conv_param = {"stride": 1, "pad": (filter_size - 1) // 2}
        self.pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
        pad = self.conv_param["pad"]
        hc, wc = H + 2 * pad - filter_size + 1, W + 2 * pad - filter_size + 1
        if hc < 2 or wc < 2:
            raise ValueError(f"ThreeLayerConvNet: filter_size {filter_size} leaves a {hc}x{wc} "
                             f"map for input {input_dim}, too small for 2x2 pooling")
        pooled = int(np.prod(pool2d_output_shape((num_filters, hc, wc), (2, 2), (2, 2))))
        ws = float(weight_scale)
        self.params = {
            "W1": ws * np.random.randn(num_filters, C, filter_size, filter_size),
            "b1": np.zeros(num_filters),
            "W2": ws * np.random.randn(pooled, hidden_dim), "b2": np.zeros(hidden_dim),
            "W3": ws * np.random.randn(hidden_dim, num_classes), "b3": np.zeros(num_classes),
        }
        self.bn_params = []
        if use_batchnorm:
            for i, d in ((1, num_filters), (2, hidden_dim)):
                self.params[f"gamma{i}"] = np.ones(d)
                self.params[f"beta{i}"] = np.zeros(d)
            self.bn_params = new_bn_params(2)
        for k, v in self.params.items():
            self.params[k] = v.astype(dtype)

    def loss(self, X, y=None):
        """Scores (N, C) when y is None (test mode); else (loss, grads) in train mode."""
        X = np.asarray(X).astype(self.dtype, copy=False)
        _check_y("ThreeLayerConvNet.loss", X, y, self.params["W3"].shape[1])
        mode = "test" if y is None else "train"
        set_bn_mode(self.bn_params, mode)
        p = _leaves(self.params)
        with no_grad() if y is None else nullcontext():
            h = F.conv2d(X, p["W1"], p["b1"], stride=1, pad=self.conv_param["pad"])
            if self.use_batchnorm:
                h = _bn(h, p, 1, self.bn_params[0], "ThreeLayerConvNet.loss")
            h = F.max_pool2d(F.relu(h), 2, 2)
            h = F.affine(h, p["W2"], p["b2"])
            if self.use_batchnorm:
                h = _bn(h, p, 2, self.bn_params[1], "ThreeLayerConvNet.loss")
            scores = F.affine(F.relu(h), p["W3"], p["b3"])
        if y is None:
            return scores.data
        return _finish(scores, y, p, ("W1", "W2", "W3"), self.reg)


# ---- the assignment-1 API ----------------------------------------------------------------------
def init_two_layer_model(input_size, hidden_size, output_size):
    """{'W1' (D, H), 'b1' (H,), 'W2' (H, C), 'b2' (C,)}: weights 1e-5 * randn, biases zero."""
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                        ("output_size", output_size)):
        validate.size("init_two_layer_model", name, value)
    return {
        "W1": 0.00001 * np.random.randn(input_size, hidden_size), "b1": np.zeros(hidden_size),
        "W2": 0.00001 * np.random.randn(hidden_size, output_size), "b2": np.zeros(output_size),
    }


def two_layer_net(X, model, y=None, reg=0.0):
    """input - affine - relu - affine - softmax on the dict `model` (W1, b1, W2, b2).

    Returns the scores (N, C) when y is None, else (loss, grads) with grads keyed like model;
    the loss includes 0.5 * reg * (sum(W1**2) + sum(W2**2)).
    """
    validate.number("two_layer_net", "reg", reg, ">= 0")
    _check_y("two_layer_net", X, y, np.shape(model["W2"])[1])
    p = _leaves({k: model[k] for k in ("W1", "b1", "W2", "b2")})
    with no_grad() if y is None else nullcontext():
        scores = F.affine(F.relu(F.affine(X, p["W1"], p["b1"])), p["W2"], p["b2"])
    if y is None:
        return scores.data
    return _finish(scores, y, p, ("W1", "W2"), reg)
