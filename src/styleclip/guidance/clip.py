"""CLIP through open_clip: image and text embeddings for guidance, frozen, with a text cache.

``load_clip("ViT-B-32:openai")`` takes any open_clip ``ARCH:PRETRAINED_TAG`` (open_clip downloads and
caches those weights itself), or a local file: OpenAI's TorchScript ``.pt`` (read without running
it), an OpenAI-layout state dict (``.pt``/``.bin``/``.safetensors``; the architecture is read from the
tensor shapes), or ``ARCH:/path/to/open_clip_weights`` for other architectures.
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, UsageError
from ..utils.devices import resolve_device
from .attention import use_batch_first_attention
from .preprocess import OPENAI_MEAN, OPENAI_STD, to_clip_input

DEFAULT_CLIP = "ViT-B-32:openai"


def _open_clip():
    try:
        import open_clip
    except ImportError:  # pragma: no cover - a declared dependency
        raise UsageError("CLIP guidance needs open_clip: pip install open_clip_torch") from None
    return open_clip


class ClipGuide(nn.Module):
    """A frozen CLIP model with differentiable image encoding and cached text encoding.

    Images ``[N, 3, H, W]`` in ``[-1, 1]`` and texts both become unit embeddings ``[N, embed_dim]`` (float32).
    Attributes: ``resolution`` (input side), ``embed_dim``, ``context_length``, ``name``, ``precision``.
    """

    def __init__(
        self, model: nn.Module, tokenizer, name: str, mean=OPENAI_MEAN, std=OPENAI_STD, precision: str = "auto"
    ) -> None:
        super().__init__()
        if precision not in ("auto", "fp32", "fp16", "bf16"):
            raise UsageError(f"CLIP precision must be auto, fp32, fp16 or bf16, got {precision!r}")
        # 'auto': the job's precision (styleclip.utils.precision: bf16/fp16 autocast on GPUs and bf16 CPUs; CLIP
        # was trained in fp16), fp32 elsewhere. Weights stay fp32 and embeddings come back as fp32 either way.
        self.precision = precision
        self.model = model.eval().requires_grad_(False)
        use_batch_first_attention(self.model)  # frozen batch-first attention without per-token weight copies
        self.tokenizer = tokenizer
        self.name = name
        self.mean, self.std = tuple(mean), tuple(std)
        size = getattr(model.visual, "image_size", 224)
        self.resolution = int(size[0] if isinstance(size, tuple | list) else size)
        self.context_length = int(getattr(model, "context_length", 77))
        self.embed_dim = int(model.text_projection.shape[1]) if hasattr(model, "text_projection") else None
        self._text_cache: dict[tuple[str, bool], torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp())

    def encode_image(self, img: torch.Tensor, preprocess: str = "clip") -> torch.Tensor:
        """``[N, 3, H, W]`` generator images in ``[-1, 1]`` -> unit embeddings ``[N, D]`` (differentiable).

        ``preprocess``: ``"clip"`` (resize + CLIP mean/std) or ``"styleclip"`` (StyleCLIP's exact recipe).
        """
        x = to_clip_input(img, self.resolution, mode=preprocess, mean=self.mean, std=self.std)
        with self._autocast():
            emb = self.model.encode_image(x.to(self.device))
        emb = emb.float()
        return emb / emb.norm(dim=-1, keepdim=True)

    def _autocast(self):
        from ..utils.precision import network_autocast

        return network_autocast(self.device, self.precision)

    def encode_image_views(
        self, img: torch.Tensor, n: int = 8, seed: int = 0, preprocess: str = "clip", **view_kwargs
    ) -> torch.Tensor:
        """Mean unit embedding of ``n`` random views per image (see :func:`.augment.random_views`), ``[N, D]``."""
        from .augment import random_views

        emb = self.encode_image(random_views(img, n=n, seed=seed, **view_kwargs), preprocess=preprocess)
        emb = emb.reshape(img.shape[0], n, -1).mean(dim=1)
        return emb / emb.norm(dim=-1, keepdim=True)

    def encode_text(self, texts: str | Sequence[str], templates: bool = False) -> torch.Tensor:
        """Unit text embeddings ``[N, D]``, cached per prompt.

        With ``templates`` each prompt is written into the 80 ImageNet templates ("a bad photo of a
        {}.", ...), each embedding normalised, averaged, and renormalised (CLIP's prompt ensembling).
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = []
        for text in texts:
            key = (text, templates)
            if key not in self._text_cache:
                self._text_cache[key] = self._encode_uncached(text, templates)
            out.append(self._text_cache[key])
        return torch.stack(out)

    def clear_text_cache(self) -> None:
        """Forget cached text embeddings (they are kept for the life of this object otherwise)."""
        self._text_cache.clear()

    def direction(self, target: str, neutral: str, templates: bool = True) -> torch.Tensor:
        """``Δt = normalise(t(target) - t(neutral))`` as ``[D]``: the text direction of an edit."""
        t = self.encode_text([target, neutral], templates=templates)
        delta = t[0] - t[1]
        norm = delta.norm()
        if norm < 1e-8:
            raise UsageError("the target and neutral prompts mean the same to CLIP; describe the change")
        return delta / norm

    @torch.no_grad()
    def _encode_uncached(self, text: str, templates: bool) -> torch.Tensor:
        if not text or not text.strip():
            raise UsageError("empty prompt: describe what the image should show")
        n_tokens = len(self.tokenizer.encode(text)) + 2 if hasattr(self.tokenizer, "encode") else 0
        if n_tokens > self.context_length:
            warnings.warn(
                f"prompt is {n_tokens} tokens, CLIP reads the first {self.context_length}: {text[:60]!r}...",
                stacklevel=3,
            )
        prompts = [tpl(text) for tpl in _open_clip().OPENAI_IMAGENET_TEMPLATES] if templates else [text]
        tokens = self.tokenizer(prompts, context_length=self.context_length).to(self.device)
        with self._autocast():
            emb = self.model.encode_text(tokens)
        emb = emb.float()
        emb = emb / emb.norm(dim=-1, keepdim=True)
        emb = emb.mean(dim=0)
        return emb / emb.norm()


def load_clip(
    name: str | Path = DEFAULT_CLIP, device: str | torch.device | None = None, precision: str = "auto"
) -> ClipGuide:
    """Load a frozen CLIP model for guidance (see the module docstring for what ``name`` may be).

    ``precision``: 'auto' (the job's precision, see :mod:`styleclip.utils.precision`), 'fp32', 'fp16' or 'bf16'.
    """
    open_clip = _open_clip()
    dev = resolve_device(device)
    text = str(name)
    if text.startswith(("http://", "https://")):  # a checkpoint on the web: into the verified cache first
        from ..hub.registry import fetch_url

        text = str(fetch_url(text))
    path = Path(text).expanduser()
    arch, _, tag = text.partition(":")
    if path.is_file():
        model = open_clip.model.build_model_from_openai_state_dict(_openai_state_dict(path))
        tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=model.context_length)
    elif tag and Path(tag).expanduser().is_file():
        model = open_clip.create_model(arch, pretrained=str(Path(tag).expanduser()))
        tokenizer = open_clip.get_tokenizer(arch)
    else:
        if arch not in open_clip.list_models():
            raise UsageError(f"unknown CLIP model {text!r}: use ARCH:TAG from open_clip.list_pretrained(), or a file")
        try:
            model = open_clip.create_model(arch, pretrained=tag or None)
        except RuntimeError as exc:
            raise CheckpointError(f"open_clip could not load {text!r}: {str(exc).splitlines()[0]}") from None
        tokenizer = open_clip.get_tokenizer(arch)
    return ClipGuide(model.float().to(dev), tokenizer, text, precision=precision)


def _openai_state_dict(path: Path) -> dict[str, torch.Tensor]:
    from ..hub.formats.torchscript import is_torchscript, torchscript_state_dict

    if zipfile.is_zipfile(path) and is_torchscript(path):
        sd = torchscript_state_dict(path)
    elif path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for unreadable files
            raise CheckpointError(f"{path}: not a CLIP checkpoint styleclip can read ({type(exc).__name__})") from None
        sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
    if not isinstance(sd, dict) or "visual.conv1.weight" not in sd or "token_embedding.weight" not in sd:
        raise CheckpointError(f"{path}: not an OpenAI-layout CLIP checkpoint (for other layouts use ARCH:{path})")
    sd = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in sd.items()}
    sd.pop("attn_mask", None)  # a derived buffer that TorchScript stores with the weights
    return {k: v.float() for k, v in sd.items()}
