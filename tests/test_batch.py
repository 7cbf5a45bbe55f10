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

from conftest import varied_generator


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
    """The same results as one process: each process takes whole forward passes, one thread each, as the reference."""
    args = ["--seeds", "0-3", "--prompt", "a red dog", "--method", "optimize", "--steps", "3", "--batch-size", "2"]
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
    assert sorted(j["process"] for j in manifest["jobs"]) == [0, 0, 1, 1]  # every job once, both processes used
    for job in done_jobs(one):
        a, b = np.load(one / "jobs" / job / "latent.npy"), np.load(two / "jobs" / job / "latent.npy")
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
