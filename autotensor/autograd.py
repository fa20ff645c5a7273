"""The backward engine: walk the recorded nodes in reverse recording order, accumulating grads.

No recursion anywhere, so graphs of any depth work. Traversal order is deterministic: the
visualiser uses `graph_nodes` too. One walk (`_walk`) serves `Tensor.backward`, `at.grad`
and the fused ops' second derivatives; with create_graph=True it hands every backward rule
Tensors instead of arrays, so the rules' arithmetic is itself recorded (docs/engine.md).
"""

from __future__ import annotations

import contextlib
import heapq
import operator
from heapq import heappop, heappush

import numpy as np

from . import function, saved_arrays
from .function import Output, describe_scope, describe_trace, output_node
from .hooks import run_hooks

_FREED = object()          # marks `node.saved` after backward released the node's buffers
backward_calls = 0         # how many backward()/grad() walks have run (Tensor.grad's hints)


def unbroadcast(g, shape):
    """Sum `g` down to `shape`: the reverse of numpy broadcasting. The one place this happens.

    Works on arrays and, under create_graph, on Tensors (their `sum` is recorded).
    """
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g


def graph_nodes(*roots, min_seq=0):
    """Every node reachable from the root nodes, newest first (reverse recording order).

    Nodes recorded before `min_seq` are left out (and not walked through).
    """
    seen = {id(r) for r in roots}
    stack = list(roots)
    nodes = []
    while stack:
        node = stack.pop()
        nodes.append(node)
        for p in node.parents:
            if p is not None and p._is_node and id(p) not in seen and p.seq >= min_seq:
                seen.add(id(p))
                stack.append(p)
    nodes.sort(key=_seq, reverse=True)
    return nodes


_seq = operator.attrgetter("seq")


@contextlib.contextmanager
def detect_anomaly():
    """Inside the block, every op's forward output and every backward gradient is checked:
    the first nan/inf raises FloatingPointError naming the op, its module and the source line
    that created it. Outside the block this costs nothing."""
    prev, function._anomaly = function._anomaly, True
    try:
        yield
    finally:
        function._anomaly = prev


# ---- entry points --------------------------------------------------------------------------------
def backward(tensor, grad=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate d(tensor)/d(leaf) * grad into every leaf's `.grad`. See `Tensor.backward`."""
    global backward_calls
    if not tensor.requires_grad:
        raise RuntimeError(
            "backward() called on a tensor that does not require grad: no input of the "
            "computation had requires_grad=True, or it was computed under no_grad()")
    seed = _seed(tensor, grad, create_graph, "backward()")
    retain = create_graph if retain_graph is None else retain_graph
    if inputs is None:
        _walk([tensor], [seed], retain, create_graph)
    else:
        targets = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        found = _walk([tensor], [seed], retain, create_graph, targets)
        for t, g in zip(targets, found):
            if g is not None:
                if t._node is not None:
                    t.retain_grad()
                _deliver(t if t._node is None else t._node.retained, g, create_graph, set(),
                         set())
    backward_calls += 1


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """The gradients of `outputs` with respect to `inputs`, as a tuple of Tensors (PyTorch's
    torch.autograd.grad). Leaves' `.grad` are left alone.

    grad_outputs: one upstream gradient per output (None: ones, for scalar outputs only).
    create_graph=True records the backward pass, so the results can be differentiated again;
    retain_graph defaults to create_graph. allow_unused=True returns None for an input the
    outputs do not depend on (else RuntimeError).
    """
    global backward_calls
    outputs = _tensor_list(outputs, "outputs")
    inputs = _tensor_list(inputs, "inputs")
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    else:
        grad_outputs = [grad_outputs] if isinstance(grad_outputs, (Tensor, np.ndarray)) \
            else list(grad_outputs)
        if len(grad_outputs) != len(outputs):
            raise ValueError(f"grad(): {len(grad_outputs)} grad_outputs for {len(outputs)} "
                             "outputs")
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"grad(): input {i} (shape {t.shape}) does not require grad")
    for i, o in enumerate(outputs):
        if not o.requires_grad:
            raise RuntimeError(f"grad(): output {i} (shape {o.shape}) does not require grad: "
                               "it does not depend on any tensor that requires grad")
    seeds = [_seed(o, g, create_graph, f"grad() output {i}")
             for i, (o, g) in enumerate(zip(outputs, grad_outputs))]
    retain = create_graph if retain_graph is None else retain_graph
    # Only nodes recorded after every non-leaf input can lie between outputs and inputs.
    min_seq = 0 if any(t._node is None for t in inputs) else min(t._node.seq for t in inputs)
    found = _walk(outputs, seeds, retain, create_graph, inputs, min_seq)
    backward_calls += 1
    result = []
    for i, (t, g) in enumerate(zip(inputs, found)):
        if g is None:
            if not allow_unused:
                raise RuntimeError(f"grad(): input {i} (shape {t.shape}) was not used to "
                                   "compute the outputs; pass allow_unused=True to get None")
            result.append(None)
            continue
        if g.__class__ is not Tensor:
            g = _wrap(np.array(g, dtype=t.dtype), None)
        elif g.dtype != t.dtype:
            g = g.astype(t.dtype)
        result.append(g)
    return tuple(result)


def twin_backward(twin, inputs, g):
    """Recorded gradients of sum(twin(*inputs) * g) with respect to each Tensor input (None for
    the others): how a fused op differentiates itself under create_graph, through its
    composite twin. Only the twin's own nodes are walked, so these are partial derivatives.
    """
    start = function._next_seq()
    with function.enable_grad():
        # Each input passes through its own identity node, recorded after `start`: the walk
        # captures the gradient there and never steps outside the twin's subgraph.
        entries = [ops.reshape(x, x.shape) if isinstance(x, Tensor) and x.requires_grad else x
                   for x in inputs]
        out = twin(*entries)
    targets = [e for e in entries if isinstance(e, Tensor) and e.requires_grad]
    found = iter(_walk([out], [g], True, True, targets, start) if targets else ())
    return tuple(next(found) if isinstance(e, Tensor) and e.requires_grad else None
                 for e in entries)


def _tensor_list(x, what):
    items = [x] if isinstance(x, Tensor) else list(x)
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            raise TypeError(f"grad(): {what}[{i}] is a {type(t).__name__}, not a Tensor")
    return items


def _seed(t, g, create_graph, where):
    """The upstream gradient of root `t`: an array, or a Tensor under create_graph."""
    if g is None:
        if t.data.size != 1:
            raise RuntimeError(
                f"{where} without a gradient needs a scalar output, got shape {t.shape}; pass "
                "grad= of that shape (e.g. np.ones_like(t.data))")
        g = np.ones_like(t.data)
    elif isinstance(g, Tensor) and create_graph:
        if g.dtype != t.dtype:
            g = g.astype(t.dtype)
    else:
        g = np.asarray(g.data if isinstance(g, Tensor) else g, dtype=t.dtype)
    if g.shape != t.shape:
        raise ValueError(f"{where}: grad has shape {g.shape} but the tensor has shape "
                         f"{t.shape}")
    if create_graph and g.__class__ is not Tensor:
        g = _wrap(g, None)
    return g


# ---- the walk ----------------------------------------------------------------------------------
def _walk(roots, seeds, retain_graph, create_graph, targets=None, min_seq=0):
    """Backpropagate `seeds` from `roots`.

    targets None: accumulate into every reached leaf's `.grad` (Tensor.backward). Otherwise
    return the gradient reaching each target (a leaf or a non-leaf Tensor), touching no
    `.grad`, and run only the nodes that lead to a target (at.grad).

    Nodes run newest first: a node's consumers were all recorded after it, so when the newest
    node with a pending gradient runs, every contribution to that gradient has arrived. A heap
    of the pending nodes, keyed by recording order, gives that order without sorting the whole
    graph first; nodes recorded before `min_seq` are left out.
    """
    # Gradient arrays are shared freely (Add hands the same `g` to both inputs), so nothing
    # is modified in place except arrays this backward allocated itself, which one place holds.
    handed = {id(g) for g in seeds}   # ids of arrays a leaf (or the caller) holds: others copy
    owned = set()                     # ids of sums/copies made here: safe to add into in place
    found = leaf_slot = node_slot = needed = None
    if targets is not None:
        found = [None] * len(targets)
        leaf_slot, node_slot = {}, {}
        for i, t in enumerate(targets):
            slots = leaf_slot if t._node is None else node_slot
            slots.setdefault(t if t._node is None else t._node, []).append(i)
    hooked = {}                       # leaf with hooks -> its gradient of this walk, summed

    def to_leaf(leaf, g):
        if getattr(leaf, "_hooks", None):        # a constant or a leaf made by _wrap: unset
            prev = hooked.get(leaf)
            hooked[leaf] = g if prev is None else _sum(prev, g, owned)
        elif leaf_slot is None:
            _deliver(leaf, g, create_graph, handed, owned)
        else:
            _capture(found, leaf_slot.get(leaf), g)

    pending = {}
    heap = []
    for t, g in zip(roots, seeds):
        node = t._node
        if node is None:                            # a leaf: its gradient is `g` itself
            to_leaf(t, g)
        elif node in pending:
            pending[node] = pending[node] + g
        else:
            pending[node] = g
            heap.append((-node.seq, node))
    heapq.heapify(heap)
    if targets is not None:
        needed = _needed(graph_nodes(*(n for _, n in heap), min_seq=min_seq), leaf_slot,
                         node_slot)
    # Only nodes recorded before the latest in-place write can have saved an overwritten array.
    last_write = saved_arrays.last_write
    anomaly = function._anomaly
    token = function.set_grad_mode(create_graph)    # rules record only under create_graph
    try:
        newest = None                 # a node known to be the newest pending one: no heap trip
        while newest is not None or heap:
            if newest is None:
                node = heappop(heap)[1]
            else:
                node, newest = newest, None
            g = pending.pop(node)
            if owned:
                owned.discard(id(g))          # from here on `g` may be handed to others
            if node.hooks is not None:        # Tensor.register_hook on this node's output
                g = run_hooks(node.hooks, g, node.shape)
            if node_slot is not None and node in node_slot:
                _capture(found, node_slot[node], g)
            if node.retained is not None:     # Tensor.retain_grad() asked to keep this grad
                _deliver(node.retained, g, create_graph, handed, owned)
            if node.__class__ is Output:      # one output of a multi-output node
                source = node.source
                slots = pending.get(source)
                if slots is None:
                    if source.seq < min_seq:
                        continue
                    slots = pending[source] = [None] * len(source.out_ids)
                    heappush(heap, (-source.seq, source))
                prev = slots[node.index]
                slots[node.index] = g if prev is None else _sum(prev, g, owned)
                continue
            if needed is not None and node not in needed:
                continue
            if node.saved is _FREED:
                raise RuntimeError(
                    f"Trying to backward through the graph a second time ({node.name} node, "
                    f"recorded #{node.seq}): its saved buffers were freed by the first "
                    "backward. Pass retain_graph=True to the first backward() to keep them.")
            if node.seq < last_write:
                saved_arrays.check_saved(node)
            if create_graph or g.__class__ is list:
                grads = _run_rule(node, g, create_graph)
            else:
                grads = node.backward(g)
                if grads.__class__ is not tuple:
                    grads = (grads,)
            if not retain_graph:
                node.saved = _FREED
                node.guard = None             # lets go of the read-only hold (saved_arrays._Guard)
            parents = node.parents
            fresh = None                  # the first parent node this gradient made pending
            if len(grads) != len(parents):
                raise RuntimeError(f"{node.name}.backward returned {len(grads)} gradients for "
                                   f"{len(parents)} inputs (use None for an input without one)")
            for i, p in enumerate(parents):
                gp = grads[i]
                if gp is None or p is None or not p.requires_grad:
                    continue
                if create_graph and gp.__class__ is not Tensor:
                    gp = _wrap(np.asarray(gp), None)
                if gp.shape != p.shape:
                    gp = _reduce_to_input(node, i, gp, p.shape)
                if anomaly:
                    _check_finite(node, gp)
                if p._is_node:
                    prev = pending.get(p)
                    if prev is not None:
                        pending[p] = _sum(prev, gp, owned)
                    elif p.seq >= min_seq:
                        pending[p] = gp
                        if fresh is None:
                            fresh = p
                        else:
                            heappush(heap, (-p.seq, p))
                else:
                    to_leaf(p, gp)
            if fresh is not None:         # a chain: the parent runs next, without the heap
                if heap and -heap[0][0] > fresh.seq:
                    heappush(heap, (-fresh.seq, fresh))
                else:
                    newest = fresh
        for leaf, g in hooked.items():        # every contribution has arrived: run its hooks
            g = run_hooks(leaf._hooks, g, leaf.shape)
            if leaf_slot is None:
                _deliver(leaf, g, create_graph, handed, owned)
            else:
                _capture(found, leaf_slot.get(leaf), g)
    finally:
        function._MODE.reset(token)
    return found


def _run_rule(node, g, create_graph):
    """node.backward on this gradient (one per output for a multi-output node), as a tuple."""
    if g.__class__ is list:                 # a multi-output node: zeros for unused outputs
        g = [gi if gi is not None else np.zeros(shape, dtype)
             for gi, shape, dtype in zip(g, node.shape, node.dtype)]
    if create_graph:
        if g.__class__ is list:
            g = [gi if gi.__class__ is Tensor else _wrap(gi, None) for gi in g]
        saved = node.saved
        if saved is not None:
            node.saved = _connected(node, saved)
        try:
            grads = node.backward(*g) if g.__class__ is list else node.backward(g)
        finally:
            node.saved = saved
    else:
        grads = node.backward(*g) if g.__class__ is list else node.backward(g)
    return grads if grads.__class__ is tuple else (grads,)


def _needed(nodes, leaf_slot, node_slot):
    """The nodes through which a gradient can reach a target (oldest first, one pass)."""
    needed = set()
    for node in reversed(nodes):
        for p in node.parents:
            if p is None:
                continue
            if (p in needed or p in node_slot) if p._is_node else p in leaf_slot:
                needed.add(node)
                break
    return needed


def _capture(found, slots, g):
    for i in slots or ():
        found[i] = g if found[i] is None else found[i] + g


# ---- create_graph: saved arrays as Tensors on the graph ------------------------------------------
def _connected(node, saved):
    """`saved` with each saved input or output array replaced by a Tensor on the graph, found
    by identity: an input's array becomes its leaf Tensor (or a Tensor of its producing node),
    the node's own output a Tensor of this node. Other arrays (masks, signs) stay constants."""
    items = saved if saved.__class__ is tuple else (saved,)
    new = [_on_graph(node, s) if s.__class__ is np.ndarray else s for s in items]
    return tuple(new) if saved.__class__ is tuple else new[0]


def _on_graph(node, s):
    sid = id(s)
    if sid == node.out_id or sid == node.out_alias:
        return _wrap(s, node)
    out_ids = getattr(node, "out_ids", None)
    if out_ids is not None and sid in out_ids:
        i = out_ids.index(sid)
        return _wrap(s, output_node(node, i, s.shape, s.dtype, sid))
    for p in node.parents:
        if p is None:
            continue
        if p._is_node:
            if p.out_id == sid or p.out_alias == sid:
                return _wrap(s, p)
        elif p.data is s:
            return p
    return s


# ---- checks ------------------------------------------------------------------------------------
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


def _deliver(leaf, g, create_graph, handed, owned):
    """Accumulate `g` into `leaf.grad` (a retained stand-in's too)."""
    if create_graph:                      # .grad becomes a Tensor on the graph, as in PyTorch
        if g.__class__ is not Tensor:
            g = _wrap(np.asarray(g), None)
        if g.dtype != leaf.data.dtype:
            g = g.astype(leaf.data.dtype)
        leaf._grad = g if leaf._grad is None else leaf._grad + g
        return
    if g.__class__ is Tensor:             # a Tensor gradient reached a first-order walk
        g = g.data
    # Each leaf gets an array of its own dtype that nothing else holds: optimizers update
    # .grad in place. A fresh array that no other leaf got is taken as is (copying every
    # weight gradient costs ~20% of an MLP step); others are copied.
    # A float32 leaf keeps float32 gradients even if a float64 constant joined the graph.
    if leaf._grad is None:
        if (g.__class__ is np.ndarray and g.base is None and id(g) not in handed
                and g.dtype == leaf.data.dtype):
            leaf._grad = g
        else:
            leaf._grad = np.array(g, dtype=leaf.data.dtype)
            owned.add(id(leaf._grad))
        handed.add(id(leaf._grad))
    elif leaf._grad.__class__ is Tensor:  # accumulating onto a create_graph gradient
        leaf._grad = leaf._grad + np.asarray(g).astype(leaf.data.dtype, copy=False)
    else:
        leaf._grad = _sum(leaf._grad, np.asarray(g).astype(leaf._grad.dtype, copy=False),
                          owned)


def _check_finite(node, g):
    g = g.data if g.__class__ is Tensor else g
    if not np.all(np.isfinite(g)):
        where = describe_trace(node.trace) if node.trace else f"({describe_scope(node.scope)})"
        raise FloatingPointError(
            f"non-finite gradient produced by the backward of {node.name} (node #{node.seq}, "
            f"output shape {node.shape}) {where}: {np.sum(~np.isfinite(g))} of {g.size} "
            "values are nan/inf")


from . import ops  # noqa: E402  (twin_backward records ops)
from .tensor import Tensor, _wrap  # noqa: E402
