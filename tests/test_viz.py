"""autotensor.viz: the DOT text of drawn graphs, module grouping, elision, renders, summary."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import shutil
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import autotensor as at
from autotensor import _viz_render, nn
from autotensor.autograd import graph_nodes
from autotensor.function import Function, scope
from autotensor.nn import functional as F
from autotensor.viz import Graph, draw_graph, retain_grads, summary

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


# ---- reading DOT back ----------------------------------------------------------------------------
_NODE = re.compile(r'^\s*(\w+) \[label=(".*?(?<!\\)"|<.*>|\w+)(.*)\]$')
_EDGE = re.compile(r'^\s*(\w+) -> (\w+)(?: \[label=" ?(.*)"\])?$')


class Dot:
    """Nodes (id -> label, attrs, enclosing cluster labels) and edges parsed from DOT text."""

    def __init__(self, source):
        self.label, self.attrs, self.clusters, self.edges = {}, {}, {}, []
        stack = []
        for line in source.splitlines():
            if m := re.match(r"^\s*subgraph (cluster_\d+) \{$", line):
                stack.append(None)
            elif stack and stack[-1] is None and (m := re.search(r'label=("[^"]*"|\S+)', line)):
                stack[-1] = m.group(1).strip('"')
            elif line.strip() == "}" and stack:
                stack.pop()
            elif m := _EDGE.match(line):
                self.edges.append((m.group(1), m.group(2), m.group(3)))
            elif (m := _NODE.match(line)) and m.group(1) not in ("graph", "node", "edge"):
                nid = m.group(1)
                self.label[nid] = m.group(2).strip('"').replace("\\l", "\n").replace("\\n", "\n")
                self.attrs[nid] = m.group(3)
                self.clusters[nid] = tuple(stack)

    def ids(self, title):
        """Nodes whose label starts with the line `title`."""
        return [n for n, lab in self.label.items() if lab.split("\n")[0] == title]

    def one(self, title):
        (nid,) = self.ids(title)
        return nid

    def into(self, nid):
        return [e for e in self.edges if e[1] == nid]

    def out_of(self, nid):
        return [e for e in self.edges if e[0] == nid]


def mlp_from_ops(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = at.Tensor(rng.standard_normal((8, 4)).astype(dtype))
    p = {"W1": at.Tensor(rng.standard_normal((4, 5)).astype(dtype), requires_grad=True),
         "b1": at.Tensor(np.zeros(5, dtype), requires_grad=True),
         "W2": at.Tensor(rng.standard_normal((5, 3)).astype(dtype), requires_grad=True),
         "b2": at.Tensor(np.zeros(3, dtype), requires_grad=True)}
    scores = (X @ p["W1"] + p["b1"]).relu() @ p["W2"] + p["b2"]
    return F.softmax_cross_entropy(scores, np.array([0, 1, 2, 0, 1, 2, 0, 1])), p


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4),
                                      nn.ReLU(), nn.MaxPool2d(2))
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(4 * 3 * 3, 5)

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


def conv_loss(seed=0):
    np.random.seed(seed)
    model = ConvNet()
    x = at.Tensor(np.random.randn(2, 3, 6, 6))
    return F.softmax_cross_entropy(model(x), np.array([1, 3])), model


# ---- an MLP -------------------------------------------------------------------------------------
def test_mlp_from_ops_nodes_styles_and_edge_shapes():
    loss, p = mlp_from_ops(dtype=np.float32)
    dot = Dot(draw_graph(loss, p).source)
    ops = graph_nodes(loss._node)
    assert len([n for n in dot.label if n.startswith("op")]) == len(ops)
    assert sorted(dot.label[n].split("\n")[0] for n in dot.label if n.startswith("op")) == \
        sorted(n.name for n in ops)
    for name, t in p.items():          # parameters: their names, shapes, param style, one use
        nid = dot.one(name)
        assert f"{t.shape} float32" in dot.label[nid]
        assert 'fillcolor="#d6e9ff"' in dot.attrs[nid]
        ((_, dst, label),) = dot.out_of(nid)
        assert label == f"{t.shape} float32"
        assert dot.label[dst].split("\n")[0] in ("MatMul", "Add")
    x = dot.one("const")                                   # data X: a constant
    assert "dashed" in dot.attrs[x] and dot.label[dot.out_of(x)[0][1]] == "MatMul"
    mm = dot.out_of(dot.one("W1"))[0][1]
    assert sorted(e[2] for e in dot.into(mm)) == ["(4, 5) float32", "(8, 4) float32"]
    ((_, add, label),) = dot.out_of(mm)
    assert label == "(8, 5) float32" and dot.label[add] == "Add"
    assert dot.into("out")[0][2] == "scalar float32"
    assert dot.label["out"].startswith("output\nscalar float32\nvalue ")
    bare = Dot(draw_graph(loss, p, show_shapes=False, show_stats=False).source)
    assert not any(label for *_, label in bare.edges) and len(bare.edges) == len(dot.edges)
    assert bare.label[bare.one("W1")] == "W1\n(4, 5) float32\n"


def test_leaf_kinds_names_and_stats():
    rng = np.random.default_rng(1)
    x = at.Tensor(rng.standard_normal((3, 2)), requires_grad=True)      # an input needing grad
    w = at.Tensor(np.array([[1.0, -2.0], [3.0, 0.5]]), requires_grad=True)
    w.name = "w"
    c = at.Tensor(np.array(2.5))                                          # a scalar constant
    out = ((x @ w) * c).sum()
    dot = Dot(draw_graph(out).source)
    nid = dot.one("input")
    assert 'fillcolor="#ffe1cc"' in dot.attrs[nid] and "grad: not computed yet" in dot.label[nid]
    wl = dot.label[dot.one("w")]            # Tensor.name labels a tensor; value statistics
    assert "value min -2  max 3  mean 0.625  norm 3.77" in wl
    assert "value 2.5" in dot.label[dot.one("const")]                    # scalar: the value
    out.backward()
    dot = Dot(draw_graph(out, {"weight": w}).source)
    wl, g = dot.label[dot.one("weight")], w.grad      # params= wins over Tensor.name
    assert (f"grad min {g.min():.3g}  max {g.max():.3g}  mean {g.mean():.3g}  "
            f"norm {np.linalg.norm(g):.3g}") in wl and "not computed" not in wl


def test_mlp_from_nn_modules_grouped_by_module():
    np.random.seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    loss = F.softmax_cross_entropy(model(at.Tensor(np.random.randn(5, 4))), np.arange(5) % 3)
    dot = Dot(draw_graph(loss, model).source)
    for name, _ in model.named_parameters():
        layer = name.split(".")[0]
        assert dot.clusters[dot.one(name)] == ("Sequential", f"{layer} · Linear")
    assert dot.clusters[dot.one("Relu")] == ("Sequential", "1 · ReLU")
    assert dot.clusters[dot.one("const")] == () and dot.clusters["out"] == ()
    loss_ops = [n for n in dot.label if n.startswith("op") and dot.clusters[n] == ()]
    assert {dot.label[n] for n in loss_ops} >= {"Exp", "Log", "GetItem"}  # loss: outside
    flat = draw_graph(loss, model, group_modules=False).source
    assert "cluster" not in flat and set(Dot(flat).label) == set(dot.label)


# ---- fused ops ----------------------------------------------------------------------------------
def test_conv_net_with_batch_norm_marks_fused_ops():
    loss, model = conv_loss()
    dot = Dot(draw_graph(loss, model).source)
    fused = {n for n in dot.label if "peripheries=2" in dot.attrs[n]}
    assert {dot.label[n].split("\n")[0] for n in fused} == {"Conv2d", "BatchNorm", "MaxPool2d"}
    assert all("fused fast path" in dot.label[n] for n in fused)
    assert dot.clusters[dot.one("Conv2d")] == ("ConvNet", "features · Sequential",
                                               "features.0 · Conv2d")
    assert dot.clusters[dot.one("features.1.weight")][-1] == "features.1 · BatchNorm2d"
    assert "peripheries" not in dot.attrs[dot.one("Relu")]
    with at.use_fused(False):
        twin, _ = conv_loss()
    plain = Dot(draw_graph(twin, model).source)
    assert not any("peripheries=2" in a for a in plain.attrs.values())
    assert len(plain.label) > len(dot.label)          # the composite twins are many ops


def test_fused_functions_called_directly():
    from autotensor.fused import batch_norm, conv2d, max_pool2d
    rng = np.random.default_rng(0)
    x = at.Tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32))
    w = at.Tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    gamma = at.Tensor(np.ones(4, np.float32), requires_grad=True)
    beta = at.Tensor(np.zeros(4, np.float32), requires_grad=True)
    out = max_pool2d(batch_norm(conv2d(x, w, pad=1), gamma, beta).relu()).sum()
    dot = Dot(draw_graph(out, {"w": w, "gamma": gamma, "beta": beta}).source)
    assert [dot.label[d].split("\n")[0] for _, d, _ in dot.out_of(dot.one("w"))] == ["Conv2d"]
    for name, shape in [("Conv2d", "(2, 4, 6, 6)"), ("BatchNorm", "(2, 4, 6, 6)"),
                        ("MaxPool2d", "(2, 4, 3, 3)")]:
        nid = dot.one(name)
        assert "peripheries=2" in dot.attrs[nid] and "fused fast path" in dot.label[nid]
        assert [lab for s, _, lab in dot.edges if s == nid] == [f"{shape} float32"]


class Square(Function):
    """y = x ** 2, marked as a user's fused fast path"""
    fused = True

    def forward(self, x):
        self.saved = x
        return x * x

    def backward(self, g):
        return 2 * self.saved * g


def test_user_defined_fused_function_is_marked():
    dot = Dot(draw_graph(Square.apply(at.Tensor(np.arange(3.0), requires_grad=True)).sum()).source)
    assert "peripheries=2" in dot.attrs[dot.one("Square")]
    assert "peripheries" not in dot.attrs[dot.one("Sum")]


# ---- shared subexpressions ----------------------------------------------------------------------
def test_diamond_draws_the_shared_node_once():
    x = at.Tensor(np.linspace(-1, 1, 4), requires_grad=True)
    w = at.Tensor(np.full(4, 0.5), requires_grad=True)
    a = x * w
    out = (a.exp() + a.tanh()).sum()
    dot = Dot(draw_graph(out, {"x": x, "w": w}).source)
    assert sorted(dot.label[d] for _, d, _ in dot.out_of(dot.one("Mul"))) == ["Exp", "Tanh"]
    assert sorted(dot.label[s] for s, _, _ in dot.into(dot.one("Add"))) == ["Exp", "Tanh"]
    sq = Dot(draw_graph((x * x).sum()).source)            # one input used twice: two edges
    assert len(sq.into(sq.one("Mul"))) == 2


# ---- gradients ----------------------------------------------------------------------------------
def test_show_grads_states_and_colours():
    loss, p = mlp_from_ops()
    before = Dot(draw_graph(loss, p, show_grads=True).source)
    w1 = before.one("W1")
    assert "grad: not computed yet" in before.label[w1] and "dashed" in before.attrs[w1]
    assert "legend" in before.label                      # the colour scale is explained
    retain_grads(loss)
    loss.backward()
    g = draw_graph(loss, p, show_grads=True)
    dot = Dot(g.source)
    for name, t in p.items():
        color = _viz_render.grad_color(float(np.linalg.norm(t.grad)))
        assert f'fillcolor="{color}"' in dot.attrs[dot.one(name)]
    relu = dot.one("Relu")           # retained: ops show their output gradient's norm
    assert "grad norm" in dot.label[relu] and 'fillcolor="#ffffff"' not in dot.attrs[relu]
    assert "gradient norm:" in g.source
    bare, _ = mlp_from_ops()         # without retain_grads only leaves carry gradients
    bare.backward()
    plain = Dot(draw_graph(bare, show_grads=True, legend=False).source)
    assert "grad" not in plain.label[plain.one("Relu")] and "legend" not in plain.label


def test_grad_colour_scale_separates_vanishing_from_exploding():
    blue = [_viz_render._rgb(_viz_render.grad_color(10.0 ** e)) for e in (-9, -6, -4)]
    red = [_viz_render._rgb(_viz_render.grad_color(10.0 ** e)) for e in (2, 3, 5)]
    assert all(b > r for r, _, b in blue) and all(r > b for r, _, b in red)
    for e in (-2, -1, 0, 1):                                      # healthy band: greens
        r, g, b = _viz_render._rgb(_viz_render.grad_color(10.0 ** e))
        assert g >= r and g >= b
    assert _viz_render.grad_color(0.0) == _viz_render.GRAD_ZERO
    assert _viz_render.grad_color(float("nan")) == _viz_render.GRAD_BAD
    shades = [_viz_render.grad_color(10.0 ** e) for e in range(-8, -1)]
    assert len(set(shades)) == len(shades)                       # every decade its own shade


def test_show_grads_on_a_deep_sigmoid_net_shows_vanishing_gradients():
    np.random.seed(0)
    layers = []
    for _ in range(10):              # each sigmoid scales gradients by at most 1/4
        layers += [nn.Linear(16, 16), nn.Sigmoid()]
    model = nn.Sequential(*layers)
    loss = model(at.Tensor(np.random.randn(8, 16))).mean()
    loss.backward()
    assert np.linalg.norm(model[0].weight.grad) < 1e-5 < 1e-2 < np.linalg.norm(
        model[18].weight.grad)
    dot = Dot(draw_graph(loss, model, show_grads=True).source)
    first, last = (_viz_render._rgb(re.search(r'fillcolor="(#\w+)"', dot.attrs[dot.one(n)])
                                    .group(1)) for n in ("0.weight", "18.weight"))
    assert first[2] > first[0] + 80            # deep blue: vanished
    assert last[1] >= last[0] and last[1] >= last[2]     # green: healthy
    folded = Dot(draw_graph(loss, model, show_grads=True, collapse_modules=True).source)
    line = f"weight (16, 16)  grad norm {np.linalg.norm(model[0].weight.grad):.3g}\n"
    assert line in folded.label[folded.one("0")]


def test_show_saved_bytes_then_freed():
    loss, p = mlp_from_ops()
    dot = Dot(draw_graph(loss, p, show_saved=True).source)
    mm = dot.out_of(dot.one("W1"))[0][1]
    node = next(n for n in graph_nodes(loss._node) if n.name == "MatMul" and n.shape == (8, 5))
    assert sum(a.nbytes for a in _viz_render.saved_arrays(node.saved)) == (8 * 4 + 4 * 5) * 8
    assert "saved 416 B: (8, 4) float64, (4, 5) float64" in dot.label[mm]
    assert "saved: nothing" in dot.label[dot.ids("Add")[0]]      # Add needs nothing back
    loss.backward()
    after = Dot(draw_graph(loss, p, show_saved=True).source)
    assert all("saved: freed by backward" in after.label[n] for n in after.label
               if n.startswith("op"))


def test_saved_arrays_walks_nested_containers():
    a, b, c = np.zeros(3), np.ones((2, 2), np.float32), np.arange(4)
    nested = _viz_render.saved_arrays((a, [b, {"k": c}], 3, None))
    assert [x.nbytes for x in nested] == [24, 16, 32]
    assert _viz_render.fmt_bytes(1536) == "1.5 KiB" and _viz_render.fmt_bytes(12) == "12 B"


# ---- modules: clusters and collapsing -----------------------------------------------------------
def scoped_graph():
    x = at.Tensor(np.ones((2, 3)), requires_grad=True)
    w = at.Tensor(np.full((3, 3), 0.1), requires_grad=True)
    with scope(""):
        with scope("layers.0"):
            h = (x @ w).tanh()
        with scope("layers.2.conv"):
            h = h * 2.0
        with scope("layers.2"):
            h = h + x                           # the block's own op, beside its child
        with scope("layers.2.norm"):
            h = h - h.mean()
        out = h.sum()
    return out, {"layers.0.w": w}


def test_group_modules_nested_clusters():
    out, p = scoped_graph()
    dot = Dot(draw_graph(out, p).source)
    assert dot.clusters[dot.ids("Mul")[0]] == ("root module", "layers", "layers.2",
                                               "layers.2.conv")
    assert dot.clusters[dot.one("Add")] == ("root module", "layers", "layers.2")
    assert dot.clusters[dot.one("layers.0.w")] == ("root module", "layers", "layers.0")
    assert dot.clusters[dot.one("input")] == ()
    assert dot.clusters[dot.into("out")[0][0]] == ("root module",)       # the final Sum


def test_collapse_modules_true_and_depths():
    out, p = scoped_graph()
    dot = Dot(draw_graph(out, p, collapse_modules=True).source)
    mods = {dot.label[n].split("\n")[0]: n for n in dot.label if n.startswith("mod")}
    assert set(mods) == {"layers.0", "layers.2.conv", "layers.2.norm"}
    assert "MatMul → Tanh\nw (3, 3)" in dot.label[mods["layers.0"]]    # parameter folded in
    assert not dot.ids("layers.0.w")
    assert dot.clusters[dot.one("Add")] == ("root module", "layers", "layers.2")
    one = Dot(draw_graph(out, p, collapse_modules=1).source)
    (layers,) = [n for n in one.label if n.startswith("mod")]
    assert one.label[layers].startswith("layers\n") and one.clusters[layers] == ("root module",)
    assert one.ids("input") and len(one.into(layers)) == 1    # x enters once, deduplicated
    whole = Dot(draw_graph(out, p, collapse_modules=0).source)
    assert [whole.label[n].split("\n")[0] for n in whole.label] == ["input", "root module",
                                                                    "output"]


def test_collapse_with_nn_module_names_classes():
    loss, model = conv_loss()
    dot = Dot(draw_graph(loss, model, collapse_modules=True).source)
    titles = {dot.label[n].split("\n")[0] for n in dot.label if n.startswith("mod")}
    assert titles == {"features.0", "features.1", "features.2", "features.3", "flatten",
                      "classifier"}
    assert "Conv2d [fused]\nweight (4, 3, 3, 3)\nbias (4,)" in dot.label[dot.one("features.0")]


# ---- big graphs ---------------------------------------------------------------------------------
def long_chain(n):
    y = at.Tensor(np.ones(3), requires_grad=True)
    for i in range(n):
        y = y * 1.0001 if i % 2 else y.tanh()
    return y.sum()


def test_20000_node_chain_no_recursion_and_bounded_output():
    out = long_chain(20_000)
    with pytest.warns(UserWarning, match="max_nodes"):
        full = draw_graph(out)
    assert full.num_nodes == 20_001 + 2 and full.hidden_ops == 0
    for m in (3, 10, 60):           # a long chain keeps both ends and elides its middle
        g = draw_graph(out, max_nodes=m)
        dot = Dot(g.source)
        assert len(dot.label) == g.num_nodes == m and len(g.source) < 800 * m
        more = [n for n in dot.label if n.startswith("more")]
        kept_ops = [n for n in dot.label if n.startswith("op")]
        assert more and len(kept_ops) + g.hidden_ops == 20_001
        assert sum(int(re.match(r"… ([\d,]+) more", dot.label[n]).group(1).replace(",", ""))
                   for n in more) == g.hidden_ops
    text = summary(out, print_fn=None, max_rows=10)
    assert "… 19,991 more ops" in text and len(text.splitlines()) < 25


def test_max_nodes_collapses_modules_before_eliding():
    loss, model = conv_loss()
    full = draw_graph(loss, model)
    g = draw_graph(loss, model, max_nodes=full.num_nodes - 1)
    assert g.hidden_ops == 0 and g.num_nodes < full.num_nodes
    assert any(n.startswith("mod") for n in Dot(g.source).label)
    small = draw_graph(loss, model, max_nodes=6)
    assert small.num_nodes <= 6 and small.hidden_ops > 0


def test_max_nodes_on_a_deep_sequential_elides_layers_not_the_whole_model():
    np.random.seed(0)
    layers = []
    for _ in range(60):
        layers += [nn.Linear(8, 8), nn.ReLU()]
    model = nn.Sequential(*layers)
    out = model(at.Tensor(np.random.randn(2, 8))).sum()
    g = draw_graph(out, model, max_nodes=50)
    dot = Dot(g.source)
    assert g.num_nodes == 50 and 0 < g.hidden_ops < 180       # the budget is used, not 4 nodes
    mods = {dot.label[n].split("\n")[0] for n in dot.label if n.startswith("mod")}
    assert {"0", "1", "118", "119"} <= mods and "Sequential" not in mods
    (more,) = [n for n in dot.label if n.startswith("more")]
    assert re.match(r"… \d+ more ops\n", dot.label[more])


# ---- determinism and rendering ------------------------------------------------------------------
def test_source_is_deterministic():
    assert draw_graph(mlp_from_ops()[0]).source == draw_graph(mlp_from_ops()[0]).source
    (a, ma), (b, mb) = conv_loss(), conv_loss()
    assert draw_graph(a, ma, show_saved=True).source == draw_graph(b, mb, show_saved=True).source
    assert not hasattr(at.Tensor, "draw")       # the core draws nothing: viz.draw_graph does
    assert "0x" not in draw_graph(a, ma).source                  # no id()/addresses


def check_svg(data):
    root = ET.fromstring(data)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


@pytest.fixture(scope="module")
def small_graph():
    loss, p = mlp_from_ops()
    return draw_graph(loss, p, show_saved=True, legend=True)


def test_render_in_process_with_pygraphviz(small_graph, tmp_path):
    root = check_svg(small_graph.save(tmp_path / "g.svg", backend="pygraphviz").read_bytes())
    assert "MatMul" in "".join(root.itertext())
    png = small_graph.save(tmp_path / "g.PNG", backend="pygraphviz").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    assert small_graph.save(tmp_path / "g.pdf", backend="pygraphviz").read_bytes()[:5] == \
        b"%PDF-"
    assert small_graph.save(tmp_path / "g.gv").read_text() == small_graph.source
    assert isinstance(small_graph, Graph) and small_graph.digraph.source == small_graph.source
    assert repr(small_graph).startswith("<autotensor.viz.Graph: ")


def test_auto_backend_without_dot_renders_in_process(small_graph, monkeypatch):
    monkeypatch.setattr(_viz_render.shutil, "which", lambda name: None)
    check_svg(small_graph._repr_svg_().encode())
    assert set(small_graph._repr_mimebundle_()) == {"image/svg+xml", "text/plain"}
    with pytest.raises(RuntimeError, match="pygraphviz"):
        small_graph.pipe("svg", backend="dot")


@pytest.mark.skipif(os.name == "nt", reason="the stand-in `dot` is a #! script")
def test_auto_backend_prefers_a_dot_program_on_path(small_graph, tmp_path, monkeypatch):
    # A stand-in `dot` (pygraphviz behind the `dot -Kdot -Tfmt` command line) exercises the
    # subprocess path on machines without Graphviz; the real one is tested below when present.
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\n"
                    "import pathlib, sys, pygraphviz\n"
                    "fmt = next(a[2:] for a in sys.argv if a.startswith('-T'))\n"
                    "pathlib.Path(sys.argv[0]).with_name('called').write_text(fmt)\n"
                    "g = pygraphviz.AGraph(string=sys.stdin.read())\n"
                    "sys.stdout.buffer.write(g.draw(format=fmt, prog='dot'))\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    assert shutil.which("dot") == str(fake)
    check_svg(small_graph.save(tmp_path / "g.svg").read_bytes())
    assert (fake.parent / "called").read_text() == "svg"
    assert small_graph.save(tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    assert (fake.parent / "called").read_text() == "png"


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_render_with_system_dot(small_graph, tmp_path):
    check_svg(small_graph.save(tmp_path / "g.svg", backend="dot").read_bytes())
    assert small_graph.save(tmp_path / "g.png", backend="dot").read_bytes()[:4] == b"\x89PNG"


# ---- summary and bad input ----------------------------------------------------------------------
def test_summary_table():
    loss, model = conv_loss()
    lines = []
    text = summary(loss, model, print_fn=lines.append)
    assert lines == [text]
    row = next(r for r in text.splitlines() if "Conv2d [fused]" in r)
    assert "(2, 4, 6, 6) float64" in row and "features.0" in row
    assert "features.0.weight" in row and "KiB" in row
    assert re.search(r"^features\.1\.weight\s+param\s+\(4,\)", text, re.M)
    assert "3 fused" in text.splitlines()[-1] and "6 parameters" in text.splitlines()[-1]
    assert len([r for r in text.splitlines() if r.startswith("#")]) == len(
        graph_nodes(loss._node))
    loss.backward()
    assert "freed" in summary(loss, model, print_fn=None)


@pytest.mark.parametrize("call, match", [
    (lambda: draw_graph(np.ones(3)), "expected a Tensor"),
    (lambda: draw_graph(long_chain(2), rankdir="XY"), "rankdir"),
    (lambda: draw_graph(long_chain(2), max_nodes=2), "max_nodes"),
    (lambda: draw_graph(long_chain(2), collapse_modules=-1), "collapse_modules"),
    (lambda: draw_graph(long_chain(2), params=3), "params must be"),
    (lambda: draw_graph(long_chain(2), params={"w": np.ones(2)}), "pairs"),
    (lambda: draw_graph(long_chain(2), params=nn.Linear(2, 2).parameters()),
     r"bare Parameter of shape \(2, 2\).*named_parameters"),
    (lambda: draw_graph(long_chain(2), params={0: at.Tensor(np.ones(2))}), "pairs"),
    (lambda: draw_graph(long_chain(2)).save("graph.bmp"), "extension"),
    (lambda: summary(long_chain(2), max_rows=1), "max_rows"),
])
def test_bad_input_raises_clear_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_leaf_output_and_rankdir():
    x = at.Tensor(np.ones(2), requires_grad=True)
    dot = Dot(draw_graph(x, rankdir="LR").source)
    assert list(dot.label) == ["out"] and "rankdir=LR" in draw_graph(x, rankdir="LR").source


# ---- the docs page ------------------------------------------------------------------------------
def test_visualization_doc_examples_run(tmp_path, monkeypatch):
    text = (DOCS / "visualization.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in blocks:
        exec(compile(block, "visualization.md", "exec"), namespace)
    for img in re.findall(r"\]\((img/[^)]+\.svg)\)", text):
        check_svg((DOCS / img).read_bytes())


def test_make_figures_writes_every_picture_the_doc_shows(tmp_path):
    spec = importlib.util.spec_from_file_location("make_figures", DOCS / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = {p.name for p in module.main(tmp_path)}
    shown = set(re.findall(r"\]\(img/([^)]+\.svg)\)", (DOCS / "visualization.md").read_text()))
    assert written == shown == {p.name for p in (DOCS / "img").glob("*.svg")}
    for name in sorted(written):
        # Layout coordinates may move between Graphviz versions; the words may not.
        fresh = svg_words(check_svg((tmp_path / name).read_bytes()))
        committed = svg_words(check_svg((DOCS / "img" / name).read_bytes()))
        assert fresh == committed, f"docs/img/{name} is stale: run python docs/make_figures.py"


def svg_words(root):
    """Every node/edge title and text of a rendered SVG, in document order."""
    return [el.text for el in root.iter() if el.tag.rsplit("}", 1)[-1] in ("title", "text")]
