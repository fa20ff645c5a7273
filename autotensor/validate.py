"""Argument checks shared by every part of autotensor: one home, imported by each caller."""

from __future__ import annotations

import numpy as np


def is_int(v):
    """True for a Python or numpy integer; False for bools and everything else.

    NOTE: bool is an int subclass, but stride=True is a bug, not a stride of 1.
    """
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
