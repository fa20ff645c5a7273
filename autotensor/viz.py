"""Draw the recorded computation graph: `draw_graph(loss)` -> Graph (DOT, SVG/PNG/PDF, Jupyter).

Ops are white rounded boxes named like the op (fused fast paths in gold with a double outline);
leaf tensors are square boxes: parameters (blue, labelled with their names), inputs that need a
gradient (orange) and constants (grey, dashed); the output is green. Edges carry the shape and
dtype of the tensor flowing along them. See docs/visualization.md for every option.

Large graphs stay readable: ops recorded inside a Module are drawn in nested clusters named by
the module path, can be collapsed to one node per module, and `max_nodes` bounds the picture by
collapsing modules and then eliding long chains with a "… N more ops" node.

This module is the public API and turns a layout into drawn nodes, edges and clusters; the
graph is read by _viz_walk.py, what is drawn of it is chosen by _viz_layout.py, and how it looks
and renders is _viz_render.py.
"""

from __future__ import annotations

import collections
import pathlib
import warnings

import numpy as np

from . import _viz_render as R
from ._viz_layout import _choose_layout
from ._viz_walk import _Walk
from .autograd import _FREED, graph_nodes
from .tensor import Tensor, _wrap

__all__ = ["draw_graph", "Graph", "summary", "retain_grads"]

_RANKDIRS = ("TB", "LR", "BT", "RL")
_WARN_NODES = 1500          # beyond this, suggest max_nodes: dot gets slow and the picture useless


class Graph:
    """A drawn graph: `.digraph` (graphviz.Digraph), `.source` (DOT text), `.save(path)`.

    Displays itself inline in Jupyter (SVG). `num_nodes` counts the drawn nodes (no legend);
    `hidden_ops` counts ops folded into "… N more ops" nodes.
    """

    def __init__(self, digraph, num_nodes, hidden_ops):
        self.digraph = digraph
        self.source = digraph.source
        self.num_nodes = num_nodes
        self.hidden_ops = hidden_ops
        self._svg = None

    def pipe(self, format="svg", backend="auto"):  # noqa: A002 (graphviz's own name)
        """The rendered bytes: format svg/png/pdf/jpg/gv; backend 'auto'/'dot'/'pygraphviz'."""
        return R.render(self.source, format.lower(), backend)

    def save(self, path, backend="auto"):
        """Write the picture to `path`; the format comes from its extension. Returns the path."""
        path = pathlib.Path(path)
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in R.FORMATS:
            raise ValueError(f"cannot tell the format of {str(path)!r} from its extension; use "
                             f"one of {', '.join('.' + f for f in R.FORMATS)}")
        data = self.pipe(fmt, backend)
        path.write_bytes(data)
        return path

    def _repr_svg_(self):
        if self._svg is None:
            self._svg = self.pipe("svg").decode("utf-8")
        return self._svg

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"image/svg+xml": self._repr_svg_(), "text/plain": repr(self)}

    def __repr__(self):
        hidden = f", {self.hidden_ops} ops elided" if self.hidden_ops else ""
        return f"<autotensor.viz.Graph: {self.num_nodes} nodes{hidden}>"


def retain_grads(output):
    """Make the next `backward()` keep the gradient of every op output in `output`'s graph.

    Call it before `loss.backward()`; `draw_graph(loss, show_grads=True)` then colours every op
    by its output's gradient norm, not only the leaves. Costs one array per op.
    """
    _check_tensor(output)
    if output._node is None:
        return output
    output.retain_grad()
    for node in graph_nodes(output._node):
        if node.retained is None:
            # A zero-memory stand-in: the engine only reads its dtype and writes its .grad.
            node.retained = _wrap(np.broadcast_to(np.zeros((), node.dtype), node.shape), None)
    return output


def _check_tensor(output):
    if not isinstance(output, Tensor):
        raise ValueError(f"expected a Tensor (the output to draw), got {type(output).__name__}")


# ---- the public entry point --------------------------------------------------------------------
def draw_graph(output, params=None, *, show_shapes=True, show_saved=False, show_grads=False,
               group_modules=True, max_nodes=None, rankdir="TB", collapse_modules=False,
               show_stats=True, legend=None):
    """Draw the graph that computed `output`; returns a `Graph` (`.source`, `.save(path)`).

    params: dict name -> Tensor, a Module, or (name, Tensor) pairs, to label parameters.
    show_shapes: shape and dtype on edges. show_stats: value/grad statistics on tensor nodes.
    show_saved: what each op keeps for backward, in bytes. show_grads: colour tensors and ops
    by gradient norm (ops need `retain_grads(output)` before backward). group_modules: one
    cluster per module path. collapse_modules: True (one node per module) or a depth.
    max_nodes: bound the picture (collapse modules, then elide). legend: None = with show_grads.
    Example: `draw_graph(loss, model).save("graph.svg")`.
    """
    _check_tensor(output)
    if rankdir not in _RANKDIRS:
        raise ValueError(f"rankdir must be one of {_RANKDIRS}, got {rankdir!r}")
    if max_nodes is not None and (not isinstance(max_nodes, int) or max_nodes < 3):
        raise ValueError(f"max_nodes must be an int >= 3 or None, got {max_nodes!r}")
    if not isinstance(collapse_modules, (bool, int)) or collapse_modules < 0:
        raise ValueError(f"collapse_modules must be True/False or a depth >= 0, "
                         f"got {collapse_modules!r}")
    walk = _Walk(output, params)
    layout = _choose_layout(walk, collapse_modules, max_nodes)
    opts = {"show_saved": show_saved, "show_grads": show_grads, "show_stats": show_stats,
            "root": _root_label(params)}
    nodes, edges = _assemble(walk, layout, opts)
    if not show_shapes:
        edges = [(a, b, None) for a, b, _ in edges]
    if group_modules:
        nodes, clusters = _clusters(walk, nodes, edges, params)
    else:
        nodes, clusters = [(nid, kind, lines, None, g) for nid, kind, lines, _, g in nodes], {}
    if legend is None:
        legend = show_grads
    legend_arg = None
    if legend:
        present = {n[1] for n in nodes}
        legend_arg = ([k for k in R.LEGEND_NAMES if k in present], bool(show_grads))
    digraph = R.build_digraph(nodes, edges, clusters, rankdir=rankdir, legend=legend_arg)
    if max_nodes is None and len(nodes) > _WARN_NODES:
        warnings.warn(f"draw_graph: {len(nodes)} nodes make a slow, unreadable picture; pass "
                      "max_nodes=200 (or collapse_modules=True)", stacklevel=2)
    return Graph(digraph, len(nodes), sum(layout.elided))


def _assemble(walk, layout, opts):
    """Drawn nodes (id, kind, label lines, module path, grad state) and edges, in order."""
    ops, units = walk.ops, layout.units
    uid_name = {"op": "op", "module": "mod", "elided": "more"}
    ident = {u: f"{uid_name[units[u][0]]}{u}" for u in units}
    shown = [bool(n) and not f for n, f in zip(layout.uses, layout.folded, strict=True)]
    hidden_by_unit = collections.Counter()
    first_use = {}
    for i, ins in enumerate(walk.inputs):
        for k in ins:
            if k < 0:
                first_use.setdefault(~k, i)
    for j, i in first_use.items():
        if not shown[j] and not layout.folded[j]:
            hidden_by_unit[layout.unit_of[i]] += 1
    nodes, edges, seen_edge, leaf_done = [], [], set(), set()
    for u in sorted(units):
        kind, members, path = units[u]
        for i in members:                       # leaves first, so they sit above their user
            for k in walk.inputs[i]:
                j = ~k
                if k < 0 and shown[j] and j not in leaf_done:
                    leaf_done.add(j)
                    nodes.append(R.leaf_node(walk, j, opts))
        if kind == "op":
            nodes.append(R.op_node(walk, members[0], opts))
        else:
            nodes.append(R.group_node(walk, layout, u, ident[u], opts, hidden_by_unit[u]))
        for i in members:
            for k in walk.inputs[i]:
                src = f"t{~k}" if k < 0 else ident[layout.unit_of[k]]
                # One edge per input of an op (x * x has two); one per tensor into a group.
                key = (k, u)
                if src == ident[u] or (k < 0 and not shown[~k]) or (
                        kind != "op" and key in seen_edge):
                    continue
                seen_edge.add(key)
                t = walk.leaves[~k] if k < 0 else ops[k]
                edges.append((src, ident[u], R.describe(t.shape, t.dtype)))
    out = walk.output
    nodes.append(R.output_node(walk, opts))
    if ops:
        edges.append((ident[layout.unit_of[len(ops) - 1]], "out",
                      R.describe(out.shape, out.dtype)))
    return nodes, edges


def _root_label(params):
    return type(params).__name__ if hasattr(params, "named_parameters") else "root module"


def _clusters(walk, nodes, edges, params):
    """Module path of every drawn node, and the clusters {path: label} to draw, outer first."""
    is_module = hasattr(params, "named_parameters")
    root = any(n.scope == "" for n in walk.ops) or (
        is_module and any(n.scope is not None for n in walk.ops))
    path_of = {n[0]: n[3] for n in nodes}
    kind_of = {n[0]: n[1] for n in nodes}
    users = collections.defaultdict(list)
    for src, dst, _ in edges:
        users[src].append(dst)
    # A parameter sits in the innermost module holding all its users; inputs stay outside.
    for nid, kind, *_ in nodes:
        if kind == "param":
            path_of[nid] = R.common_scope([path_of[d] for d in users[nid]])
    others = [(p, kind_of[nid]) for nid, p in path_of.items() if p is not None]
    for nid, kind, _, path, _ in nodes:
        if kind == "module":         # inside its own cluster only if that cluster has more
            inside = any(q.startswith(path + ".") or (q == path and k != "module")
                         if path else q != path or k != "module" for q, k in others)
            path_of[nid] = path if inside else (
                path.rsplit(".", 1)[0] if "." in path else ("" if path else None))
    names = {}
    if is_module and hasattr(params, "named_modules"):
        names = {p: type(m).__name__ for p, m in params.named_modules()}
    clusters = {}
    for nid, *_ in nodes:
        path = path_of[nid]
        if path == "" and not root:
            path_of[nid] = path = None
        if path is None:
            continue
        parts = path.split(".") if path else []
        for n in range(0 if root else 1, len(parts) + 1):
            p = ".".join(parts[:n])
            if p not in clusters:
                label = p if p else _root_label(params)
                clusters[p] = label + (f" · {names[p]}" if p and p in names else "")
    return [(nid, k, lines, path_of[nid], g) for nid, k, lines, _, g in nodes], clusters


# ---- text summary ------------------------------------------------------------------------------
def summary(output, params=None, *, print_fn=print, max_rows=None):
    """Print (with `print_fn`; None = don't) and return a text table of the graph of `output`.

    One row per op in recording order: op (indented by module depth), output shape, module
    path, inputs (#k = row k, or a tensor's name), bytes saved for backward; then the leaves
    and totals. `max_rows` keeps the first and last rows of long graphs.
    """
    _check_tensor(output)
    if max_rows is not None and (not isinstance(max_rows, int) or max_rows < 2):
        raise ValueError(f"max_rows must be an int >= 2 or None, got {max_rows!r}")
    walk = _Walk(output, params)
    rows = []
    for i, node in enumerate(walk.ops):
        depth = 0 if not node.scope else node.scope.count(".") + 1
        saved = R.saved_arrays(node.saved)
        rows.append([
            f"#{i}", "  " * depth + node.name + (" [fused]" if type(node).fused else ""),
            R.describe(node.shape, node.dtype),
            "-" if node.scope is None else (node.scope or "(root)"),
            ", ".join(f"#{k}" if k >= 0 else walk.names[~k] for k in walk.inputs[i]) or "-",
            "freed" if node.saved is _FREED else R.fmt_bytes(sum(a.nbytes for a in saved))])
    if max_rows is not None and len(rows) > max_rows:
        head, gap = max_rows // 2, len(rows) - max_rows
        tail = rows[head + gap:]
        rows = rows[:head] + [["", f"… {gap:,} more ops", "", "", "", ""]] + tail
    lines = R.table(["", "op", "output", "module", "inputs", "saved"], rows)
    leaf_rows = []
    for j, t in enumerate(walk.leaves):
        grad = "-" if walk.kinds[j] == "const" else (
            "not computed yet" if t.grad is None else f"norm {R.fmt_num(R.grad_norm(t.grad))}")
        leaf_rows.append([walk.names[j], walk.kinds[j], R.describe(t.shape, t.dtype), grad])
    if leaf_rows:
        lines += [""] + R.table(["leaf", "kind", "shape", "grad"], leaf_rows)
    lines += ["", R.totals(walk)]
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text
