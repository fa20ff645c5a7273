"""Normalisation: the modules with PyTorch's semantics, and the course's `bn_param` dicts.

Modules (PyTorch's names, arguments, parameters and buffers, so state_dicts carry over):
`BatchNorm1d`, `BatchNorm2d` (the fused batch-norm op underneath), `LayerNorm`, `GroupNorm`.
Batch norm keeps PyTorch's running statistics: buffers `running_mean` (zeros), `running_var`
(ones) and `num_batches_tracked`, updated in training as
`running = (1 - momentum) * running + momentum * batch` (momentum 0.1) with the UNBIASED
batch variance; `momentum=None` keeps a cumulative average instead. The course's convention
(momentum 0.9 on the old value, biased variance, zeros to start) stays in `F.batch_norm`,
`nn.layers` and `nn.models`; docs/nn.md sets the two side by side.

The course's `bn_param` dicts (nn.layers' batch norms, nn.models' `bn_params` lists) are read,
switched between modes and named in checkpoints by the helpers at the end of this file, and
nowhere else.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from autotensor import ops, validate
from autotensor.tensor import _tensor

from . import functional as F
from .module import Module, Parameter


class _BatchNorm(Module):
    ranks = ()            # the input ranks the subclass accepts
    shapes = ""           # ... as the error message names them
    # Before 2026-12-03 the modules kept the course's names and no batch count.
    _old_key_names = {"gamma": "weight", "beta": "bias"}
    _keys_added_since = ("num_batches_tracked",)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float64):
        super().__init__()
        name = type(self).__name__
        self.num_features = validate.size(name, "num_features", num_features)
        self.eps = float(validate.number(name, "eps", eps, "> 0"))
        if momentum is not None:
            validate.number(name, "momentum", momentum, "in [0, 1]")
        self.momentum = momentum
        self.affine = _flag(name, "affine", affine)
        self.track_running_stats = _flag(name, "track_running_stats", track_running_stats)
        c = self.num_features
        self.register_parameter("weight", Parameter(np.ones(c, dtype)) if self.affine else None)
        self.register_parameter("bias", Parameter(np.zeros(c, dtype)) if self.affine else None)
        tracked = self.track_running_stats
        self.register_buffer("running_mean", np.zeros(c, dtype=dtype) if tracked else None)
        self.register_buffer("running_var", np.ones(c, dtype=dtype) if tracked else None)
        self.register_buffer("num_batches_tracked", np.array(0, np.int64) if tracked else None)

    def forward(self, x):
        x = _tensor(x)
        shape = tuple(x.shape)
        if len(shape) not in self.ranks or shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected input "
                             f"{self.shapes} with {self.num_features} features on axis 1, got "
                             f"{shape}")
        if len(shape) == 3:           # (N, C, L): the fused op's spatial form, (N, C, L, 1)
            return ops.reshape(self._normalize(ops.reshape(x, shape + (1,))), shape)
        return self._normalize(x)

    def _normalize(self, x):
        """Batch norm of x (N, C) or (N, C, H, W), updating the buffers as PyTorch does."""
        c = self.num_features
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
        weight = self.weight if self.affine else np.ones(c, dtype=dtype)
        bias = self.bias if self.affine else np.zeros(c, dtype=dtype)
        if not self.training and self.running_mean is not None:
            return F.batch_norm(x, weight, bias, self.running_mean, self.running_var,
                                training=False, eps=self.eps)
        count = int(np.prod(x.shape)) // c              # values per channel in this batch
        if count < 2:
            raise ValueError(f"{type(self).__name__}: expected more than 1 value per channel "
                             f"when training, got input of shape {tuple(x.shape)}")
        if self.running_mean is None:     # track_running_stats=False: batch statistics only
            return F.batch_norm(x, weight, bias, training=True, eps=self.eps)
        # NOTE: momentum 0 in the course's convention makes the fused op hand back the batch
        # mean and the BIASED batch variance in these arrays; PyTorch's update follows.
        mean, var = np.zeros(c), np.zeros(c)
        out = F.batch_norm(x, weight, bias, mean, var, training=True, momentum=0.0,
                           eps=self.eps)
        self.num_batches_tracked[...] += 1
        m = (1.0 / float(self.num_batches_tracked) if self.momentum is None
             else float(self.momentum))
        self.running_mean[...] = (1.0 - m) * self.running_mean + m * mean
        self.running_var[...] = (1.0 - m) * self.running_var + m * var * (count / (count - 1))
        return out

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L): per-channel statistics over N (and L)."""

    ranks, shapes = (2, 3), "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Spatial batch norm over (N, C, H, W): per-channel statistics over N, H and W."""

    ranks, shapes = (4,), "(N, C, H, W)"


class LayerNorm(Module):
    """Normalise each sample over its trailing `normalized_shape` axes; same in train and eval.

    normalized_shape: an int or a tuple of ints, the last dimensions of the input. Parameters
    `weight` (ones) and `bias` (zeros) of that shape, unless elementwise_affine=False (neither)
    or bias=False (no bias).
    """

    _old_key_names = {"gamma": "weight", "beta": "bias"}     # before 2026-12-03

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 dtype=np.float64):
        super().__init__()
        self.normalized_shape = F.normalized_shape_of("LayerNorm", normalized_shape)
        self.eps = float(validate.number("LayerNorm", "eps", eps, "> 0"))
        self.elementwise_affine = _flag("LayerNorm", "elementwise_affine", elementwise_affine)
        with_bias = _flag("LayerNorm", "bias", bias)
        shape = self.normalized_shape
        affine = self.elementwise_affine
        self.register_parameter("weight", Parameter(np.ones(shape, dtype)) if affine else None)
        self.register_parameter("bias", Parameter(np.zeros(shape, dtype))
                                if affine and with_bias else None)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class GroupNorm(Module):
    """Split the channels of (N, C, *) into num_groups groups; normalise each sample's group.

    Parameters `weight` (ones) and `bias` (zeros) of shape (num_channels,) unless affine=False.
    Same in train and eval.
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype=np.float64):
        super().__init__()
        self.num_groups = validate.size("GroupNorm", "num_groups", num_groups)
        self.num_channels = validate.size("GroupNorm", "num_channels", num_channels)
        if self.num_channels % self.num_groups:
            raise ValueError(f"GroupNorm: num_channels ({self.num_channels}) must be divisible "
                             f"by num_groups ({self.num_groups})")
        self.eps = float(validate.number("GroupNorm", "eps", eps, "> 0"))
        self.affine = _flag("GroupNorm", "affine", affine)
        c = self.num_channels
        self.register_parameter("weight", Parameter(np.ones(c, dtype)) if self.affine else None)
        self.register_parameter("bias", Parameter(np.zeros(c, dtype)) if self.affine else None)

    def forward(self, x):
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


def _flag(owner, name, value):
    """A bool argument (numpy bools too); anything else is refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{owner}: {name} must be True or False, got {value!r}")
    return bool(value)

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
