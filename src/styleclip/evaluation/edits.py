"""Find styleclip's edits in folders and score each one: how far it went towards the text, what it kept.

An edit is a folder with ``before.png`` and ``after.png`` that styleclip wrote: a batch job (``report.json`` with
the job), ``styleclip edit`` and ``mapper apply`` outputs (the report in the PNG's metadata) or ``directions
apply`` outputs (target and neutral in the PNG's metadata). Batch jobs that failed (``failed.json``) are listed
with their reason and no scores.

Scores per edit, from the PNGs (so every method is judged on the same pixels):

- ``clip_before`` / ``clip_after`` / ``clip_gain``: cosine of CLIP's image embedding with the prompt's;
- ``directional``: cosine of the image change ``E(after) - E(before)`` with the text change
  ``T(prompt) - T(neutral)`` (StyleGAN-NADA's directional CLIP score), where a neutral text is known;
- ``identity``: ArcFace cosine of after and before (faces);
- ``lpips`` (perceptual distance to the source) and ``psnr`` (dB).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..reports import REPORT_KEY


@dataclass
class Edit:
    """One edit found on disk (``state`` 'done' or 'failed'; ``reason`` for the failed)."""

    folder: Path
    source: str
    prompt: str
    method: str
    settings: dict[str, Any] = field(default_factory=dict)
    neutral: str | None = None
    state: str = "done"
    reason: str | None = None
    seconds: float | None = None
    domain: str | None = None
    style: str | None = None  # the adapted generator that drew it (a batch's styles/<style>/), None for the base


def find_edits(root: str | Path) -> list[Edit]:
    """Every styleclip edit under ``root`` (sorted by folder)."""
    root = Path(root)
    found = []
    for after in sorted(root.rglob("after.png")):
        folder = after.parent
        if not (folder / "before.png").is_file():
            continue
        edit = _read(folder, after)
        if edit is not None:
            found.append(edit)
    for failed in sorted(root.rglob("failed.json")):
        if (failed.parent / "report.json").is_file():
            continue
        data = _json(failed)
        if data and "job" in data:
            found.append(_from_job(failed.parent, data, state="failed"))
    return sorted(found, key=lambda e: str(e.folder))


def _json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _from_job(folder: Path, data: dict, state: str = "done") -> Edit:
    settings = data.get("settings") or {}
    return Edit(
        folder, data["source"]["key"], data["prompt"], data["method"], settings, settings.get("neutral"), state,
        data.get("reason"), data.get("seconds"), data.get("domain"), data.get("style"),
    )  # fmt: skip


def _read(folder: Path, after: Path) -> Edit | None:
    job = _json(folder / "report.json")
    if job is not None and "job" in job:
        return _from_job(folder, job)
    try:
        with Image.open(after) as im:
            text = dict(getattr(im, "text", {}) or {})
    except OSError:
        return None
    if REPORT_KEY in text:
        try:
            report = json.loads(text[REPORT_KEY])
        except ValueError:
            return None
        if "config" in report and "result" in report:  # styleclip edit
            cfg, res = report["config"], report["result"]
            source = f"seed{res['seed']:04d}" if res.get("seed") is not None else folder.name
            settings = {k: cfg.get(k) for k in ("steps", "l2_weight", "id_weight", "space", "layers", "loss")}
            domain = (report.get("generator") or {}).get("domain")
            return Edit(folder, source, res["prompt"], "optimize", settings, cfg.get("neutral"),
                        seconds=res.get("wall_time_s"), domain=domain)  # fmt: skip
        if "mapper" in report and report.get("prompt"):  # styleclip mapper apply
            settings = {"mapper": report["mapper"], "strength": report.get("strength")}
            return Edit(folder, str(report.get("name") or folder.name), report["prompt"], "mapper", settings)
    if "styleclip:target" in text:  # styleclip directions apply
        settings = {"alpha": _number(text.get("styleclip:alpha")), "beta": _number(text.get("styleclip:beta"))}
        return Edit(
            folder, folder.name, text["styleclip:target"], "directions", settings, text.get("styleclip:neutral")
        )
    return None


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _tensor(path: Path, device: torch.device) -> torch.Tensor:
    """A PNG as ``[1, 3, H, W]`` in ``[-1, 1]`` (the inverse of the generator's conversion)."""
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32)
    return (torch.from_numpy(arr).permute(2, 0, 1)[None] / 127.5 - 1).to(device)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


@torch.no_grad()
def score(edits: list[Edit], guide, identity=None, lpips=None, neutral: str | None = None,
          progress: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """One row per edit: what it is and its scores (``None`` where a score does not apply or is off).

    ``identity`` scores every edit when given; ``neutral`` is the text change's origin for edits without one;
    ``progress``: a progress bar over the edits.
    """
    import hashlib

    from tqdm import tqdm

    device = guide.device
    rows = []
    # the same source picture comes back in every edit of it (a benchmark's sweep: dozens): embedded once
    seen: dict[bytes, tuple[torch.Tensor, torch.Tensor | None]] = {}
    for e in tqdm(edits, desc="scoring", unit="edit", disable=not progress or None):
        row: dict[str, Any] = {
            "folder": str(e.folder), "source": e.source, "prompt": e.prompt, "method": e.method, "style": e.style,
            "settings": json.dumps(e.settings, sort_keys=True, default=str), "state": e.state, "reason": e.reason,
            "seconds": e.seconds, "clip_before": None, "clip_after": None, "clip_gain": None, "directional": None,
            "identity": None, "lpips": None, "psnr": None,
        }  # fmt: skip
        if e.state == "done":
            before, after = _tensor(e.folder / "before.png", device), _tensor(e.folder / "after.png", device)
            key = hashlib.sha256((e.folder / "before.png").read_bytes()).digest()
            if key not in seen:
                seen[key] = (guide.encode_image(before)[0], identity.embed(before) if identity is not None else None)
            emb = torch.stack([seen[key][0], guide.encode_image(after)[0]])
            text = guide.encode_text(e.prompt)[0].to(device)
            row["clip_before"], row["clip_after"] = (float(x) for x in emb @ text)
            row["clip_gain"] = row["clip_after"] - row["clip_before"]
            origin = e.neutral or neutral
            if origin:
                dt = text - guide.encode_text(origin)[0].to(device)
                di = emb[1] - emb[0]
                denom = float(dt.norm() * di.norm())
                row["directional"] = float(di @ dt) / denom if denom > 0 else 0.0
            if identity is not None:
                row["identity"] = float((identity.embed(after) * seen[key][1]).sum())
            if lpips is not None:
                row["lpips"] = float(lpips(after, before)[0])
            row["psnr"] = psnr(
                np.asarray(Image.open(e.folder / "after.png").convert("RGB")),
                np.asarray(Image.open(e.folder / "before.png").convert("RGB")),
            )
        rows.append(row)
    return rows
