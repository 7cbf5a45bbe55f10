"""CLIP guidance with a tiny random CLIP saved in OpenAI's layouts (state dict and TorchScript)."""

from __future__ import annotations

import pytest
import torch

from styleclip import StyleclipError, UsageError
from styleclip.guidance.clip import load_clip

from conftest import save_torchscript_clip, tiny_clip

open_clip = pytest.importorskip("open_clip")


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    model = tiny_clip()
    state = folder / "tiny-openai-state.pt"
    torch.save(model.state_dict(), state)
    script = save_torchscript_clip(model, folder / "tiny-openai-jit.pt")
    return model, state, script


def test_both_openai_layouts_load_to_the_same_model(clip_files):
    model, state, script = clip_files
    a, b = load_clip(state, device="cpu"), load_clip(script, device="cpu")
    assert a.resolution == 32 and a.embed_dim == 32 and a.context_length == 77
    img = torch.rand(2, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(a.encode_image(img), b.encode_image(img))
    x = (torch.nn.functional.interpolate(img, size=32, mode="bicubic", antialias=True) + 1) / 2
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).reshape(1, 3, 1, 1)
    ref = model.encode_image((x - mean) / std)
    # the rebuilt model may take another attention kernel than the original: rounding only
    torch.testing.assert_close(a.encode_image(img), ref / ref.norm(dim=-1, keepdim=True), rtol=0, atol=1e-3)


def test_frozen_and_gradients_reach_the_image_only(clip_files):
    guide = load_clip(clip_files[1], device="cpu")
    img = torch.zeros(1, 3, 64, 64, requires_grad=True)
    guide.encode_image(img).sum().backward()
    assert img.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in guide.parameters())


def test_template_average_is_a_unit_vector_and_directions_are_antisymmetric(clip_files):
    guide = load_clip(clip_files[1], device="cpu")
    t = guide.encode_text(["a dog"], templates=True)
    torch.testing.assert_close(t.norm(dim=-1), torch.ones(1))
    d1, d2 = guide.direction("a happy dog", "a dog"), guide.direction("a dog", "a happy dog")
    torch.testing.assert_close(d1, -d2)
    torch.testing.assert_close(d1.norm(), torch.tensor(1.0))


def test_text_cache_encodes_each_prompt_once(clip_files, monkeypatch):
    guide = load_clip(clip_files[1], device="cpu")
    calls = []
    original = guide.model.encode_text
    monkeypatch.setattr(guide.model, "encode_text", lambda tokens, **kw: calls.append(len(tokens)) or original(tokens))
    first = guide.encode_text(["a tiger"], templates=True)
    again = guide.encode_text(["a tiger"], templates=True)
    assert calls == [80] and torch.equal(first, again)  # one batch of the 80 templates, then the cache


def test_long_prompt_warns_and_empty_prompt_is_an_error(clip_files):
    guide = load_clip(clip_files[1], device="cpu")
    with pytest.warns(UserWarning, match="CLIP reads the first 77"):
        guide.encode_text(" ".join(["very"] * 100) + " happy dog")
    with pytest.raises(UsageError, match="empty prompt"):
        guide.encode_text("   ")


def test_bad_names_and_files(tmp_path):
    with pytest.raises(UsageError, match="unknown CLIP model"):
        load_clip("ViT-Q-99:nothing", device="cpu")
    bad = tmp_path / "x.pt"
    torch.save({"weight": torch.zeros(2)}, bad)
    with pytest.raises(StyleclipError, match="not an OpenAI-layout CLIP checkpoint"):
        load_clip(bad, device="cpu")


def test_augmented_image_embedding_is_a_unit_vector_with_gradients(clip_files):
    guide = load_clip(clip_files[1], device="cpu")
    img = torch.zeros(2, 3, 64, 64, requires_grad=True)
    emb = guide.encode_image_views(img, n=3, seed=1)
    assert emb.shape == (2, 32)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2))
    emb.sum().backward()
    assert img.grad is not None


def test_reduced_precision_autocast_keeps_fp32_weights_and_outputs(clip_files):
    full = load_clip(clip_files[1], device="cpu")
    half = load_clip(clip_files[1], device="cpu", precision="bf16")  # CPU autocast supports bfloat16
    img = torch.rand(2, 3, 64, 64, requires_grad=True) * 2 - 1
    a, b = full.encode_image(img), half.encode_image(img)
    assert b.dtype == torch.float32 and all(p.dtype == torch.float32 for p in half.parameters())
    assert (a - b).abs().max() < 0.05 and not torch.equal(a, b)
    with pytest.raises(UsageError, match="precision"):
        load_clip(clip_files[1], device="cpu", precision="fp8")


def test_styleclip_templates_are_its_79_in_its_order():
    """StyleCLIP's GetDt list is OpenAI's 80 with 'a photo of many {}.' commented out, in the same order."""
    from styleclip.guidance.templates import templates

    ours = [t("{}") for t in templates("styleclip")]
    openai = [t("{}") for t in templates("imagenet")]
    assert len(ours) == 79 and len(openai) == 80
    assert ours == [t for t in openai if t != "a photo of many {}."]
    # StyleCLIP's list as its file has it: first, the two around the left-out line, and last
    assert ours[:3] == ["a bad photo of a {}.", "a sculpture of a {}.", "a photo of the hard to see {}."]
    assert ours[-3:] == ["a photo of a cool {}.", "a photo of a small {}.", "a tattoo of the {}."]
    with pytest.raises(UsageError, match="template set"):
        templates("openai-81")


def test_global_directions_use_getdt_with_styleclip_templates(tiny_clip_file):
    """Δt as StyleCLIP's GetDt computes it: per class, each template embedding normalised, averaged, normalised;
    the difference normalised."""
    from styleclip.guidance.templates import templates

    guide = load_clip(tiny_clip_file, device="cpu", precision="fp32")

    def zeroshot(text):
        tokens = guide.tokenizer([t(text) for t in templates("styleclip")], context_length=guide.context_length)
        with torch.no_grad():
            emb = guide.model.encode_text(tokens).float()
        emb = emb / emb.norm(dim=-1, keepdim=True)
        emb = emb.mean(dim=0)
        return emb / emb.norm()

    dt = zeroshot("a happy dog") - zeroshot("a dog")
    dt = dt / dt.norm()
    torch.testing.assert_close(guide.direction("a happy dog", "a dog", templates="styleclip"), dt, rtol=1e-5, atol=1e-6)
    eighty = guide.direction("a happy dog", "a dog", templates=True)
    assert (eighty - dt).abs().max() > 1e-4  # the left-out template matters
