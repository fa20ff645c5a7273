"""A pickle reader that builds plain data and numeric numpy arrays, and nothing else.

    loads(data: bytes) -> dict, list, tuple, str, bytes, bytearray, int, float, bool, None,
                          or a numpy array of a bool / integer / float dtype, nested

Written for CIFAR-10's python batches (docs/reliability.md says why). `pickle.Unpickler`, even
with a restricted `find_class`, hands each BUILD state to numpy's `__setstate__`, which trusts
it: re-BUILDing a dtype that an array already uses turns the array's bytes into object
pointers. This reader is instead a small interpreter of the opcode stream. It knows the opcodes
that protocols 0-5 use for the types above, recognises the globals a pickled numpy array names
by their (module, name) strings, checks every array state and builds the array itself with
np.frombuffer from a fixed table of dtypes. Nothing named in the file is imported or called,
and none of numpy's pickle support runs.

Every failure is a `PickleRefusedError` (something this reader never builds: another global, an
extension code, an object dtype...) or a `PickleMalformedError` (truncated or inconsistent
bytes). Both are ValueError and pickle.UnpicklingError.
"""

from __future__ import annotations

import codecs
import functools
import math
import pickle
import pickletools
import struct
import warnings

import numpy as np

__all__ = ["loads", "SafePickleError", "PickleRefusedError", "PickleMalformedError",
           "MAX_DEPTH"]

MAX_DEPTH = 32                 # nesting of tuples, lists and dicts; a CIFAR batch needs 3
_MAX_LINE = 4096               # argument line of a protocol-0 number, memo index or global
_MAX_LONG_BYTES = 1024         # LONG1 / LONG4 integers
_MAX_NDIM = 32
_MAX_MARKS = 2 * MAX_DEPTH     # open MARKs; a pickle opens one per container being filled
# Containers made plus memo entries. An official batch needs about 30,000; the cap bounds the
# memory a file can ask for per byte (an EMPTY_LIST is one byte, a list ~150 bytes).
_MAX_KEPT = 2_000_000
# bool, signed and unsigned integers, floats: element types without pointers or padding
_DTYPE_CODES = ("b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8")


class SafePickleError(ValueError, pickle.UnpicklingError):
    """The bytes are not a pickle this reader builds (a ValueError, as the loaders promise)."""


class PickleRefusedError(SafePickleError):
    """The pickle asks for something outside plain data: a global, an object dtype, ..."""


class PickleMalformedError(SafePickleError):
    """The pickle is corrupted: truncated, inconsistent, an array whose state does not add up."""


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


def _is_text(v, *choices):
    return type(v) is str and v in choices         # never `==` on what may be an ndarray


def _is_flag(v):
    return type(v) is bool or type(v) is int and v in (0, 1)


# ---------------------------------------------------------------- the globals of a numpy array

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


# ---------------------------------------------------------------- opcode tables

def _utf8(raw):
    return raw.decode("utf-8", "surrogatepass")    # as pickle decodes BINUNICODE


def _latin1(raw):
    return raw.decode("latin-1")                   # a Python 2 str, as pickle(encoding="latin1")


def _long(raw):
    return int.from_bytes(raw, "little", signed=True)


_P = pickle
_U1, _U4, _U8 = struct.Struct("<B"), struct.Struct("<I"), struct.Struct("<Q")
_FIXED = {_P.BININT: "<i", _P.BININT1: "<B", _P.BININT2: "<H", _P.BINFLOAT: ">d"}
# opcode: (length prefix, decoder, most bytes allowed or None)
_SIZED = {
    _P.BINSTRING: ("<i", _latin1, None), _P.SHORT_BINSTRING: ("<B", _latin1, None),
    _P.BINUNICODE: ("<I", _utf8, None), _P.SHORT_BINUNICODE: ("<B", _utf8, None),
    _P.BINUNICODE8: ("<Q", _utf8, None), _P.BINBYTES: ("<I", bytes, None),
    _P.SHORT_BINBYTES: ("<B", bytes, None), _P.BINBYTES8: ("<Q", bytes, None),
    _P.BYTEARRAY8: ("<Q", bytearray, None),
    _P.LONG1: ("<B", _long, _MAX_LONG_BYTES), _P.LONG4: ("<i", _long, _MAX_LONG_BYTES),
}
_CONSTANTS = {_P.NONE: None, _P.NEWTRUE: True, _P.NEWFALSE: False}
_REFUSED = {
    **dict.fromkeys([_P.PERSID, _P.BINPERSID], "persistent id"),
    **dict.fromkeys([_P.EXT1, _P.EXT2, _P.EXT4],
                    "extension code (copyreg's registry maps it to any global)"),
    **dict.fromkeys([_P.INST, _P.OBJ, _P.NEWOBJ, _P.NEWOBJ_EX], "object construction"),
    **dict.fromkeys([_P.NEXT_BUFFER, _P.READONLY_BUFFER], "out-of-band buffer"),
    **dict.fromkeys([_P.EMPTY_SET, _P.ADDITEMS, _P.FROZENSET], "set"),
    _P.DUP: "DUP, which Python's pickler never writes",
}


def _name(op):
    info = pickletools.code2op.get(op.decode("latin-1"))
    return info.name if info else f"0x{op.hex()}"


# ---------------------------------------------------------------- the interpreter

class _Reader:
    """One pass over the opcodes, as pickle's own stack machine, building only plain data.

    Containers are tracked by id (all kept alive here) for two rules: nesting is at most
    MAX_DEPTH, and a list or dict is sealed once stored inside another container, so no later
    opcode can change it. Python's pickler always fills a container before storing it; the
    rule makes cycles impossible and every depth final when it is computed.
    """

    def __init__(self, data):
        self.data, self.pos = data, 0
        self.stack, self.metastack, self.memo = [], [], {}
        self.depth, self.sealed, self.alive, self.kept = {}, set(), [], 0
        self.handlers = {
            _P.MARK: self._mark, _P.POP: self._pop_top,
            _P.POP_MARK: lambda at: self._pop_mark(at), _P.PROTO: self._proto,
            _P.FRAME: self._frame, _P.INT: self._int, _P.LONG: self._long_text,
            _P.FLOAT: lambda at: self._push(float(self._line(at))),
            _P.STRING: self._string, _P.UNICODE: self._unicode,
            _P.EMPTY_TUPLE: lambda at: self._push(self._tuple([], at)),
            _P.TUPLE: lambda at: self._push(self._tuple(self._pop_mark(at), at)),
            _P.TUPLE1: lambda at: self._tuple_n(1, at), _P.TUPLE2: lambda at: self._tuple_n(2, at),
            _P.TUPLE3: lambda at: self._tuple_n(3, at),
            _P.EMPTY_LIST: lambda at: self._push(self._new([])),
            _P.LIST: lambda at: self._push(self._fill(self._new([]), self._pop_mark(at), at)),
            _P.EMPTY_DICT: lambda at: self._push(self._new({})),
            _P.DICT: lambda at: self._push(self._fill(self._new({}), self._pop_mark(at), at)),
            _P.APPEND: lambda at: self._into_top([self._pop(at)], list, at),
            _P.APPENDS: lambda at: self._into_top(self._pop_mark(at), list, at),
            _P.SETITEM: lambda at: self._into_top(self._pop_n(2, at), dict, at),
            _P.SETITEMS: lambda at: self._into_top(self._pop_mark(at), dict, at),
            _P.PUT: lambda at: self._put(int(self._line(at)), at),
            _P.BINPUT: lambda at: self._put(self._unpack(_U1, at), at),
            _P.LONG_BINPUT: lambda at: self._put(self._unpack(_U4, at), at),
            _P.MEMOIZE: lambda at: self._put(len(self.memo), at),
            _P.GET: lambda at: self._get(int(self._line(at)), at),
            _P.BINGET: lambda at: self._get(self._unpack(_U1, at), at),
            _P.LONG_BINGET: lambda at: self._get(self._unpack(_U4, at), at),
            _P.GLOBAL: lambda at: self._global(self._line(at).decode("latin-1"),
                                               self._line(at).decode("latin-1"), at),
            _P.STACK_GLOBAL: self._stack_global, _P.REDUCE: self._reduce, _P.BUILD: self._build,
        }
        for op, fmt in _FIXED.items():
            self.handlers[op] = functools.partial(self._fixed, struct.Struct(fmt))
        for op, (prefix, decode, limit) in _SIZED.items():
            self.handlers[op] = functools.partial(self._sized, struct.Struct(prefix), decode,
                                                  limit)
        for op, value in _CONSTANTS.items():
            self.handlers[op] = functools.partial(self._constant, value)
        for op in _REFUSED:
            self.handlers[op] = self._refuse

    def load(self):
        at, data, handlers = 0, self.data, self.handlers
        try:
            while True:
                at = self.pos
                op = data[at:at + 1]
                self.pos = at + 1
                if op == _P.STOP:
                    return self._stop(at)
                handler = handlers.get(op)
                if handler is None:
                    raise PickleMalformedError(
                        f"unknown opcode {op!r} at byte {at}" if op else
                        f"truncated: the file ends at byte {at} without the STOP opcode")
                handler(at)
        except SafePickleError:
            raise
        # NOTE: every operation above is checked first; this is the net under those checks
        # (int() of a bad protocol-0 line, a bad UTF-8 string...), so that the one promise,
        # "a ValueError", holds for whatever bytes come in.
        except (ValueError, TypeError, OverflowError, KeyError, IndexError, struct.error,
                MemoryError, RecursionError) as err:
            raise PickleMalformedError(
                f"{type(err).__name__} in {_name(data[at:at + 1])} at byte {at}: "
                f"{_short(str(err))}") from None

    def _fixed(self, fmt, at):
        self.stack.append(self._unpack(fmt, at))

    def _sized(self, prefix, decode, limit, at):
        n = self._unpack(prefix, at)
        if limit is not None and n > limit:
            raise PickleRefusedError(f"refused an integer of {n} bytes (LONG at byte {at}): "
                                     f"at most {limit}")
        self.stack.append(decode(self._take(n, at)))

    def _constant(self, value, at):
        self.stack.append(value)

    def _refuse(self, at):
        op = self.data[at:at + 1]
        raise PickleRefusedError(f"refused {_REFUSED[op]} (opcode {_name(op)} at byte {at}): "
                                 f"this reader builds plain data only")

    # ---- reading the stream
    def _take(self, n, at):
        if n < 0:
            raise PickleMalformedError(f"negative length {n} at byte {at}")
        pos, left = self.pos, len(self.data) - self.pos
        if n > left:
            raise PickleMalformedError(f"truncated: {_name(self.data[at:at + 1])} at byte {at} "
                                       f"needs {n} more bytes, the file has {left} left")
        self.pos = pos + n
        return self.data[pos:pos + n]

    def _unpack(self, fmt, at):
        """One number of the struct.Struct `fmt` (a length, an index, a BININT...)."""
        if fmt.size > len(self.data) - self.pos:
            self._take(fmt.size, at)               # raises "truncated"
        value = fmt.unpack_from(self.data, self.pos)[0]
        self.pos += fmt.size
        return value

    def _line(self, at, limit=_MAX_LINE):
        end = self.data.find(b"\n", self.pos, None if limit is None else self.pos + limit + 1)
        if end < 0:
            raise PickleMalformedError(f"{_name(self.data[at:at + 1])} at byte {at}: no end of "
                                       f"line" + (f" within {limit} bytes" if limit else ""))
        line, self.pos = self.data[self.pos:end], end + 1
        return line

    # ---- the stack and the mark stack
    def _push(self, v):
        self.stack.append(v)

    def _pop(self, at):
        if not self.stack:
            raise PickleMalformedError(f"stack underflow: {_name(self.data[at:at + 1])} at byte "
                                       f"{at} finds nothing to take")
        return self.stack.pop()

    def _pop_n(self, n, at):
        items = [self._pop(at) for _ in range(n)]
        return items[::-1]

    def _pop_top(self, at):
        if self.stack:
            self.stack.pop()
        else:
            self._pop_mark(at)                     # as pickle: POP with an empty stack = POP_MARK

    def _mark(self, at):
        if len(self.metastack) >= _MAX_MARKS:
            raise PickleRefusedError(f"refused more than {_MAX_MARKS} open MARKs (at byte {at})")
        self.metastack.append(self.stack)
        self.stack = []

    def _pop_mark(self, at):
        if not self.metastack:
            raise PickleMalformedError(f"{_name(self.data[at:at + 1])} at byte {at} without "
                                       f"a MARK")
        items, self.stack = self.stack, self.metastack.pop()
        return items

    # ---- header
    def _proto(self, at):
        version = self._unpack(_U1, at)
        if version > 5:
            raise PickleMalformedError(f"protocol {version} at byte {at}: this reader knows "
                                       f"protocols 0-5")

    def _frame(self, at):
        n = self._unpack(_U8, at)
        if n > len(self.data) - self.pos:
            raise PickleMalformedError(f"truncated: FRAME at byte {at} announces {n} bytes, "
                                       f"{len(self.data) - self.pos} follow")

    # ---- protocol 0 text values
    def _int(self, at):
        line = self._line(at)                      # protocol 0 writes booleans as I00 / I01
        self._push(line == b"01" if line in (b"00", b"01") else int(line, 0))

    def _long_text(self, at):
        line = self._line(at)
        self._push(int(line[:-1] if line.endswith(b"L") else line, 0))

    def _string(self, at):
        line = self._line(at, limit=None)
        if len(line) < 2 or line[:1] != line[-1:] or line[:1] not in (b"'", b'"'):
            raise PickleMalformedError(f"STRING at byte {at} is not quoted")
        with warnings.catch_warnings():            # "invalid escape" is a warning there
            warnings.simplefilter("error")
            try:
                raw = codecs.escape_decode(line[1:-1])[0]
            except (ValueError, Warning) as err:
                raise PickleMalformedError(f"STRING at byte {at}: {str(err)[:80]}") from None
        self._push(_latin1(raw))

    def _unicode(self, at):
        self._push(str(self._line(at, limit=None), "raw-unicode-escape"))

    # ---- containers
    def _keep(self):
        self.kept += 1
        if self.kept > _MAX_KEPT:
            raise PickleRefusedError(f"refused more than {_MAX_KEPT} containers and memo "
                                     f"entries: a CIFAR-10 batch needs about 30000")

    def _new(self, container):
        self._keep()
        self.alive.append(container)               # ids stay unique while the reader lives
        self.depth[id(container)] = 1
        return container

    def _resolve(self, v, at):
        """What an opcode takes from the stack: an array or dtype only once BUILT."""
        if isinstance(v, _Pending):
            if v.value is None:
                raise PickleMalformedError(f"the numpy {v.kind} made at byte {v.at} is used at "
                                           f"byte {at} before its BUILD")
            return v.value
        return v

    def _nest(self, items, at):
        """Resolve items going into a container, seal them; the container's depth."""
        items = [self._resolve(v, at) for v in items]
        deepest = max((self.depth.get(id(v), 0) for v in items), default=0)
        if deepest >= MAX_DEPTH:
            raise PickleRefusedError(f"refused nesting deeper than {MAX_DEPTH} at byte {at}")
        self.sealed.update(id(v) for v in items if type(v) in (list, dict))
        return items, deepest + 1

    def _tuple(self, items, at):
        items, depth = self._nest(items, at)
        raw = any(isinstance(v, (np.dtype, _Global, _Args)) for v in items)
        t = self._new((_Args if raw else tuple)(items))
        self.depth[id(t)] = depth
        return t

    def _tuple_n(self, n, at):
        self._push(self._tuple(self._pop_n(n, at), at))

    def _fill(self, target, items, at):
        """Append items to a list, or key/value pairs to a dict, as plain data only."""
        items, depth = self._nest(items, at)
        for v in items:
            if isinstance(v, (np.dtype, _Global, _Args)):
                raise PickleRefusedError(f"refused {_brief(v)} stored as data at byte {at}: "
                                         f"dtypes and globals belong inside an array's state")
        if id(target) in self.sealed:
            raise PickleRefusedError(f"refused a change at byte {at} to a {type(target).__name__}"
                                     f" already stored in another container (a cycle or a "
                                     f"shared object edited later)")
        self.depth[id(target)] = max(self.depth[id(target)], depth)
        if type(target) is list:
            target.extend(items)
            return target
        if len(items) % 2:
            raise PickleMalformedError(f"SETITEMS at byte {at} with a key and no value")
        for k, v in zip(items[::2], items[1::2]):
            if type(k) not in (str, bytes, int):
                raise PickleRefusedError(f"refused the dict key {_brief(k)} at byte {at}: "
                                         f"keys are str, bytes or int")
            target[k] = v
        return target

    def _into_top(self, items, kind, at):
        target = self.stack[-1] if self.stack else None
        if type(target) is not kind:
            raise PickleMalformedError(f"{_name(self.data[at:at + 1])} at byte {at} onto "
                                       f"{_brief(target)}, expected a {kind.__name__}")
        self._fill(target, items, at)

    # ---- the memo
    def _put(self, index, at):
        if not self.stack or index < 0:
            raise PickleMalformedError(f"memo PUT at byte {at} with "
                                       + ("an empty stack" if index >= 0 else f"index {index}"))
        if index not in self.memo:
            self._keep()
        self.memo[index] = self.stack[-1]

    def _get(self, index, at):
        if index not in self.memo:
            raise PickleMalformedError(f"memo GET of index {_short(index)} at byte {at}, "
                                       f"which was never PUT")
        self._push(self.memo[index])

    # ---- globals, calls and states
    def _global(self, module, name, at):
        found = _GLOBALS.get((module, name))
        if found is None:
            shown = ascii(f"{module}.{name}"[:80])[1:-1]
            raise PickleRefusedError(f"refused global {shown} (at byte {at}): a CIFAR-10 batch "
                                     f"holds only numpy arrays, lists and strings")
        self._push(found)

    def _stack_global(self, at):
        module, name = self._pop_n(2, at)
        if type(module) is not str or type(name) is not str:
            raise PickleMalformedError(f"STACK_GLOBAL at byte {at} of {_short(module)}, "
                                       f"{_short(name)}: expected two str")
        self._global(module, name, at)

    def _reduce(self, at):
        func, args = self._pop_n(2, at)
        if not (isinstance(func, _Global) and func.build):
            raise PickleRefusedError(f"refused REDUCE at byte {at} calling {_brief(func)}: "
                                     f"only the numpy array globals are called")
        if not isinstance(args, tuple):
            raise PickleMalformedError(f"REDUCE at byte {at} with arguments {_brief(args)}, "
                                       f"expected a tuple")
        try:
            out = func.build(args)
        except SafePickleError as err:
            raise type(err)(f"{err} (REDUCE at byte {at})") from None
        if isinstance(out, _Pending):
            out.at = at
        self._push(out)

    def _build(self, at):
        state = self._resolve(self._pop(at), at)
        target = self.stack[-1] if self.stack else None
        if not isinstance(target, _Pending):
            raise PickleRefusedError(f"refused BUILD at byte {at} on {_brief(target)}: only a "
                                     f"new numpy array or dtype takes a state")
        if target.value is not None:
            why = (" (re-BUILDing a dtype that an array uses is how a crafted file turns its "
                   "bytes into pointers)" if target.kind == "dtype" else "")
            raise PickleRefusedError(f"refused a second BUILD at byte {at} of the numpy "
                                     f"{target.kind} made at byte {target.at}: a state is set "
                                     f"once{why}")
        try:
            target.value = target.finish(state)
        except SafePickleError as err:
            raise type(err)(f"{err} (BUILD at byte {at})") from None

    def _stop(self, at):
        if self.metastack or len(self.stack) != 1:
            raise PickleMalformedError(f"STOP at byte {at} with {len(self.stack)} values on the "
                                       f"stack and {len(self.metastack)} open MARKs, expected "
                                       f"one value")
        if self.pos != len(self.data):
            raise PickleMalformedError(f"{len(self.data) - self.pos} bytes after the STOP "
                                       f"opcode at byte {at}")
        holder = self._new([])
        return self._fill(holder, self.stack, at)[0]


def loads(data):
    """The object pickled in `data` (bytes), built as plain data; see the module docstring.

    Raises PickleRefusedError or PickleMalformedError (both ValueError) for anything else.
    """
    return _Reader(bytes(data)).load()
