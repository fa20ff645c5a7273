"""Sequential, ModuleList, ModuleDict and the Module traversal/hook API, against PyTorch's
behaviour (names, orders, dedupe) and on their own."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import autotensor as at
from autotensor import nn


def _build(lib):
    """The same nested model in autotensor (lib=nn) or torch (lib=torch.nn), with a shared
    submodule, a ModuleList and a ModuleDict."""
    shared = lib.Linear(3, 3)

    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.stem = lib.Sequential(lib.Linear(3, 3), lib.ReLU(), shared)
            self.blocks = lib.ModuleList([lib.Sequential(shared, lib.Tanh()), lib.Linear(3, 3)])
            self.heads = lib.ModuleDict({"cls": lib.Linear(3, 2), "box": shared})
            self.last = shared

    return Net()


def test_traversal_orders_and_dedupe_match_torch(torch):
    ours, theirs = _build(nn), _build(torch.nn)
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert ([n for n, _ in ours.named_modules(remove_duplicate=False)]
            == [n for n, _ in theirs.named_modules(remove_duplicate=False)])
    assert ([n for n, _ in ours.named_modules(prefix="m")]
            == [n for n, _ in theirs.named_modules(prefix="m")])
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert ([type(m).__name__ for m in ours.children()]
            == [type(m).__name__ for m in theirs.children()])
    assert len(list(ours.modules())) == len(list(theirs.modules()))
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]


def test_state_dict_keys_match_torch(torch):
    ours, theirs = _build(nn), _build(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_apply_visits_children_first_then_self_like_torch(torch):
    seen_a, seen_t = [], []
    ours, theirs = _build(nn), _build(torch.nn)
    assert ours.apply(lambda m: seen_a.append(type(m).__name__)) is ours
    theirs.apply(lambda m: seen_t.append(type(m).__name__))
    assert seen_a == seen_t and seen_a[-1] == "Net"


def test_a_child_registered_twice_is_one_child(torch):
    relu = nn.ReLU()
    seq = nn.Sequential(relu, relu)
    tseq = torch.nn.Sequential(*[torch.nn.ReLU()] * 2)
    assert [n for n, _ in seq.named_children()] == [n for n, _ in tseq.named_children()] == ["0"]
    assert len(seq) == 2


def test_sequential_indexing_and_edits_match_torch(torch):
    def make(lib):
        return lib.Sequential(lib.Linear(2, 2), lib.ReLU(), lib.Tanh(), lib.Sigmoid())

    ours, theirs = make(nn), make(torch.nn)

    def names(seq):
        return [(k, type(m).__name__) for k, m in seq._modules.items()]

    assert type(ours[-1]).__name__ == "Sigmoid" and ours[-4] is ours[0]
    assert isinstance(ours[1:], nn.Sequential) and names(ours[1:]) == names(theirs[1:])
    assert names(ours[::2]) == names(theirs[::2])
    for seq in (ours, theirs):
        del seq[1]
        seq.insert(1, type(seq[1])())             # a second Tanh
        seq.append(type(seq[0])(2, 2))
    assert names(ours) == names(theirs) and len(ours) == len(theirs) == 5
    assert ours.pop(-1) is not None and len(ours) == 4
    with pytest.raises(IndexError, match="out of range"):
        ours[4]
    with pytest.raises(TypeError, match="indices must be integers"):
        ours["0"]


def test_sequential_from_an_ordered_dict_keeps_names():
    seq = nn.Sequential(OrderedDict([("fc", nn.Linear(3, 2)), ("act", nn.ReLU())]))
    assert list(seq.state_dict()) == ["fc.weight", "fc.bias"] and seq.fc is seq[0]
    x = np.random.default_rng(0).standard_normal((4, 3))
    np.testing.assert_array_equal(seq(x).data, seq.act(seq.fc(x)).data)


def test_module_list_operations_match_torch(torch):
    def make(lib):
        ml = lib.ModuleList([lib.ReLU()])
        ml.append(lib.Tanh())
        ml.extend([lib.Sigmoid(), lib.Identity()])
        ml.insert(0, lib.Linear(2, 2))
        ml += lib.ModuleList([lib.ReLU()])
        ml[1] = lib.ELU()
        del ml[2]
        return ml

    ours, theirs = make(nn), make(torch.nn)

    def names(ml):
        return [(k, type(m).__name__) for k, m in ml._modules.items()]

    assert names(ours) == names(theirs)
    assert names(ours[1:3]) == names(theirs[1:3]) and isinstance(ours[1:3], nn.ModuleList)
    assert type(ours[-1]).__name__ == type(theirs[-1]).__name__
    assert [type(m).__name__ for m in ours] == [type(m).__name__ for m in theirs]
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["0.weight", "0.bias"]
    with pytest.raises(NotImplementedError, match="iterate"):
        ours(np.zeros(2))
    with pytest.raises(TypeError, match="not a Module"):
        ours.append(np.zeros(2))


def test_module_dict_operations_match_torch(torch):
    def make(lib):
        md = lib.ModuleDict({"b": lib.Linear(2, 2), "a": lib.ReLU()})
        md.update([("c", lib.Tanh())])
        md.update({"a": lib.Linear(2, 3)})
        md["d"] = lib.Identity()
        del md["c"]
        return md

    ours, theirs = make(nn), make(torch.nn)
    assert list(ours.keys()) == list(theirs.keys()) == ["b", "a", "d"]
    assert [type(m).__name__ for m in ours.values()] == ["Linear", "Linear", "Identity"]
    assert [k for k, _ in ours.items()] == list(ours) == ["b", "a", "d"]
    assert "a" in ours and "c" not in ours and len(ours) == 3
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert type(ours.pop("d")).__name__ == "Identity" and len(ours) == 2
    with pytest.raises(TypeError, match="not a Module"):
        ours["x"] = 3
    with pytest.raises(ValueError, match="contain no '.'"):
        ours["a.b"] = nn.ReLU()
    with pytest.raises(ValueError, match="already has an attribute 'keys'"):
        ours["keys"] = nn.ReLU()
    with pytest.raises(ValueError, match="pair"):
        ours.update([("x",)])


def test_containers_train_and_backprop_through_their_members():
    at.manual_seed(0)
    layers = nn.ModuleList([nn.Linear(3, 3) for _ in range(2)])
    heads = nn.ModuleDict({"out": nn.Linear(3, 1)})
    x = at.Tensor(np.random.default_rng(0).standard_normal((4, 3)))
    h = x
    for layer in layers:
        h = nn.functional.tanh(layer(h))
    heads["out"](h).sum().backward()
    assert all(p.grad is not None for p in [*layers.parameters(), *heads.parameters()])


# ---- hooks and requires_grad_ --------------------------------------------------------------
def test_forward_hooks_replace_output_and_args_like_torch(torch):
    def run(lib, tensor):
        m = lib.Identity()
        calls = []
        h1 = m.register_forward_pre_hook(lambda mod, args: calls.append("pre") or args[0] * 2)
        h2 = m.register_forward_hook(lambda mod, args, out: calls.append("post") or out + 1)
        first = float(m(tensor(np.ones(2)))[0])
        h2.remove()
        h2.remove()                           # twice is harmless
        n_args = []
        m.register_forward_hook(lambda mod, args, out: n_args.append(len(args)))
        second = float(m(tensor(np.ones(2)))[0])
        h1.remove()
        third = float(m(tensor(np.ones(2)))[0])
        return calls, [first, second, third], n_args

    ours, theirs = run(nn, at.Tensor), run(torch.nn, torch.tensor)
    assert ours == theirs
    assert ours == (["pre", "post", "pre"], [3.0, 2.0, 1.0], [1, 1])


def test_pre_hook_args_reach_forward_and_hooks_are_ordered():
    m = nn.Identity()
    order = []
    m.register_forward_pre_hook(lambda mod, args: order.append(1))
    m.register_forward_pre_hook(lambda mod, args: order.append(0), prepend=True)
    m.register_forward_pre_hook(lambda mod, args: (args[0] + 1,))
    with m.register_forward_hook(lambda mod, args, out: out * 10):
        assert m(np.array(1.0)).item() == 20.0
    assert m(np.array(1.0)).item() == 2.0             # the context manager removed the hook
    assert order == [0, 1, 0, 1]


def test_hooks_with_kwargs():
    class Scale(nn.Module):
        def forward(self, x, factor=1.0):
            return x * factor

    m = Scale()
    m.register_forward_pre_hook(lambda mod, args, kwargs: (args, {"factor": 3.0}),
                                with_kwargs=True)
    seen = []
    m.register_forward_hook(lambda mod, args, kwargs, out: seen.append(kwargs), with_kwargs=True)
    assert m(at.Tensor(np.array(2.0)), factor=5.0).item() == 6.0
    assert seen == [{"factor": 3.0}]
    with pytest.raises(TypeError, match="callable"):
        m.register_forward_hook(3)


def test_hook_gradients_flow():
    m = nn.Linear(2, 2)
    m.register_forward_hook(lambda mod, args, out: out * 3)
    x = at.Tensor(np.ones((1, 2)), requires_grad=True)
    m(x).sum().backward()
    np.testing.assert_allclose(x.grad, 3 * m.weight.data.sum(1)[None])


def test_requires_grad_freezes_and_unfreezes():
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    assert net[0].requires_grad_(False) is net[0]
    x = at.Tensor(np.ones((3, 2)))
    net(x).sum().backward()
    assert net[0].weight.grad is None and net[1].weight.grad is not None
    net.requires_grad_()
    assert all(p.requires_grad for p in net.parameters())
    with pytest.raises(TypeError, match="bool"):
        net.requires_grad_("yes")
