"""Saved-array safety: a saved array changed before backward never gives a wrong gradient.

Two mechanisms (docs/engine.md, "In-place ops and saved arrays", says exactly what each
catches):

1. In-place Tensor ops (`+=`, `zero_()`, ...) call `note_write`, which stamps the written
   array's id (and its base's) with a sequence number; `check_saved` makes the backward walk
   refuse a node recorded before a write into an array it saved, naming op and tensor.
2. Direct writes into `t.data` bypass the Tensor, so an array the user owns (a leaf's, a
   constant, the memory a saved view shows) is made read-only while a recorded node that
   saved it is alive (`guard`), and writeable again when the last such node is freed by
   backward or garbage-collected: numpy then refuses the write at the write. Trusted writers
   that restore every value (the numerical-gradient helpers) lift the hold with `writable`.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from .function import _next_seq, describe_scope

_guard_count = {}            # id(array) -> number of live nodes holding it read-only
_guard_lock = threading.Lock()


class _Guard:
    """Holds the arrays one node made read-only; releases them when the node lets go of it."""

    __slots__ = ("arrays",)

    def __init__(self, arrays):
        self.arrays = arrays
        with _guard_lock:
            for a in arrays:
                n = _guard_count.get(id(a), 0)
                _guard_count[id(a)] = n + 1
                if n == 0:
                    a.flags.writeable = False

    def __del__(self):
        with _guard_lock:
            for a in self.arrays:
                n = _guard_count.pop(id(a), 1) - 1
                if n:
                    _guard_count[id(a)] = n
                else:
                    _release(a)


# id(base) -> views released while that base was still held read-only: numpy refuses to make
# a view writeable over read-only memory, so they become writeable when the base does.
_waiting = {}


def _release(a):
    """Make `a` writeable again, or once the guarded array it views is released."""
    base = a.base
    while base.__class__ is np.ndarray and id(base) not in _guard_count:
        base = base.base
    if base.__class__ is np.ndarray:            # a view of memory another node still holds
        _waiting.setdefault(id(base), []).append(a)
        return
    a.flags.writeable = True
    for view in _waiting.pop(id(a), ()):
        _release(view)


def guard(fn, datas):
    """Make the user-owned input arrays that `fn` saved (or saved a view of) read-only while
    `fn` may need them."""
    saved = fn.saved
    items = saved if saved.__class__ is tuple else (saved,)
    mine = []
    for s in items:
        if s.__class__ is not np.ndarray:
            continue
        base = s.base
        if base.__class__ is np.ndarray and (base.flags.writeable or id(base) in _guard_count) \
                and all(base is not m for m in mine):
            mine.append(base)           # a view (of a leaf, say): hold the memory it shows
        for d, p in zip(datas, fn.parents):
            if d.__class__ is not np.ndarray or (p is not None and p._is_node):
                continue
            owner = d if d.base is None else d.base
            if s is d or (s.base is not None and s.base is owner):
                if (d.flags.writeable or id(d) in _guard_count) and \
                        all(d is not m for m in mine):
                    mine.append(d)
                break
    if mine:
        fn.guard = _Guard(mine)


def is_guarded(array):
    """True while a recorded node holds `array` read-only."""
    return id(array) in _guard_count


@contextlib.contextmanager
def writable(array):
    """Let trusted code write into `array` even while a node holds it read-only.

    For writers that restore every value they change (the numerical-gradient helpers) and
    for in-place Tensor ops (which call `note_write`, so backward still raises if it matters).
    """
    if array.flags.writeable:
        yield array
        return
    try:
        array.flags.writeable = True
    except ValueError:
        raise RuntimeError(f"cannot write into this array of shape {array.shape}: it is a view "
                           "of read-only memory (a graph that saved it is still alive, or it "
                           "was read-only when you passed it in)") from None
    try:
        yield array
    finally:
        array.flags.writeable = False


# id(array) -> (sequence number of the latest in-place write into it, what the array is). An
# array a node saved was alive when the node was recorded, so a write stamped later than the
# node under that array's id (or its base's) is a write into that very memory. Stale entries
# of freed arrays are harmless: a later array reusing the id is saved by later nodes only.
written = {}
# Sequence number of the latest in-place write: the walk checks a node's saved arrays only
# when the node was recorded before it.
last_write = 0


def note_write(holder, array):
    """Record an in-place write into `array`, the data of `holder` (a leaf Tensor, or the
    Tensor of a node's output): backward then refuses nodes recorded earlier that saved it."""
    global last_write
    seq = _next_seq()
    if holder._node is None:
        what = f"'{holder.name}'" if holder.name else "a leaf tensor"
    else:
        what = f"the output of {holder._node.name} (node #{holder._node.seq})"
    entry = (seq, f"{what} of shape {array.shape}")
    written[id(array)] = entry
    if array.base is not None:          # a view: the memory belongs to its base
        written[id(array.base)] = entry
    last_write = seq


def check_saved(node):
    """Raise when an array `node` saved (or the memory it views) was overwritten by an
    in-place op after the node was recorded (note_write stamps such writes)."""
    saved = node.saved
    if saved is None:
        return
    for s in saved if saved.__class__ is tuple else (saved,):
        if s.__class__ is not np.ndarray:
            continue
        for a in (s, s.base):
            stamp = written.get(id(a)) if a is not None else None
            if stamp is not None and stamp[0] > node.seq:
                raise RuntimeError(
                    "one of the arrays needed for gradient computation has been modified by an "
                    f"in-place operation: {stamp[1]}, saved by {node.name} (node #{node.seq}, "
                    f"{describe_scope(node.scope)}) when it was recorded, was overwritten "
                    "afterwards (+=, -=, zero_(), copy_(), ...). Run backward() before changing "
                    "it, or compute the new value out of place (t = t + 1).")
