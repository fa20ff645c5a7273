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
import pickle
import pickletools
import struct
import warnings

import numpy as np

# This module is the opcode machine and `loads`; what may be rebuilt (the allow-list of globals)
# is _safe_pickle_globals.py; the errors, stand-ins and message wording _safe_pickle_values.py.
from ._safe_pickle_globals import _DTYPE_CODES, _GLOBALS  # noqa: F401 (re-exported)
from ._safe_pickle_values import (
    PickleMalformedError,
    PickleRefusedError,
    SafePickleError,
    _Args,
    _brief,
    _Global,
    _Pending,
    _short,
)

__all__ = ["loads", "SafePickleError", "PickleRefusedError", "PickleMalformedError",
           "MAX_DEPTH"]

MAX_DEPTH = 32                 # nesting of tuples, lists and dicts; a CIFAR batch needs 3
_MAX_LINE = 4096               # argument line of a protocol-0 number, memo index or global
_MAX_LONG_BYTES = 1024         # LONG1 / LONG4 integers
_MAX_MARKS = 2 * MAX_DEPTH     # open MARKs; a pickle opens one per container being filled
# Containers made plus memo entries. An official batch needs about 30,000; the cap bounds the
# memory a file can ask for per byte (an EMPTY_LIST is one byte, a list ~150 bytes).
_MAX_KEPT = 2_000_000


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
