"""How `autotensor.viz` looks and renders: labels, colours, DOT emission, output backends.

`viz.py` decides *what* is drawn (which ops, which tensors, what is grouped or elided); this
module decides *how*: the text of every label, one fixed style per kind of node, the gradient
colour scale, nested module clusters, and turning DOT text into SVG/PNG/PDF either with the
system `dot` program or in-process with pygraphviz (whose wheel bundles Graphviz).
"""

from __future__ import annotations

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
GRAD_SCALE = ((-8, "#23328a"), (-6, "#3f6fc2"), (-4, "#8fb6e8"), (-2, "#d9f0d3"),
              (1, "#d9f0d3"), (2, "#f9c49a"), (3, "#e8613c"), (4, "#a50f15"))
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
        for x in (-8, -6, -4, -2, 0, 2, 3, 4):
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
