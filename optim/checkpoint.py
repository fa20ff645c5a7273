"""Safe, atomic checkpoint files: a plain `.npz` of arrays plus a JSON metadata record.

Format: an uncompressed numpy `.npz` (a zip of `.npy` files). Every entry is a numeric/bool
array; the metadata dict is stored as JSON text, UTF-8 encoded, in the uint8 array named
`__meta__`. Nothing is pickled, and files are read with `np.load(..., allow_pickle=False)`, so
loading a checkpoint can never execute code; a file holding an object array is refused.

Atomicity: `save_checkpoint` writes to a temporary file in the destination's directory, flushes
and fsyncs it, then renames it over the destination with `os.replace` (atomic on POSIX and
Windows). A reader sees either the old file or the complete new one, never a partial file, even
if the process dies mid-write.

Integrity: every zip entry carries a CRC-32 that is checked when the entry is read, so a
truncated or bit-flipped file raises a ValueError naming the file instead of yielding wrong
numbers. `load_checkpoint` reads every entry before returning.

The Solver's schema (which arrays and metadata a `Solver` checkpoint holds, version 1; the
table is in docs/training.md) is defined here too: `pack_solver` writes it, `unpack_solver`
checks a loaded file against a solver and its model, and `model_buffers` /
`load_model_buffers` are how a model's running statistics get in and out.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import secrets
import zipfile

import numpy as np

from autotensor.nn.normalization import bn_buffers, load_bn_buffers

__all__ = ["save_checkpoint", "load_checkpoint", "META_KEY", "pack_solver", "unpack_solver",
           "model_buffers", "load_model_buffers", "naming_errors"]

META_KEY = "__meta__"
CHECKPOINT_FORMAT = "autotensor.Solver"
CHECKPOINT_VERSION = 1
_STATE_SHAPED = ("velocity", "cache", "m", "v")      # rule state arrays shaped like the weight


def save_checkpoint(path, arrays, meta):
    """Write `arrays` (dict name -> ndarray) and `meta` (JSON-able dict) to `path` atomically.

    The file is written exactly at `path` (no extension is added; use `.npz`).
    """
    path = os.fspath(path)
    if META_KEY in arrays:
        raise ValueError(f"array name {META_KEY!r} is reserved for the metadata")
    payload = {}
    for name, a in arrays.items():
        a = np.asarray(a)
        if a.dtype.hasobject:
            raise ValueError(f"checkpoint array {name!r} has dtype {a.dtype}; only numeric "
                             "arrays can be saved without pickle")
        payload[name] = a
    try:
        text = json.dumps(meta, allow_nan=True)
    except TypeError as e:
        raise ValueError(f"checkpoint metadata is not JSON-serialisable: {e}") from e
    payload[META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    directory = os.path.dirname(os.path.abspath(path))
    # A hidden, uniquely named sibling, created exclusively ("x"): same filesystem as `path`
    # (so the rename is atomic) and the usual umask permissions (mkstemp would force 0600).
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    f = open(tmp, "xb")      # outside the try: if this fails there is nothing to remove
    try:
        with f:
            np.savez(f, **payload)
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


def load_checkpoint(path):
    """Read a checkpoint written by `save_checkpoint`: returns (arrays dict, meta dict).

    Raises ValueError naming the file for anything unreadable: missing file, truncation, bad
    CRC, a malformed `.npy` header, an object (pickle) array, missing or invalid metadata.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint {path!r} does not exist")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":                  # every .npz (zip) file starts with this
        what = "is empty" if not magic else "is not an .npz archive (zip)"
        raise ValueError(f"checkpoint {path!r} {what}: truncated, corrupted or another format")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}    # reads (and CRC-checks) every entry
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise ValueError(f"checkpoint {path!r} contains an object array (pickled data); "
                             "refusing to load it") from e
        raise ValueError(f"checkpoint {path!r} is corrupted: {e}") from e
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError) as e:
        raise ValueError(f"checkpoint {path!r} is truncated or corrupted: "
                         f"{type(e).__name__}: {e}") from e
    odd = sorted(name for name, a in arrays.items() if not isinstance(a, np.ndarray))
    if odd:                                   # np.load returns raw bytes for non-.npy entries
        raise ValueError(f"checkpoint {path!r}: entries {odd} are not .npy arrays")
    meta = arrays.pop(META_KEY, None)
    if meta is None:
        raise ValueError(f"checkpoint {path!r} has no {META_KEY!r} metadata entry")
    if meta.dtype != np.uint8 or meta.ndim != 1:
        raise ValueError(f"checkpoint {path!r}: metadata entry has dtype {meta.dtype} and shape "
                         f"{meta.shape}, expected 1-d uint8")
    try:
        meta = json.loads(meta.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"checkpoint {path!r}: metadata is not valid JSON: {e}") from e
    if not isinstance(meta, dict):
        raise ValueError(f"checkpoint {path!r}: metadata is a {type(meta).__name__}, "
                         "expected a JSON object")
    return arrays, meta


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
            else:
                scalars[name][key] = _json_scalar(value, f"optim config {name}.{key}")
    buffers = model_buffers(solver.model)
    arrays.update({f"buffers/{k}": np.asarray(v) for k, v in buffers.items()})
    arrays["history/loss"] = np.asarray(solver.loss_history, dtype=np.float64)
    arrays["history/train_acc"] = np.asarray(solver.train_acc_history, dtype=np.float64)
    arrays["history/val_acc"] = np.asarray(solver.val_acc_history, dtype=np.float64)
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    arrays["rng/keys"] = keys
    meta = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "epoch": solver.epoch,
        "update_rule": solver.update_rule.__name__, "lr_decay": float(solver.lr_decay),
        "batch_size": solver.batch_size, "num_epochs": solver.num_epochs,
        "num_train_samples": solver.num_train_samples,
        "num_val_samples": solver.num_val_samples, "best_val_acc": float(solver.best_val_acc),
        "param_names": list(params), "best_names": list(solver.best_params),
        "buffer_names": list(buffers), "optim_scalars": scalars, "optim_arrays": array_keys,
        "rng": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss),
                "cached_gaussian": float(cached)},
    }
    return arrays, meta


def unpack_solver(solver, arrays, meta):
    """Check loaded (arrays, meta) against `solver` and its model; return the state to assign:
    params, best, optim_configs, buffers, rng (None of it is assigned here). The buffers are
    checked by `load_model_buffers` itself, when they are assigned."""
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"not a {CHECKPOINT_FORMAT} checkpoint of version "
                         f"{CHECKPOINT_VERSION} (format {meta.get('format')!r}, version "
                         f"{meta.get('version')!r})")
    epoch = meta["epoch"]
    if type(epoch) is not int or epoch < 0:          # a JSON integer (bool excluded)
        raise ValueError(f"epoch {epoch!r} is not an integer >= 0")
    if not isinstance(meta["best_val_acc"], (int, float)):
        raise ValueError(f"best_val_acc {meta['best_val_acc']!r} is not a number")
    if meta["update_rule"] != solver.update_rule.__name__:
        raise ValueError(f"it was written with update rule {meta['update_rule']!r}, this "
                         f"solver uses {solver.update_rule.__name__!r}")
    params = solver.model.params
    names, mine = list(meta["param_names"]), set(params)
    if set(names) != mine:
        raise ValueError(f"its parameters {sorted(names)} differ from the model's "
                         f"{sorted(mine)}")
    used = set()

    def take(key, shape=None):
        if key not in arrays:
            raise ValueError(f"array {key!r} is missing")
        a = arrays[key]
        if shape is not None and a.shape != shape:
            raise ValueError(f"array {key!r} has shape {a.shape}, the model expects {shape}")
        used.add(key)
        return a

    def weights(key, name):
        a = take(key, np.shape(params[name]))
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"array {key!r} has dtype {a.dtype}, expected floating point")
        return a.astype(np.asarray(params[name]).dtype)

    state = {"params": {n: weights(f"params/{n}", n) for n in names}}
    best = list(meta["best_names"])
    if best and set(best) != mine:
        raise ValueError(f"its best params {sorted(best)} differ from the model's "
                         f"{sorted(mine)}")
    state["best"] = {n: weights(f"best/{n}", n) for n in best}
    configs = {}
    for n in names:
        configs[n] = copy.deepcopy(dict(meta["optim_scalars"][n]))
        for key in meta["optim_arrays"][n]:
            shape = np.shape(params[n]) if key in _STATE_SHAPED else None
            configs[n][key] = take(f"optim/{n}/{key}", shape).copy()
    state["optim_configs"] = configs
    state["buffers"] = {n: take(f"buffers/{n}") for n in meta["buffer_names"]}
    hist = [take(f"history/{h}") for h in ("loss", "train_acc", "val_acc")]
    if any(h.ndim != 1 or not np.issubdtype(h.dtype, np.floating) for h in hist):
        raise ValueError("history arrays must be 1-d floating point")
    if len(hist[1]) != len(hist[2]):
        raise ValueError(f"train/val accuracy histories have lengths {len(hist[1])} "
                         f"and {len(hist[2])}")
    state["history"] = {h: a.tolist() for h, a in zip(("loss", "train_acc", "val_acc"), hist)}
    rng = meta["rng"]
    keys = take("rng/keys", (624,))
    if keys.dtype != np.uint32:
        raise ValueError(f"array 'rng/keys' has dtype {keys.dtype}, expected uint32")
    state["rng"] = (str(rng["kind"]), keys, int(rng["pos"]), int(rng["has_gauss"]),
                    float(rng["cached_gaussian"]))
    extra = sorted(set(arrays) - used)
    if extra:
        raise ValueError(f"unexpected array(s) {extra}")
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
        load_bn_buffers(getattr(model, "bn_params", None) or [], arrays)


def _json_scalar(value, what):
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"cannot checkpoint {what} of type {type(value).__name__}: only arrays and "
                     "numbers/strings are saved")
