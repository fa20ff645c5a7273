"""Elementwise primitives: each op's forward and backward side by side.

Binary ops broadcast like numpy; the engine sums each gradient back to its input's shape.
Backward rules never modify `g` in place (it may be shared with other edges), and run on
arrays or, under create_graph, on Tensors: they use operators, methods both types have, and
`call`/`value` (function.py) for anything else.
"""

from __future__ import annotations

import math

import numpy as np

from .. import blas_threads
from ..function import Function, call, value

# ---- binary ------------------------------------------------------------------------------------


class Add(Function):
    """z = x + y"""

    def forward(self, x, y):
        return x + y

    def backward(self, g):
        return g, g


class Sub(Function):
    """z = x - y  (a primitive, not x + (-y): one node instead of two on a hot path)"""

    def forward(self, x, y):
        return x - y

    def backward(self, g):
        return g, -g if self.needs_grad(1) else None     # y - 0.5: skip the negation


class Mul(Function):
    """z = x * y"""

    def forward(self, x, y):
        self.saved = (x, y)
        return x * y

    def backward(self, g):
        x, y = self.saved         # x * 0.5: skip the product for the constant
        return g * y if self.needs_grad(0) else None, g * x if self.needs_grad(1) else None


class Div(Function):
    """z = x / y  (a primitive: one node instead of x * y**-1)"""

    def forward(self, x, y):
        out = x / y
        self.saved = (y, out)
        return out

    def backward(self, g):
        y, out = self.saved
        gx = g / y
        if not self.needs_grad(1):
            return gx, None
        return gx, -gx * out          # d(x/y)/dy = -x/y**2 = -(1/y) * out


class Pow(Function):
    """z = x ** y  (y a number or a tensor)"""

    def forward(self, x, y):
        out = x ** y
        self.saved = (x, y, out)
        return out

    def backward(self, g):
        x, y, out = self.saved
        gx = gy = None
        if self.needs_grad(0):
            gx = g * y * x ** (y - 1)
            # NOTE: 0 where y == 0, as in PyTorch (0 * x**-1 would be nan at x == 0).
            if np.any(value(y) == 0):
                gx = call(Where, value(y) == 0, 0.0, gx)
        if self.needs_grad(1):
            # NOTE: d/dy = out * log(x): nan for x < 0, and taken as 0 where x == 0 and
            # y >= 0 (PyTorch's choice: x**y is flat there from the right). log in out's
            # dtype: log of a Python number (2 ** y) would turn float32 gradients float64.
            x = x if hasattr(x, "dtype") else np.asarray(x, dtype=out.dtype)
            flat = (value(x) == 0) & (value(y) >= 0)
            gy = g * out * call(Log, call(Where, flat, 1.0, x) if np.any(flat) else x)
        return gx, gy


class MatMul(Function):
    """z = x @ y  (numpy matmul semantics: 1-D operands, batched stacks with broadcasting)"""

    def forward(self, x, y):
        self.saved = (x, y)
        return blas_threads.matmul(x, y)

    def backward(self, g):
        x, y = self.saved
        if x.ndim == 1 and y.ndim == 1:                   # dot product
            return g * y, g * x
        # Promote 1-D operands to matrices so one pair of formulas covers every case.
        x2 = x[None, :] if x.ndim == 1 else x
        y2 = y[:, None] if y.ndim == 1 else y
        g2 = g
        if x.ndim == 1:
            g2 = g2.reshape(g2.shape[:-1] + (1, g2.shape[-1]))
        if y.ndim == 1:
            g2 = g2.reshape(g2.shape + (1,))
        gx = call(MatMul, g2, _swap_last(y2)) if self.needs_grad(0) else None
        gy = call(MatMul, _swap_last(x2), g2) if self.needs_grad(1) else None
        if gx is not None and x.ndim == 1:
            gx = gx[..., 0, :]
        if gy is not None and y.ndim == 1:
            gy = gy[..., 0]
        return gx, gy


def _swap_last(a):
    """a with its last two axes swapped (a view of an array; a transpose op on a Tensor)."""
    return a.transpose(tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2))


class Maximum(Function):
    """z = max(x, y) elementwise. NOTE: on ties each input gets half the gradient (PyTorch)."""

    def forward(self, x, y):
        out = np.maximum(x, y)
        self.saved = _share(np.greater(x, y), np.equal(x, y), out.dtype)
        return out

    def backward(self, g):
        x_share = self.saved
        return g * x_share, g * (1 - x_share)


class Minimum(Function):
    """z = min(x, y) elementwise. NOTE: on ties each input gets half the gradient (PyTorch)."""

    def forward(self, x, y):
        out = np.minimum(x, y)
        self.saved = _share(np.less(x, y), np.equal(x, y), out.dtype)
        return out

    def backward(self, g):
        x_share = self.saved
        return g * x_share, g * (1 - x_share)


def _share(x_wins, tie, dtype):
    """x's share of the gradient: 1 where x wins, 1/2 on a tie, 0 where y wins."""
    return np.where(tie, 0.5, x_wins).astype(dtype, copy=False)


class Where(Function):
    """z = x where cond else y  (cond is not differentiable)"""

    def forward(self, cond, x, y):
        cond = np.asarray(cond, dtype=bool)
        self.saved = cond
        return np.where(cond, x, y)

    def backward(self, g):
        cond = value(self.saved)        # a bool Tensor condition is an input: a constant here
        return None, g * cond, g * ~cond


# ---- unary -------------------------------------------------------------------------------------


class Clone(Function):
    """z = a copy of x  (in-place ops give it the old value to save: Tensor._inplace)"""

    def forward(self, x):
        return np.array(x, copy=True)

    def backward(self, g):
        return g


class Neg(Function):
    """z = -x"""

    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


class Abs(Function):
    """z = |x|. NOTE: the subgradient at 0 is 0 (np.sign)."""

    def forward(self, x):
        self.saved = x
        return np.abs(x)

    def backward(self, g):
        return g * np.sign(value(self.saved))


class Exp(Function):
    """z = e**x  (saves the output: dz/dx = z)"""

    def forward(self, x):
        out = np.exp(x)
        self.saved = out
        return out

    def backward(self, g):
        return g * self.saved


class Log(Function):
    """z = ln(x)"""

    def forward(self, x):
        self.saved = x
        return np.log(x)

    def backward(self, g):
        return g / self.saved


class Sqrt(Function):
    """z = sqrt(x)  (saves the output: dz/dx = 1 / (2z))"""

    def forward(self, x):
        out = np.sqrt(x)
        self.saved = out
        return out

    def backward(self, g):
        return g / (2 * self.saved)


class Log1p(Function):
    """z = ln(1 + x)  (a primitive: exact for tiny x, where 1 + x would round away x)"""

    def forward(self, x):
        self.saved = x
        return np.log1p(x)

    def backward(self, g):
        return g / (1 + self.saved)


class Expm1(Function):
    """z = e**x - 1  (a primitive: exact for tiny x; saves the output: dz/dx = z + 1)"""

    def forward(self, x):
        out = np.expm1(x)
        self.saved = out
        return out

    def backward(self, g):
        return g * (self.saved + 1)


class Sin(Function):
    """z = sin(x)"""

    def forward(self, x):
        self.saved = x
        return np.sin(x)

    def backward(self, g):
        return g * call(Cos, self.saved)


class Cos(Function):
    """z = cos(x)"""

    def forward(self, x):
        self.saved = x
        return np.cos(x)

    def backward(self, g):
        return -g * call(Sin, self.saved)


class Erf(Function):
    """z = erf(x) = 2/sqrt(pi) * integral of e**-t**2 from 0 to x  (exact GELU needs it)"""

    def forward(self, x):
        from ..fused import kernels  # here, not at import: autotensor.fused builds on ops
        self.saved = x
        x = np.asarray(x)
        if x.dtype in (np.float32, np.float64):
            return kernels.erf(x)
        # NOTE: numpy has no erf; other dtypes go through float64 (integers stay there).
        out = kernels.erf(x.astype(np.float64))
        return out.astype(x.dtype) if x.dtype.kind == "f" else out

    def backward(self, g):
        x = self.saved
        return g * _TWO_OVER_SQRT_PI * call(Exp, -(x * x))


_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)


class Tanh(Function):
    """z = tanh(x)  (saves the output: dz/dx = 1 - z**2)"""

    def forward(self, x):
        out = np.tanh(x)
        self.saved = out
        return out

    def backward(self, g):
        out = self.saved
        return g * (1 - out * out)


class Sigmoid(Function):
    """z = 1 / (1 + e**-x)  (saves the output: dz/dx = z (1 - z))"""

    def forward(self, x):
        # NOTE: exp(-logaddexp(0, -x)) never overflows, unlike 1 / (1 + exp(-x)) for x << 0.
        out = np.exp(-np.logaddexp(0, -x))
        self.saved = out
        return out

    def backward(self, g):
        out = self.saved
        return g * out * (1 - out)


class Relu(Function):
    """z = max(x, 0). NOTE: the subgradient at 0 is 0, as in PyTorch and the course."""

    def forward(self, x):
        out = np.maximum(x, 0)
        self.saved = out
        return out

    def backward(self, g):
        return g * (value(self.saved) > 0)


class Clip(Function):
    """z = min(max(x, lo), hi). NOTE: gradient 1 inside [lo, hi] including the bounds."""

    def forward(self, x, lo=None, hi=None):
        inside = np.ones(x.shape, dtype=bool)
        if lo is not None:
            inside &= x >= lo
        if hi is not None:
            inside &= x <= hi
        self.saved = inside
        return np.clip(x, lo, hi)

    def backward(self, g):
        return g * self.saved


class AsType(Function):
    """z = x converted to `dtype`; the gradient is converted back."""

    def forward(self, x, dtype):
        self.saved = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return g.astype(self.saved)
