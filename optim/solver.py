"""The course's `Solver`: minibatch training of a classification model, with per-epoch (and,
on request, every-k-iteration) checkpoints that resume a run exactly, mid-epoch too.

A model is anything with `params` (dict name -> ndarray) and `loss(X, y=None)` returning class
scores when y is None, else `(loss, grads)` with grads keyed like params (the course's
TwoLayerNet, FullyConnectedNet, ThreeLayerConvNet). `ModuleModel(module, loss_fn)` makes an
`nn.Module` look like such a model.

    solver = Solver(model, data, update_rule='adam', optim_config={'learning_rate': 1e-3},
                    lr_decay=0.95, num_epochs=10, batch_size=100, print_every=100)
    solver.train()          # afterwards model.params holds the best parameters seen

See docs/training.md for every keyword, the printed lines and the checkpoint format.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Mapping

import numpy as np

from autotensor import Tensor, set_rng_state, validate

from . import checkpoint, rules
from .checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION  # noqa: F401  (importable here)
from .module_model import ModuleModel

__all__ = ["Solver", "ModuleModel"]


class Solver:
    """Trains `model` on `data` (a dict with X_train, y_train, X_val, y_val).

    Keywords (course defaults): update_rule ('sgd'; a name in `optim.rules` or a function with
    the rule signature), optim_config ({}; each parameter gets its own deep copy), lr_decay (1.0,
    applied to every config's learning_rate after each epoch), batch_size (100), num_epochs (10),
    num_train_samples (1000; train accuracy is measured on this many samples, None = all),
    num_val_samples (None = all), checkpoint_name (None; if set, `{name}_epoch_{n}.npz` is
    written atomically after every epoch), checkpoint_every (None; if set, `{name}_last.npz` is
    rewritten atomically every this many iterations, so a run can resume mid-epoch; needs
    checkpoint_name), print_every (10), verbose (True).
    """

    def __init__(self, model, data, **kwargs):
        _check_model(model)
        self.model = model
        self.X_train, self.y_train, self.X_val, self.y_val = _check_data(data)
        self.update_rule = kwargs.pop("update_rule", "sgd")
        self.optim_config = kwargs.pop("optim_config", {})
        self.lr_decay = kwargs.pop("lr_decay", 1.0)
        self.batch_size = kwargs.pop("batch_size", 100)
        self.num_epochs = kwargs.pop("num_epochs", 10)
        self.num_train_samples = kwargs.pop("num_train_samples", 1000)
        self.num_val_samples = kwargs.pop("num_val_samples", None)
        self.checkpoint_name = kwargs.pop("checkpoint_name", None)
        self.checkpoint_every = kwargs.pop("checkpoint_every", None)
        self.print_every = kwargs.pop("print_every", 10)
        self.verbose = kwargs.pop("verbose", True)
        if kwargs:
            raise ValueError("Solver: Unrecognized arguments "
                             + ", ".join(f'"{k}"' for k in kwargs))
        rule_name = self.update_rule if isinstance(self.update_rule, str) else None
        if isinstance(self.update_rule, str):
            if self.update_rule not in rules.__all__:
                raise ValueError(f'Solver: Invalid update_rule "{self.update_rule}"; choose one of '
                                 f"{rules.__all__} or pass a function")
            self.update_rule = getattr(rules, self.update_rule)
        elif not callable(self.update_rule):
            raise ValueError(f"Solver: update_rule must be a rule name or a function, got "
                             f"{self.update_rule!r}")
        elif getattr(rules, getattr(self.update_rule, "__name__", ""), None) is self.update_rule:
            rule_name = self.update_rule.__name__
        _check_optim_config(self.optim_config, rule_name)
        validate.number("Solver", "lr_decay", self.lr_decay, "> 0")
        validate.size("Solver", "batch_size", self.batch_size)
        validate.size("Solver", "print_every", self.print_every)
        validate.size("Solver", "num_epochs", self.num_epochs, minimum=0)
        validate.optional_size("Solver", "num_train_samples", self.num_train_samples)
        validate.optional_size("Solver", "num_val_samples", self.num_val_samples)
        validate.optional_size("Solver", "checkpoint_every", self.checkpoint_every)
        if self.checkpoint_every is not None and self.checkpoint_name is None:
            raise ValueError(f"Solver: checkpoint_every={self.checkpoint_every} needs a "
                             "checkpoint_name (the files are named after it)")
        if self.checkpoint_name is not None:
            directory = os.path.dirname(os.path.abspath(os.fspath(self.checkpoint_name)))
            if not os.path.isdir(directory):
                raise ValueError(f"Solver: checkpoint_name {self.checkpoint_name!r}: directory "
                                 f"{directory!r} does not exist")
        self._reset()

    def _reset(self):
        """Set up the bookkeeping variables for a fresh run."""
        self.epoch = 0
        self.iteration = 0            # updates done; train() continues from here
        self.best_val_acc = 0
        self.best_params = {}
        self.loss_history = []
        self.train_acc_history = []
        self.val_acc_history = []
        self.optim_configs = {p: copy.deepcopy(dict(self.optim_config))
                              for p in self.model.params}

    # ---- training ------------------------------------------------------------------------------
    def _step(self):
        """One gradient update on a minibatch drawn with replacement (as the course does)."""
        num_train = self.X_train.shape[0]
        batch_mask = np.random.choice(num_train, self.batch_size)
        loss, grads = self.model.loss(self.X_train[batch_mask], self.y_train[batch_mask])
        self.loss_history.append(float(loss))
        params = self.model.params
        missing = [p for p in params if p not in grads]
        if missing:
            raise ValueError(f"model.loss returned no gradient for parameter(s) {missing}")
        for p in list(params):
            next_w, next_config = self.update_rule(params[p], grads[p], self.optim_configs[p])
            params[p] = next_w
            self.optim_configs[p] = next_config

    def check_accuracy(self, X, y, num_samples=None, batch_size=100):
        """Fraction of correct predictions on (X, y), on a random subsample of `num_samples`
        (drawn with replacement) when X has more rows; scored in batches of `batch_size`.

        Every label of y must lie in [0, C) for the model's C classes, checked against the
        first batch's scores: a label the model cannot predict would score 0 silently."""
        return self._accuracy(X, y, num_samples, batch_size, "y")

    def _accuracy(self, X, y, num_samples, batch_size, name):
        N = X.shape[0]
        y_all = y
        if num_samples is not None and N > num_samples:
            mask = np.random.choice(N, num_samples)
            N, X, y = num_samples, X[mask], y[mask]
        y_pred = []
        for start in range(0, N, batch_size):
            scores = self.model.loss(X[start:start + batch_size])
            scores = scores.data if isinstance(scores, Tensor) else np.asarray(scores)
            if start == 0:
                validate.labels("Solver", name, y_all, num_classes=scores.shape[1],
                                against=f" (the model scores {scores.shape[1]} classes)")
            y_pred.append(np.argmax(scores, axis=1))
        return float(np.mean(np.hstack(y_pred) == y))

    def _iterations_per_epoch(self):
        return max(self.X_train.shape[0] // self.batch_size, 1)

    def _first_iteration(self):
        """Where train() continues: `iteration` when it lies in epoch `epoch` (a fresh run, a
        loaded checkpoint), else the start of epoch `epoch` (an epoch set by hand)."""
        iterations_per_epoch = self._iterations_per_epoch()
        if self.iteration // iterations_per_epoch == self.epoch:
            return self.iteration
        return self.epoch * iterations_per_epoch

    def train(self):
        """Run the optimization from the current iteration to the end of epoch `num_epochs`
        (resumes after `load_checkpoint`, mid-epoch too), then put the best parameters seen
        into `model.params`."""
        iterations_per_epoch = self._iterations_per_epoch()
        num_iterations = self.num_epochs * iterations_per_epoch
        bar = None
        for t in range(self._first_iteration(), num_iterations):
            if bar is None and self.verbose and _stdout_is_tty():
                bar = _progress_bar(iterations_per_epoch, t % iterations_per_epoch,
                                    self.epoch + 1, self.num_epochs)
            self._step()
            self.iteration = t + 1
            if bar is not None:
                bar.update(1)
            if self.verbose and t % self.print_every == 0:
                _print(f"(Iteration {t + 1} / {num_iterations}) loss: "
                       f"{self.loss_history[-1]:f}", bar)
            epoch_end = (t + 1) % iterations_per_epoch == 0
            if epoch_end:
                if bar is not None:
                    bar.close()          # closed before the epoch line is printed
                    bar = None
                self.epoch += 1
                for config in self.optim_configs.values():
                    if "learning_rate" in config:
                        config["learning_rate"] *= self.lr_decay
            if t == 0 or t == num_iterations - 1 or epoch_end:
                train_acc = self._accuracy(self.X_train, self.y_train, self.num_train_samples,
                                           100, "data['y_train']")
                val_acc = self._accuracy(self.X_val, self.y_val, self.num_val_samples, 100,
                                         "data['y_val']")
                self.train_acc_history.append(train_acc)
                self.val_acc_history.append(val_acc)
                if self.verbose:
                    _print(f"(Epoch {self.epoch} / {self.num_epochs}) train acc: "
                           f"{train_acc:f}; val_acc: {val_acc:f}", bar)
                if val_acc > self.best_val_acc:
                    self.best_val_acc = val_acc
                    self.best_params = {k: np.array(v, copy=True)
                                        for k, v in self.model.params.items()}
                if epoch_end and self.checkpoint_name is not None:
                    self.save_checkpoint(f"{os.fspath(self.checkpoint_name)}_epoch_{self.epoch}.npz")
            if self.checkpoint_every is not None and (t + 1) % self.checkpoint_every == 0:
                self.save_checkpoint(f"{os.fspath(self.checkpoint_name)}_last.npz")
        if bar is not None:
            bar.close()
        # NOTE: the course swaps best_params in unconditionally, emptying the model when val
        # accuracy never rose above 0; here the current parameters are kept in that case.
        if self.best_params:
            self.model.params = {k: v.copy() for k, v in self.best_params.items()}

    # ---- checkpoints (the format: optim/checkpoint.py) -----------------------------------------
    def save_checkpoint(self, path):
        """Write everything needed to resume (see docs/training.md) atomically to `path`.

        What the loader would refuse (say a config value it cannot range-check) is refused
        here, with a ValueError naming the file, and nothing is written."""
        try:
            arrays, meta = checkpoint.pack_solver(self)
        except ValueError as e:
            raise ValueError(f"checkpoint {os.fspath(path)!r}: {e}") from e
        return checkpoint.save_checkpoint(path, arrays, meta)

    def load_checkpoint(self, path, restore_rng=True):
        """Restore params, optimizer configs, epoch and iteration, histories and best
        params/accuracy from a checkpoint (and, if `restore_rng`, numpy's global RNG and
        autotensor's global generator), so `train()` continues with the next iteration. A
        file without an iteration count (written by an earlier version) resumes at its epoch's
        end. Everything is validated first (the RNG states on scratch generators); a refusal is
        a ValueError naming the file and the entry, and leaves the solver, its model and the
        global RNGs exactly as they were."""
        arrays, meta = checkpoint.load_checkpoint(path)
        with checkpoint.naming_errors(path):
            state = checkpoint.unpack_solver(self, arrays, meta)
            # The first assignment: it checks every buffer before setting any, and nothing
            # assigned after it can fail (params, RNG state: checked by unpack_solver).
            checkpoint.load_model_buffers(self.model, state["buffers"])
        self.model.params = state["params"]
        self.optim_configs = state["optim_configs"]
        self.best_params = state["best"]
        self.epoch = meta["epoch"]
        self.iteration = state["iteration"]
        if self.iteration is None:                # written before iterations were saved
            self.iteration = self.epoch * self._iterations_per_epoch()
        self.best_val_acc = meta["best_val_acc"]
        self.loss_history = state["history"]["loss"]
        self.train_acc_history = state["history"]["train_acc"]
        self.val_acc_history = state["history"]["val_acc"]
        if restore_rng:
            np.random.set_state(state["rng"])
            if state["generator"] is not None:
                set_rng_state(state["generator"])


# ---- helpers -----------------------------------------------------------------------------------
def _check_model(model):
    if not hasattr(model, "params") or not callable(getattr(model, "loss", None)):
        hint = (" For an nn.Module use optim.ModuleModel(module, loss_fn)."
                if hasattr(model, "named_parameters") else "")
        raise ValueError(f"the Solver needs a model with `params` (dict of arrays) and "
                         f"`loss(X, y=None)`; got {type(model).__name__}.{hint}")


def _check_data(data):
    missing = [k for k in ("X_train", "y_train", "X_val", "y_val") if k not in data]
    if missing:
        raise ValueError(f"Solver: data is missing {missing}; it needs X_train, y_train, X_val, "
                         "y_val")
    X_train, y_train, X_val, y_val = (np.asarray(data[k])
                                      for k in ("X_train", "y_train", "X_val", "y_val"))
    for X, y, split in ((X_train, y_train, "train"), (X_val, y_val, "val")):
        if X.ndim < 1 or len(X) == 0 or y.shape != (len(X),):
            raise ValueError(f"Solver: X_{split} has shape {X.shape} and y_{split} has shape "
                             f"{y.shape}; need N >= 1 samples and y of shape (N,)")
        # Their upper bound, the number of classes, is checked against the first scores.
        validate.labels("Solver", f"data['y_{split}']", y)
    return X_train, y_train, X_val, y_val


def _check_optim_config(optim_config, rule_name):
    """The rule's keys only (when it is one of `rules`), each a number in its range; a
    learning_rate, which the Solver decays, whatever the rule."""
    if rule_name is not None:
        validate.config("Solver", "optim_config", optim_config,
                        rules.HYPERPARAMETERS[rule_name])
    elif not isinstance(optim_config, Mapping):
        raise ValueError(f"Solver: optim_config must be a dict, got {type(optim_config)}")
    elif "learning_rate" in optim_config:
        validate.learning_rate("Solver", "optim_config['learning_rate']",
                               optim_config["learning_rate"])


def _stdout_is_tty():
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


def _progress_bar(total, initial, epoch, num_epochs):
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc=f"epoch {epoch}/{num_epochs}", leave=False,
                file=sys.stdout, dynamic_ncols=True)


def _print(line, bar):
    """Print a status line; through tqdm while a bar is drawn, so the bar never garbles it."""
    if bar is None:
        print(line)
    else:
        bar.write(line, file=sys.stdout)
