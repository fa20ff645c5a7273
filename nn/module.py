"""`Module` and `Parameter`: what every layer and model is built from (containers: container.py).

A Module registers what is assigned to it: a `Parameter` becomes a parameter, a `Module` a
submodule, and `register_buffer` declares a buffer (a plain ndarray such as a running mean that
is saved with the model but not trained). Registration order is assignment order, so
`named_parameters()` and `state_dict()` are deterministic.

Calling a module runs `forward` inside `autotensor.function.scope(path)`, so every node
recorded there carries the module's dotted path ("layers.2.conv"; "" for the root module's own
ops), the same names `named_modules()` gives. The visualiser groups nodes by it and anomaly
reports name it (with the module's class, so the root module's own ops are named too). The
stack of running modules is per thread, like the recording modes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from autotensor import Tensor
from autotensor.function import scope
from autotensor.hooks import RemovableHandle


class Parameter(Tensor):
    """A trainable Tensor: requires grad, floating dtype, registered when assigned to a Module."""

    __slots__ = ()

    def __init__(self, data, dtype=None):
        super().__init__(data, requires_grad=True, dtype=dtype)

    def __repr__(self):
        return "Parameter" + super().__repr__()[len("Tensor"):].replace(", requires_grad=True", "")


# The modules whose forward is running in this thread, innermost last, each with its path.
_running = threading.local()


def _call_stack():
    stack = getattr(_running, "stack", None)
    if stack is None:
        stack = _running.stack = []
    return stack


def _path_of(module, stack):
    """Dotted path of `module` seen from the module whose forward is running ("" at the root)."""
    if not stack:
        return ""
    parent, parent_path = stack[-1]
    for name, child in parent._modules.items():      # the common case: a direct child
        if child is module:
            return f"{parent_path}.{name}" if parent_path else name
    for name, m in parent.named_modules():            # a deeper one, e.g. self.layers[0]
        if m is module:
            return f"{parent_path}.{name}" if parent_path and name else parent_path or name
    # NOTE: a module the caller never registered (kept in a plain list, say) has no name of
    # its own; its ops are counted as the caller's.
    return parent_path


class Module:
    """Base class of layers and models: subclass it, assign parts in `__init__`, write `forward`.

        class MLP(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 2)

            def forward(self, x):
                return self.fc2(F.relu(self.fc1(x)))
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    # Keys that older autotensor versions saved under other names ({old: today's}), and keys
    # those states lack (kept as they are when absent): `load_state_dict` reads both.
    _old_key_names = {}
    _keys_added_since = ()

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def __call__(self, *args, **kwargs):
        stack = _call_stack()
        path = _path_of(self, stack)
        stack.append((self, path))
        try:
            with scope(path, type(self).__name__):
                if not (self._forward_pre_hooks or self._forward_hooks):
                    return self.forward(*args, **kwargs)
                return self._call_with_hooks(args, kwargs)
        finally:
            stack.pop()

    # ---- hooks ---------------------------------------------------------------------------------
    def _call_with_hooks(self, args, kwargs):
        """forward between the pre-hooks and the hooks, with PyTorch's replacement rules."""
        for hook, with_kwargs in list(self._forward_pre_hooks.values()):
            if with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError("a forward pre-hook registered with_kwargs=True "
                                           "must return None or a tuple (args, kwargs), got "
                                           f"{result!r:.60}")
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook, with_kwargs in list(self._forward_hooks.values()):
            result = hook(self, args, kwargs, output) if with_kwargs else hook(self, args, output)
            if result is not None:
                output = result
        return output

    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """Call `hook(module, args)` before each forward; a non-None result replaces args (a
        non-tuple is wrapped in one). with_kwargs=True: `hook(module, args, kwargs)` returning
        None or (args, kwargs). Returns a handle whose `.remove()` unregisters the hook."""
        return _add_hook(self._forward_pre_hooks, "register_forward_pre_hook", hook, prepend,
                         with_kwargs)

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False):
        """Call `hook(module, args, output)` after each forward; a non-None result replaces the
        output. with_kwargs=True: `hook(module, args, kwargs, output)`. Returns a handle whose
        `.remove()` unregisters the hook."""
        return _add_hook(self._forward_hooks, "register_forward_hook", hook, prepend, with_kwargs)

    # ---- registration --------------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() ran: call "
                                 f"super().__init__() first in {type(self).__name__}.__init__")
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            self._forget(name)
            params[name] = value
        elif isinstance(value, Module):
            self._forget(name)
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign a {type(value).__name__} to parameter {name!r} "
                                f"of {type(self).__name__}: wrap it in nn.Parameter")
            params[name] = None
        elif name in buffers:
            buffers[name] = _as_buffer(name, value)
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign a {type(value).__name__} to submodule {name!r}")
            modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only called when normal lookup fails, i.e. for registered names.
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        if not self._forget(name):
            object.__delattr__(self, name)

    def _forget(self, name):
        """Drop `name` from every table and the instance dict; True when it was registered."""
        found = False
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                found = True
        self.__dict__.pop(name, None)
        return found

    def register_buffer(self, name, array):
        """Declare a buffer: an ndarray (or None) kept in state_dict but not trained."""
        if not name.isidentifier() or "." in name:
            raise ValueError(f"buffer name must be an identifier, got {name!r}")
        self._forget(name)
        self._buffers[name] = _as_buffer(name, array)

    def register_parameter(self, name, param):
        """Declare a parameter explicitly (the same as `self.name = param`)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter({name!r}): expected a Parameter or None, got "
                            f"{type(param).__name__}")
        self._forget(name)
        self._parameters[name] = param

    def add_module(self, name, module):
        """Register `module` (or None) as the child `name`, as `self.name = module` does, for
        names that are not identifiers ("0") too."""
        if not isinstance(name, str):
            raise TypeError(f"module name must be a str, got {type(name).__name__}")
        if not name or "." in name:
            raise ValueError(f"module name must be non-empty and contain no '.', got {name!r}")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module({name!r}): expected a Module or None, got "
                            f"{type(module).__name__}")
        if name not in self._modules and hasattr(self, name):
            raise ValueError(f"add_module: {type(self).__name__} already has an attribute "
                             f"{name!r}")
        self._modules[name] = module

    register_module = add_module

    # ---- traversal -----------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """(dotted name, module) for this module ("" or `prefix`) and every submodule, pre-order
        (PyTorch's order). A module reached twice is listed once, under its first name, unless
        remove_duplicate=False; `memo` is a set of modules to leave out."""
        seen = set() if memo is None else memo
        stack = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if remove_duplicate:
                if m in seen:
                    continue
                seen.add(m)
            yield name, m
            children = [(f"{name}.{k}" if name else k, c) for k, c in m._modules.items()
                        if c is not None]
            stack.extend(reversed(children))

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        """(name, child) for each direct submodule, in registration order; a child registered
        under two names is listed once."""
        seen = set()
        for name, m in self._modules.items():
            if m is not None and m not in seen:
                seen.add(m)
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix=""):
        """(dotted name, Parameter) pairs: each module's own first, then its submodules'.

        A parameter shared by several modules is listed once, under its first name.
        """
        yield from self._named_members("_parameters", prefix)

    def parameters(self):
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix=""):
        yield from self._named_members("_buffers", prefix)

    def buffers(self):
        for _, b in self.named_buffers():
            yield b

    def _named_members(self, table, prefix):
        seen = set()
        for mod_name, m in self.named_modules(prefix=prefix):
            for k, v in getattr(m, table).items():
                if v is None or id(v) in seen:
                    continue
                seen.add(id(v))
                yield (f"{mod_name}.{k}" if mod_name else k), v

    def apply(self, fn):
        """Call `fn(m)` on every submodule (children first, recursively) then on self; returns
        self. The usual use is initialisation: `net.apply(init_weights)`."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---- modes and gradients -------------------------------------------------------------------
    def train(self, mode=True):
        """Set training mode here and in every submodule (dropout and batch norm use it)."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        """Evaluation mode: `train(False)`."""
        return self.train(False)

    def zero_grad(self):
        """Forget every parameter's gradient (grads accumulate across backward calls)."""
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, requires_grad=True):
        """Set `requires_grad` on every parameter (False freezes the module); returns self."""
        if not isinstance(requires_grad, (bool, np.bool_)):
            raise TypeError(f"requires_grad_: requires_grad must be a bool, got "
                            f"{type(requires_grad).__name__}")
        for p in self.parameters():
            p.requires_grad_(bool(requires_grad))
        return self

    def astype(self, dtype):
        """Convert every floating parameter and buffer to `dtype` in place; returns self."""
        dtype = np.dtype(dtype)
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = None
        for m in self.modules():
            for k, b in m._buffers.items():
                if b is not None and np.issubdtype(b.dtype, np.floating):
                    m._buffers[k] = b.astype(dtype)
        return self

    # ---- saving and loading --------------------------------------------------------------------
    def state_dict(self):
        """{dotted name: ndarray copy} of every parameter and buffer, in registration order.

        As in PyTorch, a module or parameter shared by several paths (tied weights) is saved
        under each of its names, so a PyTorch state dict of the same model has the same keys.
        """
        state = {}
        for mod_name, m in self.named_modules(remove_duplicate=False):
            for table in (m._parameters, m._buffers):
                for k, v in table.items():
                    if v is not None:
                        name = f"{mod_name}.{k}" if mod_name else k
                        state.setdefault(name, np.array(v.data if isinstance(v, Tensor) else v))
        return state

    def load_state_dict(self, state, strict=True):
        """Copy arrays from `state` into the parameters and buffers (in place, keeping dtypes).

        With strict=True the keys must match `state_dict()`'s exactly. Every entry given must
        have its target's shape and a dtype that casts to the target's within its kind (bool
        or int into float is fine; float into int, complex into float, strings and objects are
        refused). Everything is checked before anything is written, so a failed load raises a
        ValueError naming the entry and changes nothing. Returns (missing_keys, unexpected_keys).
        """
        where = f"load_state_dict for {type(self).__name__}"
        if not isinstance(state, Mapping):
            raise ValueError(f"{where}: expected a dict of arrays, got {type(state).__name__}")
        targets = {}
        for mod_name, m in self.named_modules(remove_duplicate=False):
            for table in (m._parameters, m._buffers):
                for k, v in table.items():
                    if v is not None:
                        targets.setdefault(f"{mod_name}.{k}" if mod_name else k, v)
        state, added = _renamed_old_keys(self, state)
        missing = [k for k in targets if k not in state and k not in added]
        unexpected = [k for k in state if k not in targets]
        if strict and (missing or unexpected):
            raise ValueError(f"{where}: missing keys {missing}, unexpected keys {unexpected}")
        arrays = {k: target.data if isinstance(target, Tensor) else target
                  for k, target in targets.items() if k in state}
        values = {k: _loadable(state[k], dest, f"{where}: {k!r}") for k, dest in arrays.items()}
        for k, value in values.items():           # everything checked: now write
            np.copyto(arrays[k], value, casting="same_kind")
        return missing, unexpected

    # ---- printing ------------------------------------------------------------------------------
    def extra_repr(self):
        """The text inside this module's parentheses in repr(); override in subclasses."""
        return ""

    def __repr__(self):
        lines = []
        for name, m in self.named_children():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        head = f"{type(self).__name__}({extra}" if extra else f"{type(self).__name__}("
        return head + "\n" + "\n".join(lines) + "\n)"


def _add_hook(hooks, where, hook, prepend, with_kwargs):
    if not callable(hook):
        raise TypeError(f"{where}: hook must be callable, got {type(hook).__name__}")
    handle = RemovableHandle(hooks)
    hooks[handle.id] = (hook, bool(with_kwargs))
    if prepend:
        hooks.move_to_end(handle.id, last=False)
    return handle


def _renamed_old_keys(root, state):
    """(state with the keys of older autotensor versions renamed to today's, the keys such an
    old state lacks by design). A module's old names apply only where none of its keys is in
    today's form, so a current state is read exactly as given."""
    state = dict(state)
    added = set()
    for mod_name, m in root.named_modules(remove_duplicate=False):
        if not m._old_key_names:
            continue
        prefix = f"{mod_name}." if mod_name else ""
        old = {prefix + a: prefix + b for a, b in m._old_key_names.items()}
        if any(k in state for k in old.values()) or not any(k in state for k in old):
            continue
        for a, b in old.items():
            if a in state:
                state[b] = state.pop(a)
        added.update(prefix + k for k in m._keys_added_since)
    return state, added


def _loadable(value, dest, what):
    """`value` (array-like or Tensor) as an array that can be copied into the array `dest`."""
    try:
        a = np.asarray(value.data if isinstance(value, Tensor) else value)
    except (ValueError, TypeError) as e:          # ragged nested lists, ...
        raise ValueError(f"{what} is not an array: {e}") from e
    if a.shape != dest.shape:
        raise ValueError(f"{what} has shape {dest.shape} in the model but {a.shape} in the "
                         "state dict")
    # NOTE: "same_kind" lets float64 into float32 (the dtype policy keeps the model's), but
    # never truncates a float into an int buffer or drops an imaginary part.
    if a.dtype.kind not in "biufc" or not np.can_cast(a.dtype, dest.dtype, "same_kind"):
        raise ValueError(f"{what} has dtype {a.dtype} in the state dict, which does not cast "
                         f"to the model's {dest.dtype}")
    return a


def _as_buffer(name, value):
    if value is None:
        return None
    if isinstance(value, Tensor):
        raise TypeError(f"buffer {name!r} must be a numpy array, got a Tensor: buffers are not "
                        "part of the graph (use .data)")
    return np.asarray(value)
