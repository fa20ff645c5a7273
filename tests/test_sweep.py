"""Sweeps on Dask: search spaces, the results file, a real LocalCluster, resume after SIGKILL,
a real `dask scheduler` with two `dask worker` processes, the report and the CLI."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import cloudpickle
import numpy as np
import pytest

from autotensor import sweep
from autotensor.__main__ import main
from autotensor.sweep.runner import THREAD_VARIABLES

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
# Before any cluster: a Nanny that restarts a crashed worker copies its settings into this
# process's environment, and processes started later would inherit them.
CLEAN_ENV = dict(os.environ)

# Workers cannot import this test module (pytest imports it by path): send its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


# ---- search spaces and specs --------------------------------------------------------------------
@pytest.mark.parametrize("text, kind, expected", [
    ("1e-4:1e-1", float, "uniform(0.0001, 0.1)"),
    ("1e-4:1e-1:log", float, "loguniform(0.0001, 0.1)"),
    ("50:200", int, "randint(50, 200)"),
    ("8:256:log", int, "randint(8, 256, log=True)"),
])
def test_parse_spec_ranges(text, kind, expected):
    assert repr(sweep.parse_spec(text, kind)) == expected


def test_parse_spec_lists_and_fixed_values():
    assert sweep.parse_spec("50,100, 200", int) == [50, 100, 200]
    assert sweep.parse_spec("0.5", float) == [0.5]
    assert sweep.parse_spec("adam,sgd_momentum", str) == ["adam", "sgd_momentum"]


@pytest.mark.parametrize("text, kind, match", [
    ("", float, "empty spec"),
    ("1,,2", float, "empty item"),
    ("abc", float, "'abc' is not a number"),
    ("50,1.5", int, "'1.5' is not an integer"),
    ("1:2:3", float, "bad range '1:2:3'; use a:b"),
    ("1:2:lin", float, "bad range"),
    ("1e-1:1e-4", float, "low < high"),
    ("0:1e-2:log", float, "log range needs low > 0"),
    ("1:nan", float, "not finite"),
    ("1:2,3", float, "'2,3' is not a number"),
    ("a:b", str, "takes words"),
])
def test_parse_spec_errors_name_the_problem(text, kind, match):
    with pytest.raises(ValueError, match=match):
        sweep.parse_spec(text, kind, name="--lr")
    with pytest.raises(ValueError, match="^--lr: "):
        sweep.parse_spec(text, kind, name="--lr")


def test_cli_rejects_a_bad_spec_naming_the_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "--reg", "0:1e-2:log"])
    assert exit_.value.code == 2
    assert "argument --reg: bad range '0:1e-2:log': a log range needs low > 0" in \
        capsys.readouterr().err


def test_grid_plan_is_the_product_and_sizes_ranges_to_trials():
    space = {"lr": [1e-3, 1e-2], "hidden": [50, 100, 200]}
    assert sweep.plan(space) == [{"lr": a, "hidden": h} for a in (1e-3, 1e-2)
                                 for h in (50, 100, 200)]
    ranged = {"lr": sweep.loguniform(1e-4, 1e-1), "reg": sweep.uniform(0, 1e-2),
              "hidden": [50, 100, 200]}
    configs = sweep.plan(ranged, trials=27, search="grid")        # 3 points per range
    assert len(configs) == 27
    assert sorted({c["lr"] for c in configs}) == pytest.approx([1e-4, 10 ** -2.5, 1e-1])
    assert sorted({c["reg"] for c in configs}) == pytest.approx([0, 5e-3, 1e-2])
    with pytest.raises(ValueError, match="the grid has 6 configs but trials=4"):
        sweep.plan(space, trials=4)
    with pytest.raises(ValueError, match="needs trials="):
        sweep.plan(ranged, search="grid")


def test_random_plan_is_reproducible_distinct_and_in_range():
    space = {"lr": sweep.loguniform(1e-5, 1e-1), "reg": sweep.uniform(0, 1e-2),
             "hidden": sweep.randint(10, 20), "act": sweep.choice(["relu", "tanh"]),
             "epochs": [2]}
    configs = sweep.plan(space, trials=50, seed=3)
    assert configs == sweep.plan(space, trials=50, seed=3)
    assert configs != sweep.plan(space, trials=50, seed=4)
    assert len({sweep.config_key(c) for c in configs}) == 50
    assert all(1e-5 <= c["lr"] < 1e-1 and 0 <= c["reg"] < 1e-2 and 10 <= c["hidden"] <= 20
               and c["act"] in ("relu", "tanh") and c["epochs"] == 2 for c in configs)
    assert {type(c["hidden"]) for c in configs} == {int}
    assert {c["hidden"] for c in configs} == set(range(10, 21))    # both ends included
    with pytest.raises(ValueError, match="only 4 distinct configs"):
        sweep.plan({"a": [1, 2], "b": [1, 2]}, trials=5, search="random")


@pytest.mark.parametrize("call, match", [
    (lambda: sweep.plan({}), "non-empty dict"),
    (lambda: sweep.plan({"lr": 0.1}), r"space\['lr'\] must be a list"),
    (lambda: sweep.plan({"lr": []}), "empty list"),
    (lambda: sweep.plan({"lr": [object()]}), "go into JSON"),
    (lambda: sweep.plan({"lr": sweep.uniform(0, 1)}, search="random"), "needs trials="),
    (lambda: sweep.plan({"lr": [1]}, search="bayes"), "search must be"),
    (lambda: sweep.plan({"lr": [1]}, trials=0), "trials must be"),
    (lambda: sweep.loguniform(0, 1), "low > 0"),
    (lambda: sweep.randint(1.5, 3), "must be an integer"),
])
def test_bad_spaces_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---- the results file ---------------------------------------------------------------------------
def record(x, status="ok", **metrics):
    return {"config": {"x": x}, "status": status, "worker": "tcp://127.0.0.1:1",
            "seconds": 0.1, "error": None, "metrics": {"score": x, **metrics}}


def test_results_file_tolerates_a_torn_last_line_and_the_writer_cuts_it(tmp_path):
    path = tmp_path / "r.jsonl"
    with sweep.results.ResultsWriter(path) as out:
        out.append(record(1))
        out.append(record(2))
    with open(path, "ab") as f:
        f.write(b'{"config": {"x": 3}, "sta')            # a write cut short
    assert [r["config"]["x"] for r in sweep.read_results(path)] == [1, 2]
    with pytest.warns(UserWarning, match="dropped a torn last line of 25 bytes"):
        writer = sweep.results.ResultsWriter(path)
    with writer:
        writer.append(record(3))
    assert [r["config"]["x"] for r in sweep.read_results(path)] == [1, 2, 3]
    assert path.read_bytes().count(b"\n") == 3


def test_results_file_errors_and_lock(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(record(1)) + "\nnot json\n" + json.dumps(record(2)) + "\n")
    with pytest.raises(ValueError, match="r.jsonl:2: not a JSON object"):
        sweep.read_results(path)
    path.write_text('{"config": {"x": 1}, "status": "great"}\n')
    with pytest.raises(ValueError, match="r.jsonl:1: a result needs"):
        sweep.read_results(path)
    assert sweep.read_results(tmp_path / "missing.jsonl") == []
    with sweep.results.ResultsWriter(tmp_path / "locked.jsonl"):
        with pytest.raises(RuntimeError, match="in use by another sweep"):
            sweep.results.ResultsWriter(tmp_path / "locked.jsonl")


def test_metrics_become_strict_json():
    metrics = {"a": np.float32(0.5), "b": np.arange(3), "c": [1.0, float("nan")], "d": None}
    assert sweep.results.jsonable(metrics) == {"a": 0.5, "b": [0, 1, 2], "c": [1.0, None],
                                               "d": None}
    assert sweep.results.has_nonfinite({"c": [1.0, float("inf")]})
    assert not sweep.results.has_nonfinite({"c": [1.0, 2.0], "s": "nan"})
    with pytest.raises(TypeError, match=r"metrics\['m'\] is <object"):
        sweep.results.jsonable({"m": object()})


# ---- a real LocalCluster ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    import dask
    import distributed  # noqa: F401  (its config defaults first: dask.config.set restores)

    original = dict(os.environ)
    os.environ["OMP_NUM_THREADS"] = "4"             # a user's own setting
    before = dict(os.environ)
    try:
        # A trial that kills its worker fails at once instead of killing 3 more (see below).
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            client = sweep.connect(workers=2)
        after = dict(os.environ)
    finally:
        os.environ.clear()
        os.environ.update(original)
    try:
        yield client, before, after
    finally:
        client.close()


def test_local_cluster_workers_run_one_thread_each(cluster):
    client, before, after = cluster
    assert len(client.scheduler_info()["workers"]) == 2
    assert set(client.nthreads().values()) == {1}
    expected = sweep.worker_environ(before)
    assert all(expected[k] == "1" for k in THREAD_VARIABLES)     # whatever OMP_NUM_THREADS says
    seen = client.run(lambda: {k: os.environ.get(k) for k in expected})
    assert list(seen.values()) == [expected, expected]
    numba_threads = client.run(lambda: __import__("numba").config.NUMBA_NUM_THREADS)
    assert set(numba_threads.values()) == {1}
    assert after == before                  # this process's environment is as it was


def test_digits_sweep_completes_and_a_rerun_skips_every_trial(cluster, tmp_path, capsys):
    client = cluster[0]
    space = {"model": ["fc"], "dataset": ["digits"], "epochs": [1], "hidden": [20, 40],
             "lr": sweep.loguniform(1e-3, 1e-1)}
    results = tmp_path / "sweep.jsonl"
    data = sweep.load_dataset("digits")
    records = sweep.run(sweep.train_course_model, space, trials=6, scheduler=client,
                        results=results, seed=0, data=data)
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()[-1]
    best = max(r["metrics"]["best_val_acc"] for r in records)
    assert bar.startswith("sweep: 100%") and "6/6" in bar and f"best best_val_acc {best:.4g}" in bar
    lines = results.read_text().splitlines()
    assert len(lines) == 6 and len(records) == 6
    workers = set(client.scheduler_info()["workers"])
    for line in lines:
        r = json.loads(line)
        assert r["status"] == "ok" and r["error"] is None and r["worker"] in workers
        assert set(r) >= {"config", "metrics", "status", "worker", "seconds"}
        assert 0.09 <= r["metrics"]["best_val_acc"] <= 1 and r["seconds"] > 0
        assert len(r["metrics"]["loss_history"]) == r["metrics"]["iterations"] == 13
    assert [r["config"] for r in records] == sweep.plan(space, trials=6, seed=0)

    again = sweep.run(sweep.train_course_model, space, trials=6, scheduler=client,
                      results=results, seed=0, data=data, progress=False)
    assert results.read_text().splitlines() == lines          # nothing ran, nothing written
    assert again == records


def count_uses(config, data):
    """Marks the data object it gets: the same object trial after trial on one worker means
    the data was scattered once per worker, not sent with each trial."""
    from distributed import get_worker

    data.setdefault("_trials_seen", []).append(config["i"])
    time.sleep(0.05)
    return {"uses": len(data["_trials_seen"]), "worker": get_worker().address}


def test_data_is_scattered_once_per_worker(cluster, tmp_path):
    client = cluster[0]
    records = sweep.run(count_uses, {"i": list(range(8))}, scheduler=client, progress=False,
                        results=tmp_path / "r.jsonl", data={"X": np.zeros((100, 8))})
    per_worker = {}
    for r in records:
        per_worker.setdefault(r["worker"], []).append(r["metrics"]["uses"])
    assert sum(len(v) for v in per_worker.values()) == 8
    for uses in per_worker.values():        # 1, 2, 3, ... on each worker: one shared object
        assert sorted(uses) == list(range(1, len(uses) + 1))


def toy_train(config):
    mode = config["mode"]
    if mode == "raise":
        raise RuntimeError(f"boom at x={config['x']}")
    if mode == "nan":
        return {"score": float("nan")}
    if mode == "diverged":
        raise sweep.Diverged("loss became inf at iteration 3", {"iterations": 3})
    if mode == "slow":                      # Python code: the time limit interrupts it
        end = time.time() + 30
        while time.time() < end:
            time.sleep(0.01)
    if mode == "late":                      # one C call: not interrupted
        time.sleep(0.8)
    if mode == "bad":
        return [1, 2]
    return {"score": config["x"], "curve": np.linspace(1, 0, 3)}


def test_failed_diverged_and_timeout_trials_are_recorded_and_the_sweep_goes_on(cluster,
                                                                                tmp_path):
    client = cluster[0]
    space = {"mode": ["ok", "raise", "nan", "diverged", "slow", "late", "bad"], "x": [1, 2]}
    results = tmp_path / "r.jsonl"
    start = time.perf_counter()
    sweep.run(toy_train, space, scheduler=client, results=results, timeout=0.5,
              target="score", progress=False)
    assert time.perf_counter() - start < 20           # the slow trials did not run 30 s
    by = {(r["config"]["mode"], r["config"]["x"]): r for r in sweep.read_results(results)}
    assert len(by) == 14
    for x in (1, 2):
        assert by["ok", x]["status"] == "ok" and by["ok", x]["metrics"] == {
            "score": x, "curve": [1.0, 0.5, 0.0]}
        assert by["raise", x]["status"] == "failed"
        assert by["raise", x]["error"] == f"RuntimeError: boom at x={x}"
        assert "toy_train" in by["raise", x]["traceback"]
        assert by["nan", x]["status"] == "diverged" and by["nan", x]["metrics"] == {
            "score": None}
        assert by["diverged", x]["status"] == "diverged"
        assert by["diverged", x]["metrics"] == {"iterations": 3}
        assert "inf at iteration 3" in by["diverged", x]["error"]
        assert by["slow", x]["status"] == "timeout" and by["slow", x]["seconds"] < 3
        assert "stopped at the time limit of 0.5 s" in by["slow", x]["error"]
        # The C call finishes first, then the limit strikes.
        assert by["late", x]["status"] == "timeout" and by["late", x]["seconds"] >= 0.8
        assert "time limit of 0.5 s" in by["late", x]["error"]
        assert by["bad", x]["status"] == "failed" and "must return a dict" in \
            by["bad", x]["error"]
    workers = set(client.scheduler_info()["workers"])
    assert [r for r in by.values() if r["worker"] not in workers] == []

    # A re-run skips them all; with retry_failed the failed ones run again.
    assert len(sweep.run(toy_train, space, scheduler=client, results=results,
                         progress=False)) == 14
    assert len(sweep.read_results(results)) == 14
    sweep.run(toy_train, space, scheduler=client, results=results, retry_failed=True,
              progress=False)
    assert len(sweep.read_results(results)) == 18            # 4 failed trials, again

    rep = sweep.report(results, target="score")
    assert [r["status"] for r in rep.rows] == ["ok"] * 2 + ["diverged"] * 4 + \
        ["timeout"] * 4 + ["failed"] * 4
    assert rep.best["config"] == {"mode": "ok", "x": 2}


def test_a_trial_that_kills_its_worker_is_failed_and_the_sweep_goes_on(cluster, tmp_path):
    client = cluster[0]

    def crash(config):
        if config["x"] == 0:
            os._exit(1)
        return {"score": config["x"]}

    records = sweep.run(crash, {"x": [0, 1, 2]}, scheduler=client, progress=False,
                        results=tmp_path / "r.jsonl")
    client.wait_for_workers(2, timeout=60)                  # the nanny restarts it
    assert records[0]["status"] == "failed" and records[0]["worker"] is None
    assert "KilledWorker" in records[0]["error"] and records[0]["seconds"] is None
    # A trial queued on the same worker dies with it (with allowed-failures=0; Dask's default
    # of 3 would run it again elsewhere); the others finish.
    for r in records[1:]:
        assert r["status"] == "ok" or "KilledWorker" in r["error"]
    assert any(r["status"] == "ok" for r in records[1:])


# ---- killed and resumed (a subprocess, SIGKILL) -------------------------------------------------
def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def test_a_killed_sweep_resumes_and_finishes_with_no_duplicate_trial(cluster, tmp_path, capsys):
    command = ["sweep", "--model", "fc", "--hidden", "100", "--epochs", "6", "--lr",
               "1e-3:1e-2:log", "--reg", "0:1e-3", "--trials", "8", "--no-progress", "--out",
               str(tmp_path)]
    results = tmp_path / "results.jsonl"
    log = open(tmp_path / "first.log", "wb")
    # Its own local cluster, in its own session: SIGKILL to the group takes the cluster's
    # processes down with it, as a kill of the job would.
    proc = subprocess.Popen([sys.executable, "-m", "autotensor", *command, "--workers", "2"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env=CLEAN_ENV)
    try:
        deadline = time.monotonic() + 120
        while not (results.exists() and results.read_bytes().count(b"\n") >= 2):
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no trial finished in 120 s"
            time.sleep(0.02)
    finally:
        kill_group(proc)
        log.close()
    before = results.read_text().splitlines()
    assert 2 <= len(before) < 8, "the sweep finished before it could be killed"

    # The same command again (on the running cluster, to save starting another).
    assert main(command + ["--scheduler", cluster[0].scheduler.address]) == 0
    lines = results.read_text().splitlines()
    assert lines[:len(before)] == before                      # kept as they were
    configs = [sweep.config_key(json.loads(line)["config"]) for line in lines]
    assert len(lines) == 8 and len(set(configs)) == 8          # every trial exactly once
    assert "8 trials, sorted by best_val_acc" in capsys.readouterr().out


# ---- a real `dask scheduler` and two `dask worker` processes ------------------------------------
def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="module")
def dask_cluster():
    """`dask scheduler` and two `dask worker --nworkers 1 --nthreads 1` on 127.0.0.1."""
    from distributed import Client

    port, *worker_ports = free_ports(3)
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "dask"]
    procs = []
    try:
        procs.append(subprocess.Popen(
            dask + ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            env=CLEAN_ENV))
        for p in worker_ports:
            procs.append(subprocess.Popen(
                dask + ["worker", address, "--nworkers", "1", "--nthreads", "1",
                        "--no-dashboard", "--host", "127.0.0.1", "--worker-port", str(p)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                env=CLEAN_ENV))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=90)
        yield address, {f"tcp://127.0.0.1:{p}" for p in worker_ports}
    finally:
        for proc in procs:
            kill_group(proc)


def test_cli_sends_the_sweep_to_a_dask_scheduler(dask_cluster, tmp_path, capsys):
    address, workers = dask_cluster
    command = ["sweep", "--model", "twolayer", "--dataset", "digits", "--lr", "1e-3:1e-1:log",
               "--reg", "0:1e-2", "--hidden", "20,40", "--epochs", "1", "--trials", "6",
               "--scheduler", address, "--no-progress", "--out", str(tmp_path)]
    assert main(command) == 0
    out = capsys.readouterr().out
    assert f"2 Dask workers at {address}" in out and "6 trials, sorted by best_val_acc" in out
    records = sweep.read_results(tmp_path / "results.jsonl")
    assert len(records) == 6 and all(r["status"] == "ok" for r in records)
    assert all(r["worker"] in workers for r in records)
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = json.loads((tmp_path / "best_trial.json").read_text())
    assert best["metrics"]["best_val_acc"] == max(r["metrics"]["best_val_acc"]
                                                   for r in records)
    with np.load(tmp_path / "best_trial.npz", allow_pickle=False) as ckpt:
        assert ckpt["params/W1"].shape == (64, best["config"]["hidden"])

    # The same command again: nothing to run, the checkpoint is already there.
    stamp = (tmp_path / "best_trial.npz").stat().st_mtime_ns
    assert main(command) == 0
    assert len(sweep.read_results(tmp_path / "results.jsonl")) == 6
    assert (tmp_path / "best_trial.npz").stat().st_mtime_ns == stamp
    assert "6 trials, sorted by best_val_acc" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="workers= sizes a local cluster"):
        main(["sweep", "--scheduler", address, "--workers", "2"])


def worker_state(config):
    import numba

    from autotensor.sweep import runner
    return {"numba_threads": numba.get_num_threads(), "prepared": runner._process_ready,
            "dask_trim": os.environ.get("MALLOC_TRIM_THRESHOLD_")}


def test_dask_worker_processes_get_one_numba_thread_and_autotensors_malloc(dask_cluster,
                                                                          tmp_path):
    address, workers = dask_cluster
    records = sweep.run(worker_state, {"i": [0, 1, 2, 3]}, scheduler=address,
                        results=tmp_path / "r.jsonl", progress=False)
    assert {r["worker"] for r in records} <= workers
    trim = CLEAN_ENV.get("MALLOC_TRIM_THRESHOLD_", "65536")      # Dask's unless yours
    for r in records:          # under Dask's own trim threshold, which _prepare_worker undid
        assert r["metrics"] == {"numba_threads": 1, "prepared": True, "dask_trim": trim}


def test_prepare_worker_retunes_malloc_only_under_dasks_default(monkeypatch):
    from autotensor.sweep import runner

    calls = []
    monkeypatch.setattr(runner, "tune_malloc", calls.append)
    for environ in ({"MALLOC_TRIM_THRESHOLD_": "65536", "NUMBA_NUM_THREADS": "2"},  # Dask's
                    {"MALLOC_TRIM_THRESHOLD_": "1000", "NUMBA_NUM_THREADS": "2"}):  # a choice
        monkeypatch.setattr(runner, "_process_ready", False)
        runner._prepare_worker(environ)
        runner._prepare_worker(environ)                                    # once per process
    assert calls == [{"NUMBA_NUM_THREADS": "2"}]


def test_an_unreachable_scheduler_is_a_clear_error():
    (port,) = free_ports(1)
    with pytest.raises(OSError, match=f"could not reach the Dask scheduler at "
                                      f"tcp://127.0.0.1:{port}"):
        sweep.connect(f"tcp://127.0.0.1:{port}", timeout=1)


# ---- the report ---------------------------------------------------------------------------------
def test_report_table_sorts_by_the_target_and_draws_the_course_plots(tmp_path):
    rows = [record(0.001, final_train_acc=0.5), record(0.01, final_train_acc=0.7),
            record(0.1, "diverged"), record(0.003, final_train_acc=0.6)]
    for r, reg in zip(rows, [0.0, 1e-3, 1e-2, 1e-4]):
        r["config"].update(lr=r["config"].pop("x"), reg=reg, epochs=2)
        r["metrics"]["loss_history"] = list(np.linspace(2.3, 0.5, 30))
        r["metrics"]["val_acc_history"] = [0.1, 0.5, r["metrics"]["score"] * 50]
    rows[2]["error"] = "a metric is nan or inf"
    rep = sweep.Report(rows + [rows[0]], target="score")       # the last line per config wins
    assert [r["config"]["lr"] for r in rep.rows] == [0.1, 0.01, 0.003, 0.001][1:] + [0.1]
    text = rep.table()
    lines = text.splitlines()
    assert lines[0] == "4 trials, sorted by score (highest first)" and lines[1] == "fixed: epochs=2"
    assert lines[2].split()[:6] == ["#", "status", "score", "final_train_acc", "lr", "reg"]
    assert lines[3].split()[:3] == ["1", "ok", "0.01"] and lines[6].split()[1] == "diverged"
    assert "a metric is nan or inf" in lines[6]
    assert rep.best is rep.rows[0]
    low = sweep.Report(rows, target="score", maximize=False)
    assert low.best["config"]["lr"] == 0.001

    fig = rep.scatter(tmp_path / "s.png")
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert [ax.get_title() for ax in axes] == ["final_train_acc over lr x reg",
                                              "score over lr x reg"]
    assert axes[0].get_xscale() == "log" and axes[0].get_yscale() == "symlog"   # reg 0 shown
    fig = rep.curves(tmp_path / "c.png", top=2)
    assert len(fig.axes[0].lines) == 2 and fig.axes[1].get_title() == "Validation accuracy"
    for name in ("s.png", "c.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no trial has a numeric config\\['hidden'\\]"):
        rep.scatter(y="hidden")


def test_course_model_metrics_and_divergence():
    data = sweep.load_dataset("digits")
    metrics = sweep.train_course_model({"model": "convnet", "epochs": 1, "hidden": 20,
                                        "num_filters": 4, "lr": 1e-2}, data)
    assert metrics["iterations"] == 13 and len(metrics["val_acc_history"]) == 2
    assert metrics["best_val_acc"] == max(metrics["val_acc_history"])
    with pytest.raises(sweep.Diverged, match="loss became (nan|inf) at iteration") as err:
        sweep.train_course_model({"model": "twolayer", "lr": 1e30, "weight_scale": 1.0,
                                  "update_rule": "sgd"}, data)
    assert 1 <= err.value.metrics["iterations"] < 65
    assert not math.isfinite(err.value.metrics["final_loss"])
    with pytest.raises(ValueError, match=r"unknown config keys \['lerning_rate'\]"):
        sweep.train_course_model({"lerning_rate": 1e-3}, data)
    with pytest.raises(ValueError, match="model'\\] must be one of"):
        sweep.train_course_model({"model": "resnet"}, data)
    with pytest.raises(ValueError, match="needs data_dir"):
        sweep.load_dataset("cifar10")


# ---- docs/sweeps.md -----------------------------------------------------------------------------
class Borrowed:
    """The module's cluster, lent to code that closes the client it gets."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def close(self):
        pass


def test_sweeps_doc_example_runs(cluster, tmp_path, monkeypatch, capsys):
    text = (DOCS / "sweeps.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    # Its workers=2 would start a cluster: give it the running one instead.
    monkeypatch.setattr(sweep.runner, "connect", lambda *args, **kw: Borrowed(cluster[0]))
    exec(compile(blocks[0], "sweeps.md", "exec"), {"__name__": "__main__"})
    out = capsys.readouterr().out
    assert out.startswith("6 trials, sorted by best_val_acc (highest first)\n")
    assert len(sweep.read_results(tmp_path / "sweep.jsonl")) == 6
    for name in ("sweep.png", "curves.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def changed_pixels(a, b):
    """Fraction of pixels that differ visibly between two PNG files of the same size."""
    from matplotlib.image import imread

    a, b = imread(a), imread(b)
    assert a.shape == b.shape, f"picture size {a.shape} != {b.shape}"
    return float((np.abs(a - b).max(axis=2) > 0.1).mean())


def test_sweep_figures_in_the_docs_are_fresh(tmp_path):
    """The committed img/sweep_results.jsonl is the sweep make_figures.py defines (its configs,
    and the metrics of two of them trained again), and the committed PNGs are what the report
    draws from it (a one-letter change in a title moves ~0.13% of the pixels)."""
    spec = importlib.util.spec_from_file_location("make_figures", DOCS / "make_figures.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    committed = DOCS / "img" / "sweep_results.jsonl"
    written = {p.name for p in make.sweep_pictures(committed, tmp_path)}
    shown = set(re.findall(r"\]\(img/(sweep_[^)]+\.png)\)", (DOCS / "sweeps.md").read_text()))
    assert written == shown
    assert {p.name for p in (DOCS / "img").glob("sweep_*")} == shown | {committed.name}

    stale = "docs/img/sweep_* are stale: run python docs/make_figures.py"
    kept = sweep.read_results(committed)
    planned = sweep.plan(make.sweep_space(), trials=24, seed=0)
    assert sorted(map(sweep.config_key, planned)) == \
        sorted(sweep.config_key(r["config"]) for r in kept), stale
    assert all(r["status"] == "ok" for r in kept), stale
    data = sweep.load_dataset("digits")
    for r in (kept[0], max(kept, key=lambda r: r["metrics"]["best_val_acc"])):
        again = sweep.train_course_model(r["config"], data)
        assert again["best_val_acc"] == pytest.approx(r["metrics"]["best_val_acc"],
                                                      abs=0.011), stale
    for name in shown:
        assert changed_pixels(tmp_path / name, DOCS / "img" / name) < 5e-4, stale
