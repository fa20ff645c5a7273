"""nn.utils.load_torch_state_dict / torch_state_dict: PyTorch weights in and out."""

from __future__ import annotations

import numpy as np
import pytest

import autotensor as at
from autotensor import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.fc = nn.Sequential(nn.Linear(2 * 4 * 4, 5), nn.ReLU(), nn.Linear(5, 3))

    def forward(self, x):
        return self.fc(at.relu(self.bn(self.conv(x))).flatten(1))


def torch_net(torch):
    tnn = torch.nn

    class TorchNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv = tnn.Conv2d(1, 2, 3, padding=1)
            self.bn = tnn.BatchNorm2d(2)
            self.fc = tnn.Sequential(tnn.Linear(2 * 4 * 4, 5), tnn.ReLU(), tnn.Linear(5, 3))

        def forward(self, x):
            return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))

    return TorchNet().double()


def test_safetensors_file_from_torch_gives_the_same_outputs(torch, tmp_path):
    from safetensors.torch import save_file
    torch.manual_seed(0)
    tnet = torch_net(torch)
    with torch.no_grad():                       # non-trivial batch-norm affine parameters
        tnet.bn.weight.uniform_(0.5, 1.5)
        tnet.bn.bias.uniform_(-0.5, 0.5)
    save_file(tnet.state_dict(), tmp_path / "net.safetensors")
    net = Net()
    missing, unexpected = nn.utils.load_torch_state_dict(net, at.load(tmp_path / "net.safetensors"))
    assert missing == [] and unexpected == []
    x = np.random.default_rng(0).standard_normal((4, 1, 4, 4))
    np.testing.assert_allclose(net(x).data, tnet(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)


def test_torch_state_dict_round_trips_into_torch(torch):
    net = Net()
    tnet = torch_net(torch)
    state = nn.utils.torch_state_dict(net)
    assert state["fc.0.weight"].shape == (5, 32) and state["bn.weight"].shape == (2,)
    tnet.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    x = np.random.default_rng(1).standard_normal((4, 1, 4, 4))
    np.testing.assert_allclose(tnet(torch.from_numpy(x)).detach().numpy(), net(x).data,
                               rtol=1e-12, atol=1e-12)


def test_ndarrays_load_and_linear_weights_are_transposed():
    net = nn.Sequential(nn.Linear(3, 2))
    w = np.arange(6.0).reshape(2, 3)                       # PyTorch's (out, in)
    nn.utils.load_torch_state_dict(net, {"0.weight": w, "0.bias": np.array([1.0, 2.0])})
    np.testing.assert_array_equal(net[0].weight.data, w.T)
    np.testing.assert_array_equal(nn.utils.torch_state_dict(net)["0.weight"], w)


def test_bad_state_dicts_name_the_key_and_change_nothing():
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    before = net.state_dict()
    good = nn.utils.torch_state_dict(net)
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(3, 2\) in the state dict but "
                       r"the model expects \(2, 3\)"):
        nn.utils.load_torch_state_dict(net, {**good, "0.weight": np.zeros((3, 2)),
                                             "1.weight": np.full(2, 7.0)})
    with pytest.raises(ValueError, match=r"missing keys \['1.bias'\], unexpected keys "
                       r"\['extra'\]"):
        nn.utils.load_torch_state_dict(net, {**{k: v for k, v in good.items() if k != "1.bias"},
                                             "extra": np.zeros(1)})
    with pytest.raises(ValueError, match="state_dict must be a dict"):
        nn.utils.load_torch_state_dict(net, [1, 2])
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    # torch's batch-norm counter is skipped; strict=False reports what is missing
    missing, unexpected = nn.utils.load_torch_state_dict(
        net, {"0.weight": np.ones((2, 3)), "1.num_batches_tracked": np.array(3)}, strict=False)
    assert "0.bias" in missing and unexpected == []
    np.testing.assert_array_equal(net[0].weight.data, np.ones((3, 2)))
