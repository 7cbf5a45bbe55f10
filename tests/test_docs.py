"""Every command the README and docs/ show is run, so that the docs cannot drift from the program.

The shell blocks (```bash) of each page are read in order and their commands run in one working folder per page,
as a user would paste them, on the tiny networks of :mod:`docs_world` (every catalogue name the docs use answers
with a tiny random network in the official format; nothing is downloaded). Two things are changed, both spelled
out in :func:`shrunk`: long jobs get a few steps instead of thousands, and seed ranges longer than eight are cut to
two. Commands that install packages, start a server or run the suite itself are listed in :data:`NOT_RUN` with
the test that stands for them; any other command a page adds must run.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from styleclip.cli.main import build_parser, main

import docs_world

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"bash", "sh", "shell", "console"}

# Commands shown but not run here, with what covers them instead.
NOT_RUN = {
    "python3 -m venv": "the fresh environment of the README's first screen: CI's .ci/run builds exactly that",
    "pip install": "installing packages: CI's .ci/run installs the project with its extras",
    ".venv/bin/pip install": "installing packages: CI's .ci/run installs the project with its extras",
    ".venv/bin/python -m pytest": "the test suite itself: CI runs it",
    ".venv/bin/ruff": "lint: CI runs it",
    "python benchmarks/": "benchmarks: speed claims are measured, not tested (benchmarks/)",
}
# Run in this process instead of as several: tests/test_batch.py and test_mapper_training.py run the real torchrun.
TORCHRUN = re.compile(r"^torchrun\b.*? -m styleclip ")
SERVERS = {"ui": "a web server: its flags are parsed here, the page is driven by tests/test_ui_browser.py"}

FEW_STEPS = "2"
LONG_JOBS = {
    ("mapper", "train"): ["--train-size", "4", "--test-size", "2", "--val-every", "1"],
    ("directions", "precompute"): ["--images", "2", "--samples", "200", "--max-resolution", "8"],
}
FEW = {"--pti": ["--pti-steps", FEW_STEPS]}  # options whose loop has its own length
# The benchmark's peak-memory probe starts a fresh process, which cannot see this tiny world (it would look for
# the real models): tests/test_benchmark.py runs the probe on its own tiny files instead.
IN_PROCESS = {("benchmark",): ["--no-memory"]}


@dataclass
class Command:
    page: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"


def shell_commands(page: Path) -> list[Command]:
    """The commands of a page's shell blocks, continuation lines joined, comments dropped, `a && b` split."""
    found: list[Command] = []
    fence = None
    pending, start = "", 0
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        marker = re.match(r"^\s*```(\w*)", line)
        if marker:
            fence = None if fence is not None else marker.group(1)
            continue
        if fence not in SHELL:
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        words = shlex.split(pending + line, comments=True)
        pending = ""
        part: list[str] = []
        for word in [*words, "&&"]:
            if word == "&&":
                if part:
                    found.append(Command(page.name, start, shlex.join(part)))
                part = []
            else:
                part.append(word)
    assert fence is None, f"{page.name}: a code fence is not closed"
    return found


def _options(argv: list[str]) -> set[str]:
    """The option strings the (sub)command named by ``argv`` accepts."""
    parser = build_parser()
    for word in argv:
        sub = next((a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"), None)
        if sub is None or word not in sub.choices:
            break
        parser = sub.choices[word]
    return {s for a in parser._actions for s in a.option_strings}


def _command_path(argv: list[str]) -> tuple[str, ...]:
    return tuple(w for w in argv[:2] if not w.startswith("-"))


def shrunk(argv: list[str]) -> list[str]:
    """``argv`` with thousands of steps made a few and long seed ranges cut to two seeds: the same command, small."""
    out = list(argv)
    for i, word in enumerate(out[:-1]):
        if word in ("--seeds", "--seed") and re.fullmatch(r"\d+-\d+", out[i + 1]):
            first, last = map(int, out[i + 1].split("-"))
            if last - first >= 8:
                out[i + 1] = f"{first}-{first + 1}"
        if word == "--steps":
            out[i + 1] = FEW_STEPS
    batch_without_steps = _command_path(out) == ("batch",) and "optimize" not in out  # other methods take none
    if "--steps" in _options(out) and "--steps" not in out and not batch_without_steps:
        out += ["--steps", FEW_STEPS]
    out += LONG_JOBS.get(_command_path(out), [])
    out += IN_PROCESS.get(_command_path(out), [])
    out += [word for flag, extra in FEW.items() if flag in out for word in extra]
    return out


def shrunk_file(text: str) -> str:
    """A job file shown on a page, with the same two changes as :func:`shrunk`."""

    def seeds(m: re.Match) -> str:
        first, last = int(m.group(2)), int(m.group(3))
        return f"{m.group(1)}{first}-{first + 1}" if last - first >= 8 else m.group(0)

    text = re.sub(r"(seeds:\s*)(\d+)-(\d+)", seeds, text)
    return re.sub(r"(steps:\s*)\d+", rf"\g<1>{FEW_STEPS}", text)


def all_commands() -> list[Command]:
    return [c for page in PAGES for c in shell_commands(page)]


def test_every_page_has_commands_and_each_is_run_or_accounted_for():
    commands = all_commands()
    assert len(commands) > 20
    for command in commands:
        text = command.text
        runs = text.startswith(("styleclip ", ".venv/bin/styleclip ")) or TORCHRUN.match(text)
        skipped = any(text.startswith(prefix) for prefix in NOT_RUN)
        assert runs or skipped, f"{command}: neither run by this test nor listed in NOT_RUN"


def _styleclip_argv(text: str) -> list[str] | None:
    text = TORCHRUN.sub("styleclip ", text)
    words = shlex.split(text)
    if words[0] in ("styleclip", ".venv/bin/styleclip"):
        return words[1:]
    return None


def _runnable(page: Path) -> list[tuple[Command, list[str]]]:
    commands = [(c, _styleclip_argv(c.text)) for c in shell_commands(page)]
    return [(c, argv) for c, argv in commands if argv is not None]


@pytest.mark.parametrize("page", [p for p in PAGES if _runnable(p)], ids=lambda p: p.name)
def test_the_commands_of_each_page_run_in_order(page, tmp_path, monkeypatch, capsys):
    commands = _runnable(page)
    docs_world.install(monkeypatch, tmp_path / "home")
    work = tmp_path / "work"
    work.mkdir()
    docs_world.inputs(work)
    for name, text in files_shown(page).items():
        (work / name).write_text(shrunk_file(text))
    monkeypatch.chdir(work)
    for command, argv in commands:
        if argv[0] in SERVERS:
            build_parser().parse_args(argv)  # the flags exist and parse; the server is the browser test's
            continue
        argv = shrunk(argv)
        capsys.readouterr()
        status = main(argv)
        err = capsys.readouterr().err
        assert status == 0, f"{command}\n  ran as: styleclip {shlex.join(argv)}\n  exit {status}: {err.strip()[-800:]}"


def files_shown(page: Path) -> dict[str, str]:
    """Files a page shows in full: a ```yaml (or other) block whose first line is a comment naming the file."""
    files, fence, name, body = {}, None, None, []
    for line in page.read_text().splitlines():
        marker = re.match(r"^\s*```(\w*)", line)
        if marker:
            if fence is not None and name:
                files[name] = "\n".join(body) + "\n"
            fence = None if fence is not None else marker.group(1)
            name, body = None, []
            continue
        if fence is not None and fence not in SHELL:
            if not body and name is None:
                shown = re.fullmatch(r"#\s*file:\s*(\S+)", line.strip())
                if shown:
                    name = shown.group(1)
                    continue
            body.append(line)
    return files
