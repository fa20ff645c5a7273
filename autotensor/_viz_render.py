"""How `autotensor.viz` looks and renders: labels, colours, DOT emission, output backends.

`_viz_layout.py` decides *what* is drawn (which ops, tensors, what is grouped or elided); this
module decides *how*: the text of every label, one fixed style per kind of node, the gradient
colour scale, nested module clusters, and turning DOT text into SVG/PNG/PDF either with the
system `dot` program or in-process with pygraphviz (whose wheel bundles Graphviz).
"""

from __future__ import annotations

import collections
import math
import shutil

import graphviz
import numpy as np

from .autograd import _FREED

# ---- styles ------------------------------------------------------------------------------------
# One style per kind, so a colour means the same thing in every picture. Ops are white rounded
# boxes; tensors are square boxes coloured by role; fused fast paths get a gold double outline.
FONT = "Helvetica,Arial,sans-serif"
STYLES = {
    "op": {"shape": "box", "style": "rounded,filled", "fillcolor": "#ffffff",
           "color": "#555555"},
    "fused": {"shape": "box", "style": "rounded,filled,bold", "fillcolor": "#ffe8a3",
              "color": "#b8860b", "peripheries": "2"},
    "param": {"shape": "box", "style": "filled", "fillcolor": "#d6e9ff", "color": "#3b6fb6"},
    "input": {"shape": "box", "style": "filled", "fillcolor": "#ffe1cc", "color": "#c0622b"},
    "const": {"shape": "box", "style": "filled,dashed", "fillcolor": "#f2f2f2",
              "color": "#9a9a9a", "fontcolor": "#555555"},
    "output": {"shape": "box", "style": "filled,bold", "fillcolor": "#d4f5d0",
               "color": "#2e7d32"},
    "module": {"shape": "box3d", "style": "filled", "fillcolor": "#ebe3f7", "color": "#6a51a3"},
    "elided": {"shape": "box", "style": "rounded,dashed", "fillcolor": "#ffffff",
               "color": "#888888", "fontcolor": "#555555"},
}
LEGEND_NAMES = {"param": "parameter", "input": "input (needs grad)", "const": "constant",
                "op": "op", "fused": "fused op", "output": "output", "module": "module",
                "elided": "elided ops"}
_CLUSTER_FILLS = ("#f6f6fb", "#ececf5")        # alternate by depth so nesting stays visible

# Gradient-norm colour scale over log10(norm): blue = vanishing, green = healthy, red =
# exploding. Fixed anchors (not rescaled per picture) so two pictures can be compared.
GRAD_SCALE = ((-8, "#1f2a7a"), (-6, "#3366bb"), (-4, "#86afe3"), (-2, "#d5ecd0"),
              (0, "#b3e0a6"), (1, "#e3f0a0"), (2, "#fdc47d"), (3, "#ee5e3b"), (4, "#a50f15"))
GRAD_ZERO = "#cfcfcf"
GRAD_BAD = "#000000"          # nan or inf somewhere in the gradient


def grad_color(norm):
    """Fill colour for a gradient of this norm (see GRAD_SCALE), as '#rrggbb'."""
    if not math.isfinite(norm):
        return GRAD_BAD
    if norm == 0.0:
        return GRAD_ZERO
    x = min(max(math.log10(norm), GRAD_SCALE[0][0]), GRAD_SCALE[-1][0])
    for (x0, c0), (x1, c1) in zip(GRAD_SCALE, GRAD_SCALE[1:], strict=False):
        if x <= x1:
            t = (x - x0) / (x1 - x0)
            rgb = [round(a + t * (b - a)) for a, b in zip(_rgb(c0), _rgb(c1), strict=True)]
            return "#{:02x}{:02x}{:02x}".format(*rgb)
    return GRAD_SCALE[-1][1]


def _rgb(color):
    return [int(color[i:i + 2], 16) for i in (1, 3, 5)]


def text_color(fill):
    """Black or white text, whichever reads better on `fill`."""
    r, g, b = _rgb(fill)
    return "#ffffff" if 0.299 * r + 0.587 * g + 0.114 * b < 128 else "#000000"


# ---- numbers and labels ------------------------------------------------------------------------
def fmt_num(x):
    return f"{x:.3g}"


def fmt_shape(shape):
    return str(tuple(shape)) if len(shape) else "scalar"


def fmt_bytes(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def describe(shape, dtype):
    """'(64, 100) float32': the text on edges and under tensor names."""
    return f"{fmt_shape(shape)} {np.dtype(dtype).name}"


def array_stats(a):
    """'min -1 max 2 mean 0.5 norm 3' (or the value itself for one element); nan/inf counted."""
    a = np.asarray(a)
    if a.size == 0:
        return "empty"
    if a.size == 1:
        return fmt_num(float(a.reshape(())))
    a = a.astype(np.float64, copy=False)
    finite = np.isfinite(a)
    bad = a.size - int(np.count_nonzero(finite))
    if bad:
        a = a[finite]
        if a.size == 0:
            return f"all {bad} values nan/inf"
    text = (f"min {fmt_num(a.min())}  max {fmt_num(a.max())}  mean {fmt_num(a.mean())}  "
            f"norm {fmt_num(grad_norm(a))}")
    return text + (f"  ({bad} nan/inf)" if bad else "")


def grad_norm(g):
    # NOTE: float64 accumulation: a float32 sum of squares overflows near |g| ~ 1e19.
    g = np.asarray(g, dtype=np.float64)
    return float(np.sqrt(np.vdot(g, g))) if np.isfinite(g).all() else math.inf


def saved_arrays(saved):
    """The ndarrays inside `node.saved`, found through nested tuples/lists/dicts, no recursion."""
    if saved is None or saved is _FREED:
        return []
    found, stack = [], [saved]
    while stack:
        x = stack.pop()
        if isinstance(x, np.ndarray):
            found.append(x)
        elif isinstance(x, (tuple, list)):
            stack.extend(reversed(x))
        elif isinstance(x, dict):
            stack.extend(reversed(list(x.values())))
        elif hasattr(x, "_node") and isinstance(getattr(x, "data", None), np.ndarray):
            found.append(x.data)                     # a Tensor someone saved
    return found


def saved_text(saved):
    """'saved 39.1 KiB: (100, 100) float32, ...', 'saved: nothing' or 'saved: freed'."""
    if saved is _FREED:
        return "saved: freed by backward"
    arrays = saved_arrays(saved)
    if not arrays:
        return "saved: nothing"
    parts = [describe(a.shape, a.dtype) for a in arrays[:3]]
    more = f" +{len(arrays) - 3} more" if len(arrays) > 3 else ""
    return f"saved {fmt_bytes(sum(a.nbytes for a in arrays))}: {', '.join(parts)}{more}"


def tensor_label(title, t, show_stats, grad_line):
    """Label of a tensor node: name, shape/dtype, value stats, gradient stats or state."""
    lines = [title, describe(t.shape, t.dtype)]
    if show_stats:
        lines.append(f"value {array_stats(t.data)}")
        if grad_line:
            lines.append(grad_line)
    return lines


def grad_text(grad, pending):
    """Gradient line for a tensor: stats, 'not computed yet', or None when not applicable."""
    if grad is not None:
        return f"grad {array_stats(grad)}"
    return "grad: not computed yet" if pending else None


def dot_label(lines):
    # Title centred, detail lines left-aligned ("\l" ends a left-justified line in DOT).
    esc = [ln.replace("\\", "\\\\").replace('"', '\\"') for ln in lines]
    if len(esc) == 1:
        return esc[0]
    return esc[0] + "\\n" + "\\l".join(esc[1:]) + "\\l"


# ---- the label of each kind of drawn node --------------------------------------------------
def leaf_node(walk, j, opts):
    """A parameter, input or constant: its name, shape, value and gradient."""
    t, kind = walk.leaves[j], walk.kinds[j]
    pending = kind != "const" and t.requires_grad
    grad = grad_text(t.grad, pending)
    lines = tensor_label(walk.names[j], t, opts["show_stats"], grad)
    return (f"t{j}", kind, lines, None, _grad_state(t.grad, pending, opts))


def output_node(walk, opts):
    """The drawn tensor: its grad exists only when retained (non-leaf) or for a leaf."""
    out = walk.output
    node = out._node
    pending = out.requires_grad and (node is None or node.retained is out)
    title = walk.param_names.get(id(out)) or out.name or "output"
    lines = tensor_label(title, out, opts["show_stats"], grad_text(out.grad, pending))
    return ("out", "output", lines, None, _grad_state(out.grad, pending, opts))


def _grad_state(grad, pending, opts):
    # With show_grads: the gradient norm (sets the fill colour), "pending" (dashed) or None.
    if not opts["show_grads"]:
        return None
    if grad is not None:
        return grad_norm(grad)
    return "pending" if pending else None


def op_node(walk, i, opts):
    """One op: its name, the fused mark, its output's gradient norm, what it saved."""
    node = walk.ops[i]
    r = node.retained
    lines = [node.name + (f" → {r.name}" if r is not None and r.name else "")]
    if type(node).fused:
        lines.append("fused fast path")
    grad = walk.op_grad(i)
    if r is not None and (opts["show_stats"] or opts["show_grads"]):
        lines.append(_grad_summary(grad))
    if opts["show_saved"]:
        lines.append(saved_text(node.saved))
    state = _grad_state(grad, r is not None, opts)
    return (f"op{i}", "fused" if type(node).fused else "op", lines, node.scope, state)


def _grad_summary(grad):
    # One line for an op's output gradient: the value for a scalar (sign kept), else the norm.
    if grad is None:
        return "grad: not computed yet"
    if grad.size == 1:
        return f"grad {fmt_num(float(np.reshape(grad, ())))}"
    return f"grad norm {fmt_num(grad_norm(grad))}"


def group_node(walk, layout, u, ident, opts, hidden):
    """A collapsed module or a '… N more ops' node: the ops, parameters and memory inside."""
    kind, members, path = layout.units[u]
    ops = [walk.ops[i] for i in members]
    if kind == "module":
        lines = [path if path else opts["root"]]
    else:
        lines = [f"… {len(ops):,} more op{'s' if len(ops) > 1 else ''}"]
        path = common_scope([n.scope for n in ops])
    lines.append(_op_mix(ops, with_count=kind == "module"))
    fused = sum(1 for n in ops if type(n).fused)
    if fused and len(ops) > 4:
        lines.append(f"{fused} fused op{'s' if fused > 1 else ''}")
    params = [j for j in sorted({~k for i in members for k in walk.inputs[i] if k < 0})
              if layout.folded[j]]
    if params and kind == "module":
        lines += _param_lines(walk, params, path, opts["show_grads"])
    if hidden:
        lines.append(f"+{hidden} hidden tensor{'s' if hidden > 1 else ''}")
    if opts["show_saved"]:
        lines.append(_saved_total(ops))
    state = None
    if kind == "module":                  # the module's output is its last op's output
        r, grad = ops[-1].retained, walk.op_grad(members[-1])
        state = _grad_state(grad, r is not None, opts)
        if r is not None and (opts["show_stats"] or opts["show_grads"]):
            lines.append(_grad_summary(grad))
    return (ident, kind, lines, path, state)


def _op_mix(ops, with_count):
    """'MatMul → Add' for a few ops, else '12 ops: Mul ×6, Add ×4, Exp ×2' (top 3 kinds)."""
    if len(ops) <= 4:
        return " → ".join(n.name + (" [fused]" if type(n).fused else "") for n in ops)
    counts = collections.Counter(n.name for n in ops)        # insertion = recording order
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    text = ", ".join(name + (f" ×{c:,}" if c > 1 else "") for name, c in top)
    text += ", …" if len(counts) > 3 else ""
    return f"{len(ops):,} ops: {text}" if with_count else text


def _param_lines(walk, params, path, show_grads):
    """Parameters folded into a module node: names relative to the module, shapes, grads."""
    grads = [walk.leaves[j].grad for j in params]
    if len(params) > 4:
        values = sum(walk.leaves[j].size for j in params)
        line = f"{len(params)} params ({values:,} values)"
        if show_grads and all(g is not None for g in grads):
            line += f"  grad norm {fmt_num(math.hypot(*(grad_norm(g) for g in grads)))}"
        return [line]
    prefix = path + "." if path else ""
    lines = []
    for j, g in zip(params, grads, strict=True):
        name = walk.names[j]
        line = f"{name[len(prefix):] if name.startswith(prefix) else name} "
        line += fmt_shape(walk.leaves[j].shape)
        if show_grads:
            line += "  grad: not computed yet" if g is None else (
                f"  grad norm {fmt_num(grad_norm(g))}")
        lines.append(line)
    return lines


def _saved_total(ops):
    # Each array counted once: ops often save the same input.
    if any(n.saved is _FREED for n in ops):
        return "saved: freed by backward"
    arrays = {id(a): a for n in ops for a in saved_arrays(n.saved)}
    return f"saved {fmt_bytes(sum(a.nbytes for a in arrays.values()))}"


def table(header, rows, width=48):
    """Plain-text columns under a dashed rule; long cells are cut with '…'."""
    rows = [[c if len(c) <= width else c[:width - 1] + "…" for c in r] for r in rows]
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header).rstrip(), "  ".join("-" * w for w in widths)]
    return out + [fmt.format(*r).rstrip() for r in rows]


def totals(walk):
    """The last line of `summary`: counts of ops and leaves, memory saved for backward."""
    ops = walk.ops
    fused = sum(1 for n in ops if type(n).fused)
    kinds = collections.Counter(walk.kinds)
    values = sum(t.size for t, k in zip(walk.leaves, walk.kinds, strict=True) if k == "param")
    if any(n.saved is _FREED for n in ops):
        saved = "buffers freed by backward"
    else:
        arrays = {id(a): a for n in ops for a in saved_arrays(n.saved)}
        saved = f"{fmt_bytes(sum(a.nbytes for a in arrays.values()))} saved for backward"
    return (f"{len(ops):,} ops ({fused} fused), {kinds['param']} parameters ({values:,} values), "
            f"{kinds['input']} inputs, {kinds['const']} constants; {saved}")


def common_scope(paths):
    """Innermost module path holding all `paths` ('' = root); None if any is outside."""
    if not paths or any(p is None for p in paths):
        return None
    split = [p.split(".") if p else [] for p in paths]
    common = split[0]
    for parts in split[1:]:
        n = 0
        while n < min(len(common), len(parts)) and common[n] == parts[n]:
            n += 1
        common = common[:n]
    return ".".join(common)


# ---- DOT emission ------------------------------------------------------------------------------
def build_digraph(nodes, edges, clusters, *, rankdir, legend):
    """A graphviz.Digraph from drawn nodes, edges and module clusters.

    nodes: (id, kind, label_lines, cluster_path or None, grad_state) with grad_state None (no
    colouring), "pending" (dashed: not computed yet) or a float gradient norm.
    edges: (src_id, dst_id, label or None). clusters: {path: label}, every ancestor present.
    legend: None, or (kinds present, with_grad_scale) for the optional legend node.
    """
    g = graphviz.Digraph("autotensor", graph_attr={
        "rankdir": rankdir, "fontname": FONT, "bgcolor": "white", "nodesep": "0.25",
        "ranksep": "0.35", "newrank": "true"},
        node_attr={"fontname": FONT, "fontsize": "11", "margin": "0.12,0.05"},
        edge_attr={"fontname": FONT, "fontsize": "9", "fontcolor": "#666666",
                   "color": "#666666", "arrowsize": "0.7"})
    subgraphs = {}
    for k, (path, label) in enumerate(clusters.items()):
        depth = path.count(".") + 1 if path else 0
        subgraphs[path] = graphviz.Digraph(f"cluster_{k}", graph_attr={
            "label": label, "labeljust": "l", "fontsize": "10", "fontcolor": "#4b4b6b",
            "style": "rounded,filled", "color": "#b5b5cc",
            "fillcolor": _CLUSTER_FILLS[depth % 2]})
    for nid, kind, lines, path, grad in nodes:
        attrs = dict(STYLES[kind])
        if grad == "pending":
            attrs["style"] += ",dashed"
        elif grad is not None:
            attrs["fillcolor"] = grad_color(grad)
            attrs["fontcolor"] = text_color(attrs["fillcolor"])
            attrs["penwidth"] = "2"
        (subgraphs[path] if path is not None else g).node(nid, dot_label(lines), **attrs)
    # Children first, so each cluster is complete when its parent copies it in.
    for path in sorted(subgraphs, key=lambda p: -(p.count(".") + 1 if p else 0)):
        if path:
            parent = path.rsplit(".", 1)[0] if "." in path else ""
            (subgraphs[parent] if parent in subgraphs else g).subgraph(subgraphs[path])
    if "" in subgraphs:
        g.subgraph(subgraphs[""])
    for src, dst, label in edges:
        if label is None:
            g.edge(src, dst)
        else:
            g.edge(src, dst, label=" " + label)
    if legend is not None:
        g.node("legend", _legend_html(*legend), shape="plaintext", margin="0")
    return g


def _legend_html(kinds, with_grad_scale):
    # With the gradient scale, fills show gradient norms and only borders tell the kind.
    cells = "".join(
        f'<td bgcolor="{"#ffffff" if with_grad_scale else STYLES[k]["fillcolor"]}" '
        f'border="{2 if with_grad_scale else 1}" color="{STYLES[k]["color"]}">'
        f"{LEGEND_NAMES[k]}</td>" for k in kinds)
    rows = f"<tr>{cells}</tr>"
    if with_grad_scale:
        chips = []
        for x in (-8, -6, -4, -2, 0, 1, 2, 3, 4):
            fill = grad_color(10.0 ** x)
            chips.append(f'<td bgcolor="{fill}"><font color="{text_color(fill)}">1e{x}'
                         "</font></td>")
        chips.append(f'<td bgcolor="{GRAD_ZERO}">0</td>')
        chips.append(f'<td bgcolor="{GRAD_BAD}"><font color="#ffffff">nan/inf</font></td>')
        rows += (f'<tr><td colspan="{max(len(kinds), 1)}" border="0">'
                 '<table border="0" cellspacing="1" cellpadding="3"><tr>'
                 '<td border="0">gradient norm:</td>'
                 f'{"".join(chips)}</tr></table></td></tr>')
    return ('<<table border="0" cellspacing="3" cellpadding="4"><tr><td border="0" '
            f'colspan="{max(len(kinds), 1)}"><b>legend</b></td></tr>{rows}</table>>')


# ---- rendering backends ------------------------------------------------------------------------
FORMATS = ("svg", "png", "pdf", "jpg", "jpeg", "gv", "dot")


def render(source, fmt, backend="auto"):
    """Bytes of `source` rendered as `fmt`, with the system `dot` or in-process pygraphviz.

    backend: "auto" (dot when on PATH, else pygraphviz), "dot" or "pygraphviz".
    """
    if fmt not in FORMATS:
        raise ValueError(f"cannot render format {fmt!r}; supported: {', '.join(FORMATS)}")
    if fmt in ("gv", "dot"):
        return source.encode("utf-8")
    if backend not in ("auto", "dot", "pygraphviz"):
        raise ValueError(f"backend must be 'auto', 'dot' or 'pygraphviz', got {backend!r}")
    if backend == "auto":
        backend = "dot" if shutil.which("dot") else "pygraphviz"
    if backend == "dot":
        if not shutil.which("dot"):
            raise RuntimeError("backend='dot' needs the Graphviz `dot` program on PATH; use "
                               "backend='pygraphviz' (in-process, installed with autotensor)")
        return graphviz.Source(source).pipe(format=fmt)
    try:
        import pygraphviz
    except ImportError as e:
        raise RuntimeError(
            "cannot render: no Graphviz `dot` program on PATH and pygraphviz is not importable "
            f"({e}). `pip install pygraphviz` (its wheel bundles Graphviz), or save the DOT "
            "text with save('graph.gv')") from None
    return pygraphviz.AGraph(string=source).draw(format=fmt, prog="dot")
