"""Tensor hooks: `Tensor.register_hook`'s handle and the call of the hooks during a backward
walk (autograd.py calls `run_hooks` where a gradient is complete). nn.Module's forward hooks
return the same `RemovableHandle`."""

from __future__ import annotations

import itertools

import numpy as np


def run_hooks(hooks, g, shape):
    """Each hook of `hooks` (Tensor.register_hook) in registration order, on a read-only view
    of `g` (it may be shared with other edges); a hook's non-None result replaces `g`."""
    for hook in tuple(hooks.values()):
        if g.__class__ is np.ndarray:
            g = g.view()
            g.flags.writeable = False
        new = hook(g)
        if new is None:
            continue
        if g.__class__ is Tensor:
            new = new if new.__class__ is Tensor else _wrap(np.asarray(new), None)
        else:
            new = np.asarray(new.data if isinstance(new, Tensor) else new)
        if new.shape != shape:
            name = getattr(hook, "__name__", repr(hook))
            raise RuntimeError(f"hook '{name}' has changed the size of value: it returned a "
                               f"gradient of shape {new.shape} for a tensor of shape {shape}")
        g = new
    return g


class RemovableHandle:
    """What `Tensor.register_hook` returns: `.remove()` unregisters the hook (PyTorch's
    torch.utils.hooks.RemovableHandle; also a context manager that removes it on exit)."""

    __slots__ = ("_hooks", "id")
    _ids = itertools.count()

    def __init__(self, hooks):
        self._hooks = hooks
        self.id = next(RemovableHandle._ids)

    def remove(self):
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


from .tensor import Tensor, _wrap  # noqa: E402  (tensor.py imports autograd, which imports this)
