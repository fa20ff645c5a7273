"""Containers of modules, as PyTorch's: `Sequential`, `ModuleList` and `ModuleDict`.

Each holds its modules as registered children, so their parameters appear in
`named_parameters()` and `state_dict()` under the container's keys ("layers.0.weight",
"heads.q.bias"). Sequential and ModuleList name children "0", "1", ... and renumber them after
a deletion or an insertion, as PyTorch does; a Sequential's slice keeps the original names,
a ModuleList's is renumbered (PyTorch's rules again).
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Iterable, Mapping

from .module import Module


def _check_module(owner, what, m):
    if not isinstance(m, Module):
        raise TypeError(f"{owner}: {what} is a {type(m).__name__}, not a Module")
    return m


class _Indexed(Module):
    """Children named "0", "1", ...: indexing (negative too), slicing, len, iteration, edits."""

    def __init__(self, modules=()):
        super().__init__()
        self.extend(modules)

    def _index(self, idx):
        """idx as a position in [0, len), for an int-like idx (negative counts from the end)."""
        try:
            i = operator.index(idx)
        except TypeError:
            raise TypeError(f"{type(self).__name__} indices must be integers or slices, got "
                            f"{type(idx).__name__}") from None
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"{type(self).__name__} index {i} is out of range for length {n}")
        return i % n

    def _renumber(self, modules):
        self._modules.clear()
        for i, m in enumerate(modules):
            self._modules[str(i)] = m

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(list(self._modules.values())[idx])      # renumbered "0", "1", ...
        return list(self._modules.values())[self._index(idx)]

    def __setitem__(self, idx, module):
        key = list(self._modules)[self._index(idx)]
        self._modules[key] = _check_module(type(self).__name__, f"item {idx}", module)

    def __delitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            del mods[idx]
        else:
            del mods[self._index(idx)]
        self._renumber(mods)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __iadd__(self, modules):
        return self.extend(modules)

    def append(self, module):
        """Add `module` at the end; returns self."""
        self._modules[str(len(self))] = _check_module(f"{type(self).__name__}.append",
                                                      "the argument", module)
        return self

    def extend(self, modules):
        """Append every module of the iterable `modules`; returns self."""
        if not isinstance(modules, Iterable):
            raise TypeError(f"{type(self).__name__}.extend: expected an iterable of Modules, got "
                            f"{type(modules).__name__}")
        for i, m in enumerate(list(modules)):
            _check_module(type(self).__name__, f"item {i}", m)
            self._modules[str(len(self))] = m
        return self

    def insert(self, index, module):
        """Insert `module` before position `index` (-len <= index <= len)."""
        _check_module(f"{type(self).__name__}.insert", "the argument", module)
        mods, i = list(self._modules.values()), operator.index(index)
        if not -len(mods) <= i <= len(mods):
            raise IndexError(f"{type(self).__name__}.insert: index {i} is out of range for "
                             f"length {len(mods)}")
        mods.insert(i, module)
        self._renumber(mods)

    def pop(self, index=-1):
        """Remove and return the module at `index`."""
        m = self[index]
        del self[index]
        return m


class Sequential(_Indexed):
    """Modules applied in order: `Sequential(Linear(4, 8), ReLU(), Linear(8, 2))`.

    Children are named "0", "1", ..., or by the keys of one OrderedDict argument;
    `seq[i]` (negative too), `seq[a:b]` (a Sequential), len, iteration, append, insert, extend.
    """

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            Module.__init__(self)
            for name, m in args[0].items():
                self.add_module(name, _check_module("Sequential", f"entry {name!r}", m))
            return
        for i, m in enumerate(args):
            _check_module("Sequential", f"argument {i}", m)
        super().__init__(args)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            # A Sequential's slice keeps the children's names ("1", "2"), as PyTorch's does.
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        return super().__getitem__(idx)

    def forward(self, input):  # noqa: A002 (PyTorch's argument name)
        for m in self._modules.values():
            input = m(input)
        return input


class ModuleList(_Indexed):
    """A list of modules, registered as children "0", "1", ...; it has no forward.

        self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])
        for layer in self.layers:
            x = layer(x)
    """

    def __init__(self, modules=None):
        super().__init__(() if modules is None else modules)

    def __add__(self, other):
        return ModuleList(list(self) + list(other))

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward: iterate over it and call each "
                                  "module")


class ModuleDict(Module):
    """An ordered dict of modules keyed by name, registered as children; it has no forward.

        self.heads = nn.ModuleDict({"cls": nn.Linear(8, 10), "box": nn.Linear(8, 4)})
        y = self.heads["cls"](x)
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, _check_module("ModuleDict", f"entry {key!r}", module))

    def __delitem__(self, key):
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def clear(self):
        self._modules.clear()

    def pop(self, key):
        """Remove the module under `key` and return it."""
        m = self[key]
        del self[key]
        return m

    def update(self, modules):
        """Add or replace entries from a mapping or an iterable of (key, module) pairs."""
        if isinstance(modules, (Mapping, ModuleDict)):
            pairs = list(modules.items())
        elif isinstance(modules, Iterable) and not isinstance(modules, (str, Module)):
            pairs = []
            for i, pair in enumerate(modules):
                if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                    raise ValueError(f"ModuleDict.update: element {i} should be a (key, module) "
                                     f"pair, got {pair!r:.60}")
                pairs.append(tuple(pair))
        else:
            raise TypeError(f"ModuleDict.update: expected a mapping or an iterable of (key, "
                            f"module) pairs, got {type(modules).__name__}")
        for key, m in pairs:
            self[key] = m

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward: call the modules it holds")
