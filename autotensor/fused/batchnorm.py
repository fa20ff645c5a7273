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
from ..autograd import twin_backward
from ..function import Function, value
from ..tensor import Tensor, _tensor
from . import kernels


def stat_axes(ndim):
    """Reduced axes and the broadcast shape of per-feature parameters."""
    return ((0,), (1, -1)) if ndim == 2 else ((0, 2, 3), (1, -1, 1, 1))


def update_running(running, momentum, batch_stat):
    """running = momentum*running + (1 - momentum)*batch_stat, in place (module buffers)."""
    if running is not None:
        running[...] = momentum * running + (1.0 - momentum) * batch_stat.reshape(running.shape)


class BatchNormFn(Function):
    """out = gamma * (x - mean) / sqrt(var + eps) + beta

    Fused: one kernel per pass direction (numba: one thread per channel block), statistics
    in float64. The backward is the simplified closed form (docs/fused_ops.md)
    dx = gamma / sqrt(var + eps) * (g - mean(g) - xhat * mean(g * xhat)), over the M values
    of each feature, with dbeta = sum(g) and dgamma = sum(g * xhat) from the same pass.
    Saves x and the (C,) statistics, not xhat: backward rebuilds xhat on the fly.
    Under create_graph the gradient comes from the composite twin (differentiable to any
    order).
    """

    fused = True
    name = "BatchNorm"           # the graph's label: the op, as users call it

    def forward(self, x, gamma, beta, running_mean, running_var, training, momentum, eps):
        gamma, beta = np.asarray(gamma, np.float64), np.asarray(beta, np.float64)
        # NOTE: eval mode copies the running statistics it saves: a later training call
        # updates those buffers in place, which must not change this node's gradient.
        stats = () if training else (np.array(running_mean, np.float64),
                                     np.array(running_var, np.float64))
        out, mean, var = kernels.bn_forward(x, gamma, beta, eps, *stats)
        if training:
            update_running(running_mean, momentum, mean)
            update_running(running_var, momentum, var)
        self.saved = (x, gamma, mean, var)
        self.training, self.eps, self.stats = training, eps, stats
        return out

    def backward(self, g):
        x, gamma, mean, var = self.saved
        if isinstance(g, Tensor):      # create_graph: differentiate the twin instead
            return (*twin_backward(self.twin, self.twin_inputs(), g), None, None)
        dx, dgamma, dbeta = kernels.bn_backward(g, x, gamma, mean, var, self.eps, self.training,
                                                self.needs_grad(0))
        return dx, dgamma.astype(x.dtype), dbeta.astype(x.dtype), None, None

    def twin(self, x, gamma, beta):
        stats = self.stats or (None, None)
        return batch_norm_composite(x, gamma, beta, *stats, training=self.training,
                                    eps=self.eps)

    def twin_inputs(self):
        """x, gamma, beta as Tensors on the graph (create_graph: x is one already). beta's
        value is not saved: the gradients do not depend on it, so zeros stand in."""
        x, gamma = self.saved[:2]
        dtype = x.dtype
        return (x, self.graph_input(1, value(gamma).astype(dtype)),
                self.graph_input(2, np.zeros(gamma.shape, dtype)))


def batch_norm_fused(x, gamma, beta, running_mean=None, running_var=None, training=True,
                     momentum=0.9, eps=1e-5):
    return BatchNormFn.apply(x, gamma, beta, running_mean, running_var, training=training,
                           momentum=momentum, eps=eps)


def batch_norm_composite(x, gamma, beta, running_mean=None, running_var=None, training=True,
                         momentum=0.9, eps=1e-5):
    """The twin: mean, var, sqrt, divide, scale and shift as tape ops. Expects valid inputs."""
    x = _tensor(x)
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
