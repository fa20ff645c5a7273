"""Batch normalisation, (N, D) and spatial (N, C, H, W): the fused op and its composite twin.

Statistics are per feature (axis 0) or per channel (axes 0, 2, 3), reduced directly over
those axes (no transposes). Training mode normalises with the batch mean and the biased batch
variance and updates the running stats in place: running = momentum*running +
(1 - momentum)*batch_stat (the course's convention). Eval mode uses the running stats.
The closed-form backward is derived in docs/fused_ops.md.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..function import Function
from ..tensor import Tensor


def stat_axes(ndim):
    """Reduced axes and the broadcast shape of per-feature parameters."""
    return ((0,), (1, -1)) if ndim == 2 else ((0, 2, 3), (1, -1, 1, 1))


def update_running(running, momentum, batch_stat):
    """running = momentum*running + (1 - momentum)*batch_stat, in place (module buffers)."""
    if running is not None:
        running[...] = momentum * running + (1.0 - momentum) * batch_stat.reshape(running.shape)


class BatchNorm(Function):
    """out = gamma * (x - mean) / sqrt(var + eps) + beta

    Fused: two reductions in forward; backward is the simplified closed form
    dx = gamma / (M sqrt(var + eps)) * (M g - sum(g) - xhat * sum(g * xhat)), M = samples per
    feature, which reuses dbeta = sum(g) and dgamma = sum(g * xhat).
    """

    fused = True

    def forward(self, x, gamma, beta, running_mean, running_var, training, momentum, eps):
        axes, shape = stat_axes(x.ndim)
        dtype = x.dtype
        if training:
            mean = x.mean(axis=axes, keepdims=True)
            xc = x - mean
            # NOTE: the two-pass variance mean((x - mean)**2) avoids the cancellation of
            # E[x**2] - E[x]**2 when |mean| >> std.
            var = (xc * xc).mean(axis=axes, keepdims=True)
            update_running(running_mean, momentum, mean)
            update_running(running_var, momentum, var)
        else:
            mean = running_mean.astype(dtype, copy=False).reshape(shape)
            var = running_var.astype(dtype, copy=False).reshape(shape)
            xc = x - mean
        # NOTE: eps goes inside the square root, as in the course and PyTorch.
        inv_std = 1.0 / np.sqrt(var + eps)
        xhat = xc * inv_std
        g_ = gamma.astype(dtype, copy=False).reshape(shape)
        self.saved = (xhat, inv_std, g_)
        self.training = training
        return xhat * g_ + beta.astype(dtype, copy=False).reshape(shape)

    def backward(self, g):
        xhat, inv_std, gamma = self.saved
        axes = stat_axes(g.ndim)[0]
        dbeta = g.sum(axis=axes, keepdims=True)
        dgamma = (g * xhat).sum(axis=axes, keepdims=True)
        dx = None
        if self.needs_grad(0):
            if self.training:
                m = g.size // dbeta.size
                dx = (gamma * inv_std * (1.0 / m)) * (m * g - dbeta - xhat * dgamma)
            else:                   # the stats are constants: a per-feature affine map
                dx = g * (gamma * inv_std)
        return dx, dgamma.reshape(-1), dbeta.reshape(-1), None, None


def batch_norm_fused(x, gamma, beta, running_mean=None, running_var=None, training=True,
                     momentum=0.9, eps=1e-5):
    return BatchNorm.apply(x, gamma, beta, running_mean, running_var, training=training,
                           momentum=momentum, eps=eps)


def batch_norm_composite(x, gamma, beta, running_mean=None, running_var=None, training=True,
                         momentum=0.9, eps=1e-5):
    """The twin: mean, var, sqrt, divide, scale and shift as tape ops. Expects valid inputs."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    axes, shape = stat_axes(x.ndim)
    if training:
        mean = ops.mean(x, axes, keepdims=True)
        var = ops.var(x, axes, keepdims=True)
        update_running(running_mean, momentum, mean.data)
        update_running(running_var, momentum, var.data)
    else:
        mean = running_mean.astype(x.dtype, copy=False).reshape(shape)
        var = running_var.astype(x.dtype, copy=False).reshape(shape)
    xhat = (x - mean) / ops.sqrt(var + eps)
    return xhat * ops.reshape(gamma, shape) + ops.reshape(beta, shape)
