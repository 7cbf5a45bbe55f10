"""``train_mapper``: StyleCLIP's mapper training for any generator, on one device or many (``torchrun``).

Loss per image, as StyleCLIP's coach computes it: ``λ_CLIP·(1 - logit/100) + λ_L2·mean((w' - w)²) + λ_ID·(1 -
cos(ArcFace(x'), ArcFace(x)))`` with ``w' = w + 0.1·M(w)``, ``x = G(w)``, ``x' = G(w')``; averaged over the batch.

The data order is a pure function of the seed and the step: step ``t`` uses positions ``t·B .. t·B + B - 1`` of
an endless sequence of seeded permutations of the training latents (or fresh latents seeded by the step), and
each of the ``W`` processes takes its ``B / W`` share. A resumed run therefore sees exactly the batches the
uninterrupted one would have, whatever the number of processes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from ..errors import StyleclipError, UsageError
from ..guidance.clip import DEFAULT_CLIP, ClipGuide
from ..guidance.identity import IdentityLoss
from ..guidance.losses import ClipLoss, LatentL2Loss
from ..nets.mapper import GROUP_NAMES, LatentMapper, MapperConfig
from ..nets.stylegan2 import Generator
from ..utils.compiling import compiling
from ..utils.distributed import Context, setup
from ..utils.precision import computing_in, resolve_precision
from .runlog import RunLog, gradient_scaler

FACE_ID_WEIGHT = 0.1  # StyleCLIP's --id_lambda
# Settings a resumed run must share with the checkpoint (steps, intervals and the device may change).
RESUME_KEYS = ("prompt", "batch_size", "lr", "optimizer", "clip_weight", "l2_weight", "groups", "strength",
               "latents", "train_size", "truncation_psi", "seed", "preprocess")  # fmt: skip


@dataclass
class MapperTrainConfig:
    """Everything that defines a mapper training run; defaults are StyleCLIP's."""

    prompt: str  # the driving text, e.g. "mohawk hairstyle"
    steps: int = 50_000  # optimiser steps
    batch_size: int = 2  # images per step, over all processes together
    lr: float = 0.5  # learning rate (StyleCLIP: 0.5 for Ranger and Adam alike)
    optimizer: str = "ranger"  # 'ranger' (RAdam + Lookahead, StyleCLIP's) or 'adam'
    clip_weight: float = 1.0  # λ_CLIP
    l2_weight: float = 0.8  # λ_L2 on the mean squared latent change
    id_weight: float | None = None  # λ_ID; None = 0.1 for face generators, 0 otherwise
    groups: tuple[str, ...] = GROUP_NAMES  # which row groups get a network
    strength: float = 0.1  # s in w' = w + s·M(w) during training
    latents: str | None = None  # training latents (styleclip invert output, StyleCLIP's train_faces.pt); None = sample
    test_latents: str | None = None  # held-out latents; None = sampled, or the last tenth of ``latents``
    train_size: int = 5000  # sampled training latents; 0 = fresh samples every step
    test_size: int = 1000  # sampled held-out latents
    truncation_psi: float = 0.7  # truncation of sampled latents
    val_every: int = 2000  # steps between validations (held-out loss and an image grid)
    val_count: int = 200  # held-out latents scored per validation (StyleCLIP: at most 201)
    checkpoint_every: int = 2000  # steps between checkpoints
    log_every: int = 50  # steps between log lines
    seed: int = 0  # initial weights, sampled latents and data order
    clip: str = DEFAULT_CLIP  # CLIP model name or path
    preprocess: str = "auto"  # 'styleclip' (its exact recipe), 'clip', or 'auto' (styleclip for 224-px CLIPs)
    identity: str | None = None  # ArcFace weights for λ_ID (default arcface:ir-se50)
    precision: str = "auto"  # generator, CLIP and ArcFace arithmetic (styleclip.utils.precision: 'auto' = bf16 on
    # CPUs with native bf16 and on GPUs); the mapper, its optimiser and the losses stay fp32 (fp16: a gradient scaler)
    keep_checkpoints: int = 2  # training checkpoints kept on disk (the newest ones)
    compile: bool = False  # torch.compile the generator (styleclip.utils.compiling): worth it over many steps

    def check(self) -> None:
        if not self.prompt or not self.prompt.strip():
            raise UsageError("give the mapper a prompt, e.g. --prompt 'mohawk hairstyle'")
        if self.steps < 1 or self.batch_size < 1:
            raise UsageError("--steps and --batch-size must be at least 1")
        if self.optimizer not in ("ranger", "adam"):
            raise UsageError(f"optimizer must be ranger or adam, got {self.optimizer!r}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise UsageError(f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        if self.preprocess not in ("auto", "clip", "styleclip"):
            raise UsageError(f"preprocess must be auto, clip or styleclip, got {self.preprocess!r}")
        if min(self.val_every, self.checkpoint_every, self.log_every, self.keep_checkpoints) < 1:
            raise UsageError("--val-every, --checkpoint-every, --log-every and --keep must be at least 1")
        if self.train_size < 0 or self.test_size < 1 or self.val_count < 1:
            raise UsageError("--train-size must be >= 0 (0 = fresh samples), --test-size and --val-count >= 1")
        if not self.lr > 0:
            raise UsageError("--lr must be positive")
        unknown = [g for g in self.groups if g not in GROUP_NAMES]
        if unknown or not self.groups:
            raise UsageError(f"--groups must name some of {', '.join(GROUP_NAMES)}, got {list(self.groups)}")

    def to_dict(self) -> dict:
        return asdict(self) | {"groups": list(self.groups)}

    @classmethod
    def from_dict(cls, data: dict) -> MapperTrainConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["groups"] = tuple(known.get("groups", GROUP_NAMES))
        return cls(**known)


@dataclass
class TrainResult:
    """What :func:`train_mapper` returns (on every process)."""

    mapper: LatentMapper  # the trained mapper (unwrapped, on the training device)
    steps_done: int  # the step count reached
    stopped: str  # 'done' or 'interrupted'
    history: list[dict] = field(default_factory=list)  # the log lines of this call (train and val)
    path: Path | None = None  # mapper.safetensors, when an outdir was given


def train_mapper(
    G: Generator,
    config: MapperTrainConfig | None = None,
    clip: ClipGuide | None = None,
    identity: IdentityLoss | None = None,
    outdir: str | Path | None = None,
    resume: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    callback: Callable[[int, dict], None] | None = None,
    **overrides,
) -> TrainResult:
    """Train a latent mapper for one prompt.

    Args:
        G: the generator (unconditional); its weights stay frozen.
        config: the settings (see :class:`MapperTrainConfig`); keyword ``overrides`` replace fields,
            e.g. ``train_mapper(G, prompt="a smiling face", steps=2000)``.
        clip, identity: loaded models to use instead of loading ``config.clip`` / ``config.identity``.
        outdir: where ``mapper.safetensors``, ``checkpoints/``, ``log.jsonl`` and ``val/`` go (rank 0 only).
        resume: continue from the newest checkpoint in ``outdir/checkpoints`` (written with any number of
            processes); the result is the same as that of an uninterrupted run.
        device: None = best available; under ``torchrun`` CUDA processes use ``cuda:LOCAL_RANK``.
        callback: ``callback(step, info)`` after every step; raising ``KeyboardInterrupt`` there stops the run
            like Ctrl-C (a checkpoint of the steps done is written).

    Returns:
        A :class:`TrainResult`. Under torchrun every process returns the same weights.
    """
    from ..utils.devices import resolve_device

    settings = {**(config.to_dict() if config else {}), **overrides}
    if "prompt" not in settings:
        raise UsageError("train_mapper needs a prompt: train_mapper(G, prompt='a face with purple hair')")
    unknown = sorted(set(overrides) - set(MapperTrainConfig.__dataclass_fields__))
    if unknown:
        raise UsageError(f"unknown mapper training setting(s) {unknown}")
    cfg = MapperTrainConfig.from_dict(settings)
    cfg.check()
    if G.c_dim:
        raise UsageError("mapper training needs an unconditional generator (this one takes a class)")
    ctx = setup(resolve_device(device))
    try:
        return _Trainer(G, cfg, ctx, clip, identity, Path(outdir) if outdir else None).run(resume, progress, callback)
    finally:
        ctx.close()


class _Trainer:
    def __init__(self, G, cfg: MapperTrainConfig, ctx: Context, clip, identity, outdir: Path | None) -> None:
        from .data import LatentData

        if cfg.batch_size % ctx.world:
            raise UsageError(f"--batch-size {cfg.batch_size} must be a multiple of the {ctx.world} processes")
        self.cfg, self.ctx, self.outdir = cfg, ctx, outdir
        self.device = ctx.device
        self.G = G.eval().requires_grad_(False).to(self.device)
        self.guide = clip if clip is not None else _load_clip(cfg.clip, self.device)
        self.guide = self.guide.to(self.device)
        self.preprocess = cfg.preprocess
        if self.preprocess == "auto":
            self.preprocess = "styleclip" if self.guide.resolution == 224 and 32 <= G.img_resolution <= 1024 else "clip"
        face = G.meta.get("domain") == "face"
        self.id_weight = cfg.id_weight if cfg.id_weight is not None else (FACE_ID_WEIGHT if face else 0.0)
        self.identity = None
        if self.id_weight > 0:
            from ..guidance.identity import load_identity_loss

            self.identity = identity if identity is not None else load_identity_loss(cfg.identity or "arcface:ir-se50")
            self.identity = self.identity.to(self.device)
        self.data = LatentData(self.G, cfg, ctx)
        torch.manual_seed(cfg.seed)  # the same initial weights on every process
        self.mapper = LatentMapper(
            MapperConfig(w_dim=G.w_dim, num_ws=G.num_ws, groups=tuple(cfg.groups), strength=cfg.strength)
        ).to(self.device)
        self.mapper.meta.update(_mapper_meta(cfg, self.G))
        self.mapper.attach_generator(self.G)
        self.optimizer = _optimizer(cfg, self.mapper.parameters())
        self.text = self.guide.encode_text(cfg.prompt).to(self.device)  # StyleCLIP: the bare prompt, no templates
        self.clip_loss, self.l2_loss = ClipLoss(self.guide.logit_scale), LatentL2Loss()
        self.precision = resolve_precision(cfg.precision, self.device)
        self.scaler = gradient_scaler(self.precision, self.device)

    # -- one step --------------------------------------------------------------------------------------

    def losses(self, model, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image loss terms ``{name: [n]}`` for W+ ``ws: [n, num_ws, w_dim]``."""
        edited = ws + self.cfg.strength * model(ws)  # the mapper itself in fp32
        with computing_in(self.precision), compiling(self.cfg.compile):
            image = self.G.synthesize(edited)
            clip = self.clip_loss(self.guide.encode_image(image, preprocess=self.preprocess), self.text)
        l2 = self.l2_loss(edited.float(), ws) / (ws.shape[1] * ws.shape[2])  # StyleCLIP's MSELoss: a mean
        total = self.cfg.clip_weight * clip + self.cfg.l2_weight * l2
        terms = {"clip": clip.float(), "l2": l2}
        if self.identity is not None:
            with torch.no_grad(), computing_in(self.precision):
                source = self.identity.embed(self.G.synthesize(ws))
            with computing_in(self.precision):
                ident = self.identity(image.float(), source_emb=source)
            total = total + self.id_weight * ident
            terms["id"] = ident
        return {"loss": total.float(), **terms}

    def step(self, model, step: int) -> dict[str, torch.Tensor]:
        ws = self.data.train_batch(step).to(self.device)
        terms = self.losses(model, ws)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(terms["loss"].mean()).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {k: v.detach().mean() for k, v in terms.items()}

    @torch.no_grad()
    def validate(self, step: int) -> dict[str, float]:
        """Mean loss terms over the held-out latents (shared out between processes); an image grid on rank 0."""
        ws_all = self.data.test[: self.cfg.val_count]
        mine = ws_all[self.ctx.rank :: self.ctx.world]
        sums: dict[str, torch.Tensor] = {}
        for start in range(0, len(mine), 8):
            terms = self.losses(self.mapper, mine[start : start + 8].to(self.device))
            for k, v in terms.items():
                sums[k] = sums.get(k, torch.zeros((), device=self.device)) + v.sum()
        keys = ["clip", "l2", "loss"] + (["id"] if self.identity is not None else [])  # the same on every process
        total = self.ctx.all_sum(torch.stack([sums.get(k, torch.zeros((), device=self.device)) for k in keys]))
        values = {k: float(v) / len(ws_all) for k, v in zip(keys, total, strict=True)}
        if self.ctx.is_main and self.outdir is not None:
            self._save_grid(ws_all[:4].to(self.device), step)
        return values

    def _save_grid(self, ws: torch.Tensor, step: int) -> None:
        from ..io.images import image_grid, save_png, to_pil

        with computing_in(self.precision):
            before = to_pil(self.G.synthesize(ws))
            after = to_pil(self.G.synthesize(self.mapper.edit(ws)))
        rows = [[b, a] for b, a in zip(before, after, strict=True)]
        save_png(image_grid(rows, ["held-out latent", f"after {step} steps"]), self.outdir / "val" / f"{step:06d}.png")

    # -- the loop --------------------------------------------------------------------------------------

    def run(self, resume: bool, progress: bool, callback) -> TrainResult:
        from .checkpoints import Checkpoints

        cfg, ctx = self.cfg, self.ctx
        ckpts = Checkpoints(self.outdir, cfg, self.mapper.meta, RESUME_KEYS) if self.outdir is not None else None
        start = ckpts.restore(self.mapper, self.optimizer) if (resume and ckpts is not None) else 0
        if resume and ckpts is None:
            raise UsageError("resuming needs the outdir of the run")
        model = self.mapper
        if ctx.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(self.mapper, device_ids=ids)
        log = RunLog(self.outdir, start, ctx.is_main)
        history: list[dict] = []
        stopped, step = "done", start
        bar = tqdm(total=cfg.steps, initial=start, desc="mapper", unit="step", disable=not (progress and ctx.is_main))
        t0 = time.perf_counter()
        try:
            while step < cfg.steps:
                terms = self.step(model, step)
                step += 1
                info = None
                if step % cfg.log_every == 0 or step == cfg.steps:
                    keys = sorted(terms)
                    mean = ctx.all_mean(torch.stack([terms[k] for k in keys]))
                    info = {"step": step, "split": "train", **{k: float(v) for k, v in zip(keys, mean, strict=True)}}
                    info["seconds"] = round(time.perf_counter() - t0, 3)
                    history.append(log.write(info))
                    if not math.isfinite(info["loss"]):  # every process sees the same mean, so all stop here
                        raise StyleclipError(
                            f"the loss became {info['loss']} at step {step}; resume from the last checkpoint with a "
                            "lower --lr, or train with --precision fp32"
                        )
                    bar.set_postfix(loss=f"{info['loss']:.4f}", clip=f"{info['clip']:.4f}")
                if step % cfg.val_every == 0 or step == cfg.steps:
                    history.append(log.write({"step": step, "split": "val", **self.validate(step)}))
                if ckpts is not None and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
                    ckpts.save(self.mapper, self.optimizer, step, ctx)
                bar.update(1)
                if callback is not None:
                    callback(step, info or {"step": step})
            if ctx.world > 1:  # DDP keeps the copies equal; say so in the log, where a run can be audited
                diff = ctx.max_difference(list(self.mapper.parameters()))
                history.append(log.write({"step": step, "split": "ranks", "world": ctx.world, "max_difference": diff}))
        except KeyboardInterrupt:
            stopped = "interrupted"
            if ckpts is not None and ctx.world == 1:  # with several processes the others may be mid-step
                ckpts.save(self.mapper, self.optimizer, step, ctx)
        finally:
            bar.close()
            log.close()
        path = ckpts.final_path if ckpts is not None else None
        return TrainResult(self.mapper, step, stopped, history, path)


def _mapper_meta(cfg: MapperTrainConfig, G: Generator) -> dict:
    """What a saved mapper records: its prompt, the generator it was trained with, and the training settings."""
    from ..stylespace import generator_fingerprint

    generator = {"fingerprint": generator_fingerprint(G), "name": G.meta.get("asset"), "source": G.meta.get("source")}
    return {"prompt": cfg.prompt, "generator": generator, "training": cfg.to_dict()}


def _load_clip(name: str, device: torch.device) -> ClipGuide:
    from ..guidance.clip import load_clip

    return load_clip(name, device=device)  # 'auto': follows the trainer's precision scope


def _optimizer(cfg: MapperTrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr)
    from .ranger import Ranger

    return Ranger(params, lr=cfg.lr)
