"""Batch-norm state: the normalisation modules and the course's `bn_param` dicts.

Modules: `BatchNorm1d`, `BatchNorm2d` (fused fast path) and `LayerNorm`. Batch norm keeps
running statistics as buffers (saved in state_dict, not trained), starting at mean 0 and
variance 1, and updates them in training with the course's convention
`running = momentum * running + (1 - momentum) * batch` (momentum 0.9, biased batch variance).
Evaluation mode normalises with the running statistics.

The course's `bn_param` dicts (nn.layers' batch norms, nn.models' `bn_params` lists) are read,
switched between modes and named in checkpoints by the helpers at the end of this file, and
nowhere else.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from autotensor import validate

from . import functional as F
from .module import Module, Parameter


class _BatchNorm(Module):
    ndim = None           # the input rank the subclass accepts

    def __init__(self, num_features, eps=1e-5, momentum=0.9, dtype=np.float64):
        super().__init__()
        name = type(self).__name__
        self.num_features = validate.size(name, "num_features", num_features)
        self.eps = float(validate.number(name, "eps", eps, "> 0"))
        self.momentum = validate.number(name, "momentum", momentum, "in [0, 1]")
        self.gamma = Parameter(np.ones(self.num_features, dtype=dtype))
        self.beta = Parameter(np.zeros(self.num_features, dtype=dtype))
        self.register_buffer("running_mean", np.zeros(self.num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(self.num_features, dtype=dtype))

    def forward(self, x):
        if x.ndim != self.ndim or x.shape[1] != self.num_features:
            want = "(N, C, H, W)" if self.ndim == 4 else "(N, D)"
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected input "
                             f"{want} with {self.num_features} features on axis 1, got "
                             f"{x.shape}")
        return F.batch_norm(x, self.gamma, self.beta, self.running_mean, self.running_var,
                            training=self.training, momentum=self.momentum, eps=self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, D): per-feature statistics over the batch."""

    ndim = 2


class BatchNorm2d(_BatchNorm):
    """Spatial batch norm over (N, C, H, W): per-channel statistics over N, H and W."""

    ndim = 4


class LayerNorm(Module):
    """Normalise each sample over its last axis (num_features wide); the same in train and eval."""

    def __init__(self, num_features, eps=1e-5, dtype=np.float64):
        super().__init__()
        self.num_features = validate.size("LayerNorm", "num_features", num_features)
        self.eps = float(validate.number("LayerNorm", "eps", eps, "> 0"))
        self.gamma = Parameter(np.ones(self.num_features, dtype=dtype))
        self.beta = Parameter(np.zeros(self.num_features, dtype=dtype))

    def forward(self, x):
        return F.layer_norm(x, self.gamma, self.beta, self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}"


# ---- the course's bn_param dict ----------------------------------------------------------------
class BatchNormParam(NamedTuple):
    """What one course `bn_param` dict asks of a batch-norm call (see `read_bn_param`)."""

    training: bool
    momentum: float
    eps: float
    running_mean: np.ndarray | None
    running_var: np.ndarray | None

    def batch_norm(self, x, gamma, beta):
        """F.batch_norm with these settings; train mode updates the running statistics."""
        return F.batch_norm(x, gamma, beta, self.running_mean, self.running_var,
                            training=self.training, momentum=self.momentum, eps=self.eps)

    def snapshot(self):
        """These settings for replaying the call later without touching the dict's statistics:
        none in train mode (the batch statistics are used), copies in test mode."""
        if self.training:
            return self._replace(running_mean=None, running_var=None)
        return self._replace(running_mean=self.running_mean.copy(),
                             running_var=self.running_var.copy())


def read_bn_param(bn_param, x, caller):
    """The settings in the course's `bn_param` dict for a batch norm of x (features on axis 1).

    bn_param: 'mode' ('train' | 'test'; 'train' when absent), optional 'eps' (1e-5) and
    'momentum' (0.9), 'running_mean' / 'running_var': created as zeros of x's dtype and stored
    in the dict on first use. The running statistics are then updated in place by
    `BatchNormParam.batch_norm`, so the dict always holds the current ones (the course writes
    them back after each call). `caller` names the function in error messages.
    """
    validate.param_dict(caller, "bn_param", bn_param)
    mode = validate.choice(caller, "bn_param['mode']", bn_param.get("mode", "train"),
                           ("train", "test"))
    momentum = validate.number(caller, "bn_param['momentum']", bn_param.get("momentum", 0.9),
                               "in [0, 1]")
    eps = validate.number(caller, "bn_param['eps']", bn_param.get("eps", 1e-5), "> 0")
    if x.ndim < 2:
        raise ValueError(f"{caller}: x must have a batch axis and a feature axis, got {x.shape}")
    d = x.shape[1]
    running_mean = bn_param.setdefault("running_mean", np.zeros(d, dtype=x.dtype))
    running_var = bn_param.setdefault("running_var", np.zeros(d, dtype=x.dtype))
    return BatchNormParam(mode == "train", momentum, eps, running_mean, running_var)


def new_bn_params(n):
    """A model's `bn_params` list: n dicts in train mode, running statistics not yet created."""
    return [{"mode": "train"} for _ in range(n)]


def set_bn_mode(bn_params, mode):
    """Put every dict of a model's `bn_params` list in `mode` ('train' | 'test')."""
    for bn_param in bn_params:
        bn_param["mode"] = mode


def bn_buffers(bn_params):
    """{'bn_params.{i}.{key}': ndarray} for every array in a list of `bn_param` dicts.

    These are the live arrays (running statistics), not copies, under the names checkpoints
    store them by. Entries that are not dicts are skipped.
    """
    return {f"bn_params.{i}.{key}": value
            for i, bn_param in enumerate(bn_params) if isinstance(bn_param, dict)
            for key, value in bn_param.items() if isinstance(value, np.ndarray)}


def load_bn_buffers(bn_params, arrays, params=None):
    """Put `arrays` (named as `bn_buffers` names them) into the `bn_param` dicts.

    An array a dict already holds is overwritten in place (same shape; a real dtype that casts
    to its own within its kind, which is kept); a name it does not hold yet is added as a copy,
    since the running statistics appear only on the first training call. Such a new name must
    be `bn_params.{i}.running_mean` or `.running_var` of a dict in the list, a 1-d float array
    shaped like its sibling and, when the model's `params` are given, like `gamma{i+1}` (the
    course's models pair bn_params[i] with gamma{i+1}). Every array the dicts hold must be
    given. Everything is checked before anything is assigned: a mismatch raises ValueError
    naming the buffer and changes nothing.
    """
    current = bn_buffers(bn_params)
    missing = sorted(set(current) - set(arrays))
    if missing:
        raise ValueError(f"the buffers {sorted(arrays)} differ from the model's "
                         f"{sorted(current)} (missing {missing})")
    added = {}
    for name, a in arrays.items():
        dtype = np.asarray(a).dtype
        if name in current:
            if np.shape(a) != current[name].shape:
                raise ValueError(f"buffer {name!r} has shape {np.shape(a)}, the model's has "
                                 f"shape {current[name].shape}")
            if dtype.kind not in "biuf" or not np.can_cast(dtype, current[name].dtype,
                                                           "same_kind"):
                raise ValueError(f"buffer {name!r} has dtype {dtype}, which does not cast to "
                                 f"the model's {current[name].dtype}")
            continue
        if dtype.kind != "f":
            raise ValueError(f"buffer {name!r} has dtype {dtype}, running statistics are "
                             "floating point")
        parts = name.split(".", 2) if isinstance(name, str) else []
        i = int(parts[1]) if len(parts) == 3 and parts[1].isdecimal() else -1
        if (not 0 <= i < len(bn_params) or not isinstance(bn_params[i], dict)
                or name != f"bn_params.{i}.{parts[2]}"
                or parts[2] not in ("running_mean", "running_var")):
            raise ValueError(f"buffer {name!r} does not exist in the model")
        sibling = f"bn_params.{i}.running_{'var' if parts[2] == 'running_mean' else 'mean'}"
        # The shape to match: the sibling the dict holds, else gamma{i+1}, else the sibling given.
        like = (current.get(sibling), (params or {}).get(f"gamma{i + 1}"), arrays.get(sibling))
        want = next((np.shape(b) for b in like if b is not None), None)
        if np.ndim(a) != 1 or (want is not None and np.shape(a) != want):
            raise ValueError(f"buffer {name!r} has shape {np.shape(a)}, the model expects "
                             f"{want or 'a 1-d array'} (like {sibling!r} and gamma{i + 1})")
        added[name] = (i, parts[2])
    for name, a in arrays.items():
        if name in current:
            current[name][...] = a
        else:
            i, key = added[name]
            bn_params[i][key] = np.array(a, copy=True)
