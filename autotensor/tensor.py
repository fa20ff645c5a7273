"""`Tensor`: a numpy array plus the node that produced it. Every method calls an `ops` function."""

from __future__ import annotations

import numpy as np

from . import autograd


class Tensor:
    """An n-dimensional array that records the ops applied to it.

    `Tensor(data, requires_grad=False, dtype=None)` wraps `data` without copying when it is
    already an ndarray of the right dtype (use `at.tensor` for a copy). Python floats and
    lists become float64; only floating-point tensors may require grad.
    """

    __slots__ = ("data", "grad", "requires_grad", "_node", "name", "__weakref__")
    _is_node = False
    __array_priority__ = 1000        # ndarray (op) Tensor defers to Tensor's reflected op

    def __init__(self, data, requires_grad=False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        data = np.asarray(data, dtype=dtype)
        if requires_grad and not np.issubdtype(data.dtype, np.floating):
            raise TypeError(f"only floating-point tensors can require grad, got dtype "
                            f"{data.dtype}; convert first, e.g. Tensor(x, dtype=np.float64)")
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._node = None
        self.name = None

    # ---- properties ----------------------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def T(self):
        return ops.transpose(self)

    def __len__(self):
        return len(self.data)

    def item(self):
        return self.data.item()

    def numpy(self):
        """The underlying array (shared, not copied)."""
        return self.data

    def detach(self):
        """A tensor sharing this data, cut out of the graph."""
        return _wrap(self.data, None)

    def requires_grad_(self, flag=True):
        if self._node is not None and not flag:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor; use detach()")
        if flag and not np.issubdtype(self.dtype, np.floating):
            raise TypeError(f"only floating-point tensors can require grad, got {self.dtype}")
        self.requires_grad = flag
        return self

    def retain_grad(self):
        """Keep this non-leaf tensor's gradient in `.grad` during the next backward."""
        if self._node is not None:
            self._node.retained = self
        return self

    def zero_grad(self):
        self.grad = None

    # ---- autograd ------------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Backpropagate from this tensor; `grad` may be omitted only for scalars."""
        autograd.backward(self, grad, retain_graph)

    def __repr__(self):
        body = np.array2string(self.data, precision=4, separator=", ", threshold=20,
                               prefix="Tensor(")
        extra = ""
        if self.dtype != np.float64:
            extra += f", dtype={self.dtype}"
        if self._node is not None:
            extra += f", grad_fn={self._node.name}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"Tensor({body}{extra})"

    __hash__ = object.__hash__      # comparisons return arrays, identity stays the hash

    # ---- arithmetic ----------------------------------------------------------------------------
    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __pow__(self, other):
        return ops.pow(self, other)

    def __rpow__(self, other):
        return ops.pow(other, self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __neg__(self):
        return ops.neg(self)

    def __abs__(self):
        return ops.abs(self)

    def __getitem__(self, index):
        return ops.getitem(self, index)

    # Comparisons are not differentiable: they return bool tensors outside the graph.
    def __lt__(self, other):
        return _wrap(np.asarray(self.data < _data(other)), None)

    def __le__(self, other):
        return _wrap(np.asarray(self.data <= _data(other)), None)

    def __gt__(self, other):
        return _wrap(np.asarray(self.data > _data(other)), None)

    def __ge__(self, other):
        return _wrap(np.asarray(self.data >= _data(other)), None)

    def __eq__(self, other):
        return _wrap(np.asarray(self.data == _data(other)), None)

    def __ne__(self, other):
        return _wrap(np.asarray(self.data != _data(other)), None)

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.data)

    def __float__(self):
        return float(self.data)

    # ---- methods that mirror at.* functions ----------------------------------------------------
    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def sqrt(self):
        return ops.sqrt(self)

    def tanh(self):
        return ops.tanh(self)

    def sigmoid(self):
        return ops.sigmoid(self)

    def relu(self):
        return ops.relu(self)

    def abs(self):
        return ops.abs(self)

    def clip(self, lo=None, hi=None):
        return ops.clip(self, lo, hi)

    def sum(self, axis=None, keepdims=False):
        return ops.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return ops.mean(self, axis, keepdims)

    def var(self, axis=None, keepdims=False):
        return ops.var(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return ops.max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return ops.min(self, axis, keepdims)

    def reshape(self, *shape):
        return ops.reshape(self, *shape)

    def transpose(self, *axes):
        return ops.transpose(self, *axes)

    def flatten(self, start_dim=0):
        return ops.flatten(self, start_dim)

    def softmax(self, axis=-1):
        return ops.softmax(self, axis)

    def log_softmax(self, axis=-1):
        return ops.log_softmax(self, axis)

    def logsumexp(self, axis=-1, keepdims=False):
        return ops.logsumexp(self, axis, keepdims)

    def astype(self, dtype):
        return ops.astype(self, dtype)


def _data(x):
    """The array inside a Tensor; anything else unchanged."""
    return x.data if isinstance(x, Tensor) else x


def _tensor(x):
    """x itself when it is a Tensor, else a new (constant) Tensor wrapping it."""
    return x if isinstance(x, Tensor) else Tensor(x)


_new_tensor = object.__new__


def _wrap(data, node):
    """Fast internal constructor: no conversion, no checks (ops produce valid arrays)."""
    t = _new_tensor(Tensor)
    t.data = data
    t.grad = None
    t.requires_grad = node is not None
    t._node = node
    t.name = None
    return t


def tensor(data, requires_grad=False, dtype=None):
    """A new tensor holding a copy of `data`."""
    return Tensor(np.array(_data(data), dtype=dtype),
                  requires_grad=requires_grad)


from . import ops  # noqa: E402  (ops build on Tensor)


def __getattr__(name):
    """zeros, ones and randn moved to creation.py; `from autotensor.tensor import zeros` works."""
    if name in ("zeros", "ones", "randn"):
        from . import creation
        return getattr(creation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
