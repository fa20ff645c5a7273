"""The results file: one JSON object per line, appended as each trial finishes.

Each line is written with a single `write` on a file opened with O_APPEND, then fsynced, so a
killed sweep leaves only whole lines, except when the machine itself goes down mid-write: the
reader ignores a last line with no newline (a torn line), and the writer cuts it off before
appending, so the file stays valid JSON lines. One sweep at a time writes a file: the writer
holds an exclusive `flock` on it while open.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping

import numpy as np

try:
    import fcntl
except ImportError:                 # not POSIX: no lock, the rest works
    fcntl = None

__all__ = ["read_results", "ResultsWriter", "jsonable"]

STATUSES = ("ok", "failed", "diverged", "timeout")


def read_results(path):
    """The records of a results file (a list of dicts), in file order; [] when it does not
    exist. A torn last line is ignored; any other bad line raises ValueError naming it."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    lines = text.split(b"\n")
    # The piece after the last newline is b"" for a whole file, else a torn last line.
    records = []
    for number, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            raise ValueError(f"{path}:{number}: not a JSON object ({err}); a results file "
                             f"holds one JSON object per line") from None
        if not isinstance(record, dict) or not isinstance(record.get("config"), dict) \
                or record.get("status") not in STATUSES:
            raise ValueError(f"{path}:{number}: a result needs a 'config' object and a "
                             f"'status' in {STATUSES}, got {line[:200]!r}")
        records.append(record)
    return records


class ResultsWriter:
    """Append records to `path` (created with its folder), holding a lock while open."""

    def __init__(self, path):
        self.path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise RuntimeError(f"{self.path} is in use by another sweep (it holds "
                                       f"the file's lock); wait for it or pick another "
                                       f"results file") from None
            self._cut_torn_line()
        except BaseException:
            os.close(self._fd)
            raise

    def _cut_torn_line(self):
        size = os.fstat(self._fd).st_size
        if size == 0 or os.pread(self._fd, 1, size - 1) == b"\n":
            return
        # Find the last newline, reading backwards in blocks.
        end = size
        while end > 0:
            start = max(0, end - 65536)
            block = os.pread(self._fd, end - start, start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                end = start + cut + 1
                break
            end = start
        warnings.warn(f"{self.path}: dropped a torn last line of {size - end} bytes (a sweep "
                      f"was stopped while writing it)", stacklevel=3)
        os.ftruncate(self._fd, end)

    def append(self, record):
        data = (json.dumps(record, allow_nan=False) + "\n").encode()
        view = memoryview(data)
        while view:                 # one write in practice; loop in case it is short
            view = view[os.write(self._fd, view):]
        os.fsync(self._fd)

    def close(self):
        if self._fd is not None:
            os.close(self._fd)      # also releases the lock
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def jsonable(value, where="metrics"):
    """`value` with numpy scalars and arrays as Python numbers and lists, and nan/inf as None
    (strict JSON has no nan; the trial's status says it diverged)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), where)
    if isinstance(value, (list, tuple)):
        return [jsonable(v, where) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"{where} is {value!r} ({type(value).__name__}); results hold numbers, "
                    f"strings, booleans, None and lists or dicts of them")


def has_nonfinite(value):
    """True when a number anywhere in `value` (dicts, lists, arrays) is nan or inf."""
    if isinstance(value, Mapping):
        return any(has_nonfinite(v) for v in value.values())
    if isinstance(value, np.ndarray) and value.dtype.kind in "fc":
        return not bool(np.isfinite(value).all())
    if isinstance(value, (list, tuple, np.ndarray)):
        return any(has_nonfinite(v) for v in value)
    if isinstance(value, (float, np.floating)) and not isinstance(value, bool):
        return not math.isfinite(value)
    return False
