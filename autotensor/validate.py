"""Argument checks shared by every part of autotensor: one home, imported by each caller.

The Solver, ClassifierTrainer, the optimizers and schedules, the nn Modules and models, the
course layers and the command line check their arguments here, when they are called, and
never re-derive a rule next to its use. Each check takes the caller's name (`owner`), the
argument's name and its value; it returns the value (a size as a Python int) or raises a
ValueError naming all three:

    Adam: lr must be a finite number >= 0, got nan

The rules (docs/reliability.md): a size is an integer as `operator.index` sees it, so 2.5,
"3" and True are refused, with a minimum (1 where zero makes no sense); a real number is
finite, in a stated range, and neither a bool nor a string; a course parameter dict is a dict
holding its required keys; a config dict holds only the keys its consumer reads.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from numbers import Integral, Real

import numpy as np

# The ranges a number may be asked to lie in: the text the error message shows, beside the
# test that decides it (v is already known to be a finite real number).
RANGES = {
    "": lambda v: True,
    ">= 0": lambda v: v >= 0,
    "> 0": lambda v: v > 0,
    "in [0, 1]": lambda v: 0 <= v <= 1,
    "in [0, 1)": lambda v: 0 <= v < 1,
    "in (0, 1]": lambda v: 0 < v <= 1,
}

# Appended to every learning-rate refusal: it says what 0 means, and keeps the wording the
# optimizers documented before this module ("learning rate must be >= 0").
_LR_HINT = "a learning rate must be >= 0: 0 leaves the weights unchanged"


def is_int(v):
    """True for a Python or numpy integer; False for bools and everything else.

    NOTE: bool is an int subclass, but stride=True is a bug, not a stride of 1.
    """
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_bool(v):
    return isinstance(v, (bool, np.bool_))


def _show(v):
    """The value as an error message shows it: strings quoted and called strings (a number
    given as text is the usual mistake), numpy scalars as plain numbers."""
    if isinstance(v, str):
        return f'the string "{v}"'
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        return str(v)
    if isinstance(v, (int, float, bool, tuple, list)) or v is None:
        return repr(v)
    text = repr(v)
    return (text if len(text) <= 60 else text[:57] + "...") + f" ({type(v).__name__})"


def _fail(owner, name, rule, v, hint=None):
    """The one message format: "{owner}: {name} must be {rule}, got {value}"."""
    head = "".join(s for s in (f"{owner}: " if owner else "", f"{name} " if name else ""))
    tail = f" ({hint})" if hint else ""
    raise ValueError(f"{head}must be {rule}, got {_show(v)}{tail}")


# ---- scalars -----------------------------------------------------------------------------------
def _as_index(value):
    """`value` as a Python int, or None when it is not an integer.

    `operator.index` decides: numpy integers pass, floats (2.5, even 3.0), strings and None do
    not. NOTE: bools are refused too: True is an int to Python, but Linear(True, 2) is a bug.
    """
    if _is_bool(value):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def size(owner, name, value, minimum=1):
    """`value` as a Python int >= `minimum` (see `_as_index` for what an integer is)."""
    n = _as_index(value)
    if n is None or n < minimum:
        _fail(owner, name, f"an integer >= {minimum}", value)
    return n


def optional_size(owner, name, value, minimum=1):
    """None, or `value` as a size (see `size`)."""
    return None if value is None else size(owner, name, value, minimum)


def seed(owner, name, value):
    """None, or a seed numpy's RandomState accepts: an integer in [0, 2**32)."""
    if value is None:
        return None
    n = _as_index(value)
    if n is None or not 0 <= n < 2**32:
        _fail(owner, name, "an integer in [0, 2**32)", value)
    return n


def number(owner, name, value, within="", hint=None):
    """`value`, unchanged, once it is a finite real number in the range `within` (a key of
    RANGES). Bools, strings, None and arrays are refused: `lr='0.1'` fails here, at the call,
    not after an epoch of training."""
    real = isinstance(value, Real) and not _is_bool(value)
    # NOTE: an int is always finite (and math.isfinite overflows on a huge one).
    if not (real and (isinstance(value, Integral) or math.isfinite(value))
            and RANGES[within](value)):
        _fail(owner, name, "a finite number" + (f" {within}" if within else ""), value, hint)
    return value


def learning_rate(owner, name, value):
    """A learning rate: a finite number >= 0."""
    return number(owner, name, value, ">= 0", hint=_LR_HINT)


def probability(owner, name, value, meaning="a probability"):
    """A probability: a finite number in [0, 1]; `meaning` says which one in the message."""
    return number(owner, name, value, "in [0, 1]", hint=meaning)


def numbers(owner, name, values, count, within=""):
    """A tuple of `count` numbers, each checked by `number` (named `name[i]`)."""
    if not isinstance(values, (tuple, list)) or len(values) != count:
        _fail(owner, name, f"a tuple of {count} numbers", values)
    return tuple(number(owner, f"{name}[{i}]", v, within) for i, v in enumerate(values))


def choice(owner, name, value, options):
    """`value` once it is one of `options`."""
    if not any(value is o or (isinstance(value, type(o)) and value == o) for o in options):
        _fail(owner, name, "one of " + ", ".join(_quote(o) for o in options), value)
    return value


def _quote(o):
    return f'"{o}"' if isinstance(o, str) else repr(o)


# ---- dicts -------------------------------------------------------------------------------------
def param_dict(owner, name, value, required=()):
    """A course parameter dict (conv_param, bn_param, ...): a dict holding every `required` key."""
    if not isinstance(value, Mapping):
        keys = f" with keys {list(required)}" if required else ""
        _fail(owner, name, f"a dict{keys}", value)
    missing = [k for k in required if k not in value]
    if missing:
        raise ValueError(f"{owner}: {name} is missing {missing}; it needs {list(required)}, "
                         f"got keys {list(value)}")
    return value


def config(owner, name, value, known):
    """A dict of hyperparameters: every key one of `known` ({key: range, as for `number`}),
    every value a finite number in its key's range (a learning_rate as `learning_rate`)."""
    if not isinstance(value, Mapping):
        _fail(owner, name, "a dict", value)
    unknown = [k for k in value if k not in known]
    if unknown:
        raise ValueError(f"{owner}: {name} has unknown key(s) {unknown}; the keys it accepts "
                         f"are {list(known)}")
    for key, v in value.items():
        hint = _LR_HINT if key == "learning_rate" else None
        number(owner, f"{name}[{key!r}]", v, known[key], hint)
    return value


# ---- labels ------------------------------------------------------------------------------------
def labels(owner, name, y, n=None, num_classes=None, against=""):
    """`y` as an integer ndarray of shape (n,) with values in [0, num_classes) (>= 0 when
    num_classes is None). `against` ends the shape and range messages (" for scores (N, C)")."""
    y = np.asarray(y)
    if n is not None and y.shape != (n,):
        raise ValueError(f"{owner}: {name} must have shape ({n},){against}, got {y.shape}")
    if y.ndim != 1:
        raise ValueError(f"{owner}: {name} must be one-dimensional, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{owner}: {name} must be an integer array, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or (num_classes is not None and y.max() >= num_classes)):
        span = f"[0, {num_classes})" if num_classes is not None else ">= 0"
        where = "lie in" if num_classes is not None else "be"
        raise ValueError(f"{owner}: {name} must {where} {span}{against}, got values from "
                         f"{y.min()} to {y.max()}")
    return y
