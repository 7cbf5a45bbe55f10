"""``styleclip edit`` end to end on tiny assets: files, video, metadata, reproduction, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from styleclip.cli.main import main
from styleclip.hub.generators import save_generator
from styleclip.io.video import read_video

from conftest import tiny_generator


@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny_clip_file):
    folder = tmp_path_factory.mktemp("edit-assets")
    gen = save_generator(tiny_generator(), folder / "tiny.safetensors")
    return ["--generator", str(gen), "--clip", str(tiny_clip_file), "--device", "cpu"]


@pytest.fixture(scope="module")
def edited(assets, tmp_path_factory):
    out = tmp_path_factory.mktemp("edit") / "out"
    argv = ["edit", *assets, "--prompt", "a really happy dog face with mouth open", "--seed", "9"]
    assert main([*argv, "--steps", "6", "--fps", "5", "--hold", "1", "--outdir", str(out)]) == 0
    return out


def test_writes_every_output(edited):
    names = {p.name for p in edited.iterdir()}
    assert {"before.png", "after.png", "compare.png", "latent.npy", "report.json", "trajectory.mp4"} <= names
    assert not [n for n in names if n.startswith(".") or n.endswith((".tmp", ".part"))]
    assert Image.open(edited / "after.png").size == (32, 32)
    compare = Image.open(edited / "compare.png")
    assert compare.width > 64 and compare.height > 32  # two images and a label strip
    assert np.load(edited / "latent.npy").shape == (1, 8, 16)


def test_mp4_decodes_to_the_requested_frames(edited):
    frames = read_video(edited / "trajectory.mp4")
    assert len(frames) == 6 + 5  # one per step, then the final image held 1 s at 5 fps
    assert frames[0].shape == (32, 32, 3)
    after = np.asarray(Image.open(edited / "after.png")).astype(float)
    before = np.asarray(Image.open(edited / "before.png")).astype(float)
    # yuv420p halves the colour resolution, so compare brightness: the last frame is the edited image
    luma = [np.abs(frames[-1].astype(float).mean(-1) - x.mean(-1)).mean() for x in (after, before)]
    assert luma[0] < 12 and luma[0] < luma[1], luma


def test_report_holds_everything_and_reproduces_the_latent(edited, tmp_path):
    report = json.loads((edited / "report.json").read_text())
    assert report["config"]["prompts"] == ["a really happy dog face with mouth open"]
    assert report["config"]["seeds"] == [9] and report["config"]["steps"] == 6
    assert report["config"]["l2_weight"] == 0.008 and report["config"]["lr"] == 0.1
    assert len(report["history"]) == 6 and {"clip", "l2", "id", "total", "lr"} <= set(report["history"][0])
    result = report["result"]
    assert result["stopped"] == "completed" and result["wall_time_s"] > 0
    assert -1 <= result["clip_similarity_before"] <= 1 and -1 <= result["clip_similarity_after"] <= 1
    assert report["styleclip"]["torch"] and report["generator"]["resolution"] == 32
    for source in ("report.json", "after.png"):  # the PNG alone is enough to repeat the edit
        again = tmp_path / source
        argv = ["edit", "--from-report", str(edited / source), "--trust-report", "--no-video", "--outdir", str(again)]
        assert main(argv) == 0
        assert np.array_equal(np.load(again / "latent.npy"), np.load(edited / "latent.npy"))


def test_png_metadata_names_the_prompt(edited):
    text = Image.open(edited / "after.png").text
    assert text["styleclip:prompt"] == "a really happy dog face with mouth open"
    assert json.loads(text["styleclip:report"])["config"]["seeds"] == [9]


def test_gif_and_frame_interval(assets, tmp_path):
    argv = ["edit", *assets, "--prompt", "a tiger", "--steps", "7", "--frame-every", "3", "--gif"]
    assert main([*argv, "--fps", "4", "--hold", "0.5", "--outdir", str(tmp_path)]) == 0
    # GIF merges the repeated final frames into one longer frame: count distinct frames and total time
    assert len(read_video(tmp_path / "trajectory.gif")) == len(range(0, 7, 3)) + 1
    with Image.open(tmp_path / "trajectory.gif") as im:
        durations = []
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info["duration"])
    assert sum(durations) == (len(range(0, 7, 3)) + 2) * 250


def test_batch_writes_one_folder_per_prompt_and_seed(assets, tmp_path):
    argv = ["edit", *assets, "--prompt", "a tiger", "--prompt", "a cat", "--seed", "1-2", "--steps", "2"]
    assert main([*argv, "--no-video", "--outdir", str(tmp_path)]) == 0
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert folders == ["00-a-tiger-seed1", "01-a-tiger-seed2", "02-a-cat-seed1", "03-a-cat-seed2"]
    assert json.loads((tmp_path / "03-a-cat-seed2" / "report.json").read_text())["result"]["seed"] == 2


def test_edit_a_saved_latent(assets, tmp_path):
    assert main(["generate", *assets[:2], "--seeds", "4", "--outdir", str(tmp_path / "gen"), "--device", "cpu"]) == 0
    latent = tmp_path / "gen" / "seed0004.npy"
    argv = ["edit", *assets, "--prompt", "a tiger", "--latent", str(latent), "--steps", "2", "--no-video"]
    assert main([*argv, "--outdir", str(tmp_path / "out")]) == 0
    assert np.array_equal(np.load(tmp_path / "out" / "latent.npy").shape, (1, 8, 16))
    before = np.asarray(Image.open(tmp_path / "out" / "before.png"))
    assert np.array_equal(before, np.asarray(Image.open(tmp_path / "gen" / "seed0004.png")))


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--generator", "/nonexistent/model.pkl"], "no such file"),
        (["--prompt", ""], "empty prompt"),
        (["--steps", "0"], "steps must be at least 1"),
        (["--layers", "b7.conv9"], "unknown layer"),
        (["--image", "photo.jpg"], "no such file"),
        (["--loss", "directional"], "neutral"),
    ],
)
def test_bad_arguments_exit_non_zero_with_one_line(assets, tmp_path, capsys, extra, message):
    argv = ["edit", *assets, "--prompt", "a tiger", "--steps", "2", "--outdir", str(tmp_path)]
    assert main(argv + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("styleclip edit: error:")


def test_nan_loss_exits_with_the_message_and_keeps_the_result(assets, tmp_path, capsys):
    argv = ["edit", *assets, "--prompt", "a tiger", "--steps", "5", "--lr", "1e30", "--no-video"]
    assert main([*argv, "--outdir", str(tmp_path)]) == 1
    assert "NaN" in capsys.readouterr().err
    assert np.isfinite(np.load(tmp_path / "latent.npy")).all()


def test_edit_a_photo_inverts_it_first(assets, tmp_path, tiny_lpips):
    photo = tmp_path / "me.png"
    Image.fromarray((np.random.RandomState(0).rand(40, 50, 3) * 255).astype(np.uint8)).save(photo)
    argv = ["edit", *assets, "--prompt", "a tiger", "--image", str(photo), "--method", "project", "--invert-steps", "3",
            "--align", "center", "--pti", "--steps", "2", "--no-video", "--outdir", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0
    inv = tmp_path / "out" / "inversion"
    assert {p.name for p in inv.iterdir()} >= {"aligned.png", "reconstruction.png", "latent.npy", "report.json",
                                                "generator_pti.safetensors"}  # fmt: skip
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["config"]["latent"].endswith("latent.npy") and report["generator"]["name"].endswith("pti.safetensors")
    assert json.loads((inv / "report.json").read_text())["method"] == "project+pti"
