"""The backward engine: walk the recorded nodes in reverse recording order, accumulating grads.

No recursion anywhere, so graphs of any depth work. Traversal order is deterministic: the
visualiser uses `graph_nodes` too.
"""

from __future__ import annotations

import contextlib

import numpy as np

_FREED = object()          # marks `node.saved` after backward released the node's buffers
_detect_anomaly = False


def unbroadcast(g, shape):
    """Sum `g` down to `shape`: the reverse of numpy broadcasting. The one place this happens."""
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g


def graph_nodes(root_node):
    """Every node reachable from `root_node`, newest first (reverse recording order)."""
    seen = {id(root_node)}
    stack = [root_node]
    nodes = []
    while stack:
        node = stack.pop()
        nodes.append(node)
        for p in node.parents:
            if p is not None and p._is_node and id(p) not in seen:
                seen.add(id(p))
                stack.append(p)
    nodes.sort(key=_seq, reverse=True)
    return nodes


def _seq(node):
    return node.seq


@contextlib.contextmanager
def detect_anomaly():
    """Inside the block, backward raises at the first non-finite gradient, naming op and module."""
    global _detect_anomaly
    prev, _detect_anomaly = _detect_anomaly, True
    try:
        yield
    finally:
        _detect_anomaly = prev


def backward(tensor, grad=None, retain_graph=False):
    """Accumulate d(tensor)/d(leaf) * grad into every leaf's `.grad`. See `Tensor.backward`."""
    if not tensor.requires_grad:
        raise RuntimeError(
            "backward() called on a tensor that does not require grad: no input of the "
            "computation had requires_grad=True, or it was computed under no_grad()")
    if grad is None:
        if tensor.data.size != 1:
            raise RuntimeError(
                f"backward() without a gradient needs a scalar output, got shape "
                f"{tensor.shape}; pass grad= of that shape (e.g. np.ones_like(t.data))")
        grad = np.ones_like(tensor.data)
    else:
        grad = np.asarray(grad.data if hasattr(grad, "_node") else grad, dtype=tensor.dtype)
        if grad.shape != tensor.shape:
            raise ValueError(f"backward(): grad has shape {grad.shape} but the tensor has "
                             f"shape {tensor.shape}")
    # Gradient arrays are shared freely (Add hands the same `g` to both inputs), so nothing
    # is modified in place except arrays this backward allocated itself, which one place holds.
    handed = {id(grad)}      # ids of arrays a leaf (or the caller) holds: other leaves copy
    owned = set()            # ids of sums/copies made here: safe to add into in place
    root = tensor._node
    if root is None:                      # a leaf: its gradient is `grad` itself
        _accumulate_leaf(tensor, grad, handed, owned)
        return

    pending = {root: grad}
    for node in graph_nodes(root):
        g = pending.pop(node, None)
        if g is None:
            continue
        owned.discard(id(g))              # from here on `g` may be handed to others
        if node.saved is _FREED:
            raise RuntimeError(
                f"Trying to backward through the graph a second time ({node.name} node, "
                f"recorded #{node.seq}): its saved buffers were freed by the first backward. "
                "Pass retain_graph=True to the first backward() to keep them.")
        if node.retained is not None:     # Tensor.retain_grad() asked to keep this grad
            _accumulate_leaf(node.retained, g, handed, owned)
        grads = node.backward(g)
        if grads.__class__ is not tuple:
            grads = (grads,)
        if len(grads) != len(node.parents):
            raise RuntimeError(f"{node.name}.backward returned {len(grads)} gradients for "
                               f"{len(node.parents)} inputs (use None for an input without one)")
        if not retain_graph:
            node.saved = _FREED
        for i, (p, gp) in enumerate(zip(node.parents, grads)):
            if gp is None or p is None or not p.requires_grad:
                continue
            if gp.shape != p.shape:
                gp = _reduce_to_input(node, i, gp, p.shape)
            if _detect_anomaly:
                _check_finite(node, gp)
            if p._is_node:
                prev = pending.get(p)
                pending[p] = gp if prev is None else _sum(prev, gp, owned)
            else:
                _accumulate_leaf(p, gp, handed, owned)


def _reduce_to_input(node, i, g, shape):
    """unbroadcast, refusing a gradient that no broadcast of the input could have produced."""
    reduced = unbroadcast(g, shape) if g.ndim >= len(shape) else g
    if reduced.shape != shape:
        raise RuntimeError(f"{node.name}.backward returned a gradient of shape {g.shape} for "
                           f"input {i} of shape {shape} (node #{node.seq}): not a broadcast "
                           "of that shape")
    return reduced


def _sum(total, g, owned):
    """total + g; in place when this backward allocated `total` (no one else can see it).

    NOTE: large fresh arrays page-fault at ~4 GB/s; reusing the sum saves ~8% of an MLP step
    whose weights get several gradient contributions (the L2 term adds two).
    """
    if id(total) in owned:
        total += g
        return total
    total = total + g
    if total.__class__ is np.ndarray:     # 0-d sums come back as immutable numpy scalars
        owned.add(id(total))
    return total


def _accumulate_leaf(leaf, g, handed, owned):
    # Each leaf gets an array of its own dtype that nothing else holds: optimizers update
    # .grad in place. A fresh array that no other leaf got is taken as is (copying every
    # weight gradient costs ~20% of an MLP step); others are copied.
    # A float32 leaf keeps float32 gradients even if a float64 constant joined the graph.
    if leaf.grad is None:
        if (g.__class__ is np.ndarray and g.base is None and id(g) not in handed
                and g.dtype == leaf.data.dtype):
            leaf.grad = g
        else:
            leaf.grad = np.array(g, dtype=leaf.data.dtype)
            owned.add(id(leaf.grad))
        handed.add(id(leaf.grad))
    else:
        leaf.grad = _sum(leaf.grad, np.asarray(g).astype(leaf.grad.dtype, copy=False), owned)


def _check_finite(node, g):
    if not np.all(np.isfinite(g)):
        where = f" in module '{node.scope}'" if node.scope else ""
        raise FloatingPointError(
            f"non-finite gradient produced by the backward of {node.name} (node #{node.seq}"
            f"{where}, output shape {node.shape}): {np.sum(~np.isfinite(g))} of {g.size} "
            "values are nan/inf")
