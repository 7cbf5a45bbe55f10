"""The report of an earlier edit (``report.json``, or the text of an output PNG), read to repeat the edit.

A report is data anyone can write: every value is type- and range-checked (:meth:`OptimizeConfig.from_dict`), and
the models and files it names are opened only under the rules of :mod:`styleclip.references`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .references import Reference, is_catalogue_name, refuse

if TYPE_CHECKING:
    from .edits.optimize import OptimizeConfig

REPORT_KEY = "styleclip:report"  # the PNG text chunk holding everything needed to reproduce the image
MAX_REPORT_BYTES = 64 << 20  # a report with a 100,000-step history is a few MB
TRUST_FLAG = "--trust-report"
REPORT_RULE = "styleclip opens only catalogue names that a report names"
# The command-line option that names the same thing as each entry a report names.
OVERRIDES = {"generator": "--generator", "clip": "--clip", "identity": "--identity", "file": "--latent"}


def read_report(path: Path) -> dict[str, Any]:
    """A report from ``report.json`` or from the text chunk of an output PNG (its pixels are never decoded)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such report")
    try:
        if path.suffix.lower() == ".png":
            import warnings

            from PIL import Image

            with warnings.catch_warnings():  # the pixels are never decoded: their number is no concern here
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im = Image.open(path)
            with im:
                if im.format != "PNG":
                    raise UsageError(f"{path}: not a PNG file")
                # styleclip writes its text before the pixels: Image.open has read it, `im.text` would decode all
                text = im.info.get(REPORT_KEY)
            if not isinstance(text, str):
                raise UsageError(f"{path}: this PNG carries no styleclip report")
        else:
            size = path.stat().st_size
            if size > MAX_REPORT_BYTES:
                raise UsageError(f"{path}: {size >> 20} MiB is far more than a styleclip report holds")
            text = path.read_text(encoding="utf-8")
        report = json.loads(text)
    except UsageError:
        raise
    except Exception as exc:  # JSON, PIL and OS errors, deep nesting: all mean "not a report"
        raise UsageError(f"{path}: not a styleclip report ({type(exc).__name__})") from None
    if not isinstance(report, dict) or not isinstance(report.get("config"), dict):
        raise UsageError(f"{path}: not a styleclip report (no config)")
    generator = report.get("generator")
    if not isinstance(generator, dict) or not isinstance(generator.get("name"), str) or not generator["name"].strip():
        raise UsageError(f"{path}: not a styleclip report (no generator name)")
    return report


def config_from_report(
    path: Path,
    *,
    generator: str | None = None,
    clip: str | None = None,
    identity: str | None = None,
    latent: str | None = None,
    photo_given: bool = False,
    trust: bool = False,
) -> tuple[OptimizeConfig, str]:
    """The edit settings and generator a report holds, with what the command line gives in their place.

    Args:
        generator, clip, identity, latent: given on the command line: used instead of the report's (and trusted).
        photo_given: the command line edits a photo instead (``--image``): the report's latent is neither opened
            nor announced.
        trust: open the paths and URLs the report names (``--trust-report``); otherwise only catalogue names.

    Returns:
        ``(OptimizeConfig, generator)``, checked.
    """
    from .edits.optimize import OptimizeConfig

    path = Path(path)
    report = read_report(path)
    try:
        config = OptimizeConfig.from_dict(report["config"])
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}") from None
    name = generator or report["generator"]["name"]
    named = []
    if generator is None:
        named.append(Reference("the generator", name, "generator"))
    if clip is not None:
        config.clip = clip
    else:
        named.append(Reference("the CLIP model", config.clip, "clip"))
    if identity is not None:
        config.identity = identity
    elif config.identity is not None:
        named.append(Reference("the identity model", config.identity, "identity"))
    if latent is not None or photo_given:
        config.latent = latent
    elif config.latent is not None and config.mode == "edit":
        named.append(Reference("the latent", config.latent, "file"))
    if not trust:
        for ref in named:
            if not is_catalogue_name(ref.value, ref.kind):
                raise refuse(path, ref, OVERRIDES[ref.kind], TRUST_FLAG, REPORT_RULE)
    return config, name


def adapted_from_report(path: Path, trust: bool = False) -> str | None:
    """The adapted generator (``--adapted``) an edit's report records as having drawn it, or None; a name other than
    a catalogue one is refused without ``trust``, as the report's generator is."""
    path = Path(path)
    record = read_report(path).get("adapted")
    if record is None:
        return None
    name = record.get("name") if isinstance(record, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"{path}: not a styleclip report (its adapted generator has no name)")
    if not trust and not is_catalogue_name(name, "generator"):
        raise refuse(path, Reference("the adapted generator", name, "generator"), "--adapted", TRUST_FLAG, REPORT_RULE)
    return name


def describe_loads(path: Path, config: OptimizeConfig, generator: str) -> str:
    """One line saying what repeating the report will load."""
    parts = [f"generator {generator}", f"CLIP {config.clip}"]
    if config.mode == "edit" and config.latent is not None:
        parts.append(f"latent {config.latent}")
    if config.identity is not None:
        parts.append(f"identity {config.identity}")
    return " ".join(f"from report {path}: {', '.join(parts)}".split())
