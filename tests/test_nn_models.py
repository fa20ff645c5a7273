"""nn.models: the course's networks give the course's numbers, and tape gradients match numerics."""

from __future__ import annotations

import numpy as np
import pytest

from autotensor.gradient_check import eval_numerical_gradient, rel_error
from autotensor.nn.models import (
    FullyConnectedNet,
    ThreeLayerConvNet,
    TwoLayerNet,
    init_two_layer_model,
    two_layer_net,
)


def _randomize(model, seed):
    """Biases, gammas and betas off their initial 0 / 1, so no ReLU sits exactly at its kink."""
    rng = np.random.default_rng(seed)
    for name, p in model.params.items():
        if not name.startswith("W"):
            p += 0.2 * rng.standard_normal(p.shape)


def _check_grads(model, X, y, tol=1e-6, h=1e-5):
    """Every grads[name] within `tol` relative error of the numerical gradient.

    NOTE: a bias right before batch norm has an exactly zero gradient (the batch mean removes
    it); there the analytic gradient is ~1e-16 and the numerical one is rounding noise, about
    eps * |loss| / h (~1e-9 at h = 1e-6), so relative error is meaningless. Such elements count
    as equal when the analytic side is below 1e-12 and the numerical side below 1e-8.
    """
    _randomize(model, 99)
    loss, grads = model.loss(X, y)
    assert set(grads) == set(model.params)
    for name, p in model.params.items():
        assert grads[name].shape == p.shape and grads[name].dtype == p.dtype
        num = eval_numerical_gradient(lambda _: model.loss(X, y)[0], p, verbose=False, h=h)
        both_zero = (np.abs(grads[name]) < 1e-12) & (np.abs(num) < 1e-8)
        err = rel_error(np.where(both_zero, 0, grads[name]), np.where(both_zero, 0, num))
        assert err < tol, (name, err)
    return loss


# ---- the course's printed numbers --------------------------------------------------------------
def test_two_layer_net_reproduces_the_course_scores_and_losses():
    N, D, H, C = 3, 5, 50, 7
    model = TwoLayerNet(input_dim=D, hidden_dim=H, num_classes=C, weight_scale=1e-3)
    assert model.params["W1"].shape == (D, H) and np.all(model.params["b1"] == 0)
    assert abs(model.params["W1"].std() - 1e-3) < 2e-4
    model.params["W1"] = np.linspace(-0.7, 0.3, num=D * H).reshape(D, H)
    model.params["b1"] = np.linspace(-0.1, 0.9, num=H)
    model.params["W2"] = np.linspace(-0.3, 0.4, num=H * C).reshape(H, C)
    model.params["b2"] = np.linspace(-0.9, 0.1, num=C)
    X = np.linspace(-5.5, 4.5, num=N * D).reshape(D, N).T
    correct_scores = np.array(
        [[11.53165108, 12.2917344, 13.05181771, 13.81190102, 14.57198434, 15.33206765,
          16.09215096],
         [12.05769098, 12.74614105, 13.43459113, 14.1230412, 14.81149128, 15.49994135,
          16.18839143],
         [12.58373087, 13.20054771, 13.81736455, 14.43418138, 15.05099822, 15.66781506,
          16.2846319]])
    assert np.abs(model.loss(X) - correct_scores).sum() < 1e-6
    y = np.array([0, 5, 1])
    assert abs(model.loss(X, y)[0] - 3.4702243556) < 1e-10
    model.reg = 1.0
    assert abs(model.loss(X, y)[0] - 26.5948426952) < 1e-10


def test_fully_connected_net_initial_losses_match_the_course():
    np.random.seed(231)
    N, D, H1, H2, C = 2, 15, 20, 30, 10
    X = np.random.randn(N, D)
    y = np.random.randint(C, size=(N,))
    losses = []
    for reg in (0, 3.14):
        model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, reg=reg,
                                  weight_scale=5e-2, dtype=np.float64)
        losses.append(model.loss(X, y)[0])
    np.testing.assert_allclose(losses, [2.3004790897684924, 7.052114776533016], rtol=1e-12)


def test_fully_connected_net_batchnorm_initial_losses_match_the_course():
    np.random.seed(231)
    N, D, H1, H2, C = 2, 15, 20, 30, 10
    X = np.random.randn(N, D)
    y = np.random.randint(C, size=(N,))
    losses = [FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, reg=reg,
                                weight_scale=5e-2, dtype=np.float64,
                                normalization="batchnorm").loss(X, y)[0] for reg in (0, 3.14)]
    np.testing.assert_allclose(losses, [2.2611955101340957, 6.996533220108303], rtol=1e-12)


def _course_dropout_loss(params, X, y, keep, seed):
    """The course's FullyConnectedNet loss in plain numpy, dropout_forward included: it calls
    np.random.seed(seed) in every dropout layer, which moves numpy's global RNG."""
    h = X
    for i in (1, 2):
        h = np.maximum(0, h @ params[f"W{i}"] + params[f"b{i}"])
        if keep != 1:
            np.random.seed(seed)
            h = h * (np.random.rand(*h.shape) < keep) / keep
    s = h @ params["W3"] + params["b3"]
    s = s - s.max(axis=1, keepdims=True)
    return -np.mean(s[np.arange(len(y)), y] - np.log(np.exp(s).sum(axis=1)))


def test_dropout_notebook_initial_losses_match_the_course():
    """The course's dropout check builds three seeded models in a row. Its dropout reseeds
    numpy's global RNG, so the third model's weights (and its printed loss) depend on that."""
    printed = {1: 2.3004790897684924, 0.5: 2.3042759220785896}
    for build in ("autotensor", "course"):
        np.random.seed(231)
        N, D, H1, H2, C = 2, 15, 20, 30, 10
        X = np.random.randn(N, D)
        y = np.random.randint(C, size=(N,))
        losses = {}
        for keep in (1, 0.75, 0.5):
            model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, weight_scale=5e-2,
                                      dtype=np.float64, dropout_keep_ratio=keep, seed=123)
            losses[keep] = (model.loss(X, y)[0] if build == "autotensor" else
                            _course_dropout_loss(model.params, X, y, keep, 123))
        for keep, loss in printed.items():
            assert abs(losses[keep] - loss) < 1e-12, (build, keep, losses[keep])
        if build == "autotensor":
            ours = losses
    np.testing.assert_allclose(list(ours.values()), list(losses.values()), rtol=1e-12)


def test_assignment1_toy_two_layer_net_matches_the_course():
    input_size, hidden_size, num_classes, num_inputs = 4, 10, 3, 5
    model = {
        "W1": np.linspace(-0.2, 0.6, num=input_size * hidden_size).reshape(input_size,
                                                                           hidden_size),
        "b1": np.linspace(-0.3, 0.7, num=hidden_size),
        "W2": np.linspace(-0.4, 0.1, num=hidden_size * num_classes).reshape(hidden_size,
                                                                            num_classes),
        "b2": np.linspace(-0.5, 0.9, num=num_classes),
    }
    X = np.linspace(-0.2, 0.5, num=num_inputs * input_size).reshape(num_inputs, input_size)
    y = np.array([0, 1, 2, 2, 1])
    correct_scores = [[-0.5328368, 0.20031504, 0.93346689],
                      [-0.59412164, 0.15498488, 0.9040914],
                      [-0.67658362, 0.08978957, 0.85616275],
                      [-0.77092643, 0.01339997, 0.79772637],
                      [-0.89110401, -0.08754544, 0.71601312]]
    assert np.abs(two_layer_net(X, model) - correct_scores).sum() < 1e-7
    assert abs(two_layer_net(X, model, y, 0.1)[0] - 1.38191946092) < 1e-10


def test_bad_labels_raise_before_the_forward_pass_changes_anything():
    np.random.seed(8)
    X, y = _data(6, 4, 3)
    model = FullyConnectedNet([5], input_dim=4, num_classes=3, normalization="batchnorm",
                              dtype=np.float64)
    model.loss(X, y)
    running = model.bn_params[0]["running_mean"].copy()
    for bad, match in ((np.array([0, 1, 2, 3, 0, 0]), r"FullyConnectedNet.loss.*\[0, 3\)"),
                       (y[:5], r"shape \(6,\)"), (y.astype(float), "integer")):
        with pytest.raises(ValueError, match=match):
            model.loss(X, bad)
    np.testing.assert_array_equal(model.bn_params[0]["running_mean"], running)
    conv = ThreeLayerConvNet(input_dim=(1, 4, 4), num_filters=2, filter_size=3, hidden_dim=3,
                             num_classes=4, use_batchnorm=True)
    with pytest.raises(ValueError, match=r"ThreeLayerConvNet.loss.*\[0, 4\)"):
        conv.loss(np.zeros((2, 1, 4, 4)), np.array([0, 4]))
    assert "running_mean" not in conv.bn_params[0]
    with pytest.raises(ValueError, match=r"two_layer_net: labels.*shape \(4,\)"):
        two_layer_net(np.zeros((4, 5)), init_two_layer_model(5, 6, 3), np.zeros(3, int))


def test_initialisation_order_is_the_courses():
    np.random.seed(0)
    model = FullyConnectedNet([4, 3], input_dim=5, num_classes=2, normalization="batchnorm",
                              weight_scale=0.1, dtype=np.float64)
    np.random.seed(0)
    w1, w2, w3 = (0.1 * np.random.randn(*s) for s in ((5, 4), (4, 3), (3, 2)))
    assert list(model.params) == ["W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2",
                                  "W3", "b3"]
    for name, w in (("W1", w1), ("W2", w2), ("W3", w3)):
        np.testing.assert_array_equal(model.params[name], w)
    assert np.all(model.params["gamma2"] == 1) and np.all(model.params["beta1"] == 0)


def test_three_layer_conv_net_shapes_and_initial_loss():
    np.random.seed(231)
    model = ThreeLayerConvNet(input_dim=(3, 16, 16), num_filters=4, filter_size=5, hidden_dim=6,
                              use_batchnorm=True)
    shapes = {k: v.shape for k, v in model.params.items()}
    assert shapes == {"W1": (4, 3, 5, 5), "b1": (4,), "W2": (4 * 8 * 8, 6), "b2": (6,),
                      "W3": (6, 10), "b3": (10,), "gamma1": (4,), "beta1": (4,),
                      "gamma2": (6,), "beta2": (6,)}
    model.use_batchnorm = False
    X, y = np.random.randn(10, 3, 16, 16), np.random.randint(10, size=10)
    loss, _ = model.loss(X, y)
    assert abs(loss - np.log(10)) < 0.01
    model.reg = 0.5
    assert model.loss(X, y)[0] > loss


# ---- gradients from the tape vs numerical ------------------------------------------------------
def _data(n, d, c, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(c, size=n)


def test_two_layer_net_gradients():
    np.random.seed(1)
    X, y = _data(3, 5, 4)
    model = TwoLayerNet(input_dim=5, hidden_dim=6, num_classes=4, weight_scale=0.5, reg=0.7)
    _check_grads(model, X, y)


@pytest.mark.parametrize("kwargs", [
    {},
    {"reg": 3.14},
    {"normalization": "batchnorm", "reg": 0.1},
    {"normalization": "layernorm", "reg": 0.1},
    {"dropout_keep_ratio": 0.5, "seed": 123},
    {"dropout_keep_ratio": 0.75, "seed": 123, "normalization": "batchnorm"},
])
def test_fully_connected_net_gradients(kwargs):
    np.random.seed(2)
    X, y = _data(4, 5, 3)
    model = FullyConnectedNet([6, 5], input_dim=5, num_classes=3, weight_scale=0.4,
                              dtype=np.float64, **kwargs)
    loss = _check_grads(model, X, y)
    assert loss == model.loss(X, y)[0]       # the seeded dropout mask repeats exactly


@pytest.mark.parametrize("use_batchnorm", [False, True])
def test_three_layer_conv_net_gradients(use_batchnorm):
    np.random.seed(3)
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((2, 2, 6, 6)), rng.integers(4, size=2)
    model = ThreeLayerConvNet(input_dim=(2, 6, 6), num_filters=2, filter_size=3, hidden_dim=5,
                              num_classes=4, weight_scale=0.3, reg=0.05, dtype=np.float64,
                              use_batchnorm=use_batchnorm)
    # NOTE: batch norm over the few conv outputs of a tiny batch is strongly curved, so the
    # O(h**2) error of centered differences reaches 4e-6 at h = 1e-5; h = 1e-6 is exact enough.
    _check_grads(model, X, y, h=1e-6)


def test_assignment1_two_layer_net():
    np.random.seed(4)
    model = init_two_layer_model(5, 6, 3)
    assert model["W1"].shape == (5, 6) and model["b2"].shape == (3,)
    assert 0.5e-5 < model["W1"].std() < 2e-5 and np.all(model["b1"] == 0)
    rng = np.random.default_rng(4)
    for k in ("W1", "W2"):
        model[k] = rng.standard_normal(model[k].shape)
    X, y = rng.standard_normal((4, 5)), rng.integers(3, size=4)
    loss, grads = two_layer_net(X, model, y, reg=0.3)
    for k in model:
        num = eval_numerical_gradient(lambda _: two_layer_net(X, model, y, 0.3)[0], model[k],
                                      verbose=False)
        assert rel_error(grads[k], num) < 1e-6, k
    # the same network as TwoLayerNet
    net = TwoLayerNet(input_dim=5, hidden_dim=6, num_classes=3, reg=0.3)
    net.params = dict(model)
    assert np.isclose(net.loss(X, y)[0], loss)
    np.testing.assert_allclose(two_layer_net(X, model), net.loss(X))


# ---- modes, seeds and dtypes -------------------------------------------------------------------
def test_batchnorm_net_uses_running_statistics_in_test_mode():
    np.random.seed(5)
    X, y = _data(20, 6, 3)
    model = FullyConnectedNet([5], input_dim=6, num_classes=3, normalization="batchnorm",
                              dtype=np.float64)
    for _ in range(3):
        model.loss(X, y)
    running = model.bn_params[0]["running_mean"].copy()
    assert not np.allclose(running, 0)
    scores = model.loss(X)
    assert model.bn_params[0]["mode"] == "test"
    np.testing.assert_array_equal(model.bn_params[0]["running_mean"], running)
    # per-sample scores in test mode do not depend on the rest of the batch
    np.testing.assert_allclose(model.loss(X[:1]), scores[:1], rtol=1e-12)


def test_batchnorm_models_expose_their_running_statistics_as_buffers():
    np.random.seed(9)
    X, y = _data(8, 6, 3)
    model = FullyConnectedNet([5, 4], input_dim=6, num_classes=3, normalization="batchnorm",
                              dtype=np.float64)
    assert model.buffers == {}                       # the course creates them on first use
    model.loss(X, y)
    buffers = model.buffers
    assert sorted(buffers) == [f"bn_params.{i}.running_{s}" for i in (0, 1)
                               for s in ("mean", "var")]
    assert buffers["bn_params.1.running_var"] is model.bn_params[1]["running_var"]   # live

    fresh = FullyConnectedNet([5, 4], input_dim=6, num_classes=3, normalization="batchnorm",
                              dtype=np.float64)
    fresh.load_buffers({k: v + 1 for k, v in buffers.items()})
    np.testing.assert_array_equal(fresh.bn_params[0]["running_mean"],
                                  model.bn_params[0]["running_mean"] + 1)
    assert fresh.bn_params[0]["mode"] == "train"
    before = {k: v.copy() for k, v in fresh.buffers.items()}
    bad = [({**buffers, "bn_params.0.running_mean": np.zeros(4)}, r"shape \(4,\)"),
           ({**buffers, "bn_params.2.running_mean": np.zeros(4)}, "does not exist"),
           ({"bn_params.0.running_mean": np.zeros(5)}, "missing")]
    for arrays, match in bad:
        with pytest.raises(ValueError, match=match):
            fresh.load_buffers(arrays)
        for k, v in fresh.buffers.items():
            np.testing.assert_array_equal(v, before[k])     # nothing assigned
    conv = ThreeLayerConvNet(input_dim=(1, 4, 4), num_filters=2, filter_size=3, hidden_dim=3,
                             num_classes=4, use_batchnorm=True)
    conv.loss(np.random.randn(2, 1, 4, 4), np.array([0, 3]))
    assert sorted(conv.buffers) == [f"bn_params.{i}.running_{s}" for i in (0, 1)
                                    for s in ("mean", "var")]
    layernorm = FullyConnectedNet([5], input_dim=6, num_classes=3, normalization="layernorm")
    assert layernorm.buffers == {}


def test_dropout_seed_fixes_the_mask_and_no_seed_varies_it():
    np.random.seed(6)
    X, y = _data(10, 6, 3)
    seeded = FullyConnectedNet([20], input_dim=6, num_classes=3, dropout_keep_ratio=0.5,
                               seed=1, dtype=np.float64)
    assert seeded.loss(X, y)[0] == seeded.loss(X, y)[0]
    free = FullyConnectedNet([20], input_dim=6, num_classes=3, dropout_keep_ratio=0.5,
                             dtype=np.float64)
    assert free.loss(X, y)[0] != free.loss(X, y)[0]
    np.testing.assert_array_equal(free.loss(X), free.loss(X))      # no dropout at test time


@pytest.mark.parametrize("make", [
    lambda: FullyConnectedNet([5, 4], input_dim=6, num_classes=3, normalization="batchnorm",
                              dropout_keep_ratio=0.8),
    lambda: FullyConnectedNet([5], input_dim=6, num_classes=3, normalization="layernorm"),
    lambda: ThreeLayerConvNet(input_dim=(1, 6, 6), num_filters=2, filter_size=3, hidden_dim=4,
                              num_classes=3, use_batchnorm=True),
])
def test_float32_models_stay_float32(make):
    np.random.seed(7)
    model = make()
    X = np.random.randn(4, *((6,) if isinstance(model, FullyConnectedNet) else (1, 6, 6)))
    y = np.random.randint(3, size=4)
    loss, grads = model.loss(X, y)                 # float64 X is cast to the model's dtype
    assert np.isfinite(loss)
    assert all(v.dtype == np.float32 for v in model.params.values())
    assert all(g.dtype == np.float32 for g in grads.values())
    assert model.loss(X).dtype == np.float32
    assert all(p["running_mean"].dtype == np.float32 for p in model.bn_params if p)


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="normalization"):
        FullyConnectedNet([3], normalization="groupnorm")
    with pytest.raises(ValueError, match="dropout_keep_ratio"):
        FullyConnectedNet([3], dropout_keep_ratio=0)
    with pytest.raises(ValueError, match="labels"):
        TwoLayerNet(input_dim=4, hidden_dim=3, num_classes=2).loss(np.zeros((2, 4)),
                                                                   np.array([0, 2]))
