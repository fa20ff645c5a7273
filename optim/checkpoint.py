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
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import zipfile

import numpy as np

__all__ = ["save_checkpoint", "load_checkpoint", "META_KEY"]

META_KEY = "__meta__"


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
