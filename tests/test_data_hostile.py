"""Hostile and corrupted CIFAR-10 python batches: each one a ValueError naming the file.

Every file is loaded in a child process, so a crash fails a test instead of killing pytest. One
child runs the whole table and prints one JSON line per row as it goes; when a row kills it, that
row is recorded as a crash and a new child goes on after it. Rows are written opcode by opcode
(pickletools names in the comments of the helpers) or with pickle.dumps.
"""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import pickle
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

N = 2                                     # images per valid batch
TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


# ---------------------------------------------------------------- opcode helpers

def text(s):                               # BINUNICODE
    b = s.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(b)) + b


def blob(b):                               # BINBYTES
    return b"B" + struct.pack("<I", len(b)) + b


def py2(b):                                # BINSTRING: a Python 2 str
    return b"T" + struct.pack("<i", len(b)) + b


def i32(n):                                # BININT
    return b"J" + struct.pack("<i", n)


def glob(module, name):                    # GLOBAL
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def tup(*items):                           # MARK ... TUPLE
    return b"(" + b"".join(items) + b"t"


def ints(*ns):
    return tup(*[i32(n) for n in ns])


NONE, FALSE, TRUE = b"N", b"\x89", b"\x88"
DTYPE, NDARRAY = glob("numpy", "dtype"), glob("numpy", "ndarray")
RECONSTRUCT = glob("numpy.core.multiarray", "_reconstruct")


def dtype_state(order="|", elsize=-1, align=-1, flags=0, names=NONE, fields=NONE):
    return tup(i32(3), text(order), NONE, names, fields, i32(elsize), i32(align), i32(flags))


def dtype(code="u1", state=None, memo=b""):
    """numpy.dtype(code, False, True), memoised with `memo` (a BINPUT), then BUILD."""
    return DTYPE + tup(text(code), FALSE, TRUE) + b"R" + memo + (state or dtype_state()) + b"b"


def array(shape=(N, 3072), dt=None, raw=None, state=None):
    """numpy's protocol-2 array: _reconstruct(ndarray, (0,), b'b') BUILT with its state."""
    raw = blob(bytes(int(np.prod(shape)))) if raw is None else raw
    state = state or tup(i32(1), ints(*shape), dt or dtype(), FALSE, raw)
    return RECONSTRUCT + tup(NDARRAY, ints(0), blob(b"b")) + b"R" + state + b"b"


def batch(data=None, labels=None):
    """A protocol-3 batch dict {b'data': data, b'labels': labels} from opcode strings."""
    labels = b"](" + i32(0) * N + b"e" if labels is None else labels
    return (b"\x80\x03}(" + blob(b"data") + (data or array()) + blob(b"labels") + labels
            + b"u.")


class Payload:
    """Pickles as a call of func(*args): what an attacker puts in a file."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def rebuilt_dtype_attack(code="V8", size=8):
    """The crash of issue 10: an array made with the dtype memoised as 1, then that dtype
    re-BUILT with a state declaring one object field at offset 0: the array's 8 bytes
    0x41... become a PyObject pointer (numpy then reads and DECREFs it)."""
    void = code.startswith("V")
    dt = dtype(code, dtype_state(*("|", size, 1) if void else ("<",)), memo=b"q\x01")
    arr = array(shape=(1,), dt=dt, raw=blob(b"A" * size))
    fields = b"}" + text("f") + tup(DTYPE + tup(text("O8"), FALSE, TRUE) + b"R", i32(0)) + b"s"
    rebuild = b"h\x01" + dtype_state("|", size, 1, 27, names=tup(text("f")), fields=fields)
    return batch(data=arr + rebuild + b"b0")          # BUILD, POP the dtype: the array stays


def short_str(b):                          # SHORT_BINSTRING: a Python 2 str
    return b"U" + bytes([len(b)]) + b


def python2_batch(pixels, labels):
    """A batch as Python 2's cPickle wrote the official files: protocol 2, str keys, a BINPUT
    after most values, the dtype's arguments as ints, the pixels one BINSTRING."""
    put = itertools.count(1)

    def q():                                   # BINPUT, LONG_BINPUT past 255
        i = next(put)
        return b"q" + bytes([i]) if i < 256 else b"r" + struct.pack("<I", i)

    s = short_str
    out = b"\x80\x02}" + q() + b"(" + s(b"data") + q() + RECONSTRUCT + q() + NDARRAY + q()
    out += b"K\x00\x85" + q() + s(b"b") + q() + b"\x87" + q() + b"R" + q()
    out += b"(K\x01" + i32(len(pixels)) + b"M\x00\x0c\x86" + q() + DTYPE + q() + s(b"u1") + q()
    out += b"K\x00K\x01\x87" + q() + b"R" + q() + b"(K\x03" + s(b"|") + q() + b"NNN"
    out += i32(-1) + i32(-1) + b"K\x00t" + q() + b"b\x89" + py2(pixels.tobytes()) + q()
    out += b"t" + q() + b"b" + s(b"labels") + q() + b"]" + q() + b"("
    out += b"".join(b"K" + bytes([v]) for v in labels) + b"e" + s(b"batch_label") + q()
    out += s(b"training batch 1 of 5") + q() + s(b"filenames") + q() + b"]" + q() + b"("
    out += b"".join(s(b"cat_%04d.png" % i) + q() for i in range(len(labels)))
    return out + b"eu."


def protocol_pickles(obj):
    return {p: pickle.dumps(obj, protocol=p) for p in range(6)}


def deep(n, opener, closer):
    return b"\x80\x02" + opener * n + closer * (n - 1) + b"."


TOUCH = Payload(os.system, "touch pwned")              # the child runs in its own folder
VALID = pickle.dumps({b"data": np.zeros((N, 3072), np.uint8), b"labels": [0] * N}, protocol=2)
VALID5 = pickle.dumps({b"data": np.zeros((N, 3072), np.uint8), b"labels": [0] * N}, protocol=5)
FROMBUFFER = glob("numpy._core.numeric", "_frombuffer")

# (row, file bytes, what the message must say after "CIFAR-10 file <path>")
ROWS = [
    # -- the dtype __setstate__ crash and its relatives
    ("dtype-rebuilt-with-object-field", rebuilt_dtype_attack(), r": refused numpy.dtype\('V8'"),
    ("dtype-u8-rebuilt-after-use", rebuilt_dtype_attack("u8"), r"refused numpy.dtype\('O8'"),
    ("dtype-rebuilt-plain", batch(array(dt=dtype(memo=b"q\x01")) + b"h\x01" + dtype_state()
                                  + b"b0"), r"second BUILD at byte \d+ of the numpy dtype"),
    ("array-built-twice", batch(array() + tup(i32(1), ints(1), dtype(), FALSE, blob(b"x"))
                                + b"b"), r"second BUILD at byte \d+ of the numpy array"),
    ("dtype-state-with-fields", batch(array(dt=dtype(state=dtype_state(
        names=tup(text("f")), fields=b"}")))), "refused dtype state"),
    ("dtype-state-object-flags", batch(array(dt=dtype(state=dtype_state(flags=63)))),
     "refused dtype state"),
    ("dtype-state-itemsize", batch(array(dt=dtype(state=dtype_state(elsize=8)))),
     "refused dtype state"),
    ("dtype-state-not-a-tuple", batch(array(dt=dtype(state=b"]"))), "refused dtype state"),
    ("dtype-pipe-order-f8", batch(array(dt=dtype("f8"))), "byte order '\\|' for the 8-byte"),
    ("dtype-used-before-build", batch(array(dt=DTYPE + tup(text("u1"), FALSE, TRUE) + b"R")),
     "dtype made at byte .* before its BUILD"),
    # -- dtypes outside the numeric table
    *[(f"dtype-{code}", batch(array(dt=dtype(code))), rf"refused numpy.dtype\('{re.escape(code)}'")
      for code in ("O8", "O", "V8", "S10", "<U3", "M8[s]", "c16", "f16")],
    ("dtype-from-list", batch(array(dt=DTYPE + tup(b"](" + tup(text("f"), text("O")) + b"e",
                                                    FALSE, TRUE) + b"R")),
     r"refused numpy.dtype\(a list"),
    # -- array states whose parts do not add up
    ("shape-product-too-big", batch(array(shape=(N, 3072), raw=blob(bytes(3072)))),
     "shape \\(2, 3072\\) and dtype uint8 needs 6144 bytes .* gives 3072"),
    ("shape-2**40-elements", batch(array(shape=(2**20, 2**20), raw=blob(bytes(3072)))),
     "needs 1099511627776 bytes"),
    ("shape-negative", batch(array(shape=(-1, 3072), raw=blob(bytes(3072)))),
     "shape must be a tuple .* got \\(-1, 3072\\)"),
    ("shape-float", batch(array(state=tup(i32(1), tup(b"G" + struct.pack(">d", 2.0), i32(3072)),
                                          dtype(), FALSE, blob(bytes(6144))))), "shape must be"),
    ("shape-as-list", batch(array(state=tup(i32(1), b"](" + i32(N) + i32(3072) + b"e", dtype(),
                                            FALSE, blob(bytes(6144))))), "shape must be"),
    ("shape-40-dims", batch(array(shape=(1,) * 40, raw=blob(b"x"))), "at most 32 sizes"),
    ("data-is-an-int", batch(array(raw=i32(7))), "array data must be bytes, got 7"),
    ("data-is-a-list", batch(array(raw=b"](" + i32(1) + b"e")), "array data must be bytes"),
    ("data-text-beyond-latin1", batch(array(shape=(1,), raw=text("\u20ac"))),
     "array data is text beyond latin-1"),
    ("state-version-2", batch(array(state=tup(i32(2), ints(N, 3072), dtype(), FALSE,
                                              blob(bytes(6144))))), "array state must be"),
    ("state-4-items", batch(array(state=tup(ints(N, 3072), dtype(), FALSE, blob(bytes(6144))))),
     "array state must be"),
    ("state-dtype-is-a-str", batch(array(state=tup(i32(1), ints(N, 3072), text("u1"), FALSE,
                                                   blob(bytes(6144))))),
     "array dtype must be a numpy dtype, got 'u1'"),
    ("frombuffer-2**40", b"\x80\x05}(" + blob(b"data") + FROMBUFFER + tup(
        blob(b"x" * 8), dtype(), ints(2**20, 2**20), text("C")) + b"Ru.", "needs 1099511627776"),
    ("frombuffer-order-K", b"\x80\x05" + FROMBUFFER + tup(blob(b"x"), dtype(), ints(1),
                                                         text("K")) + b"R.",
     "refused _frombuffer"),
    # -- the allowed globals called the wrong way
    ("ndarray-called", batch(NDARRAY + ints(2**20, 2**20) + b"R"),
     "refused REDUCE .* calling numpy.ndarray"),
    ("reconstruct-of-dtype", batch(RECONSTRUCT + tup(DTYPE, ints(0), blob(b"b")) + b"R"),
     r"refused _reconstruct\(numpy.dtype"),
    ("reconstruct-shape-5", batch(RECONSTRUCT + tup(NDARRAY, ints(5), blob(b"b")) + b"R"),
     r"refused _reconstruct\(numpy.ndarray, \(5,\)"),
    ("reconstruct-two-args", batch(RECONSTRUCT + tup(NDARRAY, ints(0)) + b"R"),
     "refused _reconstruct"),
    ("reconstruct-list-args", batch(RECONSTRUCT + b"](K\x01e" + b"R"),
     "REDUCE at byte .* with arguments a list, expected a tuple"),
    ("codecs-rot13", batch(labels=glob("_codecs", "encode") + tup(text("ab"), text("rot13"))
                           + b"R"), r"refused _codecs.encode\(str, 'rot13'\)"),
    ("codecs-beyond-latin1", batch(labels=glob("_codecs", "encode") + tup(
        text("\u20ac"), text("latin1")) + b"R"), "_codecs.encode of text beyond latin-1"),
    ("bytes-with-args", batch(labels=glob("builtins", "bytes") + ints(10**6) + b"R"),
     r"refused bytes\(1000000,\)"),
    ("reduce-of-a-list", batch(labels=b"]" + tup() + b"R"), "refused REDUCE .* calling a list"),
    # -- globals an attacker would name (GLOBAL and STACK_GLOBAL)
    *[(f"global-{m}.{n}", batch(labels=glob(m, n) + tup(text("touch pwned")) + b"R"),
       f"refused global {re.escape(m)}.{re.escape(n)}")
      for m, n in [("os", "system"), ("posix", "system"), ("nt", "system"),
                   ("builtins", "eval"), ("__builtin__", "eval"), ("builtins", "exec"),
                   ("builtins", "__import__"), ("builtins", "getattr"), ("builtins", "open"),
                   ("subprocess", "Popen"), ("subprocess", "check_output"),
                   ("numpy", "load"), ("numpy", "fromfile"), ("numpy", "memmap"),
                   ("numpy.lib._npyio_impl", "load"), ("numpy.core.multiarray", "scalar"),
                   ("pickle", "loads"), ("copyreg", "_reconstructor"),
                   ("importlib", "import_module"), ("shutil", "rmtree")]],
    ("stack-global-eval", b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93" + tup(text("1")) + b"R.",
     "refused global builtins.eval"),
    ("stack-global-ints", b"\x80\x04K\x01K\x02\x93.", "STACK_GLOBAL .* expected two str"),
    *[(f"os.system-protocol-{p}", blob, "refused global posix.system")
      for p, blob in protocol_pickles(TOUCH).items()],
    *[(f"os.system-in-labels-protocol-{p}", blob, "refused global posix.system")
      for p, blob in protocol_pickles({b"data": np.zeros((N, 3072), np.uint8),
                                       b"labels": [0, TOUCH]}).items() if p in (0, 2, 5)],
    # -- opcodes this reader never runs
    ("inst", b"(S'touch pwned'\nios\nsystem\n.", "refused object construction .*INST"),
    ("obj", b"\x80\x02(" + glob("os", "system") + text("touch pwned") + b"o.",
     "refused global os.system"),
    ("obj-no-global", b"\x80\x02(]o.", "refused object construction .*OBJ"),
    ("newobj", b"\x80\x02" + b"]" + b")" + b"\x81.", "refused object construction .*NEWOBJ"),
    ("newobj-ex", b"\x80\x04])}\x92.", "refused object construction .*NEWOBJ_EX"),
    ("ext1", b"\x80\x02\x82\x01.", "refused extension code .*EXT1"),
    ("ext2", b"\x80\x02\x83\x01\x00.", "refused extension code .*EXT2"),
    ("ext4", b"\x80\x02\x84\x01\x00\x00\x00.", "refused extension code .*EXT4"),
    ("persid", b"Ppid\n.", "refused persistent id .*PERSID"),
    ("binpersid", b"\x80\x02" + text("pid") + b"Q.", "refused persistent id .*BINPERSID"),
    ("next-buffer", b"\x80\x05\x97.", "refused out-of-band buffer"),
    ("readonly-buffer", b"\x80\x05\x97\x98.", "refused out-of-band buffer"),
    ("set", b"\x80\x04\x8f(K\x01\x90.", "refused set"),
    ("frozenset", b"\x80\x04(K\x01\x91.", "refused set"),
    ("dup", b"\x80\x02]2.", "refused DUP"),
    ("build-on-dict", batch(labels=b"}" + b"}" + b"b"), "refused BUILD .* on a dict"),
    ("build-on-int", b"\x80\x02K\x01}b.", "refused BUILD .* on 1"),
    # -- broken streams
    ("empty-file", b"", "truncated: the file ends at byte 0 without the STOP"),
    ("plain-text", b"hello world\n", "not a readable pickle"),
    ("truncated-header", VALID[:3], "truncated: the file ends at byte 3"),
    ("truncated-in-data", VALID[:len(VALID) // 2], "truncated: BINUNICODE .* needs"),
    ("truncated-before-stop", VALID[:-1], "without the STOP"),
    ("truncated-protocol-5", VALID5[:150], "truncated"),
    ("unknown-opcode", b"\x80\x02\xff.", "unknown opcode b'\\\\xff' at byte 2"),
    ("protocol-6", b"\x80\x06N.", "protocol 6 at byte 0"),
    ("frame-beyond-end", b"\x80\x04\x95" + struct.pack("<Q", 2**40) + b"N.", "FRAME .* announces"),
    ("binunicode-4GB", b"\x80\x02X\xff\xff\xff\xff", "BINUNICODE at byte 2 needs 4294967295"),
    ("binbytes8-2**63", b"\x80\x04\x8e" + struct.pack("<Q", 2**63) + b"ab", "BINBYTES8 .*needs"),
    ("binstring-negative", b"\x80\x02T\xff\xff\xff\xff.", "negative length -1"),
    ("bad-utf8", b"\x80\x02X\x02\x00\x00\x00\xc3\x28.", "UnicodeDecodeError in BINUNICODE"),
    ("bad-protocol0-int", b"Ixyz\n.", "ValueError in INT at byte 0"),
    ("protocol0-line-too-long", b"I" + b"1" * 5000 + b"\n.", "no end of line within 4096"),
    ("huge-long4", b"\x80\x02\x8b\xff\xff\xff\x7f",
     r"refused an integer of 2147483647 bytes \(LONG at byte 2\)"),
    ("bytes-after-stop", VALID + b"junk", "4 bytes after the STOP"),
    ("two-values-at-stop", b"\x80\x02K\x01K\x02.", "STOP at byte 6 with 2 values"),
    ("open-mark-at-stop", b"\x80\x02(K\x01.", "1 open MARKs"),
    ("pop-empty-stack", b"\x80\x020.", "POP at byte 2 without a MARK"),
    ("tuple2-of-one", b"\x80\x02K\x01\x86.", "stack underflow: TUPLE2"),
    ("reduce-empty-stack", b"\x80\x02R.", "stack underflow: REDUCE"),
    ("appends-without-mark", b"\x80\x02]K\x01e.", "APPENDS at byte 5 without a MARK"),
    ("append-onto-bytes", b"\x80\x02C\x01aK\x01a.", "APPEND at byte 7 onto b'a', expected a list"),
    ("setitem-onto-list", b"\x80\x02]K\x01K\x02s.", "SETITEM .* onto a list, expected a dict"),
    ("setitems-odd", b"\x80\x02}(K\x01u.", "with a key and no value"),
    # -- memo tricks
    ("binget-unset", b"\x80\x02h\x05.", "memo GET of index 5 at byte 2, which was never PUT"),
    ("long-binget-unset", b"\x80\x02j\xff\xff\xff\xff.", "memo GET of index 4294967295"),
    ("text-get-unset", b"g7\n.", "memo GET of index 7"),
    ("put-empty-stack", b"\x80\x02q\x00.", "memo PUT at byte 2 with an empty stack"),
    ("put-negative", b"Np-1\n.", "memo PUT at byte 1 with index -1"),
    ("list-appended-to-itself", b"\x80\x02]q\x00h\x00a.", "already stored in another"),
    ("shared-list-edited-later", b"\x80\x02]q\x00](h\x00eh\x00K\x01a.",
     "already stored in another"),
    ("array-used-before-build", batch(RECONSTRUCT + tup(NDARRAY, ints(0), blob(b"b")) + b"R"),
     "array made at byte .* before its BUILD"),
    # -- nesting and keys
    ("deep-lists", deep(100_000, b"]", b"a"), "refused nesting deeper than 32"),
    ("deep-tuples", b"\x80\x02)" + b"\x85" * 100_000 + b".", "refused nesting deeper than 32"),
    ("deep-dicts", b"\x80\x02" + b"}K\x00" * 1000 + b"}" + b"s" * 1000 + b".",
     "refused nesting deeper than 32"),
    ("many-marks", b"\x80\x02" + b"(" * 100_000 + b").", "refused more than 64 open MARKs"),
    ("string-bad-escape", b"S'ab\\q'\n.", "STRING at byte 0: invalid escape"),
    ("tuple-dict-key", b"\x80\x02}" + ints(1) + b"K\x01s.", r"refused the dict key \(1,\)"),
    ("list-dict-key", b"\x80\x02}]K\x01s.", "refused the dict key a list"),
    ("dtype-stored-as-data", batch(labels=b"](" + dtype() + b"e"),
     "refused dtype uint8 stored as data"),
    ("global-stored-as-data", batch(labels=b"](" + NDARRAY + b"e"),
     "refused numpy.ndarray stored as data"),
    # -- valid pickles of the wrong content
    ("top-level-list", b"\x80\x02](K\x01e.", "holds a list, expected a dict"),
    ("top-level-array", b"\x80\x03" + array() + b".", "holds a ndarray, expected a dict"),
    ("no-data-key", b"\x80\x03}" + blob(b"labels") + b"]s.", "has no 'data' entry"),
    ("data-float32", batch(array(dt=dtype("f4", dtype_state("<")), raw=blob(bytes(4 * N * 3072)))),
     r"'data' must be uint8 of shape \(n, 3072\), got float32"),
    ("data-1d", batch(array(shape=(3072,))), "'data' must be uint8"),
    ("data-zero-rows", batch(array(shape=(0, 3072))), "'data' must be uint8"),
    ("data-is-bytes", batch(data=blob(bytes(3072))), "'data' must be uint8"),
    ("labels-strings", batch(labels=b"](" + text("cat") * N + b"e"),
     "expected 2 integer labels, got a list of 2 holding str 'cat'"),
    ("labels-nested", batch(labels=b"](" + b"](K\x01e" * N + b"e"), "holding list"),
    ("labels-bool", batch(labels=b"](" + TRUE * N + b"e"), "holding bool True"),
    ("labels-huge-int", batch(labels=b"](" + b"\x8a\x09" + b"\x01" * 9 + b"K\x00e"),
     "holding int"),
    ("labels-too-few", batch(labels=b"](K\x01e"), "expected 2 integer labels, got int64 \\(1,\\)"),
    ("labels-out-of-range", batch(labels=b"](K\x01K\x0ae"), "labels must be 0..9, got 1..10"),
    ("labels-float-array", batch(labels=array(shape=(N,), dt=dtype("f8", dtype_state("<")),
                                              raw=blob(bytes(8 * N)))),
     "expected 2 integer labels, got float64"),
]

CHILD = """
import json, os, shutil, sys
from autotensor.data import load_cifar10
folder, rows, names = sys.argv[1], sys.argv[2], sys.argv[3:]
for name in names:
    shutil.copyfile(os.path.join(rows, name), os.path.join(folder, "data_batch_1"))
    try:
        load_cifar10(folder)
        out = {"type": None}
    except BaseException as err:
        out = {"type": type(err).__name__, "value_error": isinstance(err, ValueError),
               "message": str(err)}
    print(json.dumps({"row": name, **out}), flush=True)
"""


def write_valid_batches(folder):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [*TRAIN, "test_batch"]:
        pixels = rng.integers(0, 256, (N, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, N).tolist()
        (folder / name).write_bytes(pickle.dumps({b"data": pixels, b"labels": labels}))


def test_rows_have_unique_names():
    names = [name for name, _, _ in ROWS]
    assert len(names) == len(set(names)) and len(names) >= 40


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """{row: outcome} from children that load every row as data_batch_1 of a valid folder."""
    root = tmp_path_factory.mktemp("hostile")
    folder, rows = root / "cifar", root / "rows"
    write_valid_batches(folder)
    rows.mkdir()
    for name, blob_, _ in ROWS:
        (rows / name).write_bytes(blob_)
    results, todo = {}, [name for name, _, _ in ROWS]
    while todo:
        proc = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(rows), *todo],
                              capture_output=True, text=True, cwd=root, timeout=120)
        for line in proc.stdout.splitlines():
            out = json.loads(line)
            results[out.pop("row")] = out
        todo = [name for name in todo if name not in results]
        if todo:                                   # the child died on todo[0]: record, go on
            results[todo.pop(0)] = {"type": "crash", "returncode": proc.returncode,
                                    "stderr": proc.stderr[-2000:]}
    return {"results": results, "path": str(folder / "data_batch_1"), "root": root}


@pytest.mark.parametrize("name, fragment", [(name, fragment) for name, _, fragment in ROWS],
                         ids=[name for name, _, _ in ROWS])
def test_hostile_batch_is_a_value_error_naming_the_file(outcomes, name, fragment):
    out = outcomes["results"][name]
    assert out["type"] != "crash", f"the loader crashed: {out}"
    assert out["type"] is not None, "the hostile file loaded"
    assert out["value_error"], f"{out['type']} instead of a ValueError: {out['message']}"
    message = out["message"]
    assert message.startswith(f"CIFAR-10 file {outcomes['path']}"), message
    assert re.search(fragment, message), message


def test_no_payload_ran(outcomes):
    assert len(outcomes["results"]) == len(ROWS)
    assert not (outcomes["root"] / "pwned").exists()


def test_containers_and_memo_entries_are_capped(monkeypatch):
    """A one-byte EMPTY_LIST costs ~150 bytes of memory: the count is capped (2,000,000; 100
    here, so the test is quick and runs in-process)."""
    from autotensor import safe_pickle
    monkeypatch.setattr(safe_pickle, "_MAX_KEPT", 100)
    with pytest.raises(safe_pickle.PickleRefusedError, match="more than 100 containers"):
        safe_pickle.loads(b"\x80\x02" + b"]" * 101 + b"0" * 100 + b".")
    memo = b"".join(b"r" + struct.pack("<I", i) for i in range(101))
    with pytest.raises(safe_pickle.PickleRefusedError, match="more than 100 containers"):
        safe_pickle.loads(b"\x80\x02N" + memo + b".")
    assert safe_pickle.loads(b"\x80\x02N" + memo[:5 * 99] + b".") is None     # 99 + the result


# ---------------------------------------------------------------- random mutations

FUZZ_CHILD = """
import json, os, sys
import numpy as np
from autotensor import data
seeds = [open(p, "rb").read() for p in sys.argv[3:]]
path, cases = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(20240610)
counts = {"loaded": 0, "value_error": 0}
for case in range(cases):
    blob = bytearray(seeds[case % len(seeds)])
    kind = case // len(seeds) % 4
    # most positions go to the ~200 bytes of structure, not the pixel run in the middle
    def pos():
        if rng.random() < 0.3:
            return int(rng.integers(0, len(blob)))
        return int(rng.choice([rng.integers(0, 120), len(blob) - 1 - rng.integers(0, 120)]))
    if kind == 0:
        for _ in range(int(rng.integers(1, 4))):
            i = pos() % len(blob)
            blob[i] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:
        del blob[pos():]
    elif kind == 2:
        i = pos()
        blob[i:i] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
    else:
        i = pos() % len(blob)
        ops = b"().012abdeghjqrsuBCJKMNRTUX\\x80\\x85\\x86\\x87\\x93\\x94"
        blob[i] = int(rng.choice(list(ops)))
    with open(path, "wb") as f:
        f.write(bytes(blob))
    print(case, flush=True)
    try:
        X, y = data._read_python_batch(path)
    except ValueError as err:
        assert path in str(err), (case, str(err))
        counts["value_error"] += 1
        continue
    assert X.dtype == np.uint8 and X.ndim == 4 and X.shape[1:] == (3, 32, 32), case
    assert y.dtype == np.int64 and y.shape == (len(X),), case
    counts["loaded"] += 1
print(json.dumps(counts))
"""


def fuzz_seeds(folder):
    """Valid one-image batches in four layouts; pixels 32..126 so every layout stores them
    as one run of bytes."""
    pixels = np.random.default_rng(1).integers(32, 127, (1, 3072), dtype=np.uint8)
    pixels[pixels == ord("\\")] = 65
    obj = {b"batch_label": b"training batch 1 of 5", b"labels": [3],
           b"data": pixels, b"filenames": [b"cat_0001.png"]}
    seeds = {f"protocol-{p}": pickle.dumps(obj, protocol=p) for p in (0, 2, 5)}
    seeds["python2"] = python2_batch(pixels, [3])
    paths = []
    for name, blob_ in seeds.items():
        pathlib.Path(folder, name).write_bytes(blob_)
        paths.append(str(pathlib.Path(folder, name)))
    return paths


def test_random_mutations_load_or_raise_value_error(tmp_path):
    seeds = fuzz_seeds(tmp_path)
    target = str(tmp_path / "data_batch_1")
    cases = 1000
    proc = subprocess.run([sys.executable, "-c", FUZZ_CHILD, target, str(cases), *seeds],
                          capture_output=True, text=True, timeout=120)
    last = proc.stdout.splitlines()[-2:] if proc.stdout else []
    assert proc.returncode == 0, f"rc {proc.returncode} after case {last}: {proc.stderr[-3000:]}"
    counts = json.loads(proc.stdout.splitlines()[-1])
    assert counts["loaded"] + counts["value_error"] == cases
    assert counts["loaded"] > 20 and counts["value_error"] > 100, counts   # both paths taken



def test_fuzz_seeds_are_valid_batches(tmp_path):
    from autotensor import data
    for path in fuzz_seeds(tmp_path):
        X, y = data._read_python_batch(path)
        assert X.shape == (1, 3, 32, 32) and y.tolist() == [3], path


# ---------------------------------------------------------------- the command line

def test_cli_train_on_the_crafted_batch_fails_cleanly(tmp_path):
    folder = tmp_path / "cifar"
    write_valid_batches(folder)
    (folder / "data_batch_1").write_bytes(rebuilt_dtype_attack())
    proc = subprocess.run([sys.executable, "-m", "autotensor", "train", "--dataset", "cifar10",
                           "--data-dir", str(folder), "--out", str(tmp_path / "out"),
                           "--epochs", "1", "--num-training", "4"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode > 0, (proc.returncode, proc.stderr[-2000:])
    assert f"CIFAR-10 file {folder / 'data_batch_1'}: refused numpy.dtype('V8'" in proc.stderr
    assert proc.stderr.startswith("autotensor train: CIFAR-10 file"), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Segmentation" not in proc.stderr
