"""``styleclip video``: edit a clip with words; the face keeps its edit from the first frame to the last."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from ..errors import UsageError
from ..guidance.clip import DEFAULT_CLIP
from ..utils.files import check_outdir, refuse_earlier_results
from .options import add_precision_argument

NAME = "video"
HELP = "edit a video: every frame aligned, inverted, edited alike and stitched back (sound kept)"
OUTPUTS = ("edited.mp4", "comparison.mp4", "report.json")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..video.frames import MAX_FRAMES
    from ..video.pipeline import INVERSIONS, PTI_EPOCHS
    from ..video.track import CENTER_SIGMA, XY_SIGMA

    p.add_argument("video", type=Path, help="the clip (MP4, MOV, WebM, ...; at most 4K)")
    p.add_argument("--generator", required=True, help="model name (styleclip models list), path or URL")
    edit = p.add_argument_group("the edit (one of)")
    edit.add_argument("--target", help="global direction: what the edit should show, e.g. 'a smiling face'")
    edit.add_argument("--neutral", help="global direction: the same without the change, e.g. 'a face'")
    edit.add_argument("--alpha", type=float, default=3.0, help="global direction strength (3)")
    edit.add_argument("--beta", type=float, default=0.15, help="global direction disentanglement (0.15)")
    edit.add_argument("--relevance", help="relevance matrix file or catalogue name (default: official or precomputed)")
    edit.add_argument("--samples", type=int, default=100_000, help="latents for the style statistics (100000)")
    edit.add_argument("--direction", type=Path, metavar="FILE",
                      help="a global direction saved by styleclip directions apply (delta.npz), at --alpha")  # fmt: skip
    edit.add_argument("--mapper", help="a trained latent mapper (name or file)")
    edit.add_argument("--strength", type=float, default=None, help="mapper strength (default: the mapper's)")
    edit.add_argument("--prompt", help="latent optimisation: one change for the whole clip, fitted on key frames")
    edit.add_argument("--steps", type=int, default=100, help="--prompt: optimisation steps (100)")
    edit.add_argument("--l2", type=float, default=0.008, help="--prompt: λ_L2 on the shared change (0.008)")
    edit.add_argument("--id-weight", type=float, default=None, help="--prompt: λ_ID (0.005 for faces, else 0)")
    edit.add_argument("--lr", type=float, default=0.1, help="--prompt: learning rate (0.1)")
    edit.add_argument("--space", choices=["w+", "s"], default="w+", help="--prompt: the change's space (w+)")
    edit.add_argument("--key-frames", type=int, default=4,
                      help="--prompt: frames the change is fitted on, evenly spaced (4)")  # fmt: skip
    inv = p.add_argument_group("inversion and alignment")
    inv.add_argument("--method", choices=INVERSIONS, default="auto",
                     help="how frames are inverted (auto: the most faithful encoder the catalogue knows)")  # fmt: skip
    inv.add_argument("--encoder", help="encoder name or path (with --method hyperstyle: its W encoder)")
    inv.add_argument("--hyperstyle", metavar="NAME|FILE", help="HyperStyle model (default: the catalogue's)")
    inv.add_argument("--invert-steps", type=int, default=None, help="ReStyle steps or HyperStyle passes (5)")
    inv.add_argument("--pti", action="store_true",
                     help="tune one copy of the generator on every frame's pivot (STIT's recipe; not with HyperStyle)")  # fmt: skip
    inv.add_argument("--pti-steps", type=int, default=PTI_EPOCHS,
                     help=f"--pti: epochs over the frames, one step per frame each ({PTI_EPOCHS}, STIT's README)")  # fmt: skip
    inv.add_argument("--parser", metavar="NAME|FILE", default=None,
                     help="face parser for STIT's stitching mask (face-parsing:bisenet); default: a feathered square")  # fmt: skip
    inv.add_argument("--stitch-tuning", action="store_true",
                     help="STIT's stitching tuning: per frame, a copy of the generator tuned so that the edited face "
                          "meets the footage around it (the --parser's border ring, else the feathered square's)")  # fmt: skip
    inv.add_argument("--stitch-steps", type=int, default=100,
                     help="--stitch-tuning: Adam steps per frame (100, STIT's)")  # fmt: skip
    inv.add_argument("--border-loss-threshold", type=float, default=None,
                     help="--stitch-tuning: stop a frame once its border loss is below this (STIT: 0.005; off)")  # fmt: skip
    inv.add_argument("--lpips", default="vgg", metavar="vgg|alex|off|FILE", help="--pti: perceptual distance (vgg)")
    inv.add_argument("--align", choices=["auto", "face", "center"], default="auto",
                     help="face: landmarks in every frame; center: the frame's centre square (auto: face generators "
                          "align faces)")  # fmt: skip
    inv.add_argument("--center-sigma", type=float, default=CENTER_SIGMA,
                     help=f"smoothing of the crop's centre over time, in frames ({CENTER_SIGMA:g}, STIT's)")  # fmt: skip
    inv.add_argument("--xy-sigma", type=float, default=XY_SIGMA,
                     help=f"smoothing of the crop's size and angle over time, in frames ({XY_SIGMA:g}, STIT's)")  # fmt: skip
    p.add_argument("--max-frames", type=int, default=MAX_FRAMES, help=f"refuse longer clips ({MAX_FRAMES})")
    p.add_argument("--batch-size", type=int, default=8, help="frames per inversion pass (8)")
    p.add_argument("--clip", default=DEFAULT_CLIP, help=f"CLIP model for directions and the report ({DEFAULT_CLIP})")
    p.add_argument("--outdir", type=Path, required=True)
    p.add_argument("--overwrite", action="store_true", help="start again, replacing an earlier run in --outdir")
    add_precision_argument(p)
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.add_argument("--cache", type=Path, default=None, help="model cache folder (default $STYLECLIP_HOME)")
    p.add_argument("--offline", action="store_true", default=None, help="never download; use the cache only")


def run(args: argparse.Namespace) -> int:
    from ..guidance.clip import load_clip
    from ..hub.generators import load_generator
    from ..utils.devices import resolve_device
    from ..utils.precision import computing_in, resolve_precision
    from ..video import edit_video
    from ..video.frames import probe

    direction = args.target is not None or args.neutral is not None
    given = direction + (args.mapper is not None) + (args.prompt is not None) + (args.direction is not None)
    if given != 1:
        raise UsageError(
            "give one edit: --neutral and --target (a global direction), --direction FILE, --prompt, or --mapper"
        )
    if args.pti and (args.method == "hyperstyle" or args.hyperstyle is not None):
        from ..inversion.invert import PTI_WITH_HYPERSTYLE

        raise UsageError(PTI_WITH_HYPERSTYLE)
    if args.prompt is not None:  # checked before any model loads
        from ..edits.shared_delta import check_settings

        check_settings(args.prompt, args.space, args.steps, args.key_frames, args.lr, args.l2, args.id_weight)
    if direction and not (args.target and args.neutral):
        raise UsageError("a global direction needs both texts: --neutral 'a face' --target 'a smiling face'")
    if args.stitch_tuning:  # checked before any model loads
        from ..video.stitch_tuning import tuning_settings

        tuning_settings(args.stitch_steps, threshold=args.border_loss_threshold)
    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError("--max-frames must be at least 1")
    check_outdir(args.outdir)
    if args.overwrite:
        work = args.outdir / "work"
        if work.is_symlink():
            work.unlink()
        elif work.is_dir():
            shutil.rmtree(work)
    else:
        refuse_earlier_results(args.outdir, OUTPUTS, overwrite=False)
    probe(args.video, args.max_frames)  # a bad file or a too long clip is said before any model loads
    device = resolve_device(args.device)
    G = load_generator(args.generator, device=device, cache=args.cache, offline=args.offline)
    parser = None
    if args.parser is not None:  # loaded before minutes of inversion, so that a bad file is said first
        from ..video.masks import load_face_parser

        parser = load_face_parser(args.parser, device=device, cache=args.cache, offline=args.offline)
    guide = load_clip(args.clip, device=device)
    precision = resolve_precision(args.precision, device)
    with computing_in(precision):
        edit, prompt = _edit(args, G, guide)
        identity = (lambda: _optional_identity(device)) if G.meta.get("domain") == "face" else None
        result = edit_video(
            args.video, G, edit, args.outdir, method=args.method, encoder=args.encoder, hyperstyle=args.hyperstyle,
            invert_steps=args.invert_steps, pti=args.pti, pti_steps=args.pti_steps, lpips=args.lpips,
            batch_size=args.batch_size, align=args.align,
            center_sigma=args.center_sigma, xy_sigma=args.xy_sigma, max_frames=args.max_frames, guide=guide,
            prompt=prompt, identity=identity, parser=parser, stitch_tuning=args.stitch_tuning,
            stitch_steps=args.stitch_steps, border_loss_threshold=args.border_loss_threshold,
        )  # fmt: skip
    if os.environ.get("RANK", "0") != "0":  # under torchrun: process 0 stitched the clip and says so
        return 0
    if result.unedited:
        shown = ", ".join(map(str, result.unedited[:20])) + (" ..." if len(result.unedited) > 20 else "")
        print(f"styleclip video: no face in {len(result.unedited)} frame(s), left as they were: {shown}",
              file=sys.stderr)  # fmt: skip
    flicker = result.metrics.get("flicker") or {}
    print(f"wrote {result.edited}, {result.comparison} and {result.report} ({result.frames} frames; frame-to-frame "
          f"change of the face {flicker.get('edited')} against the source's {flicker.get('source')})")  # fmt: skip
    return 0


def _edit(args, G, guide):
    if args.direction is not None:
        return saved_direction(args.direction, G).at(args.alpha), None
    if args.prompt is not None:
        from ..edits.shared_delta import SharedDeltaEdit

        edit = SharedDeltaEdit(args.prompt, guide, space=args.space, steps=args.steps, lr=args.lr,
                               l2_weight=args.l2, id_weight=args.id_weight, key_frames=args.key_frames)  # fmt: skip
        return edit, args.prompt
    if args.mapper is not None:
        from ..edits.mapper import MapperEdit
        from ..hub.mappers import load_mapper

        mapper = load_mapper(args.mapper, generator=G, device=G.device, cache=args.cache, offline=args.offline)
        return MapperEdit(mapper, args.strength), mapper.meta.get("prompt")
    from ..edits.global_direction import global_direction
    from ..edits.relevance_files import find_relevance
    from ..stylespace import style_statistics

    matrix = find_relevance(G, guide.name, args.relevance, args.cache, args.offline, generator=args.generator)
    stats = style_statistics(G, samples=args.samples, cache=args.cache)
    direction = global_direction(guide, args.target, args.neutral, matrix, stats, beta=args.beta,
                                 domain=G.meta.get("domain"))  # fmt: skip
    return direction.at(args.alpha), args.target


def _optional_identity(device):
    from ..errors import StyleclipError
    from ..guidance.identity import load_identity_loss

    try:
        return load_identity_loss(device=device)
    except StyleclipError as exc:
        print(f"styleclip video: identity per frame left out ({exc})", file=sys.stderr)
        return None


MAX_DIRECTION_BYTES = 64 << 20  # a direction is one float per style channel: a few hundred kB at 1024 px


def saved_direction(path: Path, G):
    """A global direction saved by ``directions apply`` (``delta.npz``: ``{layer: [C]}`` in std units), checked
    against ``G``'s style layers before use. Errors are one line naming the file."""
    import numpy as np
    import torch

    from ..edits.global_direction import GlobalDirection
    from ..stylespace import StyleLayout

    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(f"--direction {str(path)[:200]}: no such file (styleclip directions apply writes delta.npz)")
    if path.stat().st_size > MAX_DIRECTION_BYTES:
        raise UsageError(f"--direction {path}: {path.stat().st_size} bytes is no saved direction (delta.npz)")
    widths = {layer.name: layer.channels for layer in G.style_layers}
    try:
        with np.load(path, allow_pickle=False) as arrays:
            delta = {k: np.asarray(arrays[k], dtype=np.float32).reshape(-1) for k in arrays.files}
    except (ValueError, OSError, EOFError) as exc:
        raise UsageError(f"--direction {path}: not a saved direction ({type(exc).__name__}); use delta.npz") from None
    wrong = [k for k, v in delta.items() if widths.get(k) != v.shape[0] or not np.isfinite(v).all()]
    if not delta or wrong:
        raise UsageError(f"--direction {path}: its layers do not fit this generator's ({', '.join(wrong[:3])}): "
                         "use the --generator it was made for")  # fmt: skip
    names = [layer.name for layer in G.style_layers if layer.name in delta]
    layout = StyleLayout(tuple(names), tuple(widths[n] for n in names))
    flat = torch.from_numpy(np.concatenate([delta[n] for n in names])).to(G.device)
    return GlobalDirection(layout, flat, torch.zeros_like(flat), 0.0, f"{path.name} (a saved direction)", "")
