"""at.detect_anomaly(): the first nan/inf of a forward output or a backward gradient raises,
naming the op, the module path (the root module's own ops included) and the source line."""

from __future__ import annotations

import numpy as np
import pytest

import autotensor as at
from autotensor import nn

pytestmark = pytest.mark.filterwarnings("ignore:invalid value", "ignore:divide by zero")


def line_of(snippet):
    """'test_anomaly.py:N' of the line of this file holding `snippet`."""
    lines = open(__file__).read().splitlines()
    return f"test_anomaly.py:{next(i for i, t in enumerate(lines, 1) if snippet in t)}"


class Inner(nn.Module):
    def forward(self, x):
        return (x - 10.0).log()          # nan for x < 10


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.block = Inner()

    def forward(self, x):
        return self.block(self.fc(x))


class RootLog(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        h = self.fc(x)
        return (h - 100.0).sqrt()        # the root module's own op


def test_forward_anomaly_names_op_module_and_line():
    x = at.Tensor(np.ones((2, 3)))
    with at.detect_anomaly(), pytest.raises(FloatingPointError) as err:
        Outer()(x)
    msg = str(err.value)
    assert "forward output of Log" in msg
    assert "module 'block' (Inner)" in msg
    assert line_of("(x - 10.0).log()") in msg


def test_forward_anomaly_in_the_root_modules_own_forward():
    with at.detect_anomaly(), pytest.raises(FloatingPointError) as err:
        RootLog()(at.Tensor(np.ones((2, 3))))
    msg = str(err.value)
    assert "Sqrt" in msg and "root module's own forward (RootLog)" in msg
    assert line_of("(h - 100.0).sqrt()") in msg


def test_forward_anomaly_outside_modules_and_without_grad():
    x = at.Tensor(np.array([-1.0, 1.0]))
    with at.detect_anomaly(), pytest.raises(FloatingPointError, match=r"Log.*outside any "
                                                                     r"module.*test_anomaly"):
        x.log()


def test_backward_anomaly_names_op_module_and_line():
    x = at.Tensor(np.array([0.0, 1.0]), requires_grad=True)

    class Root(nn.Module):
        def forward(self, x):
            return x.sqrt()              # finite forward, infinite gradient at 0

    with at.detect_anomaly():
        y = Root()(x).sum()
        with pytest.raises(FloatingPointError) as err:
            y.backward()
    msg = str(err.value)
    assert "gradient produced by the backward of Sqrt" in msg
    assert "root module's own forward (Root)" in msg and line_of("return x.sqrt()") in msg


def test_outside_the_mode_nothing_is_checked_or_captured():
    x = at.Tensor(np.array([-1.0]), requires_grad=True)
    y = x.log()                          # nan, no error
    assert np.isnan(y.data[0]) and y._node.trace is None


def test_the_mode_is_restored_after_an_error():
    with pytest.raises(FloatingPointError), at.detect_anomaly():
        at.Tensor(np.array([-1.0])).log()
    at.Tensor(np.array([-1.0])).log()   # no longer checked
