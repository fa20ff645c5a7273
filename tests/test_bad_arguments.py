"""Every bad argument is refused at the call, by autotensor.validate, with a message naming the
function or class, the argument and the value (docs/reliability.md).

One table: each row is a call with one bad input, the exception it must raise and a fragment
of the message (a plain substring). A second table holds boundary values that stay valid.
"""

from __future__ import annotations

import contextlib
import io
from unittest import mock

import numpy as np
import pytest

import autotensor as at
import autotensor.__main__ as cli_module
from autotensor import nn, optim, validate
from autotensor.nn import functional as F
from autotensor.nn import layers
from autotensor.nn.models import (
    FullyConnectedNet,
    ThreeLayerConvNet,
    TwoLayerNet,
    init_two_layer_model,
    two_layer_net,
)

NAN, INF = float("nan"), float("inf")


# ---- what the rows call ------------------------------------------------------------------------
def params():
    return [at.Tensor(np.zeros(3), requires_grad=True)]


def data(y_val=None):
    r = np.random.RandomState(0)
    X = r.randn(12, 4)
    y = r.randint(3, size=12)
    return {"X_train": X[:8], "y_train": y[:8], "X_val": X[8:],
            "y_val": y[8:] if y_val is None else np.asarray(y_val)}


def solver(**kwargs):
    return optim.Solver(TwoLayerNet(input_dim=4, hidden_dim=5, num_classes=3), data(),
                        verbose=False, **kwargs)


def solver_on(d, **kwargs):
    return optim.Solver(TwoLayerNet(input_dim=4, hidden_dim=5, num_classes=3), d,
                        num_epochs=1, batch_size=4, verbose=False, **kwargs)


def trainer(y=None, y_val=None, **kwargs):
    d = data()
    return optim.ClassifierTrainer().train(
        d["X_train"], d["y_train"] if y is None else np.asarray(y), d["X_val"],
        d["y_val"] if y_val is None else np.asarray(y_val), init_two_layer_model(4, 5, 3),
        two_layer_net, **{"num_epochs": 1, "batch_size": 4, **kwargs})


def sgd():
    return optim.SGD(params(), lr=0.1)


def cli(*argv):
    """`python -m autotensor ...` in-process; SystemExit carries the exit code and stderr. A
    command that gets past its argument checks fails the row instead of training."""
    err = io.StringIO()
    refuse = mock.Mock(side_effect=AssertionError(f"{argv} was accepted"))
    with contextlib.redirect_stderr(err), mock.patch.object(cli_module, "train", refuse), \
            mock.patch.object(cli_module, "demo", refuse):
        try:
            cli_module.main(list(argv))
        except SystemExit as e:
            raise SystemExit(f"exit {e.code}: {err.getvalue()}") from None


X4 = np.zeros((2, 3, 5, 5))
W3 = np.zeros((2, 3, 3, 3))
B2 = np.zeros(2)
CONV = {"stride": 1, "pad": 1}
POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}
LR = "(a learning rate must be >= 0"


def row(label, call, fragment, exc=ValueError):
    return pytest.param(call, exc, fragment, id=label)


ROWS = [
    # ---- Solver: optim_config, lr_decay, sizes, data ----
    row("solver-lr-negative", lambda: solver(optim_config={"learning_rate": -1}),
        "Solver: optim_config['learning_rate'] must be a finite number >= 0, got -1 " + LR),
    row("solver-lr-nan", lambda: solver(optim_config={"learning_rate": NAN}),
        "optim_config['learning_rate'] must be a finite number >= 0, got nan"),
    row("solver-lr-string", lambda: solver(optim_config={"learning_rate": "0.1"}),
        "optim_config['learning_rate'] must be a finite number >= 0, got the string \"0.1\""),
    row("solver-lr-none", lambda: solver(optim_config={"learning_rate": None}),
        "optim_config['learning_rate'] must be a finite number >= 0, got None"),
    row("solver-key-lr", lambda: solver(optim_config={"lr": 0.1}),
        "Solver: optim_config has unknown key(s) ['lr']; the keys it accepts are "
        "['learning_rate']"),
    row("solver-key-adam-lr", lambda: solver(update_rule="adam", optim_config={"lr": 0.1}),
        "the keys it accepts are ['learning_rate', 'beta1', 'beta2', 'epsilon']"),
    row("solver-key-sgd-momentum", lambda: solver(optim_config={"momentum": 0.9}),
        "unknown key(s) ['momentum']"),
    row("solver-key-rule-function",
        lambda: solver(update_rule=optim.rules.rmsprop, optim_config={"beta1": 0.9}),
        "['learning_rate', 'decay_rate', 'epsilon']"),
    row("solver-key-state", lambda: solver(update_rule="sgd_momentum",
                                           optim_config={"velocity": np.zeros(3)}),
        "unknown key(s) ['velocity']"),
    row("solver-momentum-1", lambda: solver(update_rule="sgd_momentum",
                                            optim_config={"momentum": 1.0}),
        "Solver: optim_config['momentum'] must be a finite number in [0, 1), got 1.0"),
    row("solver-nesterov-momentum-negative",
        lambda: solver(update_rule="sgd_nesterov_momentum", optim_config={"momentum": -0.5}),
        "optim_config['momentum'] must be a finite number in [0, 1), got -0.5"),
    row("solver-beta1", lambda: solver(update_rule="adam", optim_config={"beta1": 1}),
        "optim_config['beta1'] must be a finite number in [0, 1), got 1"),
    row("solver-beta2-string", lambda: solver(update_rule="adam",
                                              optim_config={"beta2": "0.999"}),
        "optim_config['beta2'] must be a finite number in [0, 1), got the string \"0.999\""),
    row("solver-epsilon-zero", lambda: solver(update_rule="adam", optim_config={"epsilon": 0}),
        "optim_config['epsilon'] must be a finite number > 0, got 0"),
    row("solver-decay-rate", lambda: solver(update_rule="rmsprop",
                                            optim_config={"decay_rate": 1.5}),
        "optim_config['decay_rate'] must be a finite number in [0, 1), got 1.5"),
    row("solver-adagrad-epsilon", lambda: solver(update_rule="adagrad",
                                                 optim_config={"epsilon": -1e-8}),
        "optim_config['epsilon'] must be a finite number > 0, got -1e-08"),
    row("solver-custom-rule-lr",
        lambda: solver(update_rule=lambda w, dw, c=None: (w, c),
                       optim_config={"learning_rate": "1e-3"}),
        "Solver: optim_config['learning_rate'] must be a finite number >= 0"),
    row("solver-config-not-dict", lambda: solver(optim_config=[("learning_rate", 0.1)]),
        "Solver: optim_config must be a dict, got [('learning_rate', 0.1)]"),
    row("solver-lr-decay-negative", lambda: solver(lr_decay=-1),
        "Solver: lr_decay must be a finite number > 0, got -1"),
    row("solver-lr-decay-zero", lambda: solver(lr_decay=0),
        "Solver: lr_decay must be a finite number > 0, got 0"),
    row("solver-lr-decay-string", lambda: solver(lr_decay="0.95"),
        "Solver: lr_decay must be a finite number > 0, got the string \"0.95\""),
    row("solver-lr-decay-inf", lambda: solver(lr_decay=INF),
        "Solver: lr_decay must be a finite number > 0, got inf"),
    row("solver-batch-size-float", lambda: solver(batch_size=50.0),
        "Solver: batch_size must be an integer >= 1, got 50.0"),
    row("solver-batch-size-bool", lambda: solver(batch_size=True),
        "Solver: batch_size must be an integer >= 1, got True"),
    row("solver-batch-size-zero", lambda: solver(batch_size=0),
        "Solver: batch_size must be an integer >= 1, got 0"),
    row("solver-num-epochs-negative", lambda: solver(num_epochs=-1),
        "Solver: num_epochs must be an integer >= 0, got -1"),
    row("solver-num-epochs-string", lambda: solver(num_epochs="10"),
        "Solver: num_epochs must be an integer >= 0, got the string \"10\""),
    row("solver-print-every", lambda: solver(print_every=0),
        "Solver: print_every must be an integer >= 1, got 0"),
    row("solver-num-train-samples", lambda: solver(num_train_samples=0.5),
        "Solver: num_train_samples must be an integer >= 1, got 0.5"),
    row("solver-num-val-samples", lambda: solver(num_val_samples=-3),
        "Solver: num_val_samples must be an integer >= 1, got -3"),
    row("solver-y-train-float", lambda: solver_on({**data(), "y_train": np.zeros(8)}),
        "Solver: data['y_train'] must be an integer array, got dtype float64"),
    row("solver-y-val-float", lambda: solver_on({**data(), "y_val": np.zeros(4)}),
        "Solver: data['y_val'] must be an integer array, got dtype float64"),
    row("solver-y-val-negative", lambda: solver_on(data(y_val=[0, -1, 2, 1])),
        "Solver: data['y_val'] must be >= 0, got values from -1 to 2"),
    row("solver-y-val-out-of-range", lambda: solver_on(data(y_val=[0, 1, 2, 3])).train(),
        "Solver: data['y_val'] must lie in [0, 3) (the model scores 3 classes), got values "
        "from 0 to 3"),
    row("solver-y-train-out-of-range",
        lambda: solver_on({**data(), "y_train": np.full(8, 7)}, num_train_samples=None)
        .train(), "must lie in [0, 3)"),
    row("solver-check-accuracy-labels",
        lambda: solver().check_accuracy(np.zeros((5, 4)), np.array([0, 1, 2, 5, 0])),
        "Solver: y must lie in [0, 3) (the model scores 3 classes), got values from 0 to 5"),
    # ---- ClassifierTrainer.train ----
    row("trainer-num-epochs-negative", lambda: trainer(num_epochs=-1),
        "ClassifierTrainer.train: num_epochs must be an integer >= 1, got -1"),
    row("trainer-num-epochs-zero", lambda: trainer(num_epochs=0),
        "ClassifierTrainer.train: num_epochs must be an integer >= 1, got 0"),
    row("trainer-batch-size-float", lambda: trainer(batch_size=2.5),
        "ClassifierTrainer.train: batch_size must be an integer >= 1, got 2.5"),
    row("trainer-acc-frequency", lambda: trainer(acc_frequency=0),
        "ClassifierTrainer.train: acc_frequency must be an integer >= 1, got 0"),
    row("trainer-lr-negative", lambda: trainer(learning_rate=-1e-3),
        "ClassifierTrainer.train: learning_rate must be a finite number >= 0, got -0.001"),
    row("trainer-lr-string", lambda: trainer(learning_rate="1e-3"),
        "learning_rate must be a finite number >= 0, got the string \"1e-3\""),
    row("trainer-momentum", lambda: trainer(momentum=1.2),
        "ClassifierTrainer.train: momentum must be a finite number in [0, 1), got 1.2"),
    row("trainer-decay-negative", lambda: trainer(learning_rate_decay=-0.95),
        "ClassifierTrainer.train: learning_rate_decay must be a finite number > 0, got -0.95"),
    row("trainer-reg-nan", lambda: trainer(reg=NAN),
        "ClassifierTrainer.train: reg must be a finite number >= 0, got nan"),
    row("trainer-update", lambda: trainer(update="adam"),
        'ClassifierTrainer.train: update must be one of "sgd", "momentum", "rmsprop", '
        'got the string "adam"'),
    row("trainer-y-float", lambda: trainer(y=np.zeros(8)),
        "ClassifierTrainer.train: y must be an integer array, got dtype float64"),
    row("trainer-y-val-out-of-range", lambda: trainer(y_val=[0, 1, 2, 9]),
        "ClassifierTrainer.train: y_val must lie in [0, 3) (the model scores 3 classes), "
        "got values from 0 to 9"),
    # ---- optimizers ----
    row("adam-lr-nan", lambda: optim.Adam(params(), lr=NAN),
        "Adam: lr must be a finite number >= 0, got nan"),
    row("adagrad-lr-inf", lambda: optim.Adagrad(params(), lr=INF),
        "Adagrad: lr must be a finite number >= 0, got inf"),
    row("sgd-lr-negative", lambda: optim.SGD(params(), lr=-1),
        "SGD: lr must be a finite number >= 0, got -1 " + LR),
    row("sgd-lr-none", lambda: optim.SGD(params(), lr=None),
        "SGD: lr must be a finite number >= 0, got None"),
    row("sgd-lr-string", lambda: optim.SGD(params(), lr="0.1"),
        "SGD: lr must be a finite number >= 0, got the string \"0.1\""),
    row("rmsprop-lr-bool", lambda: optim.RMSprop(params(), lr=True),
        "RMSprop: lr must be a finite number >= 0, got True"),
    row("adam-eps-negative", lambda: optim.Adam(params(), eps=-1),
        "Adam: eps must be a finite number > 0, got -1"),
    row("adam-eps-zero", lambda: optim.Adam(params(), eps=0.0),
        "Adam: eps must be a finite number > 0, got 0.0"),
    row("rmsprop-eps-nan", lambda: optim.RMSprop(params(), eps=NAN),
        "RMSprop: eps must be a finite number > 0, got nan"),
    row("adagrad-eps-negative", lambda: optim.Adagrad(params(), eps=-1e-8),
        "Adagrad: eps must be a finite number > 0, got -1e-08"),
    row("sgd-weight-decay-nan", lambda: optim.SGD(params(), lr=0.1, weight_decay=NAN),
        "SGD: weight_decay must be a finite number >= 0, got nan"),
    row("adam-weight-decay-negative", lambda: optim.Adam(params(), weight_decay=-0.1),
        "Adam: weight_decay must be a finite number >= 0, got -0.1"),
    row("sgd-momentum-negative", lambda: optim.SGD(params(), lr=0.1, momentum=-0.9),
        "SGD: momentum must be a finite number in [0, 1), got -0.9"),
    row("sgd-momentum-1", lambda: optim.SGD(params(), lr=0.1, momentum=1),
        "SGD: momentum must be a finite number in [0, 1), got 1"),
    row("sgd-momentum-string", lambda: optim.SGD(params(), lr=0.1, momentum="0.9"),
        "SGD: momentum must be a finite number in [0, 1), got the string \"0.9\""),
    row("sgd-nesterov-no-momentum", lambda: optim.SGD(params(), lr=0.1, nesterov=True),
        "SGD: nesterov=True needs a momentum > 0"),
    row("adam-beta1-1", lambda: optim.Adam(params(), betas=(1.0, 0.999)),
        "Adam: betas[0] must be a finite number in [0, 1), got 1.0"),
    row("adam-beta2-nan", lambda: optim.Adam(params(), betas=(0.9, NAN)),
        "Adam: betas[1] must be a finite number in [0, 1), got nan"),
    row("adam-betas-scalar", lambda: optim.Adam(params(), betas=0.9),
        "Adam: betas must be a tuple of 2 numbers, got 0.9"),
    row("adam-betas-three", lambda: optim.Adam(params(), betas=(0.9, 0.99, 0.999)),
        "Adam: betas must be a tuple of 2 numbers, got (0.9, 0.99, 0.999)"),
    row("rmsprop-decay-rate", lambda: optim.RMSprop(params(), decay_rate=1.0),
        "RMSprop: decay_rate must be a finite number in [0, 1), got 1.0"),
    row("param-group-lr", lambda: optim.SGD([{"params": params(), "lr": "0.1"}], lr=0.1),
        "SGD: lr must be a finite number >= 0, got the string \"0.1\""),
    row("param-group-key", lambda: optim.Adam([{"params": params(), "learning_rate": 0.1}]),
        "unknown hyperparameter(s) ['learning_rate']"),
    # ---- PyTorch's optimizer options ----
    row("adamw-lr-nan", lambda: optim.AdamW(params(), lr=NAN),
        "AdamW: lr must be a finite number >= 0, got nan"),
    row("adamw-weight-decay-negative", lambda: optim.AdamW(params(), weight_decay=-0.01),
        "AdamW: weight_decay must be a finite number >= 0, got -0.01"),
    row("adamw-betas-nan", lambda: optim.AdamW(params(), betas=(NAN, 0.9)),
        "AdamW: betas[0] must be a finite number in [0, 1), got nan"),
    row("adamw-amsgrad-string", lambda: optim.AdamW(params(), amsgrad="yes"),
        'AdamW: amsgrad must be one of False, True, got the string "yes"'),
    row("adam-amsgrad-int", lambda: optim.Adam(params(), amsgrad=1),
        "Adam: amsgrad must be one of False, True, got 1"),
    row("sgd-dampening-negative", lambda: optim.SGD(params(), momentum=0.9, dampening=-0.1),
        "SGD: dampening must be a finite number in [0, 1], got -0.1"),
    row("sgd-dampening-string", lambda: optim.SGD(params(), momentum=0.9, dampening="0"),
        'SGD: dampening must be a finite number in [0, 1], got the string "0"'),
    row("sgd-nesterov-dampening",
        lambda: optim.SGD(params(), momentum=0.9, nesterov=True, dampening=0.1),
        "SGD: nesterov=True needs a momentum > 0 and dampening 0, got momentum=0.9, "
        "dampening=0.1"),
    row("sgd-nesterov-float", lambda: optim.SGD(params(), 0.1, 0.9, 0.5),
        "SGD: nesterov must be one of False, True, got 0.5"),
    row("rmsprop-alpha-1", lambda: optim.RMSprop(params(), alpha=1.0),
        "RMSprop: alpha must be a finite number in [0, 1), got 1.0"),
    row("rmsprop-alpha-and-decay-rate", lambda: optim.RMSprop(params(), alpha=0.9,
                                                              decay_rate=0.9),
        "RMSprop: give alpha or decay_rate (the course's name for alpha), not both; got "
        "alpha=0.9, decay_rate=0.9"),
    row("rmsprop-momentum-negative", lambda: optim.RMSprop(params(), momentum=-0.5),
        "RMSprop: momentum must be a finite number in [0, 1), got -0.5"),
    row("rmsprop-centered-none", lambda: optim.RMSprop(params(), centered=None),
        "RMSprop: centered must be one of False, True, got None"),
    row("rmsprop-group-decay-rate", lambda: optim.RMSprop([{"params": params(),
                                                            "decay_rate": NAN}]),
        "RMSprop: decay_rate must be a finite number in [0, 1), got nan"),
    row("adagrad-lr-decay-negative", lambda: optim.Adagrad(params(), lr_decay=-1e-3),
        "Adagrad: lr_decay must be a finite number >= 0, got -0.001"),
    row("adagrad-initial-accumulator-nan",
        lambda: optim.Adagrad(params(), initial_accumulator_value=NAN),
        "Adagrad: initial_accumulator_value must be a finite number >= 0, got nan"),
    row("adagrad-positional-after-lr", lambda: optim.Adagrad(params(), 0.1, 0.01),
        "takes from 2 to 3 positional arguments but 4 were given", TypeError),
    # ---- schedules ----
    row("steplr-gamma-negative", lambda: optim.StepLR(sgd(), 2, gamma=-1),
        "StepLR: gamma must be a finite number > 0, got -1"),
    row("steplr-gamma-nan", lambda: optim.StepLR(sgd(), 2, gamma=NAN),
        "StepLR: gamma must be a finite number > 0, got nan"),
    row("steplr-step-size-float", lambda: optim.StepLR(sgd(), 2.0),
        "StepLR: step_size must be an integer >= 1, got 2.0"),
    row("steplr-step-size-zero", lambda: optim.StepLR(sgd(), 0),
        "StepLR: step_size must be an integer >= 1, got 0"),
    row("exponentiallr-gamma-nan", lambda: optim.ExponentialLR(sgd(), gamma=NAN),
        "ExponentialLR: gamma must be a finite number > 0, got nan"),
    row("exponentiallr-gamma-string", lambda: optim.ExponentialLR(sgd(), gamma="0.9"),
        "ExponentialLR: gamma must be a finite number > 0, got the string \"0.9\""),
    row("cosine-t-max-bool", lambda: optim.CosineAnnealingLR(sgd(), T_max=True),
        "CosineAnnealingLR: T_max must be an integer >= 1, got True"),
    row("cosine-eta-min-negative", lambda: optim.CosineAnnealingLR(sgd(), 5, eta_min=-1e-3),
        "CosineAnnealingLR: eta_min must be a finite number >= 0, got -0.001"),
    row("multisteplr-milestones-unsorted", lambda: optim.MultiStepLR(sgd(), [5, 2]),
        "MultiStepLR: milestones must be increasing, got [5, 2]"),
    row("multisteplr-milestone-float", lambda: optim.MultiStepLR(sgd(), [2, 5.5]),
        "MultiStepLR: milestones[1] must be an integer >= 1, got 5.5"),
    row("multisteplr-milestones-int", lambda: optim.MultiStepLR(sgd(), 3),
        "MultiStepLR: milestones must be a list of epochs, got 3"),
    row("multisteplr-gamma-zero", lambda: optim.MultiStepLR(sgd(), [2], gamma=0),
        "MultiStepLR: gamma must be a finite number > 0, got 0"),
    row("lambdalr-not-callable", lambda: optim.LambdaLR(sgd(), 0.5),
        "LambdaLR: lr_lambda must be a function of the epoch or a list of one per param "
        "group (1), got 0.5"),
    row("lambdalr-two-for-one-group", lambda: optim.LambdaLR(sgd(), [abs, abs]),
        "LambdaLR: lr_lambda must be a function of the epoch or a list of one per param group"),
    row("lambdalr-result-string", lambda: optim.LambdaLR(sgd(), lambda e: "1"),
        'LambdaLR: lr_lambda[0](0) must be a finite number >= 0, got the string "1"'),
    row("linearlr-start-zero", lambda: optim.LinearLR(sgd(), start_factor=0),
        "LinearLR: start_factor must be a finite number in (0, 1], got 0"),
    row("linearlr-end-above-one", lambda: optim.LinearLR(sgd(), end_factor=1.5),
        "LinearLR: end_factor must be a finite number in [0, 1], got 1.5"),
    row("linearlr-total-iters-zero", lambda: optim.LinearLR(sgd(), total_iters=0),
        "LinearLR: total_iters must be an integer >= 1, got 0"),
    row("onecycle-max-lr-zero", lambda: optim.OneCycleLR(sgd(), max_lr=0, total_steps=5),
        "OneCycleLR: max_lr must be a finite number > 0, got 0"),
    row("onecycle-max-lr-list", lambda: optim.OneCycleLR(sgd(), [0.1, 0.2], total_steps=5),
        "OneCycleLR: max_lr must be a tuple of 1 numbers, got [0.1, 0.2]"),
    row("onecycle-no-length", lambda: optim.OneCycleLR(sgd(), 0.1, epochs=3),
        "OneCycleLR: give total_steps, or epochs and steps_per_epoch; got total_steps=None, "
        "epochs=3, steps_per_epoch=None"),
    row("onecycle-total-float", lambda: optim.OneCycleLR(sgd(), 0.1, total_steps=10.0),
        "OneCycleLR: total_steps must be an integer >= 1, got 10.0"),
    row("onecycle-steps-per-epoch-zero",
        lambda: optim.OneCycleLR(sgd(), 0.1, epochs=2, steps_per_epoch=0),
        "OneCycleLR: steps_per_epoch must be an integer >= 1, got 0"),
    row("onecycle-pct-start", lambda: optim.OneCycleLR(sgd(), 0.1, 10, pct_start=1.5),
        "OneCycleLR: pct_start must be a finite number in [0, 1], got 1.5"),
    row("onecycle-anneal", lambda: optim.OneCycleLR(sgd(), 0.1, 10, anneal_strategy="cosine"),
        'OneCycleLR: anneal_strategy must be one of "cos", "linear", got the string "cosine"'),
    row("onecycle-momentum-1", lambda: optim.OneCycleLR(sgd(), 0.1, 10, max_momentum=1.0),
        "OneCycleLR: max_momentum must be a finite number in [0, 1), got 1.0"),
    row("onecycle-div-factor-zero", lambda: optim.OneCycleLR(sgd(), 0.1, 10, div_factor=0),
        "OneCycleLR: div_factor must be a finite number > 0, got 0"),
    row("onecycle-three-phase-string", lambda: optim.OneCycleLR(sgd(), 0.1, 10,
                                                                three_phase="no"),
        'OneCycleLR: three_phase must be one of False, True, got the string "no"'),
    row("onecycle-adagrad", lambda: optim.OneCycleLR(optim.Adagrad(params()), 0.1, 10),
        "OneCycleLR: cycle_momentum=True needs an optimizer with a momentum or betas (SGD, "
        "RMSprop, Adam, AdamW), got Adagrad; pass cycle_momentum=False"),
    row("plateau-mode", lambda: optim.ReduceLROnPlateau(sgd(), mode="minimum"),
        'ReduceLROnPlateau: mode must be one of "min", "max", got the string "minimum"'),
    row("plateau-factor-1", lambda: optim.ReduceLROnPlateau(sgd(), factor=1.0),
        "ReduceLROnPlateau: factor must be a finite number in [0, 1), got 1.0"),
    row("plateau-patience-negative", lambda: optim.ReduceLROnPlateau(sgd(), patience=-1),
        "ReduceLROnPlateau: patience must be an integer >= 0, got -1"),
    row("plateau-threshold-mode", lambda: optim.ReduceLROnPlateau(sgd(), threshold_mode="x"),
        'ReduceLROnPlateau: threshold_mode must be one of "rel", "abs", got the string "x"'),
    row("plateau-threshold-nan", lambda: optim.ReduceLROnPlateau(sgd(), threshold=NAN),
        "ReduceLROnPlateau: threshold must be a finite number >= 0, got nan"),
    row("plateau-cooldown-float", lambda: optim.ReduceLROnPlateau(sgd(), cooldown=1.5),
        "ReduceLROnPlateau: cooldown must be an integer >= 0, got 1.5"),
    row("plateau-min-lr-negative", lambda: optim.ReduceLROnPlateau(sgd(), min_lr=-1e-5),
        "ReduceLROnPlateau: min_lr must be a finite number >= 0, got -1e-05"),
    row("plateau-min-lrs-count", lambda: optim.ReduceLROnPlateau(sgd(), min_lr=[0, 0]),
        "ReduceLROnPlateau: min_lr must be a tuple of 1 numbers, got [0, 0]"),
    row("plateau-metric-none", lambda: optim.ReduceLROnPlateau(sgd()).step(None),
        "ReduceLROnPlateau.step: metrics must be a finite number, got None"),
    row("plateau-metric-array", lambda: optim.ReduceLROnPlateau(sgd()).step(np.zeros(2)),
        "ReduceLROnPlateau.step: metrics must be a finite number, got array([0., 0.])"),
    row("sequential-empty", lambda: optim.SequentialLR(sgd(), [], []),
        "SequentialLR: schedulers must be a non-empty list of schedulers, got []"),
    row("sequential-plateau", lambda: (lambda o: optim.SequentialLR(
        o, [optim.ReduceLROnPlateau(o)], []))(sgd()),
        "SequentialLR: schedulers[0] must be a scheduler other than ReduceLROnPlateau"),
    row("sequential-other-optimizer", lambda: (lambda o: optim.SequentialLR(
        o, [optim.StepLR(sgd(), 2)], []))(sgd()),
        "SequentialLR: schedulers[0] (StepLR) drives another optimizer"),
    row("sequential-milestones-count", lambda: (lambda o: optim.SequentialLR(
        o, [optim.LinearLR(o), optim.StepLR(o, 2)], [3, 6]))(sgd()),
        "SequentialLR: milestones must list 1 epochs (one fewer than the schedulers), "
        "got [3, 6]"),
    row("sequential-milestone-zero", lambda: (lambda o: optim.SequentialLR(
        o, [optim.LinearLR(o), optim.StepLR(o, 2)], [0]))(sgd()),
        "SequentialLR: milestones[0] must be an integer >= 1, got 0"),
    # ---- nn.utils ----
    row("clip-grad-norm-max-norm-negative", lambda: nn.utils.clip_grad_norm_(params(), -1.0),
        "clip_grad_norm_: max_norm must be a finite number >= 0, got -1.0 (or inf, which "
        "never clips)"),
    row("clip-grad-norm-max-norm-nan", lambda: nn.utils.clip_grad_norm_(params(), NAN),
        "clip_grad_norm_: max_norm must be a finite number >= 0, got nan"),
    row("clip-grad-norm-norm-type-zero", lambda: nn.utils.clip_grad_norm_(params(), 1.0, 0),
        "clip_grad_norm_: norm_type must be a finite number > 0, got 0 (or inf, the largest "
        "|g|)"),
    row("clip-grad-norm-norm-type-string",
        lambda: nn.utils.clip_grad_norm_(params(), 1.0, norm_type="2"),
        'clip_grad_norm_: norm_type must be a finite number > 0, got the string "2"'),
    row("clip-grad-norm-error-flag",
        lambda: nn.utils.clip_grad_norm_(params(), 1.0, error_if_nonfinite="no"),
        'clip_grad_norm_: error_if_nonfinite must be one of False, True, got the string "no"'),
    row("clip-grad-norm-not-params", lambda: nn.utils.clip_grad_norm_(3.0, 1.0),
        "clip_grad_norm_: parameters must be a Tensor or an iterable of Tensors, got float"),
    row("clip-grad-norm-ndarray-param", lambda: nn.utils.clip_grad_norm_([np.zeros(3)], 1.0),
        "clip_grad_norm_: parameters[0] must be a Tensor, got ndarray"),
    row("clip-grad-value-negative", lambda: nn.utils.clip_grad_value_(params(), -0.5),
        "clip_grad_value_: clip_value must be a finite number >= 0, got -0.5"),
    row("clip-grad-value-string", lambda: nn.utils.clip_grad_value_(params(), "1"),
        'clip_grad_value_: clip_value must be a finite number >= 0, got the string "1"'),
    row("parameters-to-vector-empty", lambda: nn.utils.parameters_to_vector([]),
        "parameters_to_vector: parameters is empty"),
    row("vector-to-parameters-list", lambda: nn.utils.vector_to_parameters([1.0] * 3, params()),
        "vector_to_parameters: vec must be a Tensor or an ndarray, got list"),
    row("vector-to-parameters-size", lambda: nn.utils.vector_to_parameters(np.zeros(4),
                                                                           params()),
        "vector_to_parameters: vec must have shape (3,), the parameters' total size, got (4,)"),
    # ---- Modules ----
    row("linear-float", lambda: nn.Linear(2.5, 2),
        "Linear: in_features must be an integer >= 1, got 2.5"),
    row("linear-bool", lambda: nn.Linear(True, 2),
        "Linear: in_features must be an integer >= 1, got True"),
    row("linear-out-zero", lambda: nn.Linear(2, 0),
        "Linear: out_features must be an integer >= 1, got 0"),
    row("linear-string", lambda: nn.Linear("3", 2),
        "Linear: in_features must be an integer >= 1, got the string \"3\""),
    row("linear-none", lambda: nn.Linear(3, None),
        "Linear: out_features must be an integer >= 1, got None"),
    row("linear-float-whole", lambda: nn.Linear(3.0, 2),
        "Linear: in_features must be an integer >= 1, got 3.0"),
    row("conv2d-in-float", lambda: nn.Conv2d(2.7, 3, 3),
        "Conv2d: in_channels must be an integer >= 1, got 2.7"),
    row("conv2d-out-zero", lambda: nn.Conv2d(2, 0, 3),
        "Conv2d: out_channels must be an integer >= 1, got 0"),
    row("conv2d-kernel-float", lambda: nn.Conv2d(2, 3, 2.5),
        "Conv2d: kernel_size must be an int or a pair of ints, got 2.5"),
    row("conv2d-stride-bool", lambda: nn.Conv2d(2, 3, 3, stride=True),
        "Conv2d: stride must be an int or a pair of ints, got True"),
    row("conv2d-padding-negative", lambda: nn.Conv2d(2, 3, 3, padding=-1),
        "Conv2d: padding must be >= 0, got -1"),
    row("maxpool-kernel-zero", lambda: nn.MaxPool2d(0),
        "MaxPool2d: kernel_size must be >= 1, got 0"),
    row("batchnorm1d-float", lambda: nn.BatchNorm1d(3.9),
        "BatchNorm1d: num_features must be an integer >= 1, got 3.9"),
    row("batchnorm2d-zero", lambda: nn.BatchNorm2d(0),
        "BatchNorm2d: num_features must be an integer >= 1, got 0"),
    row("batchnorm-eps-zero", lambda: nn.BatchNorm1d(3, eps=0),
        "BatchNorm1d: eps must be a finite number > 0, got 0"),
    row("batchnorm-momentum", lambda: nn.BatchNorm2d(3, momentum=1.5),
        "BatchNorm2d: momentum must be a finite number in [0, 1], got 1.5"),
    row("batchnorm-momentum-string", lambda: nn.BatchNorm1d(3, momentum="0.9"),
        "BatchNorm1d: momentum must be a finite number in [0, 1], got the string \"0.9\""),
    row("layernorm-bool", lambda: nn.LayerNorm(False),
        "LayerNorm: normalized_shape must be an int or a non-empty tuple of ints, got False"),
    row("layernorm-eps-negative", lambda: nn.LayerNorm(4, eps=-1e-5),
        "LayerNorm: eps must be a finite number > 0, got -1e-05"),
    row("dropout-p-2", lambda: nn.Dropout(2),
        "Dropout: p must be a finite number in [0, 1], got 2 (the probability of zeroing"),
    row("dropout-p-string", lambda: nn.Dropout("0.5"),
        "Dropout: p must be a finite number in [0, 1], got the string \"0.5\""),
    row("dropout-p-nan", lambda: nn.Dropout(NAN),
        "Dropout: p must be a finite number in [0, 1], got nan"),
    row("dropout-seed-negative", lambda: nn.Dropout(0.5, seed=-1),
        "Dropout: seed must be an integer in [0, 2**32), got -1"),
    row("dropout-seed-float", lambda: nn.Dropout(0.5, seed=1.5),
        "Dropout: seed must be an integer in [0, 2**32), got 1.5"),
    row("leakyrelu-slope-string", lambda: nn.LeakyReLU("0.01"),
        "LeakyReLU: negative_slope must be a finite number, got the string \"0.01\""),
    row("leakyrelu-slope-nan", lambda: nn.LeakyReLU(NAN),
        "LeakyReLU: negative_slope must be a finite number, got nan"),
    # ---- course models ----
    row("fcnet-hidden-zero", lambda: FullyConnectedNet([0]),
        "FullyConnectedNet: hidden_dims[0] must be an integer >= 1, got 0"),
    row("fcnet-hidden-float", lambda: FullyConnectedNet([100, 50.5]),
        "FullyConnectedNet: hidden_dims[1] must be an integer >= 1, got 50.5"),
    row("fcnet-hidden-int", lambda: FullyConnectedNet(100),
        "FullyConnectedNet: hidden_dims must be a list of sizes, got 100"),
    row("fcnet-input-dim", lambda: FullyConnectedNet([5], input_dim=0),
        "FullyConnectedNet: input_dim must be an integer >= 1, got 0"),
    row("fcnet-num-classes", lambda: FullyConnectedNet([5], num_classes=True),
        "FullyConnectedNet: num_classes must be an integer >= 1, got True"),
    row("fcnet-keep-zero", lambda: FullyConnectedNet([5], dropout_keep_ratio=0),
        "FullyConnectedNet: dropout_keep_ratio must be a finite number in (0, 1], got 0"),
    row("fcnet-keep-string", lambda: FullyConnectedNet([5], dropout_keep_ratio="0.5"),
        "dropout_keep_ratio must be a finite number in (0, 1], got the string \"0.5\""),
    row("fcnet-normalization", lambda: FullyConnectedNet([5], normalization="groupnorm"),
        'FullyConnectedNet: normalization must be one of None, "batchnorm", "layernorm", '
        'got the string "groupnorm"'),
    row("fcnet-reg-negative", lambda: FullyConnectedNet([5], reg=-0.1),
        "FullyConnectedNet: reg must be a finite number >= 0, got -0.1"),
    row("fcnet-weight-scale-nan", lambda: FullyConnectedNet([5], weight_scale=NAN),
        "FullyConnectedNet: weight_scale must be a finite number >= 0, got nan"),
    row("fcnet-seed", lambda: FullyConnectedNet([5], dropout_keep_ratio=0.5, seed="1"),
        "FullyConnectedNet: seed must be an integer in [0, 2**32), got the string \"1\""),
    row("convnet-filter-zero", lambda: ThreeLayerConvNet(filter_size=0),
        "ThreeLayerConvNet: filter_size must be an integer >= 1, got 0"),
    row("convnet-filters-float", lambda: ThreeLayerConvNet(num_filters=8.0),
        "ThreeLayerConvNet: num_filters must be an integer >= 1, got 8.0"),
    row("convnet-hidden-negative", lambda: ThreeLayerConvNet(hidden_dim=-1),
        "ThreeLayerConvNet: hidden_dim must be an integer >= 1, got -1"),
    row("convnet-input-dim-pair", lambda: ThreeLayerConvNet(input_dim=(32, 32)),
        "ThreeLayerConvNet: input_dim must be a (C, H, W) triple of sizes, got (32, 32)"),
    row("convnet-input-dim-zero", lambda: ThreeLayerConvNet(input_dim=(0, 8, 8)),
        "ThreeLayerConvNet: input_dim[0] must be an integer >= 1, got 0"),
    row("convnet-reg-string", lambda: ThreeLayerConvNet(reg="0.001"),
        "ThreeLayerConvNet: reg must be a finite number >= 0, got the string \"0.001\""),
    row("twolayernet-hidden-float", lambda: TwoLayerNet(hidden_dim=10.5),
        "TwoLayerNet: hidden_dim must be an integer >= 1, got 10.5"),
    row("twolayernet-weight-scale", lambda: TwoLayerNet(weight_scale=-1e-3),
        "TwoLayerNet: weight_scale must be a finite number >= 0, got -0.001"),
    row("twolayernet-labels", lambda: TwoLayerNet(4, 5, 3).loss(np.zeros((2, 4)),
                                                               np.array([0, 3])),
        "TwoLayerNet.loss: labels y must lie in [0, 3) for scores (2, 3), got values "
        "from 0 to 3"),
    row("fcnet-labels-bool", lambda: FullyConnectedNet([5], input_dim=4, num_classes=3)
        .loss(np.zeros((2, 4)), np.array([True, False])),
        "FullyConnectedNet.loss: labels y must be an integer array, got dtype bool"),
    row("init-two-layer-model", lambda: init_two_layer_model(4, 0, 3),
        "init_two_layer_model: hidden_size must be an integer >= 1, got 0"),
    row("two-layer-net-reg", lambda: two_layer_net(np.zeros((2, 4)),
                                                   init_two_layer_model(4, 5, 3),
                                                   np.array([0, 1]), reg=-1),
        "two_layer_net: reg must be a finite number >= 0, got -1"),
    # ---- nn.functional ----
    row("softmax-ce-labels-range", lambda: F.softmax_cross_entropy(np.zeros((2, 3)), [0, 3]),
        "softmax_cross_entropy: labels y must lie in [0, 3) for scores (2, 3)"),
    row("svm-labels-shape", lambda: F.svm_loss(np.zeros((2, 3)), np.array([0, 1, 2])),
        "svm_loss: labels y must have shape (2,) for scores (2, 3), got (3,)"),
    row("svm-labels-float", lambda: F.svm_loss(np.zeros((2, 3)), np.array([0.0, 1.0])),
        "svm_loss: labels y must be an integer array, got dtype float64"),
    row("softmax-ce-empty-labels-shape",
        lambda: F.softmax_cross_entropy(np.zeros((0, 3)), np.zeros(1, int)),
        "softmax_cross_entropy: labels y must have shape (0,)"),
    row("dropout-p-string-F", lambda: F.dropout(np.ones(3), "0.5"),
        "dropout: p must be a finite number in [0, 1], got the string \"0.5\""),
    row("dropout-seed-F", lambda: F.dropout(np.ones(3), 0.5, seed=2**32),
        "dropout: seed must be an integer in [0, 2**32), got 4294967296"),
    row("leaky-relu-slope-F", lambda: F.leaky_relu(np.ones(3), INF),
        "leaky_relu: negative_slope must be a finite number, got inf"),
    row("layer-norm-eps-F", lambda: F.layer_norm(np.ones((2, 3)), np.ones(3), np.zeros(3),
                                                 eps="1e-5"),
        "layer_norm: eps must be a finite number > 0, got the string \"1e-5\""),
    row("batch-norm-momentum-F", lambda: F.batch_norm(np.ones((4, 3)), np.ones(3),
                                                      np.zeros(3), momentum="0.9"),
        "batch_norm: momentum must be a finite number in [0, 1], got the string \"0.9\""),
    row("batch-norm-eps-F", lambda: F.batch_norm(np.ones((4, 3)), np.ones(3), np.zeros(3),
                                                 eps=0),
        "batch_norm: eps must be a finite number > 0, got 0"),
    # ---- the course layer API (nn.layers) ----
    row("conv-fast-param-none", lambda: layers.conv_forward_fast(X4, W3, B2, None),
        "conv_forward_fast: conv_param must be a dict with keys ['stride', 'pad'], got None"),
    row("conv-fast-param-missing", lambda: layers.conv_forward_fast(X4, W3, B2, {"stride": 1}),
        "conv_forward_fast: conv_param is missing ['pad']"),
    row("conv-naive-param-none", lambda: layers.conv_forward_naive(X4, W3, B2, None),
        "conv_forward_naive: conv_param must be a dict with keys ['stride', 'pad'], got None"),
    row("conv-relu-param-none", lambda: layers.conv_relu_forward(X4, W3, B2, None),
        "conv_relu_forward: conv_param must be a dict"),
    row("conv-relu-pool-pool-none",
        lambda: layers.conv_relu_pool_forward(X4, W3, B2, CONV, None),
        "conv_relu_pool_forward: pool_param must be a dict with keys ['pool_height', "
        "'pool_width', 'stride'], got None"),
    row("conv-fast-stride-float", lambda: layers.conv_forward_fast(X4, W3, B2,
                                                                   {"stride": 1.0, "pad": 1}),
        "conv: stride must be an int, got 1.0"),
    row("pool-fast-param-none", lambda: layers.max_pool_forward_fast(X4, None),
        "max_pool_forward_fast: pool_param must be a dict"),
    row("pool-naive-param-missing",
        lambda: layers.max_pool_forward_naive(X4, {"pool_height": 2, "stride": 2}),
        "max_pool_forward_naive: pool_param is missing ['pool_width']"),
    row("batchnorm-param-none", lambda: layers.batchnorm_forward(np.ones((4, 3)), np.ones(3),
                                                                 np.zeros(3), None),
        "batchnorm_forward: bn_param must be a dict, got None"),
    row("batchnorm-param-mode", lambda: layers.batchnorm_forward(
        np.ones((4, 3)), np.ones(3), np.zeros(3), {"mode": "eval"}),
        'batchnorm_forward: bn_param[\'mode\'] must be one of "train", "test", got the string '
        '"eval"'),
    row("batchnorm-param-eps", lambda: layers.batchnorm_forward(
        np.ones((4, 3)), np.ones(3), np.zeros(3), {"mode": "train", "eps": -1}),
        "batchnorm_forward: bn_param['eps'] must be a finite number > 0, got -1"),
    row("batchnorm-param-momentum", lambda: layers.batchnorm_forward(
        np.ones((4, 3)), np.ones(3), np.zeros(3), {"mode": "train", "momentum": NAN}),
        "batchnorm_forward: bn_param['momentum'] must be a finite number in [0, 1], got nan"),
    row("spatial-batchnorm-param-none", lambda: layers.spatial_batchnorm_forward(
        X4, np.ones(3), np.zeros(3), None),
        "spatial_batchnorm_forward: bn_param must be a dict, got None"),
    row("layernorm-param-none", lambda: layers.layernorm_forward(np.ones((2, 3)), np.ones(3),
                                                                 np.zeros(3), None),
        "layernorm_forward: ln_param must be a dict, got None"),
    row("dropout-param-missing", lambda: layers.dropout_forward(np.ones(3), {"p": 0.5}),
        "dropout_forward: dropout_param is missing ['mode']"),
    row("dropout-param-p", lambda: layers.dropout_forward(np.ones(3), {"p": 1.5,
                                                                       "mode": "train"}),
        "dropout_forward: dropout_param['p'] must be a finite number in [0, 1], got 1.5 "
        "(the keep probability)"),
    row("dropout-param-mode", lambda: layers.dropout_forward(np.ones(3), {"p": 0.5,
                                                                          "mode": "eval"}),
        "dropout_forward: dropout_param['mode'] must be one of \"train\", \"test\""),
    # ---- the command line (train and demo flags) ----
    row("cli-train-lr-nan", lambda: cli("train", "--lr", "nan"),
        "exit 2: ", SystemExit),
    row("cli-train-lr-nan-message", lambda: cli("train", "--lr", "nan"),
        "argument --lr: must be a finite number >= 0, got nan", SystemExit),
    row("cli-train-lr-negative", lambda: cli("train", "--lr", "-0.1"),
        "argument --lr: must be a finite number >= 0, got -0.1", SystemExit),
    row("cli-train-lr-text", lambda: cli("train", "--lr", "fast"),
        "argument --lr: must be a finite number >= 0, got the string \"fast\"", SystemExit),
    row("cli-train-epochs-zero", lambda: cli("train", "--epochs", "0"),
        "argument --epochs: must be an integer >= 1, got 0", SystemExit),
    row("cli-train-epochs-float", lambda: cli("train", "--epochs", "2.5"),
        "argument --epochs: must be an integer >= 1, got 2.5", SystemExit),
    row("cli-train-batch-size", lambda: cli("train", "--batch-size", "-50"),
        "argument --batch-size: must be an integer >= 1, got -50", SystemExit),
    row("cli-train-num-training", lambda: cli("train", "--num-training", "0"),
        "argument --num-training: must be an integer >= 1, got 0", SystemExit),
    row("cli-train-seed-negative", lambda: cli("train", "--seed", "-1"),
        "argument --seed: must be an integer in [0, 2**32), got -1", SystemExit),
    row("cli-train-seed-huge", lambda: cli("train", "--seed", str(2**32)),
        "argument --seed: must be an integer in [0, 2**32), got 4294967296", SystemExit),
    row("cli-train-model", lambda: cli("train", "--model", "rnn"),
        "argument --model: invalid choice: 'rnn'", SystemExit),
    row("cli-demo-reg-negative", lambda: cli("demo", "--reg=-1e-3"),
        "argument --reg: must be a finite number >= 0, got -0.001", SystemExit),
    row("cli-demo-reg-inf", lambda: cli("demo", "--reg", "inf"),
        "argument --reg: must be a finite number >= 0, got inf", SystemExit),
    row("cli-demo-lr-inf", lambda: cli("demo", "--lr", "inf"),
        "argument --lr: must be a finite number >= 0, got inf", SystemExit),
    row("cli-demo-epochs-text", lambda: cli("demo", "--epochs", "ten"),
        "argument --epochs: must be an integer >= 1, got the string \"ten\"", SystemExit),
    row("cli-demo-batch-size-zero", lambda: cli("demo", "--batch-size", "0"),
        "argument --batch-size: must be an integer >= 1, got 0", SystemExit),
    row("cli-demo-seed-float", lambda: cli("demo", "--seed", "0.5"),
        "argument --seed: must be an integer in [0, 2**32), got 0.5", SystemExit),
]


@pytest.mark.parametrize("call, exc, fragment", ROWS)
def test_bad_argument_is_refused_at_the_call(call, exc, fragment):
    with pytest.raises(exc) as info:
        call()
    assert fragment in str(info.value), f"{fragment!r} not in {str(info.value)!r}"


def test_the_table_covers_the_public_api():
    """At least 120 rows, and a row for each part the rules apply to."""
    assert len(ROWS) >= 120
    ids = " ".join(r.id for r in ROWS)
    for part in ("solver", "trainer", "adam", "sgd", "rmsprop", "adagrad", "steplr",
                 "exponentiallr", "cosine", "linear", "conv2d", "maxpool", "batchnorm",
                 "layernorm", "dropout", "leakyrelu", "fcnet", "convnet", "twolayernet",
                 "conv-fast", "conv-naive", "pool", "cli-train", "cli-demo"):
        assert part in ids, part


# ---- boundary values stay valid, and behave as before ------------------------------------------
GOOD = [
    pytest.param(lambda: optim.SGD(params(), lr=0), id="sgd-lr-zero"),
    pytest.param(lambda: optim.SGD(params(), lr=np.float32(0.1), momentum=0), id="sgd-np-lr"),
    pytest.param(lambda: optim.Adam(params(), betas=[0.0, np.float64(0.5)]), id="adam-betas"),
    pytest.param(lambda: optim.RMSprop(params(), decay_rate=0), id="rmsprop-decay-zero"),
    pytest.param(lambda: optim.StepLR(sgd(), np.int64(3), gamma=2), id="steplr-np-int"),
    pytest.param(lambda: optim.CosineAnnealingLR(sgd(), 1, eta_min=0), id="cosine"),
    pytest.param(lambda: optim.AdamW(params(), weight_decay=0, amsgrad=np.bool_(True)),
                 id="adamw-np-bool"),
    pytest.param(lambda: optim.SGD(params(), momentum=0.5, dampening=1), id="sgd-dampening-one"),
    pytest.param(lambda: optim.RMSprop(params(), alpha=0, momentum=0, centered=True),
                 id="rmsprop-alpha-zero"),
    pytest.param(lambda: optim.Adagrad(params(), lr_decay=0, initial_accumulator_value=0),
                 id="adagrad-zeros"),
    pytest.param(lambda: optim.MultiStepLR(sgd(), range(1, 4)), id="multisteplr-range"),
    pytest.param(lambda: optim.OneCycleLR(sgd(), np.float64(0.1), epochs=np.int64(2),
                                          steps_per_epoch=1, pct_start=0, max_momentum=0,
                                          base_momentum=0), id="onecycle-np"),
    pytest.param(lambda: optim.ReduceLROnPlateau(sgd(), factor=0, patience=0, min_lr=[0],
                                                 eps=0).step(np.float32(NAN)),
                 id="plateau-zeros-nan-metric"),
    pytest.param(lambda: nn.utils.clip_grad_norm_(params(), INF, norm_type=INF),
                 id="clip-grad-norm-inf"),
    pytest.param(lambda: nn.utils.clip_grad_value_(params(), 0), id="clip-grad-value-zero"),
    pytest.param(lambda: nn.Linear(np.int64(3), 2), id="linear-np-int"),
    pytest.param(lambda: nn.Conv2d(1, 1, (1, 3), stride=np.int32(2)), id="conv2d"),
    pytest.param(lambda: nn.Dropout(0), id="dropout-p-zero"),
    pytest.param(lambda: nn.Dropout(1, seed=2**32 - 1), id="dropout-p-one"),
    pytest.param(lambda: nn.BatchNorm1d(1, momentum=0), id="batchnorm-momentum-zero"),
    pytest.param(lambda: FullyConnectedNet([], input_dim=4, num_classes=2), id="fcnet-no-hidden"),
    pytest.param(lambda: FullyConnectedNet(np.array([3, 2]), input_dim=4,
                                           dropout_keep_ratio=1, weight_scale=0), id="fcnet-np"),
    pytest.param(lambda: ThreeLayerConvNet(input_dim=[1, 4, 4], num_filters=2, filter_size=1,
                                           hidden_dim=3), id="convnet-list-input"),
    pytest.param(lambda: solver(optim_config={}, lr_decay=1.5, num_epochs=0,
                                num_val_samples=None), id="solver-no-config"),
    pytest.param(lambda: solver(update_rule="adam", optim_config={
        "learning_rate": np.float64(1e-3), "beta1": 0, "beta2": 0.5, "epsilon": 1e-12}),
        id="solver-adam-config"),
    pytest.param(lambda: solver(update_rule=lambda w, dw, c=None: (w, c),
                                optim_config={"anything": "goes"}), id="solver-custom-rule"),
    pytest.param(lambda: trainer(momentum=0, learning_rate=0, reg=0, acc_frequency=None),
                 id="trainer-zeros"),
]


@pytest.mark.parametrize("call", GOOD)
def test_boundary_values_are_accepted(call):
    call()


def test_validate_returns_the_value_unchanged_or_as_an_int():
    lr = np.float32(0.5)
    assert validate.number("f", "lr", lr, ">= 0") is lr
    assert validate.size("f", "n", np.int64(4)) == 4 and type(validate.size("f", "n", 4)) is int
    assert validate.seed("f", "seed", None) is None


# ---- what used to fail late now works or fails clearly ----------------------------------------
@pytest.mark.parametrize("loss", [F.softmax_cross_entropy, F.svm_loss])
def test_empty_batch_loss_is_nan_with_an_empty_gradient(loss):
    """N = 0: nan (PyTorch's mean over no samples), not a ZeroDivisionError."""
    scores = at.Tensor(np.zeros((0, 3)), requires_grad=True)
    out = loss(scores, np.zeros(0, dtype=int))
    assert np.isnan(out.item())
    out.backward()
    assert scores.grad.shape == (0, 3)


@pytest.mark.parametrize("loss", [layers.softmax_loss, layers.svm_loss])
def test_empty_batch_course_loss_is_nan(loss):
    value, dx = loss(np.zeros((0, 4)), np.zeros(0, dtype=int))
    assert np.isnan(value) and dx.shape == (0, 4)


def test_empty_batch_cross_entropy_matches_torch(torch):
    ours = F.softmax_cross_entropy(np.zeros((0, 5)), np.zeros(0, dtype=int)).item()
    theirs = torch.nn.functional.cross_entropy(torch.zeros(0, 5),
                                               torch.zeros(0, dtype=torch.long)).item()
    assert np.isnan(ours) and np.isnan(theirs)


def test_batch_norm_of_integer_input_is_computed_in_float64():
    x = np.array([[1, 2], [3, 5], [0, 7]])
    gamma, beta = np.ones(2), np.zeros(2)
    out = F.batch_norm(x, gamma, beta)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out.data, F.batch_norm(x.astype(float), gamma, beta).data)
    running_mean, running_var = np.zeros(2), np.ones(2)
    F.batch_norm(x, gamma, beta, running_mean, running_var)
    np.testing.assert_allclose(running_mean, 0.1 * x.mean(axis=0))


def test_a_refused_optimizer_group_is_not_added():
    opt = sgd()
    with pytest.raises(ValueError, match="lr"):
        opt.add_param_group({"params": params(), "lr": NAN})
    assert len(opt.param_groups) == 1
