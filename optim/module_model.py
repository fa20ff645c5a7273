"""`ModuleModel`: an `nn.Module` plus a loss function, seen as a course model (`params` dict,
`loss(X, y=None)`), so the course's `Solver` can train it. See docs/training.md.
"""

from __future__ import annotations

from collections.abc import MutableMapping

import numpy as np

from autotensor import Tensor, no_grad

__all__ = ["ModuleModel"]


class ModuleModel:
    """An `nn.Module` plus a loss function, seen as a course model so the `Solver` can train it.

    `params` is a dict-like view name -> ndarray over `module.named_parameters()`: reading gives
    the Parameter's own array (shared, not copied) and assigning copies into it, so the Solver's
    updates land in the module. `loss(X, y)` runs the module in train mode, calls
    `loss_fn(scores, y)` (a scalar Tensor), backpropagates and returns (float loss, grads);
    `loss(X)` runs it in eval mode without recording and returns the scores as an ndarray.
    Buffers (batch-norm running statistics) are exposed as `buffers` and set with
    `load_buffers`, which is what the Solver's checkpoints save and restore.

        model = optim.ModuleModel(net, F.softmax_cross_entropy)
        Solver(model, data, update_rule='adam').train()
    """

    def __init__(self, module, loss_fn):
        if not hasattr(module, "named_parameters") or not callable(module):
            raise ValueError(f"ModuleModel needs an nn.Module, got {type(module).__name__}")
        self.module, self.loss_fn = module, loss_fn
        self._tensors = dict(module.named_parameters())
        if not self._tensors:
            raise ValueError("the module has no parameters to train")
        self._view = _ParamView(self._tensors, module.load_state_dict)

    @property
    def params(self):
        return self._view

    @params.setter
    def params(self, values):
        self._view.assign(values)

    @property
    def buffers(self):
        """{dotted name: ndarray} of the module's buffers (the live arrays, not copies)."""
        named = getattr(self.module, "named_buffers", None)
        return dict(named()) if named is not None else {}

    def load_buffers(self, arrays):
        """Copy `arrays` ({dotted name: ndarray}, exactly the module's buffers) into the
        buffers in place, keeping their dtypes. Names, shapes and dtypes are checked (by
        `Module.load_state_dict`) before anything is copied: a mismatch raises ValueError and
        changes nothing."""
        current = self.buffers
        if set(arrays) != set(current):
            raise ValueError(f"the buffers {sorted(arrays)} differ from the module's "
                             f"{sorted(current)}")
        self.module.load_state_dict(dict(arrays), strict=False)

    def loss(self, X, y=None):
        dtype = next(iter(self._tensors.values())).dtype
        x = Tensor(np.asarray(X, dtype=dtype))
        if y is None:
            self.module.eval()
            with no_grad():
                return self.module(x).data
        self.module.train()
        for p in self._tensors.values():
            p.grad = None
        loss = self.loss_fn(self.module(x), y)
        loss.backward()
        grads = {n: (p.grad if p.grad is not None else np.zeros_like(p.data))
                 for n, p in self._tensors.items()}
        return float(loss.data), grads


class _ParamView(MutableMapping):
    """name -> parameter.data; assignment copies into the parameter's array (shape and dtype
    checked first; a whole-dict `assign` goes through the module's `load_state_dict`)."""

    def __init__(self, tensors, load):
        self._tensors, self._load, self._what = tensors, load, "parameter"

    def __getitem__(self, name):
        return self._tensors[name].data

    def __setitem__(self, name, value):
        # The Solver's hot path (every update of every parameter): checked here, not through
        # the module's load_state_dict, which walks the whole module.
        t = self._tensors[name]
        value = np.asarray(value.data if isinstance(value, Tensor) else value)
        if value.shape != t.data.shape:
            raise ValueError(f"{self._what} {name!r} has shape {t.data.shape}, got an array of "
                             f"shape {value.shape}")
        if value.dtype.kind not in "biuf":
            raise ValueError(f"{self._what} {name!r}: got an array of dtype {value.dtype}, "
                             "expected real numbers")
        t.data[...] = value

    def assign(self, values):
        """Replace all entries at once (keys must match; checked before anything is copied)."""
        if set(values) != set(self._tensors):
            raise ValueError(f"expected {self._what}s {sorted(self._tensors)}, got "
                             f"{sorted(values)}")
        self._load(dict(values), strict=False)

    def __delitem__(self, name):
        raise TypeError(f"cannot delete a {self._what} of a module")

    def __iter__(self):
        return iter(self._tensors)

    def __len__(self):
        return len(self._tensors)
