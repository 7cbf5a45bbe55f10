"""Attribute dependency (StyleSpace's disentanglement measure) with CLIP probes or a user's classifier.

CLIP is the tiny random one of conftest and the classifiers are tiny modules scripted here: the numbers mean nothing
about faces, but every formula is checked against a hand computation and every refusal is one line.
"""

from __future__ import annotations

import json
import math
import warnings
import zipfile

import pytest
import torch

from styleclip import load_clip
from styleclip.errors import CheckpointError, UsageError
from styleclip.evaluation.disentangle import (
    CLIP_LOGIT_SCALE,
    DOMAINS,
    AttributeScorer,
    ClipProbes,
    Probe,
    TorchScriptClassifier,
    attribute_dependency,
    clip_probes,
    load_classifier,
    load_probes,
    mentioned,
    spread,
)

from hostile import refused_by

pytestmark = pytest.mark.usefixtures("one_thread")

# The names other modules (the benchmark's presets) refer to: renaming one breaks them.
SHIPPED = {
    "face": ["smile", "age", "gender", "glasses", "beard", "hair_color", "hair_length", "hairstyle", "makeup",
             "mouth_open", "eyes_open", "skin_tone", "bald", "hat", "expression"],
    "dog": ["mouth_open", "eyes_open", "fur_color", "fur_length", "ears_up", "age", "happy", "species"],
    "car": ["color", "age", "sporty", "size", "background"],
}  # fmt: skip
SHIPPED["cat"] = SHIPPED["wild"] = SHIPPED["dog"]


class MeanColour(torch.nn.Module):
    """Three 'attributes': the mean of each colour channel, as logits (of a [0, 1] input at 16 px)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != 16:
            raise ValueError("expects 16 px")
        return x.mean(dim=(2, 3)) * 4 - 2


class ChannelMeans(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class FourOutputs(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)).repeat(1, 2)[:, :4]


class NanOutputs(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) * float("nan")


class Flat(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3))


def save_classifier(module: torch.nn.Module, path, attributes) -> str:
    """``module`` scripted and saved the way the docs tell a user to, ``attributes`` as its attributes.json."""
    extra = {} if attributes is None else {"attributes.json": json.dumps(attributes)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch >= 2.9 deprecates TorchScript; users still have it
        torch.jit.save(torch.jit.script(module), str(path), _extra_files=extra)
    return str(path)


def pictures(n: int, seed: int = 0, side: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def guide(tiny_clip_file):
    return load_clip(tiny_clip_file, device="cpu", precision="fp32")


# ---------------------------------------------------------------------------------------------------- probe lists


@pytest.mark.parametrize("domain", DOMAINS)
def test_shipped_probe_lists_load_with_the_names_presets_use(domain):
    probes = load_probes(domain)
    assert [p.name for p in probes] == SHIPPED[domain]
    for p in probes:
        assert p.negative != p.positive and p.words, p
    # each probe's own words mention it
    for p in probes:
        assert p.name in mentioned(probes, f"a photo with {p.words[0]} in it")


def test_mentioned_finds_whole_words_only():
    face = load_probes("face")
    assert mentioned(face, "a smiling face") == {"smile"}
    assert mentioned(face, "A photo of a GRINNING face") == {"smile"}
    assert mentioned(face, "a face with purple hair") == {"hair_color"}
    assert mentioned(face, "a face with a mohawk hairstyle") == {"hairstyle"}
    assert mentioned(face, "a clean shaven face") == {"beard"}  # a space matches the word's hyphen
    # substrings of other words are not words: "old" in "bold", "hat" in "that"/"hatter", "tan" in "distant"
    assert mentioned(face, "a face with bold eyebrows that look distant") == set()
    assert mentioned(face, "a photo of a hatter") == set()
    assert mentioned(face, "a face", explicit=("age",)) == {"age"}
    assert mentioned(load_probes("car"), "a car from the 1950s") == {"age"}
    # a probe's name is one of its words, "_" read as a space
    assert mentioned([Probe("beak_open", "a closed beak", "an open beak")], "a bird, Beak open") == {"beak_open"}


def test_a_user_probe_list_loads(tmp_path):
    path = tmp_path / "probes.yaml"
    path.write_text("probes:\n  - {name: tail, negative: a short tail, positive: a long tail, words: [Tail]}\n"
                    "  - name: fins\n    negative: no fins\n    positive: big fins\n")  # fmt: skip
    probes = load_probes(path)
    assert probes == [Probe("tail", "a short tail", "a long tail", ("tail",)), Probe("fins", "no fins", "big fins")]
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps([{"name": "tail", "negative": "a short tail", "positive": "a long tail"}]))
    assert load_probes(plain)[0].name == "tail"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("probes:\n  - {name: a, negative: x, positive: y, colour: red}\n", "unknown key 'colour'"),
        ("probs: []\n", "unknown key 'probs'"),
        ("probes:\n  - {name: a, positive: y}\n", "missing 'negative'"),
        ("probes:\n  - {name: Bad Name, negative: x, positive: y}\n", "name must be"),
        ("probes:\n  - {name: a, negative: x, positive: y}\n  - {name: a, negative: u, positive: v}\n", "twice"),
        ("probes:\n  - {name: a, negative: [x], positive: y}\n", "negative: must be a non-empty text"),
        ("probes:\n  - {name: a, negative: same, positive: Same}\n", "the same text"),
        ("probes:\n  - {name: a, negative: x, positive: " + "y" * 400 + "}\n", "400 characters"),
        ("probes: [\n", "not valid YAML"),
        ("probes: []\n", "non-empty list"),
        ("probes:\n  - {name: a, negative: x, positive: y, words: smile}\n", "words: must be a list"),
        # an alias bomb: nine levels of ten aliases each expand to 10^9 nodes
        ("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)) + "probes: *i\n", "YAML nodes"),
    ],
)  # fmt: skip
def test_bad_probe_lists_are_refused_in_one_line(tmp_path, text, match):
    path = tmp_path / "probes.yaml"
    path.write_text(text)
    refused_by(lambda: load_probes(path), match=match, error=UsageError)


def test_probe_list_hostile_files(tmp_path):
    refused_by(lambda: load_probes("fish"), match="face, dog, cat, wild, car", error=UsageError)
    refused_by(lambda: load_probes("https://example.com/p.yaml"), match="not a URL", error=UsageError)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (300 << 10))
    refused_by(lambda: load_probes(big), match="far more than a probe list", error=UsageError)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00probes")
    refused_by(lambda: load_probes(binary), match="not a text file", error=UsageError)
    refused_by(lambda: load_probes(tmp_path), match="directory", error=UsageError)


# ---------------------------------------------------------------------------------------------------- CLIP probes


def test_clip_probe_logits_are_the_two_way_log_odds(guide):
    probes = load_probes("face")[:4]
    scorer = clip_probes(guide, probes)
    assert isinstance(scorer, AttributeScorer) and scorer.names == [p.name for p in probes]
    images = pictures(5)
    logits = scorer.logits(images)
    assert logits.shape == (5, 4) and logits.dtype == torch.float32 and torch.isfinite(logits).all()
    e = guide.encode_image(images)
    pos = guide.encode_text([p.positive for p in probes])
    neg = guide.encode_text([p.negative for p in probes])
    expected = CLIP_LOGIT_SCALE * (e @ pos.T - e @ neg.T)
    torch.testing.assert_close(logits, expected, atol=1e-3, rtol=1e-4)
    # log-odds: the two-way softmax's probability of the positive prompt
    p_pos = torch.softmax(CLIP_LOGIT_SCALE * torch.stack([e @ neg.T, e @ pos.T], dim=-1), dim=-1)[..., 1]
    torch.testing.assert_close(torch.sigmoid(logits), p_pos, atol=1e-4, rtol=1e-4)
    # batches of any size give the same logits
    assert scorer.logits(images[:0]).shape == (0, 4)
    torch.testing.assert_close(torch.cat([scorer(images[:2]), scorer(images[2:])]), logits, atol=1e-4, rtol=1e-4)


def test_probes_score_the_same_pictures_the_same_and_others_otherwise(guide):
    scorer = clip_probes(guide, load_probes("dog"))
    images = pictures(6)
    torch.testing.assert_close(scorer.logits(images), scorer.logits(images.clone()))
    assert not torch.allclose(scorer.logits(images), scorer.logits(pictures(6, seed=1)))
    refused_by(lambda: scorer.logits(images[0]), match=r"\[N, 3, H, W\]", error=UsageError)


# ------------------------------------------------------------------------------------------- attribute dependency


def test_attribute_dependency_by_hand():
    names = ["a", "b", "c"]
    before = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    after = torch.tensor([[4.0, 1.0, -2.0], [1.0, 0.0, 3.5]])
    sigma = torch.tensor([2.0, 1.0, 0.5])
    ad = attribute_dependency(before, after, sigma, names, exclude={"a"})
    # |Δ|/σ of b, c: source 0: 1, 4; source 1: 2, 1
    assert ad["mean_ad"] == pytest.approx(((1 + 4) / 2 + (2 + 1) / 2) / 2)
    assert ad["max_ad"] == pytest.approx((4 + 2) / 2)
    assert ad["per_attribute"] == pytest.approx({"b": 1.5, "c": 2.5})
    assert ad["target_change"] == pytest.approx({"a": (4 / 2 + 0) / 2})
    assert ad["excluded"] == ["a"] and ad["unscaled"] == [] and ad["n"] == 2
    # twice the spread, half the dependency
    wide = attribute_dependency(before, after, sigma * 2, names, exclude={"a"})
    assert wide["mean_ad"] == pytest.approx(ad["mean_ad"] / 2) and wide["max_ad"] == pytest.approx(ad["max_ad"] / 2)
    # nothing excluded: a counts too
    full = attribute_dependency(before, after, sigma, names)
    assert full["mean_ad"] == pytest.approx(((2 + 1 + 4) / 3 + (0 + 2 + 1) / 3) / 2)


def test_only_the_mentioned_attribute_changing_is_no_dependency():
    before = torch.randn(4, 3)
    after = before.clone()
    after[:, 1] += torch.tensor([1.0, -2.0, 3.0, 0.5])
    ad = attribute_dependency(before, after, torch.ones(3), ["x", "y", "z"], exclude={"y", "not-a-name"})
    assert ad["mean_ad"] == 0 and ad["max_ad"] == 0 and set(ad["per_attribute"]) == {"x", "z"}
    assert ad["target_change"] == pytest.approx({"y": 2.5 / 4}) and ad["excluded"] == ["y"]
    everything = attribute_dependency(before, after, torch.ones(3), ["x", "y", "z"], exclude={"x", "y", "z"})
    assert math.isnan(everything["mean_ad"]) and everything["per_attribute"] == {}


def test_spread_is_the_std_over_images_in_batches_and_guards_constant_logits():
    class Fixed(AttributeScorer):
        def __init__(self):
            self.names = ["moves", "still"]

        def logits(self, images):
            return torch.stack([images.mean(dim=(1, 2, 3)), torch.full((images.shape[0],), 3.0)], dim=1)

    images = pictures(8)
    sigma = spread(Fixed(), images)
    expected = images.mean(dim=(1, 2, 3)).double().numpy().std()  # NumPy's std: over N, not N - 1
    assert sigma[0].item() == pytest.approx(expected, rel=1e-4) and math.isnan(sigma[1].item())
    torch.testing.assert_close(spread(Fixed(), iter([images[:3], images[3:]])), sigma, equal_nan=True)
    before, after = Fixed().logits(images), Fixed().logits(images) + 1
    ad = attribute_dependency(before, after, sigma, Fixed().names)
    assert ad["unscaled"] == ["still"] and set(ad["per_attribute"]) == {"moves"}
    assert ad["mean_ad"] == pytest.approx(1 / expected, rel=1e-4)
    refused_by(lambda: spread(Fixed(), images[:1]), match="at least 2 images", error=UsageError)


def test_attribute_dependency_refuses_mismatched_inputs():
    z = torch.zeros(2, 3)
    refused_by(lambda: attribute_dependency(z, torch.zeros(2, 4), torch.ones(3), "abc"), match=r"\[N, 3\]",
               error=UsageError)  # fmt: skip
    refused_by(lambda: attribute_dependency(z, torch.zeros(3, 3), torch.ones(3), "abc"), match="same sources",
               error=UsageError)  # fmt: skip
    refused_by(lambda: attribute_dependency(z, z, torch.ones(2), "abc"), match="sigma has 2", error=UsageError)
    refused_by(lambda: attribute_dependency(z, z * math.nan, torch.ones(3), "abc"), match="NaN", error=UsageError)


def test_an_edit_scored_end_to_end_with_clip_probes(guide):
    """Sources, their edits (a brightened copy), σ over the sources: the AD of a real run through the API."""
    probes = load_probes("face")
    scorer = clip_probes(guide, probes)
    sources = pictures(6)
    edited = (sources + 0.5).clamp(-1, 1)
    sigma = spread(scorer, sources.split(4))
    ad = attribute_dependency(scorer.logits(sources), scorer.logits(edited), sigma, scorer.names,
                              mentioned(probes, "a smiling face"))  # fmt: skip
    assert set(ad["per_attribute"]) == set(scorer.names) - {"smile"} and set(ad["target_change"]) == {"smile"}
    assert 0 < ad["mean_ad"] <= ad["max_ad"] and math.isfinite(ad["max_ad"])
    same = attribute_dependency(scorer.logits(sources), scorer.logits(sources), sigma, scorer.names, {"smile"})
    assert same["mean_ad"] == pytest.approx(0, abs=1e-5)


# ------------------------------------------------------------------------------------------- a user's classifier


def test_a_torchscript_classifier_loads_and_scores(tmp_path):
    path = save_classifier(MeanColour(), tmp_path / "colour.pt", {"names": ["red", "green", "blue"], "size": 16})
    scorer = load_classifier(path, "cpu")
    assert isinstance(scorer, TorchScriptClassifier) and scorer.names == ["red", "green", "blue"]
    images = pictures(3, side=32)
    logits = scorer.logits(images)
    assert logits.shape == (3, 3) and logits.dtype == torch.float32
    # the contract: [0, 1] at its own size
    small = torch.nn.functional.interpolate((images + 1) / 2, size=(16, 16), mode="bilinear", antialias=True)
    torch.testing.assert_close(logits, small.mean(dim=(2, 3)) * 4 - 2)
    red = images.clone()
    red[:, 0] = 1
    ad = attribute_dependency(scorer(images), scorer(red), spread(scorer, images), scorer.names, {"red"})
    assert ad["mean_ad"] == pytest.approx(0, abs=1e-5) and ad["target_change"]["red"] > 0
    # names as a bare list, no size: images go in at their own size
    bare = load_classifier(save_classifier(ChannelMeans(), tmp_path / "bare.pt", ["r", "g", "b"]), "cpu")
    assert bare.size is None
    # a classifier's own names are the words that mention its attributes
    named = load_classifier(save_classifier(ChannelMeans(), tmp_path / "named.pt", ["Smiling", "Eyeglasses",
                                                                                  "Heavy_Makeup"]), "cpu")  # fmt: skip
    assert named.mentioned("a smiling face with heavy makeup") == {"Smiling", "Heavy_Makeup"}
    assert named.mentioned("a face", explicit=("Eyeglasses",)) == {"Eyeglasses"}
    torch.testing.assert_close(bare.logits(images), ((images + 1) / 2).mean(dim=(2, 3)))


def test_a_user_clip_checkpoint_scores_the_probes(tiny_clip_file, guide):
    probes = load_probes("cat")
    scorer = load_classifier(tiny_clip_file, "cpu", probes_for_clip=probes)
    assert isinstance(scorer, ClipProbes) and scorer.names == [p.name for p in probes]
    assert scorer.mentioned("a kitten with fluffy fur that looks like a lion") == {"age", "fur_length", "species"}
    images = pictures(3)
    torch.testing.assert_close(scorer.logits(images), clip_probes(guide, probes).logits(images), atol=1e-3,
                               rtol=1e-4)  # fmt: skip
    refused_by(lambda: load_classifier(tiny_clip_file, "cpu"), match="through probes", error=UsageError)


def test_hostile_classifiers_are_refused_in_one_line(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("not a model")
    refused_by(lambda: load_classifier(text, "cpu", load_probes("face")), match="neither a TorchScript classifier",
               error=CheckpointError)  # fmt: skip
    unnamed = save_classifier(MeanColour(), tmp_path / "unnamed.pt", None)  # TorchScript without attributes.json
    refused_by(lambda: load_classifier(unnamed, "cpu", load_probes("face")), match="attributes.json",
               error=CheckpointError)  # fmt: skip
    wide = save_classifier(FourOutputs(), tmp_path / "wide.pt", ["a", "b", "c"])
    refused_by(lambda: load_classifier(wide, "cpu"), match="gives 4 logits per image but its attributes.json names 3",
               error=CheckpointError)  # fmt: skip
    flat = save_classifier(Flat(), tmp_path / "flat.pt", ["a"])
    refused_by(lambda: load_classifier(flat, "cpu"), match=r"returns \[2\] for 2 images", error=CheckpointError)
    nan = save_classifier(NanOutputs(), tmp_path / "nan.pt", ["a", "b", "c"])
    refused_by(lambda: load_classifier(nan, "cpu"), match="NaN", error=CheckpointError)
    sized = save_classifier(MeanColour(), tmp_path / "sized.pt", {"names": ["a", "b", "c"], "size": 24})
    refused_by(
        lambda: load_classifier(sized, "cpu"), match="failed on a .* batch.*expects 16 px", error=CheckpointError
    )
    for bad, match in [({"names": []}, "names no attributes"), ({"names": ["a"], "mean": 1}, "unknown key 'mean'"),
                       ({"names": ["a", "a"]}, "twice"), ({"names": ["a"], "size": 5}, "size must be"),
                       (["a b"], "not an attribute name")]:  # fmt: skip
        path = save_classifier(MeanColour(), tmp_path / "bad.pt", bad)
        refused_by(lambda path=path: load_classifier(path, "cpu"), match=match, error=CheckpointError)
    refused_by(lambda: load_classifier("https://example.com/classifier.pt", "cpu"), match="local file",
               error=UsageError)  # fmt: skip
    refused_by(lambda: load_classifier(tmp_path / "missing.pt", "cpu"), match="no such file", error=CheckpointError)
    refused_by(lambda: load_classifier(tmp_path, "cpu"), match="directory", error=CheckpointError)


def test_a_damaged_attributes_archive_is_refused(tmp_path):
    path = save_classifier(MeanColour(), tmp_path / "colour.pt", ["r", "g", "b"])
    damaged = tmp_path / "damaged.pt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(damaged, "w") as dst:
        for info in src.infolist():
            if not info.filename.endswith("data.pkl"):
                dst.writestr(info, src.read(info))
    refused_by(lambda: load_classifier(damaged, "cpu"), match="not a TorchScript archive torch can load",
               error=CheckpointError)  # fmt: skip
