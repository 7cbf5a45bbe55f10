"""Edit by latent optimisation (StyleCLIP's first method): move a latent until CLIP agrees with the prompt.

    minimise  D_CLIP(G(w), t) + λ_L2 · ‖w − w_s‖² + λ_ID · (1 − cos(ArcFace(G(w)), ArcFace(G(w_s))))

with Adam over W+ (default), W or StyleSpace S, the learning rate following StyleCLIP's schedule. Every
prompt x source pair of a call is one sample of one batch on the device; each sample's loss is summed, so
its gradients (and Adam's per-element steps) are exactly what it would get alone.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..errors import UsageError
from ..guidance.clip import DEFAULT_CLIP, ClipGuide, load_clip
from ..guidance.identity import IdentityLoss, load_identity_loss
from ..guidance.losses import ClipLoss, DirectionalClipLoss, LatentL2Loss, StyleL2Loss
from ..guidance.preprocess import MODES
from ..io.images import to_uint8
from ..latents import load_latent, select_style_layers, select_ws
from ..nets.stylegan2 import Generator
from ..sample import TRUNCATION_RANGE
from ..utils.compiling import compiling
from ..utils.precision import PRECISIONS, computing_in, resolve_precision
from ..utils.precision import describe as describe_precision
from ..utils.schedules import learning_rate
from ..utils.values import check_bool, check_choice, check_float, check_int, check_str, check_str_list

SPACES = ("w+", "w", "s")
LOSSES = ("global", "directional")
FACE_ID_WEIGHT = 0.005


@dataclass
class OptimizeConfig:
    """Everything that determines an edit (saved in ``report.json``; the same config reproduces the latent).

    ``l2_weight``: how far the edit may wander from the source. 0.002 allows big changes (identity and
    background may go), 0.008 (default) is StyleCLIP's edit setting, 0.06 keeps only subtle ones.
    ``id_weight``: ArcFace identity term; ``None`` = 0.005 for face generators, 0 otherwise.
    """

    prompts: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    latent: str | None = None  # a latent file (.npy/.npz/.pt) instead of seeds; one source per row
    mode: str = "edit"  # 'edit' or 'free' (start from the mean latent, no L2 / identity terms)
    space: str = "w+"  # 'w+', 'w' or 's'
    layers: str | list[str] | None = None  # which W+ rows / style layers may change (None = all)
    steps: int = 150
    lr: float = 0.1
    rampup: float = 0.05  # fraction of the steps with a linear lr ramp-up (StyleCLIP: 0.05)
    rampdown: float = 0.25  # fraction with a cosine ramp-down (StyleCLIP: 0.25; the seed notebook: 0.5)
    l2_weight: float = 0.008
    id_weight: float | None = None
    loss: str = "global"  # 'global' (StyleCLIP) or 'directional' (needs ``neutral``)
    neutral: str | None = None  # the neutral description for the directional loss, e.g. "a dog"
    templates: bool | None = None  # average the 80 ImageNet templates (None: only for the directional loss)
    augment: int = 0  # score this many random crops per image instead of the image alone
    preprocess: str = "clip"  # 'clip' (resize + CLIP normalisation) or 'styleclip' (its exact recipe)
    truncation_psi: float = 0.7
    truncation_cutoff: int | None = None
    class_idx: int | None = None
    noise_mode: str = "const"
    clip: str = DEFAULT_CLIP
    identity: str | None = None  # ArcFace weights (path or catalogue name); None = arcface:ir-se50
    seed: int = 0  # seeds the augmentation crops
    precision: str = "auto"  # the networks' arithmetic: auto, fp32, bf16, fp16 (latents and Adam stay fp32)
    compile: bool | None = None  # torch.compile the generator (utils.compiling); None = as the enclosing job says

    def __post_init__(self) -> None:
        if isinstance(self.prompts, str):
            self.prompts = [self.prompts]
        self.prompts = list(self.prompts)
        self.seeds = [int(s) for s in self.seeds]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OptimizeConfig:
        """The config a report holds, every value type- and range-checked (a report is data anyone can write)."""
        if not isinstance(data, dict):
            raise UsageError("the optimisation settings must be a mapping of names to values")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(map(str, set(data) - known))
        if unknown:
            raise UsageError(f"unknown optimisation settings: {', '.join(unknown)}")
        missing = sorted(f.name for f in dataclasses.fields(cls) if f.name in _REQUIRED and f.name not in data)
        if missing:
            raise UsageError(f"the optimisation settings lack {', '.join(missing)}")
        _check_types({**dataclasses.asdict(_DEFAULTS), **data})
        config = cls(**data)
        config.check()
        return config

    def check(self) -> None:
        """Raise :class:`UsageError` with a one-line message for any invalid setting."""
        prompts = self.prompts
        if isinstance(prompts, list) and (not prompts or any(isinstance(p, str) and not p.strip() for p in prompts)):
            raise UsageError("empty prompt: describe what the image should show")
        if isinstance(self.steps, int) and not isinstance(self.steps, bool) and self.steps <= 0:
            raise UsageError(f"steps must be at least 1, got {self.steps}")
        _check_types(dataclasses.asdict(self))
        if self.loss == "directional" and not (self.neutral and self.neutral.strip()):
            raise UsageError("the directional loss needs a neutral description, e.g. --neutral 'a dog'")
        if self.space == "w" and self.layers not in (None, "all", ["all"]):
            raise UsageError("layer selection needs W+ or S: in W one vector drives every layer (use --space w+)")
        if not self.seeds and self.latent is None and self.mode == "edit":
            raise UsageError("give at least one seed or a latent file")


# Bounds on what one edit may ask for: beyond them a value is a typo or an attack (a report asking for a billion
# steps or crops, a truncation of 1e308 that turns every picture black), never a useful setting.
MAX_STEPS = 100_000
MAX_AUGMENT = 128
MAX_PROMPTS = 1_000
_REQUIRED = ("prompts",)
_DEFAULTS = OptimizeConfig(prompts=["x"])


def _check_types(v: dict[str, Any]) -> None:
    """Every field of an :class:`OptimizeConfig` as a dict: its type and range, one line naming the field."""
    from ..sample import MAX_SEEDS, SEED_LIMIT

    check_str_list("prompts", v["prompts"], max_items=MAX_PROMPTS)
    seeds = v["seeds"]
    if not isinstance(seeds, (list, tuple)) or len(seeds) > MAX_SEEDS:
        raise UsageError(f"seeds must be a list of at most {MAX_SEEDS} integers")
    for seed in seeds:
        check_int("seeds", seed, 0, SEED_LIMIT - 1)
    check_str("latent", v["latent"], optional=True)
    check_choice("mode", v["mode"], ("edit", "free"))
    check_choice("space", v["space"], SPACES)
    if isinstance(v["layers"], str) or v["layers"] is None:
        check_str("layers", v["layers"], optional=True)
    else:
        check_str_list("layers", v["layers"], max_items=1_000, max_len=200)
    check_int("steps", v["steps"], 1, MAX_STEPS)
    check_float("lr", v["lr"], 0)
    check_float("rampup", v["rampup"], 0, 1)
    check_float("rampdown", v["rampdown"], 0, 1, lo_open=True)
    check_float("l2_weight", v["l2_weight"], 0)
    check_float("id_weight", v["id_weight"], 0, optional=True)
    check_choice("loss", v["loss"], LOSSES)
    check_str("neutral", v["neutral"], optional=True)
    check_bool("templates", v["templates"], optional=True)
    check_int("augment", v["augment"], 0, MAX_AUGMENT)
    check_choice("preprocess", v["preprocess"], MODES)
    check_float("truncation_psi", v["truncation_psi"], *TRUNCATION_RANGE)
    check_int("truncation_cutoff", v["truncation_cutoff"], 0, 1_000, optional=True)
    check_int("class_idx", v["class_idx"], 0, 1 << 31, optional=True)
    check_choice("noise_mode", v["noise_mode"], ("const", "random", "none"))
    check_str("clip", v["clip"])
    check_str("identity", v["identity"], optional=True)
    check_int("seed", v["seed"], 0, (1 << 63) - 1)
    check_choice("precision", v["precision"], PRECISIONS)
    check_bool("compile", v["compile"], optional=True)


@dataclass
class EditResult:
    """One edited image and how it got there (tensors on the CPU).

    ``latent``: the edited W+ ``[1, num_ws, w_dim]`` (in S mode: the W+ it started from; the edit is in
    ``styles``). ``image``/``source_image``: ``[1, C, H, W]`` in about ``[-1, 1]``. ``history``: one dict
    per step (``step``, ``lr``, ``clip``, ``l2``, ``id``, ``total``). ``stopped``: 'completed',
    'interrupted', 'budget' (best result so far) or 'nan' (last finite step).
    """

    prompt: str
    seed: int | None
    source_latent: torch.Tensor
    latent: torch.Tensor
    styles: dict[str, torch.Tensor] | None
    source_image: torch.Tensor
    image: torch.Tensor
    clip_before: float
    clip_after: float
    identity_similarity: float | None
    history: list[dict[str, float]]
    steps_done: int
    stopped: str
    message: str
    config: OptimizeConfig
    wall_time: float
    frames: list[np.ndarray] = field(default_factory=list)
    precision: dict[str, str] = field(default_factory=dict)  # requested, used, why
    compile: dict[str, Any] = field(default_factory=dict)  # requested, used, why (utils.compiling)


FrameSink = Callable[[int, int, np.ndarray], None]  # (sample index, step, [H, W, 3] uint8)


def optimize(
    G: Generator,
    prompts: str | Sequence[str] | None = None,
    clip: ClipGuide | str | Path | None = None,
    config: OptimizeConfig | None = None,
    *,
    identity: IdentityLoss | None = None,
    source: torch.Tensor | None = None,
    source_styles: dict[str, torch.Tensor] | None = None,
    image: Any = None,
    frame_every: int | None = None,
    on_frame: FrameSink | None = None,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
    max_steps: int | None = None,
    time_limit: float | None = None,
    progress: bool = True,
    **settings: Any,
) -> list[EditResult]:
    """Edit generated (or inverted) images towards text prompts by optimising their latents.

    Args:
        G: the generator (frozen).
        prompts: one prompt or several; with several seeds every prompt x seed pair is one result.
        clip: a loaded :class:`ClipGuide` or a name/path for :func:`load_clip` (default ViT-B-32:openai).
        config: an :class:`OptimizeConfig`; or pass its fields as keyword ``settings``
            (``seeds=[9]``, ``steps=150``, ``space="w"``, ``layers="coarse"``, ``l2_weight=0.02``, ...).
        identity: a loaded :class:`IdentityLoss` (else loaded from ``config.identity`` when ``id_weight > 0``).
        source: W+ latents ``[K, num_ws, w_dim]`` to edit instead of seeds (e.g. from an inversion).
        source_styles: StyleSpace codes ``{layer: [K, channels]}`` that replace ``G.styles(source)`` (a source that
            already carries a StyleSpace edit, e.g. a global direction); needs ``space="s"``.
        image: a photo (path or PIL image) to invert with :func:`styleclip.invert` defaults and then edit.
        frame_every: keep a frame every this many steps (``result.frames``, or streamed to ``on_frame``).
        on_frame: ``on_frame(sample, step, frame)`` receives frames instead of keeping them in memory.
        callback: ``callback(step, info)`` after every step (``info``: per-sample loss terms and lr);
            raising ``KeyboardInterrupt`` there stops the run like Ctrl-C.
        max_steps, time_limit: stop early after this many steps / seconds, keeping the best result.
        progress: show a progress bar with the loss terms.

    Returns:
        One :class:`EditResult` per prompt x source, prompts outermost.
    """
    if image is not None:  # a photo: invert it (the catalogue's encoder, else projection), edit its latent
        from ..inversion.invert import invert

        inversion = invert(image, G, progress=progress)
        source, G = inversion.ws, inversion.generator
    if config is None:
        if prompts is None:
            raise UsageError("give a prompt")
        config = OptimizeConfig(prompts=prompts if not isinstance(prompts, str) else [prompts], **settings)
    else:  # never change the caller's object
        config = dataclasses.replace(config, **({"prompts": prompts} if prompts is not None else {}), **settings)
    config.__post_init__()
    config.check()
    if frame_every is not None and frame_every < 1:
        raise UsageError("frame_every must be at least 1")
    guide = clip if isinstance(clip, ClipGuide) else load_clip(clip or config.clip, device=G.device)
    if isinstance(clip, ClipGuide):
        config.clip = clip.name
    precision = resolve_precision(config.precision, G.device)
    if source_styles is not None and (source is None or config.space != "s"):
        raise UsageError("this source carries a StyleSpace edit: optimise it in S (space='s') from its W+ and styles")
    # the generator, CLIP and ArcFace compute in `precision`; latents, Adam and loss sums stay fp32
    with computing_in(precision), compiling(config.compile) as compiled:
        run = _Run(G, guide, config, identity, source, source_styles)
        results = run.optimize(frame_every, on_frame, callback, max_steps, time_limit, progress)
    for r in results:
        r.precision = describe_precision(config.precision, precision, G.device)
        r.compile = compiled.report()
    return results


class _Run:
    """One batched optimisation: sources and targets prepared once, then the step loop."""

    def __init__(
        self,
        G: Generator,
        guide: ClipGuide,
        cfg: OptimizeConfig,
        identity: IdentityLoss | None,
        source: torch.Tensor | None,
        source_styles: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.G, self.guide, self.cfg = G, guide, cfg
        self.device = G.device
        with torch.no_grad():
            sources, self.seeds = self._sources(source)
        P, K = len(cfg.prompts), sources.shape[0]
        self.n = P * K
        self.prompts = [p for p in cfg.prompts for _ in range(K)]
        self.seed_of = [s for _ in cfg.prompts for s in self.seeds]
        self.w_source = sources.repeat(P, 1, 1)  # [N, num_ws, w_dim], prompt-major
        if cfg.space == "w" and not torch.equal(self.w_source, self.w_source[:, :1].expand_as(self.w_source)):
            raise UsageError("the source latent has different W+ rows (e.g. truncation cutoff or inversion); use W+")
        self.edit = cfg.mode == "edit"
        domain = G.meta.get("domain")
        self.id_weight = cfg.id_weight if cfg.id_weight is not None else (FACE_ID_WEIGHT if domain == "face" else 0.0)
        if not self.edit:
            self.id_weight = 0.0
        self.identity = None
        if self.id_weight > 0:
            self.identity = identity if identity is not None else load_identity_loss(cfg.identity or "arcface:ir-se50")
            self.identity = self.identity.to(self.device)
        templates = cfg.templates if cfg.templates is not None else cfg.loss == "directional"
        if cfg.loss == "directional":
            self.text = torch.stack([guide.direction(p, cfg.neutral, templates=templates) for p in self.prompts])
        self.target = guide.encode_text(self.prompts, templates=templates).to(self.device)  # [N, D]
        self.clip_loss = ClipLoss(guide.logit_scale) if cfg.loss == "global" else DirectionalClipLoss()
        self.latent_l2, self.style_l2 = LatentL2Loss(), StyleL2Loss()

        with torch.no_grad():
            self.source_styles = G.styles(self.w_source) if cfg.space == "s" else None
            if source_styles is not None:  # an already style-edited source: its styles, one copy per prompt
                G.broadcast(source)  # the same checks as a W+ source
                self.source_styles = {
                    k: source_styles[k].to(self.device, torch.float32).repeat(P, 1) for k in self.source_styles
                }
                self.source_image = G.synthesis_from_styles(self.source_styles, noise_mode=cfg.noise_mode)
            else:
                self.source_image = G.synthesize(self.w_source, noise_mode=cfg.noise_mode)
            self.source_emb = guide.encode_image(self.source_image, preprocess=cfg.preprocess)
            self.source_id = self.identity.embed(self.source_image) if self.identity is not None else None

    # -- sources -----------------------------------------------------------------------------------

    def _sources(self, source: torch.Tensor | None) -> tuple[torch.Tensor, list[int | None]]:
        G, cfg = self.G, self.cfg
        if cfg.mode == "free":
            w = G.w_avg.reshape(1, 1, -1).expand(1, G.num_ws, -1)
            return w.to(self.device, torch.float32).clone(), [None]
        if source is not None:
            w = G.broadcast(source.to(self.device, torch.float32))
            return w.clone(), [None] * w.shape[0]
        if cfg.latent is not None:
            w = load_latent(cfg.latent, G)
            return w, [None] * w.shape[0]
        z = G.z_from_seed(cfg.seeds)
        c = G.label(cfg.class_idx, batch=len(cfg.seeds))
        w = G.mapping_forward(z, c, truncation_psi=cfg.truncation_psi, truncation_cutoff=cfg.truncation_cutoff)
        return w, list(cfg.seeds)

    # -- one step's loss -----------------------------------------------------------------------------

    def _embed(self, img: torch.Tensor, step: int) -> torch.Tensor:
        if self.cfg.augment:
            seed = self.cfg.seed * 1_000_003 + step
            return self.guide.encode_image_views(img, n=self.cfg.augment, seed=seed, preprocess=self.cfg.preprocess)
        return self.guide.encode_image(img, preprocess=self.cfg.preprocess)

    def _terms(self, img: torch.Tensor, current: torch.Tensor | dict, step: int) -> dict[str, torch.Tensor]:
        emb = self._embed(img, step)
        if self.cfg.loss == "directional":
            source = self.source_emb
            if self.cfg.augment:  # the same crops of the source, or the crop itself would count as the edit
                with torch.no_grad():
                    source = self._embed(self.source_image, step)
            clip = self.clip_loss(emb, source, self.text)
        else:
            clip = self.clip_loss(emb, self.target)
        zero = torch.zeros_like(clip)
        if not self.edit:
            l2 = zero
        elif self.cfg.space == "s":
            l2 = self.style_l2(current, {k: self.source_styles[k] for k in current})
        else:
            l2 = self.latent_l2(current, self.w_source if current.ndim == 3 else self.w_source[:, 0])
        ident = self.identity(img, source_emb=self.source_id) if self.identity is not None else zero
        total = clip + self.cfg.l2_weight * l2 + self.id_weight * ident
        return {"clip": clip, "l2": l2, "id": ident, "total": total}

    # -- the loop ----------------------------------------------------------------------------------

    def optimize(self, frame_every, on_frame, callback, max_steps, time_limit, progress) -> list[EditResult]:
        cfg, G = self.cfg, self.G
        t0 = time.perf_counter()
        mask = select_ws(cfg.layers, G).to(self.device) if cfg.space != "s" else None
        if cfg.space == "s":
            names = select_style_layers(cfg.layers, G)
            params = {k: self.source_styles[k].clone().requires_grad_(True) for k in names}
            variables = list(params.values())
        elif cfg.space == "w":
            w = self.w_source[:, 0].clone().requires_grad_(True)
            variables = [w]
        else:
            w = self.w_source.clone().requires_grad_(True)
            variables = [w]
        opt = torch.optim.Adam(variables, lr=cfg.lr)

        def current():
            """The latent being scored: frozen rows / layers are the source's own tensors, bit for bit."""
            if cfg.space == "s":
                return {**self.source_styles, **params}
            if cfg.space == "w":
                return w
            return torch.where(mask[None, :, None], w, self.w_source)

        def snapshot(x):
            if isinstance(x, dict):
                return {k: v.detach().clone() for k, v in x.items()}
            return x.detach().clone()

        def variables_now():
            """What the optimiser moves (S: only the chosen layers; the rest is the source's, always)."""
            return params if cfg.space == "s" else current()

        best_loss = torch.full((self.n,), math.inf, device=self.device)
        best = snapshot(variables_now())
        last_good = best
        history: list[list[dict[str, float]]] = [[] for _ in range(self.n)]
        frames: list[list[np.ndarray]] = [[] for _ in range(self.n)]
        stopped, message, steps_done = "completed", "", 0
        limit = cfg.steps if max_steps is None else min(cfg.steps, max_steps)
        bar = tqdm(total=cfg.steps, desc="edit", unit="step", disable=not progress or None, leave=False)
        try:
            for step in range(cfg.steps):
                if step >= limit or (time_limit is not None and time.perf_counter() - t0 > time_limit):
                    stopped, message = "budget", f"stopped at the step budget after {step} steps; kept the best result"
                    break
                lr = learning_rate(step / cfg.steps, cfg.lr, cfg.rampup, cfg.rampdown)
                for group in opt.param_groups:
                    group["lr"] = lr
                latent = current()
                # 'auto' modulation: the activation-scaled path, whose backward needs no weight gradient
                if cfg.space == "s":
                    img = G.synthesis_from_styles(latent, noise_mode=cfg.noise_mode)
                else:
                    img = G.synthesize(latent, noise_mode=cfg.noise_mode)
                terms = self._terms(img, latent if cfg.space != "s" else params, step)
                total = terms["total"]
                stacked = torch.stack([v.detach().float() for v in terms.values()]).cpu().tolist()  # one sync
                values = dict(zip(terms, stacked, strict=True))
                if not all(math.isfinite(v) for v in values["total"]):
                    bad = [i for i, v in enumerate(values["total"]) if not math.isfinite(v)]
                    stopped = "nan"
                    message = (
                        f"the loss became NaN/infinite at step {step} (samples {bad}); kept the result of step "
                        f"{max(step - 1, 0)} - lower the learning rate (now {cfg.lr})"
                    )
                    break
                last_good = snapshot(variables_now())
                improved = total.detach() < best_loss
                if improved.any():
                    best_loss = torch.where(improved, total.detach(), best_loss)
                    best = _merge(best, last_good, improved)
                for i in range(self.n):
                    history[i].append({"step": step, "lr": lr, **{k: v[i] for k, v in values.items()}})
                if frame_every is not None and step % frame_every == 0:
                    self._frames(img, step, frames, on_frame)
                opt.zero_grad(set_to_none=True)
                total.sum().backward()
                opt.step()
                steps_done = step + 1
                bar.update(1)
                bar.set_postfix({k: f"{sum(v) / len(v):.4f}" for k, v in values.items() if k != "total"}, refresh=False)
                if callback is not None:
                    callback(step, {"lr": lr, **values})
        except KeyboardInterrupt:
            stopped, message = "interrupted", f"interrupted after {steps_done} steps; kept the best result so far"
        finally:
            bar.close()

        if stopped == "completed":
            final = snapshot(variables_now())
        elif stopped == "nan":
            final = last_good
        else:
            final = best
        return self._results(final, history, frames, frame_every, on_frame, steps_done, stopped, message, t0)

    def _frames(self, img: torch.Tensor, step: int, frames: list, on_frame) -> None:
        pixels = to_uint8(img)  # the only copy to the CPU, and only on frame steps
        for i in range(self.n):
            if on_frame is not None:
                on_frame(i, step, pixels[i])
            else:
                frames[i].append(pixels[i])

    @torch.no_grad()
    def _results(self, final, history, frames, frame_every, on_frame, steps_done, stopped, message, t0):
        cfg, G = self.cfg, self.G
        if cfg.space == "s":
            styles = {**self.source_styles, **final}
            image = G.synthesis_from_styles(styles, noise_mode=cfg.noise_mode)
            latent = self.w_source
        else:
            styles = None
            latent = G.broadcast(final)
            image = G.synthesize(latent, noise_mode=cfg.noise_mode)
        if frame_every is not None:
            self._frames(image, steps_done, frames, on_frame)  # the final image ends the trajectory
        # The reported similarities are measured in fp32, whatever the job ran in, so that runs in different
        # precisions compare: bf16's own rounding in CLIP moves a similarity by a few thousandths.
        with computing_in("fp32"):
            emb = self.guide.encode_image(image, preprocess=cfg.preprocess)
            source_emb = self.guide.encode_image(self.source_image, preprocess=cfg.preprocess)
            after = (emb * self.target).sum(-1).tolist()  # encode_image / encode_text give fp32
            before = (source_emb * self.target).sum(-1).tolist()
            ident = None
            if self.identity is not None:
                source_id = self.identity.embed(self.source_image)
                ident = (self.identity.embed(image) * source_id).sum(-1).tolist()
        wall = time.perf_counter() - t0
        out = []
        for i in range(self.n):
            out.append(
                EditResult(
                    prompt=self.prompts[i],
                    seed=self.seed_of[i],
                    source_latent=self.w_source[i : i + 1].cpu(),
                    latent=latent[i : i + 1].contiguous().cpu(),
                    styles={k: v[i : i + 1].cpu() for k, v in styles.items()} if styles is not None else None,
                    source_image=self.source_image[i : i + 1].cpu(),
                    image=image[i : i + 1].cpu(),
                    clip_before=before[i],
                    clip_after=after[i],
                    identity_similarity=ident[i] if ident is not None else None,
                    history=history[i],
                    steps_done=steps_done,
                    stopped=stopped,
                    message=message,
                    config=dataclasses.replace(self.cfg),
                    wall_time=wall,
                    frames=frames[i],
                )
            )
        return out


def _merge(best, new, improved: torch.Tensor):
    """Per sample, ``new`` where ``improved`` else ``best`` (tensors or dicts of ``[N, ...]`` tensors)."""
    if isinstance(best, dict):
        return {k: _merge(best[k], new[k], improved) for k in best}
    return torch.where(improved.view(-1, *([1] * (best.ndim - 1))), new, best)
