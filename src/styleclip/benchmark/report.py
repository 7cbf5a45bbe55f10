"""The benchmark's report: tables (CSV), the trade-off curves per prompt, sweep grids, and ``report.html``.

- ``benchmark.json``: everything below in one file, with the settings, the device and the date;
- ``methods.csv``: the comparison: per method the area under its edit-versus-preservation curves, the edit score
  and attribute dependency at the fixed preservation, FID/KID, and its cost (preprocessing, per edit, peak memory);
- ``curves.csv`` (per method and prompt), ``points.csv`` (per method, prompt and strength), ``edits.csv`` (per edit);
- ``curves.png``: one panel per prompt, a line per method through its sweep;
- ``grid-<method>.png``: sources before and after at every strength of the sweep;
- ``report.html``: all of it on one page.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path

from PIL import Image

from ..evaluation.report import write_csv
from ..evaluation.tradeoff import KNOBS
from ..utils.files import atomic_write

METHOD_COLUMNS = ("method", "prompts", "edits", "failed", "area", "edit_at", "reached", "mean_ad_at", "mean_ad",
                  "directional", "fid", "kid_mean", "preprocessing_s", "per_edit_s", "peak_mb", "import_mb",
                  "preprocessing")  # fmt: skip
CURVE_COLUMNS = ("method", "prompt", "points", "area", "edit_at", "mean_ad_at", "min_preservation", "best_edit")
POINT_COLUMNS = ("method", "prompt", "knob", "strength", "edits", "edit_score", "clip_after", "directional",
                 "preservation", "identity", "lpips", "psnr", "psnr_masked", "lpips_masked", "mean_ad", "max_ad",
                 "seconds")  # fmt: skip
EDIT_COLUMNS = ("source", "prompt", "method", "strength", "state", "reason", "clip_before", "clip_after", "clip_gain",
                "directional", "identity", "lpips", "psnr", "preservation", "region", "psnr_masked", "lpips_masked",
                "mean_ad", "max_ad", "attributes_changed", "seconds", "folder")  # fmt: skip
HEADINGS = {
    "area": "area (mean edit score over preservation)", "edit_at": "edit score at p*", "reached": "prompts reaching p*",
    "mean_ad_at": "mean-AD at p*", "mean_ad": "mean-AD (all)", "directional": "directional CLIP",
    "fid": "FID", "kid_mean": "KID", "preprocessing_s": "preprocessing (s)", "per_edit_s": "per edit (s)",
    "peak_mb": "peak memory (MB)", "import_mb": "of it: torch import (MB)",
}  # fmt: skip
THUMB = 160
MAX_PANELS = 16


def write_report(result, G=None) -> list[Path]:
    """Write every file of the report into ``result.outdir``; returns their paths."""
    out = Path(result.outdir)
    files = [
        write_csv(out / "methods.csv", result.methods, METHOD_COLUMNS),
        write_csv(out / "curves.csv", result.curves, CURVE_COLUMNS),
        write_csv(out / "points.csv", result.points, POINT_COLUMNS),
        write_csv(out / "edits.csv", result.rows, EDIT_COLUMNS),
    ]
    data = {"info": result.info, "methods": result.methods, "curves": result.curves, "points": result.points,
            "costs": result.costs, "realism": result.realism, "notes": result.notes}  # fmt: skip
    text = json.dumps(data, indent=1, default=str)  # paths and the like as text
    files.append(atomic_write(out / "benchmark.json", lambda tmp: tmp.write_text(text, encoding="utf-8")))
    images = []
    if result.points:
        images.append(_curves_plot(result, out / "curves.png"))
    grids = [g for m in dict.fromkeys(r["method"] for r in result.rows) if (g := _grid(result, m, out)) is not None]
    files += images + grids
    files.append(_html(result, out / "report.html", images, grids))
    return files


def _curves_plot(result, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    prompts = list(dict.fromkeys(p["prompt"] for p in result.points))[:MAX_PANELS]
    cols = min(4, len(prompts))
    rows = math.ceil(len(prompts) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.1 * rows), dpi=100, squeeze=False)
    methods = list(dict.fromkeys(p["method"] for p in result.points))
    colours = {m: f"C{i}" for i, m in enumerate(methods)}
    at = result.info.get("at")
    for ax, prompt in zip(axes.flat, prompts, strict=False):
        for m in methods:
            pts = [
                p for p in result.points if p["method"] == m and p["prompt"] == prompt and p["preservation"] is not None
            ]
            if not pts:
                continue
            pts.sort(key=lambda p: -p["preservation"])
            xs = [1.0] + [p["preservation"] for p in pts]
            ys = [0.0] + [p["edit_score"] for p in pts]
            ax.plot(xs, ys, "-o", color=colours[m], label=m, markersize=3.5, linewidth=1.3)
            for p in pts:
                ax.annotate(f"{p['strength']:g}", (p["preservation"], p["edit_score"]), fontsize=6,
                            xytext=(2, 2), textcoords="offset points", color=colours[m])  # fmt: skip
        if at is not None:
            ax.axvline(at, color="#999", linestyle=":", linewidth=1)
        ax.invert_xaxis()  # left: the source kept whole; right: stronger edits
        ax.set_title(_short(prompt, 38), fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(prompts) :]:
        ax.axis("off")
    axes[0][0].legend(fontsize=7)
    fig.supxlabel(f"preservation: {result.info.get('axis_label', '')}", fontsize=9)
    fig.supylabel("edit score: judge's CLIP gain", fontsize=9)
    fig.tight_layout()
    path = atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _grid(result, method: str, out: Path, sources: int = 2, prompts: int = 3) -> Path | None:
    """Before, then after at each strength, for a few sources and prompts of ``method``."""
    from ..io.images import compare_image

    done = [r for r in result.rows if r["method"] == method and r["state"] == "done" and r["strength"] is not None]
    if not done:
        return None
    strengths = sorted({r["strength"] for r in done})
    if method == "optimize":  # a weaker pull back to the source edits more: strongest edit last
        strengths.reverse()
    # ASCII: the default font of Pillow draws no Greek letters
    knob = {"l2_weight": "L2 weight", "alpha": "alpha", "strength": "strength"}[KNOBS[method]]
    lines = []
    for prompt in list(dict.fromkeys(r["prompt"] for r in done))[:prompts]:
        for source in list(dict.fromkeys(r["source"] for r in done if r["prompt"] == prompt))[:sources]:
            cells = {r["strength"]: r for r in done if r["prompt"] == prompt and r["source"] == source}
            first = next(iter(cells.values()))
            pics = [_thumb(Path(first["folder"]) / "before.png")]
            labels = [f"{_short(prompt, 28)} · {source}"]
            for s in strengths:
                r = cells.get(s)
                pics.append(_thumb(Path(r["folder"]) / "after.png") if r else Image.new("RGB", pics[0].size, "#eee"))
                labels.append(f"{knob} {s:g}")
            lines.append(compare_image(pics, labels))
    width = max(im.width for im in lines)
    canvas = Image.new("RGB", (width, sum(im.height for im in lines) + 6 * (len(lines) - 1)), "white")
    y = 0
    for im in lines:
        canvas.paste(im, (0, y))
        y += im.height + 6
    path = out / f"grid-{method}.png"
    return atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))


def _thumb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im = im.convert("RGB")
        return im.resize((THUMB, THUMB), Image.LANCZOS) if im.width != THUMB else im.copy()


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if not math.isfinite(v):
            return "∞" if v > 0 else ""
        return f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"
    return html.escape(str(v))


def _table(rows: list[dict], columns) -> str:
    cols = [c for c in columns if any(r.get(c) is not None for r in rows)]
    head = "".join(f"<th>{html.escape(HEADINGS.get(c, c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _html(result, path: Path, images: list[Path], grids: list[Path]) -> Path:
    info = result.info
    where = path.parent

    def rel(p) -> str:
        return html.escape(os.path.relpath(p, where).replace(os.sep, "/"))

    facts = [
        ("date", info.get("date")), ("device", info.get("device")), ("generator", info.get("generator")),
        ("preset", f"{info.get('preset')}: {info.get('preset_title')}"), ("prompts from", info.get("preset_source")),
        ("sources", info.get("sources")), ("guiding CLIP", info.get("guide")),
        ("judge", " + ".join(info.get("judges", [])) + ("" if info.get("independent_judge") else " (the guide itself)")),
        ("preservation p", info.get("axis_label")),
        ("area from p₀", info.get("floor")), ("fixed preservation p*", info.get("at")),
        ("precision", info.get("precision")),
    ]  # fmt: skip
    parts = [f"<h1>styleclip benchmark: {html.escape(str(info.get('preset')))}</h1>",
             "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in facts)
             + "</table>"]  # fmt: skip
    parts += [f"<p class=note>{html.escape(n)}</p>" for n in result.notes]
    parts += ["<h2>Methods compared</h2>", _table(result.methods, METHOD_COLUMNS),
              "<p class=small>area: the mean edit score (judge's CLIP gain) over preservation from p₀ to 1; edit "
              "score and mean-AD at p*: read off each prompt's curve where preservation is p* (averaged over the "
              "prompts that reach it); mean-AD: StyleSpace's attribute dependency, the change of the attributes the "
              "prompt does not mention in units of their spread; peak memory: one edit in a fresh process.</p>"]  # fmt: skip
    parts += ["<h2>Trade-off curves</h2>"] + [f'<img class=plot src="{rel(p)}">' for p in images]
    parts += ["<h2>Per method and prompt</h2>", _table(result.curves, CURVE_COLUMNS)]
    if result.realism:
        rows = [{"pictures": k, **v} for k, v in result.realism.items()]
        parts += ["<h2>Realism against the real pictures</h2>",
                  _table(rows, ("pictures", "fid", "kid_mean", "kid_std", "n_edited", "n_real"))]  # fmt: skip
        said = dict.fromkeys(f"{k}: {n}" for k, v in result.realism.items() for n in v.get("notes", []))
        parts += [f"<p class=small>{html.escape(n)}</p>" for n in said]
    for g in grids:
        parts += [f"<h2>Sweep: {html.escape(g.stem.removeprefix('grid-'))}</h2>", f'<img class=grid src="{rel(g)}">']
    parts += ["<h2>Every point of the sweeps</h2>", _table(result.points, POINT_COLUMNS)]
    style = ("body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px;text-align:left}.plot,.grid{max-width:100%}"
             ".note{color:#855}.small{font-size:12px;color:#555}")  # fmt: skip
    title = f"styleclip benchmark {info.get('preset')}"
    page = f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title><style>{style}</style>" + "".join(
        parts
    )
    return atomic_write(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
