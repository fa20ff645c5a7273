"""Search spaces: distributions, the list of configs a sweep runs, and command-line specs.

A space maps names to a list of values or to a distribution:

    {"lr": loguniform(1e-5, 1e-1), "reg": uniform(0, 1e-2), "hidden": [50, 100, 200]}

`plan(space, trials, search, seed)` turns it into the list of configs (dicts) to run. Random
search draws from `np.random.default_rng(seed)` in the space's order, so the same space and
seed always give the same configs: that is what lets a re-run skip the finished ones.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping

import numpy as np

__all__ = ["uniform", "loguniform", "randint", "choice", "plan", "config_key", "parse_spec"]


class Distribution:
    """A range of values: `sample(rng)` draws one, `grid(n)` gives n spread-out ones."""

    def sample(self, rng):
        raise NotImplementedError

    def grid(self, n):
        raise NotImplementedError


class Uniform(Distribution):
    def __init__(self, low, high, log=False):
        low, high = _number(low, "low"), _number(high, "high")
        if not low < high:
            raise ValueError(f"a range needs low < high, got low={low!r}, high={high!r}")
        if log and low <= 0:
            raise ValueError(f"a log range needs low > 0, got low={low!r}")
        self.low, self.high, self.log = float(low), float(high), log

    def sample(self, rng):
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def grid(self, n):
        points = np.geomspace if self.log else np.linspace
        return [float(v) for v in points(self.low, self.high, n)]

    def __repr__(self):
        return f"{'loguniform' if self.log else 'uniform'}({self.low!r}, {self.high!r})"


class RandInt(Distribution):
    def __init__(self, low, high, log=False):
        for name, value in (("low", low), ("high", high)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"randint {name} must be an integer, got {value!r}")
        if not low < high:
            raise ValueError(f"randint needs low < high, got low={low}, high={high}")
        if log and low <= 0:
            raise ValueError(f"a log range needs low > 0, got low={low}")
        self.low, self.high, self.log = int(low), int(high), log

    def sample(self, rng):
        if self.log:      # log-uniform over [low, high + 1), floored: each end equally likely
            draw = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
            return min(int(draw), self.high)
        return int(rng.integers(self.low, self.high + 1))

    def grid(self, n):
        points = np.geomspace if self.log else np.linspace
        return sorted({int(round(v)) for v in points(self.low, self.high, n)})

    def __repr__(self):
        return f"randint({self.low}, {self.high}{', log=True' if self.log else ''})"


class Choice(Distribution):
    def __init__(self, values):
        self.values = _values(values, "choice")

    def sample(self, rng):
        return self.values[int(rng.integers(len(self.values)))]

    def grid(self, n):
        return list(self.values)

    def __repr__(self):
        return f"choice({self.values!r})"


def uniform(low, high):
    """Floats drawn uniformly from [low, high)."""
    return Uniform(low, high)


def loguniform(low, high):
    """Floats whose logarithm is uniform on [log(low), log(high)); low > 0 (learning rates)."""
    return Uniform(low, high, log=True)


def randint(low, high, log=False):
    """Integers from low to high, BOTH ends included (as Python's random.randint)."""
    return RandInt(low, high, log)


def choice(values):
    """One of `values`, each equally likely (a plain list in a space means the same)."""
    return Choice(values)


# ---- plans --------------------------------------------------------------------------------------
def plan(space, trials=None, search=None, seed=0):
    """The configs (list of dicts, in run order) that a sweep over `space` runs.

    search="grid": every combination. Lists and choices give all their values; each range is
    cut into n points (geometric for log ranges, both ends included) with n the largest that
    keeps the grid at most `trials` configs (at least 2). search="random": `trials` distinct
    configs drawn from `np.random.default_rng(seed)`; a list is a uniform choice.
    search=None: random when the space has a range, else grid.
    """
    space = _check_space(space)
    ranges = [k for k, v in space.items() if isinstance(v, (Uniform, RandInt))]
    if search is None:
        search = "random" if ranges else "grid"
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int)
                               or trials < 1):
        raise ValueError(f"trials must be a positive integer or None, got {trials!r}")
    if search == "grid":
        return _grid(space, ranges, trials)
    if search == "random":
        if trials is None:
            raise ValueError("random search needs trials=: how many configs to draw")
        return _random(space, trials, seed)
    raise ValueError(f"search must be 'grid', 'random' or None, got {search!r}")


def _grid(space, ranges, trials):
    fixed = math.prod(len(_as_distribution(v).grid(0)) for k, v in space.items()
                      if k not in ranges)
    n = 0
    if ranges:
        if trials is None:
            raise ValueError(f"a grid over the ranges {ranges} needs trials=: the grid is "
                             f"sized to at most that many configs")
        n = max(2, int((trials / fixed) ** (1 / len(ranges)) + 1e-9))
    axes = [_as_distribution(v).grid(n) for v in space.values()]
    size = math.prod(len(a) for a in axes)
    if trials is not None and size > trials:
        smallest = " (2 points per range)" if ranges else ""
        raise ValueError(f"the grid has {size} configs{smallest} but trials={trials}: raise "
                         f"trials, shorten the lists, or use search='random'")
    return [dict(zip(space, values)) for values in itertools.product(*axes)]


def _random(space, trials, seed):
    rng = np.random.default_rng(seed)
    configs, seen = [], set()
    for _ in range(100 * trials):
        config = {k: _as_distribution(v).sample(rng) for k, v in space.items()}
        if config_key(config) not in seen:
            seen.add(config_key(config))
            configs.append(config)
            if len(configs) == trials:
                return configs
    raise ValueError(f"random search found only {len(configs)} distinct configs in "
                     f"{100 * trials} draws, fewer than trials={trials}: the space is too small")


def config_key(config):
    """The identity of a trial: its config as canonical JSON (sorted keys, exact floats)."""
    return json.dumps(config, sort_keys=True)


# ---- checks -------------------------------------------------------------------------------------
def _check_space(space):
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"space must be a non-empty dict of name -> list or distribution, "
                         f"got {space!r}")
    checked = {}
    for name, value in space.items():
        if not isinstance(name, str):
            raise ValueError(f"space names must be strings, got {name!r}")
        if not isinstance(value, Distribution):
            value = _values(value, f"space[{name!r}]")
        checked[name] = value
    return checked


def _as_distribution(value):
    return value if isinstance(value, Distribution) else Choice(value)


def _values(values, what):
    """A non-empty list of JSON values (numbers become Python int/float)."""
    if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{what} must be a list of values or a distribution such as "
                         f"loguniform(1e-5, 1e-1), got {values!r}")
    values = [_plain(v, what) for v in values]
    if not values:
        raise ValueError(f"{what} is an empty list")
    return values


def _plain(value, what):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise ValueError(f"{what} holds {value!r}; values must be finite")
        return float(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, what) for v in value]
    raise ValueError(f"{what} holds {value!r} ({type(value).__name__}); values must be "
                     f"numbers, strings, booleans, None or lists of them (they go into JSON)")


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return value


# ---- command-line specs -------------------------------------------------------------------------
def parse_spec(text, kind=float, name=None):
    """A space entry from a command-line spec: `a:b` a uniform range, `a:b:log` a log-uniform
    one, `x,y,z` a choice, `x` one fixed value. kind is float, int or str (int ranges include
    both ends). Bad specs raise ValueError (its message starts with `name` when given)."""
    name = f"{name}: " if name else ""
    text = text.strip()
    if not text:
        raise ValueError(f"{name}empty spec; use a:b, a:b:log or x,y,z")
    if ":" in text:
        if kind is str:
            raise ValueError(f"{name}{text!r} is a range, but this option takes words: use "
                             f"x,y,z")
        parts = text.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
            raise ValueError(f"{name}bad range {text!r}; use a:b (uniform) or a:b:log "
                             f"(log-uniform)")
        low, high = (_parse_one(p, kind, name) for p in parts[:2])
        log = len(parts) == 3
        try:
            return RandInt(low, high, log) if kind is int else Uniform(low, high, log)
        except ValueError as err:
            raise ValueError(f"{name}bad range {text!r}: {err}") from None
    return [_parse_one(item, kind, name) for item in text.split(",")]


def _parse_one(text, kind, name):
    text = text.strip()
    if not text:
        raise ValueError(f"{name}empty item in the spec; use a:b, a:b:log or x,y,z")
    if kind is str:
        return text
    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"{name}{text!r} is not {what}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name}{text!r} is not finite")
    return value
