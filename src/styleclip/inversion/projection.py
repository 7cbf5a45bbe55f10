"""Optimisation projection: find the latent whose picture matches a photo, for any generator.

NVIDIA's projector (stylegan2-ada-pytorch ``projector.py``) as the recipe: start at the mean w, Adam with
lr 0.1 under a linear ramp-up over the first 5 % and a cosine ramp-down over the last 25 % of the steps,
Gaussian noise on w that fades out over the first 75 % (scale 0.05 of w's spread), and - when the noise
inputs are optimised too - their autocorrelation penalty (weight 1e5) and renormalisation after every step.
The distance is LPIPS at 256 px plus a pixel term; W (one vector, as NVIDIA) or W+.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import UsageError
from ..guidance.perceptual import LPIPS
from ..nets.stylegan2 import Generator
from ..utils.schedules import learning_rate


@dataclass
class ProjectionConfig:
    steps: int = 1000
    space: str = "w"  # 'w' (NVIDIA's choice: stays editable) or 'w+' (closer, less editable)
    lr: float = 0.1
    rampup: float = 0.05
    rampdown: float = 0.25
    noise_factor: float = 0.05  # initial latent noise, in units of w's spread
    noise_ramp: float = 0.75
    optimize_noise: bool = False  # NVIDIA optimises the noise inputs; off keeps the picture in the latent
    noise_weight: float = 1e5
    pixel_weight: float = 0.1  # mean squared error in [-1, 1] beside LPIPS
    w_avg_samples: int = 10_000
    seed: int = 0


@dataclass
class Projection:
    """``ws``: W+ ``[1, num_ws, w_dim]``; ``noise``: ``{layer: [R, R]}`` when optimised; ``history``: losses."""

    ws: torch.Tensor
    noise: dict[str, torch.Tensor] | None
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def noise_layers(G: Generator) -> dict[str, torch.nn.Module]:
    """Every synthesis layer with a noise input, by name (``b64.conv0`` ...)."""
    return {name: m for name, m in G.synthesis.named_modules() if hasattr(m, "noise_const")}


@contextlib.contextmanager
def use_noise(G: Generator, noise: dict[str, torch.Tensor] | None) -> Iterator[Generator]:
    """Draw with these noise inputs (``noise_mode='const'``) inside the block; the generator's own come back
    afterwards. ``None`` changes nothing."""
    if not noise:
        yield G
        return
    layers = noise_layers(G)
    saved = {name: layers[name].noise_const for name in noise}
    try:
        for name, value in noise.items():
            layers[name].noise_const = value.to(saved[name].device, saved[name].dtype)
        yield G
    finally:
        for name, value in saved.items():
            layers[name].noise_const = value


def _w_stats(G: Generator, samples: int, seed: int) -> tuple[torch.Tensor, float]:
    with torch.no_grad():
        z = torch.from_numpy(np.random.RandomState(seed).randn(samples, G.z_dim).astype(np.float32)).to(G.device)
        c = G.label(0, batch=samples) if G.c_dim else None
        w = G.mapping_forward(z, c)[:, 0]
        avg = w.mean(0, keepdim=True)
        return avg, float(((w - avg).square().sum() / samples).sqrt())


def project(
    G: Generator,
    target: torch.Tensor,
    lpips: LPIPS | None,
    config: ProjectionConfig | None = None,
    init: torch.Tensor | None = None,
    callback: Callable[[int, dict], None] | None = None,
    progress: bool = True,
) -> Projection:
    """Project ``target`` (``[1, 3, R, R]`` in ``[-1, 1]``, the generator's resolution) into its latent space.

    ``init``: a W+ latent to start from (an encoder's answer) instead of the mean w. ``lpips``: the
    perceptual distance (``None``: pixels only). Ctrl-C (or ``KeyboardInterrupt`` from ``callback``) stops
    early and returns the latent reached.
    """
    cfg = config or ProjectionConfig()
    if cfg.steps < 1:
        raise UsageError("projection needs at least 1 step")
    if cfg.space not in ("w", "w+"):
        raise UsageError(f"projection space must be 'w' or 'w+', got {cfg.space!r}")
    if target.ndim != 4 or target.shape[0] != 1 or target.shape[-1] != G.img_resolution:
        raise UsageError(
            f"the photo must be [1, 3, {G.img_resolution}, {G.img_resolution}] for this generator, "
            f"got {list(target.shape)}"
        )
    t0 = time.perf_counter()
    target = target.to(G.device, torch.float32)
    w_avg, w_std = _w_stats(G, cfg.w_avg_samples, cfg.seed)
    if init is not None:
        start = G.broadcast(init.to(G.device, torch.float32))
        start = start[:, :1] if cfg.space == "w" else start
    else:
        start = w_avg[:, None].expand(1, 1 if cfg.space == "w" else G.num_ws, -1)
    w_opt = start.detach().clone().requires_grad_(True)
    noise = {}
    if cfg.optimize_noise:
        gen = torch.Generator().manual_seed(cfg.seed)
        noise = {
            n: torch.randn(m.noise_const.shape, generator=gen).to(G.device).requires_grad_(True)
            for n, m in noise_layers(G).items()
        }
    opt = torch.optim.Adam([w_opt, *noise.values()], lr=cfg.lr, betas=(0.9, 0.999))
    with torch.no_grad():
        target_feats = lpips.taps(target) if lpips is not None else None
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed + 1)
    history: list[dict[str, float]] = []
    bar = tqdm(total=cfg.steps, desc="project", unit="step", disable=not progress or None, leave=False)
    try:
        with use_noise(G, noise or None):
            for step in range(cfg.steps):
                t = step / cfg.steps
                lr = learning_rate(t, cfg.lr, cfg.rampup, cfg.rampdown)
                for group in opt.param_groups:
                    group["lr"] = lr
                w_noise_scale = w_std * cfg.noise_factor * max(0.0, 1.0 - t / cfg.noise_ramp) ** 2
                jitter = torch.randn(w_opt.shape, generator=gen).to(G.device) * w_noise_scale
                ws = (w_opt + jitter).expand(1, G.num_ws, -1) if cfg.space == "w" else w_opt + jitter
                img = G.synthesize(ws)
                dist = _lpips_to(lpips, img, target_feats) if lpips is not None else img.new_zeros(())
                pixel = F.mse_loss(img, target)
                reg = _noise_regularisation(noise.values()) if noise else img.new_zeros(())
                loss = dist + cfg.pixel_weight * pixel + cfg.noise_weight * reg
                values = torch.stack([dist.detach(), pixel.detach(), loss.detach()]).tolist()  # one sync a step
                if not all(map(math.isfinite, values)):
                    raise UsageError(f"the projection loss became NaN at step {step}; lower the learning rate")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    for buf in noise.values():  # NVIDIA keeps the noise maps standard normal
                        buf -= buf.mean()
                        buf *= buf.square().mean().rsqrt()
                record = {"step": step, "lr": lr, **dict(zip(("lpips", "pixel", "loss"), values, strict=True))}
                history.append(record)
                bar.update(1)
                bar.set_postfix(lpips=f"{record['lpips']:.4f}", pixel=f"{record['pixel']:.4f}", refresh=False)
                if callback is not None:
                    callback(step, record)
    except KeyboardInterrupt:
        pass
    finally:
        bar.close()
    with torch.no_grad():
        ws = G.broadcast(w_opt.detach().expand(1, G.num_ws, -1) if cfg.space == "w" else w_opt.detach())
    kept = {n: v.detach().clone() for n, v in noise.items()} or None
    return Projection(ws.contiguous(), kept, history, time.perf_counter() - t0)


def _lpips_to(lpips: LPIPS, img: torch.Tensor, target_feats: list[torch.Tensor]) -> torch.Tensor:
    total = img.new_zeros(())
    for lin, x, y in zip(lpips.lins, lpips.taps(img), target_feats, strict=True):
        total = total + lin((x - y).square()).mean()
    return total


def _noise_regularisation(buffers) -> torch.Tensor:
    """NVIDIA's penalty on the noise maps' autocorrelation at every scale down to 8 px."""
    reg = 0.0
    for v in buffers:
        v = v[None, None]
        while True:
            reg = reg + (v * torch.roll(v, shifts=1, dims=3)).mean() ** 2
            reg = reg + (v * torch.roll(v, shifts=1, dims=2)).mean() ** 2
            if v.shape[2] <= 8:
                break
            v = F.avg_pool2d(v, kernel_size=2)
    return reg


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two ``[-1, 1]`` images (peak-to-peak 2)."""
    mse = float(F.mse_loss(a.float(), b.float()))
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)
