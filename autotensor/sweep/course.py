"""The ready train_fn for the course's models: TwoLayerNet, FullyConnectedNet or
ThreeLayerConvNet trained by the Solver on a named data set.

    data = load_dataset("digits")
    sweep.run(train_course_model, {"model": ["fc"], "lr": loguniform(1e-4, 1e-1)},
              trials=20, data=data)
"""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np

from .runner import Diverged

__all__ = ["train_course_model", "load_dataset", "checkpoint_arrays", "DEFAULTS", "MODELS"]

MODELS = ("twolayer", "fc", "convnet")
SPLITS = ("X_train", "y_train", "X_val", "y_val")

# Every config key train_course_model reads, with its value when the config leaves it out.
DEFAULTS = {
    "model": "fc",           # twolayer | fc | convnet (ThreeLayerConvNet)
    "dataset": None,         # a label kept with the trial; the data itself is passed in
    "lr": 1e-3,              # the update rule's learning_rate
    "reg": 0.0,              # L2 strength: 0.5 * reg * sum(W**2)
    "hidden": 100,           # hidden units (each hidden layer of fc)
    "layers": 2,             # fc: number of hidden layers
    "epochs": 5,
    "batch_size": 100,
    "update_rule": "adam",   # any optim.rules name
    "lr_decay": 0.95,
    "weight_scale": None,    # None: the model's own default
    "normalization": None,   # fc: None | batchnorm | layernorm
    "dropout": 1.0,          # fc: the KEEP probability, as the course's dropout_keep_ratio
    "batchnorm": False,      # convnet: use_batchnorm
    "num_filters": 16,       # convnet
    "filter_size": None,     # convnet: None is 3 for images of 8x8 or less, else 7
    "seed": 0,               # np.random.seed before the model is built: init and minibatches
}


def load_dataset(name, data_dir=None, num_training=49000, num_validation=1000,
                 dtype=np.float32):
    """X_train, y_train, X_val, y_val of "digits" (embedded) or "cifar10" (from `data_dir`);
    the test split stays out of a sweep: tune on validation."""
    from autotensor.data import get_cifar10_data, get_digits_data

    if name == "digits":
        data = get_digits_data(dtype=dtype)
    elif name == "cifar10":
        if data_dir is None:
            raise ValueError("dataset 'cifar10' needs data_dir: the folder holding the CIFAR-10 "
                             "batches (binary or python version, see docs/data.md)")
        data = get_cifar10_data(data_dir, num_training=num_training,
                                num_validation=num_validation, num_test=0, dtype=dtype)
    else:
        raise ValueError(f"dataset must be 'digits' or 'cifar10', got {name!r}")
    return {k: data[k] for k in SPLITS}


def build_model(config, input_shape, num_classes):
    """The course model named by config["model"] (config with every DEFAULTS key)."""
    from autotensor.nn.models import FullyConnectedNet, ThreeLayerConvNet, TwoLayerNet

    c, dim = config, int(np.prod(input_shape))
    scale = {} if c["weight_scale"] is None else {"weight_scale": c["weight_scale"]}
    if c["model"] == "twolayer":
        return TwoLayerNet(dim, c["hidden"], num_classes, reg=c["reg"], **scale)
    if c["model"] == "fc":
        return FullyConnectedNet([c["hidden"]] * c["layers"], dim, num_classes,
                                 dropout_keep_ratio=c["dropout"],
                                 normalization=c["normalization"], reg=c["reg"], **scale)
    if c["model"] == "convnet":
        if len(input_shape) != 3:
            raise ValueError(f"convnet needs images (C, H, W), the data has rows of shape "
                             f"{tuple(input_shape)}")
        size = c["filter_size"] or (3 if input_shape[1] <= 8 else 7)
        return ThreeLayerConvNet(tuple(input_shape), c["num_filters"], size, c["hidden"],
                                 num_classes, reg=c["reg"], use_batchnorm=c["batchnorm"],
                                 **scale)
    raise ValueError(f"config['model'] must be one of {MODELS}, got {c['model']!r}")


def train_course_model(config, data, checkpoint=None):
    """Train the course model that `config` describes (keys: DEFAULTS) on `data` (X_train,
    y_train, X_val, y_val) with the Solver; return its metrics. Raises Diverged as soon as the
    loss is nan or inf. `checkpoint`: a path for Solver.save_checkpoint after training."""
    from autotensor.optim import Solver

    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; train_course_model reads "
                         f"{sorted(DEFAULTS)}")
    c = {**DEFAULTS, **config}
    missing = [k for k in SPLITS if k not in data]
    if missing:
        raise ValueError(f"data lacks {missing}; it needs {list(SPLITS)}")
    np.random.seed(c["seed"])
    num_classes = int(max(data["y_train"].max(), data["y_val"].max())) + 1
    model = build_model(c, data["X_train"].shape[1:], num_classes)
    solver = Solver(model, {k: data[k] for k in SPLITS}, update_rule=c["update_rule"],
                    optim_config={"learning_rate": c["lr"]}, lr_decay=c["lr_decay"],
                    batch_size=c["batch_size"], num_epochs=c["epochs"], verbose=False)
    loss = model.loss

    def checked_loss(X, y=None):
        out = loss(X, y)
        if y is not None and not math.isfinite(out[0]):
            # NOTE: stop here: every later step would be nan too, and only cost time.
            raise Diverged(f"loss became {out[0]} at iteration {len(solver.loss_history) + 1}",
                           {"loss": float(out[0])})
        return out

    model.loss = checked_loss
    try:
        # Overflow on the way to inf is an outcome the trial's status records, not a warning.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            solver.train()
    except Diverged as err:
        solver.loss_history.append(err.metrics["loss"])
        err.metrics = _metrics(solver)
        raise
    finally:
        del model.loss
    if checkpoint is not None:
        solver.save_checkpoint(checkpoint)
    return _metrics(solver)


def _metrics(solver):
    def last(values):
        return float(values[-1]) if values else None

    return {
        "best_val_acc": float(solver.best_val_acc),
        "final_val_acc": last(solver.val_acc_history),
        "final_train_acc": last(solver.train_acc_history),
        "final_loss": last(solver.loss_history),
        "iterations": len(solver.loss_history),
        # Histories for the report's curves; 6 significant digits are plenty for a plot.
        "loss_history": [float(f"{v:.6g}") for v in solver.loss_history],
        "train_acc_history": [float(v) for v in solver.train_acc_history],
        "val_acc_history": [float(v) for v in solver.val_acc_history],
    }


def checkpoint_arrays(config, data):
    """Train `config` again (on a worker) and return (metrics, arrays, meta) of its Solver
    checkpoint, for optim.save_checkpoint on the client's disk."""
    from autotensor.optim import load_checkpoint

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "trial.npz")
        metrics = train_course_model(config, data, checkpoint=path)
        arrays, meta = load_checkpoint(path)
    return metrics, arrays, meta
