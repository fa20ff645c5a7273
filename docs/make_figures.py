"""Regenerate the pictures of docs/visualization.md and docs/sweeps.md:
`python docs/make_figures.py [out_dir]`.

Every figure is built from fixed seeds, so running this twice gives the same DOT text (the SVG
may differ in small layout details between Graphviz versions: commit what you looked at).
The sweep figures come from a real sweep on a local Dask cluster (the `sweep` extra); its
results are kept beside them (img/sweep_results.jsonl) and the tests check all three.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

import autotensor as at
from autotensor import nn
from autotensor.nn import functional as F
from autotensor.viz import draw_graph, retain_grads

IMG = pathlib.Path(__file__).resolve().parent / "img"


def mlp_params(rng):
    return {"W1": at.Tensor(0.5 * rng.standard_normal((4, 6)), requires_grad=True),
            "b1": at.Tensor(np.zeros(6), requires_grad=True),
            "W2": at.Tensor(0.5 * rng.standard_normal((6, 3)), requires_grad=True),
            "b2": at.Tensor(np.zeros(3), requires_grad=True)}


def mlp_loss(rng, p):
    X = at.Tensor(rng.standard_normal((8, 4)))
    X.name = "X"
    scores = (X @ p["W1"] + p["b1"]).relu() @ p["W2"] + p["b2"]
    return F.softmax_cross_entropy(scores, np.arange(8) % 3)


def mlp():
    """A two-layer MLP from tensor ops, before backward()."""
    rng = np.random.default_rng(0)
    p = mlp_params(rng)
    return draw_graph(mlp_loss(rng, p), p)


def neuron():
    """micrograd's neuron with scalars, after backward(): every value and gradient."""
    x1, x2 = at.Tensor(2.0), at.Tensor(0.0)
    w1, w2 = at.Tensor(-3.0, requires_grad=True), at.Tensor(1.0, requires_grad=True)
    b = at.Tensor(6.8813735870195432, requires_grad=True)
    x1.name, x2.name = "x1", "x2"
    out = (x1 * w1 + x2 * w2 + b).tanh()
    retain_grads(out)
    out.backward()
    return draw_graph(out, {"w1": w1, "w2": w2, "b": b}, rankdir="LR")


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8),
                                      nn.ReLU(), nn.MaxPool2d(2))
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


def convnet_loss():
    np.random.seed(0)
    model = ConvNet()
    x = at.Tensor(np.random.randn(4, 3, 8, 8))
    x.name = "images"
    return F.softmax_cross_entropy(model(x), np.array([3, 1, 4, 1])), model


def convnet():
    """A conv net with batch norm, grouped by module; fused ops in gold."""
    loss, model = convnet_loss()
    return draw_graph(loss, model, show_stats=False)


def convnet_collapsed():
    """The same net, one node per module."""
    loss, model = convnet_loss()
    return draw_graph(loss, model, collapse_modules=True, show_stats=False)


def saved():
    """What each op keeps for backward, in bytes."""
    loss, model = convnet_loss()
    return draw_graph(loss, model, show_saved=True, show_stats=False)


def vanishing():
    """A deep sigmoid net after backward: gradient norms shrink layer by layer."""
    np.random.seed(0)
    layers = []
    for _ in range(8):
        layers += [nn.Linear(32, 32), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(32, 10))
    x = at.Tensor(np.random.randn(16, 32))
    x.name = "x"
    loss = F.softmax_cross_entropy(model(x), np.arange(16) % 10)
    retain_grads(loss)
    loss.backward()
    return draw_graph(loss, model, show_grads=True, collapse_modules=True, show_stats=False)


def long_chain():
    """A 1,000-step recurrence (2,001 ops) drawn with max_nodes=16."""
    rng = np.random.default_rng(0)
    W = at.Tensor(0.1 * rng.standard_normal((4, 4)), requires_grad=True)
    h = at.Tensor(np.ones((1, 4)))
    for _ in range(1000):
        h = (h @ W).tanh()
    return draw_graph(h.sum(), {"W": W}, max_nodes=16, show_stats=False)


FIGURES = [mlp, neuron, convnet, convnet_collapsed, saved, vanishing, long_chain]


def main(out_dir=IMG):
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for make in FIGURES:
        paths.append(make().save(out_dir / f"{make.__name__}.svg"))
        print("wrote", paths[-1])
    return paths


# ---- docs/sweeps.md -----------------------------------------------------------------------------
def sweep_space():
    """The sweep docs/sweeps.md shows: 24 random configs of FullyConnectedNet on the digits."""
    from autotensor import sweep

    return {"model": ["fc"], "dataset": ["digits"], "lr": sweep.loguniform(1e-4, 1e-1),
            "reg": sweep.uniform(0, 1e-2), "hidden": [50, 100, 200], "epochs": [5]}


def sweep_figures(out_dir=IMG):
    """Run the sweep into out_dir/sweep_results.jsonl and draw its pictures."""
    results = sweep_results(out_dir)
    return [results] + sweep_pictures(results, out_dir)


def sweep_results(out_dir=IMG):
    """Run the sweep afresh on a 2-worker local cluster; its results file."""
    from autotensor import sweep

    results = pathlib.Path(out_dir) / "sweep_results.jsonl"
    results.unlink(missing_ok=True)
    sweep.run(sweep.train_course_model, sweep_space(), trials=24, seed=0, results=results,
              workers=2, progress=False, data=sweep.load_dataset("digits"))
    return results


def sweep_pictures(results, out_dir=IMG):
    """The report's two pictures of a results file."""
    from autotensor import sweep

    out_dir = pathlib.Path(out_dir)
    rep = sweep.report(results)
    rep.scatter(out_dir / "sweep_scatter.png")
    rep.curves(out_dir / "sweep_curves.png", top=5)
    return [out_dir / "sweep_scatter.png", out_dir / "sweep_curves.png"]


if __name__ == "__main__":
    main(*sys.argv[1:])
    for path in sweep_figures(*sys.argv[1:]):
        print("wrote", path)
