"""`at.save` / `at.load`: state dicts and checkpoints as safetensors files, never pickle.

    at.save(model.state_dict(), "m.safetensors")          # any safetensors reader loads it
    model.load_state_dict(at.load("m.safetensors"))
    at.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3,
             "rng": at.get_rng_state()}, "ckpt.safetensors")

The file is a safetensors file (docs/reliability.md has the format): an 8-byte little-endian
header length, a JSON header giving each tensor's dtype, shape and byte range, then the bytes.
A flat `{name: array}` dict is stored as exactly those tensors under exactly those names, so
`safetensors.torch.load_file` (or any other reader) gives them back. Anything nested is
flattened: a tensor's name is its path of keys joined by dots ("optimizer.state.0.m"), and the
structure (dicts with str or int keys, lists, tuples, numbers, strings, bools, None) goes into
the header's `__metadata__` as JSON text under the key "autotensor", so `at.load` rebuilds it.
A CRC-32 of that text and of every tensor's name, dtype, shape and bytes goes beside it
("autotensor.crc32"): the format has no checksum of its own, and a flipped bit in a checkpoint
must not load as a slightly different weight.

`at.load` returns numpy arrays (what `Module.state_dict()` returns and `load_state_dict`,
optimizers and `np.random.set_state` take), never Tensors, and numpy scalars saved come back
as Python numbers. It treats the file as hostile: the header is bounded, every entry checked
against the file's size before any data is read, and anything malformed raises a ValueError
naming the file; nothing is returned unless everything was valid.

This module is also the core's one home of atomic file writes (`atomic_write`: temp file,
fsync, rename), of the clean-up of temporary files left by writers that died
(`remove_stale_temps`) and of bounded JSON parsing (`parse_json`); optim/checkpoint.py uses them.
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import os
import re
import reprlib
import secrets
import struct
import zlib
from collections.abc import Mapping

import numpy as np

from .tensor import Tensor

__all__ = ["save", "load"]

HEADER_MAX_BYTES = 100_000_000   # the safetensors reference reader's own limit
MAX_NESTING = 32                 # containers inside containers in a saved object
STRUCTURE_KEY = "autotensor"     # the __metadata__ entry holding the saved structure
CHECKSUM_KEY = "autotensor.crc32"   # and the one holding the CRC-32 of it and the tensors
STRUCTURE_VERSION = 1
# safetensors dtype names and the numpy dtypes they are read as (little-endian). Complex and
# bfloat16 are left out: numpy has no bfloat16, and older safetensors releases no complex.
DTYPES = {"BOOL": "|b1", "U8": "|u1", "I8": "|i1", "U16": "<u2", "I16": "<i2", "U32": "<u4",
          "I32": "<i4", "U64": "<u8", "I64": "<i8", "F16": "<f2", "F32": "<f4", "F64": "<f8"}
_CODES = {np.dtype(d): code for code, d in DTYPES.items()}
_TAGS = ("dict", "list", "tuple", "tensor", "float")
# Each nesting level costs at most three JSON levels ({"dict": [[key, value]]}).
_JSON_DEPTH = 3 * MAX_NESTING + 2


# ---- saving -----------------------------------------------------------------------------------
def save(obj, f):
    """Write `obj` (a dict; see the module docstring) to the path `f` as a safetensors file.

    Tensors and arrays (bool, integer or float dtypes) become tensors; everything else must be
    a dict with str or int keys, a list, a tuple, a number, a string, a bool or None. The file
    is written atomically: a reader sees the old file or the new one, never a torn one.
    Anything `load` would refuse is refused here, before anything is written. Unlike
    torch.save, `f` must be a path (not a file object): the atomic rename needs one.
    """
    if not isinstance(f, (str, os.PathLike)):
        raise TypeError(f"at.save: f must be a path (str or os.PathLike), got "
                        f"{type(f).__name__}")
    path = os.fspath(f)
    if not isinstance(obj, Mapping):
        raise ValueError(f"at.save: obj must be a dict (a state_dict, or a dict of them), got "
                         f"{type(obj).__name__}")
    tensors = {}
    tree = _encode(obj, (), tensors)
    text = json.dumps({"version": STRUCTURE_VERSION, "object": tree}, allow_nan=False)
    where = f"at.save to {path!r}"
    parse_json(text.encode("utf-8"), where, HEADER_MAX_BYTES, _JSON_DEPTH)   # load's limits

    from safetensors.numpy import save as safetensors_bytes
    metadata = {STRUCTURE_KEY: text, CHECKSUM_KEY: str(_checksum(text, tensors))}
    data = safetensors_bytes(tensors, metadata=metadata)
    (header_bytes,) = struct.unpack("<Q", data[:8])
    if header_bytes > HEADER_MAX_BYTES:
        raise ValueError(f"{where}: the header would be {header_bytes} bytes, more than the "
                         f"{HEADER_MAX_BYTES} a reader accepts")
    return atomic_write(path, lambda fp: fp.write(data))


def _encode(obj, keys, tensors):
    """The JSON form of `obj` at the path `keys`; its arrays are added to `tensors`."""
    if isinstance(obj, Tensor):
        obj = obj.data
    if isinstance(obj, np.ndarray):
        return {"tensor": _add_tensor(obj, keys, tensors)}
    if isinstance(obj, np.generic):
        obj = obj.item()                     # NOTE: comes back as a Python number
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"float": repr(obj)}     # 'nan', 'inf', '-inf'
    if len(keys) >= MAX_NESTING and isinstance(obj, (Mapping, list, tuple)):
        raise ValueError(f"at.save: {_show_path(keys)} nests more than {MAX_NESTING} levels "
                         "deep (a dict or list that contains itself?)")
    if isinstance(obj, Mapping):
        pairs = []
        for k, v in obj.items():
            if isinstance(k, np.integer):
                k = int(k)
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise ValueError(f"at.save: {_show_path(keys)} has a key {k!r} of type "
                                 f"{type(k).__name__}; keys must be str or int")
            pairs.append([k, _encode(v, (*keys, k), tensors)])
        return {"dict": pairs}
    if isinstance(obj, (list, tuple)):
        return {type(obj).__name__: [_encode(v, (*keys, i), tensors) for i, v in enumerate(obj)]}
    raise ValueError(f"at.save: {_show_path(keys)} is a {type(obj).__name__}; only tensors, "
                     "arrays, dicts, lists, tuples, numbers, strings, bools and None can be saved")


def _add_tensor(a, keys, tensors):
    if a.dtype.newbyteorder("<") not in _CODES:
        raise ValueError(f"at.save: {_show_path(keys)} has dtype {a.dtype}; safetensors files "
                         "hold bool, integer and float arrays")
    name = ".".join(str(k) for k in keys)
    if name in tensors or name == "__metadata__":
        raise ValueError(f"at.save: {_show_path(keys)} would be stored as tensor {name!r}, a "
                         "name already taken (keys joined by dots collide)")
    # Little-endian and contiguous: the file's layout (the writer reads raw memory).
    tensors[name] = np.asarray(a, dtype=a.dtype.newbyteorder("<"), order="C")
    return name


def _show_path(keys):
    return "obj" + "".join(f"[{k!r}]" for k in keys)


def _checksum(text, tensors):
    """CRC-32 of the structure's JSON text and of each tensor's name, dtype, shape and bytes
    (little-endian, C order), in name order: the same whatever order the file stores them in."""
    crc = zlib.crc32(text.encode("utf-8"))
    for name in sorted(tensors):
        a = tensors[name]
        crc = zlib.crc32(f"{name}|{_CODES[a.dtype]}|{list(a.shape)}".encode(), crc)
        crc = zlib.crc32(a, crc)
    return crc


# ---- loading ----------------------------------------------------------------------------------
def load(f):
    """Read a safetensors file: the object `save` wrote, or {name: ndarray} for a file from
    any other writer (e.g. `safetensors.torch.save_file`), in the file's order.

    Arrays come back as numpy arrays (writeable, little-endian as stored), never Tensors. Raises a
    ValueError naming the file for a missing, truncated or malformed file; nothing is returned
    unless the whole file is valid.
    """
    if not isinstance(f, (str, os.PathLike)):
        raise TypeError(f"at.load: f must be a path (str or os.PathLike), got "
                        f"{type(f).__name__}")
    path = os.fspath(f)
    where = f"safetensors file {path!r}"
    if not os.path.isfile(path):
        raise ValueError(f"{where} does not exist")
    remove_stale_temps(path)
    try:
        with open(path, "rb") as fp:
            entries, metadata, data_bytes = _read_header(fp, where)
            buffer = bytearray(data_bytes)
            if fp.readinto(buffer) != data_bytes:
                raise ValueError(f"{where} is truncated: it ended while being read")
    except OSError as e:
        raise ValueError(f"{where} cannot be read: {e}") from e
    arrays = {name: np.frombuffer(buffer, DTYPES[dtype], math.prod(shape), begin).reshape(shape)
              for name, (dtype, shape, begin) in entries.items()}
    if STRUCTURE_KEY not in metadata:
        return arrays
    if metadata.get(CHECKSUM_KEY) != str(_checksum(metadata[STRUCTURE_KEY], arrays)):
        raise ValueError(f"{where} is corrupted: the CRC-32 of its tensors and structure is not "
                         f"the {_short(metadata.get(CHECKSUM_KEY))} at.save wrote (a flipped "
                         "bit, or the file was edited)")
    structure = parse_json(metadata[STRUCTURE_KEY].encode("utf-8"),
                           f"{where}: metadata {STRUCTURE_KEY!r}", HEADER_MAX_BYTES, _JSON_DEPTH)
    if (not isinstance(structure, dict) or set(structure) != {"version", "object"}
            or type(structure["version"]) is not int or structure["version"] != STRUCTURE_VERSION):
        raise ValueError(f"{where}: metadata {STRUCTURE_KEY!r} is not version "
                         f"{STRUCTURE_VERSION} of autotensor's structure: {_short(structure)}")
    used = set()
    obj = _decode(structure["object"], arrays, used, where)
    if not isinstance(obj, dict) or used != set(arrays):
        raise ValueError(f"{where}: metadata {STRUCTURE_KEY!r} does not account for its tensors "
                         f"(unused: {_short(sorted(set(arrays) - used))})")
    return obj


def _read_header(fp, where):
    """({name: (dtype, shape, offset)}, metadata, data size) of the file open as `fp`; every
    entry is checked against the file's size before anything else is read."""
    size = os.fstat(fp.fileno()).st_size
    head = fp.read(8)
    if len(head) < 8:
        raise ValueError(f"{where} is truncated: {size} bytes, not even a header length")
    (n,) = struct.unpack("<Q", head)
    if n > HEADER_MAX_BYTES or 8 + n > size:
        raise ValueError(f"{where} declares a header of {n} bytes; the file has {size} and the "
                         f"limit is {HEADER_MAX_BYTES} (truncated, or not a safetensors file)")
    header = parse_json(fp.read(n), f"{where}: header", n, 3)
    if not isinstance(header, dict):
        raise ValueError(f"{where}: the header is a {type(header).__name__}, not a JSON object")
    metadata = header.pop("__metadata__", None)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError(f"{where}: '__metadata__' must map strings to strings, got "
                         f"{_short(metadata)}")
    entries, spans = {}, []
    for name, info in header.items():
        dtype, shape, begin, end = _entry(name, info, where)
        entries[name] = (dtype, shape, begin)
        spans.append((begin, end, name))
    data_bytes, at = size - 8 - n, 0
    for begin, end, name in sorted(spans):
        if begin != at:            # the format's rule: the entries tile the data, in any order
            raise ValueError(f"{where}: tensor {name!r} starts at byte {begin} of the data, "
                             f"expected {at} (entries overlap or leave a gap)")
        at = end
    if at != data_bytes:
        raise ValueError(f"{where} is truncated or has trailing bytes: its tensors cover {at} "
                         f"bytes of data, the file holds {data_bytes}")
    return dict(sorted(entries.items(), key=lambda e: e[1][2])), metadata, data_bytes


def _entry(name, info, where):
    what = f"{where}: tensor {name!r}"
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise ValueError(f"{what} must hold exactly 'dtype', 'shape' and 'data_offsets', got "
                         f"{_short(info)}")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in DTYPES:
        raise ValueError(f"{what} has dtype {_short(dtype)}; readable: {sorted(DTYPES)}")
    if not isinstance(shape, list) or not all(_natural(d) for d in shape):
        raise ValueError(f"{what} has shape {_short(shape)}, not a list of integers >= 0")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_natural, offsets))
            or offsets[0] > offsets[1]):
        raise ValueError(f"{what} has data_offsets {_short(offsets)}, not [begin, end] with "
                         "0 <= begin <= end")
    nbytes = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize
    if nbytes != offsets[1] - offsets[0]:
        raise ValueError(f"{what} declares shape {shape} of {dtype} ({nbytes} bytes) but "
                         f"spans {offsets[1] - offsets[0]} bytes")
    return dtype, tuple(shape), offsets[0], offsets[1]


def _natural(v):
    return type(v) is int and v >= 0


def _decode(node, arrays, used, where):
    """The object saved as the JSON `node`; `used` collects the tensor names it takes."""
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if not isinstance(node, dict) or len(node) != 1 or next(iter(node)) not in _TAGS:
        raise ValueError(f"{where}: metadata {STRUCTURE_KEY!r} holds {_short(node)}, not a "
                         f"value tagged with one of {list(_TAGS)}")
    (tag, value), = node.items()
    if tag == "tensor":
        if not isinstance(value, str) or value not in arrays or value in used:
            raise ValueError(f"{where}: metadata {STRUCTURE_KEY!r} names tensor "
                             f"{_short(value)}, which the file does not hold (or names twice)")
        used.add(value)
        return arrays[value]
    if tag == "float":
        if value not in ("nan", "inf", "-inf"):
            raise ValueError(f"{where}: metadata {STRUCTURE_KEY!r} holds the float "
                             f"{_short(value)}; only 'nan', 'inf' and '-inf' are written so")
        return float(value)
    if not isinstance(value, list):
        raise ValueError(f"{where}: metadata {STRUCTURE_KEY!r}: a {tag} must be a JSON array, "
                         f"got {_short(value)}")
    if tag != "dict":
        items = [_decode(v, arrays, used, where) for v in value]
        return items if tag == "list" else tuple(items)
    out = {}
    for pair in value:
        if (not isinstance(pair, list) or len(pair) != 2 or isinstance(pair[0], bool)
                or not isinstance(pair[0], (str, int)) or pair[0] in out):
            raise ValueError(f"{where}: metadata {STRUCTURE_KEY!r}: a dict entry must be a "
                             f"[key, value] pair with a new str or int key, got {_short(pair)}")
        out[pair[0]] = _decode(pair[1], arrays, used, where)
    return out


# ---- bounded JSON ------------------------------------------------------------------------------
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPENING, _BRACKETS = tuple(b"[{"), tuple(b"[]{}")


def parse_json(raw, where, max_bytes, max_depth):
    """The JSON value in the UTF-8 bytes `raw`, refusing more than `max_bytes`, nesting deeper
    than `max_depth` (json's recursive parser would die of a RecursionError) and duplicate
    object keys; any problem is a ValueError starting with `where`."""
    if len(raw) > max_bytes:
        raise ValueError(f"{where} is {len(raw)} bytes, more than the {max_bytes} allowed")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{where} is not valid JSON: {e}") from e
    depth = _json_depth(text)
    if depth > max_depth:
        raise ValueError(f"{where} nests {depth} levels deep, more than the {max_depth} "
                         "allowed")
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where} is not valid JSON: {e}") from e
    except ValueError as e:                   # a duplicate key, an integer of 5000 digits
        raise ValueError(f"{where} is refused: {e}") from e


def _json_depth(text):
    """The deepest nesting of arrays and objects in `text`, brackets inside strings ignored;
    counted a megabyte at a time, so a huge hostile text costs little memory."""
    codes = np.frombuffer(_JSON_STRING.sub('""', text).encode("utf-8"), dtype=np.uint8)
    codes = codes[np.isin(codes, _BRACKETS)]
    depth = deepest = 0
    for start in range(0, len(codes), 1 << 20):
        levels = depth + np.cumsum(np.where(np.isin(codes[start:start + (1 << 20)], _OPENING),
                                            1, -1))
        deepest, depth = max(deepest, int(levels.max())), int(levels[-1])
    return deepest


def _unique_keys(pairs):
    keys = collections.Counter(k for k, _ in pairs)
    dup = sorted(k for k, c in keys.items() if c > 1)
    if dup:
        raise ValueError(f"duplicate keys {dup} in a JSON object")
    return dict(pairs)


def _short(value):
    """repr() cut short: a hostile file must not make a megabyte error message."""
    return reprlib.repr(value)


# ---- atomic writes and the temporary files of dead writers -------------------------------------
def atomic_write(path, write):
    """Create or replace the file `path` with what `write(f)` writes into the binary file `f`,
    atomically: a reader sees the old file or the complete new one, never a partial file.

    `write` fills a hidden, uniquely named sibling `.{name}.{pid}-{12 hex}.tmp` (same
    directory, so the rename is atomic; the usual umask permissions), which is flushed,
    fsynced and renamed over `path` with os.replace; the directory is then fsynced. A failure
    removes the temporary file; a writer killed outright cannot, so every save and load of
    `path` first removes the ones whose writer is dead (`remove_stale_temps`). Returns `path`.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    remove_stale_temps(path)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}-"
                                  f"{secrets.token_hex(6)}.tmp")
    f = open(tmp, "xb")      # outside the try: if this fails there is nothing to remove
    try:
        with f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)
    return path


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temps(path):
    """Delete the temporary files of `path` left by writers that died mid-save (kill -9).

    Names are `.{name}.{pid}-{12 hex}.tmp` (checkpoints of earlier versions:
    `.{name}.{12 hex}.tmp`, always stale). A file whose writer process is still alive is left
    alone: it may be mid-save.
    """
    directory, base = os.path.split(os.path.abspath(os.fspath(path)))
    pattern = re.compile(rf"\.{re.escape(base)}\.(?:(\d+)-)?[0-9a-f]{{12}}\.tmp")
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if match and not _writer_alive(match.group(1)):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))


def _writer_alive(pid):
    if pid is None:
        return False
    pid = int(pid)
    # NOTE: elsewhere than POSIX, os.kill(pid, 0) would terminate the process: assume alive.
    if pid == os.getpid() or os.name != "posix":
        return True
    try:
        os.kill(pid, 0)                       # signal 0: only asks whether pid exists
    except (ProcessLookupError, OverflowError):   # no such process; no such pid at all
        return False
    except OSError:                           # PermissionError: alive, another user's
        return True
    return True
