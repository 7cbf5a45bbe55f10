"""Hostile or clumsy output folders: nothing replaced without ``--overwrite``, nothing written through a link, a
file or a full disk refused in one line before any model loads, spreadsheet-safe CSV, and labels in bounded time."""

from __future__ import annotations

import csv
import errno
import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from styleclip.cli.main import main
from styleclip.evaluation.report import write_csv
from styleclip.hub.generators import save_generator
from styleclip.io.images import compare_image, fit_label
from styleclip.utils.files import OutputError, atomic_write_bytes

from conftest import tiny_generator
from hostile import refused, refused_by, snapshot


@pytest.fixture(scope="module")
def gen(tmp_path_factory) -> Path:
    return save_generator(tiny_generator(), tmp_path_factory.mktemp("outputs-gen") / "tiny.safetensors")


@pytest.fixture
def base(tmp_path) -> Path:
    """A folder holding the output folder, so that a test can watch everything around it."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "neighbour.txt").write_text("not styleclip's")
    return folder


MISSING = "no-such-generator.safetensors"  # refusals must come before any model is looked for

# Each command that writes results, the outputs an earlier run left, and the flag that lets it continue or redo.
EARLIER = {
    "generate": (["generate", "--generator", MISSING, "--seeds", "0-3"], "seed0002.npy", "--overwrite"),
    "edit": (["edit", "--generator", MISSING, "--prompt", "a dog"], "report.json", "--overwrite"),
    "edit-several": (["edit", "--generator", MISSING, "--prompt", "a dog"], "01-a-cat-seed0/after.png", "--overwrite"),
    "directions apply": (
        ["directions", "apply", "--generator", MISSING, "--target", "a happy dog", "--neutral", "a dog"],
        "sweep.png",
        "--overwrite",
    ),
    "mapper apply": (
        ["mapper", "apply", "--mapper", "no-such-mapper.safetensors"],
        "seed0000/after.png",
        "--overwrite",
    ),
    "mapper train": (
        ["mapper", "train", "--generator", MISSING, "--prompt", "a dog"],
        "checkpoints/step-000010.safetensors",
        "--resume",
    ),
    "invert": (["invert", "photo.png", "--generator", MISSING], "latent.npy", "--overwrite"),
    "batch": (
        ["batch", "--generator", MISSING, "--seeds", "0", "--prompt", "x", "--method", "optimize"],
        "batch.json",
        "--resume",
    ),
}


# -- 1. no command silently replaces earlier results ---------------------------------------------------------------


@pytest.mark.parametrize("command", list(EARLIER))
def test_earlier_results_are_refused_before_any_model_loads(command, base, capsys):
    argv, left, flag = EARLIER[command]
    out = base / "out"
    (out / left).parent.mkdir(parents=True, exist_ok=True)
    (out / left).write_text(json.dumps({"generator": "another batch"}))
    line = refused([*argv, "--outdir", out], capsys, match=rf"{out}.*earlier results.*{flag}", watch=[base])
    assert "--overwrite" in line  # redoing is always offered


def test_an_empty_existing_folder_is_fine_and_a_second_run_needs_overwrite(gen, base, capsys):
    out = base / "out"
    out.mkdir()
    argv = ["generate", "--generator", gen, "--seeds", "0-1", "--outdir", out]
    assert main([str(a) for a in argv]) == 0
    first = snapshot([out])
    refused(argv, capsys, match="--overwrite", watch=[base])
    # other seeds write other files: nothing earlier is replaced
    assert main([str(a) for a in ["generate", "--generator", gen, "--seeds", "5", "--outdir", out]]) == 0
    assert main([str(a) for a in [*argv, "--trunc", "0.5", "--overwrite"]]) == 0
    after = snapshot([out])
    assert after[str(out / "seed0000.npy")] != first[str(out / "seed0000.npy")]  # replaced, as asked


def test_convert_refuses_an_existing_output_and_its_own_input(gen, base, capsys):
    src = base / "g.safetensors"
    src.write_bytes(gen.read_bytes())
    out = base / "c.safetensors"
    assert main(["convert", str(src), str(out)]) == 0
    refused(["convert", src, out], capsys, match="exists.*--overwrite", watch=[base])
    (base / "sub").mkdir()
    (base / "link.safetensors").symlink_to(src)
    os.link(src, base / "hard.safetensors")
    for spelling in (src, base / "sub" / ".." / "g.safetensors", base / "link.safetensors", base / "hard.safetensors"):
        refused(["convert", src, spelling, "--overwrite"], capsys, match="input file itself", watch=[base])
    refused(["convert", base / "link.safetensors", src, "--overwrite"], capsys, match="input file itself",
            watch=[base])  # fmt: skip
    assert main(["convert", str(src), str(out), "--overwrite"]) == 0


def test_batch_of_the_same_settings_resumes_and_another_needs_resume_or_overwrite(base, capsys):
    out = base / "b"
    out.mkdir()
    spec = ["--generator", MISSING, "--seeds", "0-1", "--prompt", "a dog", "--method", "optimize"]
    (out / "batch.json").write_text(json.dumps({"generator": MISSING, "prompts": ["a dog"], "seeds": [0, 1],
                                                "runs": [{"method": "optimize"}]}))  # fmt: skip
    line = refused(["batch", *spec, "--outdir", out], capsys, match="another batch.*--resume", watch=[base])
    assert "runs" in line  # says what differs
    refused(["batch", *spec, "--outdir", out, "--resume", "--overwrite"], capsys, match="give one", watch=[base])
    # the same batch again needs no flag: it resumes, replacing nothing
    from styleclip.cli.batch import check_earlier_batch, spec_from_args
    from styleclip.cli.main import build_parser
    from styleclip.jobs.runner import describe_batch

    same = spec_from_args(build_parser().parse_args(["batch", *spec, "--outdir", str(out)]))
    (out / "batch.json").write_text(json.dumps(describe_batch(same), default=str))
    check_earlier_batch(out, same, resume=False, overwrite=False)
    (out / "batch.json").write_text("{not json")
    refused(["batch", *spec, "--outdir", out], capsys, match="without a readable batch.json.*--resume", watch=[base])


def test_mapper_train_refuses_a_run_folder_without_resume(base, capsys):
    out = base / "run"
    (out / "val").mkdir(parents=True)
    (out / "val" / "000002.png").write_bytes(b"png")
    argv = ["mapper", "train", "--generator", MISSING, "--prompt", "a dog", "--outdir", out]
    refused(argv, capsys, match="--resume to continue it, --overwrite to start it again", watch=[base])
    refused([*argv, "--resume", "--overwrite"], capsys, match="give one", watch=[base])


def test_mapper_train_overwrite_starts_again_without_the_earlier_steps(gen, tiny_clip_file, base):
    out = base / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "step-000050.safetensors").write_bytes(b"an earlier run's later step")
    (out / "log.jsonl").write_text('{"step": 50, "split": "train"}\n')
    argv = ["mapper", "train", "--generator", gen, "--clip", tiny_clip_file, "--device", "cpu", "--prompt", "a dog",
            "--steps", "2", "--train-size", "4", "--test-size", "2", "--val-count", "2", "--checkpoint-every", "1",
            "--outdir", out, "--overwrite"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000001.safetensors",
                                                                       "step-000002.safetensors"]  # fmt: skip
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()][-1] == 2


def test_pruning_keeps_the_newest_checkpoints_by_step_not_by_name(tmp_path):
    from styleclip.nets.mapper import LatentMapper, MapperConfig
    from styleclip.training.checkpoints import Checkpoints, clear_run

    mapper = LatentMapper(MapperConfig(w_dim=16, num_ws=8, groups=("coarse",)))
    optimizer = torch.optim.Adam(mapper.parameters())
    meta = {"prompt": "a dog", "generator": {"fingerprint": "x"}}
    ckpts = Checkpoints(tmp_path, SimpleNamespace(keep_checkpoints=2), meta)
    main_process = SimpleNamespace(is_main=True)
    ckpts.save(mapper, optimizer, 999_998, main_process)
    ckpts.save(mapper, optimizer, 999_999, main_process)
    ckpts.save(mapper, optimizer, 1_000_000, main_process)  # "step-1000000" sorts before "step-999998" by name
    assert [p.name for p in ckpts.all()] == ["step-999999.safetensors", "step-1000000.safetensors"]
    ckpts.save(mapper, optimizer, 1_000_001, main_process)
    assert [p.name for p in ckpts.all()] == ["step-1000000.safetensors", "step-1000001.safetensors"]
    clear_run(tmp_path)  # --overwrite: an earlier run's steps cannot pass for the new run's newest
    assert ckpts.all() == [] and not (tmp_path / "mapper.safetensors").exists()


# -- 2. outputs are written atomically, never through a link -----------------------------------------------------------


def test_a_planted_link_is_refused_then_replaced_never_followed(gen, base, capsys):
    outside = base / "victim.npy"
    outside.write_bytes(b"precious")
    out = base / "out"
    out.mkdir()
    (out / "seed0000.npy").symlink_to(outside)
    argv = ["generate", "--generator", gen, "--seeds", "0", "--outdir", out]
    refused(argv, capsys, match="seed0000.npy.*--overwrite", watch=[base])
    before = snapshot([outside])
    assert main([str(a) for a in [*argv, "--overwrite"]]) == 0
    assert snapshot([outside]) == before and outside.read_bytes() == b"precious"
    assert not (out / "seed0000.npy").is_symlink() and np.load(out / "seed0000.npy").shape[0] == 1


def test_a_linked_output_folder_is_removed_not_written_through(gen, base, tiny_clip_file, capsys):
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    out = base / "out"
    out.mkdir()
    (out / "00-a-dog-seed0").symlink_to(elsewhere, target_is_directory=True)
    argv = ["edit", "--generator", gen, "--clip", tiny_clip_file, "--device", "cpu", "--prompt", "a dog",
            "--prompt", "a cat", "--steps", "1", "--no-video", "--outdir", out]  # fmt: skip
    refused(argv, capsys, match="00-a-dog-seed0.*--overwrite", watch=[base])
    before = snapshot([elsewhere])
    assert main([str(a) for a in [*argv, "--overwrite"]]) == 0
    assert snapshot([elsewhere]) == before
    assert (out / "00-a-dog-seed0").is_dir() and not (out / "00-a-dog-seed0").is_symlink()
    assert (out / "00-a-dog-seed0" / "after.png").is_file()


def test_the_library_replaces_a_link_at_the_destination(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"v")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.bin").symlink_to(victim)
    atomic_write_bytes(tmp_path / "out" / "a.bin", b"new")
    assert victim.read_bytes() == b"v" and (tmp_path / "out" / "a.bin").read_bytes() == b"new"
    assert not (tmp_path / "out" / "a.bin").is_symlink()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.bin"]  # no temporary file left


def test_a_video_never_writes_through_a_guessable_temporary_name(tmp_path):
    from styleclip.io.video import VideoWriter

    victim = tmp_path / "victim"
    victim.write_bytes(b"v")
    (tmp_path / ".sweep.part.gif").symlink_to(victim)
    with VideoWriter(tmp_path / "sweep.gif", fps=5) as video:
        video.append(np.zeros((8, 8, 3), np.uint8))
    assert victim.read_bytes() == b"v" and Image.open(tmp_path / "sweep.gif").size == (8, 8)


# -- 3. an outdir that is a file, or below a file ----------------------------------------------------------------------


@pytest.mark.parametrize("command", [c for c in EARLIER if c != "edit-several"] + ["eval", "convert"])
@pytest.mark.parametrize("below", [False, True], ids=["file", "below-a-file"])
def test_an_outdir_that_is_a_file_is_refused_before_any_model_loads(command, below, base, capsys):
    taken = base / "taken"
    taken.write_text("a file")
    target = taken / "sub" if below else taken
    if command == "eval":
        (base / "edits").mkdir()
        argv = ["eval", base / "edits", "--out", target]
    elif command == "convert":
        argv = ["convert", MISSING, target / "g.safetensors" if not below else target]
    else:
        argv = [*EARLIER[command][0], "--outdir", target]
    refused(argv, capsys, match=r"is a file", watch=[base])


# -- 4. a read-only or full output folder --------------------------------------------------------------------------


def test_a_full_disk_is_one_line_naming_the_folder_and_leaves_nothing_half_written(gen, base, capsys, monkeypatch):
    def full(self, fp, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", full)
    out = base / "out"
    line = refused(["generate", "--generator", gen, "--seeds", "0", "--outdir", out], capsys,
                   match=rf"seed0000.png in {out}.*full", watch=[base], may_write=[out])  # fmt: skip
    assert "free some space" in line
    assert list(out.iterdir()) == []  # no temporary file, no partial picture


def test_a_folder_below_a_file_is_one_line_from_the_library(tmp_path):
    (tmp_path / "file").write_text("x")
    refused_by(lambda: atomic_write_bytes(tmp_path / "file" / "sub" / "a.bin", b"x"), match=r"a.bin in .*file.*folder",
               error=OutputError, watch=[tmp_path])  # fmt: skip


def test_a_batch_job_whose_outputs_failed_is_not_done(gen, tiny_clip_file, base, capsys, monkeypatch):
    out = base / "b"
    argv = ["batch", "--generator", gen, "--clip", tiny_clip_file, "--device", "cpu", "--seeds", "0-1", "--prompt",
            "a dog", "--method", "optimize", "--steps", "1", "--batch-size", "1", "--lpips", "off", "--identity", "off",
            "--outdir", out]  # fmt: skip
    real_save = Image.Image.save
    calls = []

    def fills_up(self, fp, *args, **kwargs):  # the second job's after.png meets a full disk
        calls.append(fp)
        if "after.png" in str(fp) and "seed0001" in str(fp):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", fills_up)
    refused(argv, capsys, match="after.png in .*seed0001.*full", watch=[base], may_write=[out])
    jobs = sorted((out / "jobs").iterdir())
    done = {j.name: (j / "report.json").is_file() for j in jobs}
    assert sorted(done.values()) == [False, True], done  # the first job is done, the second is not
    failed = next(j for j in jobs if not done[j.name])
    assert not [p for p in failed.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(Image.Image, "save", real_save)
    assert main([str(a) for a in argv]) == 0  # the same batch again: only what is left is done
    assert all((j / "report.json").is_file() for j in jobs)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"done": 2, "failed": 0, "pending": 0}


# -- 5. CSV cells that a spreadsheet would run -------------------------------------------------------------------


def test_csv_neutralises_formulas_and_keeps_negative_numbers(tmp_path):
    rows = [{"prompt": p, "score": -0.25, "n": -3} for p in ("=1+2", "+1", "-x", "@SUM(A1)", "\tx", "\rx", "a dog")]
    write_csv(tmp_path / "t.csv", rows, ["prompt", "score", "n"])
    with open(tmp_path / "t.csv", newline="") as f:
        got = list(csv.DictReader(f))
    assert [r["prompt"] for r in got] == ["'=1+2", "'+1", "'-x", "'@SUM(A1)", "'\tx", "'\rx", "a dog"]
    assert {r["score"] for r in got} == {"-0.25"} and {r["n"] for r in got} == {"-3"}


def test_eval_writes_a_prompt_that_looks_like_a_formula_as_text(gen, tiny_clip_file, base):
    out = base / "e"
    prompt = '=HYPERLINK("http://127.0.0.1/x","a dog")'
    assert main(["edit", "--generator", str(gen), "--clip", str(tiny_clip_file), "--device", "cpu", "--prompt", prompt,
                 "--steps", "1", "--no-video", "--outdir", str(out)]) == 0  # fmt: skip
    assert main(["eval", str(out), "--clip", str(tiny_clip_file), "--device", "cpu", "--lpips", "off", "--identity",
                 "off", "--out", str(base / "scores")]) == 0  # fmt: skip
    for name in ("metrics.csv", "aggregate.csv"):
        with open(base / "scores" / name, newline="") as f:
            cells = [c for row in csv.reader(f) for c in row]
        assert "'" + prompt in cells and prompt not in cells
        assert not any(c.startswith(("=", "+", "@")) for c in cells)
        numbers = [c for c in cells if c.startswith("-")]
        assert all(float(c) < 0 for c in numbers)  # a negative score is still a number


# -- 6. labels in bounded time -----------------------------------------------------------------------------------


def test_a_100000_character_prompt_is_labelled_with_few_measurements(monkeypatch):
    measured: list[int] = []
    real = ImageDraw.ImageDraw.textlength

    def counting(self, text, *args, **kwargs):
        measured.append(len(text))
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "textlength", counting)
    pictures = [Image.new("RGB", (64, 64)), Image.new("RGB", (64, 64))]
    sheet = compare_image(pictures, ["before", "after: " + "a really happy dog " * 5556])  # 100,008 characters
    assert sheet.width == 64 * 2 + 2
    assert len(measured) <= 2 * 17 + 4, len(measured)  # O(log n): doubling then halving, not one cut at a time
    assert max(measured) < 200  # never the whole prompt: only prefixes about as long as what fits
    measured.clear()
    compare_image(pictures, ["before", "after"])
    assert len(measured) == 2  # a label that fits is measured once


def test_label_shortening_keeps_the_longest_prefix_that_fits():
    def width(text: str) -> float:
        return 6.0 * len(text)

    assert fit_label("a happy dog", width, 100) == "a happy dog"
    assert fit_label("a happy dog\nwith a hat", width, 1000) == "a happy dog with a hat"  # one line
    short = fit_label("x" * 100_000, width, 60)
    assert short == "x" * 9 + "…" and width(short) <= 60 and width("x" * 10 + "…") > 60
    assert fit_label("abc", width, 3) == ""  # not even the ellipsis fits


def test_resuming_a_batch_never_removes_a_linked_folder(base, capsys):
    """A link where the batch's jobs/ goes is refused on resume (neither removed nor written through)."""
    from styleclip.cli.batch import check_earlier_batch, spec_from_args
    from styleclip.cli.main import build_parser
    from styleclip.jobs.runner import describe_batch

    out, elsewhere = base / "b", base / "elsewhere"
    (elsewhere / "x").mkdir(parents=True)
    (elsewhere / "x" / "report.json").write_text("{}")
    out.mkdir()
    spec = ["--generator", MISSING, "--seeds", "0-1", "--prompt", "a dog", "--method", "optimize"]
    same = spec_from_args(build_parser().parse_args(["batch", *spec, "--outdir", str(out)]))
    (out / "batch.json").write_text(json.dumps(describe_batch(same), default=str))
    (out / "jobs").symlink_to(elsewhere, target_is_directory=True)
    refused(["batch", *spec, "--outdir", out], capsys, match="is a link.*--overwrite", watch=[base])
    assert (out / "jobs").is_symlink() and (elsewhere / "x" / "report.json").is_file()
    check_earlier_batch(out, same, resume=False, overwrite=True)  # --overwrite removes the link, not its target
    assert not (out / "jobs").exists() and (elsewhere / "x" / "report.json").is_file()


def test_overwrite_removes_a_dangling_link_where_an_output_folder_goes(tmp_path):
    from styleclip.utils.files import refuse_earlier_results

    out = tmp_path / "out"
    out.mkdir()
    (out / "inversion").symlink_to(tmp_path / "nowhere")
    assert refuse_earlier_results(out, ["inversion/*"], overwrite=True) == [out / "inversion"]
    assert not (out / "inversion").is_symlink()


def test_an_inversion_written_over_another_leaves_none_of_its_files(tmp_path):
    """A PTI generator or noise maps of the earlier inversion would pass for the new latent's."""
    from types import SimpleNamespace as NS

    from styleclip.cli.invert import write_inversion

    G = tiny_generator()
    out = tmp_path / "inv"
    out.mkdir()
    (out / "generator_pti.safetensors").write_bytes(b"earlier")
    (out / "noise.npz").write_bytes(b"earlier")
    img = torch.zeros(1, 3, 32, 32)
    inv = NS(aligned=Image.new("RGB", (32, 32)), reconstruction=img, ws=torch.zeros(1, G.num_ws, G.w_dim), noise=None,
             method="e4e", distance="LPIPS-VGG + pixels", metrics={}, precision={}, compile={}, seconds=0.1,
             history=[], generator=G, offsets=None, why="--method e4e")  # fmt: skip
    (out / "offsets.safetensors").write_bytes(b"earlier")  # an earlier HyperStyle inversion's
    write_inversion(inv, out, Path("me.jpg"), "tiny")
    assert sorted(p.name for p in out.iterdir()) == ["aligned.png", "latent.npy", "reconstruction.png", "report.json"]


def test_mapper_resume_drops_a_damaged_log_line_and_refuses_a_linked_val_folder(gen, tiny_clip_file, base, capsys):
    out = base / "run"
    argv = ["mapper", "train", "--generator", gen, "--clip", tiny_clip_file, "--device", "cpu", "--prompt", "a dog",
            "--steps", "2", "--train-size", "4", "--test-size", "2", "--val-count", "2", "--checkpoint-every", "1",
            "--val-every", "1", "--log-every", "1", "--outdir", out]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    with open(out / "log.jsonl", "a") as f:
        f.write('{"step": 3, "spl')  # a disk that filled in the middle of a line
    assert main([str(a) for a in [*argv[:-4], "--steps", "3", *argv[-2:], "--resume"]]) == 0
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps and steps[-1] == 3
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    import shutil

    shutil.rmtree(out / "val")
    (out / "val").symlink_to(elsewhere, target_is_directory=True)
    resume = [*argv[:-4], "--steps", "4", *argv[-2:], "--resume"]
    refused(resume, capsys, match="val is a link.*make it a folder", watch=[elsewhere])
