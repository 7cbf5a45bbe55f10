"""The benchmark's prompt sets: every shipped preset loads with the counts its source gives, names only catalogue
models and known probe attributes, and a user's preset file is checked as the untrusted data it is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from styleclip.errors import UsageError
from styleclip.evaluation import presets as presets_module
from styleclip.evaluation.presets import PRESETS, Preset, PresetPrompt, describe_presets, load_preset
from styleclip.hub.catalog import _MAPPERS
from styleclip.hub.registry import find_asset
from styleclip.sample import parse_seeds

from hostile import refused_by

pytestmark = pytest.mark.usefixtures("one_thread")

PRESET_DIR = Path(presets_module.__file__).with_name("presets")
PROBE_DIR = Path(presets_module.__file__).with_name("probes")
# The attribute names the disentanglement probes agree on (issue 28's shared vocabulary), used until the probe lists
# ship; once they do, the shipped lists are the reference.
PROBE_NAMES = {
    "face": {"smile", "age", "gender", "glasses", "beard", "hair_color", "hair_length", "hairstyle", "makeup",
             "mouth_open", "eyes_open", "skin_tone", "bald", "hat", "expression"},
    "dog": {"mouth_open", "eyes_open", "fur_color", "fur_length", "ears_up", "age", "happy", "species"},
    "car": {"color", "age", "sporty", "size", "background"},
}  # fmt: skip
PROBE_NAMES["cat"] = PROBE_NAMES["wild"] = PROBE_NAMES["dog"]


def probe_names(domain: str) -> set[str]:
    if (PROBE_DIR / f"{domain}.yaml").is_file():
        from styleclip.evaluation.disentangle import load_probes

        return {p.name for p in load_probes(domain)}
    return PROBE_NAMES[domain]


def region_names() -> set[str]:
    try:
        from styleclip.evaluation.masked import REGIONS
    except ImportError:
        return {"hair", "mouth", "eyes", "face", "glasses", "cloth"}  # the ones the shipped presets use
    return set(REGIONS)


def hairclip_repository_counts() -> tuple[int, int]:
    """HairCLIP's mapper/hairstyle_list.txt has 44 lines; its README's --color_description lists 12 colours."""
    return 44, 12


# -- the shipped presets -----------------------------------------------------------------------------------------


def test_every_shipped_file_is_listed_and_loads():
    assert sorted(PRESETS) == sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
    for name in PRESETS:
        preset = load_preset(name)
        assert isinstance(preset, Preset) and preset.name == name
        assert preset.prompts and all(isinstance(p, PresetPrompt) for p in preset.prompts)
        assert preset.title and preset.source and parse_seeds(preset.seeds)
        assert all(p.neutral for p in preset.prompts), f"{name}: every prompt needs a neutral text for directions"
        targets = [p.target.lower() for p in preset.prompts]
        assert len(set(targets)) == len(targets), name


def test_generators_are_catalogue_generators_of_the_domain():
    for name in PRESETS:
        preset = load_preset(name)
        asset = find_asset(preset.generator)
        assert asset is not None and asset.kind == "generator", preset.generator
        assert asset.domain == preset.domain, f"{name}: {preset.generator} draws {asset.domain}, not {preset.domain}"


def test_styleclip_faces_has_the_fourteen_published_mappers():
    preset = load_preset("styleclip-faces")
    mapped = [p for p in preset.prompts if p.mapper]
    assert len(mapped) == 14
    assert {p.mapper for p in mapped} == {f"styleclip-mapper:{key}" for key in _MAPPERS}
    for p in mapped:
        asset = find_asset(p.mapper)
        assert asset is not None and asset.kind == "mapper"
        # the generator the catalogue pairs the mappers with is the preset's
        assert asset.defaults["generator"] == preset.generator
    assert next(p for p in mapped if p.mapper == "styleclip-mapper:mohawk").target == "mohawk hairstyle"
    pairs = {(p.neutral, p.target) for p in preset.prompts if p.group == "global"}
    assert ("face", "smiling face") in pairs and ("female face", "male face") in pairs
    assert ("face with hair", "face with Hi-top fade hair") in pairs and len(pairs) == 6


def test_hairclip_counts_follow_its_repository():
    styles, colours = hairclip_repository_counts()
    preset = load_preset("hairclip")
    by_group = {g: [p for p in preset.prompts if p.group == g] for g in ("hairstyle", "colour")}
    assert len(by_group["hairstyle"]) == styles and len(by_group["colour"]) == colours
    assert len(preset.prompts) == styles + colours
    assert all(p.target.endswith(" hairstyle") and "hairstyle" in p.attributes for p in by_group["hairstyle"])
    assert all(p.target.endswith(" hair") and p.attributes == ("hair_color",) for p in by_group["colour"])
    assert all(p.region == "hair" and p.mapper is None for p in preset.prompts)
    assert "hi-top fade hairstyle" in {p.target for p in preset.prompts}


def test_deltaedit_has_its_sixteen_targets():
    preset = load_preset("deltaedit")
    assert len(preset.prompts) == 16
    assert {p.neutral for p in preset.prompts} == {"face"}
    assert preset.prompts[0].target == "chubby face" and preset.prompts[-1].target == "face with bowlcut hairstyle"
    assert "could not" in preset.notes  # the set is labelled for what it is


@pytest.mark.parametrize("name", ["afhq-dog", "afhq-cat", "afhq-wild", "cars"])
def test_non_face_sets_are_styleclips_own(name):
    preset = load_preset(name)
    assert 8 <= len(preset.prompts) <= 12
    assert "styleclip's own choice" in preset.source
    assert all(p.region is None and p.mapper is None for p in preset.prompts)


def test_attributes_and_regions_are_known_names():
    regions = region_names()
    for name in PRESETS:
        preset = load_preset(name)
        known = probe_names(preset.domain)
        for p in preset.prompts:
            assert set(p.attributes) <= known, f"{name}: {p.target}: {set(p.attributes) - known}"
            assert p.region is None or set(p.region.split("+")) <= regions, f"{name}: {p.target}: region {p.region}"
        if preset.domain != "face":
            assert all(p.attributes for p in preset.prompts), name


def test_describe_presets_gives_one_line_each():
    lines = describe_presets()
    assert len(lines) == len(PRESETS)
    for name, line in zip(PRESETS, lines, strict=True):
        assert line.startswith(name) and "\n" not in line
        assert re.search(rf"\b{len(load_preset(name).prompts)} prompts\b", line)


def test_unknown_name_lists_the_known_ones():
    line = refused_by(lambda: load_preset("styleclip-face"), match="unknown preset", error=UsageError)
    assert all(name in line for name in PRESETS)
    refused_by(lambda: load_preset("missing/preset.yaml"), match="does not exist", error=UsageError)
    refused_by(lambda: load_preset("https://example.com/p.yaml"), match="URL", error=UsageError)


# -- a user's preset ---------------------------------------------------------------------------------------------


USER_PRESET = """\
name: my-dogs
title: My dogs
domain: dog
generator: afhqdog
seeds: 3-5
defaults: {neutral: dog, group: mood}
prompts:
  - happy dog
  - {target: sleepy dog, attributes: [eyes_open], group: eyes}
  - {target: dog with a red collar, neutral: a dog}
"""


def test_a_users_preset_loads(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(USER_PRESET)
    for given in (path, str(path)):
        preset = load_preset(given)
        assert preset.name == "my-dogs" and preset.generator == "afhqdog" and preset.seeds == "3-5"
        assert preset.source  # a user's file need not cite anything
        assert preset.prompts == (
            PresetPrompt("happy dog", neutral="dog", group="mood"),
            PresetPrompt("sleepy dog", neutral="dog", attributes=("eyes_open",), group="eyes"),
            PresetPrompt("dog with a red collar", neutral="a dog", group="mood"),
        )


def test_a_users_face_preset_may_name_a_mapper(tmp_path):
    path = tmp_path / "faces.yml"
    path.write_text(
        "name: few\ndomain: face\ngenerator: rosinality:ffhq\nprompts:\n"
        "  - {target: purple hair, neutral: hair, mapper: 'styleclip-mapper:purple_hair', region: hair,"
        " attributes: hair_color}\n"
    )
    (prompt,) = load_preset(path).prompts
    assert prompt.mapper == "styleclip-mapper:purple_hair" and prompt.attributes == ("hair_color",)


HOSTILE = {
    "unknown key": ("name: x\ndomain: dog\ngenerator: afhqdog\nprompts: [a]\nscript: rm -rf\n", "unknown key 'script'"),
    "unknown prompt key": ("name: x\ndomain: dog\ngenerator: afhqdog\nprompts: [{target: a, path: /etc}]\n",
                           "unknown key 'path'"),
    "alias bomb": ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                   "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
                   "YAML nodes"),
    "path as mapper": ("name: x\ndomain: face\ngenerator: rosinality:ffhq\n"
                       "prompts: [{target: a, mapper: ../../mappers/evil.pt}]\n", "not files"),
    "url as mapper": ("name: x\ndomain: face\ngenerator: rosinality:ffhq\n"
                      "prompts: [{target: a, mapper: 'https://example.com/m.pt'}]\n", "not files"),
    "bare mapper key": ("name: x\ndomain: face\ngenerator: rosinality:ffhq\nprompts: [{target: a, mapper: mohawk}]\n",
                        "styleclip-mapper:mohawk"),
    "generator as mapper": ("name: x\ndomain: face\ngenerator: rosinality:ffhq\n"
                            "prompts: [{target: a, mapper: 'rosinality:ffhq'}]\n", "no mapper in the catalogue"),
    "path as generator": ("name: x\ndomain: face\ngenerator: /tmp/g.pkl\nprompts: [a]\n", "not files"),
    "non-string target": ("name: x\ndomain: dog\ngenerator: afhqdog\nprompts: [{target: [1, 2]}]\n", "target must be"),
    "number as prompt": ("name: x\ndomain: dog\ngenerator: afhqdog\nprompts: [12]\n", "prompt 1: must be a mapping"),
    "10k-char prompt": ("name: x\ndomain: dog\ngenerator: afhqdog\nprompts: [" + "a" * 10_000 + "]\n",
                        "10000 characters"),
    "newline in a prompt": ('name: x\ndomain: dog\ngenerator: afhqdog\nprompts: ["a\\nb"]\n', "control character"),
    "unknown attribute": ("name: x\ndomain: car\ngenerator: stylegan2-tf:car\n"
                          "prompts: [{target: a, attributes: [wings]}]\n", "unknown attribute 'wings'"),
    "unknown region": ("name: x\ndomain: face\ngenerator: rosinality:ffhq\nprompts: [{target: a, region: hair+soul}]\n",
                       "region 'soul' is not a face-parsing region"),
    "path as region": ("name: x\ndomain: face\ngenerator: rosinality:ffhq\nprompts: [{target: a, region: ../hair}]\n",
                       "region must be"),
    "repeated target": ("name: x\ndomain: dog\ngenerator: afhqdog\nprompts: [happy dog, Happy dog!]\n",
                        "repeats prompt 1"),
    "no prompts": ("name: x\ndomain: dog\ngenerator: afhqdog\nprompts: []\n", "non-empty list"),
    "no generator": ("name: x\ndomain: dog\nprompts: [a]\n", "no 'generator'"),
    "bad seeds": ("name: x\ndomain: dog\ngenerator: afhqdog\nseeds: 9-1\nprompts: [a]\n", "backwards"),
    "list at the top": ("- a\n- b\n", "must be a mapping"),
    "non-string key": ("name: x\ndomain: dog\ngenerator: afhqdog\nprompts: [a]\n1: 2\n", "unknown key 1"),
    "bad yaml": ("name: [x\n", "not valid YAML"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_preset_is_refused_in_one_line(tmp_path, case):
    text, match = HOSTILE[case]
    path = tmp_path / "p.yaml"
    path.write_text(text)
    line = refused_by(lambda: load_preset(path), match=re.escape(match), error=UsageError, watch=[tmp_path])
    assert len(line) < 400


def test_too_large_and_binary_files_are_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("name: x\ndomain: dog\ngenerator: afhqdog\nprompts:\n" + "  - happy dog\n" * 40_000)
    refused_by(lambda: load_preset(big), match="KiB", error=UsageError)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00name")
    refused_by(lambda: load_preset(binary), match="not a text file", error=UsageError)
    refused_by(lambda: load_preset(tmp_path), match="not a file", error=UsageError)
    refused_by(lambda: load_preset(42), match="a name", error=UsageError)  # type: ignore[arg-type]


def test_a_broken_shipped_file_names_reinstalling(tmp_path, monkeypatch):
    monkeypatch.setattr(presets_module, "PRESET_DIR", tmp_path)
    presets_module._shipped.cache_clear()
    try:
        (tmp_path / "cars.yaml").write_text("name: not-cars\ndomain: car\ngenerator: stylegan2-tf:car\nprompts: [a]\n")
        refused_by(lambda: load_preset("cars"), match="reinstall", error=UsageError)
        refused_by(lambda: load_preset("hairclip"), match="missing; reinstall", error=UsageError)
    finally:
        presets_module._shipped.cache_clear()
