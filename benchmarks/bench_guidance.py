"""Guidance speed: CLIP image encoding forward + backward, ArcFace forward + backward, text encoding.

Random weights in the real architectures (nothing is downloaded): open_clip's ViT-B-32 and ViT-L-14,
ArcFace IR-SE50 and LPIPS-VGG16. Prints a table and writes JSON like ``bench_generator.py``.

    python benchmarks/bench_guidance.py [--device cuda] [--batch 1] [--models ViT-B-32 ViT-L-14]
"""

from __future__ import annotations

import argparse

import torch

import styleclip
from report import RESULTS, median_time, write_report
from styleclip.guidance.clip import ClipGuide
from styleclip.guidance.identity import IdentityLoss
from styleclip.guidance.perceptual import LPIPS
from styleclip.nets.arcface import IRSE
from styleclip.utils.devices import resolve_device

PROMPT = "a really happy dog face with mouth open"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["ViT-B-32", "ViT-L-14"])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--size", type=int, default=1024, help="generator image size fed to the guidance")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default=None)
    args = p.parse_args(argv)
    import open_clip

    styleclip.keep_freed_memory()
    device = resolve_device(args.device)
    rows = []

    def report(name: str, seconds: float) -> None:
        rows.append({"job": name, "median_s": seconds, "batch": args.batch})
        print(f"{name:45s} batch {args.batch}: {seconds * 1000:9.1f} ms", flush=True)

    img = (torch.rand(args.batch, 3, args.size, args.size, device=device) * 2 - 1).requires_grad_(True)
    for arch in args.models:
        model = open_clip.create_model(arch, pretrained=None)
        guide = ClipGuide(model.to(device), open_clip.get_tokenizer(arch), arch)

        def image_step(guide=guide):
            img.grad = None
            guide.encode_image(img).sum().backward()

        report(f"CLIP {arch} image fwd+bwd ({args.size} px in)", median_time(image_step, device, args.repeats))

        def text_step(guide=guide, cached=False):
            if not cached:
                guide.clear_text_cache()
            guide.direction(PROMPT, "a dog")

        report(f"CLIP {arch} text, 80 templates, uncached", median_time(text_step, device, 2))
        report(
            f"CLIP {arch} text, 80 templates, cached",
            median_time(lambda g=guide: text_step(g, True), device, args.repeats),
        )

    ident = IdentityLoss(IRSE(50)).to(device)
    src_emb = ident.embed(img.detach())

    def id_step():
        img.grad = None
        ident(img, source_emb=src_emb).sum().backward()

    report(f"ArcFace IR-SE50 fwd+bwd ({args.size} px in)", median_time(id_step, device, args.repeats))
    lpips = LPIPS("vgg").to(device)
    target = img.detach().flip(-1)

    def lpips_step():
        img.grad = None
        lpips(img, target).sum().backward()

    report(f"LPIPS VGG16 fwd+bwd ({args.size} px in, 256 px compared)", median_time(lpips_step, device, args.repeats))
    write_report("guidance", device, rows, RESULTS / f"bench_guidance-{device.type}-b{args.batch}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
