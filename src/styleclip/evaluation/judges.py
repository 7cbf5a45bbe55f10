"""The optional judges of an evaluation (LPIPS, ArcFace), loaded by name or path, or left out with a note."""

from __future__ import annotations

from pathlib import Path

from ..errors import StyleclipError


def load_judges(
    lpips: str = "auto",
    identity: str = "auto",
    faces: bool = False,
    device="cpu",
    cache: str | Path | None = None,
    offline: bool | None = None,
):
    """``(lpips model or None, identity model or None, notes)``.

    ``lpips``: 'auto' (LPIPS-VGG if its weights are already in the cache; never downloads), 'off', 'vgg' / 'alex'
    (downloaded when needed), or the path of an LPIPS ``vgg.pth`` layer file. ``identity``: 'auto' (ArcFace for
    face generators, from the cache), 'off', a catalogue name or a path of ``model_ir_se50.pth``.
    """
    from ..guidance import perceptual
    from ..guidance.identity import load_identity_loss

    notes = []
    lp = None
    if lpips == "off":
        notes.append("LPIPS left out (--lpips off).")
    else:
        try:
            if lpips == "auto":
                lp = perceptual.load_lpips("vgg", device=device, cache=cache, offline=True)
            elif Path(lpips).exists():
                lp = perceptual.load_lpips("vgg", lin=lpips, device=device, cache=cache, offline=offline)
            else:
                lp = perceptual.load_lpips(lpips, device=device, cache=cache, offline=offline)
        except StyleclipError as exc:
            notes.append(
                f"LPIPS left out: {exc} (styleclip models download lpips:vgg torchvision:vgg16, or --lpips off)"
            )
    ident = None
    if identity == "off" or (identity == "auto" and not faces):
        pass
    else:
        try:
            name = "arcface:ir-se50" if identity == "auto" else identity
            ident = load_identity_loss(
                name, device=device, cache=cache, offline=True if identity == "auto" else offline
            )
        except StyleclipError as exc:
            notes.append(f"identity left out: {exc} (styleclip models download arcface, or --identity off)")
    return lp, ident, notes
