"""LPIPS: the published weight layouts load, the distance behaves, and it matches the reference package."""

from __future__ import annotations

import pytest
import torch

from styleclip.errors import CheckpointError, UsageError
from styleclip.guidance.perceptual import LPIPS, load_lpips


def _write_official(tmp_path, net: str, seed: int = 0):
    """Random weights in the two official files: torchvision's state dict (feature layers only - the real
    file's classifier is ignored and would cost 500 MB here) and LPIPS's legacy-format linear layers."""
    torch.manual_seed(seed)
    import torchvision

    model = torchvision.models.vgg16() if net == "vgg" else torchvision.models.alexnet()
    backbone = tmp_path / f"{net}-backbone.pth"
    torch.save({k: v for k, v in model.state_dict().items() if k.startswith("features.")}, backbone)
    chans = (64, 128, 256, 512, 512) if net == "vgg" else (64, 192, 384, 256, 256)
    lin = tmp_path / f"{net}.pth"
    torch.save(
        {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(chans)},
        lin,
        _use_new_zipfile_serialization=False,  # the published files predate torch's zip format
    )
    return lin, backbone


@pytest.fixture(scope="module")
def alex(tmp_path_factory):
    lin, backbone = _write_official(tmp_path_factory.mktemp("lpips"), "alex")
    return load_lpips("alex", lin=lin, backbone=backbone), lin, backbone


def test_zero_for_identical_positive_otherwise_and_differentiable(alex):
    model = alex[0]
    a = torch.rand(2, 3, 64, 64) * 2 - 1
    b = (a + 0.3 * torch.randn_like(a)).clamp(-1, 1)
    assert torch.allclose(model(a, a), torch.zeros(2), atol=1e-6)
    d = model(a.requires_grad_(), b)
    assert d.shape == (2,) and (d > 0).all()
    d.sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in model.parameters())


def test_large_images_are_compared_at_max_size(alex):
    model = alex[0]
    a, b = torch.rand(2, 1, 3, 128, 128) * 2 - 1
    pooled = [torch.nn.functional.avg_pool2d(x, 2) for x in (a, b)]
    small = LPIPS("alex", max_size=64)
    small.load_state_dict(model.state_dict())
    assert torch.allclose(small(a, b), model(*pooled), atol=1e-6)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_the_lpips_package(tmp_path, net):
    lpips = pytest.importorskip("lpips")
    lin, backbone = _write_official(tmp_path, net, seed=1)
    ours = load_lpips(net, lin=lin, backbone=backbone, max_size=None)
    with pytest.warns(UserWarning):  # the package still calls torchvision's deprecated `pretrained=`
        ref = lpips.LPIPS(net=net, pnet_rand=True, model_path=str(lin), verbose=False)
    feats = torch.load(backbone, weights_only=True)
    for name, p in ref.net.named_parameters():  # the package names them slice<k>.<index in features>
        p.data.copy_(feats["features." + name.split(".", 1)[1]])
    a, b = torch.rand(2, 2, 3, 48, 48) * 2 - 1
    torch.testing.assert_close(ours(a, b), ref(a, b).flatten(), atol=1e-6, rtol=1e-5)


def test_bad_files_give_one_line_errors(tmp_path, alex):
    _, lin, backbone = alex
    with pytest.raises(CheckpointError, match="no such file"):
        load_lpips("alex", lin=tmp_path / "missing.pth", backbone=backbone)
    with pytest.raises(CheckpointError, match=r"not an LPIPS v0\.1 weight file"):
        load_lpips("alex", lin=backbone, backbone=backbone)
    with pytest.raises(CheckpointError, match=r"lin1 has shape"):
        load_lpips("vgg", lin=lin, backbone=backbone)  # AlexNet's calibration for a VGG
    with pytest.raises(CheckpointError, match="not torchvision's alex weights"):
        load_lpips("alex", lin=lin, backbone=lin)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_lpips("alex", lin=text, backbone=backbone)
    with pytest.raises(UsageError, match="unknown LPIPS network"):
        LPIPS("squeeze")


def test_default_linear_layers_come_from_the_installed_package(tmp_path, monkeypatch, alex):
    pytest.importorskip("lpips")
    from styleclip.guidance import perceptual

    path = perceptual._bundled_lin("vgg")
    assert path is not None and path.name == "vgg.pth"
    # The registry's git blob id is that of the package's file: both are the repository's file.
    from styleclip.hub.download import git_blob_id
    from styleclip.hub.registry import get_asset

    assert git_blob_id(path) == get_asset("lpips:vgg").git_blob
    model = load_lpips("alex", backbone=alex[2], offline=True, cache=tmp_path)
    assert model.lins[0].weight.abs().sum() > 0
