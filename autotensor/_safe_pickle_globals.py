"""What `autotensor.safe_pickle` may rebuild: the globals a pickled numpy array names.

Each global is known by its (module, name) strings and stands for a checked builder: numpy's
_reconstruct and dtype (completed by one BUILD of a checked state), _frombuffer, and the latin-1
_codecs.encode and bytes() by which protocols 0-2 write bytes. Arrays are built here with
np.frombuffer from a fixed table of dtypes; nothing named in a file is imported or called.
"""

from __future__ import annotations

import math

import numpy as np

from ._safe_pickle_values import (
    PickleMalformedError,
    PickleRefusedError,
    _brief,
    _Global,
    _Pending,
    _short,
)

_MAX_NDIM = 32
# bool, signed and unsigned integers, floats: element types without pointers or padding
_DTYPE_CODES = ("b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8")


def _is_text(v, *choices):
    return type(v) is str and v in choices         # never `==` on what may be an ndarray


def _is_flag(v):
    return type(v) is bool or type(v) is int and v in (0, 1)


def _array(shape, dtype, fortran, raw):
    """A fresh, writeable array from checked parts; numpy's own unpickling code never runs."""
    if not isinstance(dtype, np.dtype):            # only _dtype_state makes one
        raise PickleMalformedError(f"array dtype must be a numpy dtype, got {_brief(dtype)}")
    if not (isinstance(shape, tuple) and len(shape) <= _MAX_NDIM
            and all(type(n) is int and 0 <= n < 2**63 for n in shape)):
        raise PickleMalformedError(f"array shape must be a tuple of at most {_MAX_NDIM} sizes "
                                   f">= 0, got {_brief(shape)}")
    if type(raw) not in (bytes, bytearray):
        raise PickleMalformedError(f"array data must be bytes, got {_brief(raw)}")
    count = math.prod(shape)
    if count * dtype.itemsize != len(raw):         # checked before any allocation
        raise PickleMalformedError(
            f"an array of shape {_brief(shape)} and dtype {dtype} needs "
            f"{count * dtype.itemsize} bytes of data, the file gives {len(raw)}")
    order = "F" if fortran else "C"
    flat = np.frombuffer(raw, dtype=dtype, count=count)
    return flat.reshape(shape, order=order).copy(order=order)   # owns its memory, writeable


def _array_state(state):
    """BUILD of a _reconstruct result: numpy's state (1, shape, dtype, is_fortran, data)."""
    if not (isinstance(state, tuple) and len(state) == 5 and type(state[0]) is int
            and state[0] == 1 and _is_flag(state[3])):
        raise PickleMalformedError(f"an array state must be (1, shape, dtype, is_fortran, "
                                   f"data), got {_brief(state)}")
    _, shape, dtype, fortran, raw = state
    if type(raw) is str:                           # a Python 2 str, read as latin-1 text
        try:
            raw = raw.encode("latin-1")
        except UnicodeEncodeError:
            raise PickleMalformedError("array data is text beyond latin-1") from None
    array = _array(shape, dtype, bool(fortran), raw)
    # NOTE: numpy's __setstate__ hands back a non-native byte order swapped to native (same
    # values, native dtype); done here too, so the result equals what numpy gives.
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def _reconstruct(args):
    """numpy's _reconstruct(ndarray, (0,), b'b'): an empty array that BUILD fills."""
    if not (len(args) == 3 and args[0] is _NDARRAY and type(args[1]) is tuple
            and len(args[1]) == 1 and type(args[1][0]) is int and args[1][0] == 0
            and (_is_text(args[2], "b") or type(args[2]) is bytes and args[2] == b"b")):
        raise PickleRefusedError(f"refused _reconstruct{_brief(args)}: only "
                                 f"_reconstruct(numpy.ndarray, (0,), b'b'), as numpy writes it")
    return _Pending("array", _array_state)


def _dtype(args):
    """numpy.dtype(code, align, copy) for a code of the table; BUILD gives its byte order."""
    if not (len(args) == 3 and _is_text(args[0], *_DTYPE_CODES) and _is_flag(args[1])
            and _is_flag(args[2])):
        raise PickleRefusedError(f"refused numpy.dtype{_brief(args)}: only the numeric dtypes "
                                 f"{', '.join(_DTYPE_CODES)}")
    code = args[0]
    return _Pending("dtype", lambda state: _dtype_state(code, state))


def _dtype_state(code, state):
    """The state numpy writes for a plain numeric dtype: (3, order, None, None, None, -1, -1, 0).

    Anything else (fields, names, a subarray, an item size, object flags) is refused: that is
    how a crafted state turns a dtype into one that holds pointers.
    """
    plain = (isinstance(state, tuple) and len(state) == 8 and type(state[0]) is int
             and state[0] == 3 and _is_text(state[1], "|", "<", ">")
             and all(v is None for v in state[2:5])
             and all(type(v) is int for v in state[5:]) and state[5:] == (-1, -1, 0))
    if not plain:
        raise PickleRefusedError(f"refused dtype state {_brief(state)} for {code}: only a plain "
                                 f"numeric dtype's (3, byteorder, None, None, None, -1, -1, 0)")
    dtype = np.dtype(code if state[1] == "|" else state[1] + code)
    if state[1] == "|" and dtype.itemsize > 1:
        raise PickleMalformedError(f"byte order '|' for the {dtype.itemsize}-byte dtype {code}")
    return dtype


def _frombuffer(args):
    """numpy's _frombuffer(data, dtype, shape, order) (protocol 5, the data in-band)."""
    if not (len(args) == 4 and _is_text(args[3], "C", "F")):
        raise PickleRefusedError(f"refused _frombuffer{_brief(args)}: only "
                                 f"_frombuffer(data, dtype, shape, 'C' or 'F')")
    return _array(args[2], args[1], args[3] == "F", args[0])


def _encode(args):
    """_codecs.encode(text, 'latin1'): how protocols 0-2 write bytes; no other codec."""
    if not (len(args) == 2 and type(args[0]) is str and _is_text(args[1], "latin1", "latin-1")):
        shown = ", ".join(_short(a) if i else type(a).__name__ for i, a in enumerate(args))
        raise PickleRefusedError(f"refused _codecs.encode({shown}): only latin-1 text")
    try:
        return args[0].encode("latin-1")
    except UnicodeEncodeError:
        raise PickleMalformedError("_codecs.encode of text beyond latin-1") from None


def _empty_bytes(args):
    """bytes(): how protocols 0-2 write b''."""
    if args != ():
        raise PickleRefusedError(f"refused bytes{_brief(args)}: only bytes()")
    return b""


_NDARRAY = _Global("numpy.ndarray")                # only ever _reconstruct's first argument
_RECONSTRUCT = _Global("_reconstruct", _reconstruct)
_FROMBUFFER = _Global("_frombuffer", _frombuffer)
_BYTES = _Global("bytes", _empty_bytes)
# The globals, by the (module, name) strings in the file, under numpy 1.x and 2.x names.
_GLOBALS = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Global("numpy.dtype", _dtype),
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("_codecs", "encode"): _Global("_codecs.encode", _encode),
    ("__builtin__", "bytes"): _BYTES,
    ("builtins", "bytes"): _BYTES,
}
