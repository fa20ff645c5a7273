"""Keep freed array memory for reuse: glibc malloc thresholds, raised once at import.

Why: every op result and gradient is a fresh numpy array. By default glibc serves large
blocks with fresh mmap pages (its mmap threshold starts at 128 KiB) and hands freed memory
at the top of the heap back to the system (trim threshold 128 KiB), so each new
megabyte-sized array page-faults on first touch, at ~4 GB/s here. With both thresholds
raised, freed blocks are reused: a FullyConnectedNet step measured 9.5 -> 6 ms and a
ThreeLayerConvNet step 61 -> 41 ms (float64; docs/performance.md). The price is that up to
TRIM_THRESHOLD bytes of freed memory stay with the process.

Only on glibc, and never over a choice the user made: any MALLOC_* variable (such as
MALLOC_ARENA_MAX) or a malloc setting in GLIBC_TUNABLES leaves malloc as it is; to opt out,
set glibc's default yourself: MALLOC_TRIM_THRESHOLD_=131072.
"""

from __future__ import annotations

import ctypes
import os
import platform

MMAP_THRESHOLD = 32 << 20        # glibc's maximum on 64-bit; larger blocks still use mmap
TRIM_THRESHOLD = 256 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3      # mallopt parameters, from <malloc.h>


def user_chose_malloc_settings(environ=os.environ):
    return (any(k.startswith("MALLOC_") for k in environ)
            or "glibc.malloc" in environ.get("GLIBC_TUNABLES", ""))


def tune_malloc(environ=os.environ):
    """Raise glibc's mmap and trim thresholds; True when they were set."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if user_chose_malloc_settings(environ):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
