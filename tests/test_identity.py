"""Identity loss: the published IR-SE50 key layout loads; zero for the same face, positive otherwise."""

from __future__ import annotations

import pytest
import torch

from styleclip import CheckpointError
from styleclip.guidance.identity import IdentityLoss, load_identity_loss
from styleclip.nets.arcface import IRSE

# A sample of the keys in TreB1eN's model_ir_se50.pth, as e4e / ReStyle / StyleCLIP load it.
OFFICIAL_KEYS = [
    "input_layer.0.weight",
    "input_layer.1.running_var",
    "input_layer.2.weight",
    "body.3.shortcut_layer.0.weight",
    "body.3.res_layer.5.fc1.weight",
    "body.23.res_layer.5.fc2.weight",
    "output_layer.3.weight",
    "output_layer.4.running_mean",
]


def test_state_dict_uses_the_published_key_layout():
    keys = set(IRSE(50).state_dict())
    assert "body.0.shortcut_layer.0.weight" not in keys  # 64 -> 64: MaxPool2d(1, 2), as published
    assert not [key for key in OFFICIAL_KEYS if key not in keys]
    assert len([k for k in keys if k.endswith("res_layer.5.fc1.weight")]) == 24  # 3 + 4 + 14 + 3 units


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    net = IRSE(50)
    with torch.no_grad():  # non-trivial batch-norm statistics, as a trained file has
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("arcface") / "model_ir_se50.pth"
    torch.save(net.state_dict(), path)
    return path


def test_identity_loss_is_zero_for_the_same_face_and_differentiable(checkpoint):
    loss = load_identity_loss(checkpoint)
    torch.manual_seed(1)
    src = torch.rand(2, 3, 256, 256) * 2 - 1
    assert torch.allclose(loss(src, src), torch.zeros(2), atol=1e-5)
    edited = (src + 0.5 * torch.randn_like(src)).requires_grad_(True)
    value = loss(edited, src)
    assert value.shape == (2,) and (value > 0).all()
    value.sum().backward()
    assert edited.grad is not None and edited.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in loss.parameters())


@pytest.mark.parametrize("size", [64, 256, 1024])
def test_face_crop_scales_with_resolution(size):
    img = torch.zeros(1, 3, size, size)
    assert IdentityLoss.face(img).shape == (1, 3, 112, 112)


def test_wrong_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointError, match="not an IR-SE50 state dict"):
        load_identity_loss(bad)
    with pytest.raises(CheckpointError, match="no such file"):
        load_identity_loss(tmp_path / "missing.pth")
