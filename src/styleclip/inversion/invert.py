"""``styleclip.invert``: a user's photo -> a latent of the generator (+ reconstruction and its quality).

Steps: read the photo robustly, crop it the way the generator was trained (FFHQ alignment for faces, a centre
crop or a given box otherwise), then one of HyperStyle (per-photo offsets of the generator's weights), e4e,
ReStyle-e4e (the encoders the catalogue pairs with the generator) or optimisation projection (any generator; may
start from an encoder's answer), optionally followed by pivotal tuning (PTI) of a copy of the generator around the
found latent. ``method="auto"`` picks the most faithful of those the catalogue knows for the generator.
"""

from __future__ import annotations

import copy
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from ..errors import UsageError
from ..guidance import perceptual
from ..guidance.identity import load_identity_loss
from ..guidance.perceptual import LPIPS
from ..io.photos import center_crop, crop_box, load_photo, to_tensor
from ..nets.stylegan2 import Generator
from ..nets.stylegan3 import Generator3
from ..utils.compiling import compiling
from ..utils.precision import computing_in, resolve_precision
from ..utils.precision import describe as describe_precision
from .encoders import Encoder, encode, load_encoder
from .projection import ProjectionConfig, _lpips_to, project, psnr, use_noise

METHODS = ("auto", "hyperstyle", "restyle", "e4e", "project")
ALIGNS = ("auto", "face", "center", "none")


@dataclass
class Inversion:
    """``ws``: W+ ``[1, num_ws, w_dim]``; ``target``/``reconstruction``: ``[1, 3, R, R]`` in ``[-1, 1]``;
    ``generator``: the generator to edit with (a tuned copy after PTI); ``noise``: projection noise maps, if
    optimised; ``metrics``: LPIPS, PSNR (dB) and, for faces, ArcFace identity similarity."""

    ws: torch.Tensor
    target: torch.Tensor
    reconstruction: torch.Tensor
    generator: Generator
    method: str
    aligned: Image.Image
    distance: str  # what projection and PTI minimised: 'LPIPS-VGG + pixels', 'pixels (LPIPS off)', ...
    noise: dict[str, torch.Tensor] | None = None
    offsets: dict[str, torch.Tensor] | None = None  # HyperStyle's {layer: [1, out, in, k, k]}; W' = W * (1 + Δ)
    why: str = ""  # how the method was chosen ('auto' says which and why)
    steps: list[torch.Tensor] = field(default_factory=list)
    metrics: dict[str, float | None] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    precision: dict[str, str] = field(default_factory=dict)  # requested, used, why
    compile: dict = field(default_factory=dict)  # requested, used, why (styleclip.utils.compiling)


def prepare_photo(
    photo: str | Path | Image.Image,
    size: int,
    align: str = "auto",
    domain: str | None = None,
    face: int | None = None,
    box: tuple[int, int, int, int] | None = None,
) -> Image.Image:
    """The photo as the generator saw its training data: ``size`` x ``size`` RGB.

    ``align``: 'face' (FFHQ alignment), 'center' (centre crop), 'none' (resize as it is: already aligned),
    'auto' (face for face generators, centre otherwise). A ``box`` overrides it.
    """
    if align not in ALIGNS:
        raise UsageError(f"align must be one of {', '.join(ALIGNS)}, got {align!r}")
    name = str(photo) if not isinstance(photo, Image.Image) else "the photo"
    img = load_photo(photo) if not isinstance(photo, Image.Image) else photo.convert("RGB")
    if box is not None:
        return crop_box(img, box, size)
    mode = ("face" if domain == "face" else "center") if align == "auto" else align
    if mode == "face":
        from ..io.align import align as align_face

        return align_face(img, size, face=face, name=name)
    if mode == "center":
        return center_crop(img, size)
    return img.resize((size, size), Image.Resampling.LANCZOS) if img.size != (size, size) else img


def default_encoder(G: Generator) -> str | None:
    """The catalogue's encoder for this generator (``e4e:ffhq`` for FFHQ, ReStyle for AFHQ Wild), if any."""
    return (G.meta.get("defaults") or {}).get("encoder")


def invert(
    photo: str | Path | Image.Image,
    G: Generator,
    method: str = "auto",
    encoder: Encoder | str | Path | None = None,
    lpips: LPIPS | str | None = None,
    steps: int | None = None,
    hyperstyle=None,
    pti: bool = False,
    pti_steps: int = 350,
    pti_stop: float = 0.06,
    align: str = "auto",
    face: int | None = None,
    box: tuple[int, int, int, int] | None = None,
    projection: ProjectionConfig | None = None,
    identity=None,
    progress: bool = True,
    precision: str = "auto",
    compile: bool | None = None,
) -> Inversion:
    """Invert a photo into ``G``.

    Args:
        photo: a path or a PIL image; prepared by :func:`prepare_photo` (``align``, ``face``, ``box``).
        method: 'hyperstyle', 'restyle', 'e4e', 'project', or 'auto': the most faithful inversion the catalogue
            knows for ``G`` (HyperStyle > ReStyle > e4e > projection; see :func:`choose_method`), or the kind of
            the ``encoder`` given; ``Inversion.why`` says which and why.
        encoder: a loaded :class:`Encoder`, or its name/path (default: the catalogue's for ``G``). With
            'project', an encoder given here provides the starting point; with 'hyperstyle', the W encoder.
        lpips: perceptual distance for projection, PTI and the metrics: a loaded LPIPS, 'vgg' (LPIPS-VGG, downloaded
            once; also None), 'alex', a path to LPIPS-VGG's calibration layers, or 'off' (projection and PTI on pixels
            alone, no LPIPS metric: for machines that cannot download VGG16).
        steps: ReStyle refinement steps (5), HyperStyle passes (5) or projection steps (1000).
        hyperstyle: a loaded :class:`~styleclip.inversion.hyperstyle.HyperStyle` model or its name/path (default:
            the catalogue's for ``G``).
        pti: fine-tune a copy of the generator around the latent (pivotal tuning) for a faithful reconstruction,
            for up to ``pti_steps`` steps or until LPIPS falls below ``pti_stop``.
        identity: an :class:`~styleclip.guidance.identity.IdentityLoss` for the face-identity metric.
        precision: the networks' arithmetic ('auto', 'fp32', 'bf16', 'fp16'; :mod:`styleclip.utils.precision`);
            latents, noise maps and the optimisers' state stay fp32.
        compile: ``torch.compile`` the generator for projection and PTI (:mod:`styleclip.utils.compiling`); None = as
            the enclosing job says.

    Returns:
        An :class:`Inversion`: ``ws`` W+ ``[1, num_ws, w_dim]``, the prepared photo ``target`` and the
        ``reconstruction`` ``[1, 3, R, R]`` in ``[-1, 1]``, the generator to edit with, and the metrics.
    """
    if method not in METHODS:
        raise UsageError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if pti and not (isinstance(pti_steps, int) and 1 <= pti_steps <= 100_000):
        raise UsageError(f"pivotal tuning takes 1 to 100000 steps, got {pti_steps!r}")
    if pti and method == "hyperstyle":  # said before a 2 GB model loads and runs, not after
        raise UsageError(PTI_WITH_HYPERSTYLE)
    used = resolve_precision(precision, G.device)
    encoder_based = method in ("e4e", "restyle", "hyperstyle") or (method == "auto" and bool(inversions_for(G)))
    chosen = (precision or "auto").lower() == "auto" and not os.environ.get("STYLECLIP_PRECISION")
    keep_fp32 = chosen and encoder_based and used != "fp32"
    if keep_fp32:
        # An encoder's answer is a few milliseconds of work that bf16 hardly speeds up, while ReStyle feeds each
        # pass's rounded reconstruction back in: in bf16 the five passes ended 5 PNG levels from fp32's.
        used = "fp32"
    with computing_in(used), compiling(compile) as compiled:
        inv = _invert(photo, G, method, encoder, hyperstyle, lpips, steps, pti, pti_steps, pti_stop, align, face,
                      box, projection, identity, progress)  # fmt: skip
    inv.precision = describe_precision(precision, used, G.device)
    if keep_fp32:
        inv.precision["why"] = "auto keeps encoder inversion in fp32 (bf16's rounding compounds over its passes)"
    inv.compile = compiled.report()
    return inv


def inversions_for(G: Generator) -> dict[str, str]:
    """``{method: catalogue name}`` of the inversions the catalogue knows for ``G`` ('hyperstyle', 'restyle',
    'e4e'), from the generator's catalogue defaults."""
    defaults = G.meta.get("defaults") or {}
    known = dict(defaults.get("inversions") or {})
    encoder = defaults.get("encoder")
    if encoder and encoder not in known.values():
        known.setdefault("restyle" if "restyle" in str(encoder) else "e4e", encoder)
    return {m: known[m] for m in PREFERENCE if m in known}


PREFERENCE = ("hyperstyle", "restyle", "e4e")  # the most faithful first (HyperStyle's paper, Table 1)
HYPERSTYLE_MEMORY = 6 * 2**30  # HyperStyle's FFHQ model (2.3 GB of weights) with its W encoder and a 1024-px pass


PTI_WITH_HYPERSTYLE = "HyperStyle already tunes the generator's weights to the photo: drop --pti"


def choose_method(G: Generator, encoder=None, hyperstyle=None, pti: bool = False) -> tuple[str, str]:
    """``(method, why)`` for ``method='auto'``: the kind of the encoder or model given, else the most faithful
    inversion the catalogue knows for ``G`` that fits the memory this machine has free, else projection. With
    ``pti`` (which tunes the weights itself) HyperStyle is passed over unless a HyperStyle model was given."""
    known = inversions_for(G)
    passed_over = pti and known.pop("hyperstyle", None) is not None and hyperstyle is None
    if hyperstyle is not None and getattr(hyperstyle, "name", hyperstyle) != known.get("hyperstyle"):
        return "hyperstyle", "a HyperStyle model was given"
    if isinstance(encoder, Encoder):
        return encoder.kind if encoder.kind != "w" else "e4e", f"the {encoder.kind} encoder given"
    if encoder is not None:
        return "encoder", "the encoder given"
    if not known and passed_over:
        return "project", "--pti tunes the weights as HyperStyle would, and no encoder is known, so projection"
    if not known:
        return "project", "the catalogue pairs no encoder with this generator, so projection (any generator)"
    first = next(iter(known))
    if first == "hyperstyle":
        free = _free_memory(G.device)
        if free is not None and free < HYPERSTYLE_MEMORY and len(known) > 1:
            second = list(known)[1]
            return second, (
                f"HyperStyle ({known[first]}) needs about {HYPERSTYLE_MEMORY / 2**30:.0f} GiB and this device has "
                f"{free / 2**30:.1f} GiB free, so the next most faithful: {known[second]}"
            )
    others = ", ".join(known[m] for m in known if m != first)
    tail = f" (also known: {others})" if others else ""
    return first, f"the most faithful inversion the catalogue knows for this generator: {known[first]}{tail}"


def _free_memory(device: torch.device) -> int | None:
    """Bytes free on ``device`` (CUDA: the driver's count; CPU: what the kernel can give); None where unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu":
        from ..hub.formats.budget import available_memory

        return available_memory()
    return None


def _invert(photo, G, method, encoder, hyperstyle, lpips, steps, pti, pti_steps, pti_stop, align, face, box,
            projection, identity, progress) -> Inversion:  # fmt: skip
    t0 = time.perf_counter()
    domain = G.meta.get("domain")
    aligned = prepare_photo(photo, G.img_resolution, align, domain, face, box)
    target = to_tensor(aligned, G.device)
    name = encoder if isinstance(encoder, str | Path) else None
    why = f"--method {method}"
    if method == "auto":
        method, why = choose_method(G, encoder, hyperstyle, pti)
        why = f"auto: {why}"
        if pti and method == "hyperstyle":
            raise UsageError(PTI_WITH_HYPERSTYLE)
    known = inversions_for(G)
    model = None
    if method == "hyperstyle":
        model, encoder = hyperstyle_and_encoder(G, hyperstyle, encoder, known)
    elif method in ("e4e", "restyle", "encoder") or (method == "project" and encoder is not None):
        if not isinstance(encoder, Encoder):
            name = name or known.get(method) or default_encoder(G)
            if name is None:
                raise UsageError("no encoder is known for this generator: pass --encoder or use --method project")
            encoder = load_encoder(name, device=G.device)
        _check_pairing(encoder, G)
        if method != "project":
            method = encoder.kind
    lpips, distance = distance_model(lpips, G.device, needed=method == "project" or pti)
    if identity is None and domain == "face":
        identity = _optional(lambda: load_identity_loss(device=G.device), False, "the ArcFace identity metric")

    noise, history, all_steps, offsets = None, [], [], None
    generator = G
    if model is not None:
        from .hyperstyle import N_ITERS, hyperstyle_invert, offset_generator

        result = hyperstyle_invert(model, encoder, G, target, n_iters=steps or N_ITERS)
        ws, offsets, all_steps = result.ws, result.offsets[-1], [result.ws] * len(result.offsets)
        generator = offset_generator(G, offsets)
    elif method in ("e4e", "restyle"):
        all_steps = encode(encoder, G, target, steps=steps)
        ws = all_steps[-1]
    else:
        init = encode(encoder, G, target)[-1] if isinstance(encoder, Encoder) else None
        cfg = projection or ProjectionConfig(steps=steps or 1000, space="w+" if init is not None else "w")
        result = project(G, target, lpips, cfg, init=init, progress=progress)
        ws, noise, history = result.ws, result.noise, result.history
    if pti:
        if offsets is not None:
            raise UsageError(PTI_WITH_HYPERSTYLE)
        generator = pivotal_tuning(
            G, ws, target, lpips, steps=pti_steps, stop_lpips=pti_stop, noise=noise, progress=progress
        )
    with torch.no_grad(), use_noise(generator, noise):
        recon = generator.synthesize(ws)
    seconds = time.perf_counter() - t0  # the inversion's own time: the metrics below are the report's, not its cost
    metrics = reconstruction_metrics(recon, target, lpips, identity if domain == "face" else None)
    return Inversion(
        ws=ws.detach(), target=target, reconstruction=recon, generator=generator,
        method=method + ("+pti" if pti else ""), aligned=aligned, distance=distance, noise=noise, offsets=offsets,
        why=why, steps=[s.detach() for s in all_steps], metrics=metrics, history=history,
        seconds=seconds,
    )  # fmt: skip


def hyperstyle_and_encoder(G: Generator, hyperstyle, encoder, known: dict[str, str]):
    """The HyperStyle model and its W encoder: those given, else the catalogue's for ``G`` (the model's catalogue
    entry names its W encoder)."""
    from .hyperstyle import HyperStyle, load_hyperstyle

    if isinstance(G, Generator3):
        raise UsageError("HyperStyle inverts into StyleGAN2 generators; for StyleGAN3 use --method project")
    if not isinstance(hyperstyle, HyperStyle):
        name = hyperstyle or known.get("hyperstyle")
        if name is None:
            raise UsageError(
                "no HyperStyle model is known for this generator: pass --hyperstyle FILE or use another --method"
            )
        hyperstyle = load_hyperstyle(name, device=G.device, w_encoder=encoder)
        encoder = hyperstyle.w_encoder  # the one given, loaded once there (an IR-SE50 is a second large file)
    if encoder is None:
        encoder = hyperstyle.w_encoder
    if not isinstance(encoder, Encoder):
        if encoder is None:
            raise UsageError(
                "HyperStyle starts from its W encoder's codes: pass it with --encoder (faces_w_encoder.pt)"
            )
        encoder = load_encoder(encoder, device=G.device)
    if not _same_network(hyperstyle.generator, G):
        warnings.warn(
            "HyperStyle's own generator differs from the one given; its offsets may reconstruct the photo poorly "
            "there (use the generator it was trained with)",
            stacklevel=4,
        )
    return hyperstyle, encoder.to(G.device)


def _check_pairing(encoder: Encoder, G: Generator) -> None:
    """Warn when the encoder was trained with another network than the one the edit will use."""
    if encoder.generator is not None and not _same_network(encoder.generator, G):
        warnings.warn(
            "the encoder's own generator differs from the one given; its latents may reconstruct the photo poorly "
            "there (use the generator it was trained with, or method='project')",
            stacklevel=3,
        )


def _same_network(a: Generator, b: Generator) -> bool:
    """Same architecture and weights up to the rounding that converting between file formats leaves. The truncation
    centre ``w_avg`` is left out: inversions draw W+ codes, never truncated ones (and checkpoints that carry a
    generator often store their own average latent as it)."""
    if a.config != b.config:
        return False
    sb = b.state_dict()
    return all(
        k in sb
        and v.shape == sb[k].shape
        and torch.allclose(v.float().cpu(), sb[k].float().cpu(), rtol=1e-4, atol=1e-5)
        for k, v in a.state_dict().items()
        if k != "mapping.w_avg"
    )


LPIPS_CHOICES = ("vgg", "alex", "off")


def distance_model(choice: LPIPS | str | Path | None, device: torch.device, needed: bool) -> tuple[LPIPS | None, str]:
    """The LPIPS model for ``choice`` (see :func:`invert`) and how the report names the distance."""
    if isinstance(choice, LPIPS):
        return choice.to(device), "LPIPS + pixels"
    if choice == "off":
        return None, "pixels (LPIPS off)"
    if choice is None or choice in LPIPS_CHOICES:
        net = choice or "vgg"
        # looked up at call time, so that tests can stand a tiny LPIPS in for the 528 MB download
        model = _optional(lambda: perceptual.load_lpips(net, device=device), needed, "LPIPS")
    else:
        path = Path(choice).expanduser()
        if not path.is_file():
            raise UsageError(
                f"--lpips {str(choice)[:200]}: no such file; use vgg, alex, off or an LPIPS-VGG weights file"
            )
        model = perceptual.load_lpips("vgg", lin=path, device=device)
        net = "vgg"
    if model is None:
        return None, "pixels (LPIPS unavailable)"
    return model.to(device), f"LPIPS-{net.upper()} + pixels"


def _optional(load, needed: bool, what: str):
    """Load a model the method needs (errors propagate) or one only a metric needs (skipped, with a note)."""
    from ..errors import StyleclipError

    try:
        return load()
    except StyleclipError as exc:
        if needed:
            raise
        warnings.warn(f"{what} not available ({exc}); that metric is left out", stacklevel=3)
        return None


@torch.no_grad()
def reconstruction_metrics(recon: torch.Tensor, target: torch.Tensor, lpips: LPIPS | None, identity=None) -> dict:
    """LPIPS (lower is closer), PSNR in dB, MS-SSIM, and ArcFace cosine similarity for faces (None where not
    measured)."""
    from .quality import ms_ssim

    return {
        "lpips": float(lpips(recon, target)[0]) if lpips is not None else None,
        "psnr": psnr(recon, target),
        "ms_ssim": float(ms_ssim(recon.float(), target.float())[0]),
        "identity": float((identity.embed(recon) * identity.embed(target)).sum()) if identity is not None else None,
    }


def pivotal_tuning(
    G: Generator,
    ws: torch.Tensor,
    target: torch.Tensor,
    lpips: LPIPS | None,
    steps: int = 350,
    lr: float = 3e-4,
    l2_weight: float = 1.0,
    lpips_weight: float = 1.0,
    stop_lpips: float = 0.06,
    noise: dict | None = None,
    progress: bool = True,
) -> Generator:
    """PTI (Roich et al. 2021): fine-tune a copy of the synthesis network so that the pivot ``ws`` draws the
    photo (L2 + LPIPS, Adam lr 3e-4, up to 350 steps, stopping once LPIPS < 0.06). The latent stays where the
    edits work; the original generator is untouched."""
    if steps < 1:
        raise UsageError("PTI needs at least 1 step")
    tuned = copy.deepcopy(G)
    tuned.synthesis.requires_grad_(True)
    opt = torch.optim.Adam(tuned.synthesis.parameters(), lr=lr)
    pivot = ws.detach()
    with torch.no_grad():  # the photo's LPIPS features never change: once, not every step
        target_feats = lpips.taps(target) if lpips is not None else None
    bar = tqdm(total=steps, desc="pivotal tuning", unit="step", disable=not progress or None, leave=False)
    try:
        with use_noise(tuned, noise):
            for _ in range(steps):
                img = tuned.synthesize(pivot, modulation="fused")  # weights get gradients: the fused path is the one
                dist = _lpips_to(lpips, img, target_feats) if lpips is not None else img.new_zeros(())
                if lpips is not None and dist.item() < stop_lpips:
                    break
                loss = l2_weight * F.mse_loss(img, target) + lpips_weight * dist
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                bar.update(1)
    except KeyboardInterrupt:
        pass
    finally:
        bar.close()
    # A new network: the original's cached fingerprint (and the statistics keyed by it) must not carry over.
    tuned.meta = {k: v for k, v in G.meta.items() if k != "fingerprint"} | {"pti": True}
    return tuned.eval().requires_grad_(False)
