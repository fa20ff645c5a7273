"""The op contract: `Function` records one node on the tape, plus the global recording switches.

Every primitive, every fused fast path and every user-defined op is a `Function` subclass:

    class Mul(Function):
        '''z = x * y'''
        def forward(self, x, y):
            self.saved = (x, y)
            return x * y

        def backward(self, g):
            x, y = self.saved
            return g * y, g * x

`forward` and `backward` work on numpy arrays. `backward` returns one gradient per input of
`forward` (or None where no gradient is needed); the engine reduces each gradient to its
input's shape (see `autograd.unbroadcast`), so no op repeats broadcasting logic.
"""

from __future__ import annotations

import contextlib
import itertools

import numpy as np

# ---- recording switches ------------------------------------------------------------------------
# Module-level globals rather than attributes of a state object: `Function.apply` reads them on
# every op, and a global lookup is the cheapest read Python has.
_grad_enabled = True
_fused_enabled = True
_scope = None            # dotted path of the Module whose forward is running, or None
_next_seq = itertools.count().__next__


class _GradMode(contextlib.ContextDecorator):
    """Context manager and decorator that turns recording off (or on)."""

    def __init__(self, enabled):
        self.enabled = enabled
        self._prev = []

    def __enter__(self):
        global _grad_enabled
        self._prev.append(_grad_enabled)
        _grad_enabled = self.enabled
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev.pop()
        return False


def no_grad():
    """Disable graph recording: `with at.no_grad(): ...` or `@at.no_grad()`."""
    return _GradMode(False)


def enable_grad():
    """Re-enable graph recording inside a `no_grad` block."""
    return _GradMode(True)


def is_grad_enabled():
    return _grad_enabled


@contextlib.contextmanager
def use_fused(enabled: bool):
    """Choose the fused fast paths (True) or their composite twins (False) inside the block."""
    global _fused_enabled
    prev, _fused_enabled = _fused_enabled, bool(enabled)
    try:
        yield
    finally:
        _fused_enabled = prev


def fused_enabled():
    return _fused_enabled


@contextlib.contextmanager
def scope(path):
    """Tag every node recorded inside the block with the module path `path` (e.g. 'layers.2')."""
    global _scope
    prev, _scope = _scope, path
    try:
        yield
    finally:
        _scope = prev


def current_scope():
    return _scope


# ---- the op base class -------------------------------------------------------------------------
class Function:
    """Base class of every op. Subclass it, write `forward`/`backward`, call `Op.apply(...)`.

    An instance is one node of the graph. Attributes the engine and the visualiser read:
    `parents` (per input: the producing node, a leaf Tensor, a constant Tensor, or None for
    plain numbers/arrays), `saved` (what backward needs; freed after backward), `seq`
    (recording order), `scope` (module path), `shape`/`dtype` (of the output).
    Set the class attribute `fused = True` on hand-written fast paths.
    """

    # Subclasses declare no __slots__, so ops may keep extra attributes (axis, shapes, ...).
    __slots__ = ("parents", "saved", "seq", "scope", "shape", "dtype", "retained", "__weakref__")
    _is_node = True
    requires_grad = True         # nodes exist only when some input requires grad
    fused = False

    def forward(self, *args, **params):
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def backward(self, g):
        raise NotImplementedError(f"{type(self).__name__} must implement backward")

    def needs_grad(self, i):
        """True when input `i` needs a gradient: lets backward skip expensive terms."""
        p = self.parents[i]
        return p is not None and p.requires_grad

    @property
    def name(self):
        return type(self).__name__

    @classmethod
    def apply(cls, *args, **params):
        """Run forward on the inputs' arrays; record a node when an input requires grad."""
        fn = _new_object(cls)
        fn.saved = None
        datas = []
        parents = []
        record = False
        for a in args:
            if isinstance(a, Tensor):
                datas.append(a.data)
                if a.requires_grad:
                    record = True
                    parents.append(a._node or a)
                else:
                    parents.append(a)
            else:
                datas.append(a)
                parents.append(None)
        try:
            out = fn.forward(*datas, **params)
        except ValueError as e:
            shapes = ", ".join(str(np.shape(d)) for d in datas)
            raise ValueError(f"{cls.__name__}: inputs of shapes {shapes}: {e}") from None
        if out.__class__ is not np.ndarray:
            out = np.asarray(out)
        if record and _grad_enabled:
            fn.parents = tuple(parents)
            fn.seq = _next_seq()
            fn.scope = _scope
            fn.shape = out.shape
            fn.dtype = out.dtype
            fn.retained = None
            return _wrap(out, fn)
        return _wrap(out, None)

    def __repr__(self):
        return f"<{self.name} node #{getattr(self, 'seq', '?')} out {getattr(self, 'shape', '?')}>"


_new_object = object.__new__


# Bound at the bottom to break the import cycle tensor <-> function.
from .tensor import Tensor, _wrap  # noqa: E402
