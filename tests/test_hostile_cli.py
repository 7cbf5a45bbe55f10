"""The command line's own last lines of defence: usage errors, machine errors and bugs each end in one line."""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest

from styleclip.cli import generate
from styleclip.cli.main import main

from hostile import check_one_line, refused


def test_a_usage_error_is_one_line_naming_help(capsys, tmp_path):
    line = refused(["edit", "--steps", "ten", "--outdir", tmp_path], capsys, match="invalid int value")
    assert line.endswith("(see styleclip edit --help)")
    refused(["no-such-command"], capsys, match="invalid choice")


def test_help_still_exits_zero(capsys):
    assert main(["generate", "--help"]) == 0
    assert "--outdir" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("code", "advice"),
    [(errno.ENOSPC, "free some space"), (errno.EROFS, "read-only"), (errno.EACCES, "permissions")],
)
def test_a_full_or_locked_disk_is_one_line_naming_the_file(capsys, monkeypatch, tmp_path, code, advice):
    target = tmp_path / "out" / "seed0000.png"

    def fail(args):
        raise OSError(code, "simulated", str(target))

    monkeypatch.setattr(generate, "run", fail)
    line = refused(["generate", "--generator", "x", "--outdir", tmp_path / "out"], capsys, match=advice)
    assert str(target) in line


def test_a_bug_is_one_line_with_the_traceback_in_a_log(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("STYLECLIP_HOME", str(tmp_path / "home"))

    def bug(args):
        return {}["missing key"]

    monkeypatch.setattr(generate, "run", bug)
    capsys.readouterr()
    assert main(["generate", "--generator", "x", "--outdir", str(tmp_path / "o")]) == 3
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    match = re.fullmatch(r"styleclip generate: internal error: KeyError: 'missing key'; details in (\S+); please report it",
                         lines[0])  # fmt: skip
    assert match, lines[0]
    log = Path(match.group(1))
    assert log.parent == tmp_path / "home" / "logs"
    assert "Traceback" in log.read_text() and "def bug" not in log.read_text().splitlines()[0]
    assert 'return {}["missing key"]' in log.read_text()


def test_check_one_line_rejects_what_the_suite_must_catch():
    with pytest.raises(AssertionError):
        check_one_line("styleclip x: error: a\nTraceback (most recent call last):\n")
    with pytest.raises(AssertionError):
        check_one_line("styleclip x: internal error: KeyError: 1; details in /tmp/l; please report it\n")
    assert check_one_line("\r 10%|#  |\r\rstyleclip x: error: fine\n") == "styleclip x: error: fine"
