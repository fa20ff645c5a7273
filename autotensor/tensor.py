"""`Tensor`: a numpy array plus the node that produced it. Every method calls an `ops` function."""

from __future__ import annotations

import sys
import warnings

import numpy as np


class Tensor:
    """An n-dimensional array that records the ops applied to it.

    `Tensor(data, requires_grad=False, dtype=None)` wraps `data` without copying when it is
    already an ndarray of the right dtype (use `at.tensor` for a copy). Python floats and
    lists become float64; bool, integer and floating-point data are accepted, complex data
    too (as torch.full makes it) but no op takes it; string and object data raise TypeError.
    Only floating-point tensors may require grad.
    """

    # _hooks: a leaf's register_hook hooks (a non-leaf's live on its node); set on leaves made
    # here, left unset on the tensors ops return (autograd reads it with a default).
    __slots__ = ("data", "_grad", "requires_grad", "_node", "name", "_hint", "_hooks",
                 "__weakref__")
    _is_node = False
    __array_priority__ = 1000        # ndarray (op) Tensor defers to Tensor's reflected op

    def __init__(self, data, requires_grad=False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        data = np.asarray(data, dtype=dtype)
        if data.dtype.kind not in "biufc":
            raise TypeError(f"Tensor: data of dtype {data.dtype} is not supported; autotensor "
                            "holds bool, integer, floating-point (or, not differentiable, "
                            "complex) data")
        if requires_grad and not np.issubdtype(data.dtype, np.floating):
            raise TypeError(f"only floating-point tensors can require grad, got dtype "
                            f"{data.dtype}; convert first, e.g. Tensor(x, dtype=np.float64)")
        self.data = data
        self._grad = None
        self.requires_grad = bool(requires_grad)
        self._node = None
        self.name = None
        self._hooks = None
        if requires_grad:
            self._hint = ("unused", autograd.backward_calls)

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
        if self.requires_grad and self._node is None and getattr(self, "_hint", None):
            self._hint = "detached"         # only while no recorded op has used it
        return _wrap(self.data, None)

    def requires_grad_(self, requires_grad=True):
        """Set `requires_grad` in place and return self (PyTorch's method). Only a leaf can
        stop requiring grad: a non-leaf's gradient flows through it (use detach())."""
        requires_grad = bool(requires_grad)
        if self._node is not None and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf tensors: "
                               f"this one (shape {self.shape}) is the output of "
                               f"{self._node.name}; use t.detach() for a copy outside the graph")
        if requires_grad and not np.issubdtype(self.dtype, np.floating):
            raise TypeError(f"only floating-point tensors can require grad, got {self.dtype}")
        if requires_grad and not self.requires_grad:
            self._hint = ("unused", autograd.backward_calls)
        self.requires_grad = requires_grad
        return self

    def register_hook(self, hook):
        """Call `hook(grad)` each time this tensor's gradient is computed (PyTorch's method).

        `grad` is what `.grad` would hold: an ndarray (read-only: it may be shared), or a
        Tensor under backward(create_graph=True). A non-None return replaces the gradient (same
        shape) for the rest of the backward pass: a leaf accumulates the replacement into
        `.grad`, a non-leaf passes it on. A leaf's hooks see the sum of every contribution of
        the pass. Hooks run in registration order; returns a handle whose `.remove()` unhooks.
        """
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require "
                               f"gradient (shape {self.shape}); call requires_grad_() first")
        if not callable(hook):
            raise TypeError(f"register_hook: hook must be callable, got {type(hook).__name__}")
        node = self._node
        if node is None:
            if getattr(self, "_hooks", None) is None:
                self._hooks = {}
            table = self._hooks
        else:                  # on the node: an in-place op later gives the tensor a new node,
            if node.hooks is None:       # and these hooks keep seeing the old value's gradient
                node.hooks = {}
            table = node.hooks
        handle = hooks.RemovableHandle(table)
        table[handle.id] = hook
        return handle

    def retain_grad(self):
        """Keep this non-leaf tensor's gradient in `.grad` during the next backward.

        The node keeps the gradient in a stand-in tensor of its own (an array-free
        broadcast), never a reference back to this tensor: no reference cycle keeps the
        activations alive.
        """
        node = self._node
        if node is not None and node.retained is None:
            node.retained = _wrap(np.broadcast_to(np.zeros((), node.dtype), node.shape), None)
        return self

    @property
    def retains_grad(self):
        return self._node is not None and self._node.retained is not None

    @property
    def grad(self):
        """The gradient: an ndarray, or a Tensor after a backward with create_graph=True.

        None until a backward reaches this tensor; reading it then warns with the reason when
        the reason is known (a non-leaf, a leaf used only under no_grad or detached, a leaf
        no recorded op used; once per leaf).
        """
        node = self._node
        g = self._grad if node is None or node.retained is None else node.retained._grad
        if g is None and self.requires_grad:
            _explain_missing_grad(self)
        return g

    @grad.setter
    def grad(self, value):
        node = self._node
        if node is None or node.retained is None:
            self._grad = value
        else:
            node.retained._grad = value

    def zero_grad(self):
        self._grad = None

    # ---- autograd ------------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None, *,
                 grad=None):
        """Backpropagate from this tensor into the leaves' `.grad` (PyTorch's signature).

        `gradient` (alias `grad`) may be omitted only for a scalar. With create_graph=True the
        backward pass is itself recorded, so `.grad` becomes a Tensor that can be
        differentiated again; retain_graph defaults to create_graph. `inputs`: only these
        leaves accumulate a gradient.
        """
        autograd.backward(self, gradient if gradient is not None else grad, retain_graph,
                          create_graph, inputs)

    # ---- in-place ops --------------------------------------------------------------------------
    # Each writes into this tensor's existing array (views taken earlier see the change) and
    # records the write (saved_arrays.note_write): a node that saved the old value then refuses
    # to backpropagate. Under no_grad, or on tensors outside any graph, they are plain writes;
    # inside a graph they are recorded like the out-of-place op (docs/engine.md).
    def __iadd__(self, other):
        return _inplace(self, ops.add, "+=", other)

    def __isub__(self, other):
        return _inplace(self, ops.sub, "-=", other)

    def __imul__(self, other):
        return _inplace(self, ops.mul, "*=", other)

    def __itruediv__(self, other):
        return _inplace(self, ops.div, "/=", other)

    def zero_(self):
        """Fill with zeros, in place."""
        return _inplace(self, _filled, "zero_", 0.0)

    def fill_(self, value):
        """Fill with `value` (a number or a scalar tensor), in place."""
        return _inplace(self, _filled, "fill_", value)

    def copy_(self, src):
        """Copy `src` (broadcast to this shape, cast to this dtype) into this tensor, in place."""
        return _inplace(self, _filled, "copy_", src)

    def clamp_(self, min=None, max=None):  # noqa: A002 (PyTorch's argument names)
        """Clip to [min, max], in place."""
        return _inplace(self, ops.clip, "clamp_", min, max)

    def clone(self):
        """A copy of this tensor that stays on the graph."""
        return ops.clone(self)

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

    # ---- methods that mirror at.* functions (most are forwarded: see _FORWARDED below) -------
    def broadcast_to(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.broadcast_to(self, shape)

    def where(self, condition, other):
        """self where `condition` else other (PyTorch's Tensor.where)."""
        return ops.where(condition, self, other)


def _filled(old, value):
    """`value` broadcast to old's shape, on the graph: the gradient goes to `value`, none to
    `old`."""
    return ops.where(np.zeros(old.shape, dtype=bool), old, value)


def _inplace(t, op, what, *args):
    """t = op(t, *args), written into t's own array. See the in-place section of Tensor."""
    involved = t.requires_grad or any(isinstance(a, Tensor) and a.requires_grad for a in args)
    recording = involved and function.is_grad_enabled()
    target = t.data
    if recording and t._node is None and t.requires_grad:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           f"operation. ({what} on a leaf of shape {t.shape}: update it under "
                           "`with at.no_grad():`, or use the out-of-place op)")
    if recording and t._node is not None and target.base is not None:
        raise RuntimeError(f"{what}: this tensor (output of {t._node.name}) is a view of "
                           "another tensor's array; an in-place op on it would change that "
                           "tensor behind the graph's back. Use the out-of-place op.")
    if recording:
        new = op(ops.clone(t), *args)      # the op may save the old value: give it a copy
    else:
        hint = getattr(t, "_hint", None)
        with function.no_grad():
            new = op(t, *args)
        t._hint = hint                     # writing into t is not a use of t under no_grad
    if new.shape != target.shape:
        raise RuntimeError(f"{what}: the result has shape {new.shape}, which does not fit the "
                           f"tensor's shape {target.shape} (in-place ops do not broadcast it)")
    with saved_arrays.writable(target):
        np.copyto(target, new.data, casting="same_kind")
    saved_arrays.note_write(t, target)
    if recording:                          # t is now the new node's output, in its old array
        node = new._node
        # The node keeps what it saved (an op that saves its output keeps its own copy, so a
        # later in-place op on t does not invalidate it); create_graph knows both arrays.
        node.out_alias, node.out_id = node.out_id, id(target)
        node.shape, node.dtype = target.shape, target.dtype
        t._node, t.requires_grad = node, True
    return t


def _explain_missing_grad(t):
    """Warn, once per leaf, why `t.grad` is None, when the reason is known. Reads from inside
    autotensor (optimizers, the visualiser, the course models) do not warn: they expect None."""
    caller = sys._getframe(2).f_code.co_filename
    if caller.startswith(function._PACKAGE_DIRS):
        return
    if t._node is not None:
        if t.retains_grad:
            return
        why = ("it is not a leaf: backward() fills .grad only for leaves. Call "
               "t.retain_grad() before backward() to keep a non-leaf's gradient, or use "
               "at.grad(output, t)")
    else:
        hint = getattr(t, "_hint", None)
        if hint == "no_grad":
            why = ("the ops that used it ran under no_grad(), so they were not recorded and "
                   "no backward() reaches it")
        elif hint == "detached":
            why = ("it was used through .detach(), which cuts it out of the graph, so no "
                   "backward() reaches it")
        elif (hint is not None and hint[0] == "unused"
              and autograd.backward_calls > hint[1]):
            why = ("no recorded op has used it since it was created, so it is not part of "
                   "the graph of any backward() that ran")
        else:
            return
    t._hint = None
    label = f"'{t.name}'" if t.name else f"of shape {t.shape}"
    warnings.warn(f"The .grad of the tensor {label} is None: {why}.", UserWarning, stacklevel=3)


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
    t._grad = None
    t.requires_grad = node is not None
    t._node = node
    t.name = None
    return t


def tensor(data, requires_grad=False, dtype=None):
    """A new tensor holding a copy of `data`."""
    return Tensor(np.array(_data(data), dtype=dtype),
                  requires_grad=requires_grad)


from . import autograd, function, hooks, ops, saved_arrays  # noqa: E402  (they build on Tensor)

# Tensor.<name>(...) is at.<name>(self, ...): each of these methods only forwards to its op
# function (ops is complete here: the import above finished it).
_FORWARDED = (
    "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "clip", "clamp", "sin", "cos",
    "log1p", "expm1", "erf", "pow", "matmul", "outer", "tril", "triu", "sign", "floor", "round",
    "sum", "mean", "var", "std", "max", "min", "amax", "amin", "prod", "cumsum", "norm",
    "logsumexp", "softmax", "log_softmax", "argmax", "argmin", "all", "any",
    "reshape", "view", "transpose", "permute", "flatten", "unsqueeze", "squeeze", "expand",
    "expand_as", "repeat", "flip", "split", "chunk", "gather", "scatter_add", "index_select",
    "masked_fill", "index_put", "astype",
    "unbind",
)


def _forwarding(name):
    op = getattr(ops, name)

    def method(self, *args, **kwargs):
        # NOTE: `**kwargs` passed on when empty would make op build a new empty dict: y.tanh()
        # skips that.
        return op(self, *args, **kwargs) if kwargs else op(self, *args)

    method.__name__, method.__qualname__ = name, f"Tensor.{name}"
    method.__doc__ = f"at.{name}(self, ...): see its docstring and docs/ops.md."
    return method


for _name in _FORWARDED:
    setattr(Tensor, _name, _forwarding(_name))


def __getattr__(name):
    """zeros, ones and randn moved to creation.py; `from autotensor.tensor import zeros` works."""
    if name in ("zeros", "ones", "randn"):
        from . import creation
        return getattr(creation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
