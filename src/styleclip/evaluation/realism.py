"""Realism of edits: FID and KID of the edited images against a folder of real ones, computed by torch-fidelity.

torch-fidelity (Obukhov et al., github.com/toshas/torch-fidelity) reproduces the reference TensorFlow numbers: its
``inception-v3-compat`` network is the 2015 TF Inception graph (weights ``weights-inception-2015-12-05-6726825d.pth``),
each image goes in as 8-bit RGB, is resized to 299 x 299 with TF1's bilinear sampling, and the 2048-d pool3 features
feed both metrics:

- FID (Heusel et al. 2017): ``|mu_e - mu_r|^2 + Tr(S_e + S_r - 2 (S_e S_r)^(1/2))`` of the two feature Gaussians;
- KID (Binkowski et al. 2018): the unbiased MMD^2 with the kernel ``k(x, y) = (x.y / 2048 + 1)^3``, averaged over
  100 random subsets of ``kid_subset`` images per set (mean and std over the subsets).

Images of another size than the edits are resized and centre-cropped to the edits' side first, as torch-fidelity's
own folder option ``samples_resize_and_crop`` does (torchvision ``Resize`` + ``CenterCrop``), so a folder of real
photos of mixed sizes compares with square edits.

The real folder is untrusted: only image files are read (others skipped and counted), each image's size is checked
from its header before it is decoded, and absurd counts or resolutions are refused in one line. Nothing is written
anywhere but a temporary folder (a checked copy of the weights) and, when it has to be downloaded, the weights cache.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import CheckpointError, UsageError

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS_FILE}"
EXTRACTOR = "inception-v3-compat"
FEATURES = "2048"  # the pool3 layer both metrics use
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
LOSSY_SUFFIXES = (".jpg", ".jpeg", ".webp")
MAX_IMAGES = 200_000  # more than FFHQ's 70k; beyond this a folder is a mistake or an attack on the scan
MAX_PIXELS = 8192 * 8192  # per image, checked from the header before decoding (an 8k square decodes to 200 MB)
FID_DIM = 2048  # fewer images than features: the covariance is singular and FID is mostly bias
FID_PAPER_N = 10_000  # Heusel et al.: FID is reliable from 10k samples (50k is the usual count)
KID_PAPER_N = 1_000  # KID's usual subset size (Binkowski et al.; torch-fidelity's default)
KID_SUBSETS = 100


def _fidelity():
    try:
        import torch_fidelity  # noqa: F401
        from torch_fidelity import metric_fid, metric_kid, utils
    except ImportError:
        raise UsageError(
            "FID/KID need torch-fidelity: pip install 'styleclip[eval]' (or pip install torch-fidelity)"
        ) from None
    return metric_fid, metric_kid, utils


def _image_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from the header, or None when the file is not an image PIL reads. Refuses a resolution
    past :data:`MAX_PIXELS` in one line (a decompression bomb, or a file no benchmark needs)."""
    try:
        with Image.open(path) as im:
            size = im.size
    except Image.DecompressionBombError:
        raise UsageError(f"{path}: the image declares an absurd resolution; leave it out of the folder") from None
    except (OSError, ValueError, SyntaxError):
        return None
    if size[0] < 1 or size[1] < 1:
        return None
    if size[0] * size[1] > MAX_PIXELS:
        raise UsageError(
            f"{path}: {size[0]} x {size[1]} pixels is past the {MAX_PIXELS // 2**20} Mpx this reads; "
            "downscale the real images (FID sees them at 299 x 299)"
        )
    return size


def _scan(folder: Path, what: str) -> tuple[list[tuple[Path, tuple[int, int]]], int]:
    """Every readable image under ``folder`` (sorted; symlinked folders not followed) and the count of files
    skipped as not images."""
    if not folder.exists():
        raise UsageError(f"{folder}: no such folder of {what} images")
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a folder; pass a folder of {what} images")
    found, skipped = [], 0
    for root, dirs, files in os.walk(folder, onerror=None):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                skipped += 1
                continue
            size = _image_size(path)
            if size is None:
                skipped += 1
                continue
            found.append((path, size))
            if len(found) > MAX_IMAGES:
                raise UsageError(
                    f"{folder}: more than {MAX_IMAGES} images; pass a folder with a sample of them "
                    f"({FID_PAPER_N} are enough for FID)"
                )
    return found, skipped


def _edited(edited: list[Path] | Path) -> tuple[list[tuple[Path, tuple[int, int]]], int]:
    if isinstance(edited, (str, os.PathLike)):
        path = Path(edited)
        if path.is_dir():
            return _scan(path, "edited")
        edited = [path]
    items = []
    for p in edited:
        path = Path(p)
        size = _image_size(path) if path.is_file() else None
        if size is None:
            raise UsageError(f"{path}: not a readable image (edited images are the edits' after.png files)")
        items.append((path, size))
        if len(items) > MAX_IMAGES:
            raise UsageError(f"more than {MAX_IMAGES} edited images; score a sample of them")
    return items, 0


class _Images(torch.utils.data.Dataset):
    """Images as ``[3, S, S]`` uint8, each resized (shorter side to ``S``) and centre-cropped when it is not
    ``S x S`` already, as torch-fidelity's ``samples_resize_and_crop`` does; ``side`` None keeps every size."""

    def __init__(self, items: list[tuple[Path, tuple[int, int]]], side: int | None) -> None:
        self.items = items
        self.side = side

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> torch.Tensor:
        import torchvision.transforms as T
        import torchvision.transforms.functional as TF

        path, size = self.items[i]
        try:
            with Image.open(path) as im:
                if im.size != size:  # replaced since the scan: its new size was never checked
                    raise OSError("changed while being read")
                img = im.convert("RGB")
        except (OSError, ValueError, SyntaxError) as exc:
            raise UsageError(f"{path}: unreadable image ({exc}); remove it from the folder") from None
        if self.side is not None and img.size != (self.side, self.side):
            img = T.CenterCrop(self.side)(T.Resize(self.side)(img))
        return TF.pil_to_tensor(img)


def inception_weights(weights: str | Path | None, cache: str | Path | None = None, offline: bool | None = None) -> Path:
    """The Inception weights file: ``weights`` when given, else torch-fidelity's own download in torch's hub cache,
    else a copy downloaded into styleclip's cache (``<cache>/perceptual``); one line naming the file and where to
    get it when none can be had."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise CheckpointError(f"{path}: no such file; pass torch-fidelity's Inception weights ({WEIGHTS_URL})")
        return path
    hub = Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE
    if hub.is_file():
        return hub
    from ..hub.download import DownloadError, cache_dir, download

    try:
        return download([WEIGHTS_URL], cache_dir(cache) / "perceptual" / WEIGHTS_FILE, offline=offline)
    except DownloadError as exc:
        reason = " ".join(str(exc).split())[:160]
        raise CheckpointError(
            f"FID/KID need torch-fidelity's Inception weights {WEIGHTS_FILE} ({reason}): download it from "
            f"{WEIGHTS_URL} and pass it with --fid-weights FILE"
        ) from None


def _extractor(path: Path, cuda: bool, utils, folder: Path):
    """torch-fidelity's Inception with the weights of ``path``, read as plain tensors and checked before
    torch-fidelity (which unpickles without restriction) sees them: it gets a copy written here."""
    from ..hub.formats.budget import check_finite
    from ..hub.formats.torchfile import load_weights_file

    state = load_weights_file(path)
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not torch-fidelity's Inception weights (no state dict of tensors)")
    check_finite(((k, v) for k, v in state.items() if v.is_floating_point()), str(path))
    copy = folder / WEIGHTS_FILE
    torch.save(dict(state), copy)
    del state
    try:
        return utils.create_feature_extractor(
            EXTRACTOR, [FEATURES], cuda=cuda, feature_extractor_weights_path=str(copy), verbose=False
        )
    except RuntimeError as exc:  # load_state_dict(strict=True): missing, unexpected or misshapen tensors
        detail = " ".join(str(exc).split())[:200]
        raise CheckpointError(
            f"{path}: not torch-fidelity's Inception weights ({detail}); use {WEIGHTS_FILE}"
        ) from None


_REAL_FEATURES: dict[str, Any] = {}  # the last real folder's features, by its signature


def _signature(paths: list[Path]) -> tuple:
    """What identifies the files' contents without reading them: path, size and modification time of each."""
    sig = []
    for p in paths:
        st = p.stat()
        sig.append((str(p.resolve()), st.st_size, st.st_mtime_ns))
    return tuple(sig)


def _side(edited: list[tuple[Path, tuple[int, int]]], real: list[tuple[Path, tuple[int, int]]]) -> int | None:
    """The square side every image is brought to: None when all share one size already, else the shorter side of
    the edits' commonest size."""
    sizes = {s for _, s in edited} | {s for _, s in real}
    if len(sizes) == 1:
        return None
    (w, h), _ = Counter(s for _, s in edited).most_common(1)[0]
    return min(w, h)


@torch.no_grad()
def realism(
    edited: list[Path] | Path,
    real: Path,
    device: str | torch.device = "cpu",
    weights: Path | None = None,
    kid_subset: int = KID_PAPER_N,
    cache: Path | None = None,
    offline: bool | None = None,
) -> dict[str, Any]:
    """FID and KID of edited images against a folder of real images (torch-fidelity's Inception, pool3 features).

    Args:
        edited: the edits' images (``after.png`` paths), or a folder of them.
        real: a folder of real images (searched recursively; files that are not images are skipped).
        device: 'cpu' or a CUDA device (torch-fidelity runs on these two; MPS falls back to the CPU).
        weights: torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` (default: torch's hub cache, else a
            download into styleclip's cache, refused in one line when offline).
        kid_subset: images per KID subset (shrunk to the smaller set).
        cache: styleclip's download cache for the weights (default ``$STYLECLIP_HOME``).
        offline: never download (default ``$STYLECLIP_OFFLINE``).

    Returns:
        ``{"fid", "kid_mean", "kid_std"}`` (floats, None where a set is too small to compute them), ``"n_edited"``,
        ``"n_real"`` and ``"notes"``: what the reader must know to trust the numbers (small sets, resizing, JPEGs).
    """
    from ..utils.devices import resolve_device

    if isinstance(kid_subset, bool) or not isinstance(kid_subset, int) or kid_subset < 2:
        raise UsageError(f"the KID subset size must be a whole number >= 2, got {kid_subset!r}")
    edited_items, _ = _edited(edited)
    real_items, skipped = _scan(Path(real).expanduser(), "real")
    if not edited_items:
        raise UsageError("no edited images to score for FID/KID")
    if not real_items:
        extra = f" ({skipped} files there are not images)" if skipped else ""
        raise UsageError(f"{real}: no images to compare the edits with{extra}; pass a folder of real photos")
    dev = resolve_device(device)
    notes: list[str] = []
    if dev.type not in ("cpu", "cuda"):
        notes.append(f"FID/KID ran on the CPU: torch-fidelity does not run on {dev.type}")
        dev = torch.device("cpu")
    n_e, n_r = len(edited_items), len(real_items)
    n = min(n_e, n_r)
    if skipped:
        notes.append(f"{skipped} files in {real} are not images and were skipped")
    if n < 2:  # no covariance and no pair of subset images: nothing to compute, no weights needed
        notes.append(f"FID and KID need at least 2 images in each set ({n_e} edited, {n_r} real)")
        return {"fid": None, "kid_mean": None, "kid_std": None, "n_edited": n_e, "n_real": n_r, "notes": notes}
    metric_fid, metric_kid, utils = _fidelity()
    path = inception_weights(weights, cache, offline)
    cuda = dev.type == "cuda"
    side = _side(edited_items, real_items)
    if side is not None:
        notes.append(f"images of other sizes than the edits were resized and centre-cropped to {side} x {side}")
    lossy = [any(p.suffix.lower() in LOSSY_SUFFIXES for p, _ in items) for items in (edited_items, real_items)]
    if lossy[0] != lossy[1]:
        notes.append(
            "one set is JPEG-compressed and the other is not: compression alone moves FID (Parmar et al. 2022)"
        )

    with tempfile.TemporaryDirectory(prefix="styleclip-fid-") as tmp, torch.cuda.device(dev) if cuda else nullcontext():
        extractor = _extractor(path, cuda, utils, Path(tmp))
        batch = 64 if cuda else 16

        def features(items: list[tuple[Path, tuple[int, int]]]) -> torch.Tensor:
            # save_cpu_ram: no loader processes, so an unreadable image is refused in our one line
            out = utils.get_featuresdict_from_dataset(_Images(items, side), extractor, batch, cuda, True, False)
            return out[FEATURES].double()

        # A benchmark scores each method against the same real folder: its features are kept for the next call
        # while the folder's files, the resizing, the weights and the device stay the same.
        key = (_signature([p for p, _ in real_items]), side, _signature([path]), str(dev))
        if _REAL_FEATURES.get("key") != key:
            _REAL_FEATURES.clear()
            _REAL_FEATURES.update(key=key, features=features(real_items))
        feats = [features(edited_items), _REAL_FEATURES["features"]]

    stats = [metric_fid.fid_features_to_statistics(f) for f in feats]
    fid: float | None = float(metric_fid.fid_statistics_to_metric(*stats, False)[metric_fid.KEY_METRIC_FID])
    fid = fid if math.isfinite(fid) else None
    if n < FID_DIM:
        notes.append(
            f"FID from {n_e} edited / {n_r} real images is dominated by its bias (fewer images than the 2048 "
            f"features: the covariances are singular) and cannot rank methods; papers use >= {FID_PAPER_N} images "
            f"(FID) and >= {KID_PAPER_N} (KID)"
        )
    elif n < FID_PAPER_N:
        notes.append(
            f"FID from {n_e} edited / {n_r} real images is biased upwards (it falls as the sets grow); compare "
            f"only numbers from sets of the same sizes, papers use >= {FID_PAPER_N}"
        )
    subset = min(kid_subset, n_e, n_r)
    kid = metric_kid.kid_features_to_metric(
        feats[0], feats[1], kid_subsets=KID_SUBSETS, kid_subset_size=subset, verbose=False
    )
    kid_mean, kid_std = float(kid[metric_kid.KEY_METRIC_KID_MEAN]), float(kid[metric_kid.KEY_METRIC_KID_STD])
    if subset < kid_subset:
        notes.append(f"KID subsets shrunk from {kid_subset} to {subset} images (the smaller set)")
    if subset == n_e and subset == n_r:
        notes.append("KID's std is 0: every subset is both whole sets, so it says nothing about the uncertainty")
    if subset < KID_PAPER_N:
        notes.append(
            f"KID from subsets of {subset} images is unbiased but noisy (it can fall below 0); "
            f"read it with its std, papers use subsets of {KID_PAPER_N}"
        )
    return {"fid": fid, "kid_mean": kid_mean, "kid_std": kid_std, "n_edited": n_e, "n_real": n_r, "notes": notes}


__all__ = ["WEIGHTS_FILE", "WEIGHTS_URL", "inception_weights", "realism"]
