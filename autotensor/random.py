"""autotensor's global random generator, with torch.random's names.

    at.manual_seed(0)                 # reseeds it (and numpy's global RNG): a repeatable run
    at.randn(3), at.rand(2, 2)        # draw from it
    DataLoader(ds, shuffle=True)      # shuffles with it
    state = at.get_rng_state(); ...; at.set_rng_state(state)

`default_generator` is one `np.random.Generator` (PCG64) that every random function of
autotensor draws from when it is not handed a `generator=` of its own: at.rand, at.randn,
at.randint, at.rand_like, at.randn_like and DataLoader's shuffling. `manual_seed` reseeds it in
place, so a reference to it stays valid. As in PyTorch, a new process starts from an
unpredictable seed (`initial_seed()` tells which).

`manual_seed` also seeds numpy's global RNG (`np.random.seed(seed % 2**32)`): module
initialisation (`nn.init`, `nn.Linear`, ...), dropout and the course API (`nn.models`,
`optim.Solver`) draw from numpy's global RNG, as the course's `np.random.seed(...)` requires,
so one `at.manual_seed` makes a whole run repeatable, as `torch.manual_seed` does. See
docs/ops.md ("Creating tensors").
"""

from __future__ import annotations

import copy
import os

import numpy as np

__all__ = ["default_generator", "manual_seed", "seed", "initial_seed", "get_rng_state",
           "set_rng_state"]

_SEEDS = 2**64                          # torch's seeds: 64-bit, negative ones wrap around


def _fresh_seed():
    return int.from_bytes(os.urandom(8), "little")


_initial_seed = _fresh_seed()
default_generator = np.random.Generator(np.random.PCG64(_initial_seed))


def manual_seed(seed):
    """Seed the global generator (and numpy's global RNG) with the integer `seed`; returns it.

    Accepts torch's range, -2**63 <= seed < 2**64 (a negative seed wraps to seed + 2**64).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed: seed must be an integer, got {type(seed).__name__} "
                        f"{seed!r:.40}")
    seed = int(seed)
    if not -2**63 <= seed < _SEEDS:
        raise ValueError(f"manual_seed: seed must lie in [-2**63, 2**64), got {seed}")
    global _initial_seed
    _initial_seed = seed % _SEEDS
    default_generator.bit_generator.state = np.random.PCG64(_initial_seed).state
    np.random.seed(_initial_seed % 2**32)
    return default_generator


def seed():
    """Seed the global generator (and numpy's) from the OS's entropy; returns the 64-bit seed."""
    new = _fresh_seed()
    manual_seed(new)
    return new


def initial_seed():
    """The seed of the global generator: the last `manual_seed`/`seed`, or the process's own."""
    return _initial_seed


def get_rng_state():
    """A copy of the global generator's state (a dict; torch returns a ByteTensor)."""
    return copy.deepcopy(default_generator.bit_generator.state)


def set_rng_state(new_state):
    """Restore a state returned by `get_rng_state` (numpy's global RNG is left as it is)."""
    if not (isinstance(new_state, dict) and new_state.get("bit_generator") == "PCG64"):
        raise ValueError(f"set_rng_state: expected a state returned by get_rng_state() (a dict "
                         f"with bit_generator 'PCG64'), got {type(new_state).__name__}")
    try:
        default_generator.bit_generator.state = copy.deepcopy(new_state)
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"set_rng_state: not a PCG64 state from get_rng_state(): {err}") \
            from None


def generator_or_default(generator, fn):
    """`generator` when it is a np.random.Generator, the global generator when None.

    The one check of every `generator=` argument; `fn` names the caller in the error.
    """
    if generator is None:
        return default_generator
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"{fn}: generator must be a np.random.Generator (e.g. "
                        f"np.random.default_rng(0)) or None, got {type(generator).__name__}")
    return generator
