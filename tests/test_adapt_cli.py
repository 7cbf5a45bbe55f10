"""``styleclip adapt`` end to end on the tiny networks: the run folder, Ctrl-C and exact resume, --overwrite, the
adapted generator loading anywhere, and every refusal in one line before any model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import styleclip
from styleclip.cli.adapt import clip_name
from styleclip.cli.main import main
from styleclip.stylespace import generator_fingerprint
from styleclip.training.adapt import Adapter

from conftest import tiny_generator
from hostile import refused

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see conftest.one_thread


@pytest.fixture(scope="module")
def gen_file(tmp_path_factory) -> Path:
    return styleclip.save_generator(tiny_generator(), tmp_path_factory.mktemp("gen") / "tiny.safetensors")


def _argv(gen_file: Path, clip: Path, outdir: Path, *extra: str) -> list[str]:
    return ["adapt", "--generator", str(gen_file), "--source", "photo", "--target", "sketch",
            "--clip", str(clip), str(clip), "--clip-weights", "1", "1", "--device", "cpu",
            "--outdir", str(outdir), "--auto-layer-batch", "2", "--samples", "2", *extra]  # fmt: skip


def test_adapt_writes_a_loadable_generator_samples_log_and_report(tmp_path, gen_file, tiny_clip_file, capsys):
    out = tmp_path / "sketch"
    assert main(_argv(gen_file, tiny_clip_file, out, "--steps", "2", "--log-every", "1")) == 0
    printed = capsys.readouterr().out
    assert str(out / "generator.safetensors") in printed
    assert f"--adapted {out / 'generator.safetensors'}" in printed  # how to use it, in one line
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step-000001.png", "step-000002.png"]
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [1, 2]

    G = styleclip.load_generator(out / "generator.safetensors", device="cpu")
    base = styleclip.load_generator(gen_file, device="cpu")
    adapted = G.meta["adapted"]
    assert (adapted["method"], adapted["source"], adapted["target"], adapted["steps"]) == (
        "stylegan-nada", "photo", "sketch", 2,
    )  # fmt: skip
    assert adapted["base"]["fingerprint"] == generator_fingerprint(base)
    ws = base.mapping_forward(torch.randn(1, base.z_dim, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        assert not torch.equal(G.synthesize(ws, noise_mode="const"), base.synthesize(ws, noise_mode="const"))

    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "stylegan-nada" and (report["source"], report["target"]) == ("photo", "sketch")
    assert report["generator"]["name"] == str(gen_file)
    assert report["generator"]["fingerprint"] == adapted["base"]["fingerprint"]
    assert report["clip"] == [str(tiny_clip_file)] * 2 and report["clip_weights"] == [1.0, 1.0]
    assert report["settings"]["steps"] == 2 and report["settings"]["auto_layer_batch"] == 2
    assert report["result"]["stopped"] == "done" and report["result"]["steps_done"] == 2
    last = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert report["result"]["final_loss"] == pytest.approx(last["loss"]) and report["result"]["seconds"] >= 0
    assert report["outputs"]["generator"] == "generator.safetensors"
    assert report["outputs"]["samples"] == ["samples/step-000001.png", "samples/step-000002.png"]


def test_ctrl_c_saves_and_resume_reaches_the_uninterrupted_weights(
    tmp_path, gen_file, tiny_clip_file, capsys, monkeypatch
):
    whole = tmp_path / "whole"
    assert main(_argv(gen_file, tiny_clip_file, whole, "--steps", "3")) == 0

    parts = tmp_path / "parts"
    real_step, calls = Adapter.step, []

    def ctrl_c_in_second_step(self, step):
        calls.append(step)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_step(self, step)

    monkeypatch.setattr(Adapter, "step", ctrl_c_in_second_step)
    capsys.readouterr()
    assert main(_argv(gen_file, tiny_clip_file, parts, "--steps", "3")) == 130
    last_line = capsys.readouterr().err.rstrip().splitlines()[-1]
    assert "interrupted at step 1 of 3" in last_line and "--resume" in last_line
    assert (parts / "checkpoints" / "step-000001.safetensors").is_file()
    assert json.loads((parts / "report.json").read_text())["result"]["stopped"] == "interrupted"
    monkeypatch.setattr(Adapter, "step", real_step)

    assert main(_argv(gen_file, tiny_clip_file, parts, "--steps", "3", "--resume")) == 0
    a = styleclip.load_generator(whole / "generator.safetensors", device="cpu")
    b = styleclip.load_generator(parts / "generator.safetensors", device="cpu")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    report = json.loads((parts / "report.json").read_text())
    assert report["result"]["resumed"] and report["result"]["steps_done"] == 3


def test_an_earlier_run_needs_overwrite_which_starts_it_again(tmp_path, gen_file, tiny_clip_file, capsys):
    out = tmp_path / "run"
    assert main(_argv(gen_file, tiny_clip_file, out, "--steps", "3", "--checkpoint-every", "1")) == 0
    refused(_argv(gen_file, tiny_clip_file, out, "--steps", "2"), capsys, match="earlier results.*--resume.*--overwrite",
            watch=[out])  # fmt: skip
    assert main(_argv(gen_file, tiny_clip_file, out, "--steps", "2", "--overwrite")) == 0
    # the earlier run's third step is gone: a later --resume must not pick it up as this run's newest
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000002.safetensors"]
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step-000001.png", "step-000002.png"]
    assert styleclip.load_generator(out / "generator.safetensors", device="cpu").meta["adapted"]["steps"] == 2


def test_nada_spellings_of_clip_models_become_open_clip_names():
    assert clip_name("ViT-B/32") == "ViT-B-32:openai"
    assert clip_name("ViT-B/16") == "ViT-B-16:openai"
    assert clip_name("ViT-L-14:openai") == "ViT-L-14:openai"
    assert clip_name("weights/my-clip.pt") == "weights/my-clip.pt"


# -- refusals: one line, before any model loads ----------------------------------------------------------


@pytest.fixture
def no_loading(monkeypatch):
    """Each refusal below must come before the generator or CLIP is opened."""

    def forbidden(*args, **kwargs):
        raise AssertionError("a model was loaded before the refusal")

    monkeypatch.setattr("styleclip.hub.generators.load_generator", forbidden)
    monkeypatch.setattr("styleclip.guidance.clip.load_clip", forbidden)


@pytest.mark.parametrize(
    "change, match",
    [
        (["--source", "sketch"], "same text"),
        (["--clip-weights", "1"], "2 CLIP model.*1 --clip-weights.*one weight per --clip"),
        (["--clip-weights", "-1", "1"], "clip-weights must be >= 0"),
        (["--clip-weights", "0", "0"], "at least one positive"),
        (["--direction-weight", "0"], "at least one positive"),
        (["--lr", "nan"], "--lr must be a positive"),
        (["--mixing", "2"], "probability"),
        (["--steps", "0"], "at least 1"),
        (["--layers", "some"], "invalid choice"),
        (["--auto-layer-k", "0"], "auto-layer-k must be at least 1"),
    ],
)
def test_bad_settings_are_refused_in_one_line(tmp_path, gen_file, tiny_clip_file, capsys, no_loading, change, match):
    out = tmp_path / "out"
    refused([*_argv(gen_file, tiny_clip_file, out), *change], capsys, match=match, watch=[tmp_path])


def test_missing_target_and_missing_generator_are_refused(tmp_path, tiny_clip_file, capsys, no_loading):
    refused(["adapt", "--generator", "x.pt", "--outdir", str(tmp_path / "o")], capsys, match="--target")
    refused(["adapt", "--target", "sketch", "--outdir", str(tmp_path / "o")], capsys, match="--generator")


def test_folder_refusals(tmp_path, gen_file, tiny_clip_file, capsys, no_loading):
    out = tmp_path / "run"
    refused(_argv(gen_file, tiny_clip_file, out, "--resume"), capsys, match="nothing to resume", watch=[tmp_path])
    out.mkdir()
    refused(_argv(gen_file, tiny_clip_file, out, "--resume"), capsys, match="nothing to resume", watch=[tmp_path])
    refused(_argv(gen_file, tiny_clip_file, out, "--resume", "--overwrite"), capsys, match="give one")
    (tmp_path / "file").write_text("x")
    refused(_argv(gen_file, tiny_clip_file, tmp_path / "file"), capsys, match="is a file")


@pytest.mark.parametrize("folder", ["checkpoints", "samples", "tensorboard"])
def test_linked_subfolders_are_refused_and_left_alone(tmp_path, gen_file, tiny_clip_file, capsys, no_loading, folder):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "step-000001.safetensors").write_text("not ours")
    out = tmp_path / "run"
    out.mkdir()
    (out / folder).symlink_to(elsewhere, target_is_directory=True)
    if folder != "checkpoints":
        (out / "checkpoints").mkdir()
        (out / "checkpoints" / "step-000001.safetensors").write_text("x")
    refused(_argv(gen_file, tiny_clip_file, out, "--resume"), capsys, match="is a link", watch=[tmp_path])
    refused(_argv(gen_file, tiny_clip_file, out), capsys, match="earlier results", watch=[tmp_path])


def test_resume_with_other_settings_and_small_pictures_with_the_patch_loss(tmp_path, gen_file, tiny_clip_file, capsys):
    out = tmp_path / "run"
    assert main(_argv(gen_file, tiny_clip_file, out, "--steps", "1")) == 0
    refused(_argv(gen_file, tiny_clip_file, out, "--steps", "2", "--resume", "--lr", "0.01"), capsys,
            match=r"other settings \(--lr 0.002 -> 0.01\)", watch=[tmp_path])  # fmt: skip
    refused(_argv(gen_file, tiny_clip_file, tmp_path / "p", "--patch-weight", "1"), capsys,
            match="510-px patches.*32-px pictures", watch=[tmp_path], may_write=[tmp_path / "p"])  # fmt: skip
    assert not (tmp_path / "p" / "generator.safetensors").exists()
