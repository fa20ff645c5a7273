"""Engine semantics: reverse order without recursion, freeing, accumulation, modes, errors."""

from __future__ import annotations

import numpy as np
import pytest

import autotensor as at


def leaf(*shape, seed=0, dtype=np.float64):
    return at.Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype),
                     requires_grad=True)


# ---- backward order, depth, accumulation --------------------------------------------------------
def test_chain_of_100k_ops_backprops_without_recursion():
    x = leaf(3)
    y = x
    for _ in range(100_000):
        y = y * 1.0                      # dy/dx stays 1 through the whole chain
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones(3))


def test_tensor_used_on_several_paths_gets_the_sum():
    x = leaf(4)
    a = x * 2
    y = (a * x + a.exp()).sum()          # a diamond: x feeds a, and both feed the sum
    y.backward()
    expected = 4 * x.data + 2 * np.exp(2 * x.data)
    np.testing.assert_allclose(x.grad, expected, rtol=1e-12)


def test_leaf_grads_accumulate_across_backward_calls():
    x = leaf(3)
    (x * 3).sum().backward()
    (x * 4).sum().backward()
    np.testing.assert_allclose(x.grad, np.full(3, 7.0))
    x.zero_grad()
    assert x.grad is None


def test_add_of_two_leaves_gives_each_its_own_grad_array():
    a, b = leaf(3), leaf(3, seed=1)
    (a + b).sum().backward()
    assert a.grad is not b.grad
    a.grad *= 10                         # in-place update of one must not touch the other
    np.testing.assert_array_equal(b.grad, np.ones(3))


def test_same_tensor_twice_in_one_op():
    x = leaf(3)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data)


def test_second_backward_through_freed_graph_raises_clearly():
    x = leaf(3)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf(3)
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 4 * np.exp(x.data))


def test_backward_frees_saved_buffers():
    x = leaf(1000)
    y = x.exp()
    node = y._node
    assert node.saved is not None
    y.sum().backward()
    assert not isinstance(node.saved, np.ndarray)


def test_non_scalar_backward_needs_grad():
    y = leaf(2, 3) * 2
    with pytest.raises(RuntimeError, match=r"scalar output.*\(2, 3\)"):
        y.backward()
    y.backward(np.ones((2, 3)))          # with an explicit grad it works


def test_explicit_grad_of_wrong_shape_raises():
    y = leaf(2, 3) * 2
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 3\)"):
        y.backward(np.ones(3))


@pytest.mark.parametrize("op", [lambda x: x.sum(axis=5), lambda x: x.max(axis=-3),
                                lambda x: x.softmax(axis=5), lambda x: x.log_softmax(axis=2),
                                lambda x: at.logsumexp(x, axis=(0, 4))])
def test_axis_out_of_range_raises_value_error_naming_the_shape(op):
    with pytest.raises(ValueError, match=r"\(2, 3\).*out of range"):
        op(leaf(2, 3))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        at.Tensor(np.ones(3)).sum().backward()


def test_backward_on_a_leaf_sets_its_grad():
    x = leaf()
    x.backward()
    assert x.grad == 1.0


def test_retain_grad_keeps_an_intermediate_gradient():
    x = leaf(3)
    h = (x * 2).retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)
    np.testing.assert_allclose(x.grad, 4 * h.data)


# ---- modes ------------------------------------------------------------------------------------
def test_no_grad_context_and_decorator():
    x = leaf(3)
    with at.no_grad():
        y = x * 2
        assert not at.is_grad_enabled()
    assert at.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf

    @at.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    with at.no_grad(), at.enable_grad():
        assert (x * 2).requires_grad


def test_detach_cuts_the_graph_and_shares_data():
    x = leaf(3)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    z = (d * x).sum()
    z.backward()
    np.testing.assert_allclose(x.grad, d.data)


def test_item_numpy_and_properties():
    x = at.tensor([[1.0, 2.0]])
    assert x.shape == (1, 2) and x.ndim == 2 and x.dtype == np.float64 and x.size == 2
    assert x.sum().item() == 3.0
    assert x.numpy() is x.data
    assert "Tensor(" in repr(x)


def test_comparisons_are_plain_results():
    x = leaf(3)
    m = x > 0
    assert m.dtype == bool and not m.requires_grad
    y = at.where(m, x, x * 0.1)          # usable as a condition
    assert y.requires_grad


def test_ties_send_the_gradient_where_docs_ops_md_says():
    x = at.Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]), requires_grad=True)
    x.max(axis=1).sum().backward()       # max/min over axes: split evenly (PyTorch's amax)
    np.testing.assert_array_equal(x.grad, [[0, 0.5, 0.5], [0.5, 0.5, 0]])
    x.grad = None
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0.5, 0.5], [0, 0, 0]])
    x.grad = None
    x.min(axis=(0, 1)).backward()
    np.testing.assert_array_equal(x.grad, [[0, 0, 0], [0, 0, 1]])
    x.grad = None
    x.max(dim=1).values.sum().backward()     # max(dim=): all of it to the first extremum
    np.testing.assert_array_equal(x.grad, [[0, 1, 0], [1, 0, 0]])
    for op in (at.maximum, at.minimum):  # maximum/minimum: half to each argument
        a, b = leaf(3), leaf(3, seed=1)
        b.data[...] = a.data
        op(a, b).sum().backward()
        np.testing.assert_array_equal(a.grad, np.full(3, 0.5))
        np.testing.assert_array_equal(b.grad, np.full(3, 0.5))


# ---- dtype ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [
    lambda x: (x * 2.0 + 1.0).sum(),
    lambda x: (x @ x.T).tanh().mean(),
    lambda x: x.log_softmax(axis=1)[np.arange(2), [0, 2]].sum(),
    lambda x: (x ** 2 / 3.0).var(axis=0).sum(),
    lambda x: at.maximum(x, 0.0).max() - x.min(),
    lambda x: at.pad(x, 1).reshape(-1)[::2].sum() + x.sigmoid().sum(),
])
def test_float32_stays_float32(fn):
    x = at.Tensor(np.random.default_rng(0).uniform(0.5, 1.5, (2, 3)).astype(np.float32),
                  requires_grad=True)
    out = fn(x)
    assert out.dtype == np.float32
    out.backward()
    assert x.grad.dtype == np.float32


def test_float32_leaf_keeps_float32_grad_with_float64_constant():
    x = leaf(3, dtype=np.float32)
    (x * np.ones(3)).sum().backward()    # numpy promotes the product to float64
    assert x.grad.dtype == np.float32


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        at.Tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        at.zeros(3, dtype=np.int32, requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        at.Tensor([1, 2, 3]).requires_grad_()
    labels = at.Tensor([1, 2, 3])
    assert labels.dtype.kind == "i"


def test_cast_to_integer_leaves_the_graph():
    x = leaf(3)
    idx = x.astype(np.int64)             # like PyTorch's x.long(): no gradient through it
    assert idx.dtype == np.int64 and not idx.requires_grad and idx.is_leaf
    assert x.astype(np.float32).requires_grad


# ---- bad input --------------------------------------------------------------------------------
def test_matmul_shape_mismatch_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"MatMul.*\(2, 3\).*\(4, 5\)"):
        leaf(2, 3) @ leaf(4, 5)


def test_broadcast_mismatch_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"Add.*\(2, 3\).*\(4,\)"):
        leaf(2, 3) + leaf(4)


def test_reshape_mismatch_is_clear():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 2\)"):
        leaf(2, 3).reshape(4, 2)


def test_bad_axis_and_transpose_are_clear():
    with pytest.raises(ValueError, match="axis 3"):
        leaf(2, 3).sum(axis=3)
    with pytest.raises(ValueError, match="permutation"):
        leaf(2, 3).transpose(0, 0)


@pytest.mark.filterwarnings("ignore:divide by zero")
def test_nan_gradients_are_not_hidden():
    x = at.Tensor(np.array([0.0, 1.0]), requires_grad=True)
    x.sqrt().sum().backward()            # d sqrt(x)/dx at 0 is inf: it must show
    assert np.isinf(x.grad[0])


@pytest.mark.filterwarnings("ignore:divide by zero")
def test_detect_anomaly_names_the_op():
    x = at.Tensor(np.array([0.0, 1.0]), requires_grad=True)
    with at.detect_anomaly(), pytest.raises(FloatingPointError, match="Sqrt"):
        x.sqrt().sum().backward()


class _WrongBackward(at.Function):
    def forward(self, x, y, result="ok"):
        self.result = result
        return x + y

    def backward(self, g):
        if self.result == "one":                 # forgot the second input's gradient
            return g
        if self.result == "short":               # a gradient of the wrong shape
            return g[:2], g
        return g, g


@pytest.mark.parametrize("result, message", [
    ("one", r"_WrongBackward.backward returned 1 gradients for 2 inputs"),
    ("short", r"gradient of shape \(2,\) for input 0 of shape \(3,\)"),
])
def test_a_backward_returning_wrong_gradients_raises(result, message):
    x, y = leaf(3), leaf(3, seed=1)
    out = _WrongBackward.apply(x, y, result=result)
    with pytest.raises(RuntimeError, match=message):
        out.sum().backward()
    assert x.grad is None or x.grad.shape == (3,)


def test_a_broadcast_gradient_is_still_reduced_for_user_ops():
    x, y = leaf(3), leaf(2, 1, seed=1)
    _WrongBackward.apply(x, y).sum().backward()
    assert x.grad.shape == (3,) and y.grad.shape == (2, 1)
    np.testing.assert_array_equal(y.grad, np.full((2, 1), 3.0))


def test_function_scope_is_recorded():
    from autotensor.function import scope
    x = leaf(2)
    with scope("encoder.0"):
        y = x * 2
    z = y + 1
    assert y._node.scope == "encoder.0" and z._node.scope is None


# ---- user-defined ops -------------------------------------------------------------------------
class Cube(at.Function):
    """z = x ** 3, a user-defined op."""

    def forward(self, x):
        self.saved = x
        return x ** 3

    def backward(self, g):
        return 3 * g * self.saved ** 2


def test_user_defined_function():
    x = leaf(4)
    assert at.gradcheck(Cube.apply, [x])
    y = Cube.apply(x)
    assert y._node.name == "Cube" and not y._node.fused


def test_in_place_accumulation_never_touches_shared_gradients():
    # Add hands one array to both inputs; later contributions are summed in place only into
    # arrays the engine allocated, so neither the other input's gradient nor a retained
    # gradient nor the caller's upstream array may change.
    x, w = leaf(3), leaf(3, seed=1)
    h = (x + w).retain_grad()            # h's grad flows unchanged to x and to w
    y = h * 1.0 + x * 2.0 + x * 3.0 + w * w
    upstream = np.full(3, 2.0)
    y.backward(upstream)
    np.testing.assert_array_equal(upstream, np.full(3, 2.0))
    np.testing.assert_allclose(h.grad, np.full(3, 2.0))
    np.testing.assert_allclose(x.grad, 2.0 * (1 + 2 + 3))
    np.testing.assert_allclose(w.grad, 2.0 * (1 + 2 * w.data))
    for _ in range(2):                   # across calls: existing .grad arrays are not reused
        before = x.grad
        snapshot = before.copy()
        (x * 1.0 + x * 1.0).sum().backward()
        np.testing.assert_array_equal(before, snapshot)
        np.testing.assert_allclose(x.grad, snapshot + 2.0)


# ---- per-thread modes --------------------------------------------------------------------------
def test_no_grad_in_one_thread_does_not_turn_recording_off_in_another():
    import threading
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def quiet():
        with at.no_grad(), at.use_fused(False):
            inside.set()
            done.wait(5)
            seen["quiet"] = (at.is_grad_enabled(), at.fused_enabled(),
                             (leaf(2) * 2).requires_grad)

    def busy():
        inside.wait(5)                   # runs while the other thread is inside no_grad
        seen["busy"] = (at.is_grad_enabled(), at.fused_enabled(), (leaf(2) * 2).requires_grad)
        done.set()

    threads = [threading.Thread(target=quiet), threading.Thread(target=busy)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"quiet": (False, False, False), "busy": (True, True, True)}
    assert at.is_grad_enabled() and at.fused_enabled()


def test_a_no_grad_decorated_function_called_from_two_threads():
    import threading
    results = []

    @at.no_grad()
    def f(x):
        return (x * 2).requires_grad

    threads = [threading.Thread(target=lambda: results.extend(f(leaf(2)) for _ in range(200)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [False] * 400 and at.is_grad_enabled()


def test_module_scopes_are_per_thread():
    import threading

    from autotensor import nn
    barrier = threading.Barrier(2)
    scopes = {}

    class Probe(nn.Module):
        def __init__(self, key):
            super().__init__()
            self.key = key

        def forward(self, x):
            barrier.wait(5)              # both threads are inside a forward at once
            scopes[self.key] = (x * 2)._node.scope
            return x

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.probe = Probe("outer")

        def forward(self, x):
            return self.probe(x)

    t1 = threading.Thread(target=lambda: Outer()(leaf(2)))
    t2 = threading.Thread(target=lambda: Probe("root")(leaf(2)))
    t1.start()
    t2.start()
    t1.join()
    t2.join()
    assert scopes == {"outer": "probe", "root": ""}


# ---- dtype policy, pow at zero, empty means ----------------------------------------------------
@pytest.mark.parametrize("data", ["abc", np.array([object()]), [b"x"]])
def test_string_and_object_data_are_refused_naming_the_dtype(data):
    with pytest.raises(TypeError, match="dtype"):
        at.Tensor(data)


def test_ops_refuse_complex_arrays_at_the_call():
    x = leaf(2, 3)
    with pytest.raises(TypeError, match="complex"):
        x * np.ones((2, 3), dtype=complex)
    z = at.full((2, 3), 1 + 2j)          # a complex tensor exists (torch.full makes one) ...
    with pytest.raises(TypeError, match="complex128"):
        x * z                            # ... but no op takes it
    with pytest.raises(TypeError, match="floating-point"):
        at.Tensor(np.ones(2, complex), requires_grad=True)
    with pytest.raises(TypeError, match="complex"):
        x + 1j
    from autotensor import fused
    with pytest.raises(TypeError, match="complex"):
        fused.conv2d(np.ones((1, 1, 3, 3), complex), leaf(1, 1, 2, 2))
    with pytest.raises(TypeError, match="complex"):
        fused.max_pool2d(np.ones((1, 1, 4, 4), complex), 2)


def test_bool_and_integer_data_promote_to_float_where_a_gradient_flows():
    w = leaf(3)
    mask, counts = at.Tensor(np.array([True, False, True])), at.Tensor(np.array([1, 2, 3]))
    y = (w * mask + w * counts).sum()
    assert y.dtype == np.float64
    y.backward()
    np.testing.assert_allclose(w.grad, [2, 2, 4])
    assert counts.mean().dtype == np.float64


def test_pow_gradient_at_zero_follows_pytorch(torch):
    xs, ys = np.array([0.0, 0.0, 0.0, 2.0]), np.array([2.0, 0.0, 1.5, 3.0])
    x, y = at.Tensor(xs, requires_grad=True), at.Tensor(ys, requires_grad=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        (x ** y).sum().backward()
    xt, yt = torch.tensor(xs, requires_grad=True), torch.tensor(ys, requires_grad=True)
    (xt ** yt).sum().backward()
    np.testing.assert_array_equal(x.grad, xt.grad.numpy())
    np.testing.assert_array_equal(y.grad, yt.grad.numpy())
    assert not np.isnan(y.grad).any()


def test_mean_over_zero_elements_is_nan_like_pytorch():
    x = at.Tensor(np.zeros((0, 3)), requires_grad=True)
    m = x.mean()
    assert np.isnan(m.item())
    assert np.isnan(x.mean(axis=0).data).all() and x.mean(axis=1).shape == (0,)
    m.backward()
    assert x.grad.shape == (0, 3)


# ---- retain_grad without cycles, explanations of a None .grad -----------------------------------
def test_retain_grad_holds_no_reference_cycle():
    import gc
    import weakref
    gc.disable()
    try:
        x = leaf(1000)
        h = (x * 2).retain_grad()
        y = (h * h).sum()
        y.backward()
        assert h.grad is not None
        ref = weakref.ref(h)
        del h, y
        assert ref() is None             # freed by reference counting alone
    finally:
        gc.enable()


def test_reading_the_grad_of_a_non_leaf_warns_why_it_is_none():
    x = leaf(3)
    h = x * 2
    h.sum().backward()
    with pytest.warns(UserWarning, match="not a leaf.*retain_grad"):
        assert h.grad is None


@pytest.mark.parametrize("how, reason", [
    ("no_grad", "under no_grad"), ("detach", "detach"), ("unused", "no recorded op has used"),
])
def test_a_leaf_whose_grad_stays_none_gets_the_reason(how, reason):
    w, other = leaf(3), leaf(3, seed=1)
    if how == "no_grad":
        with at.no_grad():
            w * 2
    elif how == "detach":
        (w.detach() * other).sum()
    (other * 3).sum().backward()
    with pytest.warns(UserWarning, match=reason):
        assert w.grad is None


def test_a_leaf_used_in_a_recorded_op_is_not_explained():
    import warnings
    w = leaf(3)
    y = (w * 2).sum()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert w.grad is None            # backward simply has not run yet
    y.backward()
    assert w.grad is not None


@pytest.mark.parametrize("method", ["__init__", "__new__"])
def test_a_function_subclass_with_its_own_constructor_is_refused_when_defined(method):
    body = {method: lambda *args, **kwargs: None, "forward": lambda self, x: x}
    with pytest.raises(TypeError, match=f"may not define {method}.*forward as arguments"):
        type("Scaled", (at.Function,), body)
