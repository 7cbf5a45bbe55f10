"""Video editing on a synthetic clip made here: a real photo moved and scaled over 24 frames as a camera would, with a
sound track; the tests' tiny generator, e4e encoder and mapper."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from styleclip.edits.mapper import MapperEdit
from styleclip.errors import UsageError
from styleclip.io.video import read_video
from styleclip.nets.encoders import IRSEEncoder
from styleclip.nets.mapper import LatentMapper, MapperConfig
from styleclip.video import edit_video
from styleclip.video.frames import probe
from styleclip.video.stitch import crop, paste
from styleclip.video.track import Square, smooth

from hostile import refused_by
from test_encoders import TINY_IRSE, tiny_generator_w64, write_checkpoint

FRAMES, FPS, SIZE = 24, 12.0, (320, 240)


def synthetic_frames(face: bool = True) -> list[np.ndarray]:
    """The astronaut's portrait panned and zoomed over 24 frames; without ``face``, frames 5 and 6 cut away."""
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    out = []
    for t in range(FRAMES):
        scale = 0.42 + 0.004 * t  # a slow zoom
        im = photo.resize((round(512 * scale), round(512 * scale)), Image.Resampling.BICUBIC)
        canvas = Image.new("RGB", SIZE, (40, 40, 40))
        canvas.paste(im, (10 + 2 * t, -5 + t // 2))  # and a pan
        if not face and t in (5, 6):
            canvas = Image.new("RGB", SIZE, (90, 120, 150))  # a cut away from the face
        out.append(np.asarray(canvas))
    return out


def write_clip(path, frames, audio: bool = True):
    import imageio_ffmpeg

    plain = path.with_suffix(".noaudio.mp4") if audio else path
    w = imageio_ffmpeg.write_frames(str(plain), SIZE, fps=FPS, codec="libx264", pix_fmt_out="yuv420p",
                                    macro_block_size=2, ffmpeg_log_level="error")  # fmt: skip
    w.send(None)
    for f in frames:
        w.send(np.ascontiguousarray(f))
    w.close()
    if audio:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
        subprocess.run([exe, "-y", "-loglevel", "error", "-i", str(plain), "-f", "lavfi", "-i",
                        "sine=frequency=440:duration=2", "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac",
                        "-shortest", str(path)], check=True)  # fmt: skip
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    pytest.importorskip("dlib")
    folder = tmp_path_factory.mktemp("video")
    G = tiny_generator_w64(seed=3)
    G.meta["domain"] = "face"
    enc = write_checkpoint(folder / "e4e.pt", IRSEEncoder(G.num_ws, 3, True, TINY_IRSE, stem=16), G)
    torch.manual_seed(0)
    mapper = LatentMapper(MapperConfig(w_dim=G.w_dim, num_ws=G.num_ws, groups=("coarse", "medium")))
    with torch.no_grad():
        for p in mapper.parameters():
            p.mul_(3)
    clip = write_clip(folder / "clip.mp4", synthetic_frames())
    return {"G": G, "encoder": enc, "edit": MapperEdit(mapper, 1.0), "clip": clip, "folder": folder}


def test_the_edited_video_keeps_frames_rate_size_and_sound(world, tmp_path):
    result = edit_video(world["clip"], world["G"], world["edit"], tmp_path / "out", method="e4e",
                        encoder=world["encoder"], progress=False)  # fmt: skip
    info = probe(result.edited)
    assert (info.frames, info.fps, info.size, info.audio) == (FRAMES, FPS, SIZE, True)
    both = probe(result.comparison)
    assert both.size == (2 * SIZE[0], SIZE[1]) and both.frames == FRAMES
    report = json.loads(result.report.read_text())
    assert report["unedited_frames"] == [] and report["inversion"]["method"] == "e4e"
    source, edited = read_video(world["clip"]), read_video(result.edited)
    # the edit is in every frame: the face region changed, the background far from it did not
    for s, e in zip(source, edited, strict=True):
        assert np.abs(s.astype(int) - e.astype(int))[60:160, 60:200].mean() > 3
        assert np.abs(s.astype(int) - e.astype(int))[200:, 280:].mean() < 3
    flicker = report["metrics"]["flicker"]
    # a consistent edit changes less from frame to frame than the footage itself moves (the source crops' change)
    assert flicker["edited"] is not None and flicker["edited"] < flicker["source"]


def test_frames_without_a_face_pass_through_and_are_listed(world, tmp_path):
    clip = write_clip(tmp_path / "cut.mp4", synthetic_frames(face=False), audio=False)
    result = edit_video(clip, world["G"], world["edit"], tmp_path / "out", method="e4e", encoder=world["encoder"],
                        progress=False)  # fmt: skip
    assert result.unedited == [5, 6]
    source, edited = read_video(clip), read_video(result.edited)
    for t in (5, 6):
        assert np.abs(source[t].astype(int) - edited[t].astype(int)).max() <= 6  # only H.264 coding it again
    assert not probe(result.edited).audio


def test_an_interrupted_run_resumes_where_it_stopped(world, tmp_path):
    calls = []

    def stop(stage, done, total):
        calls.append(stage)
        if stage == "invert" and done >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        edit_video(world["clip"], world["G"], world["edit"], tmp_path / "out", method="e4e", encoder=world["encoder"],
                   progress=False, callback=stop, batch_size=4)  # fmt: skip
    work = tmp_path / "out" / "work"
    assert len(list((work / "latents").glob("*.npy"))) == 8 and not (tmp_path / "out" / "edited.mp4").exists()
    stamps = {p.name: p.stat().st_mtime_ns for p in (work / "latents").glob("*.npy")}
    seen = []
    result = edit_video(world["clip"], world["G"], world["edit"], tmp_path / "out", method="e4e",
                        encoder=world["encoder"], progress=False, batch_size=4,
                        callback=lambda stage, done, total: seen.append((stage, total)))  # fmt: skip
    assert ("detect", FRAMES) not in seen  # the faces were found before: not again
    assert {p.name: p.stat().st_mtime_ns for p in (work / "latents").glob("*.npy") if p.name in stamps} == stamps
    assert probe(result.edited).frames == FRAMES


def test_smoothing_steadies_a_jittering_square():
    rng = np.random.RandomState(0)
    truth = [Square(np.array([100.0 + t, 80.0]), np.array([40.0, 0.0]), np.array([0.0, 40.0])) for t in range(30)]
    noisy = [Square(s.c + rng.randn(2) * 2, s.x + rng.randn(2), s.y) for s in truth]
    noisy[12] = None
    steady = smooth(noisy)
    assert steady[12] is None
    err = lambda squares: np.mean([np.hypot(*(s.c - t.c)) for s, t in zip(squares, truth, strict=True) if s])  # noqa: E731
    assert err(steady) < 0.7 * err(noisy)


def test_a_crop_pastes_back_where_it_came_from():
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[90:96, 140:146] = 255
    square = Square(np.array([150.0, 100.0]), np.array([50.0, 8.0]), np.array([-8.0, 50.0]))
    out = paste(np.zeros_like(frame), np.asarray(crop(Image.fromarray(frame), square, 128)), square)
    ys, xs = np.nonzero(out[..., 0] > 100)
    assert abs(ys.mean() - 92.5) < 0.3 and abs(xs.mean() - 142.5) < 0.3


def test_bad_videos_are_one_line(world, tmp_path):
    (tmp_path / "not.mp4").write_text("hello")
    refused_by(lambda: probe(tmp_path / "not.mp4"), match="not a video", error=UsageError)
    refused_by(lambda: probe(tmp_path / "none.mp4"), match="no such video", error=UsageError)
    refused_by(lambda: probe(world["clip"], max_frames=10), match="--max-frames", error=UsageError)
    refused_by(lambda: edit_video(world["clip"], world["G"], world["edit"], tmp_path / "o", method="project"),
               match="inverted with", error=UsageError)  # fmt: skip


def test_styleclip_video_on_the_command_line(world, tmp_path, tiny_clip_file, capsys):
    from styleclip.cli.main import main
    from styleclip.hub.generators import save_generator
    from styleclip.hub.mappers import save_mapper
    from styleclip.stylespace import generator_fingerprint

    from hostile import refused

    G = world["G"]
    gen = save_generator(G, tmp_path / "g.safetensors")
    meta = {"prompt": "a smiling face", "generator": {"fingerprint": generator_fingerprint(G)}}
    mapper = save_mapper(world["edit"].mapper, tmp_path / "m.safetensors", meta=meta)
    argv = ["video", str(world["clip"]), "--generator", str(gen), "--mapper", str(mapper), "--strength", "1",
            "--method", "e4e", "--encoder", str(world["encoder"]), "--clip", str(tiny_clip_file), "--device", "cpu",
            "--outdir", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0
    assert "frame-to-frame change" in capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert len(report["metrics"]["clip_score"]["per_frame"]) == FRAMES and report["audio"] is True
    refused(argv, capsys, match="--overwrite")  # the earlier results are kept
    other = [a if a != "1" else "2" for a in argv]  # another strength: another edit
    (tmp_path / "out" / "edited.mp4").unlink()
    (tmp_path / "out" / "comparison.mp4").unlink()
    (tmp_path / "out" / "report.json").unlink()
    refused(other, capsys, match="other settings")  # the saved frames are another edit's: never mixed in
    assert main([*other, "--overwrite"]) == 0


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--mapper", "m.pt", "--target", "a"], "give one edit"),
        (["--target", "a smiling face"], "both texts"),
        (["--mapper", "m.pt", "--max-frames", "0"], "--max-frames"),
    ],
)
def test_video_refusals_are_one_line(world, tmp_path, capsys, extra, match):
    from hostile import refused

    refused(["video", str(world["clip"]), "--generator", "g", "--outdir", str(tmp_path / "o"), *extra], capsys,
            match=match)  # fmt: skip


def test_a_file_that_is_not_a_video_is_refused_before_models_load(tmp_path, capsys):
    from hostile import refused

    (tmp_path / "clip.mp4").write_bytes(b"\x00" * 100)
    refused(["video", str(tmp_path / "clip.mp4"), "--generator", "no-such-model", "--mapper", "m",
             "--outdir", str(tmp_path / "o")], capsys, match="not a video")  # fmt: skip


# -- PTI over every frame, and one shared change for a prompt ----------------------------------------------------


def _pivots_and_crops(work, G):
    from styleclip.io.photos import to_tensor
    from styleclip.latents import load_latent

    pivots = torch.cat([load_latent(p, G) for p in sorted((work / "latents").glob("*.npy"))])
    crops = torch.cat([to_tensor(Image.open(p)) for p in sorted((work / "aligned").glob("*.png"))])
    return pivots, crops


def test_pti_tunes_one_generator_on_every_frame_and_resumes(world, tmp_path, tiny_lpips):
    from styleclip.hub.generators import load_generator
    from styleclip.video.pipeline import PTI_EPOCHS

    from conftest import tiny_lpips_model

    assert PTI_EPOCHS == 80  # STIT's README

    def stop(stage, done, total):
        if stage == "pti" and done >= 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # the callback cancels the tuning; nothing half-tuned is kept
        edit_video(world["clip"], world["G"], world["edit"], tmp_path / "out", method="e4e", encoder=world["encoder"],
                   progress=False, pti=True, pti_steps=3, lpips="alex", callback=stop)  # fmt: skip
    assert not (tmp_path / "out" / "work" / "pti.safetensors").exists()
    seen = []
    run = lambda: edit_video(world["clip"], world["G"], world["edit"], tmp_path / "out", method="e4e",  # noqa: E731
                             encoder=world["encoder"], progress=False, pti=True, pti_steps=3, lpips="alex",
                             callback=lambda stage, done, total: seen.append((stage, done, total)))  # fmt: skip
    result = run()
    work = tmp_path / "out" / "work"
    assert ("pti", 3 * FRAMES, 3 * FRAMES) in seen  # one step per frame per epoch
    assert ("detect", FRAMES, FRAMES) not in seen  # the interrupted run's stages were kept
    tuned = load_generator(work / "pti.safetensors")
    assert tuned.meta["pti"]["epochs"] == 3 and tuned.meta["pti"]["lr"] == 3e-5 and tuned.meta["pti"]["lpips"] == "alex"
    pivots, crops = _pivots_and_crops(work, world["G"])
    lpips = tiny_lpips_model()
    lpips.max_size = None
    with torch.no_grad():
        before, after = world["G"].synthesize(pivots), tuned.synthesize(pivots)
        assert torch.nn.functional.mse_loss(after, crops) < torch.nn.functional.mse_loss(before, crops)
        assert lpips(after, crops).mean() < lpips(before, crops).mean()
    report = json.loads(result.report.read_text())
    assert report["pti"]["epochs"] == 3
    # the tuned generator draws the edited frames
    from styleclip.latents import Codes

    edited = world["edit"].apply(tuned, Codes(pivots[:1]))
    with torch.no_grad():
        drawn = (edited.image(tuned, noise_mode="const").clamp(-1, 1) + 1) * 127.5
    saved = torch.from_numpy(np.asarray(Image.open(work / "edited" / "000000.png"), dtype=np.float32))
    assert (drawn[0].permute(1, 2, 0) - saved).abs().max() <= 1.0
    stamp = (work / "pti.safetensors").stat().st_mtime_ns
    for name in OUTPUTS_OF_A_RUN:
        (tmp_path / "out" / name).unlink()
    seen.clear()
    run()
    assert not [s for s in seen if s[0] == "pti"] and (work / "pti.safetensors").stat().st_mtime_ns == stamp


OUTPUTS_OF_A_RUN = ("edited.mp4", "comparison.mp4", "report.json")


def test_pti_with_hyperstyle_is_refused_in_one_line(world, tmp_path):
    for kwargs in ({"method": "hyperstyle"}, {"hyperstyle": "hs.safetensors"}):
        refused_by(lambda kw=kwargs: edit_video(world["clip"], world["G"], world["edit"], tmp_path / "o", pti=True,
                                                **kw),
                   match="drop --pti", error=UsageError)  # fmt: skip
    refused_by(lambda: edit_video(world["clip"], world["G"], "a smiling face", tmp_path / "o"), match="guide=",
               error=UsageError)  # fmt: skip


def _shared_change(work, G, space):
    from styleclip.latents import Codes, load_latent

    diffs = []
    for path in sorted((work / "edited").glob("*.npz")):
        source = load_latent(work / "latents" / (path.stem + ".npy"), G)
        with np.load(path) as arrays:
            edited = Codes.from_arrays(dict(arrays), G)
        if space == "s":
            before = G.styles(source)
            diffs.append(torch.cat([edited.styles[k] - before[k] for k in sorted(before)], 1))
        else:
            diffs.append(edited.ws - source)
    return diffs


def test_a_prompt_applies_one_shared_change_to_every_frame(world, tmp_path, tiny_clip_file):
    from styleclip.edits.shared_delta import SharedDeltaEdit
    from styleclip.guidance.clip import load_clip
    from styleclip.video.pipeline import key_frames

    guide = load_clip(str(tiny_clip_file))
    edit = SharedDeltaEdit("a smiling face", guide, steps=4, lr=0.5, id_weight=0.0, key_frames=3)
    seen = []
    result = edit_video(world["clip"], world["G"], edit, tmp_path / "out", method="e4e", encoder=world["encoder"],
                        progress=False, guide=guide, callback=lambda s, d, t: seen.append((s, d, t)))  # fmt: skip
    work = tmp_path / "out" / "work"
    report = json.loads(result.report.read_text())
    assert report["edit"]["method"] == "shared-delta" and report["key_frames"] == [0, 12, 23]
    assert ("prompt", 4, 4) in seen and len(report["metrics"]["clip_score"]["per_frame"]) == FRAMES
    diffs = _shared_change(work, world["G"], "w+")
    assert len(diffs) == FRAMES and diffs[0].abs().max() > 1e-3  # a change was made ...
    for d in diffs[1:]:
        torch.testing.assert_close(d, diffs[0], rtol=0, atol=1e-5)  # ... and the same one in every frame
    torch.testing.assert_close(diffs[0], edit.delta.cpu(), rtol=0, atol=1e-5)
    assert key_frames([None, 1, 1, None, 1], 2) == [1, 4]
    # another setting of the prompt's edit is another edit: the saved frames are never mixed in
    for name in OUTPUTS_OF_A_RUN:
        (tmp_path / "out" / name).unlink()
    other = SharedDeltaEdit("a smiling face", guide, steps=5, lr=0.5, id_weight=0.0, key_frames=3)
    refused_by(lambda: edit_video(world["clip"], world["G"], other, tmp_path / "out", method="e4e",
                                  encoder=world["encoder"], progress=False),
               match="other settings", error=UsageError)  # fmt: skip
    seen.clear()
    again = SharedDeltaEdit("a smiling face", guide, steps=4, lr=0.5, id_weight=0.0, key_frames=3)
    edit_video(world["clip"], world["G"], again, tmp_path / "out", method="e4e", encoder=world["encoder"],
               progress=False, callback=lambda s, d, t: seen.append(s))  # fmt: skip
    assert "prompt" not in seen  # the saved change was loaded, not fitted again
    torch.testing.assert_close(again.delta, edit.delta)


def test_a_prompt_in_stylespace_after_pti_on_the_command_line(world, tmp_path, tiny_clip_file, tiny_lpips, capsys):
    from styleclip.cli.main import main
    from styleclip.hub.generators import load_generator, save_generator

    gen = save_generator(world["G"], tmp_path / "g.safetensors")
    argv = ["video", str(world["clip"]), "--generator", str(gen), "--prompt", "a smiling face", "--space", "s",
            "--steps", "3", "--lr", "0.5", "--id-weight", "0", "--key-frames", "2", "--pti", "--pti-steps", "1",
            "--method", "e4e", "--encoder", str(world["encoder"]), "--clip", str(tiny_clip_file), "--device", "cpu",
            "--outdir", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0
    work = tmp_path / "out" / "work"
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["edit"]["space"] == "s" and report["key_frames"] == [0, 23] and report["pti"]["epochs"] == 1
    tuned = load_generator(work / "pti.safetensors")
    diffs = _shared_change(work, tuned, "s")  # the change was fitted and drawn through the tuned generator
    assert len(diffs) == FRAMES and diffs[0].abs().max() > 1e-3
    for d in diffs[1:]:
        torch.testing.assert_close(d, diffs[0], rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--prompt", "a smiling face", "--mapper", "m.pt"], "give one edit"),
        (["--prompt", "a smiling face", "--target", "a", "--neutral", "b"], "give one edit"),
        (["--mapper", "m.pt", "--pti", "--method", "hyperstyle"], "drop --pti"),
        (["--mapper", "m.pt", "--pti", "--hyperstyle", "hs.pt"], "drop --pti"),
        (["--prompt", " "], "empty prompt"),
        (["--prompt", "a smiling face", "--key-frames", "0"], "--key-frames"),
        (["--prompt", "a smiling face", "--l2", "-1"], "--l2"),
    ],
)
def test_prompt_and_pti_refusals_are_one_line(world, tmp_path, capsys, extra, match):
    from hostile import refused

    refused(["video", str(world["clip"]), "--generator", "g", "--outdir", str(tmp_path / "o"), *extra], capsys,
            match=match)  # fmt: skip


def test_a_face_parser_gives_the_stitching_mask(world, tmp_path):
    from test_video_masks import random_state

    torch.save(random_state(), tmp_path / "parser.pth")
    result = edit_video(world["clip"], world["G"], world["edit"], tmp_path / "out", method="e4e",
                        encoder=world["encoder"], parser=tmp_path / "parser.pth", progress=False)  # fmt: skip
    report = json.loads(result.report.read_text())
    assert report["mask"] == "face-parsing" and probe(result.edited).frames == FRAMES


def test_torchrun_shares_the_frames_and_matches_one_process(world, tmp_path, tiny_clip_file):
    import os
    import subprocess
    import sys

    from styleclip.hub.generators import save_generator
    from styleclip.hub.mappers import save_mapper
    from styleclip.stylespace import generator_fingerprint

    G = world["G"]
    gen = save_generator(G, tmp_path / "g.safetensors")
    meta = {"prompt": "a smiling face", "generator": {"fingerprint": generator_fingerprint(G)}}
    mapper = save_mapper(world["edit"].mapper, tmp_path / "m.safetensors", meta=meta)
    command = ["-m", "styleclip", "video", str(world["clip"]), "--generator", str(gen), "--mapper", str(mapper),
               "--strength", "1", "--method", "e4e", "--encoder", str(world["encoder"]), "--clip", str(tiny_clip_file),
               "--device", "cpu", "--batch-size", "4"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    for cmd, out in (([sys.executable, *command], "one"), ([*launch, *command], "two")):
        proc = subprocess.run([*cmd, "--outdir", str(tmp_path / out)], env=env, capture_output=True, text=True,
                              timeout=600, start_new_session=True)  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for i in range(FRAMES):
        a = np.asarray(Image.open(tmp_path / "one" / "work" / "edited" / f"{i:06d}.png"), dtype=int)
        b = np.asarray(Image.open(tmp_path / "two" / "work" / "edited" / f"{i:06d}.png"), dtype=int)
        assert np.abs(a - b).max() <= 1, i
    assert probe(tmp_path / "two" / "edited.mp4").frames == FRAMES


def test_a_sound_track_shorter_than_the_picture_loses_no_frame(tmp_path):
    import imageio_ffmpeg

    from styleclip.video.frames import add_audio

    silent = write_clip(tmp_path / "silent.mp4", synthetic_frames()[:12], audio=False)
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([exe, "-y", "-loglevel", "error", "-i", str(silent), "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=0.4", "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac",
                    str(tmp_path / "short-sound.mp4")], check=True)  # fmt: skip
    source = probe(tmp_path / "short-sound.mp4")
    out = write_clip(tmp_path / "out.mp4", synthetic_frames()[:12], audio=False)
    assert add_audio(out, source)
    assert probe(out).frames == 12 and probe(out).audio


def test_stitching_tuning_draws_each_frame_with_a_tuned_copy(world, tmp_path):
    stages = []
    result = edit_video(world["clip"], world["G"], world["edit"], tmp_path / "out", method="e4e",
                        encoder=world["encoder"], stitch_tuning=True, stitch_steps=2, progress=False,
                        callback=lambda stage, done, total: stages.append(stage))  # fmt: skip
    report = json.loads(result.report.read_text())
    assert report["stitch_tuning"]["steps"] == 2 and stages.count("tune") == 2 * FRAMES
    plain = edit_video(world["clip"], world["G"], world["edit"], tmp_path / "plain", method="e4e",
                       encoder=world["encoder"], progress=False)  # fmt: skip
    tuned = np.asarray(Image.open(tmp_path / "out" / "work" / "edited" / "000003.png"), dtype=int)
    untuned = np.asarray(Image.open(tmp_path / "plain" / "work" / "edited" / "000003.png"), dtype=int)
    assert np.abs(tuned - untuned).max() > 0  # the tuned copy drew this frame's crop
    assert probe(plain.edited).frames == FRAMES


def test_a_saved_direction_edits_the_video(world, tmp_path, tiny_clip_file, capsys):
    from styleclip.cli.main import main
    from styleclip.hub.generators import save_generator

    from hostile import refused

    G = world["G"]
    gen = save_generator(G, tmp_path / "g.safetensors")
    rng = np.random.RandomState(0)
    np.savez(tmp_path / "delta.npz", **{layer.name: rng.randn(layer.channels).astype(np.float32)
                                        for layer in G.style_layers if layer.kind == "conv"})  # fmt: skip
    common = [str(world["clip"]), "--generator", str(gen), "--method", "e4e", "--encoder", str(world["encoder"]),
              "--clip", str(tiny_clip_file), "--device", "cpu"]  # fmt: skip
    assert main(["video", *common, "--direction", str(tmp_path / "delta.npz"), "--alpha", "2",
                 "--outdir", str(tmp_path / "out")]) == 0  # fmt: skip
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["edit"]["method"] == "directions" and report["edit"]["alpha"] == 2.0
    np.savez(tmp_path / "bad.npz", **{"b4.conv1": np.zeros(3, np.float32)})
    refused(["video", *common, "--direction", str(tmp_path / "bad.npz"), "--outdir", str(tmp_path / "o2")], capsys,
            match="do not fit")  # fmt: skip


def test_a_killed_run_resumes_without_redoing_its_frames(world, tmp_path, tiny_clip_file):
    """A real SIGKILL in the middle of the inversion: the frames done before it are kept and not made again."""
    import os
    import signal
    import sys
    import time

    from styleclip.cli.main import main
    from styleclip.hub.generators import save_generator
    from styleclip.hub.mappers import save_mapper
    from styleclip.stylespace import generator_fingerprint

    G = world["G"]
    gen = save_generator(G, tmp_path / "g.safetensors")
    meta = {"prompt": "a smiling face", "generator": {"fingerprint": generator_fingerprint(G)}}
    mapper = save_mapper(world["edit"].mapper, tmp_path / "m.safetensors", meta=meta)
    out = tmp_path / "out"
    argv = ["video", str(world["clip"]), "--generator", str(gen), "--mapper", str(mapper), "--method", "e4e",
            "--encoder", str(world["encoder"]), "--clip", str(tiny_clip_file), "--device", "cpu", "--batch-size", "1",
            "--outdir", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "styleclip", *argv], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    latents = out / "work" / "latents"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and len(list(latents.glob("*.npy"))) < 4:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.name: p.stat().st_mtime_ns for p in latents.glob("*.npy")}
    assert 4 <= len(before) < FRAMES and not (out / "edited.mp4").exists()
    for path in latents.glob("*.npy"):  # a frame's file exists only complete (a kill leaves at most a .tmp aside)
        assert np.load(path).shape == (1, world["G"].num_ws, world["G"].w_dim)
    assert main(argv) == 0
    assert {p.name: p.stat().st_mtime_ns for p in latents.glob("*.npy") if p.name in before} == before
    assert probe(out / "edited.mp4").frames == FRAMES
