"""CLIP through open_clip: image and text embeddings for guidance, frozen, with a text cache.

``load_clip("ViT-B-32:openai")`` takes any open_clip ``ARCH:PRETRAINED_TAG`` (open_clip downloads and
caches those weights itself), or a local file: OpenAI's TorchScript ``.pt`` (read without running
it), an OpenAI-layout state dict (``.pt``/``.bin``/``.safetensors``; the architecture is read from the
tensor shapes), or ``ARCH:/path/to/open_clip_weights`` for other architectures.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, UsageError, first_lines
from ..utils.devices import resolve_device
from .attention import use_batch_first_attention
from .preprocess import OPENAI_MEAN, OPENAI_STD, to_clip_input
from .templates import templates as template_set

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

    def encode_text(self, texts: str | Sequence[str], templates: bool | str = False) -> torch.Tensor:
        """Unit text embeddings ``[N, D]``, cached per prompt.

        With ``templates`` each prompt is written into a template set ("a bad photo of a {}.", ...; ``True`` or
        'imagenet': OpenAI's 80, 'styleclip': StyleCLIP's 79, see :mod:`styleclip.guidance.templates`), each
        embedding normalised, averaged, and renormalised (CLIP's prompt ensembling).
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = []
        for text in texts:
            key = (text, "imagenet" if templates is True else templates)
            if key not in self._text_cache:
                self._text_cache[key] = self._encode_uncached(text, templates)
            out.append(self._text_cache[key])
        return torch.stack(out)

    def clear_text_cache(self) -> None:
        """Forget cached text embeddings (they are kept for the life of this object otherwise)."""
        self._text_cache.clear()

    def direction(self, target: str, neutral: str, templates: bool | str = True) -> torch.Tensor:
        """``Δt = normalise(t(target) - t(neutral))`` as ``[D]``: the text direction of an edit."""
        t = self.encode_text([target, neutral], templates=templates)
        delta = t[0] - t[1]
        norm = delta.norm()
        if norm < 1e-8:
            raise UsageError("the target and neutral prompts mean the same to CLIP; describe the change")
        return delta / norm

    @torch.no_grad()
    def _encode_uncached(self, text: str, templates: bool | str) -> torch.Tensor:
        if not text or not text.strip():
            raise UsageError("empty prompt: describe what the image should show")
        n_tokens = len(self.tokenizer.encode(text)) + 2 if hasattr(self.tokenizer, "encode") else 0
        if n_tokens > self.context_length:
            warnings.warn(
                f"prompt is {n_tokens} tokens, CLIP reads the first {self.context_length}: {text[:60]!r}...",
                stacklevel=3,
            )
        prompts = [tpl(text) for tpl in template_set(templates)] if templates else [text]
        tokens = self.tokenizer(prompts, context_length=self.context_length).to(self.device)
        with self._autocast():
            emb = self.model.encode_text(tokens)
        emb = emb.float()
        emb = emb / emb.norm(dim=-1, keepdim=True)
        emb = emb.mean(dim=0)
        return emb / emb.norm()


# OpenAI's own spellings (``clip.load("ViT-B/32")``, NADA's --clip_models) as open_clip names them
OPENAI_NAMES = {
    "RN50": "RN50:openai", "RN101": "RN101:openai", "RN50x4": "RN50x4:openai", "RN50x16": "RN50x16:openai",
    "RN50x64": "RN50x64:openai", "ViT-B/32": "ViT-B-32:openai", "ViT-B/16": "ViT-B-16:openai",
    "ViT-L/14": "ViT-L-14:openai", "ViT-L/14@336px": "ViT-L-14-336:openai",
}  # fmt: skip


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
    if text in OPENAI_NAMES and not (path.exists() or path.is_symlink()):
        text = OPENAI_NAMES[text]
    arch, _, tag = text.partition(":")
    if path.exists() or path.is_symlink():
        model = _model_from_openai_file(open_clip, path)
        tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=model.context_length)
    elif not tag and _names_a_file(text):
        raise CheckpointError(f"{path}: no such file; pass an existing CLIP checkpoint or an open_clip ARCH:TAG")
    elif tag and _names_a_file(tag):
        if arch not in open_clip.list_models():
            raise UsageError(f"unknown CLIP architecture {arch!r} in {text!r}: use one of open_clip.list_models()")
        model = _model_from_arch_file(open_clip, arch, Path(tag).expanduser())
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


_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".npz", ".npy")


def _names_a_file(tag: str) -> bool:
    """Whether the part after ``ARCH:`` is a file path rather than an open_clip tag (``openai``, ``laion2b_...``)."""
    return (
        "/" in tag
        or "\\" in tag
        or tag.startswith(("~", "."))
        or tag.lower().endswith(_WEIGHT_SUFFIXES)
        or Path(tag).expanduser().exists()
    )


def _openai_state_dict(path: Path) -> dict[str, torch.Tensor]:
    from ..hub.formats.budget import check_finite
    from ..hub.formats.torchfile import load_weights_file

    sd = load_weights_file(path)
    sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
    if not isinstance(sd, dict) or "visual.conv1.weight" not in sd or "token_embedding.weight" not in sd:
        raise CheckpointError(f"{path}: not an OpenAI-layout CLIP checkpoint (for other layouts use ARCH:{path})")
    sd = {k[len("module.") :] if str(k).startswith("module.") else str(k): v for k, v in sd.items()}
    sd.pop("attn_mask", None)  # a derived buffer that TorchScript stores with the weights
    check_finite(((k, v) for k, v in sd.items() if isinstance(v, torch.Tensor)), str(path))
    return {k: v.float() if isinstance(v, torch.Tensor) else v for k, v in sd.items()}


def _model_from_openai_file(open_clip, path: Path) -> nn.Module:
    """open_clip's CLIP built from an OpenAI-layout file, whose architecture is read from the tensor shapes.

    The shapes are first tried on the meta device: a state dict that fits no CLIP fails there in one line, and
    one whose shapes declare a model far larger than the file (a forged file) is refused before allocating it.
    """
    from ..hub.formats.budget import file_limit, human_size
    from ..hub.formats.detect import check_regular_file

    check_regular_file(path)
    sd = _openai_state_dict(path)
    hint = f"for other layouts use ARCH:{path} with the architecture the weights belong to"
    shapes = {k: torch.empty(v.shape, device="meta") if isinstance(v, torch.Tensor) else v for k, v in sd.items()}
    try:
        with torch.device("meta"):
            probe = open_clip.model.build_model_from_openai_state_dict(shapes)
    except Exception as exc:  # open_clip fails in many ways (KeyError, assertions, size mismatches) on other layouts
        raise CheckpointError(
            f"{path}: its tensors match no CLIP architecture styleclip knows ({first_lines(exc)}); {hint}"
        ) from None
    needed = 4 * sum(t.numel() for t in [*probe.parameters(), *probe.buffers()])
    size = path.stat().st_size
    if needed > file_limit(size):
        raise CheckpointError(
            f"{path}: its tensor shapes declare a CLIP model of {human_size(needed)} from a {human_size(size)} "
            "file (a forged file); use the checkpoint as its publisher released it"
        )
    try:
        return open_clip.model.build_model_from_openai_state_dict(sd)
    except Exception as exc:
        raise CheckpointError(
            f"{path}: its tensors match no CLIP architecture styleclip knows ({first_lines(exc)}); {hint}"
        ) from None


def _model_from_arch_file(open_clip, arch: str, path: Path) -> nn.Module:
    """open_clip's ``arch`` with the weights in ``path``, the file checked first (size, memory, NaN) with one-line
    errors."""
    from ..hub.formats.budget import check_finite, iter_tensors, refuse_zip_bomb
    from ..hub.formats.detect import check_regular_file
    from ..hub.formats.torchfile import load_weights_file

    check_regular_file(path)
    if path.suffix.lower() in (".npz", ".npy"):  # big_vision (SigLIP) weights, which open_clip converts itself
        if path.suffix.lower() == ".npz":
            try:
                refuse_zip_bomb(path)
            except CheckpointError as exc:
                raise CheckpointError(f"{path}: {exc}") from None
    else:
        check_finite(iter_tensors(load_weights_file(path)), str(path))
    try:
        return open_clip.create_model(arch, pretrained=str(path))
    except Exception as exc:  # open_clip raises RuntimeError, KeyError, ValueError... for weights of another model
        raise CheckpointError(
            f"{path}: not weights of CLIP architecture {arch} ({first_lines(exc)}); "
            f"name the architecture they belong to (ARCH:{path})"
        ) from None
