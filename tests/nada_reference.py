"""StyleGAN-NADA's algorithm, written for the tests from its paper and published constants, in its own terms.

Independent of styleclip's implementation wherever NADA's own choices live: prompts are tokenised and encoded with
open_clip directly, pictures are prepared with torchvision's transforms in NADA's order, the layers are named as in
rosinality's generator (NADA's) and mapped onto styleclip's parameters through the rosinality checkpoint writer, and
Adam is written out by hand. Only the generator's forward pass (checked against the official code elsewhere) and the
CLIP network are shared.
"""

from __future__ import annotations

import copy
import math

import open_clip
import torch
import torch.nn.functional as F
from torchvision import transforms

from checkpoint_writers import rosinality_state_dict

# NADA's ZSSGAN/utils/text_templates.py imagenet_templates, in order (79 prompts).
NADA_TEMPLATES = [
    "a bad photo of a {}.", "a sculpture of a {}.", "a photo of the hard to see {}.",
    "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.", "a bad photo of the {}.",
    "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.", "a photo of a hard to see {}.",
    "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.", "a dark photo of the {}.",
    "a drawing of a {}.", "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.",
    "a painting of a {}.", "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.",
    "a cropped photo of a {}.", "a plastic {}.", "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.", "a photo of the {}.", "a good photo of the {}.", "a rendering of the {}.",
    "a {} in a video game.", "a photo of one {}.", "a doodle of a {}.", "a close-up photo of the {}.",
    "a photo of a {}.", "the origami {}.", "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.",
    "a origami {}.", "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.",
    "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.", "a photo of a nice {}.",
    "a photo of a weird {}.", "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.", "a sketch of the {}.",
    "a embroidered {}.", "a pixelated photo of a {}.", "itap of the {}.", "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.", "a plushie {}.", "a photo of the nice {}.", "a photo of the small {}.",
    "a photo of the weird {}.", "the cartoon {}.", "art of the {}.", "a drawing of the {}.",
    "a photo of the large {}.", "a black and white photo of a {}.", "the plushie {}.", "a dark photo of a {}.",
    "itap of a {}.", "graffiti of the {}.", "a toy {}.", "itap of my {}.", "a photo of a cool {}.",
    "a photo of a small {}.", "a tattoo of the {}.",
]  # fmt: skip
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class NadaClipLoss:
    """NADA's CLIPLoss for one CLIP network (``model``: an open_clip CLIP) at input side ``size``."""

    def __init__(self, model, size: int, source: str, target: str, lambda_direction=1.0, lambda_global=0.0) -> None:
        self.model, self.source, self.target = model, source, target
        self.lambda_direction, self.lambda_global = lambda_direction, lambda_global
        self.preprocess = transforms.Compose(
            [
                transforms.Normalize(mean=[-1.0, -1.0, -1.0], std=[2.0, 2.0, 2.0]),
                transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
                transforms.CenterCrop(size),
                transforms.Normalize(CLIP_MEAN, CLIP_STD),
            ]
        )
        self.target_direction = None

    def text_features(self, text: str) -> torch.Tensor:
        tokens = open_clip.tokenize([t.format(text) for t in NADA_TEMPLATES])
        f = self.model.encode_text(tokens).detach()
        return f / f.norm(dim=-1, keepdim=True)

    def text_direction(self) -> torch.Tensor:
        d = (self.text_features(self.target) - self.text_features(self.source)).mean(dim=0, keepdim=True)
        return d / d.norm(dim=-1, keepdim=True)

    def image_features(self, img: torch.Tensor) -> torch.Tensor:
        f = self.model.encode_image(self.preprocess(img))
        return f / f.clone().norm(dim=-1, keepdim=True)

    def directional(self, src_img: torch.Tensor, tgt_img: torch.Tensor) -> torch.Tensor:
        if self.target_direction is None:
            self.target_direction = self.text_direction()
        s = self.image_features(src_img)
        t = self.image_features(tgt_img)
        e = t - s
        if e.sum() == 0:
            t = self.image_features(tgt_img + 1e-6)
            e = t - s
        e = e / e.clone().norm(dim=-1, keepdim=True)
        return (1 - F.cosine_similarity(e, self.target_direction)).mean()

    def global_loss(self, img: torch.Tensor, text: str) -> torch.Tensor:
        tokens = open_clip.tokenize([text])
        i = self.model.encode_image(self.preprocess(img))
        t = self.model.encode_text(tokens)
        logits = (
            self.model.logit_scale.exp() * (i / i.norm(dim=-1, keepdim=True)) @ (t / t.norm(dim=-1, keepdim=True)).T
        )
        return (1 - logits / 100).mean()

    def __call__(self, src_img: torch.Tensor, tgt_img: torch.Tensor) -> torch.Tensor:
        loss = torch.zeros(())
        if self.lambda_global:
            loss = loss + self.lambda_global * self.global_loss(tgt_img, f"a {self.target}")
        if self.lambda_direction:
            loss = loss + self.lambda_direction * self.directional(src_img, tgt_img)
        return loss


def rosinality_modules(G) -> dict[str, list[str]]:
    """``{rosinality child module ('input', 'conv1', 'to_rgb1', 'convs.3', ...): [styleclip parameter names]}``,
    found by writing each parameter as a distinct constant through the rosinality checkpoint writer."""
    tagged = copy.deepcopy(G)
    names = [n for n, _ in tagged.named_parameters()]
    with torch.no_grad():
        for k, (_, p) in enumerate(tagged.named_parameters()):
            p.fill_(1000.0 + k)
    out: dict[str, list[str]] = {}
    for key, value in rosinality_state_dict(tagged).items():
        v = float(value.flatten()[0])
        if v >= 1000.0 and float(value.flatten()[-1]) == v and v == int(v) and int(v) - 1000 < len(names):
            parts = key.split(".")
            module = ".".join(parts[:2]) if parts[0] in ("convs", "to_rgbs", "style") else parts[0]
            out.setdefault(module, []).append(names[int(v) - 1000])
    return out


class NadaReference:
    """NADA's training step (ZSSGAN.forward + train.py) on a copy of ``G``, with hand-written Adam."""

    def __init__(self, G, losses, weights, target: str, lr=0.002, auto_layer_k=None, auto_layer_iters=1) -> None:
        self.frozen = G
        self.trainable = copy.deepcopy(G).requires_grad_(False)
        self.losses, self.weights, self.target = losses, weights, target
        g_reg_ratio = 4 / 5
        self.lr, self.beta1, self.beta2, self.eps = lr * g_reg_ratio, 0**g_reg_ratio, 0.99**g_reg_ratio, 1e-8
        self.k, self.iters = auto_layer_k, auto_layer_iters
        self.state: dict[str, tuple[torch.Tensor, torch.Tensor, int]] = {}
        self.modules = rosinality_modules(self.trainable)
        self.params = dict(self.trainable.named_parameters())
        n_convs = sum(1 for m in self.modules if m.startswith("convs."))
        self.n_latent = G.num_ws
        # NADA's table: [conv1, to_rgb1] + convs
        self.idx_to_layer = ["conv1", "to_rgb1"] + [f"convs.{j}" for j in range(n_convs)]
        self.default_layers = ["input", "conv1"] + [f"convs.{j}" for j in range(n_convs)]

    def draw(self, G, ws: torch.Tensor) -> torch.Tensor:
        return G.synthesize(ws, noise_mode="const")

    def determine_opt_layers(self, z: torch.Tensor) -> tuple[list[str], torch.Tensor]:
        with torch.no_grad():
            w0 = self.frozen.mapping_forward(z)[:, 0]
        w0 = w0.unsqueeze(1).repeat(1, self.n_latent, 1)
        w = w0.clone().requires_grad_(True)
        for _ in range(self.iters):
            img = self.draw(self.trainable, w)
            loss = sum(wt * ls.global_loss(img, self.target) for ls, wt in zip(self.losses, self.weights, strict=True))
            w.grad = None
            loss.backward()
            with torch.no_grad():
                w -= 0.01 * w.grad
        scores = (w.detach() - w0).abs().mean(dim=-1).mean(dim=0)
        chosen = torch.topk(scores, self.k or self.n_latent)[1].tolist()
        return [self.idx_to_layer[i] for i in chosen], scores

    def step(self, z: torch.Tensor, selection_z: torch.Tensor | None) -> list[str]:
        """One training step on latents ``z`` (``[B, z_dim]``); returns the rosinality layers trained."""
        layers = self.determine_opt_layers(selection_z)[0] if selection_z is not None else self.default_layers
        names = [n for layer in layers for n in self.modules.get(layer, [])]
        for p in self.params.values():
            p.requires_grad_(False)
            p.grad = None
        for n in names:
            self.params[n].requires_grad_(True)
        with torch.no_grad():
            ws = self.frozen.mapping_forward(z)
            frozen_img = self.draw(self.frozen, ws)
        trainable_img = self.draw(self.trainable, ws)
        loss = torch.stack(
            [wt * ls(frozen_img, trainable_img) for ls, wt in zip(self.losses, self.weights, strict=True)]
        ).sum()
        loss.backward()
        with torch.no_grad():
            for n, p in self.params.items():
                if p.grad is None:
                    continue
                m, v, t = self.state.get(n, (torch.zeros_like(p), torch.zeros_like(p), 0))
                t += 1
                m = self.beta1 * m + (1 - self.beta1) * p.grad
                v = self.beta2 * v + (1 - self.beta2) * p.grad * p.grad
                m_hat = m / (1 - self.beta1**t)
                v_hat = v / (1 - self.beta2**t)
                p -= self.lr * m_hat / (v_hat.sqrt() + self.eps)
                self.state[n] = (m, v, t)
        self.last_loss = float(loss.detach())
        return layers


def n_latent_check(G) -> int:
    """rosinality's ``n_latent`` for a StyleGAN2 of ``G``'s resolution: ``2·log2(R) - 2``."""
    return int(2 * math.log2(G.img_resolution) - 2)
