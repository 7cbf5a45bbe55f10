"""``styleclip batch`` and ``styleclip eval`` on tiny assets: jobs, resume, failures, torchrun sharding, evaluation."""

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
from styleclip.errors import UsageError
from styleclip.hub.generators import save_generator
from test_adapt_eval import make_adapted

from conftest import tiny_generator, varied_generator
from hostile import refused


@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny_clip_file):
    from styleclip.hub.mappers import save_mapper
    from styleclip.nets.mapper import LatentMapper, MapperConfig
    from styleclip.stylespace import generator_fingerprint

    folder = tmp_path_factory.mktemp("batch-assets")
    G = varied_generator()
    gen = save_generator(G, folder / "tiny.safetensors")
    cache = folder / "cache"
    common = ["--generator", str(gen), "--clip", str(tiny_clip_file), "--device", "cpu", "--cache", str(cache)]
    assert main(["directions", "precompute", *common, "--samples", "300", "--method", "gradient", "--images", "2"]) == 0
    torch.manual_seed(0)
    mapper = LatentMapper(MapperConfig(w_dim=G.w_dim, num_ws=G.num_ws, groups=("coarse", "medium")))
    meta = {"prompt": "a red dog", "generator": {"fingerprint": generator_fingerprint(G)}}
    mapper_path = save_mapper(mapper, folder / "mapper.safetensors", meta=meta)
    return {"common": common, "folder": folder, "mapper": mapper_path, "G": G}


def batch(assets, outdir, *extra):
    argv = ["batch", *assets["common"], "--outdir", str(outdir), "--samples", "300", "--lpips", "off", *extra]
    return main(argv)


def done_jobs(outdir: Path) -> list[str]:
    return sorted(p.parent.name for p in (outdir / "jobs").glob("*/report.json"))


def test_optimize_batch_writes_every_job_resumes_and_summarises(assets, tmp_path):
    out = tmp_path / "b"
    args = ["--seeds", "0-2", "--prompt", "a red dog", "--prompt", "a blue dog", "--method", "optimize",
            "--steps", "2", "--batch-size", "2"]  # fmt: skip
    assert batch(assets, out, *args) == 0
    jobs = done_jobs(out)
    assert len(jobs) == 6 and all(j.endswith(jobs[0].rsplit("--", 1)[1]) for j in jobs)
    one = out / "jobs" / jobs[0]
    assert {p.name for p in one.iterdir()} >= {"before.png", "after.png", "latent.npy", "report.json"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"done": 6, "failed": 0, "pending": 0}
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and all(r["clip_after"] and r["psnr"] for r in rows) and "lpips" in rows[0]
    assert (out / "summary.html").read_text().count("<div class=card>") == 6
    assert (out / "tradeoff.png").is_file() and (out / "histograms.png").is_file()

    # a crash half-way: one job lost its report (the last thing written), another was never started
    stamp = (out / "jobs" / jobs[1] / "after.png").stat().st_mtime_ns
    (out / "jobs" / jobs[0] / "report.json").unlink()
    assert batch(assets, out, *args) == 0
    assert done_jobs(out) == jobs
    assert (out / "jobs" / jobs[1] / "after.png").stat().st_mtime_ns == stamp  # finished jobs are not redone


def test_directions_and_mapper_methods_and_a_job_file(assets, tmp_path):
    job = {
        "seeds": "3-4",
        "prompts": ["a happy dog"],
        "runs": [
            {"method": "directions", "neutral": "a dog", "alpha": 4, "beta": 0.1},
            {"method": "mapper", "mapper": str(assets["mapper"]), "strength": 2.0},
            {"method": "optimize", "steps": 2, "neutral": "a dog", "loss": "directional"},
        ],
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    out = tmp_path / "b"
    assert batch(assets, out, "--job", str(path), "--trust-paths") == 0  # the mapper lies outside the job's folder
    jobs = done_jobs(out)
    assert len(jobs) == 6
    direction_job = next(out / "jobs" / j for j in jobs if "--directions-" in j)
    assert (direction_job / "codes.npz").is_file()  # a StyleSpace edit keeps its styles
    report = json.loads((direction_job / "report.json").read_text())
    assert report["beta"] == 0.1 and report["channels_changed"] > 0
    mapper_job = next(out / "jobs" / j for j in jobs if "--mapper-" in j)
    ws = np.load(mapper_job / "latent.npy")
    G = assets["G"]
    source = G.mapping_forward(G.z_from_seed(3 if "seed0003" in mapper_job.name else 4), truncation_psi=0.7)
    from styleclip.hub.mappers import load_mapper

    expected = load_mapper(assets["mapper"], generator=G, device="cpu").edit(source, 2.0)
    assert np.allclose(ws, expected.numpy(), atol=1e-6)
    with open(out / "comparison.csv") as f:
        comparison = list(csv.DictReader(f))
    assert sorted(r["method"] for r in comparison) == ["directions", "mapper", "optimize"]
    assert all(int(r["pairs"]) == 2 for r in comparison)
    if os.environ.get("STYLECLIP_EVAL_PLOT"):  # e.g. docs/eval-tradeoff.png for the README
        import shutil

        shutil.copy(out / "tradeoff.png", os.environ["STYLECLIP_EVAL_PLOT"])
    assert all(bool(r["directional"]) == (r["method"] != "mapper") for r in comparison)  # a mapper names no neutral


def test_a_failing_job_is_recorded_and_the_others_go_on(assets, tmp_path, tiny_lpips):
    photos = tmp_path / "photos"
    photos.mkdir()
    G = assets["G"]
    with torch.no_grad():
        img = G(G.z_from_seed(1), truncation_psi=0.7)
    Image.fromarray(((img[0].permute(1, 2, 0) * 127.5 + 128).clamp(0, 255)).byte().numpy()).save(photos / "a.png")
    (photos / "b.jpg").write_text("not a photo")
    out = tmp_path / "b"
    code = batch(assets, out, "--images", str(photos), "--prompt", "a red dog", "--method", "optimize", "--steps", "2",
                 "--invert-method", "project")  # fmt: skip
    assert code == 1
    manifest = json.loads((out / "manifest.json").read_text())
    states = {j["source"]["key"]: j for j in manifest["jobs"]}
    assert states["img-a"]["state"] == "done" and (out / "sources" / "img-a" / "latent.npy").is_file()
    assert states["img-b"]["state"] == "failed" and "not an image" in states["img-b"]["reason"]
    with open(out / "summary.csv") as f:
        rows = {r["source"]: r for r in csv.DictReader(f)}
    assert rows["img-b"]["state"] == "failed" and not rows["img-b"]["clip_after"]


def test_bad_batches_are_one_line_errors(assets, tmp_path):
    with pytest.raises(UsageError, match="give one kind of source"):
        from styleclip.jobs import BatchSpec, make_run

        BatchSpec("g", ["x"], [make_run("optimize", {})], seeds=[1], latents="x.npy").jobs()
    with pytest.raises(UsageError, match="optimize takes no alpha"):
        make_run("optimize", {"alpha": 3})
    assert batch(assets, tmp_path / "b", "--seeds", "0", "--prompt", "x", "--method", "directions") == 2


def test_torchrun_two_processes_match_one_process(assets, tmp_path):
    """The same results as one process: each process takes whole forward passes, one thread each, as the reference;
    the drawings of an edit by an adapted generator go with the edit."""
    sketch = save_generator(make_adapted(assets["G"]), tmp_path / "sketch.safetensors")
    args = ["--seeds", "0-3", "--prompt", "a red dog", "--method", "optimize", "--steps", "3", "--batch-size", "2",
            "--adapted", str(sketch)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = ["-m", "styleclip", "batch", *assets["common"], "--lpips", "off", *args]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    for cmd, out in (([sys.executable, *command], "one"), ([*launch, *command], "two")):
        proc = subprocess.run([*cmd, "--outdir", str(tmp_path / out)], env=env, capture_output=True, text=True,
                              timeout=300, start_new_session=True)  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    one, two = tmp_path / "one", tmp_path / "two"
    assert done_jobs(two) == done_jobs(one) and len(done_jobs(one)) == 4
    manifest = json.loads((two / "manifest.json").read_text())
    processes = {(j["source"]["key"], j["style"]): j["process"] for j in manifest["jobs"]}
    assert sorted(processes.values()) == [0, 0, 0, 0, 1, 1, 1, 1]  # every job once, both processes used
    assert all(processes[(key, "sketch")] == processes[(key, None)] for key, _ in processes)
    for job in done_jobs(one):
        for where in ("jobs", "styles/sketch/jobs"):
            a, b = np.load(one / where / job / "latent.npy"), np.load(two / where / job / "latent.npy")
            assert np.allclose(a, b, atol=1e-6), (job, np.abs(a - b).max())


def test_eval_scores_any_styleclip_outputs(assets, tmp_path):
    out = tmp_path / "e"
    argv = ["edit", *assets["common"], "--prompt", "a red dog", "--seed", "1-2", "--steps", "2", "--no-video",
            "--outdir", str(out / "edit")]  # fmt: skip
    assert main(argv) == 0
    argv = ["directions", "apply", *assets["common"], "--samples", "300", "--neutral", "a dog", "--target",
            "a red dog", "--beta", "0.1", "--seeds", "1-2", "--no-video", "--outdir", str(out / "dir")]  # fmt: skip
    assert main(argv) == 0
    clip = assets["common"][assets["common"].index("--clip") + 1]
    assert main(["eval", str(out), "--clip", clip, "--lpips", "off", "--device", "cpu", "--neutral", "a dog"]) == 0
    with open(out / "eval" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["method"] for r in rows) == ["directions", "directions", "optimize", "optimize"]
    assert all(r["directional"] and r["psnr"] for r in rows)
    assert (out / "eval" / "comparison.csv").is_file() and (out / "eval" / "tradeoff.png").is_file()
    assert "LPIPS left out" in (out / "eval" / "metrics.html").read_text()
    assert main(["eval", str(tmp_path / "nothing-here"), "--clip", clip]) == 2


def test_torchrun_precompute_shards_the_channels_and_merges_the_same_matrix(assets, tmp_path):
    common = [*assets["common"], "--samples", "300", "--images", "2", "--batch-size", "8", "--max-resolution", "16"]
    one = tmp_path / "one.npz"
    assert main(["directions", "precompute", *common, "--out", str(one)]) == 0
    two = tmp_path / "two.npz"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "styleclip",
           "directions", "precompute", *common, "--out", str(two)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, start_new_session=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    with np.load(one) as a, np.load(two) as b:
        assert a["matrix"].shape == b["matrix"].shape and np.array_equal(a["matrix"], b["matrix"])
    assert not list(tmp_path.glob("*.partial*"))  # the shards are merged and gone


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def png_of(img: torch.Tensor) -> np.ndarray:
    from styleclip.io.images import to_pil

    return np.asarray(to_pil(img)[0].convert("RGB"), dtype=np.int16)


def test_edits_are_drawn_by_each_adapted_generator_into_its_own_folder(assets, tmp_path, tiny_clip_file):
    import shutil

    from styleclip.guidance.clip import load_clip
    from styleclip.guidance.templates import templates

    G = assets["G"]
    job = tmp_path / "job"
    (job / "sketch").mkdir(parents=True)
    sketch, joker = make_adapted(G, seed=5), make_adapted(G, seed=6, target="the joker")
    save_generator(sketch, job / "sketch" / "generator.safetensors")
    save_generator(joker, job / "joker.safetensors")
    shutil.copy(assets["mapper"], job / "mapper.safetensors")
    text = """seeds: 3-4
prompts: [a happy dog]
adapted: [sketch/generator.safetensors]
runs:
  - {method: directions, neutral: a dog, alpha: 4, beta: 0.1}
  - {method: mapper, mapper: mapper.safetensors, strength: 2.0,
     adapted: [sketch/generator.safetensors, joker.safetensors]}
"""
    (job / "job.yaml").write_text(text)
    out = tmp_path / "b"
    assert batch(assets, out, "--job", str(job / "job.yaml")) == 0  # files inside the job's folder: no trust needed
    base_jobs = done_jobs(out)
    assert len(base_jobs) == 4
    assert sorted(p.parent.name for p in (out / "styles" / "sketch" / "jobs").glob("*/report.json")) == base_jobs
    mapper_jobs = [j for j in base_jobs if "--mapper-" in j]
    assert sorted(p.parent.name for p in (out / "styles" / "joker" / "jobs").glob("*/report.json")) == mapper_jobs

    for name in base_jobs:
        seed = 3 if name.startswith("seed0003") else 4
        with torch.no_grad():
            ws = G.mapping_forward(G.z_from_seed(seed), truncation_psi=0.7)
        mine, base = out / "styles" / "sketch" / "jobs" / name, out / "jobs" / name
        report = json.loads((mine / "report.json").read_text())
        assert report["style"] == "sketch" and report["adapted"]["style"] == "sketch"
        assert (report["adapted"]["source"], report["adapted"]["target"]) == ("photo", "sketch")
        assert report["adapted"]["name"] == str(job / "sketch" / "generator.safetensors")
        with torch.no_grad():
            assert np.abs(pixels(mine / "before.png") - png_of(sketch.synthesize(ws))).max() <= 1  # the source, styled
            if "--mapper-" in name:  # a W+ edit: the same codes, drawn by the adapted generator
                codes = np.load(mine / "latent.npy")
                assert np.array_equal(codes, np.load(base / "latent.npy"))
                drawn = sketch.synthesize(torch.from_numpy(codes))
            else:  # a StyleSpace edit: the base's change carried over to the adapted generator's own styles
                with np.load(mine / "codes.npz") as c, np.load(base / "codes.npz") as b:
                    assert np.array_equal(c["ws"], b["ws"])
                    own, theirs = sketch.styles(ws), G.styles(ws)
                    styles = {}
                    for layer in own:
                        expected = own[layer] + (torch.from_numpy(b[f"styles/{layer}"]) - theirs[layer])
                        assert torch.allclose(torch.from_numpy(c[f"styles/{layer}"]), expected, atol=1e-5)
                        styles[layer] = expected
                drawn = sketch.synthesis_from_styles(styles)
            assert np.abs(pixels(mine / "after.png") - png_of(drawn)).max() <= 1
        assert not np.array_equal(pixels(mine / "after.png"), pixels(base / "after.png"))

    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["style"] for r in rows) == ["", "", "", "", "joker", "joker", *["sketch"] * 4]
    with open(out / "adaptation.csv") as f:
        styles = {r["style"]: r for r in csv.DictReader(f)}
    assert (styles["joker"]["pairs"], styles["sketch"]["pairs"]) == ("2", "4")
    assert styles["joker"]["target"] == "the joker"
    # NADA's directional score from the PNGs, by hand: each job's base and styled after.png of the same codes
    guide = load_clip(str(tiny_clip_file), device="cpu")
    with torch.no_grad():
        t_source = guide.encode_text([t("photo") for t in templates("styleclip")])
        t_target = guide.encode_text([t("sketch") for t in templates("styleclip")])
        direction = (t_target - t_source).mean(0)
        direction = direction / direction.norm()
        scores = []
        for name in base_jobs:
            pair = [torch.from_numpy(pixels(f / name / "after.png")).float().permute(2, 0, 1)[None] / 127.5 - 1
                    for f in (out / "jobs", out / "styles" / "sketch" / "jobs")]  # fmt: skip
            e = guide.encode_image(torch.cat(pair), preprocess="clip")
            change = e[1] - e[0]
            scores.append(float(change @ direction / change.norm()))
    assert float(styles["sketch"]["directional_mean"]) == pytest.approx(np.mean(scores), abs=1e-5)
    assert "Adapted generators" in (out / "summary.html").read_text()

    # a style added to the finished batch: only its drawings are made, from the saved edits
    stamps = {j: (out / "jobs" / j / "after.png").stat().st_mtime_ns for j in base_jobs}
    (job / "job.yaml").write_text(text.replace("adapted: [sketch/generator.safetensors]\n",
                                               "adapted: [sketch/generator.safetensors, joker.safetensors]\n"))  # fmt: skip
    assert batch(assets, out, "--job", str(job / "job.yaml"), "--resume") == 0
    assert sorted(p.parent.name for p in (out / "styles" / "joker" / "jobs").glob("*/report.json")) == base_jobs
    assert {j: (out / "jobs" / j / "after.png").stat().st_mtime_ns for j in base_jobs} == stamps
    name = next(j for j in base_jobs if "--directions-" in j)
    with np.load(out / "jobs" / name / "codes.npz") as b, torch.no_grad():
        ws = torch.from_numpy(b["ws"])
        own, theirs = joker.styles(ws), G.styles(ws)
        drawn = joker.synthesis_from_styles({k: own[k] + torch.from_numpy(b[f"styles/{k}"]) - theirs[k] for k in own})
    assert np.abs(pixels(out / "styles" / "joker" / "jobs" / name / "after.png") - png_of(drawn)).max() <= 1
    report = json.loads((out / "styles" / "joker" / "jobs" / name / "report.json").read_text())
    assert report["channels_changed"] > 0 and report["beta"] == 0.1  # the saved edit's record carried over
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"done": 12, "failed": 0, "pending": 0}


def test_adapted_generators_are_refused_in_one_line_before_any_job(assets, tmp_path, capsys):
    outside = save_generator(make_adapted(assets["G"]), tmp_path / "outside.safetensors")
    job = tmp_path / "job"
    job.mkdir()
    common = ["batch", *assets["common"], "--samples", "300", "--lpips", "off"]
    for entry, field in ((f"adapted: [{outside}]", "adapted\\[0\\]"),
                         ("adapted: ../outside.safetensors", "adapted\\[0\\]"),
                         ("runs: [{method: optimize, steps: 1, adapted: [../outside.safetensors]}]",
                          "runs\\[0\\].adapted\\[0\\]")):  # fmt: skip
        runs = "" if entry.startswith("runs") else "runs: [{method: optimize, steps: 1}]\n"
        (job / "job.yaml").write_text(f"seeds: 0\nprompts: [a dog]\n{runs}{entry}\n")
        line = refused([*common, "--job", str(job / "job.yaml"), "--outdir", str(tmp_path / "o")], capsys,
                       match=f"names {field} .*outside the job file's folder.*--trust-paths", watch=[tmp_path])  # fmt: skip
        assert "--adapted on the command line" in line or "runs[0]" in line

    small = save_generator(tiny_generator(resolution=16), tmp_path / "small.safetensors")
    out = tmp_path / "o"
    refused([*common, "--seeds", "0-1", "--prompt", "a dog", "--method", "optimize", "--steps", "1", "--adapted",
             str(small), "--outdir", str(out)], capsys, match="adapted from a 16-px generator",
            may_write=[out], watch=[tmp_path])  # fmt: skip
    assert not (out / "jobs").exists() and not (out / "batch.json").exists()
