"""The field's prompt sets as data: what ``styleclip benchmark --preset NAME`` edits and judges.

A preset is a YAML file naming texts, never files: the generator it is meant for (a catalogue name), the sources
(seeds), and its prompts, each a target text with the neutral text a global direction and the directional score
start from, the published mapper trained for exactly that text (a catalogue name), the face region the edit should
stay inside, and the attributes it means to change (left out of the disentanglement score)::

    name: my-dogs
    title: Dogs, happier and sleepier
    source: my own choice
    domain: dog
    generator: stylegan2-ada-tf:afhqdog
    seeds: 0-7
    defaults: {neutral: dog}                 # any prompt key but target and mapper, for prompts that omit it
    prompts:
      - happy dog                            # a bare text is {target: happy dog}
      - {target: sleepy dog, attributes: [eyes_open]}
      - {target: face with a mohawk hairstyle, neutral: face, mapper: "styleclip-mapper:mohawk", region: hair,
         attributes: [hairstyle], group: hairstyle}

The shipped presets (:data:`PRESETS`) live beside this module in ``presets/<name>.yaml``. A user's file is untrusted
data: it is read with a size bound and the safe YAML loader that counts aliases at their expanded size (the one job
files use), every field is type- and length-checked, and an unknown key is refused by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..jobs.spec import slug
from ..references import has_scheme
from ..sample import parse_seeds
from ..utils.safe_yaml import read_yaml

PRESETS: tuple[str, ...] = ("styleclip-faces", "hairclip", "deltaedit", "afhq-dog", "afhq-cat", "afhq-wild", "cars")
PRESET_DIR = Path(__file__).with_name("presets")

MAX_PRESET_BYTES = 256 << 10  # the largest shipped preset is ~10 KiB
MAX_PROMPTS = 1000
MAX_TEXT = 300  # CLIP reads 77 tokens; a longer "prompt" is a mistake (or an attack on the report)
MAX_NAME = 64
MAX_ATTRIBUTES = 32

# The attribute probes the disentanglement score reads, per domain, when its probe lists are not installed; the
# names are the shared vocabulary of the presets and evaluation/probes/<domain>.yaml.
FALLBACK_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "face": ("smile", "age", "gender", "glasses", "beard", "hair_color", "hair_length", "hairstyle", "makeup",
             "mouth_open", "eyes_open", "skin_tone", "bald", "hat", "expression"),
    "dog": ("mouth_open", "eyes_open", "fur_color", "fur_length", "ears_up", "age", "happy", "species"),
    "cat": ("mouth_open", "eyes_open", "fur_color", "fur_length", "ears_up", "age", "happy", "species"),
    "wild": ("mouth_open", "eyes_open", "fur_color", "fur_length", "ears_up", "age", "happy", "species"),
    "car": ("color", "age", "sporty", "size", "background"),
}  # fmt: skip
# Face-parsing regions a prompt may name when the masked-preservation module is not installed.
FALLBACK_REGIONS = ("background", "skin", "brows", "eyes", "glasses", "ears", "nose", "mouth", "lips", "neck", "cloth",
                    "hair", "hat", "face")  # fmt: skip

_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]*")
_REGION = re.compile(r"[a-z]+(\+[a-z]+)*")  # one region, or several joined by '+' (face+hair)
_CATALOGUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*(:[A-Za-z0-9][A-Za-z0-9._+-]*)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

_PROMPT_KEYS = ("target", "neutral", "mapper", "region", "attributes", "group")
_DEFAULT_KEYS = ("neutral", "region", "attributes", "group")
_PRESET_KEYS = ("name", "title", "source", "domain", "generator", "seeds", "notes", "defaults", "prompts")


@dataclass(frozen=True)
class PresetPrompt:
    """One edit of a preset.

    ``target``: the text the edit aims for; ``neutral``: its neutral text (global directions, directional score);
    ``mapper``: the catalogue name of a published mapper trained for exactly this text; ``region``: the face-parsing
    region it edits (None: the whole image); ``attributes``: attribute-probe names it means to change (left out of
    the disentanglement score); ``group``: a family within the preset (HairCLIP's ``hairstyle`` / ``colour``).
    """

    target: str
    neutral: str | None = None
    mapper: str | None = None
    region: str | None = None
    attributes: tuple[str, ...] = ()
    group: str | None = None


@dataclass(frozen=True)
class Preset:
    """A named prompt set: ``source`` says where its prompts come from (paper, repository, commit and file),
    ``generator`` the catalogue generator it is meant for, ``seeds`` the default sources (``'0-7'``)."""

    name: str
    title: str
    source: str
    domain: str
    generator: str
    prompts: tuple[PresetPrompt, ...]
    seeds: str = "0-7"
    notes: str = ""


def load_preset(name_or_path: str | Path) -> Preset:
    """A shipped preset by name (:data:`PRESETS`), or a user's YAML file of the same shape (checked field by field).

    An unknown name is refused in one line that lists the shipped ones.
    """
    if isinstance(name_or_path, str) and name_or_path in PRESETS:
        return _shipped(name_or_path)
    if not isinstance(name_or_path, (str, Path)):
        raise UsageError(f"a preset is a name ({', '.join(PRESETS)}) or a YAML file, got {_short(name_or_path)}")
    text = str(name_or_path)
    if has_scheme(text):
        raise UsageError(f"preset {text[:80]!r} is a URL; download the file and give its path, or name a shipped "
                         f"preset: {', '.join(PRESETS)}")  # fmt: skip
    path = Path(text).expanduser()
    if path.is_file():
        return _from_file(path)
    if path.exists():
        raise UsageError(f"preset {text[:80]!r} is not a file: give a YAML file or one of {', '.join(PRESETS)}")
    if isinstance(name_or_path, Path) or path.suffix.lower() in (".yaml", ".yml", ".json") or "/" in text:
        raise UsageError(f"preset file {text[:120]} does not exist")
    raise UsageError(
        f"unknown preset {text[:60]!r}: the shipped presets are {', '.join(PRESETS)} (or give a YAML file)"
    )


def describe_presets() -> list[str]:
    """One line per shipped preset: name, prompt count, domain, generator and title (``--list-presets``)."""
    lines = []
    for name in PRESETS:
        p = load_preset(name)
        mappers = sum(1 for q in p.prompts if q.mapper)
        count = f"{len(p.prompts)} prompts" + (f" ({mappers} with a mapper)" if mappers else "")
        lines.append(f"{name:<16} {count:<32} {p.domain:<5} {p.generator:<26} {p.title}")
    return lines


@cache
def _shipped(name: str) -> Preset:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():  # a broken installation, not a user mistake; still one line
        raise UsageError(f"the shipped preset file {path} is missing; reinstall styleclip")
    preset = _from_file(path, where=f"preset {name}")
    if preset.name != name:
        raise UsageError(f"the shipped preset file {path} is named {preset.name!r}, not {name!r}; reinstall styleclip")
    return preset


def _from_file(path: Path, where: str | None = None) -> Preset:
    where = where or str(path)
    return parse_preset(_read_yaml(path, where), where=where)


def _read_yaml(path: Path, where: str) -> Any:
    size = path.stat().st_size
    if size > MAX_PRESET_BYTES:
        raise UsageError(f"{where}: {size >> 10} KiB is far more than a preset holds (at most "
                         f"{MAX_PRESET_BYTES >> 10} KiB)")  # fmt: skip
    try:
        with open(path, "rb") as f:  # read no more than the bound: the size can change between stat and read
            raw = f.read(MAX_PRESET_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{where}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    if len(raw) > MAX_PRESET_BYTES:
        raise UsageError(f"{where}: more than {MAX_PRESET_BYTES >> 10} KiB; a preset is a short list of texts")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{where}: not a text file (a preset is UTF-8 YAML)") from None
    return read_yaml(text, where, advice="a preset is a short list of texts")


def parse_preset(data: Any, where: str = "preset") -> Preset:
    """A :class:`Preset` from the mapping a preset file holds, every field checked (``where`` starts each error)."""
    _check_keys(data, _PRESET_KEYS, where, "a preset")
    for key in ("name", "domain", "generator", "prompts"):
        if key not in data:
            raise UsageError(f"{where}: no {key!r} (a preset needs name, domain, generator and prompts)")
    name = _slug_text("name", data["name"], where)
    domain = _slug_text("domain", data["domain"], where)
    generator = _generator(data["generator"], where)
    title = _text("title", data.get("title", name), where, limit=200)
    source = _text("source", data.get("source", "a user's preset file"), where, limit=2000)
    notes = "" if data.get("notes") in (None, "") else _text("notes", data["notes"], where, limit=4000, lines=True)
    seeds = data.get("seeds", "0-7")
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = str(seeds)
    if not isinstance(seeds, str) or len(seeds) > 200:
        raise UsageError(f"{where}: seeds must be a text such as 0-7 or 1,5,9, got {_short(seeds)}")
    try:
        parse_seeds(seeds)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    defaults = data.get("defaults") or {}
    _check_keys(defaults, _DEFAULT_KEYS, f"{where}: defaults", "defaults")
    items = data["prompts"]
    if not isinstance(items, list) or not items:
        raise UsageError(f"{where}: prompts must be a non-empty list of texts or {{target: ...}} mappings, "
                         f"got {_short(items)}")  # fmt: skip
    if len(items) > MAX_PROMPTS:
        raise UsageError(f"{where}: {len(items)} prompts is more than {MAX_PROMPTS}; split the preset")
    known = _attribute_names(domain)
    regions = _region_names()
    prompts: list[PresetPrompt] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items, 1):
        at = f"{where}: prompt {i}"
        entry = {"target": item} if isinstance(item, str) else item
        _check_keys(entry, _PROMPT_KEYS, at, "a prompt")
        entry = {**defaults, **entry}
        if "target" not in entry:
            raise UsageError(f"{at}: no 'target' (the text the edit aims for)")
        prompt = _prompt(entry, at, known, regions)
        key = slug(prompt.target, limit=MAX_TEXT)
        if key in seen:
            raise UsageError(f"{at}: target {prompt.target!r} repeats prompt {seen[key]} (the same text, or the same "
                             "once punctuation and case are dropped, would share its folders)")  # fmt: skip
        seen[key] = i
        prompts.append(prompt)
    return Preset(name=name, title=title, source=source, domain=domain, generator=generator,
                  prompts=tuple(prompts), seeds=seeds, notes=notes)  # fmt: skip


def _prompt(entry: dict, at: str, known: tuple[str, ...] | None, regions: tuple[str, ...]) -> PresetPrompt:
    target = _text("target", entry["target"], at)
    neutral = None if entry.get("neutral") is None else _text("neutral", entry["neutral"], at)
    mapper = None if entry.get("mapper") is None else _mapper(entry["mapper"], at)
    region = None
    if entry.get("region") is not None:
        region = entry["region"]
        if not isinstance(region, str) or len(region) > 200 or not _REGION.fullmatch(region):
            raise UsageError(f"{at}: region must be a face-parsing region name or several joined by '+' (face+hair), "
                             f"got {_short(region)}")  # fmt: skip
        unknown_region = next((r for r in region.split("+") if r not in regions), None)
        if unknown_region is not None:
            raise UsageError(f"{at}: region {unknown_region!r} is not a face-parsing region ({', '.join(regions)})")
    group = None if entry.get("group") is None else _slug_text("group", entry["group"], at)
    raw = entry.get("attributes")
    raw = [] if raw is None else [raw] if isinstance(raw, str) else raw
    if not isinstance(raw, list) or len(raw) > MAX_ATTRIBUTES:
        raise UsageError(f"{at}: attributes must be a list of at most {MAX_ATTRIBUTES} attribute names, "
                         f"got {_short(entry.get('attributes'))}")  # fmt: skip
    attributes = tuple(dict.fromkeys(_slug_text("attributes", a, at) for a in raw))
    unknown = [a for a in attributes if known is not None and a not in known]
    if unknown:
        raise UsageError(f"{at}: unknown attribute {unknown[0]!r} for this domain (known: {', '.join(known or ())})")
    return PresetPrompt(target=target, neutral=neutral, mapper=mapper, region=region, attributes=attributes,
                        group=group)  # fmt: skip


def _check_keys(data: Any, allowed: tuple[str, ...], where: str, what: str) -> None:
    if not isinstance(data, dict):
        raise UsageError(f"{where}: must be a mapping of {', '.join(allowed)}, got {_short(data)}")
    for key in data:
        if not isinstance(key, str) or key not in allowed:
            raise UsageError(f"{where}: unknown key {_short(key)} ({what} takes {', '.join(allowed)})")


def _text(field: str, value: Any, where: str, limit: int = MAX_TEXT, lines: bool = False) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{where}: {field} must be a non-empty text, got {_short(value)}")
    if len(value) > limit:
        raise UsageError(f"{where}: {field} is {len(value)} characters long; at most {limit}")
    bad = _CONTROL.search(value.replace("\n", " ") if lines else value)
    if bad:
        raise UsageError(f"{where}: {field} holds a control character ({bad.group()!r}); write it on one line")
    return value.strip()


def _slug_text(field: str, value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME or not _SLUG.fullmatch(value):
        raise UsageError(f"{where}: {field} must be a short lower-case name (letters, digits, '-', '_'), "
                         f"got {_short(value)}")  # fmt: skip
    return value


def _catalogue(field: str, value: Any, where: str, kind: str, example: str, hint: str = "") -> str:
    if not isinstance(value, str) or len(value) > 200 or not _CATALOGUE_NAME.fullmatch(value):
        raise UsageError(f"{where}: {field} must be a catalogue {kind} name such as {example}, got {_short(value)}: "
                         f"a preset names texts, not files or URLs{hint}")  # fmt: skip
    from ..hub.registry import find_asset

    asset = find_asset(value)
    if asset is None or asset.kind != kind:
        raise UsageError(f"{where}: {field} {value!r} is no {kind} in the catalogue (see styleclip models list)")
    return value


def _generator(value: Any, where: str) -> str:
    return _catalogue(
        "generator", value, where, "generator", "rosinality:ffhq", " (give a generator file with --generator)"
    )


def _mapper(value: Any, where: str) -> str:
    if isinstance(value, str) and ":" not in value and _CATALOGUE_NAME.fullmatch(value):
        raise UsageError(f"{where}: mapper {value!r} needs its family, e.g. styleclip-mapper:{value}")
    return _catalogue("mapper", value, where, "mapper", "styleclip-mapper:mohawk")


def _attribute_names(domain: str) -> tuple[str, ...] | None:
    """The probe names of ``domain`` (from the installed probe lists, else the shared fallback); None: no list, so
    any name is taken."""
    if (Path(__file__).with_name("probes") / f"{domain}.yaml").is_file():
        try:
            from .disentangle import load_probes

            return tuple(p.name for p in load_probes(domain))
        except ImportError:
            pass
    return FALLBACK_ATTRIBUTES.get(domain)


def _short(value: Any, limit: int = 60) -> str:
    try:
        text = " ".join(repr(value).split())
    except (ValueError, RecursionError):  # a self-containing list, an int beyond Python's digit limit
        text = f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _region_names() -> tuple[str, ...]:
    try:
        from .masked import REGIONS
    except ImportError:
        return FALLBACK_REGIONS
    return tuple(REGIONS)
