"""Derivatives of whole functions, in torch.autograd.functional's signatures: `at.functional`.

`vjp`, `jvp`, `jacobian`, `hessian`, `hvp` and `vhp` take a function of Tensors and its
inputs (a Tensor or a tuple of Tensors) and build on `at.grad`; `jvp` uses the double-vjp
trick (J v = d/du <J^T u, v>), so everything runs on reverse mode. As in PyTorch, results
are cut from the graph unless create_graph=True, and an output that does not depend on an
input gives zeros (strict=True raises instead). `vectorize=True` and forward-mode strategies
are refused with NotImplementedError.

    >>> f = lambda x: (x ** 3).sum()
    >>> out, hv = at.functional.hvp(f, at.tensor([1.0, 2.0]), at.tensor([1.0, 0.0]))
    >>> hv.data                      # H = diag(6x): H v = [6, 0]
    array([6., 0.])
"""

from __future__ import annotations

import numpy as np

from . import ops
from .autograd import grad
from .function import enable_grad
from .tensor import Tensor, _wrap

__all__ = ["vjp", "jvp", "jacobian", "hessian", "hvp", "vhp"]


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T J): the vector-Jacobian product at `inputs`. v: like the outputs
    (may be None for a single-element output)."""
    is_tuple, xs = _inputs(inputs, create_graph, "vjp")
    with enable_grad():
        out = func(*xs)
    outs = _outputs(out, "vjp")
    vs = _vectors(v, outs, "v", "outputs", "vjp")
    grads = _grad(outs, xs, vs, create_graph, strict, "vjp")
    return _result(out, create_graph), _shape_like(grads, is_tuple)


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), J v): the Jacobian-vector product. v: like the inputs (may be None for
    a single-element input). Computed by the double-vjp trick: J v = d/du (u^T J) v."""
    is_tuple, xs = _inputs(inputs, create_graph, "jvp")
    vs = _vectors(v, xs, "v", "inputs", "jvp")
    with enable_grad():
        out = func(*xs)
        outs = _outputs(out, "jvp")
        us = [Tensor(np.zeros(o.shape, o.dtype), requires_grad=True) for o in outs]
        live = [(o, u) for o, u in zip(outs, us) if o.requires_grad]
        ut = [] if not live else _grad([o for o, _ in live], xs, [u for _, u in live], True,
                                       strict, "jvp")
    pairs = [(g, vi) for g, vi in zip(ut, vs) if g.requires_grad]
    if pairs:
        jv = _grad([g for g, _ in pairs], us, [vi for _, vi in pairs], create_graph, strict,
                   "jvp")
    else:
        jv = [_zeros(u) for u in us]
    return _result(out, create_graph), _shape_like(jv, isinstance(out, tuple))


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False,
             strategy="reverse-mode"):
    """The Jacobian of func at inputs: for output k and input i, a Tensor of shape
    outputs[k].shape + inputs[i].shape, nested like PyTorch's (a Tensor for one input and one
    output, tuples otherwise). One reverse pass per output element."""
    _refuse(vectorize, strategy, "jacobian", "strategy")
    is_tuple, xs = _inputs(inputs, create_graph, "jacobian")
    with enable_grad():
        out = func(*xs)
    outs = _outputs(out, "jacobian")
    jac = [_jacobian_rows(o, xs, create_graph, strict) for o in outs]
    rows = [_shape_like(r, is_tuple) for r in jac]
    return tuple(rows) if isinstance(out, tuple) else rows[0]


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False,
            outer_jacobian_strategy="reverse-mode"):
    """The Hessian of a scalar func at inputs: shape inputs[i].shape + inputs[j].shape for
    each pair (a Tensor for one input, a tuple of tuples otherwise)."""
    _refuse(vectorize, outer_jacobian_strategy, "hessian", "outer_jacobian_strategy")
    is_tuple, xs = _inputs(inputs, create_graph, "hessian")

    def gradient(*ys):
        out = _scalar(func(*ys), "hessian")
        gs = _grad([out], ys, [None], True, strict, "hessian")
        return tuple(gs) if is_tuple else gs[0]

    return jacobian(gradient, tuple(xs) if is_tuple else xs[0], create_graph, strict)


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T H) for a scalar func: the gradient of <grad func, v>."""
    is_tuple, xs = _inputs(inputs, create_graph, "vhp")
    vs = _vectors(v, xs, "v", "inputs", "vhp")
    with enable_grad():
        out = _scalar(func(*xs), "vhp")
        gs = _grad([out], xs, [None], True, strict, "vhp")
    pairs = [(g, vi, x) for g, vi, x in zip(gs, vs, xs) if g.requires_grad]
    if pairs:
        hv = _grad([g for g, _, _ in pairs], xs, [vi for _, vi, _ in pairs], create_graph,
                   strict, "vhp")
    else:
        hv = [_zeros(x) for x in xs]
    return _result(out, create_graph), _shape_like(hv, is_tuple)


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), H v) for a scalar func. NOTE: computed as v^T H (one reverse pass over
    the gradient), which is H v because a Hessian of a twice continuously differentiable
    function is symmetric; PyTorch's hvp takes a second, slower double-backward route to the
    same numbers."""
    return vhp(func, inputs, v, create_graph, strict)


# ---- shared plumbing -----------------------------------------------------------------------------
def _inputs(inputs, create_graph, fn):
    """(was a tuple, list of Tensors to differentiate at). As in PyTorch: detached copies
    that require grad, unless create_graph keeps an input's own graph."""
    is_tuple = isinstance(inputs, (tuple, list))
    items = list(inputs) if is_tuple else [inputs]
    xs = []
    for i, x in enumerate(items):
        if not isinstance(x, Tensor):
            raise TypeError(f"{fn}: inputs[{i}] is a {type(x).__name__}, not a Tensor")
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"{fn}: inputs[{i}] has dtype {x.dtype}; differentiation needs a "
                            "floating-point tensor")
        if create_graph and x.requires_grad:
            xs.append(ops.reshape(x, x.shape))     # on x's graph, yet a tensor of its own
        else:
            xs.append(Tensor(x.data, requires_grad=True))
    return is_tuple, xs


def _outputs(out, fn):
    items = list(out) if isinstance(out, tuple) else [out]
    for i, o in enumerate(items):
        if not isinstance(o, Tensor):
            raise TypeError(f"{fn}: the function must return a Tensor or a tuple of Tensors, "
                            f"output {i} is a {type(o).__name__}")
    return items


def _scalar(out, fn):
    if not isinstance(out, Tensor) or out.size != 1:
        shape = getattr(out, "shape", type(out).__name__)
        raise RuntimeError(f"{fn}: the function must return a single-element Tensor, got "
                           f"{shape}")
    return out


def _vectors(v, like, name, what, fn):
    """v as a list of Tensors shaped like `like` (None: ones, for single elements only)."""
    if v is None:
        if any(t.size != 1 for t in like):
            raise RuntimeError(f"{fn}: {name} may be None only when the {what} have a single "
                               f"element; got shapes {[t.shape for t in like]}")
        return [Tensor(np.ones(t.shape, t.dtype)) for t in like]
    vs = list(v) if isinstance(v, (tuple, list)) else [v]
    if len(vs) != len(like):
        raise ValueError(f"{fn}: {len(vs)} tensors in {name} for {len(like)} {what}")
    out = []
    for i, (vi, t) in enumerate(zip(vs, like)):
        vi = vi if isinstance(vi, Tensor) else Tensor(np.asarray(vi, dtype=t.dtype))
        if vi.shape != t.shape:
            raise ValueError(f"{fn}: {name}[{i}] has shape {vi.shape}, the {what}[{i}] "
                             f"{t.shape}")
        out.append(vi)
    return out


def _grad(outs, xs, vs, create_graph, strict, fn):
    """at.grad with PyTorch's functional conventions: zeros for unused inputs (strict raises),
    and nothing at all when no output requires grad."""
    live = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
    if not live:
        if strict:
            raise RuntimeError(f"{fn} (strict=True): the outputs do not depend on the inputs")
        return [_zeros(x) for x in xs]
    gs = grad([o for o, _ in live], xs, [v for _, v in live], retain_graph=True,
              create_graph=create_graph, allow_unused=True)
    result = []
    for i, (g, x) in enumerate(zip(gs, xs)):
        if g is None:
            if strict:
                raise RuntimeError(f"{fn} (strict=True): the outputs do not depend on input "
                                   f"{i}")
            g = _zeros(x)
        result.append(g)
    return result


def _jacobian_rows(out, xs, create_graph, strict):
    """[d out / d x for x in xs], each of shape out.shape + x.shape: one pass per element."""
    rows = [[] for _ in xs]
    for j in range(out.size):
        onehot = np.zeros(out.size, out.dtype)
        onehot[j] = 1
        gs = _grad([out], xs, [onehot.reshape(out.shape)], create_graph, strict, "jacobian")
        for r, g in zip(rows, gs):
            r.append(g)
    result = []
    for r, x in zip(rows, xs):
        shape = out.shape + x.shape
        if not r:
            result.append(Tensor(np.zeros(shape, x.dtype)))
        elif create_graph:
            result.append(ops.reshape(ops.stack(r), shape))
        else:
            result.append(Tensor(np.stack([g.data for g in r]).reshape(shape)))
    return result


def _zeros(x):
    return Tensor(np.zeros(x.shape, x.dtype))


def _result(out, create_graph):
    """func's output as PyTorch returns it: cut from the graph unless create_graph."""
    if create_graph:
        return out
    if isinstance(out, tuple):
        return tuple(_wrap(o.data, None) for o in out)
    return _wrap(out.data, None)


def _shape_like(items, is_tuple):
    return tuple(items) if is_tuple else items[0]


def _refuse(vectorize, strategy, fn, name):
    if vectorize:
        raise NotImplementedError(f"{fn}: vectorize=True is not supported (autotensor has no "
                                  "batching transform); it computes one reverse pass per "
                                  "output element")
    if strategy != "reverse-mode":
        raise NotImplementedError(f"{fn}: {name}={strategy!r} is not supported: autotensor is "
                                  "reverse-mode only (use the default 'reverse-mode')")
