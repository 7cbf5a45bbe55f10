"""Attribute dependency: how much an edit changes the attributes its text does not mention.

StyleSpace (Wu, Lischinski, Shechtman, CVPR 2021, "StyleSpace Analysis: Disentangled Controls for StyleGAN Image
Generation", arXiv:2011.12799) measures disentanglement with attribute classifiers: for an edit of a target
attribute ``t``, every other attribute ``i`` changes its classifier logit by ``Δl_i``; normalised by ``σ_i``, the
spread of that logit over the data, ``|Δl_i| / σ_i`` says how unusual the change is for that attribute. Mean-AD
averages it over the other attributes, max-AD takes the largest, both averaged over the edited images.

StyleSpace's classifiers (CelebA-HQ attribute networks) exist for faces only. Here CLIP zero-shot probes stand in:
each attribute is a pair of prompts (``negative`` -> ``positive``) and its logit is CLIP's two-way log-odds between
them. A user's own classifier takes their place when given (:func:`load_classifier`).
"""

from __future__ import annotations

import json
import math
import re
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import CheckpointError, StyleclipError, UsageError, first_lines

DOMAINS = ("face", "dog", "cat", "wild", "car")

# CLIP's learned temperature saturates at 100 in training (OpenAI's models all end there). Attribute dependency
# divides by each logit's spread, so the scale cancels out of it; a fixed one keeps the raw logits of different
# CLIP models on one scale in the report.
CLIP_LOGIT_SCALE = 100.0

# Bounds of a user's probe list: a list a person writes, far above the shipped ones, far below what costs memory.
MAX_PROBE_FILE_BYTES = 256 << 10
MAX_PROBES = 128
MAX_TEXT = 300
MAX_WORDS = 64
MAX_WORD = 60
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_PROBE_KEYS = ("name", "negative", "positive", "words")
_FILE_KEYS = ("domain", "source", "notes", "probes")

# A classifier's attributes.json: names as a person or a dataset spells them (CelebA's "5_o_Clock_Shadow").
MAX_ATTRIBUTES_JSON = 64 << 10
MAX_CLASSIFIER_OUTPUTS = 1024
_CLASSIFIER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# A classifier that does not state its input side is checked at this one; images then go in at their own size.
CHECK_SIZE = 64
SIGMA_FLOOR = 1e-6
BATCH = 32


@dataclass(frozen=True)
class Probe:
    """One attribute as CLIP reads it: the log-odds of ``positive`` over ``negative``.

    ``words``: words (or phrases) that, found in a prompt, mean the prompt mentions this attribute.
    """

    name: str
    negative: str
    positive: str
    words: tuple[str, ...] = ()


class AttributeScorer:
    """Anything that gives one logit per attribute: ``names`` (``K`` of them) and :meth:`logits`.

    ``description``: a line for reports saying what scored (CLIP model and probes, or the classifier's file).
    """

    names: list[str]
    description: str = ""

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` images in ``[-1, 1]`` -> ``[N, K]`` float32 logits on the CPU (no gradient)."""
        raise NotImplementedError

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(images)

    def mentioned(self, text: str, explicit: Iterable[str] = ()) -> set[str]:
        """This scorer's attributes that ``text`` mentions (see :func:`mentioned`), plus ``explicit`` names."""
        return mentioned([Probe(n, "", "", _name_words(n)) for n in self.names], text, explicit)


def _check_images(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise UsageError(f"attribute scoring takes images [N, 3, H, W] in [-1, 1], got {shape}")
    if not images.is_floating_point():
        raise UsageError(f"attribute scoring takes float images in [-1, 1], got {images.dtype}")
    return images


class ClipProbes(AttributeScorer):
    """Zero-shot attribute logits: ``logit_i = 100 · (cos(e, T(positive_i)) - cos(e, T(negative_i)))``.

    That is the log-odds of the two-way softmax over the probe's prompts at CLIP's trained scale (see
    :data:`CLIP_LOGIT_SCALE`): 0 where CLIP finds both prompts equally fitting.
    """

    def __init__(self, guide, probes: Sequence[Probe]) -> None:
        if not probes:
            raise UsageError("no attribute probes given: name a probe domain (face, dog, cat, wild, car) or a list")
        self.guide = guide
        self.probes = list(probes)
        self.names = [p.name for p in self.probes]
        with torch.no_grad():
            pos = guide.encode_text([p.positive for p in self.probes])
            neg = guide.encode_text([p.negative for p in self.probes])
        # cos(e, pos) - cos(e, neg) = e · (pos - neg): one matrix product per batch
        self._difference = (pos - neg).float()
        self.description = f"CLIP zero-shot probes ({getattr(guide, 'name', 'CLIP')}, {len(self.names)} attributes)"

    def mentioned(self, text: str, explicit: Iterable[str] = ()) -> set[str]:
        return mentioned(self.probes, text, explicit)

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        images = _check_images(images)
        out = []
        for start in range(0, images.shape[0], BATCH):
            emb = self.guide.encode_image(images[start : start + BATCH].to(self.guide.device)).float()
            out.append((CLIP_LOGIT_SCALE * emb @ self._difference.to(emb.device).T).cpu())
        if not out:
            return torch.zeros(0, len(self.names))
        return torch.cat(out)


def clip_probes(guide, probes: Sequence[Probe]) -> AttributeScorer:
    """An :class:`AttributeScorer` reading ``probes`` with the CLIP model ``guide`` (:func:`styleclip.load_clip`)."""
    return ClipProbes(guide, probes)


# ---------------------------------------------------------------------------------------------------- probe lists


def load_probes(domain_or_path: str | Path) -> list[Probe]:
    """A shipped probe list (``face``, ``dog``, ``cat``, ``wild``, ``car``) or a user's YAML/JSON file of one.

    The file is a list of probes, or a mapping with ``probes:`` (and optional ``domain``, ``source``, ``notes``);
    each probe has ``name`` (lower-case, ``[a-z][a-z0-9_]*``), ``negative`` and ``positive`` prompts and optional
    ``words``. A user's file is untrusted: its size, every field's type and length are checked, unknown keys are
    refused by name, each error in one line.
    """
    text = str(domain_or_path)
    path = Path(text).expanduser()
    if text in DOMAINS and not path.is_file():
        data = resources.files("styleclip.evaluation").joinpath("probes", f"{text}.yaml")
        where = f"probes/{text}.yaml"
        return _parse_probes(_parse_yaml(data.read_text(encoding="utf-8"), where), where)
    if _URL.match(text):
        raise UsageError(f"{text}: a probe list is a local YAML file (or one of {', '.join(DOMAINS)}), not a URL")
    if not path.exists():
        raise UsageError(f"no probe list {text!r}: give one of {', '.join(DOMAINS)} or a YAML file of probes")
    from ..hub.formats.detect import check_regular_file

    try:
        size = check_regular_file(path)
    except CheckpointError as exc:
        raise UsageError(str(exc)) from None
    if size > MAX_PROBE_FILE_BYTES:
        raise UsageError(f"{path}: {size >> 10} KiB is far more than a probe list holds "
                         f"(at most {MAX_PROBE_FILE_BYTES >> 10} KiB)")  # fmt: skip
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_PROBE_FILE_BYTES + 1)[:MAX_PROBE_FILE_BYTES].decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a text file (a probe list is UTF-8 YAML or JSON)") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return _parse_probes(_parse_yaml(raw, str(path)), str(path))


def _parse_yaml(text: str, where: str) -> Any:
    """Safe YAML (JSON is YAML) with every node counted at its expanded size, so an alias bomb stops early."""
    from ..utils.safe_yaml import read_yaml

    return read_yaml(text, where)


def _text(value: Any, where: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{where}: must be a non-empty text, got {type(value).__name__}")
    if len(value) > limit:
        raise UsageError(f"{where}: {len(value)} characters, at most {limit}")
    if any(ch in value for ch in "\n\r\t\x00"):
        raise UsageError(f"{where}: must be one line of text")
    return " ".join(value.split())


def _parse_probes(data: Any, where: str) -> list[Probe]:
    if isinstance(data, dict):
        unknown = [str(k) for k in data if k not in _FILE_KEYS]
        if unknown:
            raise UsageError(f"{where}: unknown key {unknown[0][:40]!r} (a probe list has {', '.join(_FILE_KEYS)})")
        if "probes" not in data:
            raise UsageError(f"{where}: no 'probes:' list")
        for key in ("domain", "source", "notes"):
            if key in data and data[key] is not None:
                _text(data[key], f"{where}: {key}", limit=2000)
        data = data["probes"]
    if not isinstance(data, list) or not data:
        raise UsageError(f"{where}: probes must be a non-empty list of {{name, negative, positive, words}}")
    if len(data) > MAX_PROBES:
        raise UsageError(f"{where}: {len(data)} probes, at most {MAX_PROBES}")
    probes, seen = [], set()
    for i, item in enumerate(data):
        at = f"{where}: probes[{i}]"
        if not isinstance(item, dict):
            raise UsageError(f"{at}: must be a mapping with {', '.join(_PROBE_KEYS)}")
        unknown = [str(k) for k in item if k not in _PROBE_KEYS]
        if unknown:
            raise UsageError(f"{at}: unknown key {unknown[0][:40]!r} (a probe has {', '.join(_PROBE_KEYS)})")
        missing = [k for k in _PROBE_KEYS[:3] if k not in item]
        if missing:
            raise UsageError(f"{at}: missing {missing[0]!r}")
        name = item["name"]
        if not isinstance(name, str) or not _NAME.match(name):
            raise UsageError(f"{at}: name must be lower-case letters, digits and _ (at most 40), "
                             f"got {str(name)[:40]!r}")  # fmt: skip
        if name in seen:
            raise UsageError(f"{at}: the name {name!r} comes twice")
        seen.add(name)
        negative = _text(item["negative"], f"{at}.negative")
        positive = _text(item["positive"], f"{at}.positive")
        if negative.lower() == positive.lower():
            raise UsageError(f"{at}: negative and positive are the same text; describe the two ends of {name!r}")
        words = item.get("words") or []
        if not isinstance(words, list) or len(words) > MAX_WORDS:
            raise UsageError(f"{at}.words: must be a list of at most {MAX_WORDS} words")
        kept = tuple(dict.fromkeys(_text(w, f"{at}.words[{j}]", MAX_WORD).lower() for j, w in enumerate(words)))
        probes.append(Probe(name, negative, positive, kept))
    return probes


# ----------------------------------------------------------------------------------------- what a prompt mentions


def _word_pattern(word: str) -> re.Pattern:
    # Not \b: a word may begin or end with a non-word character ("1950s", "make-up"); spaces and hyphens inside a
    # phrase match each other ("clean shaven" ~ "clean-shaven").
    parts = [re.escape(p) for p in re.split(r"[\s\-]+", word.strip()) if p]
    return re.compile(r"(?<!\w)" + r"[\s\-]+".join(parts) + r"(?!\w)", re.IGNORECASE)


def _name_words(name: str) -> tuple[str, ...]:
    return (re.sub(r"[_.]+", " ", name).strip().lower(),)


def mentioned(probes: Sequence[Probe], text: str, explicit: Iterable[str] = ()) -> set[str]:
    """Names of the attributes ``text`` mentions: ``explicit`` names, and each probe whose name (``_`` read as a
    space) or one of whose words appears in the text as a whole word (case-insensitive: "a smiling face" mentions
    ``smile``, "a bold look" not ``age`` through "old")."""
    found = {str(n) for n in explicit}
    for probe in probes:
        words = (*_name_words(probe.name), *probe.words)
        if probe.name not in found and any(_word_pattern(w).search(text) for w in words):
            found.add(probe.name)
    return found


# ----------------------------------------------------------------------------------------------- the measurement


def _batches(images: torch.Tensor | Iterable[torch.Tensor]) -> Iterable[torch.Tensor]:
    if isinstance(images, torch.Tensor):
        yield images
    else:
        yield from images


def spread(scorer: AttributeScorer, images: torch.Tensor | Iterable[torch.Tensor]) -> torch.Tensor:
    """``σ`` per attribute ``[K]``: the standard deviation (over images, as NumPy's ``std``) of each logit.

    ``images``: ``[N, 3, H, W]`` in ``[-1, 1]``, or an iterable of such batches (at least 2 images in all; the
    more, the steadier). An attribute whose logit does not vary over them (``σ`` under :data:`SIGMA_FLOOR`) has no
    spread to measure a change against: its ``σ`` is NaN, and :func:`attribute_dependency` leaves it out and says so.
    """
    logits = [scorer.logits(batch).float().cpu() for batch in _batches(images)]
    values = torch.cat(logits) if logits else torch.zeros(0, len(scorer.names))
    if values.shape[0] < 2:
        raise UsageError(f"the spread of attribute logits needs at least 2 images, got {values.shape[0]}")
    sigma = values.std(dim=0, correction=0)
    return torch.where(sigma > SIGMA_FLOOR, sigma, torch.full_like(sigma, math.nan))


def attribute_dependency(
    before: torch.Tensor,
    after: torch.Tensor,
    sigma: torch.Tensor,
    names: Sequence[str],
    exclude: Iterable[str] = (),
) -> dict:
    """StyleSpace's attribute dependency of an edit.

    Args:
        before, after: ``[N, K]`` logits of the same ``N`` sources before and after the edit.
        sigma: ``[K]`` spread of each logit (:func:`spread`).
        names: the ``K`` attribute names.
        exclude: attributes the edit means to change (:func:`mentioned`): left out of AD, reported as the
            edit's ``target_change``. Names the scorer lacks are ignored.

    Returns:
        ``mean_ad``: mean over sources of the mean over the other attributes of ``|Δl_i| / σ_i``; ``max_ad``: mean
        over sources of the largest of them; ``per_attribute``: ``{name: mean |Δl| / σ}`` of the other attributes;
        ``target_change``: ``{name: mean Δl / σ}`` (signed) of the excluded ones; ``excluded``; ``unscaled``
        (attributes without spread, left out); ``n``: sources. ``mean_ad``/``max_ad`` are NaN when no attribute
        is left to measure.
    """
    names = list(names)
    k = len(names)
    for label, t in (("before", before), ("after", after)):
        if not isinstance(t, torch.Tensor) or t.ndim != 2 or t.shape[1] != k:
            shape = list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise UsageError(f"attribute dependency: {label} must be [N, {k}] logits (one per name), got {shape}")
    if before.shape != after.shape:
        raise UsageError(f"attribute dependency: before {list(before.shape)} and after {list(after.shape)} "
                         "must score the same sources")  # fmt: skip
    sigma = torch.as_tensor(sigma).float().cpu().reshape(-1)
    if sigma.numel() != k:
        raise UsageError(f"attribute dependency: sigma has {sigma.numel()} values for {k} attributes")
    before, after = before.float().cpu(), after.float().cpu()
    if not (torch.isfinite(before).all() and torch.isfinite(after).all()):
        raise UsageError("attribute dependency: the logits hold NaN or Inf (the scorer failed on these images)")
    scaled = torch.isfinite(sigma) & (sigma > SIGMA_FLOOR)
    excluded = set(exclude)
    change = (after - before) / torch.where(scaled, sigma, torch.ones_like(sigma))
    others = [i for i, n in enumerate(names) if n not in excluded and bool(scaled[i])]
    targets = [i for i, n in enumerate(names) if n in excluded and bool(scaled[i])]
    n = before.shape[0]
    if others and n:
        dependency = change[:, others].abs()
        mean_ad = float(dependency.mean(dim=1).mean())
        max_ad = float(dependency.max(dim=1).values.mean())
        per_attribute = {names[i]: float(v) for i, v in zip(others, dependency.mean(dim=0).tolist(), strict=True)}
    else:
        mean_ad = max_ad = math.nan
        per_attribute = {}
    target_change = {names[i]: float(change[:, i].mean()) if n else math.nan for i in targets}
    return {
        "mean_ad": mean_ad,
        "max_ad": max_ad,
        "per_attribute": per_attribute,
        "target_change": target_change,
        "excluded": sorted(n for n in excluded if n in names),
        "unscaled": [names[i] for i in range(k) if not bool(scaled[i])],
        "n": n,
    }


# ------------------------------------------------------------------------------------------- a user's classifier


class TorchScriptClassifier(AttributeScorer):
    """A user's TorchScript attribute classifier: ``[N, 3, S, S]`` in ``[0, 1]`` -> ``[N, K]`` logits.

    Images are mapped from ``[-1, 1]`` to ``[0, 1]`` and resized to ``size`` (the classifier's stated input side;
    None: their own size); any normalisation is the classifier's own business.
    """

    def __init__(self, module, names: list[str], size: int | None, device, source: str) -> None:
        self.module = module
        self.names = names
        self.size = size
        self.device = torch.device(device)
        self.source = source
        self.description = f"classifier {source} ({len(names)} attributes)"

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        try:
            out = self.module(x.to(self.device))
        except Exception as exc:  # a user's program fails in any way it likes
            hint = ("it should take [N, 3, size, size] RGB in [0, 1]" if self.size else
                    'state its input side as "size" in attributes.json')  # fmt: skip
            raise CheckpointError(f"{self.source}: the classifier failed on a {list(x.shape)} batch in [0, 1] "
                                  f"({first_lines(exc)}); {hint}") from None  # fmt: skip
        if not isinstance(out, torch.Tensor):
            raise CheckpointError(f"{self.source}: the classifier returns {type(out).__name__}, "
                                  f"expected a [N, {len(self.names)}] tensor of logits")  # fmt: skip
        if out.ndim != 2 or out.shape[0] != x.shape[0]:
            raise CheckpointError(f"{self.source}: the classifier returns {list(out.shape)} for {x.shape[0]} images, "
                                  f"expected [N, K] logits, one per image and attribute")  # fmt: skip
        if out.shape[1] != len(self.names):
            raise CheckpointError(f"{self.source}: the classifier gives {out.shape[1]} logits per image but its "
                                  f"attributes.json names {len(self.names)}; save one name per output"
                                  )  # fmt: skip
        out = out.detach().float().cpu()
        if not torch.isfinite(out).all():
            raise CheckpointError(f"{self.source}: the classifier gives NaN or Inf logits; check it outside "
                                  "styleclip (a broken export or diverged weights)")  # fmt: skip
        return out

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        x = ((images.float() + 1) / 2).clamp(0, 1)
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            antialias = x.shape[-1] > self.size
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                              antialias=antialias)  # fmt: skip
        return x

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        images = _check_images(images)
        if images.shape[0] == 0:
            return torch.zeros(0, len(self.names))
        return torch.cat([self._run(self._prepare(images[s : s + BATCH])) for s in range(0, images.shape[0], BATCH)])


def _attributes_entry(path: Path) -> bytes | None:
    """The ``extra/attributes.json`` a TorchScript archive carries, or None for any other file."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if i.filename.endswith("/extra/attributes.json")
                     and i.filename.count("/") == 2]  # fmt: skip
            if not infos:
                return None
            if infos[0].file_size > MAX_ATTRIBUTES_JSON:
                raise CheckpointError(f"{path}: its attributes.json is {infos[0].file_size >> 10} KiB, "
                                      f"at most {MAX_ATTRIBUTES_JSON >> 10} KiB")  # fmt: skip
            with zf.open(infos[0]) as f:
                return f.read(MAX_ATTRIBUTES_JSON + 1)[:MAX_ATTRIBUTES_JSON]
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError):
        return None


def _read_attributes(raw: bytes, path: Path) -> tuple[list[str], int | None]:
    hint = 'attributes.json is ["name", ...] or {"names": [...], "size": 224}'
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CheckpointError(f"{path}: its attributes.json is not valid JSON; {hint}") from None
    size = None
    if isinstance(info, dict):
        unknown = [str(k) for k in info if k not in ("names", "size")]
        if unknown:
            raise CheckpointError(f"{path}: attributes.json has an unknown key {unknown[0][:40]!r}; {hint}")
        size = info.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= 2048):
            raise CheckpointError(f"{path}: attributes.json size must be an input side of 8 to 2048 pixels; {hint}")
        info = info.get("names")
    if not isinstance(info, list) or not info:
        raise CheckpointError(f"{path}: attributes.json names no attributes; {hint}")
    if len(info) > MAX_CLASSIFIER_OUTPUTS:
        raise CheckpointError(f"{path}: attributes.json names {len(info)} attributes, at most {MAX_CLASSIFIER_OUTPUTS}")
    for name in info:
        if not isinstance(name, str) or not _CLASSIFIER_NAME.match(name):
            raise CheckpointError(f"{path}: attributes.json: {str(name)[:40]!r} is not an attribute name "
                                  "(letters, digits, _ . -, at most 64)")  # fmt: skip
    if len(set(info)) != len(info):
        raise CheckpointError(f"{path}: attributes.json names an attribute twice")
    return list(info), size


def _load_torchscript(path: Path, raw: bytes, device) -> TorchScriptClassifier:
    from ..hub.formats.budget import refuse_zip_bomb

    names, size = _read_attributes(raw, path)
    try:
        refuse_zip_bomb(path)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    try:
        with warnings.catch_warnings():
            # torch >= 2.9 deprecates TorchScript in favour of torch.export; archives still load, and users have them
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location=device)
    except Exception as exc:  # torch raises RuntimeError, ValueError... for archives it cannot read
        raise CheckpointError(f"{path}: not a TorchScript archive torch can load ({first_lines(exc)}); save the "
                              "classifier with torch.jit.save(torch.jit.script(model), path, _extra_files=...)"
                              ) from None  # fmt: skip
    module.eval()
    scorer = TorchScriptClassifier(module, names, size, device, str(path))
    side = size or CHECK_SIZE
    # a first run on grey pictures: a wrong output width or a NaN is refused at load, not mid-benchmark
    scorer._run(torch.full((2, 3, side, side), 0.5))
    return scorer


def load_classifier(path: str | Path, device="cpu", probes_for_clip: Sequence[Probe] | None = None) -> AttributeScorer:
    """A user's attribute scorer from a local file.

    - A TorchScript archive saved with ``attributes.json`` among its extra files
      (``torch.jit.save(torch.jit.script(model), path, _extra_files={"attributes.json": json.dumps(names)})``,
      or ``{"names": [...], "size": 224}``): it maps ``[N, 3, size, size]`` RGB in ``[0, 1]`` to ``[N, K]`` logits,
      ``K`` the number of names (without ``size``, pictures go in at their own size). TorchScript is a program:
      loading it runs its code, so only a local file the user names is ever loaded, never a URL or a download.
    - Otherwise an OpenAI/open_clip CLIP checkpoint, anything :func:`styleclip.load_clip` takes as a path
      (``file.pt``, or ``ARCH:/path/to/weights``): then ``probes_for_clip`` read with that CLIP
      (:func:`clip_probes`).

    Each refusal (not TorchScript nor CLIP, wrong output shape, names count mismatch, NaN, URL) is one line.
    """
    text = str(path)
    if _URL.match(text):
        raise UsageError(f"{text}: an attribute classifier must be a local file (a TorchScript classifier is a "
                         "program, so styleclip loads only files you name; download it yourself)")  # fmt: skip
    file = Path(text).expanduser()
    _, sep, tag = text.partition(":")
    if not (file.exists() or file.is_symlink()):
        if sep and tag and Path(tag).expanduser().is_file():
            return _clip_classifier(text, device, probes_for_clip)
        raise CheckpointError(f"{file}: no such file; give a TorchScript classifier or a CLIP checkpoint")
    from ..hub.formats.detect import check_regular_file

    check_regular_file(file)
    raw = _attributes_entry(file)
    if raw is not None:
        return _load_torchscript(file, raw, device)
    try:
        return _clip_classifier(file, device, probes_for_clip)
    except UsageError:
        raise
    except StyleclipError as exc:
        why = first_lines(exc).removeprefix(f"{file}: ")
        raise CheckpointError(f"{file}: neither a TorchScript classifier saved with attributes.json nor a CLIP "
                              f"checkpoint ({why})") from None  # fmt: skip


def _clip_classifier(name: str | Path, device, probes: Sequence[Probe] | None) -> AttributeScorer:
    from ..guidance.clip import load_clip

    guide = load_clip(name, device=device)  # first, so that a file that is no CLIP is named as such
    if not probes:
        raise UsageError(f"{name}: a CLIP model scores attributes through probes; give the domain's probe list")
    return clip_probes(guide, probes)


__all__ = ["CLIP_LOGIT_SCALE", "DOMAINS", "AttributeScorer", "ClipProbes", "Probe", "TorchScriptClassifier",
           "attribute_dependency", "clip_probes", "load_classifier", "load_probes", "mentioned", "spread"]  # fmt: skip
