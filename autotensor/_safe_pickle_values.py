"""The vocabulary of `autotensor.safe_pickle`: its errors, the stand-ins it pushes for what is
not plain data (a known global, a numpy array or dtype awaiting its BUILD, a tuple of those), and
how any value is shown in an error message.
"""

from __future__ import annotations

import pickle

import numpy as np


class SafePickleError(ValueError, pickle.UnpicklingError):
    """The bytes are not a pickle this reader builds (a ValueError, as the loaders promise)."""


class PickleRefusedError(SafePickleError):
    """The pickle asks for something outside plain data: a global, an object dtype, ..."""


class PickleMalformedError(SafePickleError):
    """The pickle is corrupted: truncated, inconsistent, an array whose state does not add up."""


# ---------------------------------------------------------------- stand-ins for non-data values

class _Global:
    """A global the file named and this reader knows: `build(args)` stands in for the call."""

    def __init__(self, name, build=None):
        self.name, self.build = name, build


class _Pending:
    """The result of REDUCE(_reconstruct) or REDUCE(numpy.dtype): exactly one BUILD fills it."""

    def __init__(self, kind, finish):
        self.kind, self.finish, self.value, self.at = kind, finish, None, None


class _Args(tuple):
    """A tuple holding a dtype or a global: an argument or state, never stored as data."""


# ---------------------------------------------------------------- describing values in messages

def _short(v):
    """A value in at most ~40 characters (a batch holds 30 MB strings: never repr them whole)."""
    if isinstance(v, (str, bytes, bytearray)):
        r = repr(v[:40])
        return r if len(v) <= 40 else f"{r[:-1]}...{r[-1]} ({len(v)} long)"
    if type(v) is int:
        return repr(v) if v.bit_length() < 128 else f"an int of {v.bit_length()} bits"
    if v is None or isinstance(v, (bool, float)):
        return repr(v)
    if isinstance(v, _Global):
        return v.name
    if isinstance(v, _Pending):
        return f"a numpy {v.kind}"
    if isinstance(v, np.ndarray):
        return f"an array {v.dtype} {v.shape}"
    if isinstance(v, np.dtype):
        return f"dtype {v}"
    return "a tuple" if isinstance(v, tuple) else f"a {type(v).__name__}"   # list, dict


def _brief(v, levels=2):
    """Like _short, `levels` levels into tuples."""
    if not isinstance(v, tuple) or levels == 0:
        return _short(v)
    items = [_brief(x, levels - 1) for x in v[:8]] + (["..."] if len(v) > 8 else [])
    return "(" + ", ".join(items) + ("," if len(v) == 1 else "") + ")"
