"""Prompt templates for CLIP's prompt ensembling: OpenAI's 80 ImageNet templates, and StyleCLIP's 79.

StyleCLIP's global directions (``GetDt`` in global_torch/StyleCLIP.py and global_directions/MapTS.py) average the
same list in the same order with one template commented out, ``'a photo of many {}.'``: 79 prompts. That changes
the text direction by about 1e-2 per coordinate, and with it which channels pass β, so the global-direction recipe
uses StyleCLIP's 79 and everything else CLIP's 80.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UsageError

# The one template of OpenAI's list that StyleCLIP's list leaves out.
STYLECLIP_LEFT_OUT = "a photo of many {}."

TEMPLATE_SETS = ("imagenet", "styleclip")


def imagenet_templates() -> list[Callable[[str], str]]:
    """OpenAI's 80 ImageNet templates, as open_clip ships them (each a function of the class text)."""
    import open_clip

    return list(open_clip.OPENAI_IMAGENET_TEMPLATES)


def templates(name: str | bool) -> list[Callable[[str], str]]:
    """The template set ``name``: 'imagenet' (OpenAI's 80; also ``True``) or 'styleclip' (StyleCLIP's 79)."""
    if name is True or name == "imagenet":
        return imagenet_templates()
    if name == "styleclip":
        kept = [t for t in imagenet_templates() if t("{}") != STYLECLIP_LEFT_OUT]
        assert len(kept) == 79, "open_clip's ImageNet templates changed"
        return kept
    raise UsageError(f"template set must be one of {', '.join(TEMPLATE_SETS)}, got {name!r}")
