"""The op contract: `Function` records one node on the tape, plus the recording modes.

Every primitive, every fused fast path and every user-defined op is a `Function` subclass:

    class Mul(Function):
        '''z = x * y'''
        def forward(self, x, y):
            self.saved = (x, y)
            return x * y

        def backward(self, g):
            x, y = self.saved
            return g * y, g * x

`forward` works on numpy arrays. `backward` returns one gradient per input of `forward` (or
None where no gradient is needed); the engine reduces each gradient to its input's shape (see
`autograd.unbroadcast`), so no op repeats broadcasting logic. The same `backward` serves every
order: normally `g` and `self.saved` are arrays; under `backward(create_graph=True)` the engine
hands it `g` as a Tensor and every saved input/output array as a Tensor on the graph, so the
rule's arithmetic is recorded and can be differentiated again (docs/engine.md).

A `forward` may return a tuple of arrays: `apply` then returns a tuple of Tensors and
`backward(self, *grads)` receives one gradient per output (zeros for an output that received
none, as PyTorch does by default).
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import sys

import numpy as np

# ---- recording modes ---------------------------------------------------------------------------
# Per thread (and per asyncio task): context variables. A new thread starts with the defaults,
# so `no_grad()` in one thread never turns recording off in another. ContextVar.get() is the
# cheapest per-thread read Python has (~20 ns): `Function.apply` reads one, _MODE = (grad
# enabled, module scope path, scope owner's class name), once per recorded op.
_MODE = contextvars.ContextVar("autotensor_mode", default=(True, None, None))
_mode = _MODE.get
_FUSED = contextvars.ContextVar("autotensor_fused_enabled", default=True)
_next_seq = itertools.count(1).__next__

# Process-wide, like PyTorch's anomaly mode: set by `autograd.detect_anomaly`. A plain global
# so that outside the mode the per-op cost is one global read.
_anomaly = False


class _GradMode(contextlib.ContextDecorator):
    """Context manager and decorator that turns recording off (or on) in this thread."""

    def __init__(self, enabled):
        self.enabled = bool(enabled)
        self._tokens = []

    def _recreate_cm(self):          # a decorated function called from two threads at once
        return type(self)(self.enabled)

    def __enter__(self):
        self._tokens.append(set_grad_mode(self.enabled))
        return self

    def __exit__(self, *exc):
        _MODE.reset(self._tokens.pop())
        return False


def set_grad_mode(enabled):
    """Turn recording on/off in this thread; returns the token `_MODE.reset` takes back."""
    _, path, owner = _MODE.get()
    return _MODE.set((enabled, path, owner))


def no_grad():
    """Disable graph recording in this thread: `with at.no_grad(): ...` or `@at.no_grad()`."""
    return _GradMode(False)


def enable_grad():
    """Re-enable graph recording inside a `no_grad` block."""
    return _GradMode(True)


def set_grad_enabled(mode):
    """`with at.set_grad_enabled(flag):` records when flag is True (PyTorch's name)."""
    return _GradMode(mode)


def is_grad_enabled():
    return _MODE.get()[0]


@contextlib.contextmanager
def use_fused(enabled: bool):
    """Choose the fused fast paths (True) or their composite twins (False) inside the block
    (in this thread)."""
    token = _FUSED.set(bool(enabled))
    try:
        yield
    finally:
        _FUSED.reset(token)


def fused_enabled():
    return _FUSED.get()


@contextlib.contextmanager
def scope(path, owner=None):
    """Tag every node recorded inside the block with the module path `path` (e.g. 'layers.2';
    '' for the root module's own ops). `owner` names the module for error messages."""
    token = _MODE.set((_MODE.get()[0], path, owner))
    try:
        yield
    finally:
        _MODE.reset(token)


def current_scope():
    return _MODE.get()[1]


def describe_scope(path, owner=None):
    """'module 'fc1'', 'the root module's own forward (MLP)' or 'no module': for messages."""
    if path is None:
        return "outside any module"
    if path == "":
        return "in the root module's own forward" + (f" ({owner})" if owner else "")
    return f"in module '{path}'" + (f" ({owner})" if owner else "")


# ---- the op base class -------------------------------------------------------------------------
class Function:
    """Base class of every op. Subclass it, write `forward`/`backward`, call `Op.apply(...)`.

    An instance is one node of the graph. Attributes the engine and the visualiser read:
    `parents` (per input: the producing node, a leaf Tensor, a constant Tensor, or None for
    plain numbers/arrays), `saved` (what backward needs; freed after backward), `seq`
    (recording order), `scope` (module path), `shape`/`dtype` (of the output), `out_id` (the
    id of the output array: create_graph finds saved outputs by identity), `retained` and
    `hooks` (Tensor.retain_grad and Tensor.register_hook on the output; usually None).
    Set the class attribute `fused = True` on hand-written fast paths.
    """

    # Subclasses declare no __slots__, so ops may keep extra attributes (axis, shapes, ...).
    __slots__ = ("parents", "saved", "seq", "scope", "shape", "dtype", "retained", "hooks",
                 "out_id", "guard", "__weakref__")
    _is_node = True
    requires_grad = True         # nodes exist only when some input requires grad
    fused = False
    trace = None                 # anomaly mode: where the op was created
    out_alias = None             # in-place ops: id of the array the op first returned

    def __init_subclass__(cls, **kwargs):
        # NOTE: `apply` makes each node with `cls()`, which skips Python code when neither
        # method is defined: half the instructions of object.__new__(cls) (docs/performance.md).
        super().__init_subclass__(**kwargs)
        for method in ("__init__", "__new__"):
            if method in cls.__dict__:
                raise TypeError(f"{cls.__name__}: a Function subclass may not define {method}: "
                                "apply creates one node per call; pass per-call values to "
                                "forward as arguments and keep them on self there")

    def forward(self, *args, **params):
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def backward(self, g):
        raise NotImplementedError(f"{type(self).__name__} must implement backward")

    def needs_grad(self, i):
        """True when input `i` needs a gradient: lets backward skip expensive terms."""
        p = self.parents[i]
        return p is not None and p.requires_grad

    def graph_input(self, i, data):
        """Input `i` as a Tensor on the graph holding `data`, its forward value: how a fused op
        hands its composite twin the inputs it rebuilt from what it saved (create_graph)."""
        p = self.parents[i]
        if p is None:
            return data
        return _wrap(data, p) if p._is_node else p      # a leaf or constant Tensor: itself

    @property
    def name(self):
        return type(self).__name__

    @classmethod
    def apply(cls, *args, **params):
        """Run forward on the inputs' arrays; record a node when an input requires grad."""
        fn = cls()
        fn.saved = None
        datas = []
        parents = []
        record = False
        exposed = False          # an input array the user may write into: a leaf's, a constant
        for a in args:
            if isinstance(a, Tensor):
                datas.append(a.data)
                if a.requires_grad:
                    record = True
                    node = a._node
                    if node is None:
                        exposed = True
                        parents.append(a)
                    else:
                        parents.append(node)
                else:
                    exposed = True
                    if a.data.dtype.kind == "c":      # only constants can be complex
                        _check_constant(cls, a.data)
                    parents.append(a)
            else:
                if a.__class__ is not float and a.__class__ is not int:
                    exposed = _check_constant(cls, a) or exposed
                datas.append(a)
                parents.append(None)
        try:
            # NOTE: `**params` copies the dict even when it is empty: most ops take none.
            out = fn.forward(*datas, **params) if params else fn.forward(*datas)
        except ValueError as e:
            shapes = ", ".join(str(np.shape(d)) for d in datas)
            raise ValueError(f"{cls.__name__}: inputs of shapes {shapes}: {e}") from None
        if out.__class__ is not np.ndarray:
            if out.__class__ is tuple:
                return _apply_multi(fn, out, parents, record, exposed, datas)
            out = _array_out(fn, out)
        t = _new_tensor(Tensor)          # tensor._wrap, inlined: this is the hottest path
        t.data = out
        t._grad = None
        t.name = None
        if record and (mode := _mode())[0]:
            fn.parents = tuple(parents)
            fn.seq = _next_seq()
            fn.scope = mode[1]
            fn.shape = out.shape
            fn.dtype = out.dtype
            fn.retained = fn.hooks = None
            fn.out_id = _id(out)
            if exposed:
                _note_recorded_use(fn, datas)
            if _anomaly:
                _anomaly_forward(fn, (out,))
            t.requires_grad = True
            t._node = fn
            return t
        if _anomaly:
            _anomaly_forward(fn, (out,))
        if record:
            _note_untracked_use(args)
        t.requires_grad = False
        t._node = None
        return t

    def __repr__(self):
        return f"<{self.name} node #{getattr(self, 'seq', '?')} out {getattr(self, 'shape', '?')}>"


_new_tensor = object.__new__
_id = id


def _array_out(fn, out):
    """`out` (a numpy scalar: what ufuncs return for 0-d inputs) as a 0-d array, swapped into
    fn.saved too, so that create_graph finds a saved output by identity (autograd._on_graph)."""
    arr = np.asarray(out)
    saved = fn.saved
    if saved is out:
        fn.saved = arr
    elif saved.__class__ is tuple and any(s is out for s in saved):
        fn.saved = tuple(arr if s is out else s for s in saved)
    return arr


# ---- helpers for backward rules: the one place a rule meets both arrays and Tensors -------------
# `value(x)` (tensor._data, bound at the bottom): the array of a Tensor, x itself otherwise; for
# constants a rule derives from saved values (signs, masks, conditions), which carry no gradient.
def call(op, *args, **params):
    """Use op `op` inside a backward rule: its forward on arrays (an array back, nothing
    recorded), or `op.apply` when an argument is a Tensor (create_graph: recorded)."""
    for a in args:
        if isinstance(a, Tensor):
            return op.apply(*args, **params)
    fn = op()
    fn.saved = None
    return fn.forward(*args, **params)


def _check_constant(cls, a):
    """Refuse complex, string and object inputs at the call; True for a plain ndarray."""
    if isinstance(a, np.ndarray):
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{cls.__name__}: got an array of dtype {a.dtype}; autotensor ops "
                            "take bool, integer or floating-point data")
        return True
    if isinstance(a, (complex, str, bytes, np.complexfloating)):
        raise TypeError(f"{cls.__name__}: got a {type(a).__name__} ({a!r}); autotensor ops take "
                        "bool, integer or floating-point data")
    return False


# ---- multi-output ops --------------------------------------------------------------------------
class Output(Function):
    """Output `index` of a multi-output node `source`: the node its Tensor points to.

    The backward walk hands its gradient to `source` in slot `index`; `source.backward`
    runs once with every output's gradient.
    """

    def backward(self, g):
        raise RuntimeError("Output nodes are handled by the backward walk")

    @property
    def name(self):
        return f"{self.source.name}[{self.index}]"


def output_node(source, index, shape, dtype, out_id):
    """A new `Output` node for output `index` of `source` (recorded now: seq after source)."""
    node = Output()
    node.source, node.index = source, index
    node.parents = (source,)
    node.saved = None
    node.seq = _next_seq()
    node.scope = source.scope
    node.shape, node.dtype = shape, dtype
    node.retained = node.hooks = None
    node.out_id = out_id
    return node


def _apply_multi(fn, outs, parents, record, exposed, datas):
    outs = tuple(o if o.__class__ is np.ndarray else _array_out(fn, o) for o in outs)
    if _anomaly:
        _anomaly_forward(fn, outs)
    if not (record and _MODE.get()[0]):
        return tuple(_wrap(o, None) for o in outs)
    fn.parents = tuple(parents)
    fn.seq = _next_seq()
    fn.scope = _MODE.get()[1]
    fn.shape = tuple(o.shape for o in outs)       # one shape per output
    fn.dtype = tuple(o.dtype for o in outs)
    fn.retained = fn.hooks = None
    fn.out_id = None
    fn.out_ids = tuple(id(o) for o in outs)
    if exposed:
        _note_recorded_use(fn, datas)
    return tuple(_wrap(o, output_node(fn, i, o.shape, o.dtype, id(o)))
                 for i, o in enumerate(outs))


# ---- bookkeeping for Tensor.grad's explanations and the saved-array holds ----------------------
def _note_recorded_use(fn, datas):
    """A recorded node with a leaf or constant input: clear the leaves' Tensor.grad hints and
    hold the user-owned arrays it saved read-only."""
    for p in fn.parents:
        if p is not None and not p._is_node and p.requires_grad:
            p._hint = None
    if fn.saved is not None:
        saved_arrays.guard(fn, datas)


def _note_untracked_use(args):
    """Under no_grad: remember on each leaf that requires grad and that no recorded op has
    used yet why its .grad may stay None (Tensor.grad explains it)."""
    for a in args:
        if isinstance(a, Tensor) and a.requires_grad and a._node is None and \
                getattr(a, "_hint", None) is not None:
            a._hint = "no_grad"


# ---- anomaly mode --------------------------------------------------------------------------------
def _anomaly_forward(fn, outs):
    """detect_anomaly: remember where the op was created, raise on a nan/inf output."""
    fn.trace = (user_frame(), *_MODE.get()[1:])
    for i, o in enumerate(outs):
        if o.dtype.kind in "fc" and not np.all(np.isfinite(o)):
            bad = int(np.sum(~np.isfinite(o)))
            which = f" output {i}" if len(outs) > 1 else ""
            raise FloatingPointError(
                f"non-finite forward output{which} of {fn.name} {describe_trace(fn.trace)}: "
                f"{bad} of {o.size} values are nan/inf (shape {o.shape})")


def user_frame():
    """'file.py:12' of the innermost frame outside the autotensor package (the user's line)."""
    frame = sys._getframe(1)
    while frame is not None:
        path = frame.f_code.co_filename
        if not path.startswith(_PACKAGE_DIRS):
            return f"{path}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


def describe_trace(trace):
    """'(module 'fc1' (Linear), created at model.py:12)' for an anomaly message."""
    if trace is None:
        return ""
    where, path, owner = trace
    return f"({describe_scope(path, owner)}, created at {where})"


def _package_dirs():
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    return tuple(os.path.join(root, d) + os.sep for d in ("autotensor", "nn", "optim"))


_PACKAGE_DIRS = _package_dirs()

# Bound at the bottom to break the import cycles tensor <-> function <-> saved_arrays.
from . import saved_arrays  # noqa: E402
from .tensor import Tensor, _wrap  # noqa: E402
from .tensor import _data as value  # noqa: E402, F401  (see the helpers for backward rules)
