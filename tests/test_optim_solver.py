"""Solver: course semantics (kwargs, minibatches, lr decay, accuracy checks, histories, best
params, printed lines, progress bar) and training an nn.Module through ModuleModel."""

from __future__ import annotations

import copy
import io
import re
import sys

import numpy as np
import pytest

import autotensor as at
from autotensor import nn, optim
from autotensor.nn import functional as F
from autotensor.optim import rules


class TinyNet:
    """affine - relu - affine - softmax with `params` + `loss(X, y=None)`, written with tensor ops
    (independent of nn.models)."""

    def __init__(self, D=4, H=8, C=3, seed=0, reg=0.0, dtype=np.float64):
        r = np.random.RandomState(seed)
        self.reg = reg
        self.params = {"W1": 0.3 * r.randn(D, H), "b1": np.zeros(H),
                       "W2": 0.3 * r.randn(H, C), "b2": np.zeros(C)}
        self.params = {k: v.astype(dtype) for k, v in self.params.items()}

    def loss(self, X, y=None):
        p = {k: at.Tensor(v, requires_grad=True) for k, v in self.params.items()}
        x = at.Tensor(np.asarray(X, dtype=p["W1"].dtype))
        scores = (x @ p["W1"] + p["b1"]).relu() @ p["W2"] + p["b2"]
        if y is None:
            return scores.data
        loss = -scores.log_softmax(axis=1)[np.arange(len(y)), y].mean()
        loss = loss + 0.5 * self.reg * ((p["W1"] ** 2).sum() + (p["W2"] ** 2).sum())
        loss.backward()
        return loss.item(), {k: t.grad for k, t in p.items()}


def make_data(n_train=60, n_val=30, D=4, C=3, seed=1):
    r = np.random.RandomState(seed)
    X = r.randn(n_train + n_val, D)
    y = np.argmax(X @ r.randn(D, C), axis=1)
    return {"X_train": X[:n_train], "y_train": y[:n_train],
            "X_val": X[n_train:], "y_val": y[n_train:]}


def course_reference(model, data, rule, optim_config, lr_decay, batch_size, num_epochs,
                     num_train_samples, num_val_samples):
    """The course's Solver loop, written out plainly: returns (losses, train_acc, val_acc,
    final params). Used to check the Solver's RNG use, schedule and bookkeeping exactly."""
    def accuracy(X, y, num_samples):
        if num_samples is not None and X.shape[0] > num_samples:
            mask = np.random.choice(X.shape[0], num_samples)
            X, y = X[mask], y[mask]
        return np.mean(np.argmax(model.loss(X), axis=1) == y)

    configs = {k: copy.deepcopy(optim_config) for k in model.params}
    n = data["X_train"].shape[0]
    per_epoch = max(n // batch_size, 1)
    total = num_epochs * per_epoch
    losses, train_acc, val_acc, best, best_acc = [], [], [], None, 0
    for t in range(total):
        mask = np.random.choice(n, batch_size)
        loss, grads = model.loss(data["X_train"][mask], data["y_train"][mask])
        losses.append(loss)
        for k in model.params:
            model.params[k], configs[k] = rule(model.params[k], grads[k], configs[k])
        end = (t + 1) % per_epoch == 0
        if end:
            for c in configs.values():
                c["learning_rate"] *= lr_decay
        if t == 0 or t == total - 1 or end:
            train_acc.append(accuracy(data["X_train"], data["y_train"], num_train_samples))
            val_acc.append(accuracy(data["X_val"], data["y_val"], num_val_samples))
            if val_acc[-1] > best_acc:
                best_acc, best = val_acc[-1], {k: v.copy() for k, v in model.params.items()}
    return losses, train_acc, val_acc, best


@pytest.mark.parametrize("rule_name", ["sgd_momentum", "adam"])
def test_matches_the_course_loop_exactly(rule_name):
    data = make_data()
    kwargs = dict(optim_config={"learning_rate": 0.05}, lr_decay=0.9, batch_size=16,
                  num_epochs=4, num_train_samples=25, num_val_samples=20)
    np.random.seed(0)
    solver = optim.Solver(TinyNet(), data, update_rule=rule_name, verbose=False, **kwargs)
    solver.train()
    np.random.seed(0)
    losses, train_acc, val_acc, best = course_reference(
        TinyNet(), data, getattr(rules, rule_name), **kwargs)
    assert solver.loss_history == losses
    assert solver.train_acc_history == train_acc and solver.val_acc_history == val_acc
    assert len(losses) == 4 * (60 // 16) and len(val_acc) == 4 + 1    # first it + each epoch
    assert solver.best_val_acc == max(val_acc)
    for k in best:
        np.testing.assert_array_equal(solver.model.params[k], best[k])
        np.testing.assert_array_equal(solver.best_params[k], best[k])
    # Each parameter got its own config (deep copies), decayed once per epoch.
    configs = solver.optim_configs
    assert configs["W1"] is not configs["W2"]
    assert configs["W1"]["learning_rate"] == pytest.approx(0.05 * 0.9**4)
    assert kwargs["optim_config"] == {"learning_rate": 0.05}      # the caller's dict untouched


def test_learns_and_keeps_best_params():
    np.random.seed(3)
    data = make_data(n_train=120, n_val=60)
    solver = optim.Solver(TinyNet(), data, update_rule="adam",
                          optim_config={"learning_rate": 2e-2}, num_epochs=6, batch_size=20,
                          verbose=False)
    solver.train()
    assert solver.loss_history[-1] < solver.loss_history[0]
    assert solver.best_val_acc >= 0.8
    assert solver.check_accuracy(data["X_val"], data["y_val"]) == solver.best_val_acc


def test_check_accuracy_batches_and_subsamples():
    data = make_data()
    model = TinyNet()
    solver = optim.Solver(model, data, verbose=False)
    full = np.mean(np.argmax(model.loss(data["X_val"]), axis=1) == data["y_val"])
    for batch_size in (1, 7, 100):
        assert solver.check_accuracy(data["X_val"], data["y_val"], batch_size=batch_size) == full
    np.random.seed(5)
    sub = solver.check_accuracy(data["X_val"], data["y_val"], num_samples=10)
    np.random.seed(5)
    mask = np.random.choice(30, 10)
    assert sub == np.mean(np.argmax(model.loss(data["X_val"][mask]), axis=1)
                          == data["y_val"][mask])


def test_prints_the_course_lines(capsys):
    np.random.seed(0)
    solver = optim.Solver(TinyNet(), make_data(), num_epochs=2, batch_size=20, print_every=2)
    solver.train()
    out = capsys.readouterr().out
    L, tr, va = solver.loss_history, solver.train_acc_history, solver.val_acc_history
    expected = [
        f"(Iteration 1 / 6) loss: {L[0]:f}",
        f"(Epoch 0 / 2) train acc: {tr[0]:f}; val_acc: {va[0]:f}",
        f"(Iteration 3 / 6) loss: {L[2]:f}",
        f"(Epoch 1 / 2) train acc: {tr[1]:f}; val_acc: {va[1]:f}",
        f"(Iteration 5 / 6) loss: {L[4]:f}",
        f"(Epoch 2 / 2) train acc: {tr[2]:f}; val_acc: {va[2]:f}",
    ]
    assert out.splitlines() == expected            # non-TTY: no progress bar at all
    assert "%" not in out and "\r" not in out


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_tty_never_garbles_lines(monkeypatch):
    fake = FakeTTY()
    monkeypatch.setattr(sys, "stdout", fake)
    np.random.seed(0)
    solver = optim.Solver(TinyNet(), make_data(), num_epochs=2, batch_size=20, print_every=1)
    solver.train()
    out = fake.getvalue()
    assert "epoch 1/2" in out and "epoch 2/2" in out          # the bar was drawn
    lines = [f"(Iteration {t + 1} / 6) loss: {x:f}" for t, x in enumerate(solver.loss_history)]
    lines += [f"(Epoch {e} / 2) train acc: {a:f}; val_acc: {b:f}" for e, (a, b)
              in enumerate(zip(solver.train_acc_history, solver.val_acc_history))]
    for line in lines:    # each status line stands alone: after a newline or a cleared bar
        assert re.search(r"(^|[\r\n])" + re.escape(line) + r"\n", out), line


def test_quiet_when_not_verbose(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdout", FakeTTY())
    optim.Solver(TinyNet(), make_data(), num_epochs=1, verbose=False).train()
    assert sys.stdout.getvalue() == ""


def test_train_again_continues_only_when_num_epochs_is_raised():
    np.random.seed(0)
    solver = optim.Solver(TinyNet(), make_data(), num_epochs=2, batch_size=20, verbose=False)
    solver.train()
    losses = list(solver.loss_history)
    solver.train()                                       # already at epoch 2 of 2
    assert solver.loss_history == losses and solver.epoch == 2
    solver.num_epochs = 3
    solver.train()
    assert solver.epoch == 3 and solver.loss_history[:6] == losses
    assert len(solver.loss_history) == 9 and len(solver.val_acc_history) == 4


def test_callable_update_rule_and_single_iteration_epochs():
    calls = []

    def halve(w, dw, config=None):
        calls.append(w.shape)
        return w * 0.5, config

    data = make_data(n_train=10)
    solver = optim.Solver(TinyNet(), data, update_rule=halve, batch_size=50, num_epochs=3,
                          lr_decay=0.5, verbose=False)
    solver.train()
    assert len(solver.loss_history) == 3                 # max(10 // 50, 1) per epoch
    assert len(calls) == 3 * 4
    assert solver.optim_configs["W1"] == {}              # no learning_rate to decay: untouched


def test_keeps_params_when_val_accuracy_never_rises():
    data = make_data()
    data["y_val"] = np.full(30, 2)
    model = TinyNet()
    model.params["b2"][2] = -1e3                         # so class 2 is never predicted
    solver = optim.Solver(model, data, num_epochs=1, verbose=False)
    solver.train()
    assert solver.best_val_acc == 0 and solver.best_params == {}
    assert set(solver.model.params) == {"W1", "b1", "W2", "b2"}


def test_bad_arguments_raise():
    data = make_data()
    with pytest.raises(ValueError, match='Unrecognized arguments "learning_rate", "epochs"'):
        optim.Solver(TinyNet(), data, learning_rate=1e-3, epochs=3)
    with pytest.raises(ValueError, match='Invalid update_rule "adamw"'):
        optim.Solver(TinyNet(), data, update_rule="adamw")
    with pytest.raises(ValueError, match="update_rule"):
        optim.Solver(TinyNet(), data, update_rule=3)
    with pytest.raises(ValueError, match="missing.*y_val"):
        optim.Solver(TinyNet(), {k: v for k, v in data.items() if k != "y_val"})
    with pytest.raises(ValueError, match=r"\(59,\)"):
        optim.Solver(TinyNet(), {**data, "y_train": data["y_train"][1:]})
    with pytest.raises(ValueError, match="batch_size"):
        optim.Solver(TinyNet(), data, batch_size=0)
    with pytest.raises(ValueError, match="num_epochs"):
        optim.Solver(TinyNet(), data, num_epochs=2.5)
    with pytest.raises(ValueError, match="does not exist"):
        optim.Solver(TinyNet(), data, checkpoint_name="/no/such/dir/run")
    with pytest.raises(ValueError, match="ModuleModel"):
        optim.Solver(nn.Linear(4, 3), data)


def test_missing_gradient_is_named():
    class Lazy(TinyNet):
        def loss(self, X, y=None):
            out = super().loss(X, y)
            return out if y is None else (out[0], {"W1": out[1]["W1"]})

    with pytest.raises(ValueError, match=r"\['b1', 'W2', 'b2'\]"):
        optim.Solver(Lazy(), make_data(), verbose=False).train()


# ---- the course models and nn.Module training --------------------------------------------------
def test_course_fully_connected_net_with_batchnorm():
    np.random.seed(0)
    data = make_data(n_train=100, n_val=40)
    model = nn.models.FullyConnectedNet([16, 16], input_dim=4, num_classes=3,
                                        normalization="batchnorm", weight_scale=0.3)
    solver = optim.Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-2},
                          num_epochs=5, batch_size=20, verbose=False)
    solver.train()
    assert all(v.dtype == np.float32 for v in model.params.values())
    assert solver.loss_history[-1] < solver.loss_history[0]
    assert solver.best_val_acc >= 0.7


class MLP(nn.Module):
    def __init__(self, D=4, H=16, C=3):
        super().__init__()
        self.fc1, self.bn, self.fc2 = nn.Linear(D, H), nn.BatchNorm1d(H), nn.Linear(H, C)

    def forward(self, x):
        return self.fc2(F.relu(self.bn(self.fc1(x))))


def test_module_model_trains_an_nn_module():
    np.random.seed(0)
    net = MLP()
    model = optim.ModuleModel(net, F.softmax_cross_entropy)
    weight = net.fc1.weight
    assert model.params["fc1.weight"] is weight.data           # shared, not copied
    assert set(model.buffers) == {"bn.running_mean", "bn.running_var", "bn.num_batches_tracked"}
    data = make_data(n_train=100, n_val=40)
    solver = optim.Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-2},
                          num_epochs=5, batch_size=20, verbose=False)
    solver.train()
    assert net.fc1.weight is weight                            # updated in place
    assert solver.best_val_acc >= 0.7
    # The module itself now holds the best parameters.
    for name, p in net.named_parameters():
        np.testing.assert_array_equal(p.data, solver.best_params[name])
    net.eval()
    scores = net(at.Tensor(data["X_val"])).data
    assert np.mean(np.argmax(scores, axis=1) == data["y_val"]) == solver.best_val_acc


def test_module_model_loss_modes_and_grads():
    np.random.seed(1)
    net = MLP()
    model = optim.ModuleModel(net, F.softmax_cross_entropy)
    X, y = np.random.randn(8, 4), np.random.randint(3, size=8)
    running = net.bn.running_mean.copy()
    scores = model.loss(X)
    assert isinstance(scores, np.ndarray) and scores.shape == (8, 3) and not net.training
    np.testing.assert_array_equal(net.bn.running_mean, running)    # eval: stats untouched
    loss, grads = model.loss(X, y)
    assert net.training and isinstance(loss, float)
    assert set(grads) == {n for n, _ in net.named_parameters()}
    loss2, grads2 = model.loss(X, y)                   # grads are reset, not accumulated
    np.testing.assert_allclose(grads2["fc1.weight"], grads["fc1.weight"], rtol=1e-12)
    with pytest.raises(ValueError, match=r"fc1.weight.*\(4, 16\).*\(2, 2\)"):
        model.params = {**model.params, "fc1.weight": np.zeros((2, 2))}
    with pytest.raises(ValueError, match="nn.Module"):
        optim.ModuleModel(object(), F.softmax_cross_entropy)
