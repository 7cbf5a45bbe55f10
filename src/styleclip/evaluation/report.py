"""Tables, plots and a contact sheet from scored edits (:func:`~.edits.score` rows).

- ``<name>.csv``: one row per edit (what it is, its state, its scores);
- ``aggregate.csv``: mean and standard deviation of every score per method and prompt;
- ``comparison.csv``: when several methods ran on the same sources and prompts, their means over exactly those
  shared (source, prompt) pairs, side by side;
- ``tradeoff.png``: CLIP gain against LPIPS to the source (or 1 - identity, or PSNR), one colour per method: the
  edit-versus-preservation trade-off; ``histograms.png``: the distribution of each score per method;
- ``<name>.html``: all of it on one page, with thumbnails of every edit.
"""

from __future__ import annotations

import csv
import html
import math
import os
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..utils.files import atomic_write

SCORES = ("clip_before", "clip_after", "clip_gain", "directional", "identity", "lpips", "psnr", "seconds")
COLUMNS = ("source", "prompt", "method", "settings", "style", "state", "reason", *SCORES, "folder")
STYLE_COLUMNS = ("style", "adapted", "source", "target", "pairs", "directional_mean", "directional_std",
                 "clip_target_mean", "clip_target_base_mean", "identity_mean")  # fmt: skip


def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean and std of each score per (method, prompt, style), with how many edits were done and failed (``style``:
    the adapted generator that drew them, empty for the generator itself)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["method"], r["prompt"], r.get("style") or "")].append(r)
    out = []
    for (method, prompt, style), rs in sorted(groups.items()):
        done = [r for r in rs if r["state"] == "done"]
        entry: dict[str, Any] = {"method": method, "prompt": prompt, "style": style or None, "done": len(done),
                                 "failed": len(rs) - len(done)}  # fmt: skip
        for s in SCORES:
            vals = _finite(r[s] for r in done)
            entry[f"{s}_mean"] = statistics.fmean(vals) if vals else None
            entry[f"{s}_std"] = statistics.pstdev(vals) if len(vals) > 1 else (0.0 if vals else None)
        out.append(entry)
    return out


def comparison(rows: list[dict]) -> list[dict]:
    """Per method (and style), mean scores over the (source, prompt) pairs that every method completed; [] for one
    method."""
    methods = sorted({(r["method"], r["settings"], r.get("style") or "") for r in rows if r["state"] == "done"})
    if len(methods) < 2:
        return []
    done = [r for r in rows if r["state"] == "done"]
    pairs = None
    for m in methods:
        have = {(r["source"], r["prompt"]) for r in done if (r["method"], r["settings"], r.get("style") or "") == m}
        pairs = have if pairs is None else pairs & have
    out = []
    for method, settings, style in methods:
        rs = [
            r
            for r in done
            if (r["method"], r["settings"], r.get("style") or "") == (method, settings, style)
            and (r["source"], r["prompt"]) in pairs
        ]
        entry: dict[str, Any] = {"method": method, "settings": settings, "style": style or None, "pairs": len(rs)}
        for s in SCORES:
            vals = _finite(r[s] for r in rs)
            entry[s] = statistics.fmean(vals) if vals else None
        out.append(entry)
    return out


# A spreadsheet runs a cell that starts with one of these as a formula (a prompt or a file name is data).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """``value`` safe for a spreadsheet: text that would start a formula gets a leading ``'``; numbers, also
    negative ones, stay numbers; ``None`` is an empty cell."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def write_csv(path: Path, rows: list[dict], columns) -> Path:
    """``rows`` as CSV with ``columns`` (missing values empty, formula-like text neutralised), written atomically."""
    columns = list(columns)

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow([csv_cell(c) for c in columns])
            for r in rows:
                w.writerow([csv_cell(r.get(k)) for k in columns])

    return atomic_write(Path(path), write)


def plots(rows: list[dict], out: Path) -> list[Path]:
    """``tradeoff.png`` and ``histograms.png`` (matplotlib, no display needed); [] when nothing is scored."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["state"] == "done" and r["clip_gain"] is not None]
    if not done:
        return []
    methods = sorted({r["method"] for r in done})
    written = []
    keep = next((k for k in ("lpips", "identity", "psnr") if any(r[k] is not None for r in done)), None)
    if keep is not None:
        label = {"lpips": "LPIPS to the source (lower keeps more)", "identity": "1 - identity similarity",
                 "psnr": "PSNR to the source (dB, higher keeps more)"}[keep]  # fmt: skip
        fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
        for m in methods:
            pts = [(r[keep], r["clip_gain"]) for r in done if r["method"] == m and r[keep] is not None]
            xs = [1 - x if keep == "identity" else x for x, _ in pts]
            ax.scatter(xs, [y for _, y in pts], label=m, alpha=0.75, s=22)
        ax.set_xlabel(label)
        ax.set_ylabel("CLIP gain (after - before)")
        ax.set_title("edit strength vs preservation")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        written.append(_save(fig, out / "tradeoff.png"))
        plt.close(fig)
    scores = [s for s in ("clip_gain", "directional", "identity", "lpips") if any(r[s] is not None for r in done)]
    fig, axes = plt.subplots(1, len(scores), figsize=(4 * len(scores), 3.4), dpi=110, squeeze=False)
    for ax, s in zip(axes[0], scores, strict=True):
        for m in methods:
            vals = _finite(r[s] for r in done if r["method"] == m)
            if vals:
                ax.hist(vals, bins=min(20, max(3, len(vals))), alpha=0.55, label=m)
        ax.set_title(s.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    written.append(_save(fig, out / "histograms.png"))
    plt.close(fig)
    return written


def _save(fig, path: Path) -> Path:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"
    return html.escape(str(v))


def _table(rows: list[dict], columns) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_html(path: Path, title: str, rows: list[dict], agg: list[dict], comp: list[dict], images: list[Path],
               notes: list[str], styles: list[dict] | None = None) -> Path:  # fmt: skip
    """One page: notes, the per-method table, the comparison, the adapted generators' scores (``styles``: rows of
    :func:`styleclip.evaluation.adaptation.evaluate_styles`), the plots and a contact sheet of every edit."""
    where = path.parent

    def rel(p) -> str:
        return html.escape(os.path.relpath(p, where).replace(os.sep, "/"))

    styled = any(a.get("style") for a in agg)
    agg_cols = ["method", "prompt", *(["style"] if styled else []), "done", "failed"] + [
        f"{s}_mean" for s in SCORES if any(a.get(f"{s}_mean") is not None for a in agg)
    ]
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts += [f"<p class=note>{html.escape(n)}</p>" for n in notes]
    parts += ["<h2>Per method and prompt</h2>", _table(agg, agg_cols)]
    if comp:
        cols = ["method", "settings", *(["style"] if styled else []), "pairs"]
        cols += [s for s in SCORES if any(c.get(s) is not None for c in comp)]
        parts += ["<h2>Methods on the same sources and prompts</h2>", _table(comp, cols)]
    if styles:
        cols = [c for c in STYLE_COLUMNS if any(s.get(c) is not None for s in styles)]
        parts += ["<h2>Adapted generators (the same edits drawn by each)</h2>", _table(styles, cols)]
    parts += [f'<img class=plot src="{rel(p)}">' for p in images]
    cards = []
    for r in rows:
        folder = Path(r["folder"])
        if r["state"] == "done":
            pics = f'<img src="{rel(folder / "before.png")}"><img src="{rel(folder / "after.png")}">'
            score = f"CLIP {_cell(r['clip_before'])} → {_cell(r['clip_after'])}"
            if r["identity"] is not None:
                score += f" · id {_cell(r['identity'])}"
            if r["lpips"] is not None:
                score += f" · LPIPS {_cell(r['lpips'])}"
        else:
            pics, score = "", f"failed: {html.escape(r['reason'] or '')}"
        cards.append(f"<div class=card>{pics}<p><b>{html.escape(r['prompt'])}</b> · {html.escape(r['method'])} · "
                     f"{html.escape(r['source'])}<br>{score}</p></div>")  # fmt: skip
    parts += ["<h2>Every edit</h2>", "<div class=sheet>" + "".join(cards) + "</div>"]
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}td,th{border:1px "
             "solid #ccc;padding:3px 6px;font-size:13px}.sheet{display:flex;flex-wrap:wrap;gap:10px}.card{width:260px;"
             "font-size:12px}.card img{width:128px;height:128px;object-fit:cover}.plot{max-width:48%;margin:4px}"
             ".note{color:#855}")  # fmt: skip
    page = f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title><style>{style}</style>" + "".join(
        parts
    )
    return atomic_write(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
