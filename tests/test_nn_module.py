"""nn.Module and the layer modules: registration, state_dict, modes, scopes, gradients, init."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import autotensor as at
from autotensor import Tensor, nn
from autotensor.autograd import graph_nodes
from autotensor.nn import functional as F
from autotensor.nn import init


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)

    def forward(self, x):
        return F.relu(self.norm(self.fc(x))) + x       # the "+ x" is Block's own op


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), Block(3))
        self.head = nn.Linear(3, 2)
        self.scale = nn.Parameter(np.ones(2))
        self.register_buffer("steps", np.zeros(()))

    def forward(self, x):
        h = self.layers[0](x)                           # a grandchild called directly
        h = self.layers[2](self.layers[1](h))
        return self.head(h) * self.scale


def _net():
    np.random.seed(0)
    return Net()


# ---- registration and traversal ----------------------------------------------------------------
def test_named_parameters_are_dotted_and_in_assignment_order():
    names = [n for n, _ in _net().named_parameters()]
    assert names == ["scale", "layers.0.weight", "layers.0.bias", "layers.1.weight",
                     "layers.1.bias", "layers.2.fc.weight", "layers.2.fc.bias",
                     "layers.2.norm.weight", "layers.2.norm.bias", "head.weight", "head.bias"]
    assert all(isinstance(p, nn.Parameter) for p in _net().parameters())


def test_named_modules_and_buffers():
    net = _net()
    assert [n for n, _ in net.named_modules()] == [
        "", "layers", "layers.0", "layers.1", "layers.2", "layers.2.fc", "layers.2.norm", "head"]
    assert [n for n, _ in net.named_buffers()] == ["steps", "layers.1.running_mean",
                                                   "layers.1.running_var",
                                                   "layers.1.num_batches_tracked"]
    assert [n for n, _ in net.named_children()] == ["layers", "head"]


def test_shared_parameters_are_listed_once():
    fc = nn.Linear(2, 2)
    seq = nn.Sequential(fc, nn.ReLU(), fc)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]


def test_reassignment_and_deletion_update_the_tables():
    m = nn.Module()
    m.w = nn.Parameter(np.zeros(2))
    m.w = nn.Linear(2, 2)                       # a parameter name reused for a submodule
    assert [n for n, _ in m.named_parameters()] == ["w.weight", "w.bias"]
    del m.w
    assert list(m.parameters()) == [] and not hasattr(m, "w")
    m.register_buffer("stat", np.ones(3))
    m.stat = np.zeros(3)
    np.testing.assert_array_equal(m.state_dict()["stat"], np.zeros(3))


def test_registration_errors():
    class Forgot(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match="super"):
        Forgot()
    lin = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="Parameter"):
        lin.weight = np.zeros((2, 2))
    with pytest.raises(TypeError, match="numpy array"):
        lin.register_buffer("b2", Tensor(np.zeros(2)))
    with pytest.raises(TypeError):
        nn.Parameter(np.array([1, 2]))          # integer data cannot require grad


def test_sequential_indexing():
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert len(seq) == 3 and isinstance(seq[1], nn.ReLU) and seq[-1] is seq[2]
    assert isinstance(seq[:2], nn.Sequential) and len(seq[:2]) == 2
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    with pytest.raises(IndexError, match="out of range"):
        seq[3]
    seq.append(nn.Tanh())
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2", "3"]


def test_repr_is_nested():
    text = repr(nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.ReLU(), nn.Dropout(0.2))))
    assert text == ("Sequential(\n"
                    "  (0): Linear(in_features=3, out_features=4, bias=True)\n"
                    "  (1): Sequential(\n"
                    "    (0): ReLU()\n"
                    "    (1): Dropout(p=0.2)\n"
                    "  )\n"
                    ")")
    assert repr(nn.Parameter(np.zeros(2))).startswith("Parameter(")


# ---- modes and gradients -----------------------------------------------------------------------
def test_train_eval_is_recursive_and_changes_behaviour():
    net = nn.Sequential(nn.Dropout(0.5), nn.Sequential(nn.BatchNorm1d(3)))
    assert net.eval() is net
    assert all(not m.training for m in net.modules())
    x = np.random.default_rng(0).standard_normal((8, 3)) + 5
    out = net(x).data                        # eval: dropout off, running stats (0, 1) used
    np.testing.assert_allclose(out, x / np.sqrt(1 + 1e-5))
    net.train()
    assert all(m.training for m in net.modules())
    out = net[1](x).data
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-10)


def test_zero_grad():
    net = _net()
    net(np.ones((5, 4))).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


# ---- state_dict --------------------------------------------------------------------------------
def test_state_dict_round_trip_includes_buffers():
    net = _net()
    for _ in range(3):                       # move the running statistics away from (0, 1)
        net(np.random.default_rng(1).standard_normal((6, 4)))
    state = net.state_dict()
    assert "layers.1.running_mean" in state and "steps" in state
    assert not np.allclose(state["layers.1.running_mean"], 0)
    np.random.seed(5)
    other = Net()
    other.load_state_dict(state)
    for (k, a), (_, b) in zip(net.state_dict().items(), other.state_dict().items(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=k)
    x = np.random.default_rng(2).standard_normal((3, 4))
    np.testing.assert_array_equal(net.eval()(x).data, other.eval()(x).data)
    state["head.bias"][:] = 99               # state_dict holds copies
    assert not np.any(net.head.bias.data == 99)


def test_load_keeps_the_arrays_and_dtypes():
    net = nn.Linear(2, 3, dtype=np.float32)
    w = net.weight
    net.load_state_dict({"weight": np.ones((2, 3)), "bias": np.zeros(3)})
    assert net.weight is w and w.dtype == np.float32 and np.all(w.data == 1)


def test_load_state_dict_strict_errors_name_keys_and_shapes():
    net = _net()
    state = net.state_dict()
    missing = dict(state)
    del missing["head.weight"]
    with pytest.raises(ValueError, match=r"missing keys \['head.weight'\]"):
        net.load_state_dict(missing)
    with pytest.raises(ValueError, match=r"unexpected keys \['extra'\]"):
        net.load_state_dict({**state, "extra": np.zeros(1)})
    bad = {**state, "layers.1.running_var": np.ones(4), "head.bias": state["head.bias"] + 1}
    with pytest.raises(ValueError, match=r"'layers.1.running_var' has shape \(3,\) in the model "
                                         r"but \(4,\)"):
        net.load_state_dict(bad)
    np.testing.assert_array_equal(net.head.bias.data, state["head.bias"])   # nothing written
    assert net.load_state_dict(missing, strict=False) == (["head.weight"], [])


def test_load_state_dict_refuses_uncastable_dtypes_before_writing_anything():
    """A bad entry late in the order (here the last buffer) must not let earlier entries be
    written first, whatever is wrong with it: strings, objects, complex, dates, float into
    int."""
    net = _net()
    state = {k: v + 1 for k, v in net.state_dict().items()}     # every entry differs
    before = {k: v.copy() for k, v in net.state_dict().items()}
    for bad, match in [(np.array("x"), "<U1"), (np.array(None), "object"),
                       (np.array(1 + 2j), "complex128"), (np.datetime64("2020"), r"datetime64")]:
        with pytest.raises(ValueError, match=rf"'steps' has dtype {match}"):
            net.load_state_dict({**state, "steps": bad})
        for k, v in net.state_dict().items():
            np.testing.assert_array_equal(v, before[k], err_msg=k)
    counter = nn.Module()
    counter.register_buffer("n", np.zeros((), np.int64))
    with pytest.raises(ValueError, match="'n' has dtype float64.*int64"):
        counter.load_state_dict({"n": np.array(2.5)})
    counter.load_state_dict({"n": np.array(True)})                 # bool into int: fine
    assert counter.n == 1


# ---- module scopes on recorded nodes -----------------------------------------------------------
def test_nodes_carry_the_dotted_path_of_their_module():
    net = _net()
    x = Tensor(np.ones((5, 4)), requires_grad=True)
    out = net(x)
    loss = at.sum(out)                       # outside any module
    scopes = {n.scope for n in graph_nodes(loss._node)}
    names = {n for n, _ in net.named_modules()}
    assert scopes == {None, "", "layers.0", "layers.1", "layers.2", "layers.2.fc",
                      "layers.2.norm", "head"}
    assert scopes - {None} <= names
    assert loss._node.scope is None and out._node.scope == ""     # "* self.scale" is Net's own
    assert at.function.current_scope() is None


# ---- one gradcheck over every module -----------------------------------------------------------
def _rng():
    return np.random.default_rng(0)


MODULE_ROWS = {  # name -> (module factory, input factory)
    "Linear": (lambda: nn.Linear(3, 2, rng=_rng()), lambda r: r.standard_normal((4, 2, 3))),
    "ReLU": (nn.ReLU, lambda r: r.uniform(0.1, 1, (3, 4)) * r.choice([-1, 1], (3, 4))),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.2),
                  lambda r: r.uniform(0.1, 1, (3, 4)) * r.choice([-1, 1], (3, 4))),
    "Sigmoid": (nn.Sigmoid, lambda r: r.standard_normal((3, 4))),
    "Tanh": (nn.Tanh, lambda r: r.standard_normal((3, 4))),
    "Dropout": (lambda: nn.Dropout(0.3, seed=1), lambda r: r.standard_normal((5, 4))),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(3), lambda r: r.standard_normal((6, 3))),
    "BatchNorm1d_eval": (lambda: nn.BatchNorm1d(3).eval(), lambda r: r.standard_normal((6, 3))),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(2), lambda r: r.standard_normal((2, 2, 3, 3))),
    "LayerNorm": (lambda: nn.LayerNorm(5), lambda r: r.standard_normal((3, 5))),
    "LayerNorm_2d": (lambda: nn.LayerNorm((2, 3)), lambda r: r.standard_normal((3, 2, 3))),
    "GroupNorm": (lambda: nn.GroupNorm(2, 4), lambda r: r.standard_normal((2, 4, 3))),
    "BatchNorm1d_3d": (lambda: nn.BatchNorm1d(2), lambda r: r.standard_normal((3, 2, 4))),
    "Conv2d": (lambda: nn.Conv2d(2, 3, (3, 2), stride=2, padding=1, rng=_rng()),
               lambda r: r.standard_normal((2, 2, 5, 4))),
    "MaxPool2d": (lambda: nn.MaxPool2d(2), lambda r: r.permutation(32).reshape(2, 1, 4, 4) / 10),
    "ConvTranspose2d": (lambda: nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1),
                        lambda r: r.standard_normal((2, 2, 3, 4))),
    "AvgPool2d": (lambda: nn.AvgPool2d(2, padding=1), lambda r: r.standard_normal((2, 2, 4, 5))),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d((2, 3)),
                          lambda r: r.standard_normal((2, 2, 5, 7))),
    "AdaptiveMaxPool2d": (lambda: nn.AdaptiveMaxPool2d(2),
                          lambda r: r.permutation(70).reshape(2, 1, 5, 7) / 10),
    "Flatten": (nn.Flatten, lambda r: r.standard_normal((2, 3, 2))),
    "Sequential": (lambda: nn.Sequential(nn.Linear(3, 4, rng=_rng()), nn.Tanh(),
                                         nn.Linear(4, 2, rng=_rng())),
                   lambda r: r.standard_normal((5, 3))),
}


# ---- embeddings and recurrent layers (issue 12); tests/test_nn_recurrent.py compares with torch
class _Lookup(nn.Module):
    """Embedding rows (a repeated index among them) scaled by the float input x (3, 3)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(4, 3)

    def forward(self, x):
        return self.emb(np.array([1, 3, 1])) * x


class _Flat(nn.Module):
    """nn.LSTM's (output, (h_n, c_n)) as the flat tuple gradcheck takes."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(2, 3, num_layers=2, bidirectional=True)

    def forward(self, x):
        out, (h, c) = self.lstm(x)
        return out, h, c


MODULE_ROWS.update({
    "Embedding": (_Lookup, lambda r: r.standard_normal((3, 3))),
    "RNN": (lambda: nn.RNN(2, 3, num_layers=2, batch_first=True),
            lambda r: r.standard_normal((2, 3, 2))),
    "LSTM": (_Flat, lambda r: r.standard_normal((3, 2, 2))),
    "GRU": (lambda: nn.GRU(2, 3, bidirectional=True), lambda r: r.standard_normal((3, 2))),
    "RNNCell": (lambda: nn.RNNCell(2, 3, nonlinearity="tanh"), lambda r: r.standard_normal((4, 2))),
    "LSTMCell": (lambda: nn.LSTMCell(2, 3), lambda r: r.standard_normal((4, 2))),
    "GRUCell": (lambda: nn.GRUCell(2, 3), lambda r: r.standard_normal(2)),
})




# ---- issue 12: activations, containers, attention (tests/test_nn_activation.py, _containers.py,
# _attention.py compare them with torch; these rows are the numerical checks of the modules)
class _Calls(nn.Module):
    """fn(inner, x): a one-input forward for modules that have none (containers, attention)."""

    def __init__(self, inner, fn):
        super().__init__()
        self.inner, self.fn = inner, fn

    def forward(self, x):
        return self.fn(self.inner, x)


def _off_kinks(r, shape=(3, 4)):
    return r.uniform(0.1, 1, shape) * r.choice([-1, 1], shape)


def _off_bounds(r, shape=(3, 4)):
    inside, outside = r.uniform(-0.9, 0.9, shape), r.uniform(1.1, 2, shape) * r.choice([-1, 1],
                                                                                      shape)
    return np.where(r.random(shape) < 0.5, inside, outside)


MODULE_ROWS.update({
    "GELU": (nn.GELU, lambda r: r.standard_normal((3, 4))),
    "GELU_tanh": (lambda: nn.GELU("tanh"), lambda r: r.standard_normal((3, 4))),
    "SiLU": (nn.SiLU, lambda r: r.standard_normal((3, 4))),
    "ELU": (lambda: nn.ELU(0.7), _off_kinks),
    "Softplus": (nn.Softplus, lambda r: r.standard_normal((3, 4))),
    "Hardtanh": (nn.Hardtanh, _off_bounds),
    "Softmax": (lambda: nn.Softmax(dim=1), lambda r: r.standard_normal((3, 4))),
    "LogSoftmax": (lambda: nn.LogSoftmax(dim=0), lambda r: r.standard_normal((3, 4))),
    "Identity": (nn.Identity, lambda r: r.standard_normal((3, 4))),
    "ModuleList": (lambda: _Calls(nn.ModuleList([nn.Linear(3, 3, rng=_rng()), nn.Tanh()]),
                                  lambda ml, x: ml[1](ml[0](x))),
                   lambda r: r.standard_normal((2, 3))),
    "ModuleDict": (lambda: _Calls(nn.ModuleDict({"fc": nn.Linear(3, 2, rng=_rng())}),
                                  lambda md, x: md["fc"](x)),
                   lambda r: r.standard_normal((2, 3))),
    "MultiheadAttention": (lambda: _Calls(nn.MultiheadAttention(4, 2, batch_first=True),
                                          lambda m, x: m(x, x, x)[0]),
                           lambda r: r.standard_normal((2, 3, 4))),
})

@pytest.mark.parametrize("name", sorted(MODULE_ROWS))
def test_module_gradcheck(name):
    make, build = MODULE_ROWS[name]
    m = make()
    r = np.random.default_rng(1)
    for p in m.parameters():                 # move gamma/beta/biases off their neutral values
        p.data[...] = p.data + 0.3 * r.standard_normal(p.shape)
    x = Tensor(build(r), requires_grad=True)
    assert at.gradcheck(lambda x, *ps: m(x), [x, *m.parameters()], atol=1e-6, rtol=1e-5)


def test_every_module_has_a_gradcheck_row():
    classes = {n for n in nn.__all__ if inspect.isclass(getattr(nn, n))
               and issubclass(getattr(nn, n), nn.Module) and n != "Module"
               and not n.endswith("Loss")}     # losses take a target: tests/test_nn_loss.py
    assert classes <= {n.split("_")[0] for n in MODULE_ROWS}, classes


def test_module_shape_errors():
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\).*\(2, 4, 5, 5\)"):
        nn.BatchNorm2d(3)(np.zeros((2, 4, 5, 5)))
    with pytest.raises(ValueError, match="channels"):
        nn.Conv2d(3, 2, 3)(np.zeros((1, 2, 5, 5)))
    with pytest.raises(ValueError, match="probability"):
        nn.Dropout(2)
    with pytest.raises(ValueError, match="kernel_size"):
        nn.MaxPool2d(0)
    with pytest.raises(ValueError, match="stride"):
        nn.Conv2d(1, 1, 3, stride=0)
    with pytest.raises(ValueError, match="padding"):
        nn.Conv2d(1, 1, 3, padding=(1, -1))
    with pytest.raises(ValueError, match="stride"):
        nn.Conv2d(1, 1, 3, stride=1.5)


def test_conv2d_stride_and_padding_pairs():
    conv = nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 0), rng=_rng())
    x = np.random.default_rng(2).standard_normal((2, 2, 7, 6))
    out = conv(x)
    assert out.shape == (2, 3, (7 + 2 - 3) // 2 + 1, (6 - 2) // 1 + 1)
    ref = F.conv2d(x, conv.weight, conv.bias, stride=(2, 1), pad=(1, 0))
    np.testing.assert_array_equal(out.data, ref.data)
    assert "stride=(2, 1), padding=(1, 0)" in repr(conv)


def test_float32_modules_stay_float32():
    m = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3), nn.LayerNorm(3))
    m.astype(np.float32)
    assert all(p.dtype == np.float32 for p in m.parameters())
    # num_batches_tracked stays int64, as PyTorch's does under .float()
    assert all(b.dtype == np.float32 for b in m.buffers() if b.dtype.kind == "f")
    assert m[1].num_batches_tracked.dtype == np.int64
    out = m(np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32))
    assert out.dtype == np.float32
    out.sum().backward()
    assert all(p.grad.dtype == np.float32 for p in m.parameters())
    assert all(b.dtype == np.float32 for b in m.buffers() if b.dtype.kind == "f")


# ---- init --------------------------------------------------------------------------------------
def test_fan_conventions():
    assert init.fans((30, 20)) == (30, 20)                   # Linear weight (in, out)
    assert init.fans((8, 3, 5, 5)) == (75, 200)               # conv weight (F, C, HH, WW)
    with pytest.raises(ValueError, match="2 dimensions"):
        init.fans((5,))


@pytest.mark.parametrize("fn, std", [
    (init.kaiming_normal, np.sqrt(2 / 400)), (init.kaiming_uniform, np.sqrt(2 / 400)),
    (init.xavier_normal, np.sqrt(2 / 700)), (init.xavier_uniform, np.sqrt(2 / 700)),
])
def test_initialiser_statistics(fn, std):
    w = fn(np.empty((400, 300)), rng=np.random.default_rng(0))
    assert abs(w.std() / std - 1) < 0.02 and abs(w.mean()) < 0.1 * std


def test_gaussian_reproduces_the_course_draws():
    np.random.seed(231)
    expected = 1e-3 * np.random.randn(4, 5)
    np.random.seed(231)
    p = init.gaussian(nn.Parameter(np.empty((4, 5))), scale=1e-3)
    np.testing.assert_array_equal(p.data, expected)
    np.testing.assert_array_equal(init.zeros(np.ones(3)), 0)
    np.testing.assert_array_equal(init.ones(np.zeros(3)), 1)
