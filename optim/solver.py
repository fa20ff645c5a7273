"""The course's `Solver`: minibatch training of a classification model, with per-epoch
checkpoints that can resume a run exactly.

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
from collections.abc import Mapping, MutableMapping

import numpy as np

from autotensor import Tensor, no_grad

from . import checkpoint, rules

__all__ = ["Solver", "ModuleModel"]

CHECKPOINT_FORMAT = "autotensor.Solver"
CHECKPOINT_VERSION = 1
_STATE_SHAPED = ("velocity", "cache", "m", "v")      # rule state arrays shaped like the weight


class Solver:
    """Trains `model` on `data` (a dict with X_train, y_train, X_val, y_val).

    Keywords (course defaults): update_rule ('sgd'; a name in `optim.rules` or a function with
    the rule signature), optim_config ({}; each parameter gets its own deep copy), lr_decay (1.0,
    applied to every config's learning_rate after each epoch), batch_size (100), num_epochs (10),
    num_train_samples (1000; train accuracy is measured on this many samples, None = all),
    num_val_samples (None = all), checkpoint_name (None; if set, `{name}_epoch_{n}.npz` is
    written atomically after every epoch), print_every (10), verbose (True).
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
        self.print_every = kwargs.pop("print_every", 10)
        self.verbose = kwargs.pop("verbose", True)
        if kwargs:
            raise ValueError("Unrecognized arguments " + ", ".join(f'"{k}"' for k in kwargs))
        if isinstance(self.update_rule, str):
            if self.update_rule not in rules.__all__:
                raise ValueError(f'Invalid update_rule "{self.update_rule}"; choose one of '
                                 f"{rules.__all__} or pass a function")
            self.update_rule = getattr(rules, self.update_rule)
        elif not callable(self.update_rule):
            raise ValueError(f"update_rule must be a rule name or a function, got "
                             f"{self.update_rule!r}")
        if not isinstance(self.optim_config, Mapping):
            raise ValueError(f"optim_config must be a dict, got {type(self.optim_config)}")
        for name in ("batch_size", "print_every"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not _is_int(self.num_epochs) or self.num_epochs < 0:
            raise ValueError(f"num_epochs must be an integer >= 0, got {self.num_epochs}")
        if self.checkpoint_name is not None:
            directory = os.path.dirname(os.path.abspath(os.fspath(self.checkpoint_name)))
            if not os.path.isdir(directory):
                raise ValueError(f"checkpoint_name {self.checkpoint_name!r}: directory "
                                 f"{directory!r} does not exist")
        for name in ("num_train_samples", "num_val_samples"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value}")
        self._reset()

    def _reset(self):
        """Set up the bookkeeping variables for a fresh run."""
        self.epoch = 0
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
        (drawn with replacement) when X has more rows; scored in batches of `batch_size`."""
        N = X.shape[0]
        if num_samples is not None and N > num_samples:
            mask = np.random.choice(N, num_samples)
            N, X, y = num_samples, X[mask], y[mask]
        y_pred = []
        for start in range(0, N, batch_size):
            scores = self.model.loss(X[start:start + batch_size])
            scores = scores.data if isinstance(scores, Tensor) else np.asarray(scores)
            y_pred.append(np.argmax(scores, axis=1))
        return float(np.mean(np.hstack(y_pred) == y))

    def train(self):
        """Run the optimization from the current epoch to `num_epochs` (resumes after
        `load_checkpoint`), then put the best parameters seen into `model.params`."""
        num_train = self.X_train.shape[0]
        iterations_per_epoch = max(num_train // self.batch_size, 1)
        num_iterations = self.num_epochs * iterations_per_epoch
        bar = None
        for t in range(self.epoch * iterations_per_epoch, num_iterations):
            if bar is None and self.verbose and _stdout_is_tty():
                bar = _progress_bar(iterations_per_epoch, self.epoch + 1, self.num_epochs)
            self._step()
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
                train_acc = self.check_accuracy(self.X_train, self.y_train,
                                                num_samples=self.num_train_samples)
                val_acc = self.check_accuracy(self.X_val, self.y_val,
                                              num_samples=self.num_val_samples)
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
        if bar is not None:
            bar.close()
        # NOTE: the course swaps best_params in unconditionally, emptying the model when val
        # accuracy never rose above 0; here the current parameters are kept in that case.
        if self.best_params:
            self.model.params = {k: v.copy() for k, v in self.best_params.items()}

    # ---- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self, path):
        """Write everything needed to resume (see docs/training.md) atomically to `path`."""
        params = self.model.params
        arrays = {f"params/{k}": np.asarray(v) for k, v in params.items()}
        arrays.update({f"best/{k}": v for k, v in self.best_params.items()})
        scalars, array_keys = {}, {}
        for name, config in self.optim_configs.items():
            scalars[name], array_keys[name] = {}, []
            for key, value in config.items():
                if isinstance(value, np.ndarray):
                    arrays[f"optim/{name}/{key}"] = value
                    array_keys[name].append(key)
                else:
                    scalars[name][key] = _json_scalar(value, f"optim config {name}.{key}")
        buffers = _Buffers(self.model).current()
        arrays.update({f"buffers/{k}": np.asarray(v) for k, v in buffers.items()})
        arrays["history/loss"] = np.asarray(self.loss_history, dtype=np.float64)
        arrays["history/train_acc"] = np.asarray(self.train_acc_history, dtype=np.float64)
        arrays["history/val_acc"] = np.asarray(self.val_acc_history, dtype=np.float64)
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        arrays["rng/keys"] = keys
        meta = {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "epoch": self.epoch,
            "update_rule": self.update_rule.__name__, "lr_decay": float(self.lr_decay),
            "batch_size": self.batch_size, "num_epochs": self.num_epochs,
            "num_train_samples": self.num_train_samples,
            "num_val_samples": self.num_val_samples, "best_val_acc": float(self.best_val_acc),
            "param_names": list(params), "best_names": list(self.best_params),
            "buffer_names": list(buffers), "optim_scalars": scalars, "optim_arrays": array_keys,
            "rng": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss),
                    "cached_gaussian": float(cached)},
        }
        return checkpoint.save_checkpoint(path, arrays, meta)

    def load_checkpoint(self, path, restore_rng=True):
        """Restore params, optimizer configs, epoch, histories and best params/accuracy from a
        checkpoint (and numpy's global RNG state if `restore_rng`), so `train()` continues
        from the next epoch. Everything is validated before anything is assigned."""
        arrays, meta = checkpoint.load_checkpoint(path)
        try:
            state = self._validate_checkpoint(arrays, meta)
        except (KeyError, TypeError, AttributeError, IndexError) as e:
            raise ValueError(f"checkpoint {path!r}: malformed metadata "
                             f"({type(e).__name__}: {e})") from e
        except ValueError as e:
            raise ValueError(f"checkpoint {path!r}: {e}") from e
        # Validated: assign (none of this can fail part-way).
        self.model.params = state["params"]
        _Buffers(self.model).assign(state["buffers"])
        self.optim_configs = state["optim_configs"]
        self.best_params = state["best"]
        self.epoch = meta["epoch"]
        self.best_val_acc = meta["best_val_acc"]
        self.loss_history = arrays["history/loss"].tolist()
        self.train_acc_history = arrays["history/train_acc"].tolist()
        self.val_acc_history = arrays["history/val_acc"].tolist()
        if restore_rng and state["rng"] is not None:
            np.random.set_state(state["rng"])

    def _validate_checkpoint(self, arrays, meta):
        """Check a loaded checkpoint against this solver's model; return the state to assign."""
        if meta.get("format") != CHECKPOINT_FORMAT or meta.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"not a {CHECKPOINT_FORMAT} checkpoint of version "
                             f"{CHECKPOINT_VERSION} (format {meta.get('format')!r}, version "
                             f"{meta.get('version')!r})")
        epoch = meta["epoch"]
        if not _is_int(epoch) or epoch < 0:
            raise ValueError(f"epoch {epoch!r} is not an integer >= 0")
        if not isinstance(meta["best_val_acc"], (int, float)):
            raise ValueError(f"best_val_acc {meta['best_val_acc']!r} is not a number")
        if meta["update_rule"] != self.update_rule.__name__:
            raise ValueError(f"it was written with update rule {meta['update_rule']!r}, this "
                             f"solver uses {self.update_rule.__name__!r}")
        params = self.model.params
        names, mine = list(meta["param_names"]), set(params)
        if set(names) != mine:
            raise ValueError(f"its parameters {sorted(names)} differ from the model's "
                             f"{sorted(mine)}")
        used = set()

        def take(key, shape=None):
            if key not in arrays:
                raise ValueError(f"array {key!r} is missing")
            a = arrays[key]
            if shape is not None and a.shape != shape:
                raise ValueError(f"array {key!r} has shape {a.shape}, the model expects {shape}")
            used.add(key)
            return a

        def weights(key, name):
            a = take(key, np.shape(params[name]))
            if not np.issubdtype(a.dtype, np.floating):
                raise ValueError(f"array {key!r} has dtype {a.dtype}, expected floating point")
            return a.astype(np.asarray(params[name]).dtype)

        state = {"params": {n: weights(f"params/{n}", n) for n in names}}
        best = list(meta["best_names"])
        if best and set(best) != mine:
            raise ValueError(f"its best params {sorted(best)} differ from the model's "
                             f"{sorted(mine)}")
        state["best"] = {n: weights(f"best/{n}", n) for n in best}
        configs = {}
        for n in names:
            configs[n] = copy.deepcopy(dict(meta["optim_scalars"][n]))
            for key in meta["optim_arrays"][n]:
                shape = np.shape(params[n]) if key in _STATE_SHAPED else None
                configs[n][key] = take(f"optim/{n}/{key}", shape).copy()
        state["optim_configs"] = configs
        state["buffers"] = {n: take(f"buffers/{n}") for n in meta["buffer_names"]}
        _Buffers(self.model).check(state["buffers"])
        hist = [take(f"history/{h}") for h in ("loss", "train_acc", "val_acc")]
        if any(h.ndim != 1 or not np.issubdtype(h.dtype, np.floating) for h in hist):
            raise ValueError("history arrays must be 1-d floating point")
        if len(hist[1]) != len(hist[2]):
            raise ValueError(f"train/val accuracy histories have lengths {len(hist[1])} "
                             f"and {len(hist[2])}")
        rng = meta["rng"]
        keys = take("rng/keys", (624,))
        if keys.dtype != np.uint32:
            raise ValueError(f"array 'rng/keys' has dtype {keys.dtype}, expected uint32")
        state["rng"] = (str(rng["kind"]), keys, int(rng["pos"]), int(rng["has_gauss"]),
                        float(rng["cached_gaussian"]))
        extra = sorted(set(arrays) - used)
        if extra:
            raise ValueError(f"unexpected array(s) {extra}")
        return state


class ModuleModel:
    """An `nn.Module` plus a loss function, seen as a course model so the `Solver` can train it.

    `params` is a dict-like view name -> ndarray over `module.named_parameters()`: reading gives
    the Parameter's own array (shared, not copied) and assigning copies into it, so the Solver's
    updates land in the module. `loss(X, y)` runs the module in train mode, calls
    `loss_fn(scores, y)` (a scalar Tensor), backpropagates and returns (float loss, grads);
    `loss(X)` runs it in eval mode without recording and returns the scores as an ndarray.
    Buffers (batch-norm running statistics) are exposed as `buffers` for checkpoints.

        model = optim.ModuleModel(net, F.softmax_cross_entropy)
        Solver(model, data, update_rule='adam').train()
    """

    def __init__(self, module, loss_fn):
        if not hasattr(module, "named_parameters") or not callable(module):
            raise ValueError(f"ModuleModel needs an nn.Module, got {type(module).__name__}")
        self.module, self.loss_fn = module, loss_fn
        self._tensors = dict(module.named_parameters())
        if not self._tensors:
            raise ValueError("the module has no parameters to train")
        self._view = _ParamView(self._tensors)

    @property
    def params(self):
        return self._view

    @params.setter
    def params(self, values):
        self._view.assign(values)

    @property
    def buffers(self):
        """{dotted name: ndarray} of the module's buffers (the live arrays, not copies)."""
        named = getattr(self.module, "named_buffers", None)
        return dict(named()) if named is not None else {}

    def loss(self, X, y=None):
        dtype = next(iter(self._tensors.values())).dtype
        x = Tensor(np.asarray(X, dtype=dtype))
        if y is None:
            self.module.eval()
            with no_grad():
                return self.module(x).data
        self.module.train()
        for p in self._tensors.values():
            p.grad = None
        loss = self.loss_fn(self.module(x), y)
        loss.backward()
        grads = {n: (p.grad if p.grad is not None else np.zeros_like(p.data))
                 for n, p in self._tensors.items()}
        return float(loss.data), grads


class _ParamView(MutableMapping):
    """name -> parameter.data; assignment copies into the parameter's array (shape-checked)."""

    def __init__(self, tensors):
        self._tensors, self._what = tensors, "parameter"

    def __getitem__(self, name):
        return self._tensors[name].data

    def __setitem__(self, name, value):
        t = self._tensors[name]
        value = np.asarray(value.data if isinstance(value, Tensor) else value)
        if value.shape != t.data.shape:
            raise ValueError(f"{self._what} {name!r} has shape {t.data.shape}, got an array of "
                             f"shape {value.shape}")
        t.data[...] = value

    def assign(self, values):
        """Replace all entries at once (keys must match; checked before anything is copied)."""
        if set(values) != set(self._tensors):
            raise ValueError(f"expected {self._what}s {sorted(self._tensors)}, got "
                             f"{sorted(values)}")
        for name, value in values.items():
            if np.shape(value) != self._tensors[name].data.shape:
                raise ValueError(f"{self._what} {name!r} has shape "
                                 f"{self._tensors[name].data.shape}, got {np.shape(value)}")
        for name, value in values.items():
            self[name] = value

    def __delitem__(self, name):
        raise TypeError(f"cannot delete a {self._what} of a module")

    def __iter__(self):
        return iter(self._tensors)

    def __len__(self):
        return len(self._tensors)


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
        raise ValueError(f"data is missing {missing}; it needs X_train, y_train, X_val, y_val")
    X_train, y_train, X_val, y_val = (np.asarray(data[k])
                                      for k in ("X_train", "y_train", "X_val", "y_val"))
    for X, y, split in ((X_train, y_train, "train"), (X_val, y_val, "val")):
        if X.ndim < 1 or len(X) == 0 or y.shape != (len(X),):
            raise ValueError(f"X_{split} has shape {X.shape} and y_{split} has shape {y.shape}; "
                             f"need N >= 1 samples and y of shape (N,)")
    return X_train, y_train, X_val, y_val


class _Buffers:
    """Arrays a model keeps outside `params` (running statistics), saved in checkpoints.

    Either `model.buffers` (a mapping, as `ModuleModel` has: names fixed by the model) or the
    ndarrays inside the course models' `bn_params` dicts, which appear on the first forward
    pass; a fresh model therefore accepts `bn_params.{i}.{key}` entries it does not have yet.
    """

    def __init__(self, model):
        self.model = model
        self.fixed = isinstance(getattr(model, "buffers", None), Mapping)

    def current(self):
        if self.fixed:
            return dict(self.model.buffers)
        out = {}
        for i, bn in enumerate(getattr(self.model, "bn_params", None) or []):
            if isinstance(bn, dict):
                out.update({f"bn_params.{i}.{k}": v for k, v in bn.items()
                            if isinstance(v, np.ndarray)})
        return out

    def check(self, arrays):
        """Raise ValueError unless `arrays` (name -> ndarray) can be assigned to the model."""
        current = self.current()
        missing, extra = sorted(set(current) - set(arrays)), sorted(set(arrays) - set(current))
        if missing or (self.fixed and extra):
            raise ValueError(f"its buffers {sorted(arrays)} differ from the model's "
                             f"{sorted(current)}")
        for name in extra:
            parts = name.split(".", 2)
            bn_params = getattr(self.model, "bn_params", None) or []
            if (len(parts) != 3 or parts[0] != "bn_params" or not parts[1].isdigit()
                    or int(parts[1]) >= len(bn_params)):
                raise ValueError(f"buffer {name!r} does not exist in the model")
        for name, a in arrays.items():
            if name in current and a.shape != np.shape(current[name]):
                raise ValueError(f"buffer {name!r} has shape {a.shape}, the model's has shape "
                                 f"{np.shape(current[name])}")

    def assign(self, arrays):
        current = self.current()
        for name, a in arrays.items():
            if name in current:
                current[name][...] = a
            else:
                _, i, key = name.split(".", 2)
                self.model.bn_params[int(i)][key] = a.copy()


def _json_scalar(value, what):
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"cannot checkpoint {what} of type {type(value).__name__}: only arrays and "
                     "numbers/strings are saved")


def _is_int(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _stdout_is_tty():
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


def _progress_bar(total, epoch, num_epochs):
    from tqdm import tqdm
    return tqdm(total=total, desc=f"epoch {epoch}/{num_epochs}", leave=False, file=sys.stdout,
                dynamic_ncols=True)


def _print(line, bar):
    """Print a status line; through tqdm while a bar is drawn, so the bar never garbles it."""
    if bar is None:
        print(line)
    else:
        bar.write(line, file=sys.stdout)
