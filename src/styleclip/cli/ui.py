"""``styleclip ui``: the web UI on this machine (Gradio), over the same library the other commands use."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from ..errors import UsageError
from ..guidance.clip import DEFAULT_CLIP
from .options import add_precision_argument

NAME = "ui"
HELP = "edit in the browser: live global-direction sliders, optimisation, photos, history (needs styleclip[ui])"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generator", default="ffhq", help="model name (styleclip models list), path or URL (ffhq)")
    p.add_argument("--clip", default=DEFAULT_CLIP, help=f"CLIP model name or checkpoint path ({DEFAULT_CLIP})")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (7860)")
    p.add_argument("--concurrency", type=int, default=1, help="jobs on the device at once; the rest queue (1)")
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link (anyone can use it)")
    p.add_argument("--relevance", help="relevance matrix for global directions (default: official or precomputed)")
    p.add_argument("--samples", type=int, default=100_000, help="latents for the style statistics (100000)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload in MB (20)")
    p.add_argument(
        "--max-video-frames", type=int, default=300, help="longest clip the Video tab edits, in frames (300)"
    )
    p.add_argument("--max-megapixels", type=float, default=40.0, help="largest photo in megapixels (40)")
    p.add_argument(
        "--allow-paths", action="append", default=[], metavar="DIR",
        help="let page users name files inside DIR (e.g. in the mapper box; repeatable). By default they open only "
        "their uploads and catalogue names, never other server paths",
    )  # fmt: skip
    p.add_argument("--allow-urls", action="store_true", help="let page users name http(s) URLs for the server to "
                   "download (mappers); off by default")  # fmt: skip
    p.add_argument("--domain", help="override the generator's domain (face turns on alignment and identity)")
    add_precision_argument(p)
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.add_argument("--cache", type=Path, default=None, help="model cache folder (default $STYLECLIP_HOME)")
    p.add_argument("--offline", action="store_true", default=None, help="never download; use the cache only")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    from ..ui.app import _gradio

    _gradio()  # say how to install it before minutes of loading
    if not 0 < args.port < 65536 or args.concurrency < 1 or args.samples < 2:
        raise UsageError("--port must be 1-65535, --concurrency >= 1 and --samples >= 2")
    if args.max_upload_mb <= 0 or args.max_megapixels <= 0:
        raise UsageError("--max-upload-mb and --max-megapixels must be positive")
    if args.max_video_frames < 1:
        raise UsageError("--max-video-frames must be at least 1")
    from ..ui.session import Limits, allowed_folder

    allow_paths = [allowed_folder(d) for d in args.allow_paths]  # before minutes of loading
    from ..guidance.clip import load_clip
    from ..hub.generators import load_generator
    from ..ui.app import CSS, build_app, remove_workdir
    from ..utils.devices import resolve_device

    device = resolve_device(args.device)
    G = load_generator(args.generator, device=device, cache=args.cache, offline=args.offline)
    if args.domain:
        G.meta["domain"] = args.domain
    guide = load_clip(args.clip, device=device)
    demo = build_app(
        G, guide, generator_name=args.generator, relevance=args.relevance, stats_samples=args.samples,
        concurrency=args.concurrency, limits=Limits(args.max_upload_mb, args.max_megapixels, args.max_video_frames),
        cache=args.cache, offline=args.offline, precision=args.precision, allow_paths=allow_paths,
        allow_urls=args.allow_urls,
    )  # fmt: skip
    if not _is_loopback(args.host):
        print(f"styleclip ui: warning: listening on {args.host}: anyone on your network can use this app and your "
              "device", file=sys.stderr)  # fmt: skip
    if args.share:
        print("styleclip ui: warning: --share makes a public link: anyone with it can use this app", file=sys.stderr)
    try:
        _, url, share_url = demo.launch(
            server_name=args.host, server_port=args.port, share=bool(args.share), prevent_thread_lock=True,
            max_file_size=f"{args.max_upload_mb:g}mb", quiet=True, footer_links=[], css=CSS,
        )  # fmt: skip
        print(f"styleclip ui: running on {url}" + (f" and {share_url}" if share_url else ""), flush=True)
        demo.block_thread()
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); try another --port"
        ) from None
    finally:
        demo.close()
        remove_workdir(demo)
    return 0
