"""Drawing a base generator's codes with an adapted one (StyleGAN-NADA): ``--generator BASE --adapted NAME|PATH``.

NADA trains a copy of the synthesis network and leaves the mapping network frozen, so a W/W+ code of the base and
of the adapted generator mean the same face, in two styles. The composition lives here, above ``edits/`` and
``inversion/``: seeds are mapped and photos inverted with the base (and its encoder); the pictures are drawn by the
adapted synthesis network. :func:`compose` builds one generator with exactly that split (the base's mapping module,
shared, and the adapted synthesis network), so that every edit method that takes one generator (latent
optimisation, mappers, global directions through ``G.styles``) works unchanged on the adapted style.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from .errors import UsageError
from .nets.stylegan2 import Generator
from .nets.stylegan3 import Generator3

PTI_REFUSAL = (
    "--pti tunes the base generator's weights to the photo, which the adapted generator does not share; "
    "drop --pti or --adapted"
)
# An adapted generator records this much about itself in reports and PNG text (its training settings stay out).
_SUMMARY_KEYS = ("method", "source", "target", "steps", "published")


def _family(G: Generator) -> str:
    return "StyleGAN3" if isinstance(G, Generator3) else "StyleGAN2"


def check_compatible(adapted: Generator, base: Generator, name: str = "the adapted generator") -> None:
    """Refuse, in one line naming the fix, an adapted generator that cannot draw ``base``'s codes."""
    fix = "pass its base with --generator"
    if _family(adapted) != _family(base):
        raise UsageError(f"{name} is a {_family(adapted)} generator and the base a {_family(base)} one; {fix}")
    if adapted.img_resolution != base.img_resolution:
        raise UsageError(
            f"{name} was adapted from a {adapted.img_resolution}-px generator and the base draws "
            f"{base.img_resolution} px; {fix}"
        )
    mine = (adapted.num_ws, adapted.w_dim, adapted.z_dim, adapted.c_dim)
    theirs = (base.num_ws, base.w_dim, base.z_dim, base.c_dim)
    if mine != theirs:
        raise UsageError(
            f"{name} takes {mine[0]} W+ rows of {mine[1]} (z {mine[2]}, {mine[3]} classes) and the base gives "
            f"{theirs[0]} of {theirs[1]} (z {theirs[2]}, {theirs[3]} classes); {fix}"
        )
    if [(x.name, x.channels) for x in adapted.style_layers] != [(x.name, x.channels) for x in base.style_layers]:
        # a StyleSpace edit's change is added layer by layer: the widths must agree too
        raise UsageError(f"{name} has other style layers (channel widths) than the base; {fix}")


def base_note(adapted: Generator, base: Generator, name: str = "the adapted generator") -> str | None:
    """A warning when ``adapted`` records a base other than ``base`` (by fingerprint, else by catalogue name), or
    none at all; None when they agree. Drawing still works: the codes only mean less to another base's copy."""
    from .stylespace import generator_fingerprint

    record = (adapted.meta.get("adapted") or {}).get("base") or {}
    if not record:
        return f"{name} records no base generator: its pictures assume it shares the base's W space"
    recorded, given = record.get("fingerprint"), base.meta.get("fingerprint")
    if recorded:
        given = generator_fingerprint(base)
        if recorded != given:
            shown = record.get("name") or record.get("source") or "another generator"
            return f"{name} was adapted from {shown} (weights {recorded}), not from this base (weights {given})"
        return None
    if record.get("name") and base.meta.get("asset") and record["name"] != base.meta["asset"]:
        return f"{name} was adapted from {record['name']}, not from {base.meta['asset']}"
    return None


def compose(adapted: Generator, base: Generator, name: str | None = None) -> Generator:
    """The generator that draws ``base``'s codes in ``adapted``'s style: ``adapted``'s synthesis network under
    ``base``'s mapping network (shared, not copied). ``adapted`` itself is left as it was.

    Args:
        adapted: a generator adapted from ``base`` (same family, resolution, W+ shape).
        base: the generator whose seeds, truncation centre ``w_avg`` and inversions the codes come from.
        name: what the user called ``adapted`` (catalogue name or path), for messages and reports.

    Returns:
        A generator: ``mapping_forward`` maps ``z [N, z_dim]`` as ``base`` does; ``synthesize(ws [N, num_ws, w_dim])``
        and ``styles(ws)`` use ``adapted``'s weights (images ``[N, C, R, R]`` about ``[-1, 1]``). Its ``meta`` is
        ``adapted``'s with ``adapted_name``, ``base_name`` and ``adapted_note`` (a base mismatch warning, or None).
    """
    shown = name or adapted.meta.get("asset") or adapted.meta.get("source") or "the adapted generator"
    if adapted.mapping is base.mapping:  # composed already
        return adapted
    check_compatible(adapted, base, shown)
    note = base_note(adapted, base, shown)
    G = copy.copy(adapted)  # a new module object; only its children's table is replaced below
    G._modules = {**adapted._modules, "mapping": base.mapping}
    G._parameters, G._buffers = dict(adapted._parameters), dict(adapted._buffers)
    G.meta = {k: v for k, v in adapted.meta.items() if k != "fingerprint"}  # other weights than either network's
    G.meta.update(adapted_name=str(shown), base_name=base.meta.get("asset") or base.meta.get("source"),
                  adapted_note=note)  # fmt: skip
    if G.meta.get("domain") is None and base.meta.get("domain") is not None:
        G.meta["domain"] = base.meta["domain"]
    return G.to(base.device)


def load_adapted(
    name_or_path: str | Path | Generator,
    base: Generator,
    cache: str | Path | None = None,
    offline: bool | None = None,
) -> Generator:
    """:func:`compose` of the adapted generator ``name_or_path`` (a catalogue name such as ``nada:pixar``, a trained
    run's ``generator.safetensors``, any generator file, or a loaded :class:`Generator`) with ``base``, on
    ``base``'s device. Incompatible networks are refused in one line."""
    if isinstance(name_or_path, Generator):
        return compose(name_or_path, base)
    from .hub.generators import load_generator

    adapted = load_generator(name_or_path, device=base.device, cache=cache, offline=offline)
    return compose(adapted, base, str(name_or_path))


def recorded_base(adapted: Generator) -> str | None:
    """The catalogue name of the base ``adapted`` records (a published model's, or a run adapted from a catalogue
    generator), else None."""
    record = (adapted.meta.get("adapted") or {}).get("base") or {}
    name = record.get("name")
    return name if isinstance(name, str) and name else None


def load_pair(
    generator: str | None,
    adapted: str | None,
    device: str | torch.device | None = None,
    cache: str | Path | None = None,
    offline: bool | None = None,
) -> tuple[Generator, str, Generator | None]:
    """What ``--generator`` and ``--adapted`` name: ``(base, base name, drawing generator or None)``.

    Without ``adapted``, the generator alone. With it and no ``generator``, the base the adapted one records (a
    catalogue name); one line says to pass ``--generator`` where it records none.
    """
    from .hub.generators import load_generator

    if adapted is None:
        if not generator:
            raise UsageError("name a generator: --generator NAME|PATH|URL (see styleclip models list)")
        return load_generator(generator, device=device, cache=cache, offline=offline), generator, None
    A = load_generator(adapted, device=device, cache=cache, offline=offline)
    if not generator:
        generator = recorded_base(A)
        if generator is None:
            raise UsageError(f"{adapted} records no catalogue base generator; name its base with --generator")
    base = load_generator(generator, device=device, cache=cache, offline=offline)
    return base, generator, compose(A, base, adapted)


def summary(G: Generator) -> dict[str, Any] | None:
    """What reports record about the adapted generator that drew the pictures (None for a plain generator):
    its ``name`` (as given), ``asset``, ``file``, the ``method``, ``source``/``target`` prompts and ``steps`` it was
    adapted with, its ``base`` record and, when that base differs from the one given, a ``note``."""
    if "adapted_name" not in G.meta:
        return None
    record = G.meta.get("adapted") or {}
    out: dict[str, Any] = {"name": G.meta["adapted_name"], "asset": G.meta.get("asset"), "file": G.meta.get("source")}
    out.update({k: record[k] for k in _SUMMARY_KEYS if k in record})  # "source"/"target": the prompts
    out["base"] = record.get("base")
    if G.meta.get("adapted_note"):
        out["note"] = G.meta["adapted_note"]
    return out


def adapted_codes(base: Generator, adapted: Generator, codes):
    """``codes`` (:class:`~styleclip.latents.Codes` made with ``base``) as codes of ``adapted``: W+ as they are (the
    mapping network, hence W and W+, is shared), StyleSpace edits as ``adapted.styles(ws) + (codes.styles -
    base.styles(ws))``: the adapted generator's own affines give its styles, the base's edit Δs is carried over."""
    from .latents import Codes

    if codes.styles is None:
        return codes
    own, theirs = adapted.styles(codes.ws), base.styles(codes.ws)
    return Codes(codes.ws, {k: own[k] + (codes.styles[k] - theirs[k]) for k in codes.styles})


def draw_adapted(base: Generator, adapted: Generator, codes, **kwargs) -> torch.Tensor:
    """``codes`` (made with ``base``) drawn by ``adapted``: ``[N, C, R, R]`` in about ``[-1, 1]`` (``kwargs`` as
    :meth:`~styleclip.nets.stylegan2.Generator.synthesize`)."""
    return adapted_codes(base, adapted, codes).image(adapted, **kwargs)
