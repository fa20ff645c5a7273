"""The one comparison with PyTorch that parity tests share: the same numpy inputs through an
autotensor callable and a torch callable, in float64; the same output, and the same gradient
for every input and parameter.

conftest.py puts this folder on sys.path: `from torch_compare import assert_matches_torch`.
"""

from __future__ import annotations

import contextlib

import numpy as np

import autotensor as at

RTOL, ATOL = 1e-10, 1e-12


def assert_matches_torch(torch, ours, theirs, arrays, *, grad=None, params=(), fused=None,
                         rtol=RTOL, atol=ATOL, seed=0, names=None):
    """ours(*inputs) == theirs(*inputs), and so are the gradients of sum(out * g) for a random
    g (drawn from `seed`); returns our output for further checks.

    arrays: numpy inputs, the float ones float64. grad: which inputs get a gradient
    (default: the float ones); the others go in as plain arrays and constant torch tensors
    (class indices, fixed targets). params: (name, autotensor Tensor, torch tensor) triples,
    e.g. a module's weights, whose gradients must agree too. fused: True/False runs our forward
    under `at.use_fused(fused)`. names: what to call the inputs in failure messages.
    Values agree when |ours - torch| <= atol + rtol * |torch| elementwise.
    """
    arrays = [np.asarray(a) for a in arrays]
    for i, a in enumerate(arrays):
        if a.dtype.kind in "fc" and a.dtype != np.float64:
            raise TypeError(f"arrays[{i}] is {a.dtype}: the comparison runs in float64")
    grad = [a.dtype.kind == "f" for a in arrays] if grad is None else list(grad)
    if len(grad) != len(arrays):
        raise ValueError(f"grad has {len(grad)} flags for {len(arrays)} arrays")
    names = [f"input {i}" for i in range(len(arrays))] if names is None else list(names)
    mine = [at.Tensor(a.copy(), requires_grad=True) if g else a.copy()
            for a, g in zip(arrays, grad, strict=True)]
    their = [torch.tensor(a, requires_grad=bool(g)) for a, g in zip(arrays, grad, strict=True)]
    with at.use_fused(fused) if fused is not None else contextlib.nullcontext():
        out = ours(*mine)
    ref = theirs(*their)
    _assert_close(out.data, ref.detach().numpy(), "output", rtol, atol)
    g = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(g)
    ref.backward(torch.tensor(g))
    compared = [(f"gradient of {n}", m, t)
                for n, m, t, needs in zip(names, mine, their, grad, strict=True) if needs]
    compared += [(f"gradient of parameter {n!r}", m, t) for n, m, t in params]
    for what, m, t in compared:
        if m.grad is None or t.grad is None:
            raise AssertionError(f"{what}: " + ("autotensor computed none" if m.grad is None
                                                else "torch computed none"))
        _assert_close(m.grad, t.grad.numpy(), what, rtol, atol)
    return out


def _assert_close(ours, theirs, what, rtol, atol):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    if ours.shape != theirs.shape or ours.dtype != theirs.dtype:
        raise AssertionError(f"{what}: autotensor gives {ours.dtype} {ours.shape}, torch "
                             f"{theirs.dtype} {theirs.shape}")
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol,
                               err_msg=f"{what} (ACTUAL: autotensor, DESIRED: torch)")
