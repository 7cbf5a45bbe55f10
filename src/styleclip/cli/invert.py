"""``styleclip invert``: a photo into a generator's latent space, with the reconstruction and its quality."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import UsageError
from ..inversion.invert import ALIGNS, METHODS
from .options import add_compile_argument, add_precision_argument

NAME = "invert"

# What an inversion writes (also as the inversion/ folder of edit, directions apply and mapper apply).
OUTPUTS = ("aligned.png", "reconstruction.png", "latent.npy", "noise.npz", "generator_pti.safetensors",
           "offsets.safetensors", "report.json")  # fmt: skip
HELP = "invert a photo into a generator (HyperStyle, ReStyle, e4e or projection; optional pivotal tuning)"


def add_photo_arguments(p, steps_flag: str = "--invert-steps") -> None:
    """The options every command that takes ``--image`` shares (``edit`` keeps ``--steps`` for its own loop)."""
    p.add_argument("--method", choices=METHODS, default="auto",
                   help="hyperstyle, restyle, e4e, project, or auto: the most faithful the catalogue knows for the "
                        "generator (HyperStyle > ReStyle > e4e), else projection")  # fmt: skip
    p.add_argument("--encoder", help="encoder name or path (default: the one the catalogue pairs with the generator; "
                                     "with --method hyperstyle, its W encoder)")  # fmt: skip
    p.add_argument("--hyperstyle", metavar="NAME|FILE", help="HyperStyle model (default: the catalogue's for the "
                                                            "generator, e.g. hyperstyle:ffhq)")  # fmt: skip
    flags = [steps_flag] + (["--invert-steps"] if steps_flag != "--invert-steps" else [])
    p.add_argument(
        *flags, dest="invert_steps", type=int, default=None,
        help="ReStyle steps (5), HyperStyle passes (5) or projection steps (1000)",
    )  # fmt: skip
    p.add_argument("--pti", action="store_true", help="pivotal tuning: fine-tune a copy of the generator to the photo")
    p.add_argument("--pti-steps", type=int, default=350, help="at most this many tuning steps (350, as PTI)")
    p.add_argument("--lpips", default="vgg", metavar="vgg|alex|off|FILE",
                   help="the distance projection and PTI minimise: LPIPS-VGG (vgg, downloaded once), alex, "
                        "off (pixels alone: no download), or LPIPS-VGG's weights file")  # fmt: skip
    p.add_argument("--align", choices=ALIGNS, default="auto",
                   help="face (FFHQ alignment), center, none (already aligned), auto (face for face generators)")  # fmt: skip
    p.add_argument("--no-align", dest="align", action="store_const", const="none", help="same as --align none")
    p.add_argument("--face", type=int, default=None, help="which face when the photo has several (0 = leftmost)")
    p.add_argument("--box", default=None, help="crop LEFT,TOP,RIGHT,BOTTOM instead of aligning")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("photo", type=Path, help="the photo (JPEG, PNG, WebP, ...)")
    p.add_argument("--generator", required=True, help="model name (styleclip models list), path or URL")
    add_photo_arguments(p, steps_flag="--steps")
    p.add_argument("--outdir", type=Path, required=True)
    p.add_argument("--overwrite", action="store_true", help="replace the results of an earlier inversion in --outdir")
    add_precision_argument(p)
    add_compile_argument(p)
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.add_argument("--cache", type=Path, default=None, help="model cache folder (default $STYLECLIP_HOME)")
    p.add_argument("--offline", action="store_true", default=None, help="never download; use the cache only")


def parse_box(text: str | None) -> tuple[int, int, int, int] | None:
    if text is None:
        return None
    try:
        box = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--box must be four integers LEFT,TOP,RIGHT,BOTTOM, got {text!r}") from None
    if len(box) != 4:
        raise UsageError(f"--box must be four integers LEFT,TOP,RIGHT,BOTTOM, got {text!r}")
    return box  # type: ignore[return-value]


def invert_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of :func:`styleclip.invert` that the shared photo options give."""
    return dict(
        method=args.method, encoder=args.encoder, hyperstyle=getattr(args, "hyperstyle", None),
        steps=args.invert_steps, pti=args.pti, pti_steps=args.pti_steps,
        lpips=getattr(args, "lpips", None), align=args.align, face=args.face, box=parse_box(args.box),
        precision=getattr(args, "precision", "auto"), compile=getattr(args, "compile", None),
    )  # fmt: skip


def invert_into(args: argparse.Namespace, G, photo: Path, outdir: Path, generator: str, adapted=None):
    """Invert ``photo`` into ``G`` with the shared photo options, say how well, and write the inversion to ``outdir``.

    Returns the photo's :class:`~styleclip.sources.Sources` (its W+ ``[1, num_ws, w_dim]`` and the generator that
    draws its edits: ``adapted`` when given)."""
    from .. import sources

    src = sources.from_photo(G, photo, adapted=adapted, **invert_options(args))
    _say_inverted(src.inversion, photo)
    write_inversion(src.inversion, outdir, photo, generator)
    return src


def _say_inverted(inv, photo: Path) -> None:
    m = inv.metrics
    parts = [f"LPIPS {m['lpips']:.3f}" if m["lpips"] is not None else None, f"PSNR {m['psnr']:.1f} dB"]
    parts.append(f"MS-SSIM {m['ms_ssim']:.3f}" if m.get("ms_ssim") is not None else None)
    parts.append(f"identity {m['identity']:.3f}" if m.get("identity") is not None else None)
    why = f" ({inv.why})" if inv.why.startswith("auto") else ""
    print(
        f"inverted {photo} with {inv.method}{why} in {inv.seconds:.1f} s: {', '.join(p for p in parts if p)}",
        file=sys.stderr,
    )


def sources_from_args(
    args: argparse.Namespace, G, generator: str, trunc: float, class_idx: int | None = None, adapted=None
):
    """The :class:`~styleclip.sources.Sources` of an editing command: ``--image`` (inverted; the inversion written to
    ``OUTDIR/inversion``), ``--latent`` or ``--seeds``, as codes of ``G``; drawn by ``adapted`` when given (the
    generator :func:`styleclip.adapted.load_pair` composed for ``--adapted``)."""
    from .. import sources
    from ..sample import parse_seeds

    if getattr(args, "offsets", None) is not None and args.latent is None:
        raise UsageError("--offsets go with the --latent they were inverted with (HyperStyle's latent.npy)")
    if args.image is not None:
        return invert_into(args, G, args.image, args.outdir / "inversion", generator, adapted=adapted)
    if args.latent is not None:
        return sources.from_latent_file(G, args.latent, adapted=adapted, offsets=getattr(args, "offsets", None))
    return sources.from_seeds(G, parse_seeds(args.seeds or "0"), trunc, class_idx, adapted=adapted)


def write_inversion(inv, outdir: Path, photo: Path, generator: str) -> None:
    """``aligned.png``, ``reconstruction.png``, ``latent.npy`` (W+ ``[1, num_ws, w_dim]``), ``noise.npz``,
    ``generator_pti.safetensors`` and HyperStyle's ``offsets.safetensors`` when the inversion has them, and
    ``report.json``, each written atomically."""
    from ..hub.generators import save_generator
    from ..io.images import save_png, to_pil
    from ..utils.files import atomic_save_arrays, atomic_write, make_folder

    make_folder(outdir)
    save_png(inv.aligned, outdir / "aligned.png", text={"styleclip:source": str(photo)})
    save_png(to_pil(inv.reconstruction)[0], outdir / "reconstruction.png", text={"styleclip:method": inv.method})
    atomic_save_arrays(outdir / "latent.npy", inv.ws.cpu().numpy())
    outputs = ["aligned.png", "reconstruction.png", "latent.npy", "report.json"]
    if inv.noise:
        atomic_save_arrays(outdir / "noise.npz", {k: v.cpu().numpy() for k, v in inv.noise.items()})
        outputs.append("noise.npz")
    if inv.method.endswith("+pti"):
        save_generator(inv.generator, outdir / "generator_pti.safetensors")
        outputs.append("generator_pti.safetensors")
    if inv.offsets is not None:
        from ..inversion.hyperstyle import save_offsets

        save_offsets(outdir / "offsets.safetensors", inv.offsets, inv.generator.meta["offsets_of"])
        outputs.append("offsets.safetensors")
    for stale in {"noise.npz", "generator_pti.safetensors", "offsets.safetensors"} - set(outputs):
        # an earlier inversion's (replaced with --overwrite) would pass for this latent's noise or tuned generator
        (outdir / stale).unlink(missing_ok=True)
    report = {
        "photo": str(photo),
        "generator": generator,
        "method": inv.method,
        "why": inv.why,
        "distance": inv.distance,
        "metrics": inv.metrics,
        "precision": inv.precision,
        "compile": inv.compile,
        "seconds": round(inv.seconds, 2),
        "outputs": outputs,
        "loss_history": inv.history,
    }
    atomic_write(outdir / "report.json", lambda tmp: tmp.write_text(json.dumps(report, indent=1)))


def run(args: argparse.Namespace) -> int:
    from ..hub.generators import load_generator
    from ..utils.files import check_outdir, refuse_earlier_results

    check_outdir(args.outdir)  # before minutes of loading and inverting, not after
    refuse_earlier_results(args.outdir, OUTPUTS, overwrite=args.overwrite)
    G = load_generator(args.generator, device=args.device, cache=args.cache, offline=args.offline)
    invert_into(args, G, args.photo, args.outdir, args.generator)
    print(f"wrote aligned.png, reconstruction.png, latent.npy and report.json to {args.outdir}")
    return 0
