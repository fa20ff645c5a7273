"""ClassifierTrainer (assignment 1): iteration counts, update formulas, when accuracy is
checked, best model, lr decay, full-batch mode; against a plainly written reference loop."""

from __future__ import annotations

import numpy as np
import pytest

import autotensor as at
from autotensor import optim
from autotensor.nn import models


def softmax_net(X, model, y=None, reg=0.0):
    """A linear softmax classifier with the assignment-1 loss_function signature."""
    W = at.Tensor(model["W"], requires_grad=True)
    b = at.Tensor(model["b"], requires_grad=True)
    scores = at.Tensor(X) @ W + b
    if y is None:
        return scores.data
    loss = -scores.log_softmax(axis=1)[np.arange(len(y)), y].mean() + 0.5 * reg * (W * W).sum()
    loss.backward()
    return loss.item(), {"W": W.grad, "b": b.grad}


def make_model(D=4, C=3, seed=0):
    r = np.random.RandomState(seed)
    return {"W": 0.1 * r.randn(D, C), "b": np.zeros(C)}


def make_data(n=300, n_val=50, D=4, C=3, seed=1):
    r = np.random.RandomState(seed)
    X = r.randn(n + n_val, D)
    y = np.argmax(X @ r.randn(D, C), axis=1)
    return X[:n], y[:n], X[n:], y[n:]


def reference(X, y, X_val, y_val, model, loss_function, reg, learning_rate, momentum,
              learning_rate_decay, update, sample_batches, num_epochs, batch_size, acc_frequency):
    """The assignment-1 loop written out plainly (lr decays at every epoch end)."""
    N = X.shape[0]
    per_epoch = N // batch_size if sample_batches else 1
    cache, best_acc, best = {}, -1.0, None
    losses, train_acc, val_acc = [], [], []
    for it in range(num_epochs * per_epoch):
        mask = np.random.choice(N, batch_size) if sample_batches else slice(None)
        cost, grads = loss_function(X[mask], model, y[mask], reg)
        losses.append(cost)
        for p in model:
            if update == "sgd":
                dx = -learning_rate * grads[p]
            elif update == "momentum":
                cache[p] = momentum * cache.get(p, 0.0) - learning_rate * grads[p]
                dx = cache[p]
            else:
                cache[p] = 0.99 * cache.get(p, 0.0) + 0.01 * grads[p] ** 2
                dx = -learning_rate * grads[p] / np.sqrt(cache[p] + 1e-8)
            model[p] += dx
        end = (it + 1) % per_epoch == 0
        if it == 0 or end or (acc_frequency is not None and it % acc_frequency == 0):
            if end:
                learning_rate *= learning_rate_decay
            sub = np.random.choice(N, 1000) if N > 1000 else slice(None)
            train_acc.append(np.mean(np.argmax(loss_function(X[sub], model), 1) == y[sub]))
            val_acc.append(np.mean(np.argmax(loss_function(X_val, model), 1) == y_val))
            if val_acc[-1] > best_acc:
                best_acc, best = val_acc[-1], {k: v.copy() for k, v in model.items()}
    return best, losses, train_acc, val_acc


@pytest.mark.parametrize("update, sample_batches, n, acc_frequency", [
    ("momentum", True, 1100, None),        # N > 1000: train accuracy on a random 1000 rows
    ("sgd", True, 300, 4),
    ("rmsprop", True, 300, None),
    ("momentum", False, 120, None),        # full batch: one iteration per epoch
])
def test_matches_the_assignment_loop(update, sample_batches, n, acc_frequency):
    X, y, X_val, y_val = make_data(n=n)
    kw = dict(reg=0.01, learning_rate=0.05, momentum=0.9, learning_rate_decay=0.9,
              update=update, sample_batches=sample_batches, num_epochs=3, batch_size=100,
              acc_frequency=acc_frequency)
    np.random.seed(0)
    model = make_model()
    out = optim.ClassifierTrainer().train(X, y, X_val, y_val, model, softmax_net, **kw)
    np.random.seed(0)
    ref_model = make_model()
    expected = reference(X, y, X_val, y_val, ref_model, softmax_net, **kw)
    best, losses, train_acc, val_acc = out
    assert losses == pytest.approx(expected[1], rel=1e-12)
    assert train_acc == expected[2] and val_acc == expected[3]
    for k in best:
        np.testing.assert_allclose(best[k], expected[0][k], rtol=1e-12)
        np.testing.assert_allclose(model[k], ref_model[k], rtol=1e-12)   # updated in place
    per_epoch = n // 100 if sample_batches else 1
    assert len(losses) == 3 * per_epoch
    checks = [it for it in range(3 * per_epoch) if it == 0 or (it + 1) % per_epoch == 0
              or (acc_frequency is not None and it % acc_frequency == 0)]
    assert len(val_acc) == len(train_acc) == len(checks)


def test_loss_recorded_before_update_and_full_batch_uses_all_rows():
    X, y, X_val, y_val = make_data(n=40)
    seen = []

    def recording(X_, model, y_=None, reg=0.0):
        if y_ is not None:
            seen.append(len(X_))
        return softmax_net(X_, model, y_, reg)

    model = make_model()
    initial_loss = softmax_net(X, model, y)[0]
    _, losses, _, _ = optim.ClassifierTrainer().train(X, y, X_val, y_val, model, recording,
                                                      sample_batches=False, num_epochs=4)
    assert seen == [40] * 4
    assert losses[0] == pytest.approx(initial_loss, rel=1e-12)


def test_learning_rate_decays_at_every_epoch_end():
    """A constant gradient of 1 under plain sgd: w falls by lr * decay**k in epoch k."""
    X, y, X_val, y_val = make_data(n=30)

    def constant(X_, model, y_=None, reg=0.0):
        if y_ is None:
            return np.zeros((len(X_), 3))
        return 0.0, {"w": np.ones(1)}

    model = {"w": np.zeros(1)}
    optim.ClassifierTrainer().train(X, y, X_val, y_val, model, constant, update="sgd",
                                    learning_rate=1.0, learning_rate_decay=0.5,
                                    sample_batches=False, num_epochs=4)
    assert model["w"][0] == pytest.approx(-(1 + 0.5 + 0.25 + 0.125))


def test_best_model_is_a_copy_of_the_best_checkpoint():
    X, y, X_val, y_val = make_data()
    model = make_model()
    best, _, _, val_acc = optim.ClassifierTrainer().train(
        X, y, X_val, y_val, model, softmax_net, learning_rate=0.1, momentum=0.9, num_epochs=4,
        batch_size=50)
    assert all(best[k] is not model[k] for k in model)
    best_val = np.mean(np.argmax(softmax_net(X_val, best), axis=1) == y_val)
    assert best_val == max(val_acc) >= 0.85


def test_verbose_lines(capsys):
    X, y, X_val, y_val = make_data(n=200)
    _, losses, train_acc, val_acc = optim.ClassifierTrainer().train(
        X, y, X_val, y_val, make_model(), softmax_net, num_epochs=2, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"Finished epoch 0 / 2: cost {losses[0]:f}, train: {train_acc[0]:f}, "
                        f"val {val_acc[0]:f}, lr {1e-2:e}")
    assert lines[2].startswith("Finished epoch 2 / 2: ")
    assert lines[2].endswith(f"lr {0.95**2 * 1e-2:e}")
    assert lines[3] == f"finished optimization. best validation accuracy: {max(val_acc):f}"


def test_course_two_layer_net():
    np.random.seed(0)
    X, y, X_val, y_val = make_data(n=200, n_val=60)
    model = models.init_two_layer_model(4, 20, 3)
    best, losses, _, val_acc = optim.ClassifierTrainer().train(
        X, y, X_val, y_val, model, models.two_layer_net, learning_rate=0.5, momentum=0.9,
        num_epochs=15, batch_size=50, update="momentum")
    assert np.mean(losses[-4:]) < losses[0] - 0.3
    assert max(val_acc) >= 0.8


def test_bad_arguments():
    X, y, X_val, y_val = make_data(n=20)
    trainer = optim.ClassifierTrainer()
    with pytest.raises(ValueError, match='"adam"'):
        trainer.train(X, y, X_val, y_val, make_model(), softmax_net, update="adam")
    with pytest.raises(ValueError, match=r"\(19,\)"):
        trainer.train(X, y[1:], X_val, y_val, make_model(), softmax_net)
    with pytest.raises(ValueError, match="acc_frequency"):
        trainer.train(X, y, X_val, y_val, make_model(), softmax_net, acc_frequency=0)
