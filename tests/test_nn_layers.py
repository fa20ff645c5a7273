"""nn.layers: the course's modular API, checked the way the course checks it."""

from __future__ import annotations

import numpy as np
import pytest

from autotensor.gradient_check import (
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    rel_error,
)
from autotensor.nn import layers as L

CONV = {"stride": 2, "pad": 1}
POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


def _bn_forward(x, g, b):
    return L.batchnorm_forward(x, g, b, {"mode": "train"})


def _sbn_forward(x, g, b):
    return L.spatial_batchnorm_forward(x, g, b, {"mode": "train"})


# name -> (forward(*inputs) -> (out, cache), backward(dout, cache), input builder)
PAIRS = {
    "affine": (L.affine_forward, L.affine_backward,
               lambda r: [r.standard_normal((4, 2, 3)), r.standard_normal((6, 5)),
                          r.standard_normal(5)]),
    "relu": (L.relu_forward, L.relu_backward,
             lambda r: [r.uniform(0.1, 1, (4, 5)) * r.choice([-1, 1], (4, 5))]),
    "affine_relu": (L.affine_relu_forward, L.affine_relu_backward,
                    lambda r: [r.standard_normal((3, 4)), r.standard_normal((4, 5)),
                               r.standard_normal(5)]),
    "batchnorm": (_bn_forward, L.batchnorm_backward,
                  lambda r: [r.standard_normal((8, 4)) * 3 + 1, r.standard_normal(4),
                             r.standard_normal(4)]),
    "batchnorm_alt": (_bn_forward, L.batchnorm_backward_alt,
                      lambda r: [r.standard_normal((8, 4)) * 3 + 1, r.standard_normal(4),
                                 r.standard_normal(4)]),
    "layernorm": (lambda x, g, b: L.layernorm_forward(x, g, b, {}), L.layernorm_backward,
                  lambda r: [r.standard_normal((4, 7)) * 2 - 1, r.standard_normal(7),
                             r.standard_normal(7)]),
    "dropout": (lambda x: L.dropout_forward(x, {"mode": "train", "p": 0.6, "seed": 123}),
                L.dropout_backward, lambda r: [r.standard_normal((6, 5)) + 10]),
    "conv_naive": (lambda x, w, b: L.conv_forward_naive(x, w, b, CONV), L.conv_backward_naive,
                   lambda r: [r.standard_normal((2, 3, 5, 5)), r.standard_normal((2, 3, 3, 3)),
                              r.standard_normal(2)]),
    "conv_fast": (lambda x, w, b: L.conv_forward_fast(x, w, b, CONV), L.conv_backward_fast,
                  lambda r: [r.standard_normal((2, 3, 5, 5)), r.standard_normal((2, 3, 3, 3)),
                             r.standard_normal(2)]),
    "max_pool_naive": (lambda x: L.max_pool_forward_naive(x, POOL), L.max_pool_backward_naive,
                       lambda r: [r.permutation(48).reshape(1, 3, 4, 4) * 0.1]),
    "max_pool_fast": (lambda x: L.max_pool_forward_fast(x, POOL), L.max_pool_backward_fast,
                      lambda r: [r.permutation(48).reshape(1, 3, 4, 4) * 0.1]),
    "spatial_batchnorm": (_sbn_forward, L.spatial_batchnorm_backward,
                          lambda r: [r.standard_normal((3, 2, 3, 2)) * 2 + 1,
                                     r.standard_normal(2), r.standard_normal(2)]),
    "spatial_groupnorm": (lambda x, g, b: L.spatial_groupnorm_forward(x, g, b, 2, {}),
                          L.spatial_groupnorm_backward,
                          lambda r: [r.standard_normal((2, 6, 3, 2)) * 2 + 1,
                                     r.standard_normal((1, 6, 1, 1)),
                                     r.standard_normal((1, 6, 1, 1))]),
    "conv_relu": (lambda x, w, b: L.conv_relu_forward(x, w, b, CONV), L.conv_relu_backward,
                  lambda r: [r.standard_normal((2, 2, 5, 5)), r.standard_normal((3, 2, 3, 3)),
                             r.standard_normal(3)]),
    "conv_relu_pool": (lambda x, w, b: L.conv_relu_pool_forward(x, w, b, {"stride": 1, "pad": 1},
                                                                 POOL),
                       L.conv_relu_pool_backward,
                       lambda r: [r.standard_normal((2, 2, 4, 4)),
                                  r.standard_normal((3, 2, 3, 3)), r.standard_normal(3)]),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_backward_matches_numerical_gradient(name):
    forward, backward, build = PAIRS[name]
    rng = np.random.default_rng(0)
    inputs = build(rng)
    out, cache = forward(*inputs)
    dout = rng.standard_normal(out.shape)
    grads = backward(dout, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    assert len(grads) == len(inputs)
    for i, (a, g) in enumerate(zip(inputs, grads, strict=True)):
        def f(v, i=i):
            args = list(inputs)
            args[i] = v
            return forward(*args)[0]
        num = eval_numerical_gradient_array(f, a, dout)
        assert g.shape == a.shape
        assert rel_error(g, num) < 1e-7, (name, i, rel_error(g, num))


def test_every_backward_is_checked():
    backwards = {n for n in L.__all__ if n.endswith(("_backward", "_backward_alt", "_naive"))
                 and "forward" not in n}
    checked = {PAIRS[k][1].__name__ for k in PAIRS}
    assert backwards <= checked, backwards - checked


def test_affine_forward_reference():
    x = np.linspace(-0.1, 0.5, num=2 * 120).reshape(2, 4, 5, 6)
    w = np.linspace(-0.2, 0.3, num=120 * 3).reshape(120, 3)
    b = np.linspace(-0.3, 0.1, num=3)
    out, _ = L.affine_forward(x, w, b)
    correct = np.array([[1.49834967, 1.70660132, 1.91485297],
                        [3.25553199, 3.51413270, 3.77273342]])
    assert rel_error(out, correct) < 1e-8


def test_backward_can_run_twice_with_the_same_cache():
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(2)
    _, cache = L.affine_relu_forward(x, w, b)
    first = L.affine_relu_backward(np.ones((3, 2)), cache)
    second = L.affine_relu_backward(np.ones((3, 2)), cache)
    for a, b2 in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b2)        # grads were reset, not accumulated


@pytest.mark.parametrize("loss_fn, expected", [(L.softmax_loss, np.log(10)), (L.svm_loss, 9.0)])
def test_losses_value_and_gradient(loss_fn, expected):
    rng = np.random.default_rng(2)
    x = 0.001 * rng.standard_normal((50, 10))
    y = rng.integers(10, size=50)
    loss, dx = loss_fn(x, y)
    assert abs(loss - expected) < 0.01
    num = eval_numerical_gradient(lambda v: loss_fn(v, y)[0], x, verbose=False)
    assert rel_error(dx, num) < 1e-7 if loss_fn is L.softmax_loss else rel_error(dx, num) < 1e-6


# ---- batch norm --------------------------------------------------------------------------------
def test_batchnorm_train_normalises_with_batch_statistics():
    rng = np.random.default_rng(3)
    x = 11 + 3 * rng.standard_normal((200, 3)) @ rng.standard_normal((3, 3))
    gamma, beta = np.array([1.0, 2.0, 3.0]), np.array([11.0, 12.0, 13.0])
    bn_param = {"mode": "train"}
    out, _ = L.batchnorm_forward(x, gamma, beta, bn_param)
    np.testing.assert_allclose(out.mean(axis=0), beta, atol=1e-10)
    np.testing.assert_allclose(out.std(axis=0), gamma, rtol=1e-4)
    # running stats were created as zeros and moved 10% of the way to the batch statistics
    np.testing.assert_allclose(bn_param["running_mean"], 0.1 * x.mean(axis=0))
    np.testing.assert_allclose(bn_param["running_var"], 0.1 * x.var(axis=0))


def test_batchnorm_test_mode_uses_running_statistics():
    rng = np.random.default_rng(4)
    W1, W2 = rng.standard_normal((50, 60)), rng.standard_normal((60, 3))
    bn_param = {"mode": "train"}
    gamma, beta = np.ones(3), np.zeros(3)
    for _ in range(50):
        x = np.maximum(0, rng.standard_normal((200, 50)) @ W1) @ W2
        L.batchnorm_forward(x, gamma, beta, bn_param)
    bn_param["mode"] = "test"
    x = np.maximum(0, rng.standard_normal((200, 50)) @ W1) @ W2
    out, cache = L.batchnorm_forward(x, gamma, beta, bn_param)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=0.2)     # the course's "~ 0" check
    np.testing.assert_allclose(out.std(axis=0), 1, atol=0.2)
    expected = (x - bn_param["running_mean"]) / np.sqrt(bn_param["running_var"] + 1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    running = bn_param["running_mean"].copy()
    L.batchnorm_forward(x, gamma, beta, bn_param)
    np.testing.assert_array_equal(bn_param["running_mean"], running)   # test mode: no update
    dx = L.batchnorm_backward(np.ones_like(x), cache)[0]
    np.testing.assert_allclose(dx, np.ones_like(x) / np.sqrt(bn_param["running_var"] + 1e-5))


def test_batchnorm_backward_and_alt_agree():
    rng = np.random.default_rng(5)
    x = 5 * rng.standard_normal((100, 50)) + 12
    gamma, beta = rng.standard_normal(50), rng.standard_normal(50)
    out, cache = L.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    dout = rng.standard_normal(out.shape)
    bn, alt = L.batchnorm_backward(dout, cache), L.batchnorm_backward_alt(dout, cache)
    for a, b in zip(bn, alt, strict=True):
        assert rel_error(a, b) < 1e-10


def test_batchnorm_backward_replays_the_forward_call_without_touching_bn_param():
    """batchnorm_backward records the twin from the cache: it neither updates the running
    statistics again nor reads ones changed since the forward call."""
    rng = np.random.default_rng(6)
    x = 3 * rng.standard_normal((20, 4)) + 2
    gamma, beta, dout = rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal((20, 4))
    bn_param = {"mode": "train"}
    _, cache = L.batchnorm_forward(x, gamma, beta, bn_param)
    after_forward = {k: bn_param[k].copy() for k in ("running_mean", "running_var")}
    first = L.batchnorm_backward(dout, cache)
    for k, v in after_forward.items():
        np.testing.assert_array_equal(bn_param[k], v)
    for a, b in zip(first, L.batchnorm_backward(dout, cache), strict=True):
        np.testing.assert_array_equal(a, b)             # recorded once, backward repeatable

    bn_param["mode"] = "test"
    out, cache = L.batchnorm_forward(x, gamma, beta, bn_param)
    bn_param["mode"] = "train"
    L.batchnorm_forward(x + 5, gamma, beta, bn_param)   # moves the running stats in place
    dx, dgamma, _ = L.batchnorm_backward(dout, cache)
    scale = 1 / np.sqrt(after_forward["running_var"] + 1e-5)
    np.testing.assert_allclose(dx, dout * gamma * scale, rtol=1e-12)
    np.testing.assert_allclose(dgamma, (dout * (out - beta) / gamma).sum(axis=0), rtol=1e-10)
    for a, b in zip((dx, dgamma), L.batchnorm_backward_alt(dout, cache), strict=False):
        assert rel_error(a, b) < 1e-12


def test_bad_batchnorm_mode():
    with pytest.raises(ValueError, match="mode"):
        L.batchnorm_forward(np.zeros((2, 3)), np.ones(3), np.zeros(3), {"mode": "eval"})


def test_layernorm_is_per_sample_and_mode_free():
    rng = np.random.default_rng(6)
    x = 3 * rng.standard_normal((4, 30)) + 7
    out, _ = L.layernorm_forward(x, np.ones(30), np.zeros(30), {})
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-10)
    np.testing.assert_allclose(out.std(axis=1), 1, rtol=1e-4)


# ---- dropout -----------------------------------------------------------------------------------
def test_dropout_keep_probability_and_modes():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((500, 500)) + 10
    for keep in (0.25, 0.4, 0.7):
        np.random.seed(231)
        out, _ = L.dropout_forward(x, {"mode": "train", "p": keep})
        out_test, _ = L.dropout_forward(x, {"mode": "test", "p": keep})
        assert abs(np.mean(out == 0) - (1 - keep)) < 0.01    # 'p' is the KEEP probability
        assert abs(out.mean() - x.mean()) < 0.1
        np.testing.assert_array_equal(out_test, x)
    _, cache = L.dropout_forward(x, {"mode": "test", "p": 0.5})
    dout = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(L.dropout_backward(dout, cache), dout)


def test_dropout_with_seed_repeats_its_mask():
    x = np.random.default_rng(8).standard_normal((10, 10))
    param = {"mode": "train", "p": 0.5, "seed": 0}
    np.testing.assert_array_equal(L.dropout_forward(x, param)[0], L.dropout_forward(x, param)[0])


# ---- conv and pooling --------------------------------------------------------------------------
CONV_CASES = [  # x shape, w shape, stride, pad
    ((2, 3, 7, 7), (4, 3, 3, 3), 1, 1),
    ((1, 2, 6, 5), (3, 2, 3, 2), 2, 0),       # non-square kernel; windows that do not fit drop
    ((2, 1, 8, 9), (2, 1, 4, 3), 3, 2),
    ((1, 2, 3, 3), (2, 2, 5, 5), 1, 1),       # kernel larger than the input, fits when padded
]


@pytest.mark.parametrize("xs, ws, stride, pad", CONV_CASES)
def test_conv_naive_and_fast_agree(xs, ws, stride, pad):
    rng = np.random.default_rng(9)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    param = {"stride": stride, "pad": pad}
    out_n, cache_n = L.conv_forward_naive(x, w, b, param)
    out_f, cache_f = L.conv_forward_fast(x, w, b, param)
    ho = (xs[2] + 2 * pad - ws[2]) // stride + 1
    wo = (xs[3] + 2 * pad - ws[3]) // stride + 1
    assert out_n.shape == out_f.shape == (xs[0], ws[0], ho, wo)
    assert rel_error(out_n, out_f) < 1e-10
    dout = rng.standard_normal(out_n.shape)
    naive, fast = L.conv_backward_naive(dout, cache_n), L.conv_backward_fast(dout, cache_f)
    for a, c in zip(naive, fast, strict=True):
        assert rel_error(a, c) < 1e-10


@pytest.mark.parametrize("xs, ph, pw, stride", [((2, 3, 8, 8), 2, 2, 2), ((1, 2, 7, 6), 3, 2, 2),
                                                 ((2, 1, 5, 5), 3, 3, 1)])
def test_max_pool_naive_and_fast_agree(xs, ph, pw, stride):
    rng = np.random.default_rng(10)
    x = rng.permutation(int(np.prod(xs))).reshape(xs).astype(np.float64)
    param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    out_n, cache_n = L.max_pool_forward_naive(x, param)
    out_f, cache_f = L.max_pool_forward_fast(x, param)
    assert out_n.shape == ((xs[0], xs[1], (xs[2] - ph) // stride + 1, (xs[3] - pw) // stride + 1))
    np.testing.assert_array_equal(out_n, out_f)
    dout = rng.standard_normal(out_n.shape)
    np.testing.assert_allclose(L.max_pool_backward_naive(dout, cache_n),
                               L.max_pool_backward_fast(dout, cache_f), rtol=1e-12)


BAD_CONV = [  # x shape, w shape, conv_param, message
    ((1, 3, 5, 5), (2, 2, 3, 3), {"stride": 1, "pad": 0}, "channels"),
    ((1, 3, 5, 5), (2, 3, 8, 3), {"stride": 1, "pad": 1}, "larger than the padded"),
    ((1, 3, 5, 5), (2, 3, 3, 3), {"stride": 0, "pad": 0}, "stride"),
    ((1, 3, 5, 5), (2, 3, 3, 3), {"stride": 1, "pad": -1}, "pad"),
    ((3, 5, 5), (2, 3, 3, 3), {"stride": 1, "pad": 0}, r"\(N, C, H, W\)"),
]


@pytest.mark.parametrize("forward", [L.conv_forward_naive, L.conv_forward_fast,
                                     L.conv_relu_forward])
@pytest.mark.parametrize("xs, ws, param, match", BAD_CONV)
def test_conv_rejects_bad_input(forward, xs, ws, param, match):
    with pytest.raises(ValueError, match=match):
        forward(np.zeros(xs), np.zeros(ws), np.zeros(ws[0]), param)


@pytest.mark.parametrize("forward", [L.max_pool_forward_naive, L.max_pool_forward_fast])
@pytest.mark.parametrize("xs, param", [
    ((1, 1, 3, 3), {"pool_height": 4, "pool_width": 2, "stride": 2}),
    ((1, 1, 4, 4), {"pool_height": 2, "pool_width": 2, "stride": 0}),
    ((4, 4), {"pool_height": 2, "pool_width": 2, "stride": 2}),
])
def test_pool_rejects_bad_input(forward, xs, param):
    with pytest.raises(ValueError, match="max pool"):
        forward(np.zeros(xs), param)


def test_float32_layers_stay_float32():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = np.zeros(4, np.float32)
    out, cache = L.conv_relu_pool_forward(x, w, b, {"stride": 1, "pad": 1}, POOL)
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in L.conv_relu_pool_backward(np.ones_like(out), cache))
    bn = {"mode": "train"}
    out, cache = L.batchnorm_forward(x[:, :, 0, 0], np.ones(3, np.float32),
                                     np.zeros(3, np.float32), bn)
    assert out.dtype == bn["running_mean"].dtype == np.float32
    assert all(g.dtype == np.float32 for g in L.batchnorm_backward(np.ones_like(out), cache))


# ---- the course's printed numbers (its notebook cells, run as written) -------------------------
def test_relu_forward_reference():
    x = np.linspace(-0.5, 0.5, num=12).reshape(3, 4)
    correct = np.array([[0., 0., 0., 0.], [0., 0., 0.04545455, 0.13636364],
                        [0.22727273, 0.31818182, 0.40909091, 0.5]])
    assert rel_error(L.relu_forward(x)[0], correct) < 5e-8


def test_losses_reference():
    np.random.seed(231)
    num_classes, num_inputs = 10, 50
    x = 0.001 * np.random.randn(num_inputs, num_classes)
    y = np.random.randint(num_classes, size=num_inputs)
    assert abs(L.svm_loss(x, y)[0] - 8.999602749096233) < 1e-12
    assert abs(L.softmax_loss(x, y)[0] - 2.3025458445007376) < 1e-12


@pytest.mark.parametrize("forward", [L.conv_forward_naive, L.conv_forward_fast])
def test_conv_forward_reference(forward):
    x_shape, w_shape = (2, 3, 4, 4), (3, 3, 4, 4)
    x = np.linspace(-0.1, 0.5, num=np.prod(x_shape)).reshape(x_shape)
    w = np.linspace(-0.2, 0.3, num=np.prod(w_shape)).reshape(w_shape)
    b = np.linspace(-0.1, 0.2, num=3)
    out, _ = forward(x, w, b, {"stride": 2, "pad": 1})
    correct = np.array([[[[-0.08759809, -0.10987781], [-0.18387192, -0.2109216]],
                         [[0.21027089, 0.21661097], [0.22847626, 0.23004637]],
                         [[0.50813986, 0.54309974], [0.64082444, 0.67101435]]],
                        [[[-0.98053589, -1.03143541], [-1.19128892, -1.24695841]],
                         [[0.69108355, 0.66880383], [0.59480972, 0.56776003]],
                         [[2.36270298, 2.36904306], [2.38090835, 2.38247847]]]])
    assert rel_error(out, correct) < 5e-8          # the course prints ~2.2e-8


@pytest.mark.parametrize("forward", [L.max_pool_forward_naive, L.max_pool_forward_fast])
def test_max_pool_forward_reference(forward):
    x_shape = (2, 3, 4, 4)
    x = np.linspace(-0.3, 0.4, num=np.prod(x_shape)).reshape(x_shape)
    out, _ = forward(x, {"pool_width": 2, "pool_height": 2, "stride": 2})
    correct = np.array([[[[-0.26315789, -0.24842105], [-0.20421053, -0.18947368]],
                         [[-0.14526316, -0.13052632], [-0.08631579, -0.07157895]],
                         [[-0.02736842, -0.01263158], [0.03157895, 0.04631579]]],
                        [[[0.09052632, 0.10526316], [0.14947368, 0.16421053]],
                         [[0.20842105, 0.22315789], [0.26736842, 0.28210526]],
                         [[0.32631579, 0.34105263], [0.38526316, 0.4]]]])
    assert rel_error(out, correct) < 5e-8


def test_dropout_forward_reference():
    np.random.seed(231)
    x = np.random.randn(500, 500) + 10
    printed = {0.25: (10.014059116977283, 0.749784), 0.4: (9.977917658761159, 0.600796),
               0.7: (9.987811912159426, 0.30074)}
    for p, (mean, zeros) in printed.items():
        out, _ = L.dropout_forward(x, {"mode": "train", "p": p})
        out_test, _ = L.dropout_forward(x, {"mode": "test", "p": p})
        assert abs(out.mean() - mean) < 1e-10 and (out == 0).mean() == zeros
        np.testing.assert_array_equal(out_test, x)


def test_dropout_seed_reseeds_numpys_global_rng_like_the_course():
    x = np.ones((3, 4))
    L.dropout_forward(x, {"mode": "test", "p": 0.5, "seed": 7})      # test mode too
    after_layer = np.random.rand(5)
    np.random.seed(7)
    np.testing.assert_array_equal(after_layer, np.random.rand(5))
    out, _ = L.dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 7})
    np.random.seed(7)
    np.testing.assert_array_equal(out, (np.random.rand(3, 4) < 0.5) / 0.5)


def test_batchnorm_forward_reference():
    np.random.seed(231)
    N, D1, D2, D3 = 200, 50, 60, 3
    X = np.random.randn(N, D1)
    W1 = np.random.randn(D1, D2)
    W2 = np.random.randn(D2, D3)
    a = np.maximum(0, X.dot(W1)).dot(W2)
    np.testing.assert_allclose(a.mean(axis=0), [-2.3814598, -13.18038246, 1.91780462],
                               rtol=1e-8)
    out, _ = L.batchnorm_forward(a, np.ones(D3), np.zeros(D3), {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-15)
    np.testing.assert_allclose(out.std(axis=0), [0.99999999, 1.0, 1.0], atol=1e-8)
    gamma, beta = np.asarray([1.0, 2.0, 3.0]), np.asarray([11.0, 12.0, 13.0])
    out, _ = L.batchnorm_forward(a, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=0), beta, rtol=1e-14)
    np.testing.assert_allclose(out.std(axis=0), [0.99999999, 1.99999999, 2.99999999], atol=1e-8)


def test_spatial_batchnorm_forward_reference():
    np.random.seed(231)
    N, C, H, W = 2, 3, 4, 5
    x = 4 * np.random.randn(N, C, H, W) + 10
    out, _ = L.spatial_batchnorm_forward(x, np.ones(C), np.zeros(C), {"mode": "train"})
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), [0.99999962, 0.99999951, 0.9999996],
                               rtol=1e-8)
    # The course passes integer gamma and beta here; they act as float64.
    gamma, beta = np.asarray([3, 4, 5]), np.asarray([6, 7, 8])
    out, cache = L.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), [6, 7, 8], rtol=1e-14)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), [2.99999885, 3.99999804, 4.99999798],
                               rtol=1e-8)
    dx, dgamma, dbeta = L.spatial_batchnorm_backward(np.ones_like(out), cache)
    assert dgamma.dtype == dbeta.dtype == np.float64 and dgamma.shape == (3,)
