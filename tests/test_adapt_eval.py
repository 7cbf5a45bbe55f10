"""Adapted generators in evaluation: NADA's directional CLIP score of base against adapted pictures, checked
against a computation by hand from CLIP embeddings; StyleSpace codes carried over; ``styleclip eval --adapted``."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from styleclip.adapted import adapted_codes, check_compatible
from styleclip.adapted import draw_adapted as draw
from styleclip.cli.main import main
from styleclip.errors import UsageError
from styleclip.evaluation.adaptation import evaluate_adaptation
from styleclip.hub.generators import save_generator
from styleclip.latents import Codes

from conftest import tiny_generator, tiny_generator3, varied_generator
from hostile import refused


def make_adapted(G, scale: float = 0.3, seed: int = 5, source: str = "photo", target: str = "sketch"):
    """``G`` with perturbed synthesis weights (mapping untouched, as NADA trains) and NADA's record of the run."""
    from styleclip.stylespace import generator_fingerprint

    A = copy.deepcopy(G)
    A.meta.pop("fingerprint", None)
    gen = torch.Generator().manual_seed(seed)
    for name, p in A.synthesis.named_parameters():
        if name.endswith("weight"):
            p.data.add_(scale * p.data.std() * torch.randn(p.shape, generator=gen))
    A.meta["adapted"] = {"method": "stylegan-nada", "source": source, "target": target,
                         "base": {"fingerprint": generator_fingerprint(G), "name": None, "source": "tiny"}}  # fmt: skip
    return A


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_clip_file):
    from styleclip.guidance.clip import load_clip

    folder = tmp_path_factory.mktemp("adapt-eval")
    G = varied_generator()
    A = make_adapted(G)
    return {
        "G": G, "A": A, "guide": load_clip(str(tiny_clip_file), device="cpu"), "clip": str(tiny_clip_file),
        "base_path": save_generator(G, folder / "base.safetensors"),
        "adapted_path": save_generator(A, folder / "sketch" / "generator.safetensors"),
    }  # fmt: skip


def by_hand(guide, G, A, seeds, source, target, psi=0.7):
    """NADA's directional score computed step by step: 79 template embeddings per text, each unit; the mean of the
    per-template differences, unit; the unit image embeddings' change, unit; their cosine."""
    from styleclip.guidance.templates import templates

    with torch.no_grad():
        ws = G.mapping_forward(G.z_from_seed(list(seeds)), truncation_psi=psi)
        base, adapted = G.synthesize(ws), A.synthesize(ws)
        e_base, e_adapted = guide.encode_image(base, preprocess="clip"), guide.encode_image(adapted, preprocess="clip")
        tpl = templates("styleclip")
        assert len(tpl) == 79
        t_source = guide.encode_text([t(source) for t in tpl])
        t_target = guide.encode_text([t(target) for t in tpl])
    assert torch.allclose(t_source.norm(dim=-1), torch.ones(79), atol=1e-5)
    d = (t_target - t_source).mean(0)
    d = d / d.norm()
    change = e_adapted - e_base
    directional = (change / change.norm(dim=-1, keepdim=True)) @ d
    text = guide.encode_text(target)[0]
    return directional, e_adapted @ text, e_base @ text


def test_the_directional_score_is_nadas_computed_by_hand(world):
    G, A, guide = world["G"], world["A"], world["guide"]
    seeds = [0, 1, 2, 5]
    got = evaluate_adaptation(G, A, seeds=seeds, clip=guide, batch_size=3)  # two passes: 3 + 1
    assert (got["source"], got["target"], got["samples"]) == ("photo", "sketch", 4)  # what A records
    directional, clip_adapted, clip_base = by_hand(guide, G, A, seeds, "photo", "sketch")
    assert got["directional_mean"] == pytest.approx(float(directional.mean()), abs=1e-5)
    assert got["directional_std"] == pytest.approx(float(directional.std(unbiased=False)), abs=1e-5)
    assert got["clip_target_mean"] == pytest.approx(float(clip_adapted.mean()), abs=1e-5)
    assert got["clip_target_base_mean"] == pytest.approx(float(clip_base.mean()), abs=1e-5)
    assert [r["seed"] for r in got["per_sample"]] == seeds
    assert [r["directional"] for r in got["per_sample"]] == pytest.approx(directional.tolist(), abs=1e-5)
    assert got["identity_mean"] is None  # no identity judge given

    other = evaluate_adaptation(G, A, "a photo", "a watercolor", seeds=[0, 1], clip=guide)  # the texts given win
    expected = by_hand(guide, G, A, [0, 1], "a photo", "a watercolor")[0]
    assert other["directional_mean"] == pytest.approx(float(expected.mean()), abs=1e-5)
    assert other["directional_mean"] != pytest.approx(got["directional_mean"], abs=1e-4)

    same = evaluate_adaptation(G, G, "photo", "sketch", seeds=[0, 1], clip=guide)
    assert same["directional_mean"] == 0.0  # nothing changed: no direction, no credit


def test_an_identity_judge_compares_base_and_adapted_pictures(world):
    G, A, guide = world["G"], world["A"], world["guide"]

    class Judge:  # a stand-in ArcFace: unit embeddings of the mean colour
        def embed(self, img):
            e = img.mean(dim=(2, 3)) + 2
            return e / e.norm(dim=-1, keepdim=True)

    got = evaluate_adaptation(G, A, seeds=[3, 4], clip=guide, identity=Judge())
    with torch.no_grad():
        ws = G.mapping_forward(G.z_from_seed([3, 4]), truncation_psi=0.7)
        expected = (Judge().embed(G.synthesize(ws)) * Judge().embed(A.synthesize(ws))).sum(-1)
    assert got["identity_mean"] == pytest.approx(float(expected.mean()), abs=1e-6)


def test_codes_are_drawn_by_the_adapted_generator_with_the_base_style_change_carried_over(world):
    G, A = world["G"], world["A"]
    with torch.no_grad():
        ws = G.mapping_forward(G.z_from_seed([7, 8]), truncation_psi=0.7)
        assert torch.equal(draw(G, A, Codes(ws)), A.synthesize(ws))  # W+: the shared W space
        base = G.styles(ws)
        delta = {k: torch.randn_like(v) * 0.5 for k, v in base.items()}
        codes = Codes(ws, {k: base[k] + delta[k] for k in base})
        moved = adapted_codes(G, A, codes)
        own = A.styles(ws)
        for k in base:
            assert not torch.allclose(own[k], base[k])  # the adapted generator's own affines
            assert torch.allclose(moved.styles[k], own[k] + delta[k], atol=1e-6)
        assert torch.allclose(draw(G, A, codes), A.synthesis_from_styles(moved.styles), atol=1e-6)


def test_generators_that_cannot_share_codes_are_refused_in_one_line(world):
    G = world["G"]
    for other, why in ((tiny_generator(resolution=16), "16-px generator"),
                       (tiny_generator3(resolution=32), "StyleGAN3 generator"),
                       (tiny_generator(channel_max=16), "other style layers")):  # fmt: skip
        with pytest.raises(UsageError, match=why) as exc:
            check_compatible(other, G)
        assert "\n" not in str(exc.value) and "--generator" in str(exc.value)


def test_eval_adapted_scores_a_saved_adaptation(world, tmp_path, capsys):
    out = tmp_path / "scores"
    argv = ["eval", "--adapted", str(world["adapted_path"]), "--generator", str(world["base_path"]), "--clip",
            world["clip"], "--seeds", "0-2", "--device", "cpu", "--identity", "off", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "directional CLIP" in printed and "'photo' -> 'sketch'" in printed
    data = json.loads((out / "adaptation.json").read_text())
    directional = by_hand(world["guide"], world["G"], world["A"], [0, 1, 2], "photo", "sketch")[0]
    assert data["directional_mean"] == pytest.approx(float(directional.mean()), abs=1e-5)
    assert data["adapted"] == str(world["adapted_path"]) and data["seeds"] == [0, 1, 2]
    assert len((out / "adaptation-samples.csv").read_text().splitlines()) == 4

    # --target given: the recorded one is replaced
    assert main([*argv[:-2], "--target", "a watercolor"]) == 0
    assert "'photo' -> 'a watercolor'" in capsys.readouterr().out


def test_eval_adapted_refusals(world, tmp_path, capsys):
    small = save_generator(tiny_generator(resolution=16), tmp_path / "small.safetensors")
    common = ["--clip", world["clip"], "--device", "cpu", "--seeds", "0"]
    refused(["eval", "--adapted", str(small), "--generator", str(world["base_path"]), *common], capsys,
            match="adapted from a 16-px generator")  # fmt: skip
    refused(["eval", "--adapted", str(world["adapted_path"]), *common], capsys,
            match="records no catalogue base generator; name its base with --generator")  # fmt: skip
    refused(["eval", str(tmp_path), "--adapted", str(world["adapted_path"]), "--generator", "x"], capsys,
            match="not folders")  # fmt: skip
    refused(["eval", "--generator", str(world["base_path"])], capsys, match="go with --adapted")
    plain = make_adapted(world["G"])
    plain.meta.pop("adapted")
    unlabelled = save_generator(plain, tmp_path / "plain.safetensors")
    refused(["eval", "--adapted", str(unlabelled), "--generator", str(world["base_path"]), *common], capsys,
            match="records no target text: give --target")  # fmt: skip
