"""`ClassifierTrainer`: the assignment-1 trainer for a model dict and a loss function.

    trainer = ClassifierTrainer()
    best_model, loss_hist, train_acc, val_acc = trainer.train(
        X_train, y_train, X_val, y_val, model, two_layer_net, reg=1.0, learning_rate=1e-4,
        momentum=0.9, num_epochs=5, verbose=True)

`model` is a dict name -> ndarray, updated in place; `loss_function(X, model, y, reg)` returns
`(loss, grads)` and `loss_function(X, model)` returns class scores (the signature of
`nn.models.two_layer_net`).
"""

from __future__ import annotations

import numpy as np

from autotensor import validate

from . import rules

__all__ = ["ClassifierTrainer"]


class ClassifierTrainer:
    """Minibatch (or full-batch) gradient descent with momentum or RMSProp on a model dict."""

    def __init__(self):
        self.step_cache = {}         # per-parameter velocity (momentum) or cache (rmsprop)

    def train(self, X, y, X_val, y_val, model, loss_function, reg=0.0, learning_rate=1e-2,
              momentum=0, learning_rate_decay=0.95, update="momentum", sample_batches=True,
              num_epochs=30, batch_size=100, acc_frequency=None, verbose=False):
        """Optimize `model` in place; returns (best_model, loss_history, train_acc_history,
        val_acc_history).

        - update: 'sgd' (x -= lr * dx), 'momentum' (v = momentum * v - lr * dx; x += v) or
          'rmsprop' (cache = 0.99 * cache + 0.01 * dx**2; x -= lr * dx / sqrt(cache + 1e-8)).
        - sample_batches: True draws `batch_size` rows with replacement per iteration
          (N // batch_size iterations per epoch); False uses the whole set (1 per epoch).
        - The loss is recorded before each update; lr is multiplied by learning_rate_decay at
          each epoch end. Train/val accuracy (train on a random 1000 rows when N > 1000) is
          measured at the first iteration, at each epoch end and, if `acc_frequency` is set,
          every `acc_frequency` iterations; the model with the best val accuracy is returned.
        """
        _check_arguments(X, y, X_val, y_val, reg, learning_rate, momentum, learning_rate_decay,
                         update, num_epochs, batch_size, acc_frequency)
        N = X.shape[0]
        self.step_cache = {}
        # NOTE: the course used N / batch_size (Python 2 floor division), which is 0 when
        # N < batch_size; at least one iteration per epoch is run here.
        iterations_per_epoch = max(N // batch_size, 1) if sample_batches else 1
        num_iters = num_epochs * iterations_per_epoch
        epoch = 0
        best_val_acc, best_model = -np.inf, {}
        loss_history, train_acc_history, val_acc_history = [], [], []
        for it in range(num_iters):
            if sample_batches:
                batch_mask = np.random.choice(N, batch_size)
                X_batch, y_batch = X[batch_mask], y[batch_mask]
            else:
                X_batch, y_batch = X, y
            cost, grads = loss_function(X_batch, model, y_batch, reg)
            loss_history.append(cost)
            for p in model:
                self._update(model, p, grads[p], update, learning_rate, momentum)

            first_it = it == 0
            epoch_end = (it + 1) % iterations_per_epoch == 0
            acc_check = acc_frequency is not None and it % acc_frequency == 0
            if first_it or epoch_end or acc_check:
                # NOTE: the course skipped the decay when iteration 0 ended an epoch (full
                # batch), so lr decayed once less than documented; every epoch end decays here.
                if epoch_end:
                    learning_rate *= learning_rate_decay
                    epoch += 1
                if N > 1000:
                    train_mask = np.random.choice(N, 1000)
                    X_train_subset, y_train_subset = X[train_mask], y[train_mask]
                else:
                    X_train_subset, y_train_subset = X, y
                train_acc = _accuracy(loss_function(X_train_subset, model), y_train_subset, "y")
                val_acc = _accuracy(loss_function(X_val, model), y_val, "y_val")
                train_acc_history.append(train_acc)
                val_acc_history.append(val_acc)
                # NOTE: the course started from best_val_acc = 0 and returned an empty dict when
                # val accuracy stayed 0; starting from -inf always returns a model.
                if val_acc > best_val_acc:
                    best_val_acc = val_acc
                    best_model = {k: v.copy() for k, v in model.items()}
                if verbose:
                    print(f"Finished epoch {epoch} / {num_epochs}: cost {float(cost):f}, "
                          f"train: {train_acc:f}, val {val_acc:f}, lr {learning_rate:e}")
        if verbose:
            print(f"finished optimization. best validation accuracy: {best_val_acc:f}")
        return best_model, loss_history, train_acc_history, val_acc_history

    def _update(self, model, p, dx, update, learning_rate, momentum):
        """One in-place update of model[p]; sgd and momentum are `rules.sgd[_momentum]`."""
        if update == "sgd":
            next_x, _ = rules.sgd(model[p], dx, {"learning_rate": learning_rate})
        elif update == "momentum":
            config = {"learning_rate": learning_rate, "momentum": momentum,
                      "velocity": self.step_cache.get(p)}
            next_x, config = rules.sgd_momentum(model[p], dx, config)
            self.step_cache[p] = config["velocity"]
        else:
            # NOTE: this is the assignment-1 RMSProp: epsilon 1e-8 INSIDE the square root and a
            # fixed decay of 0.99; `rules.rmsprop` (the later course form) adds it outside.
            cache = self.step_cache.get(p, np.zeros_like(model[p]))
            cache = 0.99 * cache + (1 - 0.99) * dx**2
            self.step_cache[p] = cache
            next_x = model[p] - learning_rate * dx / np.sqrt(cache + 1e-8)
        model[p][...] = next_x


_OWNER = "ClassifierTrainer.train"


def _check_arguments(X, y, X_val, y_val, reg, learning_rate, momentum, learning_rate_decay,
                     update, num_epochs, batch_size, acc_frequency):
    """Every argument of `train`, before anything is computed."""
    validate.choice(_OWNER, "update", update, ("sgd", "momentum", "rmsprop"))
    N = np.shape(X)[0] if np.ndim(X) else 0
    if N == 0 or len(y) != N or len(X_val) != len(y_val) or len(X_val) == 0:
        raise ValueError(f"{_OWNER}: need non-empty data with matching labels; got X "
                         f"{np.shape(X)}, y {np.shape(y)}, X_val {np.shape(X_val)}, y_val "
                         f"{np.shape(y_val)}")
    # Their upper bound, the number of classes, is checked against the first scores.
    validate.labels(_OWNER, "y", y)
    validate.labels(_OWNER, "y_val", y_val)
    validate.number(_OWNER, "reg", reg, ">= 0")
    validate.learning_rate(_OWNER, "learning_rate", learning_rate)
    validate.number(_OWNER, "momentum", momentum, "in [0, 1)")
    validate.number(_OWNER, "learning_rate_decay", learning_rate_decay, "> 0")
    validate.size(_OWNER, "num_epochs", num_epochs)
    validate.size(_OWNER, "batch_size", batch_size)
    validate.optional_size(_OWNER, "acc_frequency", acc_frequency)


def _accuracy(scores, y, name):
    """Fraction of rows whose top score is the label; labels the model cannot predict refused."""
    scores = np.asarray(scores)
    validate.labels(_OWNER, name, y, num_classes=scores.shape[1],
                    against=f" (the model scores {scores.shape[1]} classes)")
    return float(np.mean(np.argmax(scores, axis=1) == y))
