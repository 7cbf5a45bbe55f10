"""Evaluation built in: score styleclip's edits in any folders and write tables, plots and a contact sheet."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .adaptation import evaluate_adaptation, evaluate_styles
from .edits import Edit, find_edits, score
from .report import COLUMNS, STYLE_COLUMNS, aggregate, comparison, plots, write_csv, write_html


@dataclass
class Evaluation:
    """``rows``: one per edit (:func:`score`); ``aggregate``/``comparison``: see :mod:`.report`; ``styles``: one
    per adapted generator of a batch (:func:`evaluate_styles`); ``files``: written."""

    rows: list[dict]
    aggregate: list[dict]
    comparison: list[dict]
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    styles: list[dict] = field(default_factory=list)


def evaluate(
    root: str | Path | list[str | Path],
    guide,
    out: str | Path | None = None,
    identity=None,
    lpips=None,
    neutral: str | None = None,
    name: str = "metrics",
    title: str | None = None,
    notes: list[str] | None = None,
) -> Evaluation:
    """Score every edit under ``root`` (a folder or several) and write ``<out>/<name>.csv``, ``aggregate.csv``,
    ``comparison.csv`` (several methods), ``adaptation.csv`` (a batch with adapted generators: their directional
    CLIP score against the generator's pictures of the same edits, per style), ``tradeoff.png``, ``histograms.png``
    and ``<name>.html`` (``out`` default: the first folder).

    Args:
        guide: the CLIP model that judges (:func:`styleclip.load_clip`).
        identity: an ArcFace :class:`~styleclip.guidance.identity.IdentityLoss` for faces, or None (no column).
        lpips: an :class:`~styleclip.guidance.perceptual.LPIPS`, or None (no column).
        neutral: the text change's origin for edits that record none (directional score).
        notes: lines shown on the page (e.g. why a column is missing).
    """
    roots = [Path(r) for r in (root if isinstance(root, list) else [root])]
    out = Path(out) if out is not None else roots[0]
    edits = [e for r in roots for e in find_edits(r)]
    rows = score(edits, guide, identity=identity, lpips=lpips, neutral=neutral)
    agg, comp = aggregate(rows), comparison(rows)
    notes = list(notes or [])
    if not rows:
        notes.append(f"no styleclip edits found under {', '.join(map(str, roots))}")
    files = [write_csv(out / f"{name}.csv", rows, COLUMNS)]
    if agg:
        files.append(write_csv(out / "aggregate.csv", agg, list(agg[0])))
    if comp:
        files.append(write_csv(out / "comparison.csv", comp, list(comp[0])))
    styles = [s for r in roots for s in evaluate_styles(r, guide, identity=identity)]
    if styles:
        files.append(write_csv(out / "adaptation.csv", styles, STYLE_COLUMNS))
    images = plots(rows, out)
    files += images
    files.append(write_html(out / f"{name}.html", title or f"styleclip evaluation of {', '.join(map(str, roots))}", rows, agg, comp, images,
                            notes, styles))  # fmt: skip
    return Evaluation(rows, agg, comp, notes, files, styles)


__all__ = ["Edit", "Evaluation", "aggregate", "comparison", "evaluate", "evaluate_adaptation", "evaluate_styles",
           "find_edits", "score"]  # fmt: skip
