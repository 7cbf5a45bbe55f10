"""``styleclip benchmark`` end to end on the tests' tiny models: a preset shrunk to two prompts, every method swept,
an independent judge, masked preservation, attribute dependency, FID/KID, costs, the report; resume, torchrun and
one-line refusals."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from styleclip.cli.main import main
from styleclip.hub.generators import save_generator

from conftest import another_tiny_clip, varied_generator
from hostile import refused
from test_realism import weights  # noqa: F401  (a fixture: random Inception weights in torch-fidelity's format)
from test_video_masks import random_state

pytestmark = pytest.mark.usefixtures("one_thread")

PRESET = """\
name: tiny-dogs
title: Two dog prompts for the tests
source: the tests (random weights)
domain: dog
generator: stylegan2-ada-tf:afhqdog
seeds: 0-1
prompts:
  - {target: a happy dog, neutral: a dog, attributes: [happy]}
  - {target: a dog with its mouth open, neutral: a dog, region: mouth, attributes: [mouth_open]}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_clip_file):
    folder = tmp_path_factory.mktemp("bench-assets")
    gen = save_generator(varied_generator(), folder / "tiny.safetensors")
    judge = another_tiny_clip()  # another CLIP than the guide: an independent judge
    judge_file = folder / "judge.pt"
    torch.save(judge.state_dict(), judge_file)
    parser = folder / "79999_iter.pth"
    torch.save(random_state(), parser)
    (folder / "preset.yaml").write_text(PRESET)
    real = folder / "real"
    real.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(real / f"r{i}.png")
    common = ["--preset", str(folder / "preset.yaml"), "--generator", str(gen), "--clip", str(tiny_clip_file),
              "--device", "cpu", "--cache", str(folder / "cache"), "--samples", "300", "--precompute",
              "--train-mappers", "2", "--steps", "2", "--spread-seeds", "8", "--lpips", "off"]  # fmt: skip
    return {"folder": folder, "common": common, "judge": judge_file, "parser": parser, "real": real,
            "clip": tiny_clip_file}  # fmt: skip


SWEEPS = {"directions": "directions=1,6", "optimize": "optimize=0.05,0.002", "mapper": "mapper=0.05,0.3"}


def sweeps(methods: str = "optimize,directions,mapper") -> list[str]:
    """``--methods`` and two strengths for each: the tests' short sweeps."""
    return ["--methods", methods, *(a for m in methods.split(",") for a in ("--sweep", SWEEPS[m]))]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_a_benchmark_sweeps_every_method_judges_independently_and_reports(world, weights, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "bench"
    argv = ["benchmark", *world["common"], *sweeps(), "--judge", str(world["judge"]), "--parser", str(world["parser"]),
            "--real", str(world["real"]), "--fid-weights", str(weights), "--outdir", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "report:" in printed and "optimize" in printed
    for name in ("report.html", "benchmark.json", "methods.csv", "curves.csv", "points.csv", "edits.csv",
                 "curves.png", "grid-optimize.png", "grid-directions.png", "grid-mapper.png", "settings.json"):  # fmt: skip
        assert (out / name).is_file(), name
    data = json.loads((out / "benchmark.json").read_text())
    info = data["info"]
    assert info["judges"] == [str(world["judge"])] and info["independent_judge"] is True
    assert info["axis"] == "pixels"  # no ArcFace, no LPIPS in the tests: 1 - RMSE
    assert "CPU" in info["device"] and info["date"]
    # 2 sources x 2 prompts x 2 strengths per method
    edits = read_csv(out / "edits.csv")
    assert len(edits) == 24 and all(e["state"] == "done" for e in edits)
    by_method = {m: [e for e in edits if e["method"] == m] for m in ("optimize", "directions", "mapper")}
    assert {float(e["strength"]) for e in by_method["directions"]} == {1.0, 6.0}
    assert {float(e["strength"]) for e in by_method["optimize"]} == {0.05, 0.002}
    # every mapper edit used the mapper trained for its own prompt
    reports = [json.loads(p.read_text()) for p in (out / "edits" / "jobs").glob("*/report.json")]
    mapper_runs = {(r["prompt"], r["settings"]["mapper"]) for r in reports if r["method"] == "mapper"}
    assert len(mapper_runs) == 2
    assert all(Path(m).parent.name == p.replace(" ", "-") + "-2-steps" for p, m in mapper_runs)
    # the mouth prompt has masked scores (the parser), the other none (no region named, none found in its words)
    mouth = [e for e in edits if "mouth" in e["prompt"]]
    assert all(e["region"] == "mouth" and e["psnr_masked"] for e in mouth)
    # attribute dependency for every edit; the prompt's own attribute is left out of it
    assert all(e["mean_ad"] != "" and float(e["mean_ad"]) >= 0 for e in edits)
    changed = json.loads(mouth[0]["attributes_changed"])
    assert "mouth_open" not in changed and len(changed) >= 3
    methods = {m["method"]: m for m in read_csv(out / "methods.csv")}
    assert set(methods) == {"optimize", "directions", "mapper"}
    for m in methods.values():
        assert m["area"] != "" and float(m["per_edit_s"]) > 0
        assert float(m["peak_mb"]) >= float(m["import_mb"]) > 50  # a fresh process: torch, the models, one edit
        assert m["fid"] != "" and float(m["fid"]) >= 0
    assert (
        float(methods["directions"]["preprocessing_s"]) > 0
        and "computed here" in methods["directions"]["preprocessing"]
    )
    assert "2 mapper(s) trained here" in methods["mapper"]["preprocessing"]
    curves = read_csv(out / "curves.csv")
    assert len(curves) == 6 and all(c["area"] != "" for c in curves)
    assert any(k == "sources (unedited)" for k in data["realism"])
    assert "read the notes under the realism table" in " ".join(data["notes"])
    assert any("dominated by its bias" in n for n in data["realism"]["optimize"]["notes"])
    page = (out / "report.html").read_text()
    for text in ("Methods compared", "curves.png", "grid-mapper.png", "1 − RMSE", "mean-AD", "dominated by its bias"):
        assert text in page


def test_rerunning_resumes_and_other_settings_are_refused(world, tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["benchmark", *world["common"], "--judge", str(world["judge"]), *sweeps("directions"), "--no-memory",
            "--outdir", str(out)]  # fmt: skip
    assert main(argv) == 0
    stamp = {p: p.stat().st_mtime_ns for p in (out / "edits" / "jobs").glob("*/after.png")}
    assert len(stamp) == 8
    assert main(argv) == 0  # the same benchmark again: nothing redone, the report written again
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp
    capsys.readouterr()
    refused([*argv[:-2], "--beta", "0.05", "--outdir", str(out)], capsys, match="another benchmark's results")
    # --judge the guide itself is allowed, and the report says so
    same = tmp_path / "same"
    assert main([*argv[:-2], "--judge", str(world["clip"]), "--outdir", str(same)]) == 0
    data = json.loads((same / "benchmark.json").read_text())
    assert data["info"]["independent_judge"] is False
    assert any("is the CLIP model that guided" in n for n in data["notes"])


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--methods", "optimize,paint"], "--methods"),
        (["--methods", "directions", "--sweep", "optimize=0.01"], "not among --methods"),
        (["--sweep", "directions=1,x"], "must be numbers"),
        (["--real", "/nonexistent-real"], "not a folder of real pictures"),
        (["--spread-seeds", "-1"], "--spread-seeds must be at least 0"),
        (["--at", "1.5"], "--at"),
    ],
)
def test_bad_options_are_refused_in_one_line(world, tmp_path, capsys, extra, match):
    out = tmp_path / "bench"
    refused(["benchmark", *world["common"], *extra, "--outdir", str(out)], capsys, match=match, watch=[tmp_path])
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--judge", "ViT-Q-99:openai"], "not an open_clip ARCH:TAG"),
        (["--classifier", "http://127.0.0.1:9/attributes.pt"], "must be a local file"),
        (["--probes", "no-such-domain"], "no probe list"),
    ],
)
def test_what_judging_would_refuse_is_refused_before_any_edit(world, tmp_path, capsys, extra, match):
    out = tmp_path / "bench"
    refused(["benchmark", *world["common"], *sweeps("directions"), *extra, "--outdir", str(out)], capsys, match=match)
    assert not (out / "edits").exists()


def test_a_link_in_an_outputs_place_is_not_written_through(world, tmp_path, capsys):
    out, elsewhere = tmp_path / "bench", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "edits").symlink_to(elsewhere, target_is_directory=True)
    argv = ["benchmark", *world["common"], *sweeps("directions"), "--resume", "--outdir", str(out)]
    refused(argv, capsys, match="is a link", watch=[tmp_path])
    assert (out / "edits").is_symlink() and not any(elsewhere.iterdir())


def test_an_unknown_preset_names_the_shipped_ones(tmp_path, capsys):
    refused(
        ["benchmark", "--preset", "no-such-preset", "--outdir", str(tmp_path / "b")], capsys, match="styleclip-faces"
    )


def test_list_presets(capsys):
    assert main(["benchmark", "--list-presets"]) == 0
    text = capsys.readouterr().out
    for name in ("styleclip-faces", "hairclip", "deltaedit", "afhq-dog", "cars"):
        assert name in text


def test_photos_are_inverted_once_and_edited_like_seeds(world, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    G = varied_generator()
    with torch.no_grad():
        for seed in (3, 4):
            img = G(G.z_from_seed(seed), truncation_psi=0.7)[0]
            pixels = (img.permute(1, 2, 0) * 127.5 + 128).clamp(0, 255).byte().numpy()
            Image.fromarray(pixels).save(photos / f"photo{seed}.png")
    out = tmp_path / "bench"
    argv = ["benchmark", *world["common"], "--judge", str(world["judge"]), *sweeps("directions"), "--no-memory",
            "--images", str(photos), "--invert-method", "project", "--invert-steps", "2", "--outdir", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert sorted(p.name for p in (out / "edits" / "sources").iterdir()) == ["img-photo3", "img-photo4"]
    assert all((out / "edits" / "sources" / k / "latent.npy").is_file() for k in ("img-photo3", "img-photo4"))
    edits = read_csv(out / "edits.csv")
    assert len(edits) == 8 and {e["source"] for e in edits} == {"img-photo3", "img-photo4"}
    assert json.loads((out / "benchmark.json").read_text())["info"]["sources"] == 2


def test_torchrun_shares_the_edits_between_two_processes(world, tmp_path):
    out = tmp_path / "bench"
    argv = [*world["common"], "--judge", str(world["judge"]), *sweeps("optimize,directions"), "--no-memory",
            "--outdir", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "styleclip", "benchmark", *argv]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads(p.read_text()) for p in (out / "edits" / "jobs").glob("*/report.json")]
    assert len(reports) == 16 and {r["process"] for r in reports} == {0, 1}
    assert (out / "report.html").is_file() and len(read_csv(out / "edits.csv")) == 16
