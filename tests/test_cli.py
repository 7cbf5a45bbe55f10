"""The command line, end to end on tiny checkpoints: files, names, pixels, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import styleclip
from styleclip.cli.main import main
from styleclip.io.images import to_uint8
from styleclip.sample import parse_seeds

from checkpoint_writers import write_nvidia_pickle
from conftest import tiny_generator


@pytest.fixture
def pkl(tmp_path):
    return write_nvidia_pickle(tiny_generator(), tmp_path / "tiny.pkl")


def test_generate_writes_nvidia_named_pngs_and_latents(pkl, tmp_path):
    out = tmp_path / "out"
    assert main(["generate", "--generator", str(pkl), "--seeds", "0-2,9", "--trunc", "0.7", "--outdir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        f"seed{s:04d}.{ext}" for s in (0, 1, 2, 9) for ext in ("npy", "png")
    ]
    G = styleclip.load_generator(pkl, device="cpu")
    ws = G.mapping_forward(G.z_from_seed(9), truncation_psi=0.7)
    saved = np.load(out / "seed0009.npy")
    assert saved.shape == (1, G.num_ws, G.w_dim) and saved.dtype == np.float32
    np.testing.assert_array_equal(saved, ws.numpy())
    png = Image.open(out / "seed0009.png")
    assert png.size == (32, 32) and png.mode == "RGB"
    # the pixels are (x * 127.5 + 128).clamp(0, 255) truncated, as in NVIDIA's generate.py
    expected = to_uint8(G.synthesize(ws, noise_mode="const"))[0]
    assert np.abs(np.asarray(png).astype(int) - expected.astype(int)).max() <= 1
    assert png.text["styleclip:seed"] == "9" and png.text["styleclip:trunc"] == "0.7"


def test_to_uint8_follows_the_official_rounding():
    img = torch.tensor([-1.0, -0.999, 0.0, 0.5, 1.0, 2.0]).reshape(1, 1, 1, 6)
    np.testing.assert_array_equal(to_uint8(img).ravel(), [0, 0, 128, 191, 255, 255])


def test_generate_conditional_needs_a_class(tmp_path):
    pkl = write_nvidia_pickle(tiny_generator(c_dim=3), tmp_path / "cond.pkl")
    assert (
        main(["generate", "--generator", str(pkl), "--seeds", "1", "--class", "2", "--outdir", str(tmp_path / "o")])
        == 0
    )
    assert (tmp_path / "o" / "seed0001.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--generator", "missing.pkl"], "no such file"),
        (["--generator", "{pkl}", "--seeds", "5-1"], "runs backwards"),
        (["--generator", "{pkl}", "--seeds", "a-b"], "bad seed list"),
        (["--generator", "{pkl}", "--class", "1"], "unconditional"),
        (["--generator", "{pkl}", "--batch-size", "0"], "batch size"),
        (["--generator", "{pkl}", "--device", "tpu9"], "unknown device"),
        (["--generator", "{pkl}", "--seeds", "0-4294967296"], "seeds must be in"),
        (["--generator", "{pkl}", "--seeds", "0-2000000"], "more than"),
        (["--generator", "{pkl}", "--trunc", "nan"], "finite"),
    ],
)
def test_generate_errors_are_one_line_and_exit_2(pkl, tmp_path, capsys, args, message):
    args = [a.replace("{pkl}", str(pkl)) for a in args]
    assert main(["generate", *args, "--outdir", str(tmp_path / "o")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], lines


def test_errors_reach_the_shell_without_a_traceback(tmp_path):
    png = tmp_path / "photo.pkl"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(png, format="PNG")
    proc = subprocess.run(
        [sys.executable, "-m", "styleclip", "generate", "--generator", str(png), "--outdir", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"styleclip generate: error: {png}: not a checkpoint, the file is a PNG image"
    ]


def test_convert_then_generate_gives_the_same_images(pkl, tmp_path):
    st = tmp_path / "tiny.safetensors"
    assert main(["convert", str(pkl), str(st)]) == 0
    a, b = tmp_path / "a", tmp_path / "b"
    main(["generate", "--generator", str(pkl), "--seeds", "3", "--outdir", str(a)])
    main(["generate", "--generator", str(st), "--seeds", "3", "--outdir", str(b)])
    assert np.array_equal(np.asarray(Image.open(a / "seed0003.png")), np.asarray(Image.open(b / "seed0003.png")))


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("1,5,9") == [1, 5, 9]
    assert parse_seeds("0-1, 7") == [0, 1, 7]


def test_version_and_help():
    proc = subprocess.run([sys.executable, "-m", "styleclip", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "generate" in proc.stdout and "convert" in proc.stdout


def test_outdir_that_is_a_file(pkl, tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("x")
    assert main(["generate", "--generator", str(pkl), "--outdir", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["convert", str(pkl), str(tmp_path)]) == 2
