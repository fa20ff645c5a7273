"""The recorded graph as `autotensor.viz` reads it: ops in recording order, leaf tensors in
first-use order, each op's inputs as indices, and the leaves' kinds and names.
"""

from __future__ import annotations

import collections

from .autograd import graph_nodes
from .tensor import Tensor


class _Walk:
    """Ops in recording order, leaf tensors in first-use order, inputs of each op as indices.

    inputs[i] holds k >= 0 for op k and ~j (< 0) for leaf j; plain-number inputs are skipped.
    Indices come from recording order, never id(), so the DOT text is deterministic.
    """

    def __init__(self, output, params):
        self.output = output
        self.ops = graph_nodes(output._node)[::-1] if output._node is not None else []
        index = {id(n): i for i, n in enumerate(self.ops)}
        self.leaves, leaf_index, self.inputs = [], {}, []
        for node in self.ops:
            ins = []
            for p in node.parents:
                if p is None:
                    continue
                if p._is_node:
                    ins.append(index[id(p)])
                    continue
                j = leaf_index.get(id(p))
                if j is None:
                    j = leaf_index[id(p)] = len(self.leaves)
                    self.leaves.append(p)
                ins.append(~j)
            self.inputs.append(ins)
        # Module paths that contain other modules: their own ops are never collapsed away.
        self.containers = {""}
        for path in {n.scope for n in self.ops if n.scope}:
            parts = path.split(".")
            self.containers.update(".".join(parts[:k]) for k in range(1, len(parts)))
        names = self.param_names = _param_names(params)
        self.kinds = [_leaf_kind(t, names, params) for t in self.leaves]
        self.names = [names.get(id(t), t.name) for t in self.leaves]
        # Unnamed leaves are called by their kind, numbered only when there are several.
        unnamed = collections.Counter(k for k, n in zip(self.kinds, self.names, strict=True)
                                      if n is None)
        counts = collections.Counter()
        for j, kind in enumerate(self.kinds):
            if self.names[j] is None:
                self.names[j] = f"{kind} {counts[kind]}" if unnamed[kind] > 1 else kind
                counts[kind] += 1

    def op_grad(self, i):
        r = self.ops[i].retained
        return None if r is None else r.grad


def _param_names(params):
    if params is None:
        return {}
    if hasattr(params, "named_parameters") and callable(params.named_parameters):
        items = list(params.named_parameters())
    elif isinstance(params, dict):
        items = list(params.items())
    else:
        try:
            items = list(params)
        except TypeError:
            raise ValueError("params must be a dict name -> Tensor, a Module or an iterable of "
                             f"(name, Tensor) pairs, got {type(params).__name__}") from None
    names = {}
    for item in items:
        # Never tuple() a Tensor: that would record GetItem ops on the parameter itself.
        if (not isinstance(item, (tuple, list)) or len(item) != 2
                or not isinstance(item[0], str) or not isinstance(item[1], Tensor)):
            got = (f"a bare {type(item).__name__} of shape {item.shape} (pass a dict or "
                   "model.named_parameters(), not model.parameters())"
                   if isinstance(item, Tensor) else f"{item!r:.80}")
            raise ValueError(f"params entries must be (name, Tensor) pairs, got {got}")
        names.setdefault(id(item[1]), str(item[0]))
    return names


def _leaf_kind(t, names, params):
    # nn.Parameter marks parameters even when no params= is given (no import of nn needed).
    if id(t) in names or (params is None and any(c.__name__ == "Parameter"
                                                 for c in type(t).__mro__)):
        return "param"
    return "input" if t.requires_grad else "const"

