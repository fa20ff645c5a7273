"""Hyperparameter sweeps on Dask: run a training function over a search space, in parallel,
with results appended to a JSON-lines file as each trial finishes (docs/sweeps.md).

    from autotensor import sweep

    space = {"model": ["fc"], "lr": sweep.loguniform(1e-4, 1e-1), "reg": sweep.uniform(0, 1e-2),
             "hidden": [50, 100, 200], "epochs": [2]}
    records = sweep.run(sweep.train_course_model, space, trials=24, workers=2,
                        data=sweep.load_dataset("digits"), results="sweep.jsonl", seed=0)
    rep = sweep.report("sweep.jsonl")
    print(rep)                       # sorted by best_val_acc
    rep.scatter("sweep.png")         # val accuracy over lr x reg
    rep.curves("curves.png")         # loss curves of the best trials

`train_fn(config)` (or `train_fn(config, data)` with data=) returns a dict of metrics. Needs
the `sweep` extra (dask.distributed): pip install 'autotensor[sweep]'.
"""

from .course import DEFAULTS, MODELS, checkpoint_arrays, load_dataset, train_course_model
from .report import Report, report
from .results import read_results
from .runner import Diverged, connect, run, worker_environ
from .space import choice, config_key, loguniform, parse_spec, plan, randint, uniform

__all__ = ["run", "report", "Report", "connect", "Diverged", "plan", "config_key",
           "uniform", "loguniform", "randint", "choice", "parse_spec", "read_results",
           "train_course_model", "load_dataset", "checkpoint_arrays", "DEFAULTS", "MODELS",
           "worker_environ"]
