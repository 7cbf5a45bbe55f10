"""``styleclip invert`` and ``directions apply --image`` on tiny networks."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from styleclip.cli.main import main
from styleclip.hub.generators import save_generator
from styleclip.nets.encoders import IRSEEncoder

from test_encoders import TINY_IRSE, tiny_generator_w64, write_checkpoint


def _photo(path):
    Image.fromarray((np.random.RandomState(1).rand(60, 45, 3) * 255).astype(np.uint8)).save(path)
    return path


def test_invert_with_an_e4e_checkpoint(tmp_path, tiny_lpips):
    G = tiny_generator_w64(seed=6)
    gen = save_generator(G, tmp_path / "g.safetensors")
    enc = write_checkpoint(tmp_path / "e4e.pt", IRSEEncoder(G.num_ws, 3, True, TINY_IRSE, stem=16), G)
    photo = _photo(tmp_path / "p.png")
    argv = ["invert", str(photo), "--generator", str(gen), "--method", "e4e", "--encoder", str(enc), "--steps", "1",
            "--align", "center", "--device", "cpu", "--outdir", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["method"] == "e4e" and np.isfinite(report["metrics"]["psnr"]) and report["metrics"]["lpips"] >= 0
    assert np.load(tmp_path / "out" / "latent.npy").shape == (1, G.num_ws, 64)
    assert Image.open(tmp_path / "out" / "reconstruction.png").size == (32, 32)


def test_invert_errors_are_one_line(tmp_path, capsys, tiny_lpips):
    gen = save_generator(tiny_generator_w64(), tmp_path / "g.safetensors")
    (tmp_path / "x.jpg").write_text("no")
    assert main(["invert", str(tmp_path / "x.jpg"), "--generator", str(gen), "--outdir", str(tmp_path / "o")]) == 2
    assert "not an image" in capsys.readouterr().err
    photo = _photo(tmp_path / "p.png")
    argv = ["invert", str(photo), "--generator", str(gen), "--method", "e4e", "--outdir", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "no encoder is known" in capsys.readouterr().err
    assert main([*argv[:-2], "--box", "1,2,3", "--outdir", str(tmp_path / "o")]) == 2
    assert "four integers" in capsys.readouterr().err


def test_directions_apply_to_a_photo(tmp_path, tiny_clip_file, tiny_lpips):
    G = tiny_generator_w64(seed=2)
    gen = save_generator(G, tmp_path / "g.safetensors")
    common = ["--generator", str(gen), "--clip", str(tiny_clip_file), "--device", "cpu", "--samples", "300",
              "--cache", str(tmp_path / "cache")]  # fmt: skip
    assert main(["directions", "precompute", *common, "--method", "gradient", "--images", "1", "--batch-size", "32",
                 "--max-resolution", "8"]) == 0  # fmt: skip
    photo = _photo(tmp_path / "p.png")
    out = tmp_path / "out"
    assert main(["directions", "apply", *common, "--neutral", "a dog", "--target", "a red dog", "--beta", "0.01",
                 "--image", str(photo), "--method", "project", "--invert-steps", "2", "--align", "center",
                 "--no-video", "--outdir", str(out)]) == 0  # fmt: skip
    assert (out / "inversion" / "latent.npy").is_file() and (out / "after.png").is_file()
    assert json.loads((out / "report.json").read_text())["sources"] == ["photo"]


def test_projection_with_lpips_off_needs_no_download(tmp_path, monkeypatch, capsys):
    """Offline, VGG16 cannot be had: --lpips off projects on pixels and says so; no LPIPS is ever loaded."""
    from styleclip.guidance import perceptual

    def no_download(*args, **kwargs):
        raise AssertionError("LPIPS was loaded")

    monkeypatch.setattr(perceptual, "load_lpips", no_download)
    gen = save_generator(tiny_generator_w64(seed=6), tmp_path / "g.safetensors")
    photo = _photo(tmp_path / "p.png")
    argv = ["invert", str(photo), "--generator", str(gen), "--method", "project", "--steps", "3", "--pti",
            "--pti-steps", "2", "--lpips", "off", "--align", "center", "--outdir", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["distance"] == "pixels (LPIPS off)" and report["metrics"]["lpips"] is None
    assert report["method"] == "project+pti" and np.isfinite(report["metrics"]["psnr"])
    capsys.readouterr()
    missing = [*argv[:-4], "--lpips", str(tmp_path / "nope.pth"), "--outdir", str(tmp_path / "o2")]
    assert main(missing) == 2
    err = capsys.readouterr().err.strip()
    assert "no such file" in err and len(err.splitlines()) == 1


def test_batch_inverts_photos_on_pixels_with_lpips_off(tmp_path, monkeypatch, tiny_clip_file):
    from styleclip.guidance import perceptual

    monkeypatch.setattr(perceptual, "load_lpips", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    gen = save_generator(tiny_generator_w64(seed=6), tmp_path / "g.safetensors")
    (tmp_path / "photos").mkdir()
    _photo(tmp_path / "photos" / "a.png")
    argv = ["batch", "--generator", str(gen), "--clip", str(tiny_clip_file), "--images", str(tmp_path / "photos"),
            "--invert-method", "project", "--invert-steps", "3", "--lpips", "off", "--prompt", "a red face", "--method", "optimize",
            "--steps", "1", "--outdir", str(tmp_path / "runs")]  # fmt: skip
    assert main(argv) == 0
    assert list((tmp_path / "runs" / "sources").glob("*/latent.npy"))
