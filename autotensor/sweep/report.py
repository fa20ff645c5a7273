"""Reading a sweep's results: a table sorted by the target metric, and the course's plots.

    rep = report("sweep_out/results.jsonl")      # or the list run() returned
    print(rep)                                    # the table, best first
    rep.scatter("sweep.png")                      # target over lr x reg, coloured, log axes
    rep.curves("curves.png", top=5)               # loss and val accuracy of the best trials
"""

from __future__ import annotations

import math
import os

import numpy as np

from .results import read_results
from .space import config_key

__all__ = ["report", "Report"]

_ORDER = {"ok": 0, "diverged": 1, "timeout": 2, "failed": 3}


def report(results, target="best_val_acc", maximize=True):
    """A Report over `results`: a results file's path or a list of records."""
    if isinstance(results, (str, os.PathLike)):
        results = read_results(results)
    return Report(results, target, maximize)


class Report:
    """The records of a sweep (the last one per config), sorted: ok trials by `target`
    (best first; trials missing it last), then diverged, timeout and failed ones; ties in
    config order."""

    def __init__(self, records, target="best_val_acc", maximize=True):
        latest = {}
        for record in records:
            latest[config_key(record["config"])] = record
        self.target, self.maximize = target, maximize
        self.rows = sorted(latest.values(), key=self._rank)
        self.best = self.rows[0] if self.rows and self._value(self.rows[0]) is not None \
            else None

    def _value(self, record):
        value = record["metrics"].get(self.target) if record["status"] == "ok" else None
        return value if isinstance(value, (int, float)) and math.isfinite(value) else None

    def _rank(self, record):
        value = self._value(record)
        # Ties go by config, not by the order trials happened to finish in.
        if value is None:
            return (1, _ORDER[record["status"]], 0.0, config_key(record["config"]))
        return (0, 0, -value if self.maximize else value, config_key(record["config"]))

    # ---- the table -----------------------------------------------------------------------------
    def table(self, top=None):
        """The rows as aligned text: rank, status, the scalar metrics (target first), the
        config keys that vary (the fixed ones in a header line), seconds, worker, error."""
        rows = self.rows if top is None else self.rows[:top]
        if not rows:
            return "no trials"
        keys = _ordered_keys(r["config"] for r in self.rows)
        varying = [k for k in keys if len({repr(r["config"].get(k)) for r in self.rows}) > 1]
        fixed = [k for k in keys if k not in varying]
        metrics = [m for m in _ordered_keys(r["metrics"] for r in self.rows)
                   if any(_is_number(r["metrics"].get(m)) for r in self.rows)]
        metrics = [self.target] + [m for m in metrics if m != self.target]
        errors = any(r.get("error") for r in rows)
        header = ["#", "status", *metrics, *varying, "seconds", "worker"] + ["error"] * errors
        lines = [[str(i), r["status"], *(_cell(r["metrics"].get(m)) for m in metrics),
                  *(_cell(r["config"].get(k)) for k in varying), _cell(r.get("seconds")),
                  r.get("worker") or "-"] + [_short(r.get("error"))] * errors
                 for i, r in enumerate(rows, start=1)]
        widths = [max(len(row[j]) for row in [header, *lines]) for j in range(len(header))]
        text = [f"{len(self.rows)} trials, sorted by {self.target} "
                f"({'highest' if self.maximize else 'lowest'} first)"]
        if fixed:
            text.append("fixed: " + ", ".join(f"{k}={_cell(self.rows[0]['config'][k])}"
                                              for k in fixed))
        for row in [header, *lines]:
            text.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
        if top is not None and len(self.rows) > top:
            text.append(f"... {len(self.rows) - top} more")
        return "\n".join(text)

    def __str__(self):
        return self.table()

    # ---- the plots -----------------------------------------------------------------------------
    def scatter(self, path=None, x="lr", y="reg", metrics=None):
        """The course's hyperparameter scatter: one panel per metric (default: the final train
        accuracy when there is one, then the target), each trial a dot at (x, y) coloured by
        the metric; log axes (symlog when a value is 0). Trials that are not ok: grey crosses;
        the best: a red ring. Saves to `path` (PNG) when given; returns the Figure."""
        from autotensor.plot import _new_figure, _save

        if metrics is None:
            train = "final_train_acc"
            metrics = [train] * any(_is_number(r["metrics"].get(train)) for r in self.rows)
            metrics = [m for m in metrics if m != self.target] + [self.target]
        for name in (x, y):
            if not any(_is_number(r["config"].get(name)) for r in self.rows):
                raise ValueError(f"scatter: no trial has a numeric config[{name!r}]; pass "
                                 f"x= and y= among {_ordered_keys(r['config'] for r in self.rows)}")
        fig = _new_figure(5.2 * len(metrics), 4.4)
        for ax, metric in zip(np.atleast_1d(fig.subplots(1, len(metrics))), metrics):
            self._scatter_panel(ax, x, y, metric)
        _save(fig, path)
        return fig

    def _scatter_panel(self, ax, x, y, metric):
        def coords(rows):
            return ([r["config"].get(x) for r in rows], [r["config"].get(y) for r in rows])

        good = [r for r in self.rows if r["status"] == "ok" and _is_number(r["metrics"].get(metric))
                and _is_number(r["config"].get(x)) and _is_number(r["config"].get(y))]
        bad = [r for r in self.rows if r not in good and _is_number(r["config"].get(x))
               and _is_number(r["config"].get(y))]
        if good:
            dots = ax.scatter(*coords(good), c=[r["metrics"][metric] for r in good], s=60,
                              cmap="viridis", edgecolors="k", linewidths=0.4)
            ax.figure.colorbar(dots, ax=ax, label=metric)
        if bad:
            ax.scatter(*coords(bad), marker="x", color="0.5", label="not ok")
            ax.legend(loc="best", fontsize="small")
        if self.best is not None and self.best in good:
            ax.scatter(*coords([self.best]), s=220, facecolors="none", edgecolors="red",
                       linewidths=1.5)
        for name, axis in ((x, "x"), (y, "y")):
            _log_axis(ax, axis, [r["config"][name] for r in good + bad])
        ax.set(xlabel=x, ylabel=y, title=f"{metric} over {x} x {y}")
        ax.grid(alpha=0.3, which="major")

    def curves(self, path=None, top=5):
        """Training loss (running mean) and validation accuracy per epoch of the `top` best
        trials, labelled with their varying config values. Saves to `path` when given."""
        from matplotlib.ticker import MaxNLocator

        from autotensor.plot import _new_figure, _save

        rows = [r for r in self.rows if self._value(r) is not None
                and r["metrics"].get("loss_history")][:top]
        keys = _ordered_keys(r["config"] for r in self.rows)
        varying = [k for k in keys if len({repr(r["config"].get(k)) for r in self.rows}) > 1]
        fig = _new_figure(10.0, 4.4)
        ax_loss, ax_acc = fig.subplots(1, 2)
        for rank, r in enumerate(rows, start=1):
            label = f"#{rank} " + " ".join(f"{k}={_cell(r['config'].get(k))}" for k in varying)
            loss = np.array([np.nan if v is None else v for v in r["metrics"]["loss_history"]])
            window = max(1, len(loss) // 25)
            smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
            line, = ax_loss.plot(np.arange(window - 1, len(loss)), smooth, label=label)
            val = r["metrics"].get("val_acc_history") or []
            ax_acc.plot(val, "-o", markersize=3, color=line.get_color(),
                        label=f"{label} ({self._value(r):.3g})")
        ax_loss.set(title="Training loss (running mean)", xlabel="Iteration", ylabel="loss")
        ax_acc.set(title="Validation accuracy", xlabel="Epoch", ylabel="accuracy")
        ax_acc.xaxis.set_major_locator(MaxNLocator(integer=True))
        for ax in (ax_loss, ax_acc):
            ax.grid(alpha=0.3)
        if rows:
            ax_acc.legend(loc="lower right", fontsize="x-small", title=f"({self.target})",
                          title_fontsize="x-small")
        _save(fig, path)
        return fig


def _log_axis(ax, axis, values):
    values = np.asarray(values, dtype=float)
    positive = values[values > 0]
    setter = ax.set_xscale if axis == "x" else ax.set_yscale
    if len(positive) and len(positive) == len(values):
        setter("log")
    elif len(positive):             # a 0 (no regularisation) among positive values
        setter("symlog", linthresh=float(positive.min()))


def _ordered_keys(dicts):
    keys = {}
    for d in dicts:
        keys.update(dict.fromkeys(d))
    return list(keys)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _short(text, width=60):
    if not text:
        return ""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 3] + "..."
