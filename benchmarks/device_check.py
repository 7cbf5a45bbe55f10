"""One prepared script for a machine with an accelerator (CUDA or Apple MPS): correctness, then speed.

    python benchmarks/device_check.py --device cuda        # a few minutes on one GPU
    python benchmarks/device_check.py --device mps

Checks, each printed as PASS/FAIL with the measured figure:
- the device image equals the CPU image in fp32 (both modulation paths), batch 1 and 4;
- CLIP's batch-first attention (guidance/attention.py) gives the stock attention's embeddings and gradients;
- the fp16 layers of an ADA-style generator (num_fp16_res=4, conv_clamp=256) stay close to fp32;
- gradients reach W+ and S on the device, with no float64 tensor anywhere;
- CLIP (fp16 autocast and fp32), LPIPS and the optimisation loop on the device agree with the CPU;
- bf16 synthesis (every block) stays close to fp32 and its W+ gradient points the same way;
- StyleGAN3 T and R: device vs CPU in fp32 (with a user transform), fp16 layers vs fp32, gradients to W+;
- the compiled synthesis (torch.compile) equals the eager one;
- then the optimisation, generator and global-direction benchmarks on the device, fp32 and bf16 side by side
  (JSON like bench_optimize.py / bench_generator.py / bench_directions.py), the generator benchmark for StyleGAN3
  T and R too, and the optimisation step eager vs compiled in bf16.
Exit status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

import bench_generator
import bench_optimize
from styleclip import Generator, GeneratorConfig, MappingConfig, SynthesisConfig
from styleclip.utils.compiling import compiling
from styleclip.utils.devices import resolve_device


def make(res: int, fp16_res: int = 0, clamp: float | None = None) -> Generator:
    torch.manual_seed(0)
    cfg = GeneratorConfig(
        img_resolution=res,
        mapping=MappingConfig(num_layers=8),
        synthesis=SynthesisConfig(channel_base=32768, channel_max=512, num_fp16_res=fp16_res, conv_clamp=clamp),
    )
    return Generator(cfg).eval().requires_grad_(False)


def check(name: str, ok: bool, detail: str, failures: list[str]) -> None:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)
    if not ok:
        failures.append(name)


def guidance_checks(device: torch.device, failures: list[str]) -> None:
    import open_clip

    import styleclip
    from styleclip.guidance.clip import ClipGuide
    from styleclip.guidance.perceptual import LPIPS

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    tok = open_clip.get_tokenizer("ViT-B-32")
    cpu = ClipGuide(model, tok, "ViT-B-32")
    img = torch.rand(2, 3, 256, 256) * 2 - 1
    ref = cpu.encode_image(img)
    for precision in ("fp32", "auto"):
        dev = ClipGuide(open_clip.create_model("ViT-B-32", pretrained=None), tok, "ViT-B-32", precision=precision)
        dev.model.load_state_dict(model.state_dict())
        x = img.to(device).requires_grad_(True)
        emb = dev.to(device).encode_image(x)
        emb.sum().backward()
        cos = (emb.detach().cpu() * ref).sum(-1).min().item()
        ok = cos > (0.9999 if precision == "fp32" else 0.999) and x.grad is not None and emb.dtype == torch.float32
        check(f"CLIP image embedding ({precision}) vs CPU", ok, f"min cos {cos:.6f}", failures)
        text = (dev.encode_text(["a happy dog"]).cpu() * cpu.encode_text(["a happy dog"])).sum().item()
        check(f"CLIP text embedding ({precision}) vs CPU", text > 0.999, f"cos {text:.6f}", failures)

    # guidance/attention.py's batch-first attention against the stock nn.MultiheadAttention, on the device
    from styleclip.guidance.attention import BatchFirstAttention

    for precision in ("fp32", "auto"):
        dev = ClipGuide(open_clip.create_model("ViT-B-32", pretrained=None), tok, "ViT-B-32", precision=precision)
        dev.model.load_state_dict(model.state_dict())
        dev = dev.to(device)
        out = {}
        for cls in (BatchFirstAttention, torch.nn.MultiheadAttention):
            for m in dev.model.modules():
                if isinstance(m, torch.nn.MultiheadAttention):
                    m.__class__ = cls
            x = img.to(device).requires_grad_(True)
            emb = dev.encode_image(x)
            emb.sum().backward()
            out[cls] = (emb.detach().cpu(), x.grad.cpu())
        (e1, g1), (e2, g2) = out.values()
        cos = (e1 * e2).sum(-1).min().item()
        gcos = torch.nn.functional.cosine_similarity(g1.flatten(), g2.flatten(), dim=0).item()
        ok = cos > (0.99999 if precision == "fp32" else 0.999) and gcos > (0.9999 if precision == "fp32" else 0.99)
        check(f"batch-first CLIP attention ({precision}) vs stock", ok, f"min cos {cos:.6f}, grad cos {gcos:.6f}",
              failures)  # fmt: skip

    lp_cpu = LPIPS("vgg")
    lp_dev = LPIPS("vgg")
    lp_dev.load_state_dict(lp_cpu.state_dict())
    a, b = torch.rand(2, 2, 3, 256, 256) * 2 - 1
    d_cpu, d_dev = lp_cpu(a, b), lp_dev.to(device)(a.to(device), b.to(device)).cpu()
    rel = ((d_cpu - d_dev).abs().max() / d_cpu.abs().max()).item()
    check("LPIPS vs CPU", rel < 1e-3, f"max relative diff {rel:.2e}", failures)

    G = make(256)
    guide = ClipGuide(model, tok, "ViT-B-32", precision="fp32")
    kw = {"seeds": [1, 2], "steps": 4, "progress": False}
    [r_cpu, _] = styleclip.optimize(G, "a happy dog", guide, **kw)
    [r_dev, _] = styleclip.optimize(G.to(device), "a happy dog", guide.to(device), **kw)
    first = abs(r_cpu.history[0]["total"] - r_dev.history[0]["total"])
    last = abs(r_cpu.history[-1]["total"] - r_dev.history[-1]["total"])
    ok = first < 1e-4 and last < 1e-2 and r_dev.stopped == "completed"
    check("optimisation loop on the device vs CPU", ok, f"|Δ loss| step 0 {first:.1e}, last {last:.1e}", failures)


def stylegan3_checks(device: torch.device, failures: list[str], res: int = 256) -> None:
    from styleclip import make_transform

    for arch in ("stylegan3-t", "stylegan3-r"):
        G_cpu = bench_generator.build(res, torch.device("cpu"), arch)
        G_dev = bench_generator.build(res, device, arch)
        ws = G_cpu.mapping_forward(G_cpu.z_from_seed([0, 1]), truncation_psi=0.7)
        transform = make_transform((0.1, -0.2), 20)
        ref = G_cpu.synthesize(ws, modulation="fused", transform=transform)
        torch.backends.cudnn.allow_tf32 = False
        for mod in ("fused", "activation"):
            with torch.no_grad():
                out = G_dev.synthesize(ws.to(device), modulation=mod, force_fp32=True, transform=transform).cpu()
            diff = (out - ref).abs().max().item()
            check(f"{arch} fp32 {mod} batch 2 vs CPU", diff < 1e-3, f"max |diff| {diff:.2e}", failures)
        torch.backends.cudnn.allow_tf32 = True
        with torch.no_grad():
            full = G_dev.synthesize(ws.to(device), force_fp32=True)
            half = G_dev.synthesize(ws.to(device), force_fp32=False)
        rel = ((half - full).abs().max() / full.abs().max()).item()
        check(f"{arch} fp16 layers vs fp32", rel < 0.05, f"max relative diff {rel:.3f}", failures)
        w = ws[:1].to(device).requires_grad_(True)
        G_dev.synthesize(w).square().mean().backward()
        # Row 0 drives the input transform, whose affine layer starts at zero in a fresh network.
        ok = w.grad is not None and bool(torch.isfinite(w.grad).all()) and bool((w.grad[0, 1:].abs().sum(-1) > 0).all())
        check(f"{arch} gradients to the layers' W+ rows", ok, f"|grad| {w.grad.norm().item():.3e}", failures)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--res", type=int, default=512)
    p.add_argument("--skip-bench", action="store_true")
    args = p.parse_args()
    device = resolve_device(args.device)
    failures: list[str] = []

    G_cpu = make(args.res)
    G_dev = make(args.res).to(device)
    # cuDNN runs fp32 convolutions in TF32 by default on Ampere and later (PyTorch's default, and what NVIDIA's
    # generate.py runs with): exact fp32 is checked with it off, TF32 against a looser bound.
    for tf32 in (False, True):
        torch.backends.cudnn.allow_tf32 = tf32
        for batch in (1, 4):
            ws = G_cpu.mapping_forward(G_cpu.z_from_seed(list(range(batch))), truncation_psi=0.7)
            ref = G_cpu.synthesize(ws, modulation="fused")
            for mod in ("fused", "activation"):
                with torch.no_grad():
                    out = G_dev.synthesize(ws.to(device), modulation=mod, force_fp32=True).cpu()
                diff = (out - ref).abs().max().item()
                name = f"{'tf32' if tf32 else 'fp32'} {mod} batch {batch} vs CPU"
                check(name, diff < (2e-2 if tf32 else 1e-3), f"max |diff| {diff:.2e}", failures)
    torch.backends.cudnn.allow_tf32 = True

    G16 = make(args.res, fp16_res=4, clamp=256).to(device)
    ws = G16.mapping_forward(G16.z_from_seed([0, 1]), truncation_psi=0.7)
    with torch.no_grad():
        full = G16.synthesize(ws, force_fp32=True)
        half = G16.synthesize(ws)  # fp16 layers on CUDA
    rel = ((half - full).abs().max() / full.abs().max()).item()
    check("fp16 layers vs fp32", rel < 0.05 and half.dtype == torch.float32, f"max relative diff {rel:.3f}", failures)

    seen64: list[str] = []

    def spy(_module, _inputs, output):
        if isinstance(output, torch.Tensor) and output.dtype == torch.float64:
            seen64.append(type(_module).__name__)

    hooks = [m.register_forward_hook(spy) for m in G_dev.modules()]
    ws = G_dev.mapping_forward(G_dev.z_from_seed(3)).requires_grad_(True)
    G_dev.synthesize(ws).square().mean().backward()
    styles = {k: v.detach().requires_grad_(True) for k, v in G_dev.styles(ws.detach()).items()}
    G_dev.synthesis_from_styles(styles).mean().backward()
    for h in hooks:
        h.remove()
    grads_ok = (
        ws.grad is not None and bool(torch.isfinite(ws.grad).all()) and all(s.grad is not None for s in styles.values())
    )
    check("gradients to W+ and S", grads_ok, f"|grad W+| {ws.grad.norm().item():.3e}", failures)
    check("no float64 on the device", not seen64, f"float64 outputs from {sorted(set(seen64))}", failures)

    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        ws = G_dev.mapping_forward(G_dev.z_from_seed([0, 1]), truncation_psi=0.7)
        with torch.no_grad():
            full, half = (G_dev.synthesize(ws, precision=p) for p in ("fp32", "bf16"))
        rel = ((half - full).norm() / full.norm()).item()
        grads = []
        for precision in ("fp32", "bf16"):
            w = ws.clone().requires_grad_(True)
            G_dev.synthesize(w, precision=precision).square().mean().backward()
            grads.append(w.grad.flatten())
        cos = torch.nn.functional.cosine_similarity(*grads, dim=0).item()
        check(
            "bf16 synthesis vs fp32", rel < 0.03 and cos > 0.999, f"relative L2 {rel:.4f}, grad cos {cos:.5f}", failures
        )

    with torch.no_grad():  # torch.compile on the device (Triton kernels for CUDA)
        ws = G_dev.mapping_forward(G_dev.z_from_seed([0, 1]), truncation_psi=0.7)
        eager = G_dev.synthesize(ws, precision="fp32")
        with compiling(True) as record:
            compiled = G_dev.synthesize(ws, precision="fp32")
    err = (compiled - eager).abs().max().item()
    check("compiled synthesis vs eager (fp32)", err < 1e-3 and not record.failed, f"max |diff| {err:.2e}, "
          f"{record.report()['why']}", failures)  # fmt: skip

    guidance_checks(device, failures)
    stylegan3_checks(device, failures)

    if not args.skip_bench:
        both = ["--precision", "fp32", "bf16"]
        bench_optimize.main(
            ["--device", str(device), "--res", "256", "512", "1024", "--batch", "1", "8", "--in-process", *both]
        )
        bench_generator.main(
            ["--device", str(device), "--res", "256", "512", "1024", "--batch", "1", "--in-process", *both]
        )
        bench_generator.main(["--device", str(device), "--res", "1024", "--batch", "4", "--in-process", *both])
        compiled = ["--precision", "bf16", "--compile", "off", "on", "--in-process"]
        bench_optimize.main(["--device", str(device), "--res", "512", "--batch", "1", "8", *compiled])
        sg3 = ["--arch", "stylegan3-t", "stylegan3-r", "--res", "256", "512", "1024"]
        bench_generator.main(["--device", str(device), *sg3, "--batch", "1", "--in-process"])
    print(f"{len(failures)} failed" if failures else "all device checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
