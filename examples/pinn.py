"""A physics-informed net: u(x) solving u'' = -(2 pi)^2 sin(2 pi x) on [0, 1], u(0) = u(1) = 0.

The exact solution is sin(2 pi x). The net u(x) = MLP(x) (tanh) is trained on the residual of
the equation at random collocation points, plus the two boundary values:

    loss = mean((u''(x) + (2 pi)^2 sin(2 pi x))^2) + u(0)^2 + u(1)^2

u'' is the second derivative of the net's output with respect to its INPUT, taken with
`at.grad(..., create_graph=True)` twice, so the loss's gradient with respect to the weights is
a third-order derivative through the tape. `python examples/pinn.py [--steps N] [--quick]
[--out DIR]` writes pinn.png: u against the exact solution, and the loss curve.
"""

from __future__ import annotations

import _zoo
import numpy as np

import autotensor as at
from autotensor import nn, optim

SIZES = {"full": {"width": 32, "points": 64}, "small": {"width": 3, "points": 4}}
LEARNS = (150, 10.0)
K = 2 * np.pi


def exact(x):
    return np.sin(K * x)


def build(size="full", dtype=np.float64):
    w = SIZES[size]["width"]
    return nn.Sequential(nn.Linear(1, w), nn.Tanh(), nn.Linear(w, w), nn.Tanh(),
                         nn.Linear(w, 1)).astype(dtype)


def torch_build(torch, size="full"):
    w, tnn = SIZES[size]["width"], torch.nn
    return tnn.Sequential(tnn.Linear(1, w), tnn.Tanh(), tnn.Linear(w, w), tnn.Tanh(),
                          tnn.Linear(w, 1)).double()


def batch(rng, size="full", dtype=np.float64):
    """Collocation points x (N, 1) uniform in [0, 1]."""
    return {"x": rng.uniform(0.0, 1.0, (SIZES[size]["points"], 1)).astype(dtype)}


def optimizers(model, optim):
    return [optim.Adam(model.parameters(), lr=3e-3)]


def loss(model, batch):
    x = at.tensor(batch["x"], requires_grad=True)
    u = model(x)
    [du] = at.grad(u.sum(), x, create_graph=True)
    [d2u] = at.grad(du.sum(), x, create_graph=True)
    residual = d2u + K * K * at.sin(K * x.detach())
    ends = model(at.tensor(np.array([[0.0], [1.0]], dtype=batch["x"].dtype)))
    return (residual * residual).mean() + (ends * ends).sum()


def step(model, opts, batch):
    [opt] = opts
    opt.zero_grad()
    total = loss(model, batch)
    total.backward()
    grads = _zoo.grads_of(model.named_parameters())
    opt.step()
    return {"loss": total.item()}, grads


def torch_step(torch, model, opts, batch):
    [opt] = opts
    opt.zero_grad()
    x = torch.tensor(batch["x"], requires_grad=True)
    u = model(x)
    [du] = torch.autograd.grad(u.sum(), x, create_graph=True)
    [d2u] = torch.autograd.grad(du.sum(), x, create_graph=True)
    residual = d2u + K * K * torch.sin(K * x.detach())
    ends = model(torch.tensor([[0.0], [1.0]], dtype=x.dtype))
    total = (residual * residual).mean() + (ends * ends).sum()
    total.backward()
    grads = _zoo.grads_of(model.named_parameters())
    opt.step()
    return {"loss": total.item()}, grads


def main(argv=None):
    args = _zoo.parse_args(argv, __doc__.splitlines()[0], steps=3000, quick_steps=LEARNS[0])
    at.manual_seed(args.seed)
    np.random.seed(args.seed)                 # nn.Linear draws from numpy's RNG
    model = build()
    history = _zoo.train_loss(model, optimizers(model, optim), step, batch, args,
                              "pinn", every=100, fmt=".2e")
    xs = np.linspace(0.0, 1.0, 201)[:, None]
    with at.no_grad():
        u = model(xs).data[:, 0]
    err = float(np.max(np.abs(u - exact(xs[:, 0]))))
    print(f"PINN: max |u - exact| = {err:.3g} after {args.steps} steps")
    plt = _zoo.matplotlib_or_none()
    if plt is not None:
        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
        a.plot(xs[:, 0], exact(xs[:, 0]), "k-", lw=3, alpha=0.3, label="exact sin(2 pi x)")
        a.plot(xs[:, 0], u, "C1--", label=f"net (max error {err:.2g})")
        a.set(xlabel="x", ylabel="u(x)")
        a.legend(fontsize=8)
        b.plot(history["loss"], lw=0.6)
        b.set(xlabel="step", ylabel="loss", yscale="log")
        fig.suptitle("physics-informed net: u'' = -(2 pi)^2 sin(2 pi x), u(0) = u(1) = 0")
        fig.tight_layout()
        _zoo.save_figure(fig, args, "pinn.png", __file__, history)
        plt.close(fig)
    return history


if __name__ == "__main__":
    main()
