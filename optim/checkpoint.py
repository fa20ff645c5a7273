"""Safe, atomic checkpoint files: a plain `.npz` of arrays plus a JSON metadata record.

Format: an uncompressed numpy `.npz` (a zip of `.npy` files). Every entry is a numeric/bool
array; the metadata dict is stored as JSON text, UTF-8 encoded, in the uint8 array named
`__meta__`. Nothing is pickled, and no entry is read through the pickle-capable readers, so
loading a checkpoint can never execute code.

Atomicity: `save_checkpoint` writes through `autotensor.serialization.atomic_write` (the one
home of atomic writes, shared with `at.save`): a temporary file in the destination's directory,
flushed, fsynced and renamed over the destination with `os.replace`. A reader sees either the
old file or the complete new one, never a partial file, even if the process dies mid-write. The
temporary file's name carries the writer's process id: a later save or load of the same
checkpoint removes the ones whose writer is dead (kill -9).

Untrusted input: `load_checkpoint` treats the file as hostile. It refuses compressed, encrypted,
duplicate and overlapping entries, reads each `.npy` header itself and checks that the shape
and dtype it declares account for exactly the bytes stored (so nothing larger than the file is
ever allocated), checks every entry's CRC-32 (a truncated or bit-flipped file raises a
ValueError naming the file instead of yielding wrong numbers), and bounds the metadata's size
and nesting. Every file handle is closed on every path.

The Solver's schema (which arrays and metadata a `Solver` checkpoint holds, version 1; the
table is in docs/training.md) is defined here too: `pack_solver` writes it, `unpack_solver`
checks a loaded file against a solver and its model (names, shapes, dtypes, finite numbers,
hyperparameter ranges, the RNG state on a scratch generator), and `model_buffers` /
`load_model_buffers` are how a model's running statistics get in and out.
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import os
import reprlib
import struct
import zipfile

import numpy as np

from autotensor import validate
from autotensor.nn.normalization import bn_buffers, load_bn_buffers
from autotensor.random import get_rng_state
from autotensor.serialization import atomic_write, parse_json, remove_stale_temps

from . import rules

__all__ = ["save_checkpoint", "load_checkpoint", "META_KEY", "pack_solver", "unpack_solver",
           "model_buffers", "load_model_buffers", "naming_errors"]

META_KEY = "__meta__"
CHECKPOINT_FORMAT = "autotensor.Solver"
CHECKPOINT_VERSION = 1
META_MAX_BYTES = 16 << 20        # of JSON text; a Solver's metadata is a few kB per parameter
META_MAX_DEPTH = 16              # nesting of JSON arrays/objects; a Solver's metadata uses 3
_ARRAY_KINDS = "biufc"           # bool, signed and unsigned integers, floats, complex
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, RuntimeError,
               NotImplementedError, OverflowError, struct.error)
_HEADER_ERRORS = (ValueError, TypeError, SyntaxError, OverflowError, RecursionError,
                  MemoryError, struct.error)
_STATE_SHAPED = ("velocity", "cache", "m", "v")      # rule state arrays shaped like the weight


# ---- writing -----------------------------------------------------------------------------------
def save_checkpoint(path, arrays, meta):
    """Write `arrays` (dict name -> ndarray) and `meta` (JSON-able dict) to `path` atomically.

    The file is written exactly at `path` (no extension is added; use `.npz`). Anything
    `load_checkpoint` would refuse (non-numeric arrays, metadata too large or too deeply
    nested) is refused here, before anything is written.
    """
    path = os.fspath(path)
    where = f"checkpoint {path!r}"
    if META_KEY in arrays:
        raise ValueError(f"array name {META_KEY!r} is reserved for the metadata")
    payload = {}
    for name, a in arrays.items():
        a = np.asarray(a)
        if not isinstance(name, str) or a.dtype.kind not in _ARRAY_KINDS:
            raise ValueError(f"checkpoint array {name!r} has dtype {a.dtype}; only numeric "
                             "arrays with string names can be saved without pickle")
        payload[name] = a
    try:
        text = json.dumps(meta, allow_nan=True)
    except (TypeError, ValueError, RecursionError) as e:
        raise ValueError(f"checkpoint metadata is not JSON-serialisable: {e}") from e
    _parse_meta(text.encode("utf-8"), where)          # the reader's limits, checked now
    payload[META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    # The atomic write and the clean-up of dead writers' temporary files: the core's one home.
    return atomic_write(path, lambda f: np.savez(f, **payload))


# ---- reading -----------------------------------------------------------------------------------
def load_checkpoint(path):
    """Read a checkpoint written by `save_checkpoint`: returns (arrays dict, meta dict).

    Raises ValueError naming the file (and the entry) for anything unreadable or untrusted:
    missing file, truncation, bad CRC, compressed/encrypted/duplicate/overlapping entries, a
    malformed `.npy` header or one declaring more data than stored, an object (pickle) or
    non-numeric array, missing, oversized, too deeply nested or invalid metadata.
    """
    path = os.fspath(path)
    where = f"checkpoint {path!r}"
    if not os.path.isfile(path):
        raise ValueError(f"{where} does not exist")
    remove_stale_temps(path)
    try:
        with open(path, "rb") as f:
            arrays = _read_npz(f, where)
    except OSError as e:
        raise ValueError(f"{where} cannot be read: {e}") from e
    meta = arrays.pop(META_KEY, None)
    if meta is None:
        raise ValueError(f"{where} has no {META_KEY!r} metadata entry")
    if meta.dtype != np.uint8 or meta.ndim != 1:
        raise ValueError(f"{where}: metadata entry has dtype {meta.dtype} and shape "
                         f"{meta.shape}, expected 1-d uint8")
    return arrays, _parse_meta(meta.tobytes(), where)


def _read_npz(f, where):
    """{name: array} of the zip open as `f`; every entry checked before it is read."""
    size = os.fstat(f.fileno()).st_size
    magic = f.read(4)
    if magic != b"PK\x03\x04":                  # every .npz (zip) file starts with this
        what = "is empty" if not magic else "is not an .npz archive (zip)"
        raise ValueError(f"{where} {what}: truncated, corrupted or another format")
    f.seek(0)
    try:
        z = zipfile.ZipFile(f)
    except _ZIP_ERRORS as e:
        raise ValueError(f"{where} is truncated or corrupted: {type(e).__name__}: {e}") from e
    with z:
        infos = z.infolist()
        names = [i.filename for i in infos]
        dup = sorted(n for n, c in collections.Counter(names).items() if c > 1)
        if dup:
            raise ValueError(f"{where} has duplicate entries {dup}: refusing to pick one")
        odd = sorted(n for n in names if not n.endswith(".npy"))
        if odd:
            raise ValueError(f"{where}: entries {odd} are not .npy arrays")
        packed = sorted(i.filename for i in infos if i.compress_type != zipfile.ZIP_STORED)
        if packed:
            raise ValueError(f"{where}: entries {packed} are compressed; checkpoints are "
                             "written uncompressed (a small compressed entry can inflate to "
                             "gigabytes), refusing them")
        locked = sorted(i.filename for i in infos if i.flag_bits & 0x1)
        if locked:
            raise ValueError(f"{where}: entries {locked} are encrypted")
        stored = sum(i.compress_size for i in infos)
        if stored > size or any(i.file_size != i.compress_size
                                or i.header_offset + i.compress_size > size for i in infos):
            raise ValueError(f"{where} is truncated or corrupted: its entries declare "
                             f"{stored} bytes, the file has {size}")
        return {i.filename[:-len(".npy")]: _read_npy(z, i, where) for i in infos}


def _read_npy(z, info, where):
    """One `.npy` entry; its header is checked against the entry's size before any data is
    read, so a header declaring 2**40 elements costs nothing."""
    name = info.filename
    try:
        with z.open(info) as fp:
            try:
                readers = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}
                version = np.lib.format.read_magic(fp)
                if version not in readers:
                    raise ValueError(f"unsupported .npy format version {version}")
                shape, fortran_order, dtype = readers[version](fp)
            except _HEADER_ERRORS as e:
                raise ValueError(f"{where}: entry {name!r} has a malformed .npy header: "
                                 f"{type(e).__name__}: {e}") from e
            if dtype.hasobject:
                raise ValueError(f"{where} contains an object array (pickled data) in entry "
                                 f"{name!r}; refusing to load it")
            if dtype.kind not in _ARRAY_KINDS:
                raise ValueError(f"{where}: entry {name!r} has dtype {dtype}; checkpoints "
                                 "hold numeric arrays only")
            if any(n < 0 for n in shape):
                raise ValueError(f"{where}: entry {name!r} declares shape {shape}")
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes != info.file_size - fp.tell():
                raise ValueError(f"{where}: entry {name!r} declares shape {shape} of {dtype} "
                                 f"({nbytes} bytes) but stores {info.file_size - fp.tell()} "
                                 "bytes")
            data = fp.read(nbytes)
            if len(data) != nbytes or fp.read(1):    # reading to the end checks the CRC-32
                raise ValueError(f"{where} is truncated or corrupted: entry {name!r} holds "
                                 "fewer or more bytes than declared")
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as e:
        raise ValueError(f"{where} is truncated or corrupted: {type(e).__name__}: {e}") from e
    return np.frombuffer(bytearray(data), dtype=dtype).reshape(
        shape, order="F" if fortran_order else "C")


def _parse_meta(raw, where):
    """The metadata dict from its UTF-8 JSON bytes; size, nesting and duplicate keys bounded."""
    meta = parse_json(raw, f"{where}: metadata", META_MAX_BYTES, META_MAX_DEPTH)
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: metadata is a {type(meta).__name__}, "
                         "expected a JSON object")
    return meta


# ---- the Solver's checkpoint schema ------------------------------------------------------------
def pack_solver(solver):
    """(arrays, meta) holding everything a `Solver` needs to resume, in the version-1 layout."""
    params = solver.model.params
    arrays = {f"params/{k}": np.asarray(v) for k, v in params.items()}
    arrays.update({f"best/{k}": v for k, v in solver.best_params.items()})
    scalars, array_keys = {}, {}
    for name, config in solver.optim_configs.items():
        scalars[name], array_keys[name] = {}, []
        for key, value in config.items():
            if isinstance(value, np.ndarray):
                arrays[f"optim/{name}/{key}"] = value
                array_keys[name].append(key)
            else:      # checked as the loader will check it: never write what it refuses
                what = f"optim config {name}.{key}"
                scalars[name][key] = _rule_scalar(what, key, _json_scalar(value, what))
    buffers = model_buffers(solver.model)
    arrays.update({f"buffers/{k}": np.asarray(v) for k, v in buffers.items()})
    arrays["history/loss"] = np.asarray(solver.loss_history, dtype=np.float64)
    arrays["history/train_acc"] = np.asarray(solver.train_acc_history, dtype=np.float64)
    arrays["history/val_acc"] = np.asarray(solver.val_acc_history, dtype=np.float64)
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    arrays["rng/keys"] = keys
    generator = get_rng_state()
    meta = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "epoch": solver.epoch,
        "iteration": int(solver.iteration),
        "update_rule": solver.update_rule.__name__, "lr_decay": float(solver.lr_decay),
        "batch_size": int(solver.batch_size), "num_epochs": int(solver.num_epochs),
        "num_train_samples": _int_or_none(solver.num_train_samples),
        "num_val_samples": _int_or_none(solver.num_val_samples),
        "best_val_acc": float(solver.best_val_acc),
        "param_names": list(params), "best_names": list(solver.best_params),
        "buffer_names": list(buffers), "optim_scalars": scalars, "optim_arrays": array_keys,
        "rng": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss),
                "cached_gaussian": float(cached)},
        "generator": {**generator["state"], "has_uint32": generator["has_uint32"],
                      "uinteger": generator["uinteger"]},
    }
    return arrays, meta


_META_KEYS = ("format", "version", "epoch", "update_rule", "lr_decay", "batch_size",
              "num_epochs", "num_train_samples", "num_val_samples", "best_val_acc",
              "param_names", "best_names", "buffer_names", "optim_scalars", "optim_arrays", "rng")
# Added to version 1 later (mid-epoch resume); a file without them resumes at its epoch's end,
# with autotensor's global generator left as it is.
_OPTIONAL_META_KEYS = ("iteration", "generator")
# The update rules' hyperparameters and their ranges, as optim/rules.py declares them.
_RULE_RANGES = {key: within for hyper in rules.HYPERPARAMETERS.values()
                for key, within in hyper.items()}
# Rule state that averages or sums squared gradients: never negative (sqrt would be NaN).
NONNEGATIVE_STATE = ("v", "cache")


def unpack_solver(solver, arrays, meta):
    """Check loaded (arrays, meta) against `solver` and its model; return the state to assign:
    params, best, optim_configs, buffers, history, rng (none of it is assigned here). The
    buffers' names and shapes are checked by `load_model_buffers` itself, which assigns them
    only when all are valid."""
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"not a {CHECKPOINT_FORMAT} checkpoint of version "
                         f"{CHECKPOINT_VERSION} (format {_short(meta.get('format'))}, version "
                         f"{_short(meta.get('version'))})")
    missing = [k for k in _META_KEYS if k not in meta]
    unknown = sorted(set(meta) - set(_META_KEYS) - set(_OPTIONAL_META_KEYS))
    if missing or unknown:
        raise ValueError(f"malformed metadata: missing keys {missing}, unknown keys "
                         f"{_short(unknown)}")
    validate.size("", "metadata 'epoch'", meta["epoch"], 0)
    if "iteration" in meta:
        validate.size("", "metadata 'iteration'", meta["iteration"], 0)
    validate.number("", "metadata 'best_val_acc'", meta["best_val_acc"], "in [0, 1]")
    validate.number("", "metadata 'lr_decay'", meta["lr_decay"], "> 0")
    validate.size("", "metadata 'batch_size'", meta["batch_size"], 1)
    validate.size("", "metadata 'num_epochs'", meta["num_epochs"], 0)
    for key in ("num_train_samples", "num_val_samples"):
        if meta[key] is not None:
            validate.size("", f"metadata {key!r}", meta[key], 1)
    if meta["update_rule"] != solver.update_rule.__name__:
        raise ValueError(f"it was written with update rule {_short(meta['update_rule'])}, "
                         f"this solver uses {solver.update_rule.__name__!r}")
    params = solver.model.params
    names, mine = _names(meta, "param_names"), set(params)
    if set(names) != mine:
        raise ValueError(f"its parameters {sorted(names)} differ from the model's "
                         f"{sorted(mine)}")
    best = _names(meta, "best_names")
    if best and set(best) != mine:
        raise ValueError(f"its best params {sorted(best)} differ from the model's "
                         f"{sorted(mine)}")
    entries = _Entries(arrays)
    state = {"params": {n: entries.weights(f"params/{n}", params[n]) for n in names},
             "best": {n: entries.weights(f"best/{n}", params[n]) for n in best},
             "optim_configs": _optim_configs(meta, names, params, entries),
             "buffers": {n: entries.take(f"buffers/{n}")
                         for n in _names(meta, "buffer_names")},
             "history": _histories(entries),
             "rng": _rng_state(meta["rng"], entries.take("rng/keys", (624,), kinds="u")),
             "iteration": meta.get("iteration"),
             "generator": _generator_state(meta["generator"]) if "generator" in meta else None}
    extra = sorted(set(arrays) - entries.used)
    if extra:
        raise ValueError(f"unexpected array(s) {_short(extra)}")
    return state


class _Entries:
    """The arrays of a loaded checkpoint, taken by name (what is never taken is unexpected)."""

    _KINDS = {"f": "floating point", "u": "unsigned integer", "biuf": "real numbers"}

    def __init__(self, arrays):
        self.arrays, self.used = arrays, set()

    def take(self, key, shape=None, kinds="biuf"):
        if key not in self.arrays:
            raise ValueError(f"array {key!r} is missing")
        a = self.arrays[key]
        if shape is not None and a.shape != shape:
            raise ValueError(f"array {key!r} has shape {a.shape}, the model expects {shape}")
        if a.dtype.kind not in kinds:
            raise ValueError(f"array {key!r} has dtype {a.dtype}, expected "
                             f"{self._KINDS[kinds]}")
        self.used.add(key)
        return a

    def weights(self, key, like):
        """A parameter array, cast to the dtype of the model's `like`."""
        return self.take(key, np.shape(like), kinds="f").astype(np.asarray(like).dtype)


def _optim_configs(meta, names, params, entries):
    """Every parameter's update-rule config: hyperparameters (finite, in range) and state
    arrays (real, weight-shaped where the rules expect it)."""
    scalars, array_keys = meta["optim_scalars"], meta["optim_arrays"]
    for key, table in (("optim_scalars", scalars), ("optim_arrays", array_keys)):
        if not isinstance(table, dict) or set(table) != set(names):
            raise ValueError(f"metadata {key!r} must map each parameter {sorted(names)} to "
                             f"its config, got {_short(table)}")
    configs = {}
    for n in names:
        if not isinstance(scalars[n], dict):
            raise ValueError(f"metadata optim_scalars[{n!r}] must be an object, got "
                             f"{_short(scalars[n])}")
        config = {k: _rule_scalar(f"optim config {n}.{k}", k, v) for k, v in scalars[n].items()}
        keys = array_keys[n]
        if (not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)
                or len(set(keys)) != len(keys) or set(keys) & set(config)):
            raise ValueError(f"metadata optim_arrays[{n!r}] must list distinct config keys "
                             f"not among the scalars, got {_short(keys)}")
        for key in keys:
            shape = np.shape(params[n]) if key in _STATE_SHAPED else None
            a = entries.take(f"optim/{n}/{key}", shape)
            # NOTE: NaN and inf are kept (a diverged run reloads as it was saved); a negative
            # average of squares cannot be saved by the rules and would make sqrt NaN.
            if key in NONNEGATIVE_STATE and np.any(a < 0):
                raise ValueError(f"array 'optim/{n}/{key}' holds negative values (it "
                                 "averages squared gradients)")
            config[key] = a.copy()
        configs[n] = config
    return configs


def _rule_scalar(what, key, value):
    """A saved hyperparameter of an update rule: the rules' own keys are range-checked, a
    custom rule's may be any finite number, bool, string or None."""
    if key == "t":                            # Adam's step count
        return validate.size("", what, value, 0)
    if key in _RULE_RANGES:
        return validate.number("", what, value, _RULE_RANGES[key])
    if value is None or isinstance(value, (bool, str)):
        return value
    return validate.number("", what, value)


def _histories(entries):
    hist = {h: entries.take(f"history/{h}", kinds="f") for h in ("loss", "train_acc", "val_acc")}
    for h, a in hist.items():
        if a.ndim != 1:
            raise ValueError(f"array 'history/{h}' has shape {a.shape}, history arrays are 1-d")
    if len(hist["train_acc"]) != len(hist["val_acc"]):
        raise ValueError(f"train/val accuracy histories have lengths {len(hist['train_acc'])} "
                         f"and {len(hist['val_acc'])}")
    for h in ("train_acc", "val_acc"):
        if not np.all((hist[h] >= 0) & (hist[h] <= 1)):
            raise ValueError(f"array 'history/{h}' holds values outside [0, 1] (accuracies)")
    return {h: a.tolist() for h, a in hist.items()}


def _rng_state(rng, keys):
    """numpy's global RNG state from the metadata and `rng/keys`, tried on a scratch
    generator (numpy itself accepts a position of -1 or an all-zero state)."""
    fields = ("kind", "pos", "has_gauss", "cached_gaussian")
    if not isinstance(rng, dict) or set(rng) != set(fields):
        raise ValueError(f"metadata 'rng' must hold exactly {list(fields)}, got {_short(rng)}")
    if rng["kind"] != "MT19937":
        raise ValueError(f"metadata rng kind {_short(rng['kind'])} is not 'MT19937'")
    pos = validate.size("", "metadata rng pos", rng["pos"], 0)
    if pos > 624 or rng["has_gauss"] not in (0, 1) or type(rng["has_gauss"]) is not int:
        raise ValueError(f"metadata rng pos {pos} / has_gauss {_short(rng['has_gauss'])} out "
                         "of range (0..624 / 0 or 1)")
    cached = validate.number("", "metadata rng cached_gaussian", rng["cached_gaussian"])
    if keys.dtype != np.uint32 or not keys.any():
        raise ValueError(f"array 'rng/keys' has dtype {keys.dtype} and "
                         f"{'no' if not keys.any() else 'some'} nonzero words, expected uint32 "
                         "and a nonzero state")
    state = ("MT19937", keys.copy(), pos, rng["has_gauss"], float(cached))
    try:
        np.random.RandomState(0).set_state(state)
    except (ValueError, TypeError) as e:
        raise ValueError(f"the RNG state (metadata 'rng', array 'rng/keys') is refused: "
                         f"{e}") from e
    return state


def _generator_state(generator):
    """autotensor's global generator state (PCG64) from the metadata, as `at.set_rng_state`
    takes it, tried on a scratch generator."""
    fields = {"state": 2**128, "inc": 2**128, "has_uint32": 2, "uinteger": 2**32}
    if not isinstance(generator, dict) or set(generator) != set(fields):
        raise ValueError(f"metadata 'generator' must hold exactly {list(fields)}, got "
                         f"{_short(generator)}")
    for key, end in fields.items():
        value = generator[key]
        if type(value) is not int or not 0 <= value < end:
            raise ValueError(f"metadata generator {key} must be an integer in [0, {end}), got "
                             f"{_short(value)}")
    state = {"bit_generator": "PCG64",
             "state": {"state": generator["state"], "inc": generator["inc"]},
             "has_uint32": generator["has_uint32"], "uinteger": generator["uinteger"]}
    try:
        np.random.PCG64().state = state
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        raise ValueError(f"the generator state (metadata 'generator') is refused: {e}") from e
    return state


@contextlib.contextmanager
def naming_errors(path):
    """Re-raise anything wrong inside as a ValueError naming the checkpoint file."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise ValueError(f"checkpoint {os.fspath(path)!r}: malformed metadata "
                         f"({type(e).__name__}: {e})") from e
    except ValueError as e:
        raise ValueError(f"checkpoint {os.fspath(path)!r}: {e}") from e


def model_buffers(model):
    """{name: ndarray} of the arrays a model keeps outside `params` (running statistics).

    A model with a `buffers` / `load_buffers` pair (the course models in nn.models,
    `ModuleModel`) names its own; for any other course-style model, the arrays in its
    `bn_params` dicts are read as nn.models' models read theirs.
    """
    if callable(getattr(model, "load_buffers", None)):
        return dict(model.buffers)
    return bn_buffers(getattr(model, "bn_params", None) or [])


def load_model_buffers(model, arrays):
    """Assign `arrays` (named as `model_buffers` names them); checks everything first."""
    if callable(getattr(model, "load_buffers", None)):
        model.load_buffers(arrays)
    else:
        load_bn_buffers(getattr(model, "bn_params", None) or [], arrays,
                        getattr(model, "params", None))


def _int_or_none(value):
    return None if value is None else int(value)     # a numpy integer is not JSON


def _json_scalar(value, what):
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"cannot checkpoint {what} of type {type(value).__name__}: only arrays and "
                     "numbers/strings are saved")


def _names(meta, key):
    names = meta[key]
    if (not isinstance(names, list) or not all(isinstance(n, str) for n in names)
            or len(set(names)) != len(names)):
        raise ValueError(f"metadata {key!r} must be a list of distinct names, got "
                         f"{_short(names)}")
    return names


def _short(value):
    """repr() cut short: hostile metadata must not make a megabyte error message."""
    return reprlib.repr(value)
