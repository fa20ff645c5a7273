"""Running a sweep on Dask: one task per trial, results appended as each one finishes.

The client (this process) plans the configs, skips those already in the results file,
scatters the data set to every worker once, submits one task per remaining trial and writes
each result as it arrives (`as_completed`). Workers run `_run_trial`, which calls the user's
`train_fn`, enforces the time limit and turns whatever happened into one record.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
import threading
import time
import traceback
from contextlib import contextmanager

from autotensor.memory import (
    MMAP_THRESHOLD,
    TRIM_THRESHOLD,
    tune_malloc,
    user_chose_malloc_settings,
)

from .results import ResultsWriter, has_nonfinite, jsonable, read_results
from .space import config_key, plan

__all__ = ["run", "connect", "Diverged", "worker_environ"]

# One BLAS / OpenMP / numba thread per worker process: the workers are the parallelism.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


class Diverged(Exception):
    """Raise from a train_fn when the loss became nan or inf: the trial is recorded as
    "diverged" with `metrics` (what it had so far), and the sweep goes on."""

    def __init__(self, message, metrics=None):
        super().__init__(message)
        self.metrics = metrics or {}


class _TimeLimit(BaseException):
    """Raised inside a trial's thread when its time is up (a BaseException, so that a
    train_fn's `except Exception` cannot swallow it)."""


# ---- the cluster --------------------------------------------------------------------------------
def worker_environ(environ=os.environ):
    """Environment for local worker processes, set before they start (and so before numpy
    loads its BLAS): one thread each, and autotensor's malloc tuning (autotensor/memory.py)
    instead of Dask's 64 KiB trim threshold, unless the user chose malloc settings."""
    env = {name: "1" for name in THREAD_VARIABLES}
    if not user_chose_malloc_settings(environ):
        # NOTE: glibc reads these at start-up: the same thresholds autotensor sets in-process.
        env["MALLOC_TRIM_THRESHOLD_"] = str(TRIM_THRESHOLD)
        env["MALLOC_MMAP_THRESHOLD_"] = str(MMAP_THRESHOLD)
    return env


def _import_distributed():
    try:
        import distributed
    except ImportError as err:
        raise ImportError("sweeps run on dask.distributed, which is optional: "
                          "pip install 'autotensor[sweep]'") from err
    return distributed


def default_workers():
    """One worker process per core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def connect(scheduler=None, workers=None, timeout=30):
    """A dask Client: to the scheduler at `scheduler` ("tcp://host:8786"; `timeout` seconds to
    reach it), or, when None, to a new LocalCluster of `workers` processes (default: one per
    core) on 127.0.0.1 with one thread each and no dashboard. Closing the client closes a
    cluster it started."""
    distributed = _import_distributed()
    import dask

    if scheduler is not None:
        if workers is not None:
            raise ValueError("workers= sizes a local cluster; a cluster at scheduler= has the "
                             "workers started for it (dask worker ...)")
        if not isinstance(scheduler, str):
            raise ValueError(f"scheduler must be an address such as 'tcp://host:8786' or a "
                             f"dask Client, got {scheduler!r}")
        try:
            return distributed.Client(scheduler, timeout=timeout)
        except OSError as err:
            raise OSError(f"could not reach the Dask scheduler at {scheduler}: {err}") from err
    workers = default_workers() if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    # NOTE: workers inherit this process's environment when spawned, and the Nanny lets a
    # variable already set here win over its pre-spawn config: set ours here, for the start,
    # then put this process's own environment back. The config replaces Dask's defaults
    # (its 64 KiB MALLOC_TRIM_THRESHOLD_), also for restarts.
    env = worker_environ()
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        with dask.config.set({"distributed.nanny.pre-spawn-environ": env}):
            return distributed.Client(n_workers=workers, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=None)
    finally:
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        os.environ.update(saved)


# ---- one trial, on a worker ---------------------------------------------------------------------
def _async_raise(thread_id, exc_type):
    """Schedule `exc_type` in another thread (None clears a pending one)."""
    exc = None if exc_type is None else ctypes.py_object(exc_type)     # None: NULL
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), exc)


@contextmanager
def _time_limit(seconds):
    """Interrupt the body after `seconds`: a timer raises _TimeLimit in this thread.

    NOTE: the exception lands between two Python bytecodes, so a single long C call (one huge
    matmul, a time.sleep) finishes first; _run_trial also marks a trial that returned late.
    """
    if seconds is None:
        yield
        return
    thread_id, lock, state = threading.get_ident(), threading.Lock(), {"running": True}

    def expire():
        with lock:
            if state["running"]:
                _async_raise(thread_id, _TimeLimit)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:                    # after this the timer can no longer raise ...
            state["running"] = False
            timer.cancel()
            _async_raise(thread_id, None)   # ... and one it raised but not yet delivered is void


_process_ready = False
_numba_per_thread = False


def _prepare_worker(environ=os.environ):
    """Undo two defaults of workers started by `dask worker` (a local cluster's start right).

    NOTE: Dask's nanny starts its workers with MALLOC_TRIM_THRESHOLD_=65536, which
    autotensor/memory.py takes for the user's malloc choice, leaving glibc to hand memory
    back and page-fault it in again: a ThreeLayerConvNet trial ran 2x slower here. Put
    autotensor's tuning back (once per process) unless another MALLOC_* setting is there.
    And numba's parallel kernels would use every core: one thread, unless NUMBA_NUM_THREADS
    says otherwise.
    """
    global _process_ready, _numba_per_thread
    if not _process_ready:
        _process_ready = True
        import dask

        dask_trim = dask.config.get("distributed.nanny.pre-spawn-environ",
                                    default={}).get("MALLOC_TRIM_THRESHOLD_")
        if dask_trim is not None and environ.get("MALLOC_TRIM_THRESHOLD_") == str(dask_trim):
            tune_malloc({k: v for k, v in environ.items() if k != "MALLOC_TRIM_THRESHOLD_"})
        if "NUMBA_NUM_THREADS" not in environ:
            if "numba" in sys.modules:
                _numba_per_thread = True
            else:
                environ["NUMBA_NUM_THREADS"] = "1"          # read when numba is imported
    if _numba_per_thread:
        sys.modules["numba"].set_num_threads(1)            # for this task's thread


def _run_trial(train_fn, config, data, timeout):
    """Run one trial on a Dask worker and return its record (never raises)."""
    from distributed import get_worker

    _prepare_worker()
    record = {"config": config, "status": "ok", "worker": get_worker().address,
              "seconds": None, "error": None, "metrics": {}}
    start = time.perf_counter()
    try:
        try:
            with _time_limit(timeout):
                metrics = train_fn(dict(config)) if data is None else train_fn(dict(config), data)
        finally:
            record["seconds"] = time.perf_counter() - start
        if not isinstance(metrics, dict):
            raise TypeError(f"train_fn must return a dict of metrics, got "
                            f"{type(metrics).__name__}")
        record["metrics"] = jsonable(metrics)
        if timeout is not None and record["seconds"] > timeout:
            record.update(status="timeout", error=f"returned after {record['seconds']:.1f} s, "
                          f"past the time limit of {timeout} s")
        elif has_nonfinite(metrics):
            record.update(status="diverged", error="a metric is nan or inf")
    except _TimeLimit:
        record.update(status="timeout", error=f"stopped at the time limit of {timeout} s")
    except Diverged as err:
        record.update(status="diverged", error=str(err), metrics=jsonable(err.metrics))
    except Exception as err:
        record.update(status="failed", error=_error_text(err),
                      traceback="".join(traceback.format_exception(err)[-20:]))
    return record


def _error_text(err):
    return "".join(traceback.format_exception_only(type(err), err)).strip()


# ---- the sweep ----------------------------------------------------------------------------------
def run(train_fn, space, trials=None, search=None, workers=None, scheduler=None,
        results="sweep.jsonl", seed=0, data=None, timeout=None, target="best_val_acc",
        maximize=True, retry_failed=False, progress=True):
    """Run `train_fn(config)` (or `train_fn(config, data)`) for each config of `space` on Dask
    and return the records, in plan order; see docs/sweeps.md.

    space: {name: list or distribution} (autotensor.sweep.space); trials, search, seed: as in
    `plan`. workers: local worker processes (default one per core); scheduler: None for a new
    LocalCluster, an address "tcp://host:8786", or a dask Client (left open). results: the
    JSON-lines file, appended per trial; configs already in it are skipped (failed ones too,
    unless retry_failed). data: scattered to every worker once (or an already scattered
    Future). timeout: seconds per trial. target/maximize: the metric the progress bar shows.
    """
    if not callable(train_fn):
        raise ValueError(f"train_fn must be callable, got {train_fn!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds or None, "
                         f"got {timeout!r}")
    if scheduler is not None and workers is not None:
        raise ValueError("workers= sizes a local cluster; a cluster at scheduler= has the "
                         "workers started for it (dask worker ...)")
    configs = plan(space, trials, search, seed)
    distributed = _import_distributed()
    with ResultsWriter(results) as out:
        finished = {config_key(r["config"]): r for r in read_results(out.path)}  # last wins
        keys = [config_key(c) for c in configs]
        todo = [c for c, k in zip(configs, keys) if k not in finished or (
            retry_failed and finished[k]["status"] == "failed")]
        redo = {config_key(c) for c in todo}
        bar = _Progress(len(configs), [finished[k] for k in keys if k in finished and
                                       k not in redo], target, maximize, progress)
        if todo:
            for record in _submit_all(distributed, train_fn, todo, scheduler, workers, data,
                                      timeout):
                out.append(record)
                finished[config_key(record["config"])] = record
                bar.add(record)
        bar.close()
    return [finished[k] for k in keys if k in finished]


def _submit_all(distributed, train_fn, configs, scheduler, workers, data, timeout):
    """Yield each trial's record as it finishes."""
    own = not isinstance(scheduler, distributed.Client)
    client = connect(scheduler, workers) if own else scheduler
    scattered = None
    try:
        if data is not None and not isinstance(data, distributed.Future):
            # Once per worker, not with every trial (the trials receive the worker's copy).
            [data] = scattered = client.scatter([data], broadcast=True, hash=False)
        futures = {client.submit(_run_trial, train_fn, config, data, timeout, pure=False):
                   config for config in configs}
        for future in distributed.as_completed(futures):
            config = futures.pop(future)
            try:
                record = future.result()
            except BaseException as err:     # the task never ran to the end on a worker
                if isinstance(err, (KeyboardInterrupt, SystemExit)):
                    raise
                record = {"config": config, "status": "failed", "worker": None,
                          "seconds": None, "error": _error_text(err), "metrics": {}}
            record["config"] = config        # the planned config, exactly as keyed
            record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            record["metrics"] = record.pop("metrics")      # last: histories make it long
            yield record
    finally:
        if own:
            client.close()
        elif scattered:
            client.cancel(scattered)


class _Progress:
    """tqdm bar: trials done / total, the best target value so far, failures."""

    def __init__(self, total, done, target, maximize, enabled):
        from tqdm.auto import tqdm

        self.target, self.maximize, self.best, self.bad = target, maximize, None, 0
        self.bar = tqdm(total=total, initial=len(done), desc="sweep", unit="trial",
                        disable=not enabled)
        for record in done:
            self._count(record)
        self._show()

    def _count(self, record):
        value = record["metrics"].get(self.target)
        if record["status"] != "ok":
            self.bad += 1
        elif isinstance(value, (int, float)) and math.isfinite(value) and (
                self.best is None or (value > self.best) == self.maximize):
            self.best = value

    def _show(self):
        parts = [] if self.best is None else [f"best {self.target} {self.best:.4g}"]
        parts += [f"{self.bad} not ok"] if self.bad else []
        self.bar.set_postfix_str(", ".join(parts), refresh=False)

    def add(self, record):
        self._count(record)
        self._show()
        self.bar.update(1)

    def close(self):
        self.bar.close()
