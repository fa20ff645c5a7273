"""The peer engines of bench/peers.py: what each library spells its own way.

The workloads (bench/peers.py) are written once over these few calls: making tensors, the
activations, conv / pool / cross-entropy, value-and-gradient, an SGD update, a Hessian-vector
product, and `finish` (the loss as a float once every result is computed). Each engine uses the
library's own idiom: PyTorch's functional ops, jax.lax, tinygrad's Tensor methods, MyGrad's
nnet layers, HIPS autograd's scipy.signal.convolve.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil

import numpy as np

LR = 1e-3


class Unavailable(Exception):
    """An engine or workload that cannot run here (shown as n/a with the reason; not an error)."""


class Engine:
    """One library. What every engine has (fn below is a loss fn(engine, params, *data)):

    load(dtype) -> version: imports the library; Unavailable when it cannot run here.
    const(a), leaf(a), labels(y): an input, a parameter (its own copy of a), integer labels.
    tanh, relu, conv (7x7, pad 3, plus bias), pool (2x2 max), flatten, cross_entropy(scores, y).
    value_and_grad(fn) -> f(params, *data) -> (value, grads); sgd(params, grads) -> params.
    hvp(fn) -> f(params, v, *data) -> (value, Hv); jit(f): compiled or f itself.
    numpy(t) -> ndarray; finish(value, tree) -> float(value) once value and tree are computed.
    """
    module = label = ""
    env = {}

    def leaf(self, a):
        return self.const(a)

    def labels(self, y):
        return y

    def flatten(self, x):
        return x.reshape(x.shape[0], -1)

    def jit(self, fn):
        return fn

    def numpy(self, t):
        return np.asarray(t)

    def hvp(self, fn):
        raise Unavailable(f"{self.label} has no higher-order gradients")


class TapeEngine(Engine):
    """Leaves that require grad; loss.backward() fills each leaf's .grad."""

    def value_and_grad(self, fn):
        def value_and_grad(params, *data):
            value = fn(self, params, *data)
            value.backward()
            return value, [p.grad for p in params]
        return value_and_grad

    def tanh(self, x):
        return x.tanh()

    def relu(self, x):
        return x.relu()

    def finish(self, value, tree):
        return float(value.item())


class Autotensor(TapeEngine):
    module = label = "autotensor"

    def load(self, dtype):
        import autotensor
        from autotensor.nn import functional
        self.at, self.F = autotensor, functional
        return autotensor.__version__

    def const(self, a):
        return self.at.Tensor(a)

    def leaf(self, a):
        return self.at.Tensor(a.copy(), requires_grad=True)     # Tensor(a) shares a's memory

    def numpy(self, t):
        return t.numpy() if isinstance(t, self.at.Tensor) else np.asarray(t)

    def conv(self, x, w, b):
        return self.F.conv2d(x, w, b, pad=3)

    def pool(self, x):
        return self.F.max_pool2d(x, 2)

    def cross_entropy(self, scores, y):
        return self.F.softmax_cross_entropy(scores, y)

    def sgd(self, params, grads):
        for p, g in zip(params, grads):
            p.data -= LR * g
            p.grad = None
        return params

    def hvp(self, fn):
        # NOTE: written against PyTorch's signature; it runs once higher-order gradients land.
        if importlib.util.find_spec("autotensor.functional") is None:
            raise Unavailable("autotensor.functional does not exist yet")
        from autotensor import functional
        if not hasattr(functional, "hvp"):
            raise Unavailable("autotensor.functional has no hvp yet")
        return lambda params, v, *data: functional.hvp(lambda *ps: fn(self, list(ps), *data),
                                                       tuple(params), tuple(v))


class Torch(TapeEngine):
    module, label = "torch", "pytorch"

    def load(self, dtype):
        import torch
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        self.torch, self.tf = torch, torch.nn.functional
        return torch.__version__

    def const(self, a):
        return self.torch.from_numpy(a)

    def leaf(self, a):
        return self.torch.tensor(a, requires_grad=True)

    def labels(self, y):
        return self.torch.from_numpy(y)

    def numpy(self, t):
        return t.detach().numpy()

    def conv(self, x, w, b):
        return self.tf.conv2d(x, w, b, padding=3)

    def pool(self, x):
        return self.tf.max_pool2d(x, 2)

    def cross_entropy(self, scores, y):
        return self.tf.cross_entropy(scores, y)

    def sgd(self, params, grads):
        with self.torch.no_grad():
            for p, g in zip(params, grads):
                p -= LR * g
                p.grad = None
        return params

    def hvp(self, fn):
        hvp = self.torch.autograd.functional.hvp
        return lambda params, v, *data: hvp(lambda *ps: fn(self, list(ps), *data), tuple(params),
                                            tuple(v))


class Jax(Engine):
    """Eager: every op dispatched as it runs; jit: each whole step compiled by jax.jit."""
    module = "jax"
    env = {"JAX_PLATFORMS": "cpu"}

    def __init__(self, jit):
        self.compiled, self.label = jit, "jax-jit" if jit else "jax-eager"

    def load(self, dtype):
        import jax
        jax.config.update("jax_enable_x64", dtype == "float64")
        self.jax, self.jnp = jax, jax.numpy
        return jax.__version__

    def const(self, a):
        return self.jnp.asarray(a)

    labels = const

    def jit(self, fn):
        return self.jax.jit(fn) if self.compiled else fn

    def tanh(self, x):
        return self.jnp.tanh(x)

    def relu(self, x):
        return self.jax.nn.relu(x)

    def conv(self, x, w, b):
        out = self.jax.lax.conv_general_dilated(x, w, (1, 1), ((3, 3), (3, 3)),
                                                dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return out + b[None, :, None, None]

    def pool(self, x):
        # NOTE: -inf as a Python constant: jax then knows the max monoid and can differentiate
        return self.jax.lax.reduce_window(x, -self.jnp.inf, self.jax.lax.max, (1, 1, 2, 2),
                                          (1, 1, 2, 2), "VALID")

    def cross_entropy(self, scores, y):
        logp = self.jax.nn.log_softmax(scores, axis=1)
        return -self.jnp.take_along_axis(logp, y[:, None], axis=1).mean()

    def value_and_grad(self, fn):
        return self.jax.value_and_grad(lambda params, *data: fn(self, params, *data))

    def sgd(self, params, grads):
        return [p - LR * g for p, g in zip(params, grads)]

    def hvp(self, fn):
        def hvp(params, v, *data):        # forward-over-reverse: jvp of the gradient
            (value, _), (_, hv) = self.jax.jvp(
                lambda ps: self.value_and_grad(fn)(ps, *data), (params,), (v,))
            return value, hv
        return hvp

    def finish(self, value, tree):
        self.jax.block_until_ready((value, tree))
        return float(value)


class Tinygrad(Engine):
    """Lazy: each step's graph is scheduled and realized at the end (no TinyJit)."""
    module = label = "tinygrad"
    env = {"DEV": "CPU"}

    def load(self, dtype):
        if not os.environ.get("CC"):     # its CPU device compiles kernels with clang
            found = [c for c in ("clang", *(f"clang-{v}" for v in range(30, 13, -1)))
                     if shutil.which(c)]
            if not found:
                raise Unavailable("its CPU device compiles with clang, not installed here")
            os.environ["CC"] = found[0]
        import tinygrad
        self.Tensor = tinygrad.Tensor
        return importlib.metadata.version("tinygrad")

    def const(self, a):
        return self.Tensor(a)

    def labels(self, y):
        return self.Tensor(y.astype(np.int32))

    def numpy(self, t):
        return t.numpy()

    def tanh(self, x):
        return x.tanh()

    def relu(self, x):
        return x.relu()

    def conv(self, x, w, b):
        return x.conv2d(w, b, padding=3)

    def pool(self, x):
        return x.max_pool2d((2, 2))

    def cross_entropy(self, scores, y):
        return scores.sparse_categorical_crossentropy(y)

    def value_and_grad(self, fn):
        def value_and_grad(params, *data):
            value = fn(self, params, *data)
            return value, list(value.gradient(*params))
        return value_and_grad

    def sgd(self, params, grads):
        return [p.assign(p - LR * g) for p, g in zip(params, grads)]

    def hvp(self, fn):
        def hvp(params, v, *data):        # reverse-over-reverse: its gradients are graphs too
            value = fn(self, params, *data)
            grads = value.gradient(*params)
            return value, list(sum((g * u).sum() for g, u in zip(grads, v)).gradient(*params))
        return hvp

    def finish(self, value, tree):
        self.Tensor.realize(value, *tree)
        return float(value.item())


class MyGrad(TapeEngine):
    module = label = "mygrad"

    def load(self, dtype):
        import mygrad
        from mygrad.nnet import activations, layers, losses
        self.mg, self.layers, self.losses, self.act = mygrad, layers, losses, activations
        return mygrad.__version__

    def const(self, a):
        return a

    def leaf(self, a):
        return self.mg.Tensor(a)

    def tanh(self, x):
        return self.mg.tanh(x)

    def relu(self, x):
        return self.act.relu(x)

    def conv(self, x, w, b):
        return self.layers.conv_nd(x, w, stride=1, padding=3) + b.reshape(1, -1, 1, 1)

    def pool(self, x):
        return self.layers.max_pool(x, (2, 2), 2)

    def cross_entropy(self, scores, y):
        return self.losses.softmax_crossentropy(scores, y)

    def sgd(self, params, grads):
        for p, g in zip(params, grads):
            p.data -= LR * g
        return params


class HipsAutograd(Engine):
    module, label = "autograd", "autograd"

    def load(self, dtype):
        import autograd
        import autograd.numpy as anp
        from autograd.scipy.signal import convolve
        from autograd.scipy.special import logsumexp
        self.ag, self.anp, self.convolve, self.logsumexp = autograd, anp, convolve, logsumexp
        return importlib.metadata.version("autograd")

    def const(self, a):
        return a

    def tanh(self, x):
        return self.anp.tanh(x)

    def relu(self, x):
        return self.anp.maximum(x, 0.0)

    def flatten(self, x):
        return self.anp.reshape(x, (x.shape[0], -1))

    def conv(self, x, w, b):
        # NOTE: convolve flips the kernel (true convolution); flipping w back gives the
        # cross-correlation every other engine computes.
        x = self.anp.pad(x, ((0, 0), (0, 0), (3, 3), (3, 3)))
        out = self.convolve(x, w[:, :, ::-1, ::-1], axes=([2, 3], [2, 3]),
                            dot_axes=([1], [1]), mode="valid")
        return out + b[None, :, None, None]

    def pool(self, x):
        n, c, h, w = x.shape
        return self.anp.max(self.anp.reshape(x, (n, c, h // 2, 2, w // 2, 2)), axis=(3, 5))

    def cross_entropy(self, scores, y):
        logp = scores - self.logsumexp(scores, axis=1, keepdims=True)
        return -self.anp.mean(logp[np.arange(len(y)), y])

    def value_and_grad(self, fn):
        return self.ag.value_and_grad(lambda params, *data: fn(self, params, *data))

    def sgd(self, params, grads):
        return [p - LR * g for p, g in zip(params, grads)]

    def hvp(self, fn):
        value_and_grad = self.value_and_grad(fn)

        def grad_dot_v(params, v, *data):        # (g(params) . v, loss): its gradient is Hv
            value, grads = value_and_grad(params, *data)
            return sum(self.anp.sum(g * u) for g, u in zip(grads, v)), value
        hv_and_value = self.ag.grad_and_aux(grad_dot_v)

        def hvp(params, v, *data):
            hv, value = hv_and_value(params, v, *data)
            return value, hv
        return hvp

    def finish(self, value, tree):
        return float(value)


ENGINES = {e.label: e for e in (Autotensor(), Torch(), Jax(jit=False), Jax(jit=True),
                                Tinygrad(), MyGrad(), HipsAutograd())}
