"""``adapt``: StyleGAN-NADA - a generator moved to a new domain by two prompts, with no images.

Two copies of the generator draw the same latents: a frozen one (the source domain) and a trainable one. The loss
(:mod:`styleclip.guidance.directional`) asks the change from the frozen to the trainable picture, in CLIP's image
space, to point along the change from the source to the target text. Per step, as NADA's ``train.py`` does it:

1. ``z ~ N(0, I)`` (``batch_size`` of them), ``w = mapping(z)`` with the frozen mapping, no truncation;
2. with adaptive layer selection (``auto_layer_iters > 0``, NADA's README): a few SGD steps on W+ codes of
   ``auto_layer_batch`` fresh latents towards the target text pick the ``auto_layer_k`` layers that train in this
   step (:func:`styleclip.training.adapt_layers.select_layers`); otherwise NADA's fixed set trains;
3. the frozen picture (no gradients) and the trainable one, each with its own random noise (NADA's
   ``randomize_noise``), the weighted CLIP loss over the CLIP models, and one Adam step.

Adam runs on every parameter with NADA's ``g_reg_ratio`` of 4/5 folded in: learning rate ``0.8·lr``, betas
``(0, 0.99^0.8)``; parameters outside this step's layers get no gradient and are left alone.

Where styleclip differs on purpose (see docs/methods.md): the random numbers come from a generator seeded by
``(seed, step)`` instead of the process's global one, so a resumed run draws what the uninterrupted one would have,
on any device; the sample grids are drawn at ψ 0.7 towards the generator's own ``w_avg`` (NADA estimates a mean of
4096 random w per copy) with constant noise, so that the grids of successive steps differ only by training.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save as safetensors_bytes
from tqdm import tqdm

from ..errors import CheckpointError, StyleclipError, UsageError
from ..guidance.clip import ClipGuide
from ..guidance.directional import CombinedClipLoss, DirectionalClipLoss
from ..nets.stylegan2 import Generator
from ..utils.files import atomic_write_bytes
from ..utils.precision import computing_in, resolve_precision
from . import adapt_layers

NADA_CLIPS = ("ViT-B/32", "ViT-B/16")  # NADA's README command (its code's default is ViT-B/32 alone)
G_REG_RATIO = 4 / 5  # NADA's train.py keeps rosinality's lazy-regularisation factor in the optimiser settings
SG3_TRAIN_TRUNCATION = 0.7  # NADA's StyleGAN3 wrapper truncates its training latents (its StyleGAN2 one does not)
SAMPLE_SEED = 2  # NADA seeds its sample latents with torch.manual_seed(2)
RESUME_KEYS = ("source", "target", "batch_size", "lr", "clip_models", "clip_weights", "direction_weight",
               "global_weight", "patch_weight", "manifold_weight", "layers", "auto_layer_k", "auto_layer_iters",
               "auto_layer_batch", "mixing", "seed", "noise")  # fmt: skip
LAYER_CHOICES = ("auto", "nada", "all")


@dataclass
class AdaptConfig:
    """Everything that defines an adaptation; defaults are those of NADA's README command."""

    target: str  # the new domain, e.g. "sketch", "painting in the style of Van Gogh"
    source: str = "photo"  # what the generator draws now
    steps: int = 301  # NADA's --iter
    batch_size: int = 2
    lr: float = 0.002  # NADA's --lr (Adam runs at 0.8·lr, as NADA's does)
    clip_models: tuple[str, ...] = NADA_CLIPS
    clip_weights: tuple[float, ...] = (1.0, 1.0)
    direction_weight: float = 1.0  # λ_direction
    global_weight: float = 0.0  # λ_global: 1 - logit/100 against "a {target}"
    patch_weight: float = 0.0  # λ_patch (pictures larger than 510 px)
    manifold_weight: float = 0.0  # λ_manifold (NADA's angle loss)
    layers: str = "auto"  # 'auto': NADA's adaptive selection each step; 'nada': its fixed set; 'all'
    auto_layer_k: int | None = None  # rows whose layers train; None = every row (the README's 18 at 1024 px)
    auto_layer_iters: int = 1  # SGD steps on W+ per selection
    auto_layer_batch: int = 8  # latents per selection
    mixing: float = 0.0  # style-mixing probability of the training latents
    samples: int = 4  # sample latents in each grid (NADA's --n_sample)
    sample_truncation: float = 0.7
    sample_every: int = 50  # NADA's --output_interval
    checkpoint_every: int = 150  # NADA's --save_interval
    log_every: int = 10
    seed: int = 2
    noise: str = "random"  # 'random' (NADA: fresh noise in every call) or 'const'
    precision: str = "auto"  # generator and CLIP arithmetic; weights, Adam and the loss stay fp32
    keep_checkpoints: int = 2

    def check(self) -> None:
        for name, text in (("--target", self.target), ("--source", self.source)):
            if not isinstance(text, str) or not text.strip():
                raise UsageError(f"give {name} a text, e.g. --source photo --target sketch")
        if self.source.strip() == self.target.strip():
            raise UsageError("--source and --target are the same text: name the domain to move to")
        if self.steps < 1 or self.batch_size < 1 or self.auto_layer_batch < 1 or self.samples < 1:
            raise UsageError("--steps, --batch-size, --auto-layer-batch and --samples must be at least 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UsageError("--lr must be a positive number")
        if len(self.clip_models) != len(self.clip_weights) or not self.clip_models:
            raise UsageError("give one --clip-weights value per --clip model")
        if any(not (w >= 0 and math.isfinite(w)) for w in self.clip_weights) or not any(self.clip_weights):
            raise UsageError("--clip-weights must be >= 0, at least one positive")
        weights = (self.direction_weight, self.global_weight, self.patch_weight, self.manifold_weight)
        if any(not (w >= 0 and math.isfinite(w)) for w in weights) or not any(weights):
            raise UsageError("the loss weights must be >= 0 and at least one positive")
        if self.layers not in LAYER_CHOICES:
            raise UsageError(f"--layers must be one of {', '.join(LAYER_CHOICES)}, got {self.layers!r}")
        if self.auto_layer_k is not None and self.auto_layer_k < 1:
            raise UsageError("--auto-layer-k must be at least 1")
        if self.auto_layer_iters < 1 and self.layers == "auto":
            raise UsageError("--auto-layer-iters must be at least 1 (or train a fixed set: --layers nada)")
        if not 0 <= self.mixing <= 1:
            raise UsageError("--mixing is a probability: 0..1")
        if not 0 <= self.sample_truncation <= 1:
            raise UsageError("--sample-truncation must be in 0..1")
        if self.noise not in ("random", "const"):
            raise UsageError(f"--noise must be random or const, got {self.noise!r}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise UsageError(f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        if min(self.sample_every, self.checkpoint_every, self.log_every, self.keep_checkpoints) < 1:
            raise UsageError("--sample-every, --checkpoint-every, --log-every and --keep must be at least 1")

    def to_dict(self) -> dict:
        return asdict(self) | {"clip_models": list(self.clip_models), "clip_weights": list(self.clip_weights)}

    @classmethod
    def from_dict(cls, data: dict) -> AdaptConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("clip_models", "clip_weights"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)


@dataclass
class AdaptResult:
    """What :func:`adapt` returns."""

    generator: Generator  # the adapted generator (eval mode, no gradients), on the training device
    steps_done: int
    stopped: str  # 'done' or 'interrupted'
    history: list[dict] = field(default_factory=list)  # the log lines of this call
    path: Path | None = None  # generator.safetensors, when an outdir was given


def adapt(
    G: Generator,
    config: AdaptConfig | None = None,
    clips: Sequence[ClipGuide] | None = None,
    outdir: str | Path | None = None,
    resume: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    callback: Callable[[int, dict], None] | None = None,
    **overrides,
) -> AdaptResult:
    """Adapt ``G`` from ``source`` to ``target`` text with StyleGAN-NADA.

    Args:
        G: the base generator (StyleGAN2 in any format, or StyleGAN3); it is copied, never changed.
        config: the settings (:class:`AdaptConfig`); keyword ``overrides`` replace fields, e.g.
            ``adapt(G, source="photo", target="sketch", steps=300)``.
        clips: loaded CLIP models, one per ``config.clip_models`` entry, instead of loading them by name.
        outdir: the run folder: ``generator.safetensors`` (loadable anywhere a generator is; it records the base's
            fingerprint and the prompts), ``samples/`` (base | adapted grids), ``checkpoints/``, ``log.jsonl``.
        resume: continue from the newest checkpoint in ``outdir/checkpoints``; the result equals an uninterrupted
            run's.
        device: None = the best available.
        callback: ``callback(step, info)`` after every step; raising ``KeyboardInterrupt`` there stops the run like
            Ctrl-C (a checkpoint of the steps done is written).

    Returns:
        An :class:`AdaptResult` whose ``generator`` draws the new domain from the base's W/W+ codes.
    """
    from ..utils.devices import resolve_device

    settings = {**(config.to_dict() if config else {}), **overrides}
    unknown = sorted(set(overrides) - set(AdaptConfig.__dataclass_fields__))
    if unknown:
        raise UsageError(f"unknown adaptation setting(s) {unknown}")
    if "target" not in settings:
        raise UsageError("adapt needs a target text: adapt(G, source='photo', target='sketch')")
    cfg = AdaptConfig.from_dict(settings)
    cfg.check()
    if G.c_dim:
        raise UsageError("adaptation needs an unconditional generator (this one takes a class)")
    if clips is not None and len(clips) != len(cfg.clip_models):
        raise UsageError(f"pass one loaded CLIP model per clip_models entry ({len(cfg.clip_models)})")
    if resume and outdir is None:
        raise UsageError("resuming needs the run folder (--outdir)")
    trainer = Adapter(G, cfg, resolve_device(device), clips)
    return trainer.run(Path(outdir) if outdir is not None else None, resume, progress, callback)


def step_rng(seed: int, step: int, purpose: int) -> torch.Generator:
    """A CPU generator for one step's draws (``purpose``: 0 training latents, 1 selection, 2 noise)."""
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence([seed, step, purpose]).generate_state(1)[0]))
    return g


class Adapter:
    """One adaptation: the frozen and trainable copies, the loss and the optimiser (see :func:`adapt`)."""

    def __init__(
        self, G: Generator, cfg: AdaptConfig, device: torch.device, clips: Sequence[ClipGuide] | None = None
    ) -> None:
        self.cfg, self.device = cfg, device
        # the caller's generator is never changed: on another device, a copy there
        self.frozen = G.eval().requires_grad_(False) if G.device == device else copy.deepcopy(G).to(device)
        self.frozen.requires_grad_(False)
        self.sg3 = adapt_layers.is_stylegan3(G)
        self.trainable = copy.deepcopy(self.frozen)
        # a new network: the base's cached fingerprint (and statistics keyed by it) must not carry over
        self.trainable.meta = {k: v for k, v in G.meta.items() if k not in ("fingerprint", "asset", "source")}
        self.trainable.train()
        if clips is None:
            from ..guidance.clip import load_clip

            clips = [load_clip(name, device=device) for name in cfg.clip_models]
        self.precision = resolve_precision(cfg.precision, device)
        weights = (cfg.direction_weight, cfg.global_weight, cfg.patch_weight, cfg.manifold_weight)
        with computing_in(self.precision):  # the text directions too: CLIP computes in the run's precision
            losses = [DirectionalClipLoss(guide.to(device), cfg.source, cfg.target, *weights) for guide in clips]
        self.loss = CombinedClipLoss(losses, cfg.clip_weights)
        self.fixed = self._fixed_layers()
        params = list(self.trainable.parameters())
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr * G_REG_RATIO, betas=(0**G_REG_RATIO, 0.99**G_REG_RATIO))
        self.last_layers: list[str] = []
        from .runlog import gradient_scaler

        self.scaler = gradient_scaler(
            self.precision, device
        )  # fp16 on CUDA: gradients through fp16 layers can underflow

    def _fixed_layers(self) -> list[adapt_layers.Layer]:
        if self.cfg.layers == "all":
            return adapt_layers.all_layers(self.trainable)
        return adapt_layers.default_layers(self.trainable)

    # -- drawing ---------------------------------------------------------------------------------------

    def draw(self, G: Generator, ws: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
        """``ws`` (W ``[B, w_dim]`` or W+) drawn by ``G`` under the run's precision; NADA's noise."""
        mode = "random" if self.cfg.noise == "random" and rng is not None else "const"
        with computing_in(self.precision):
            img = G.synthesize(ws, noise_mode=mode, generator=rng if mode == "random" else None)
        return img.float()

    def mapping(self, z: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """W+ ``[B, num_ws, w_dim]`` of ``z`` through the frozen mapping (no truncation), style-mixed with
        probability ``mixing`` at a random crossover, as NADA's training latents are."""
        psi = SG3_TRAIN_TRUNCATION if self.sg3 else 1.0
        with torch.no_grad():
            ws = self.frozen.mapping_forward(z[0], truncation_psi=psi)
            if len(z) > 1:
                cut = int(torch.randint(1, self.frozen.num_ws, (1,), generator=rng))
                ws = torch.cat([ws[:, :cut], self.frozen.mapping_forward(z[1], truncation_psi=psi)[:, cut:]], dim=1)
        return ws

    def latents(self, step: int) -> list[torch.Tensor]:
        g = step_rng(self.cfg.seed, step, 0)
        mix = self.cfg.mixing > 0 and float(torch.rand((), generator=g)) < self.cfg.mixing
        z = torch.randn(2 if mix else 1, self.cfg.batch_size, self.frozen.z_dim, generator=g)
        return [zi.to(self.device) for zi in z]

    # -- one step --------------------------------------------------------------------------------------

    def choose_layers(self, step: int) -> list[adapt_layers.Layer | None]:
        """The layers that train in ``step`` (NADA's adaptive selection, or the fixed set)."""
        if self.cfg.layers != "auto" or self.sg3:  # NADA selects no layers on StyleGAN3
            return self.fixed
        g = step_rng(self.cfg.seed, step, 1)
        z = torch.randn(self.cfg.auto_layer_batch, self.frozen.z_dim, generator=g).to(self.device)
        with torch.no_grad():
            w = self.frozen.mapping_forward(z)[:, 0]
        self.trainable.requires_grad_(False)  # the codes' gradients alone are needed here
        k = self.cfg.auto_layer_k or self.frozen.num_ws
        with computing_in(self.precision):
            chosen, _ = adapt_layers.select_layers(
                self.trainable, w, lambda img: self.loss.global_loss(img, self.cfg.target), k,
                self.cfg.auto_layer_iters, lambda G, ws: self.draw(G, ws, g),
            )  # fmt: skip
        return chosen

    def step(self, step: int) -> dict[str, float]:
        """One optimiser step; returns ``{"loss": ..., "layers": n}``."""
        chosen = self.choose_layers(step)
        params = adapt_layers.train_only(self.trainable, chosen)
        ws = self.mapping(self.latents(step), step_rng(self.cfg.seed, step, 3))
        noise = step_rng(self.cfg.seed, step, 2)
        with torch.no_grad():
            frozen_img = self.draw(self.frozen, ws, noise)
            if self.sg3:  # NADA's stand-in for the noise StyleGAN3 lacks
                frozen_img = frozen_img + torch.randn(frozen_img.shape, generator=noise).to(frozen_img) * 5e-4
        adapted_img = self.draw(self.trainable, ws, noise)
        patch_rng = np.random.RandomState(np.random.SeedSequence([self.cfg.seed, step, 4]).generate_state(1)[0])
        with computing_in(self.precision):  # CLIP's 'auto' precision follows the run's, not the device's default
            loss = self.loss(frozen_img, adapted_img, patch_rng)
        self.last_layers = self.layer_names(chosen)
        if not params:  # the chosen rows name no layer here (a 'resnet' StyleGAN2 has no 4x4 ToRGB): nothing trains
            return {"loss": float(loss.detach()), "layers": 0}
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {"loss": float(loss.detach()), "layers": len(params)}

    @staticmethod
    def layer_names(layers: list[adapt_layers.Layer | None]) -> list[str]:
        return [layer.name for layer in layers if layer is not None]

    # -- samples ---------------------------------------------------------------------------------------

    @torch.no_grad()
    def sample_ws(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(SAMPLE_SEED)
        z = torch.randn(self.cfg.samples, self.frozen.z_dim, generator=g).to(self.device)
        return self.frozen.mapping_forward(z, truncation_psi=self.cfg.sample_truncation)

    @torch.no_grad()
    def sample_grid(self, step: int):
        """A picture: one row per sample latent, the base's drawing beside the adapted one's."""
        from ..io.images import image_grid, to_pil

        ws = self.sample_ws()
        before = to_pil(self.draw(self.frozen, ws, None))
        after = to_pil(self.draw(self.trainable, ws, None))
        rows = [[b, a] for b, a in zip(before, after, strict=True)]
        return image_grid(rows, [self.cfg.source, f"{self.cfg.target}, step {step}"])

    # -- the loop --------------------------------------------------------------------------------------

    def run(self, outdir: Path | None, resume: bool, progress: bool, callback) -> AdaptResult:
        from ..io.images import save_png
        from .runlog import RunLog

        cfg = self.cfg
        run = RunFolder(outdir, self) if outdir is not None else None
        start = run.restore() if (run is not None and resume) else 0
        if run is not None and not resume:
            run.clear()
        log = RunLog(outdir, start, True) if outdir is not None else None
        history: list[dict] = []
        stopped, step = "done", start
        bar = tqdm(
            total=cfg.steps, initial=start, desc=f"adapt to {cfg.target[:30]}", unit="step", disable=not progress
        )
        t0 = time.perf_counter()
        try:
            while step < cfg.steps:
                info = self.step(step)
                step += 1
                if not math.isfinite(info["loss"]):
                    raise StyleclipError(
                        f"the loss became {info['loss']} at step {step}; resume from the last checkpoint with a lower "
                        "--lr, or adapt with --precision fp32"
                    )
                entry = {"step": step, "split": "train", "loss": info["loss"], "layers": len(self.last_layers)}
                entry["seconds"] = round(time.perf_counter() - t0, 3)
                if step % cfg.log_every == 0 or step == cfg.steps:
                    history.append(log.write(entry) if log is not None else entry)
                bar.set_postfix(loss=f"{info['loss']:.4f}")
                if run is not None and (step % cfg.sample_every == 0 or step == cfg.steps or step == start + 1):
                    save_png(self.sample_grid(step), run.samples / f"step-{step:06d}.png")
                if run is not None and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
                    run.save(step)
                bar.update(1)
                if callback is not None:
                    callback(step, entry)
        except KeyboardInterrupt:
            stopped = "interrupted"
            if run is not None and step > start:
                run.save(step)
        finally:
            bar.close()
            if log is not None:
                log.close()
        G = self.trainable.eval().requires_grad_(False)
        G.meta.update(self.meta(step))
        return AdaptResult(G, step, stopped, history, run.final if run is not None else None)

    def meta(self, step: int) -> dict:
        """What the adapted generator records: its base (fingerprint, name, file), the prompts and the settings."""
        from ..stylespace import generator_fingerprint

        base = self.frozen.meta
        return {
            "adapted": {
                "method": "stylegan-nada",
                "source": self.cfg.source,
                "target": self.cfg.target,
                "steps": step,
                "base": {
                    "fingerprint": generator_fingerprint(self.frozen),
                    "name": base.get("asset"),
                    "source": base.get("source"),
                },
                "training": self.cfg.to_dict(),
            }
        }


class RunFolder:
    """``outdir/generator.safetensors`` (the newest weights, styleclip's generator format), ``samples/``,
    ``checkpoints/step-NNNNNN.safetensors`` (the newest ``keep`` of them: weights and Adam's state)."""

    def __init__(self, outdir: Path, adapter: Adapter) -> None:
        from .checkpoints import refuse_linked_folders

        self.outdir, self.adapter = Path(outdir), adapter
        self.final = self.outdir / "generator.safetensors"
        self.checkpoints = self.outdir / "checkpoints"
        self.samples = self.outdir / "samples"
        for folder in (self.checkpoints, self.samples):
            if folder.is_symlink():
                raise UsageError(f"{folder} is a link, and styleclip writes no output through a link: make it a folder")
        refuse_linked_folders(self.outdir)

    def clear(self) -> None:
        """A new run: the earlier run's checkpoints and samples would pass for this one's."""
        from .checkpoints import step_files

        for path in [*step_files(self.checkpoints), self.final, self.outdir / "log.jsonl"]:
            path.unlink(missing_ok=True)
        if self.samples.is_dir():
            for path in self.samples.glob("step-*.png"):
                path.unlink(missing_ok=True)

    def save(self, step: int) -> None:
        from ..hub.formats.native import save_native
        from .checkpoints import flatten_optimizer, step_files

        a = self.adapter
        G = a.trainable
        meta = {**G.meta, **a.meta(step)}
        save_native(G, self.final, meta=meta)
        tensors, rest = flatten_optimizer(a.optimizer.state_dict())
        weights = {f"generator.{k}": v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
        payload = {**weights, **{k: v.cpu().contiguous() for k, v in tensors.items()}}
        metadata = {"meta": json.dumps(meta, default=str), "optimizer": json.dumps(rest), "step": str(step)}
        atomic_write_bytes(self.checkpoints / f"step-{step:06d}.safetensors", safetensors_bytes(payload, metadata))
        for old in step_files(self.checkpoints)[: -a.cfg.keep_checkpoints]:
            old.unlink(missing_ok=True)

    def restore(self) -> int:
        """Load the newest checkpoint into the trainable copy and the optimiser; returns its step."""
        from ..hub.formats.state import load_exact
        from .checkpoints import read_checkpoint, step_files, unflatten_optimizer

        found = step_files(self.checkpoints)
        if not found:
            raise UsageError(f"nothing to resume in {self.checkpoints}: run without --resume to start")
        path = found[-1]
        meta, rest, step, tensors = read_checkpoint(path, ("adapted",))
        try:
            was = meta["adapted"]["training"]
            base = meta["adapted"]["base"]["fingerprint"]
        except (KeyError, TypeError):
            raise CheckpointError(f"{path}: unreadable checkpoint (no adaptation record); delete it") from None
        a = self.adapter
        now = a.meta(step)["adapted"]
        if base != now["base"]["fingerprint"]:
            raise UsageError(f"{path} adapted another generator; resume with the same --generator")
        changed = [k for k in RESUME_KEYS if was.get(k) != now["training"].get(k)]
        if changed:
            diffs = ", ".join(f"{k} {was.get(k)!r} -> {now['training'].get(k)!r}" for k in changed)
            raise UsageError(f"cannot resume {path} with other settings ({diffs}); use a new --outdir")
        prefix = "generator."
        weights = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        load_exact(a.trainable, weights, str(path))
        a.optimizer.load_state_dict(
            unflatten_optimizer({k: v for k, v in tensors.items() if not k.startswith(prefix)}, rest)
        )
        return step
