"""Tensor.register_hook and requires_grad_, against PyTorch: the gradients each hook sees,
the replacements it returns, the order hooks run in, and the errors."""

from __future__ import annotations

import numpy as np
import pytest

import autotensor as at


def _val(g):
    """A copy of a gradient as an array, from an ndarray or a Tensor (autotensor or torch)."""
    if hasattr(g, "detach"):
        g = g.detach()
    return np.array(g.numpy() if hasattr(g, "numpy") else g, dtype=np.float64)


def _graph(x, record):
    """A graph with a leaf used three times and a non-leaf used twice, three hooks on it."""
    y = x * 3.0
    y.register_hook(lambda g: record.append(("y1", _val(g))) or g + 1.0)
    y.register_hook(lambda g: record.append(("y2", _val(g))))
    z = (y * y).sum() + (y * x).sum()
    return y, z


@pytest.mark.parametrize("via", ["backward", "grad"])
def test_hooks_see_and_replace_gradients_as_in_torch(torch, via):
    xs = np.array([1.0, -2.0, 0.5])
    runs = {}
    for name, make in (("at", lambda: at.Tensor(xs.copy(), requires_grad=True)),
                       ("torch", lambda: torch.tensor(xs.copy(), requires_grad=True))):
        record = []
        x = make()
        x.register_hook(lambda g, record=record: record.append(("x", _val(g))) or g * 10.0)
        _, z = _graph(x, record)
        if via == "backward":
            z.backward()
            result = _val(x.grad)
        else:
            (result,) = torch.autograd.grad(z, [x]) if name == "torch" else at.grad(z, [x])
            result = _val(result)
            assert x.grad is None
        runs[name] = record, result
    (ours, ours_grad), (theirs, theirs_grad) = runs["at"], runs["torch"]
    assert [k for k, _ in ours] == [k for k, _ in theirs] == ["y1", "y2", "x"]
    for (_, a), (_, b) in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(ours_grad, theirs_grad, rtol=1e-12)


def test_a_leaf_hook_sees_the_sum_of_the_pass_once(torch):
    seen = {}
    for name, x in (("at", at.Tensor([1.0, 2.0], requires_grad=True)),
                    ("torch", torch.tensor([1.0, 2.0], requires_grad=True))):
        calls = seen[name] = []
        x.register_hook(lambda g, calls=calls: calls.append(_val(g)))
        (x * 2.0 + x * 3.0).sum().backward()
        (x * 4.0).sum().backward()                     # accumulates: the hook sees 4, not 9
        calls.append(_val(x.grad))
    assert len(seen["at"]) == len(seen["torch"]) == 3
    for a, b in zip(seen["at"], seen["torch"]):
        np.testing.assert_allclose(a, b)


def test_grad_of_a_hooked_non_leaf_input_is_the_replacement(torch):
    results = []
    for lib, x in ((at, at.Tensor([1.0, 2.0], requires_grad=True)),
                   (torch, torch.tensor([1.0, 2.0], requires_grad=True))):
        y = x * 3.0
        y.register_hook(lambda g: g * 2.0)
        grad = torch.autograd.grad if lib is torch else at.grad
        results.append(_val(grad((y * y).sum(), [y])[0]))
    np.testing.assert_allclose(results[0], results[1])
    np.testing.assert_allclose(results[0], [12.0, 24.0])


def test_retained_grad_sees_the_hooked_gradient(torch):
    grads = []
    for x in (at.Tensor([1.0, 2.0], requires_grad=True),
              torch.tensor([1.0, 2.0], requires_grad=True)):
        y = x * 3.0
        y.retain_grad()
        y.register_hook(lambda g: g * 2.0)
        y.sum().backward()
        grads.append((_val(y.grad), _val(x.grad)))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(grads[0][1], [6.0, 6.0])


def test_hooks_before_and_after_an_inplace_op_see_old_and_new_value_grads(torch):
    logs = []
    for x in (at.Tensor([1.0, 2.0], requires_grad=True),
              torch.tensor([1.0, 2.0], requires_grad=True)):
        log = []
        y = x * 3.0
        y.register_hook(lambda g, log=log: log.append(("before", _val(g))))
        y *= 2.0
        y.register_hook(lambda g, log=log: log.append(("after", _val(g))))
        (y * 5.0).sum().backward()
        logs.append((log, _val(x.grad)))
    (ours, ours_x), (theirs, theirs_x) = logs
    assert [k for k, _ in ours] == [k for k, _ in theirs] == ["after", "before"]
    for (_, a), (_, b) in zip(ours, theirs):
        np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(ours_x, theirs_x)


def test_hooks_under_create_graph_get_tensors_and_stay_differentiable(torch):
    out = []
    for lib, x in ((at, at.Tensor([1.0, 2.0], requires_grad=True)),
                   (torch, torch.tensor([1.0, 2.0], requires_grad=True))):
        kinds = []
        x.register_hook(lambda g, kinds=kinds: kinds.append(getattr(g, "requires_grad", False))
                          or g * g)
        grad = torch.autograd.grad if lib is torch else at.grad
        (gx,) = grad((x ** 3).sum(), [x], create_graph=True)   # hooked: (3 x^2)^2
        (ggx,) = grad(gx.sum(), [x])                           # d/dx 9 x^4, hooked again
        out.append((kinds, _val(gx), _val(ggx)))
    assert out[0][0] == out[1][0] == [True, False]
    np.testing.assert_allclose(out[0][1], out[1][1])
    np.testing.assert_allclose(out[0][2], out[1][2])
    np.testing.assert_allclose(out[0][1], [9.0, 144.0])


def test_create_graph_hook_argument_is_a_tensor():
    x = at.Tensor([1.0, 2.0], requires_grad=True)
    kinds = []
    x.register_hook(lambda g: kinds.append(type(g)))
    y = x * x
    y.register_hook(lambda g: kinds.append(type(g)))
    y.sum().backward(create_graph=True)
    assert kinds == [at.Tensor, at.Tensor]
    y = x * x
    y.register_hook(lambda g: kinds.append(type(g)))
    x.grad = None
    y.sum().backward()
    assert kinds[2:] == [np.ndarray, np.ndarray]


def test_remove_unhooks_and_handles_work_as_context_managers():
    x = at.Tensor([1.0, 2.0], requires_grad=True)
    calls = []
    handle = x.register_hook(lambda g: calls.append("a") or g * 2.0)
    x.register_hook(lambda g: calls.append("b"))
    (x * 1.0).sum().backward()
    np.testing.assert_allclose(x.grad, [2.0, 2.0])
    handle.remove()
    handle.remove()                                   # twice is harmless, as in torch
    x.grad = None
    (x * 1.0).sum().backward()
    np.testing.assert_allclose(x.grad, [1.0, 1.0])
    assert calls == ["a", "b", "b"]
    y = x * 2.0
    with y.register_hook(lambda g: g * 0.0):
        pass                                          # removed on exit
    x.grad = None
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [2.0, 2.0])


def test_hook_on_the_root_and_on_a_multi_output_piece():
    x = at.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    a, b = x.split(2, dim=1)
    seen = []
    b.register_hook(lambda g: seen.append(g.copy()) or g * 3.0)
    s = a.sum() + b.sum()
    s.register_hook(lambda g: seen.append(g.copy()) or g * 2.0)
    s.backward()
    np.testing.assert_allclose(seen[0], 1.0)
    np.testing.assert_allclose(seen[1], [[2.0], [2.0]])
    np.testing.assert_allclose(x.grad, [[2.0, 2.0, 6.0], [2.0, 2.0, 6.0]])


def test_the_hook_argument_is_read_only_so_shared_gradients_stay_intact():
    x = at.Tensor([1.0, 2.0], requires_grad=True)
    y = x * 1.0
    y.register_hook(lambda g: g.__imul__(2.0))
    with pytest.raises(ValueError, match="read-only"):
        (y + y).sum().backward()


def test_register_hook_errors():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        at.Tensor([1.0]).register_hook(lambda g: g)
    x = at.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match="callable"):
        x.register_hook(3)
    y = x * 3.0

    def bad(g):
        return g[:1]
    y.register_hook(bad)
    with pytest.raises(RuntimeError, match=r"hook 'bad' has changed the size of value.*\(1,\)"):
        y.sum().backward()


def test_hook_error_kinds_match_torch(torch):
    with pytest.raises(RuntimeError):
        torch.tensor([1.0]).register_hook(lambda g: g)
    y = torch.tensor([1.0, 2.0], requires_grad=True) * 3.0
    y.register_hook(lambda g: g[:1])
    with pytest.raises(RuntimeError, match="changed the size of value"):
        y.sum().backward()


# ---- requires_grad_ ---------------------------------------------------------------------------
def test_requires_grad_on_a_leaf_returns_self_and_turns_recording_on_and_off(torch):
    for lib in (at, torch):
        x = lib.zeros(3, dtype=lib.float64) if lib is torch else at.zeros(3)
        assert x.requires_grad_() is x and x.requires_grad
        assert x.requires_grad_(False) is x and not x.requires_grad
        x.requires_grad_(requires_grad=True)
        (x * 2.0).sum().backward()
        np.testing.assert_allclose(_val(x.grad), [2.0, 2.0, 2.0])


def test_requires_grad_false_on_a_non_leaf_is_refused_as_in_torch(torch):
    with pytest.raises(RuntimeError, match="leaf"):
        (torch.zeros(2, requires_grad=True) * 2).requires_grad_(False)
    y = at.zeros(2, requires_grad=True) * 2.0
    with pytest.raises(RuntimeError, match="only change requires_grad flags of leaf"):
        y.requires_grad_(False)
    assert y.requires_grad_() is y and y.requires_grad       # True on a non-leaf: no-op


def test_requires_grad_on_integer_data_is_refused():
    with pytest.raises(TypeError, match="floating-point"):
        at.Tensor(np.arange(3)).requires_grad_()


def test_a_detached_tensor_made_to_require_grad_gets_hooks():
    x = (at.Tensor([1.0, 2.0], requires_grad=True) * 2.0).detach().requires_grad_()
    x.register_hook(lambda g: g * 5.0)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, [20.0, 40.0])
