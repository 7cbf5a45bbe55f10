"""Training mappers (learning, exact resume, latent files, 2-process DDP) and ``styleclip mapper`` end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import styleclip
from styleclip.cli.main import main
from styleclip.errors import UsageError
from styleclip.guidance.clip import load_clip
from styleclip.guidance.losses import ClipLoss
from styleclip.io.video import read_video
from styleclip.nets.mapper import LatentMapper, MapperConfig
from styleclip.reports import REPORT_KEY
from styleclip.training.data import TEST_STREAM, sample_latents
from styleclip.training.mapper import train_mapper

from conftest import tiny_generator
from mapper_writers import random_mapper_weights, write_official_mapper

SMALL = dict(train_size=40, test_size=8, val_count=8, log_every=1, val_every=1000, checkpoint_every=1000)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see conftest.one_thread


@pytest.fixture(scope="module")
def guide(tiny_clip_file):
    return load_clip(tiny_clip_file, device="cpu")


@pytest.fixture(scope="module")
def gen_file(tmp_path_factory):
    return styleclip.save_generator(tiny_generator(), tmp_path_factory.mktemp("gen") / "tiny.safetensors")


def _train_lines(outdir: Path) -> list[dict]:
    return [e for e in map(json.loads, (outdir / "log.jsonl").read_text().splitlines()) if e["split"] == "train"]


def test_training_lowers_the_held_out_clip_loss(guide):
    G = tiny_generator()
    result = train_mapper(G, clip=guide, prompt="a red square", steps=200, train_size=200, test_size=20,
                          val_every=200, checkpoint_every=1000, log_every=100, device="cpu", progress=False)  # fmt: skip
    assert result.stopped == "done" and result.steps_done == 200
    held_out = sample_latents(G, 20, 0.7, 0 + TEST_STREAM)
    torch.manual_seed(0)  # the untrained mapper: the same initial weights
    untrained = LatentMapper(MapperConfig(w_dim=16, num_ws=8))
    text, loss = guide.encode_text("a red square"), ClipLoss(guide.logit_scale)

    def clip_loss(mapper):
        with torch.no_grad():
            return loss(guide.encode_image(G.synthesize(mapper.edit(held_out))), text).mean().item()

    before, after = clip_loss(untrained), clip_loss(result.mapper)
    assert after < before - 3e-4, (before, after)
    assert result.mapper.meta["prompt"] == "a red square" and result.mapper.generator is G
    val = [h for h in result.history if h["split"] == "val"][-1]
    assert val["clip"] == pytest.approx(after, abs=1e-5)  # the logged validation is this same quantity


def test_resume_continues_the_same_trajectory(tmp_path, guide):
    G = tiny_generator()
    kw = dict(clip=guide, prompt="a red square", steps=9, device="cpu", progress=False, **SMALL)
    whole = train_mapper(G, outdir=tmp_path / "whole", **kw)

    def stop_at_5(step, info):
        if step == 5:
            raise KeyboardInterrupt

    cut = train_mapper(G, outdir=tmp_path / "cut", callback=stop_at_5, **kw)
    assert cut.stopped == "interrupted" and cut.steps_done == 5
    assert (tmp_path / "cut" / "checkpoints" / "step-000005.safetensors").is_file()
    resumed = train_mapper(G, outdir=tmp_path / "cut", resume=True, **kw)
    assert resumed.steps_done == 9

    # Steps 6-9 cross Ranger's Lookahead synchronisation at step 6: optimiser state must have been restored.
    def losses(outdir):
        return [{k: v for k, v in e.items() if k != "seconds"} for e in _train_lines(outdir)]

    assert [e["step"] for e in losses(tmp_path / "cut")] == list(range(1, 10))
    assert losses(tmp_path / "cut") == losses(tmp_path / "whole")  # bit-equal losses at every step
    for a, b in zip(whole.mapper.parameters(), resumed.mapper.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(UsageError, match=r"other settings.*prompt"):
        train_mapper(G, outdir=tmp_path / "cut", resume=True, **{**kw, "prompt": "a blue square"})
    with pytest.raises(UsageError, match="nothing to resume"):
        train_mapper(G, outdir=tmp_path / "empty", resume=True, **kw)


def test_latent_files_and_fresh_samples(tmp_path, guide):
    G = tiny_generator()
    ws = G.mapping_forward(torch.randn(30, G.z_dim), truncation_psi=0.7)
    torch.save(ws.clone(), tmp_path / "train_faces.pt")  # StyleCLIP's layout: one [N, num_ws, w_dim] tensor
    np.save(tmp_path / "test.npy", ws[:4].numpy())  # styleclip invert's latent.npy
    kw = dict(clip=guide, prompt="a red square", steps=3, device="cpu", progress=False)
    r = train_mapper(G, latents=str(tmp_path / "train_faces.pt"), test_latents=str(tmp_path / "test.npy"), **kw)
    assert r.steps_done == 3
    r = train_mapper(G, train_size=0, **kw)  # fresh latents every step
    assert r.steps_done == 3
    with pytest.raises(styleclip.StyleclipError, match="loss became nan at step 2"):
        train_mapper(G, lr=float("inf"), steps=2, log_every=1, **{k: v for k, v in kw.items() if k != "steps"})
    with pytest.raises(UsageError, match="multiple of"):
        from styleclip.training import mapper as training

        training._Trainer(G, training.MapperTrainConfig("x", batch_size=3), _FakeContext(2), guide, None, None)


def test_face_generators_get_the_identity_term(guide):
    from styleclip.guidance.identity import IdentityLoss
    from styleclip.nets.arcface import IRSE

    G = tiny_generator()
    G.meta["domain"] = "face"
    torch.manual_seed(0)
    r = train_mapper(G, clip=guide, identity=IdentityLoss(IRSE(50)), prompt="a smiling face", steps=1, batch_size=1,
                     train_size=4, test_size=1, val_count=1, device="cpu", progress=False)  # fmt: skip
    line = [h for h in r.history if h["split"] == "train"][-1]
    assert line["id"] > 0  # StyleCLIP's weight 0.1 by default for faces, in the total
    assert line["loss"] == pytest.approx(line["clip"] + 0.8 * line["l2"] + 0.1 * line["id"], rel=1e-5)


class _FakeContext:
    def __init__(self, world: int) -> None:
        self.world, self.rank, self.device = world, 0, torch.device("cpu")


def _run_module(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` in its own session, so that a hang kills torchrun's workers too, not just torchrun."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(styleclip.__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_two_process_gloo_ddp_run_and_resume_with_one(tmp_path, gen_file, tiny_clip_file):
    common = ["--generator", str(gen_file), "--clip", str(tiny_clip_file), "--device", "cpu", "--prompt", "a red square",
              "--train-size", "40", "--test-size", "8", "--val-every", "6", "--checkpoint-every", "3", "--log-every", "1"]  # fmt: skip
    ddp = tmp_path / "ddp"
    run = _run_module(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "styleclip",
                       "mapper", "train", *common, "--steps", "6", "--outdir", str(ddp)])  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    entries = [json.loads(line) for line in (ddp / "log.jsonl").read_text().splitlines()]
    ranks = [e for e in entries if e["split"] == "ranks"]
    assert ranks == [{"step": 6, "split": "ranks", "world": 2, "max_difference": 0.0}]  # identical weights
    assert len([e for e in entries if e["split"] == "train"]) == 6  # rank 0 alone writes the log
    single = tmp_path / "single"
    assert main(["mapper", "train", *common, "--steps", "6", "--outdir", str(single)]) == 0
    a = styleclip.load_mapper(ddp / "mapper.safetensors", generator=str(gen_file), device="cpu")
    b = styleclip.load_mapper(single / "mapper.safetensors", generator=str(gen_file), device="cpu")
    for p, q in zip(a.parameters(), b.parameters(), strict=True):  # 2 x 1 image per step == 1 x 2 images
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-4)
    # A checkpoint written by two processes resumes in one.
    assert main(["mapper", "train", *common, "--steps", "9", "--outdir", str(ddp), "--resume"]) == 0
    assert [e["step"] for e in _train_lines(ddp)] == list(range(1, 10))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, gen_file, tiny_clip_file):
    out = tmp_path_factory.mktemp("trained")
    argv = ["mapper", "train", "--generator", str(gen_file), "--clip", str(tiny_clip_file), "--device", "cpu",
            "--prompt", "a red square", "--steps", "4", "--train-size", "20", "--test-size", "4", "--outdir", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert {p.name for p in out.iterdir()} >= {"mapper.safetensors", "checkpoints", "log.jsonl", "val"}
    return out / "mapper.safetensors"


def test_cli_apply_writes_images_latents_report_and_sweep(tmp_path, trained, tiny_clip_file):
    out = tmp_path / "apply"
    argv = ["mapper", "apply", "--mapper", str(trained), "--clip", str(tiny_clip_file), "--device", "cpu",
            "--seeds", "3-4", "--strength", "0.5", "--sweep-count", "3", "--outdir", str(out)]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert (
        report["prompt"] == "a red square"
        and report["strength"] == 0.5
        and report["sources"] == ["seed0003", "seed0004"]
    )
    assert set(report["results"][0]) == {"clip_similarity_before", "clip_similarity_after", "identity_similarity"}
    for name in ("seed0003", "seed0004"):
        assert {p.name for p in (out / name).iterdir()} == {"before.png", "after.png", "compare.png", "latent.npy"}
        meta = json.loads(Image.open(out / name / "after.png").text[REPORT_KEY])
        assert meta["strength"] == 0.5 and meta["name"] == name
    G = styleclip.load_generator(styleclip.load_mapper(trained, device="cpu").meta["generator"]["source"])
    mapper = styleclip.load_mapper(trained, generator=G, device="cpu")
    ws = G.mapping_forward(G.z_from_seed(3), truncation_psi=0.7)
    assert np.array_equal(np.load(out / "seed0003" / "latent.npy"), mapper.edit(ws, 0.5).numpy())
    assert len(read_video(out / "sweep.mp4")) == 4  # 3 strengths there and back


def test_cli_apply_official_file_and_errors(tmp_path, tiny_clip_file, capsys):
    G64 = tiny_generator(resolution=64)
    official = write_official_mapper(G64, random_mapper_weights(16, ("coarse", "medium")), tmp_path / "m.pt")
    base = ["mapper", "apply", "--clip", str(tiny_clip_file), "--device", "cpu", "--no-video"]
    assert main([*base, "--mapper", str(official), "--outdir", str(tmp_path / "o")]) == 0
    assert json.loads((tmp_path / "o" / "report.json").read_text())["prompt"] == "mohawk hairstyle"
    other = styleclip.save_generator(tiny_generator(resolution=64, seed=2), tmp_path / "other.safetensors")
    capsys.readouterr()
    argv = [*base, "--mapper", str(official), "--generator", str(other), "--outdir", str(tmp_path / "x")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("styleclip mapper: error:") and "another generator" in err and "\n" not in err
    assert main([*argv, "--allow-other-generator", "--strength", "1.5"]) == 0
    assert main([*base, "--mapper", str(official), "--seeds", "1", "--latent", "x.npy", "--outdir", "y"]) == 2


def test_cli_apply_to_a_photo(tmp_path, trained, tiny_clip_file, tiny_lpips):
    photo = tmp_path / "p.png"
    Image.fromarray((np.random.RandomState(1).rand(60, 45, 3) * 255).astype(np.uint8)).save(photo)
    out = tmp_path / "out"
    argv = ["mapper", "apply", "--mapper", str(trained), "--clip", str(tiny_clip_file), "--device", "cpu",
            "--image", str(photo), "--method", "project", "--invert-steps", "2", "--align", "center", "--no-video",
            "--outdir", str(out)]  # fmt: skip
    assert main(argv) == 0
    inverted = np.load(out / "inversion" / "latent.npy")
    assert json.loads((out / "report.json").read_text())["sources"] == ["photo"]
    edited = np.load(out / "latent.npy")
    assert edited.shape == inverted.shape and not np.array_equal(edited, inverted)
    assert main([*argv, "--pti"]) == 2
