"""Face-parsing stitching masks: STIT's recipe for pasting an edited face back without the square's seam.

A BiSeNet face parser (:mod:`styleclip.nets.bisenet`, ``face-parsing:bisenet`` = face-parsing.PyTorch's
``79999_iter.pth``) labels the ORIGINAL aligned crop at 512 x 512 (nearest resizing, ImageNet normalisation; the
edit's own picture is never parsed, so an edit that grows hair cannot move the mask). Then, as STIT's
``edit_video_stitching_tuning.py`` does at 512 px with its 1024-px settings halved:

- foreground ``M``: every class but background (0), cloth (16) and hat (18): skin, brows, eyes, glasses, ears,
  earrings, nose, mouth, lips, neck, necklace and hair;
- full mask ``F``: ``M`` dilated by a flat square of half-side ``outer`` (STIT's ``--outer_mask_dilation`` 50, in
  pixels of a 1024 crop, so 1/20.48 of the side at any size);
- border ring ``B``: ``F - M``, plus the foreground within ``outer`` of the crop's edge (what stitching tuning pulls
  towards the source); content ``C = M - B``;
- blend mask: ``F`` eroded (outside the crop counts as 0) and Gaussian-blurred with a square of half-side
  ``outer / 2`` (STIT's feathered output: OpenCV's automatic sigma ``0.3 (r - 1) + 0.8``), so it is 1 on the face,
  falls to 0 inside ``F`` and to about 1% at the crop's border.

Every size in pixels is scaled from STIT's 1024 px crop to the mask's own resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import CheckpointError, UsageError
from ..nets.bisenet import INPUT_SIZE, MEAN, STD, BiSeNet, bisenet_from_state_dict

BACKGROUND = (0, 16, 18)  # background, cloth, hat: what the edited crop never replaces
OUTER_DILATION = 50  # STIT's --outer_mask_dilation, pixels of a 1024 crop
REFERENCE = 1024  # the crop side STIT's pixel settings are given for
DEFAULT_PARSER = "face-parsing:bisenet"


@dataclass
class StitchMasks:
    """STIT's masks for one crop, each ``[S, S]`` float32 in ``[0, 1]``: ``foreground`` (the parsed face, soft at
    its edge once resized), ``full`` (dilated), ``border`` (the ring between them and the face at the crop's edge),
    ``content`` (face minus ring) and ``blend`` (the feathered paste mask)."""

    foreground: np.ndarray
    full: np.ndarray
    border: np.ndarray
    content: np.ndarray
    blend: np.ndarray


def scaled_pixels(pixels: float, side: int) -> int:
    """``pixels`` of a 1024-px picture at a picture of ``side`` pixels."""
    return round(pixels * side / REFERENCE)


def dilate(x: torch.Tensor, r: int) -> torch.Tensor:
    """``x: [N, C, H, W]`` grey-dilated by a flat ``(2r+1)^2`` square (what lies outside is left out of the maximum)."""
    return x if r <= 0 else F.max_pool2d(x, 2 * r + 1, 1, r)


def _erode(x: torch.Tensor, r: int) -> torch.Tensor:
    """Grey erosion by a flat ``(2r+1)^2`` square with 0 outside the image (OpenCV's BORDER_CONSTANT 0)."""
    return x if r <= 0 else -F.max_pool2d(-F.pad(x, (r, r, r, r), value=0.0), 2 * r + 1, 1)


def _blur(x: torch.Tensor, r: int) -> torch.Tensor:
    """Separable Gaussian of ``2r+1`` taps and OpenCV's automatic sigma, edges mirrored (BORDER_REFLECT_101)."""
    if r <= 0:
        return x
    sigma = 0.3 * (r - 1) + 0.8
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))


def foreground(labels: np.ndarray | torch.Tensor) -> np.ndarray:
    """``[H, W]`` bool: the pixels of ``labels`` (CelebAMask-HQ class ids) outside :data:`BACKGROUND`."""
    labels = np.asarray(labels)
    return ~np.isin(labels, BACKGROUND)


def stitch_masks(
    labels: np.ndarray | torch.Tensor, size: int, outer: float = OUTER_DILATION, feather: float | None = None
) -> StitchMasks:
    """STIT's masks from a parsed crop.

    Args:
        labels: ``[H, H]`` class ids of the crop (the parser's 512 x 512, or any square size).
        size: the side ``S`` of the crop the masks are for.
        outer: the dilation's half-side in pixels of a 1024 crop (STIT's 50; scaled to ``H`` for the dilation and
            the border band).
        feather: the blend mask's erosion and blur half-side in pixels of a 1024 crop (default ``outer / 2``, STIT's
            feathered output; 0: the dilated mask as it is).

    Returns:
        :class:`StitchMasks`, each ``[size, size]`` float32 in ``[0, 1]``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[0] != labels.shape[1] or size < 1:
        raise UsageError(f"face-parsing labels must be a square [H, H] map and the size positive, got {labels.shape}")
    if outer < 0 or (feather is not None and feather < 0):
        raise UsageError("the mask's dilation and feathering must be >= 0 pixels")
    side = labels.shape[0]
    m = torch.from_numpy(foreground(labels).astype(np.float32))[None, None]
    r = scaled_pixels(outer, side)
    idx = torch.arange(side)
    near = torch.minimum(idx, side - 1 - idx) < r  # within r of the nearer edge, per row / column
    band = (near[:, None] | near[None, :]).to(m.dtype)[None, None]
    full = dilate(m, r)
    border = torch.maximum(torch.minimum(band, m), full - m).clamp(0, 1)
    content = (m - border).clamp(0, 1)

    def resize(x: torch.Tensor) -> torch.Tensor:
        if side == size:
            return x
        return F.interpolate(x, (size, size), mode="bilinear", align_corners=size > 1 and side > 1)

    m_s, full_s, border_s, content_s = (resize(x) for x in (m, full, border, content))
    rf = scaled_pixels(outer / 2 if feather is None else feather, size)
    blend = _blur(_erode(full_s, rf), rf).clamp(0, 1)

    def out(x: torch.Tensor) -> np.ndarray:
        return x[0, 0].clamp(0, 1).numpy().astype(np.float32)

    return StitchMasks(out(m_s), out(full_s), out(border_s), out(content_s), out(blend))


class FaceParser:
    """A loaded BiSeNet face parser: crops in, CelebAMask-HQ labels out (at 512 x 512)."""

    def __init__(self, net: BiSeNet, source: str = "") -> None:
        self.net = net.eval().requires_grad_(False)
        self.source = source

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device: str | torch.device) -> FaceParser:
        self.net.to(device)
        return self

    @torch.no_grad()
    def labels(self, crops: Image.Image | np.ndarray | torch.Tensor) -> np.ndarray:
        """Class ids ``[512, 512]`` (``[N, 512, 512]`` for a batch) of an RGB crop: PIL, ``[S, S, 3]`` uint8, or a
        tensor ``[N, 3, S, S]`` in ``[-1, 1]`` (the generator's range). Resized to 512 with nearest sampling, as
        STIT does."""
        x, single = _as_batch(crops)
        x = F.interpolate(x.to(self.device), (INPUT_SIZE, INPUT_SIZE), mode="nearest")
        mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
        logits = self.net((x.clamp(0, 1) - mean) / std)
        out = logits.argmax(1).to(torch.uint8 if self.net.classes <= 256 else torch.int64).cpu().numpy()
        return out[0] if single else out


def _as_batch(crops) -> tuple[torch.Tensor, bool]:
    """``[N, 3, S, S]`` float32 in ``[0, 1]``, and whether one crop was given."""
    if isinstance(crops, torch.Tensor):
        x = crops.detach().float()
        single = x.dim() == 3
        x = x[None] if single else x
        if x.dim() != 4 or x.shape[1] != 3:
            raise UsageError(f"the face parser takes [N, 3, S, S] crops in [-1, 1], got {list(crops.shape)}")
        return (x + 1) / 2, single
    if isinstance(crops, Image.Image):
        crops = np.asarray(crops.convert("RGB"))
    a = np.asarray(crops)
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] != a.shape[1] or a.dtype != np.uint8:
        raise UsageError(f"the face parser takes a square RGB crop ([S, S, 3] uint8), got {a.shape} {a.dtype}")
    return torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255, True


def load_face_parser(
    name_or_path: str | Path = DEFAULT_PARSER,
    device: str | torch.device | None = "cpu",
    cache: str | Path | None = None,
    offline: bool | None = None,
) -> FaceParser:
    """Load face-parsing.PyTorch's BiSeNet (``79999_iter.pth``) by catalogue name (``face-parsing:bisenet``), http(s)
    URL or path: weights only (no code from the file runs), sizes bounded before loading, keys and shapes strict,
    one-line errors."""
    from ..hub.formats.budget import check_finite
    from ..hub.formats.torchfile import load_weights_file
    from ..hub.resolve import resolve_path
    from ..utils.devices import resolve_device

    path = resolve_path(name_or_path, kind="parser", cache=cache, offline=offline)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; pass the face parser's file (79999_iter.pth)")
    try:
        state = load_weights_file(path)
    except CheckpointError as exc:
        detail = str(exc).removeprefix(f"{path}: ")
        raise CheckpointError(f"{path}: not a BiSeNet face-parsing checkpoint styleclip can read ({detail})") from None
    try:
        net = bisenet_from_state_dict(state)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    check_finite(((k, v) for k, v in state.items() if v.is_floating_point()), str(path))
    return FaceParser(net, str(path)).to(resolve_device(device))


def parsing_mask(
    parser: FaceParser, crop: Image.Image | np.ndarray, outer: float = OUTER_DILATION, feather: float | None = None
) -> np.ndarray:
    """STIT's feathered paste mask for an ORIGINAL aligned crop (PIL or ``[S, S, 3]`` uint8): ``[S, S]`` float32 in
    ``[0, 1]``, for :func:`styleclip.video.stitch.paste` (``mask=``). All zero where the parser finds no face (the
    frame is then left as it was)."""
    if isinstance(crop, Image.Image):
        crop = np.asarray(crop.convert("RGB"))
    crop = np.asarray(crop)
    labels = parser.labels(crop)
    return stitch_masks(labels, crop.shape[0], outer, feather).blend
