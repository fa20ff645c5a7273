"""PyTorch weights in and out: `nn.utils.load_torch_state_dict` and `nn.utils.torch_state_dict`.

    net = MyNet()                                   # the same architecture as the torch model
    nn.utils.load_torch_state_dict(net, torch_net.state_dict())
    nn.utils.load_torch_state_dict(net, at.load("net.safetensors"))   # safetensors.torch files

Both libraries key a state dict by dotted module paths ("features.0.weight"); where autotensor
stores a parameter differently, this module translates, and nowhere else does:
- a parameter stored transposed: `nn.Linear.weight` is (in_features, out_features) here and
  (out_features, in_features) in PyTorch. A module class declares its own transposed parameters
  in a class attribute `torch_transposed = ("name", ...)`; `nn.Linear` needs none (its weight is
  known here), so the rule keeps working for modules added later.
Every other parameter and buffer has PyTorch's name and shape (the batch-norm modules keep
`num_batches_tracked` too), so it is copied as it is.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from autotensor import Tensor

from .linear import Linear

__all__ = ["load_torch_state_dict", "torch_state_dict", "transposed_keys"]


def transposed_keys(model):
    """The `model.state_dict()` keys whose arrays autotensor stores as the transpose of
    PyTorch's: every `nn.Linear` weight, and the names a module class lists in
    `torch_transposed`. Every other key and shape is PyTorch's as it is."""
    keys = set()
    for path, m in model.named_modules(remove_duplicate=False):     # tied modules: every path
        names = getattr(type(m), "torch_transposed", ("weight",) if isinstance(m, Linear)
                        else ())
        keys.update(f"{path}.{k}" if path else k for k in names
                    if m._parameters.get(k) is not None or m._buffers.get(k) is not None)
    return keys


def torch_state_dict(model):
    """{PyTorch key: ndarray} of `model`'s parameters and buffers in PyTorch's layout (copies,
    C-contiguous), ready for `torch_module.load_state_dict({k: torch.from_numpy(v) ...})` or
    `safetensors.numpy.save_file`."""
    transposed = transposed_keys(model)
    return {k: np.array(v.T if k in transposed else v, order="C")
            for k, v in model.state_dict().items()}


def load_torch_state_dict(model, state_dict, strict=True):
    """Copy a PyTorch state dict (torch tensors, or ndarrays as `at.load` returns them) into
    `model`, an autotensor module of the same architecture; returns (missing_keys,
    unexpected_keys).

    Transposed entries are translated (see the module's docstring). With
    strict=True the keys must match exactly. Every entry is checked (shape, dtype) before any is
    written: a mismatch raises ValueError naming the key and both shapes, and changes nothing.
    """
    where = f"load_torch_state_dict for {type(model).__name__}"
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"{where}: state_dict must be a dict of tensors or arrays, got "
                         f"{type(state_dict).__name__}")
    arrays, transposed = model.state_dict(), transposed_keys(model)
    missing = [k for k in arrays if k not in state_dict]
    unexpected = [k for k in state_dict if k not in arrays]
    if strict and (missing or unexpected):
        raise ValueError(f"{where}: missing keys {missing}, unexpected keys {unexpected}")
    converted = {}
    for k, ours in arrays.items():
        if k not in state_dict:
            continue
        a = _array(state_dict[k], f"{where}: {k!r}")
        flip = k in transposed
        want = ours.T.shape if flip else ours.shape
        if a.shape != want:
            layout = " (PyTorch's layout: the transpose of autotensor's)" if flip else ""
            raise ValueError(f"{where}: {k!r} has shape {a.shape} in the state dict but the "
                             f"model expects {want}{layout}")
        converted[k] = a.T if flip else a
    # Module.load_state_dict checks the dtypes of all before writing any.
    model.load_state_dict(converted, strict=False)
    return missing, unexpected


def _array(value, what):
    """A torch tensor, Tensor or array-like as an ndarray (torch is never imported here)."""
    if isinstance(value, Tensor):
        return value.data
    if hasattr(value, "detach") and hasattr(value, "numpy"):       # a torch.Tensor
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{what} is not an array: {e}") from e
