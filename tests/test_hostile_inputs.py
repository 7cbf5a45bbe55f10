"""Hostile and clumsy inputs to ``edit --from-report``, ``batch`` job files and latent files: each refused in one line.

Issue 23: a report, a PNG's text or a job file is data that names paths and URLs (opened only when they are
catalogue names, inside the job's folder, given on the command line, or trusted by flag); YAML is loaded with a
bound on its expanded nodes; every value is type- and range-checked; latent files are checked from their headers
before anything is allocated; one command starts a bounded number of edits.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from styleclip.cli.main import main
from styleclip.hub.generators import save_generator

from conftest import tiny_generator
from hostile import refused, refused_by


@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny_clip_file):
    folder = tmp_path_factory.mktemp("hostile-inputs")
    gen = save_generator(tiny_generator(), folder / "tiny.safetensors")
    return {"generator": gen, "clip": tiny_clip_file}


def a_report(generator: str = "ffhq", **config) -> dict:
    return {"generator": {"name": generator}, "config": {"prompts": ["a tiger"], "seeds": [1], "steps": 2, **config}}


def write_report(path, report: dict):
    if path.suffix == ".png":
        info = PngInfo()
        info.add_text("styleclip:report", json.dumps(report))
        Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    else:
        path.write_text(json.dumps(report))
    return path


def a_file_not_a_folder(tmp_path):
    """An --outdir that is a file: the first check after the ones under test, before any model loads."""
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    return blocker


# -- 1. data is not a command: what a report or job file names ------------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".png"])
@pytest.mark.parametrize(
    "generator, says",
    [("/home/someone/.ssh/id_rsa", "a path"), ("http://127.0.0.1:9/g.pkl", "a URL"), ("file:///etc/passwd", "a URL")],
)
def test_a_report_naming_a_path_or_url_is_refused_without_trust(tmp_path, capsys, suffix, generator, says):
    report = write_report(tmp_path / f"report{suffix}", a_report(generator))
    line = refused(["edit", "--from-report", report, "--outdir", tmp_path / "out"], capsys, watch=[tmp_path],
                   match=f"names the generator .*{says}.*--generator on the command line.*--trust-report")  # fmt: skip
    assert generator in line


@pytest.mark.parametrize(
    "config, field, option",
    [({"clip": "/tmp/evil-clip.pt"}, "the CLIP model", "--clip"),
     ({"clip": "ViT-B-32:../../evil.bin"}, "the CLIP model", "--clip"),
     ({"identity": "https://127.0.0.1/arcface.pth", "id_weight": 0.1}, "the identity model", "--identity"),
     ({"latent": "/etc/shadow", "seeds": []}, "the latent", "--latent")],
)  # fmt: skip
def test_every_file_a_report_names_needs_trust(tmp_path, capsys, config, field, option):
    report = write_report(tmp_path / "report.json", a_report("ffhq", **config))
    refused(["edit", "--from-report", report, "--outdir", tmp_path / "out"], capsys, watch=[tmp_path],
            match=f"{field} .*{option} on the command line.*--trust-report")  # fmt: skip


def test_catalogue_names_the_command_line_and_trust_let_a_report_through(tmp_path, capsys):
    blocker = a_file_not_a_folder(tmp_path)
    catalogue = write_report(tmp_path / "catalogue.json", a_report("stylegan2-ada:afhqdog", clip="ViT-B-32:openai"))
    elsewhere = write_report(tmp_path / "paths.json", a_report("/srv/models/g.pkl", clip="/srv/models/clip.pt"))
    for argv in (
        ["--from-report", catalogue],
        ["--from-report", elsewhere, "--generator", "ffhq", "--clip", "ViT-B-32:openai"],
        ["--from-report", elsewhere, "--trust-report"],
    ):
        refused(["edit", *argv, "--outdir", blocker], capsys, match="is a file", watch=[tmp_path])
    code = main(["edit", "--from-report", str(catalogue), "--outdir", str(blocker)])
    out = capsys.readouterr().out
    assert code == 2 and "from report" in out and "generator stylegan2-ada:afhqdog, CLIP ViT-B-32:openai" in out


def job_file(folder, data: dict, name: str = "job.json"):
    path = folder / name
    path.write_text(json.dumps(data))
    return path


A_RUN = [{"method": "optimize", "steps": 2}]


@pytest.mark.parametrize(
    "entry, says",
    [({"generator": "/srv/models/g.pkl"}, "generator '/srv/models/g.pkl', a path, outside the job file's folder; "
                                          "a job file may name catalogue models and files inside its own folder: "
                                          "give it as --generator"),
     ({"generator": "https://127.0.0.1:9/g.pkl"}, "a URL.*--generator on the command line"),
     ({"clip": "ViT-B-32:/etc/passwd"}, "clip .*--clip on the command line"),
     ({"latents": "../elsewhere/ws.npy", "seeds": None}, "latents '../elsewhere/ws.npy', a path, outside"),
     ({"images": "file:///home", "seeds": None}, "images 'file:///home', a URL"),
     ({"prompts_file": "/etc/hostname"}, "prompts_file"),
     ({"runs": [{"method": "mapper", "mapper": "/srv/m.pt"}]}, r"runs\[0\]\.mapper '/srv/m.pt', a path, outside"),
     ({"runs": [{"method": "directions", "neutral": "a dog", "relevance": "http://127.0.0.1/r.npz"}]},
      r"runs\[0\]\.relevance")],
)  # fmt: skip
def test_a_job_file_opens_nothing_outside_its_folder_without_trust(tmp_path, capsys, entry, says):
    folder = tmp_path / "jobs"
    folder.mkdir()
    data = {"generator": "ffhq", "seeds": "0", "prompts": ["a dog"], "runs": A_RUN, **entry}
    job = job_file(folder, {k: v for k, v in data.items() if v is not None})
    refused(["batch", "--job", job, "--outdir", tmp_path / "out"], capsys, match=f"{says}.*--trust-paths",
            watch=[tmp_path])  # fmt: skip


def test_a_link_out_of_the_job_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "jobs"
    folder.mkdir()
    (tmp_path / "private.npy").write_bytes(b"secret")
    (folder / "ws.npy").symlink_to(tmp_path / "private.npy")
    job = job_file(folder, {"generator": "ffhq", "latents": "ws.npy", "prompts": ["a dog"], "runs": A_RUN})
    refused(["batch", "--job", job, "--outdir", tmp_path / "out"], capsys, match="outside the job file's folder",
            watch=[tmp_path])  # fmt: skip


def test_a_job_file_may_name_its_own_files_and_the_user_may_trust_the_rest(tmp_path, capsys, assets):
    folder = tmp_path / "jobs"
    (folder / "models").mkdir(parents=True)
    (folder / "models" / "g.safetensors").write_bytes(assets["generator"].read_bytes())
    (folder / "prompts.txt").write_text("a dog\n")
    blocker = a_file_not_a_folder(tmp_path)
    inside = job_file(folder, {"generator": "models/g.safetensors", "seeds": "0-1", "prompts_file": "prompts.txt",
                               "runs": A_RUN})  # fmt: skip
    outside = job_file(folder, {"generator": str(assets["generator"]), "seeds": 0, "prompts": "x", "runs": A_RUN},
                       "outside.json")  # fmt: skip
    for argv in (["--job", inside], ["--job", outside, "--trust-paths"],
                 ["--job", outside, "--generator", str(assets["generator"])]):  # fmt: skip
        refused(["batch", *argv, "--outdir", blocker], capsys, match="is a file", watch=[tmp_path])
    main(["batch", "--job", str(inside), "--outdir", str(blocker)])
    out = capsys.readouterr().out
    assert f"generator {folder.resolve() / 'models' / 'g.safetensors'}" in out


# -- 2. job files: bounded YAML, typed values -------------------------------------------------------------------------

BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
generator: ffhq
prompts: *i
"""


@pytest.mark.parametrize(
    "text, says",
    [(BILLION_LAUGHS, "more than 100000 YAML nodes"),
     ("generator: ffhq\nprompts: &p [a, *p]\n", "refers to the node that holds it"),
     ("generator: ffhq\nprompts: [a, b\nruns: {}\n", r"not valid YAML \(line \d+: "),
     ("generator: !!python/object/apply:os.system ['echo owned']\n", "not valid YAML"),
     ("- just\n- a list\n", "a job file is a mapping"),
     ("generator: ffhq\n" + "# padding\n" * 200_000, "far more than a job file holds")],
)  # fmt: skip
def test_yaml_job_files_are_loaded_safely_and_bounded(tmp_path, capsys, text, says):
    job = tmp_path / "job.yaml"
    job.write_text(text)
    refused(["batch", "--job", job, "--outdir", tmp_path / "out"], capsys, match=says, watch=[tmp_path],
            headroom=1 << 30)  # fmt: skip


@pytest.mark.parametrize(
    "entry, says",
    [({"runs": [{"method": "optimize", "steps": "10"}]}, r"runs\[0\]: steps must be an integer in 1\.\.100000, got '10'"),
     ({"runs": [{"method": "optimize", "steps": True}]}, "steps must be an integer"),
     ({"runs": [{"method": "optimize", "steps": 10**9}]}, "steps must be an integer in 1..100000"),
     ({"runs": [{"method": "optimize", "augment": 10**9}]}, "optimize takes no augment"),
     ({"runs": [{"method": "optimize", "l2_weight": [1]}]}, "l2_weight must be a finite number"),
     ({"runs": [{"method": "directions", "neutral": "a dog", "alpha": 1e308}]}, "alpha must be a finite number"),
     ({"runs": [{"method": 3}]}, "unknown method 3"),
     ({"runs": "optimize"}, "runs must be a list"),
     ({"seeds": -1}, r"seeds must be in 0 \.\. 4294967295"),
     ({"seeds": 2**70}, r"seeds must be in 0 \.\. 4294967295"),
     ({"seeds": "0-99999999"}, "more than 1000000 seeds"),
     ({"seeds": [1, "2"]}, "seeds must be an integer"),
     ({"seeds": True}, "seeds must be a range"),
     ({"generator": ["ffhq"]}, "generator must be a non-empty text"),
     ({"prompts": [{"a": 1}]}, r"prompts\[0\] must be a non-empty text"),
     ({"truncation_psi": 1e308}, "truncation_psi must be a finite number in"),
     ({"truncation_psi": "0.7"}, "truncation_psi must be a finite number")],
)  # fmt: skip
def test_job_file_values_are_type_and_range_checked(tmp_path, capsys, entry, says):
    data = {"generator": "ffhq", "seeds": "0", "prompts": ["a dog"], "runs": A_RUN, **entry}
    refused(["batch", "--job", job_file(tmp_path, data), "--outdir", tmp_path / "out"], capsys, match=says,
            watch=[tmp_path])  # fmt: skip


# -- 3. report fields and command-line values: type and range, before any model loads ------------------------------


@pytest.mark.parametrize(
    "config, says",
    [({"steps": "10"}, "steps must be an integer in 1..100000, got '10'"),
     ({"steps": 10**12}, "steps must be an integer in 1..100000"),
     ({"seeds": [-1]}, "seeds must be an integer in 0..4294967295"),
     ({"seeds": [2**70]}, "seeds must be an integer in 0..4294967295"),
     ({"seeds": "0-3"}, "seeds must be a list"),
     ({"augment": 10**9}, "augment must be an integer in 0..128"),
     ({"augment": 1e9}, "augment must be an integer"),
     ({"truncation_psi": 1e308}, r"truncation_psi must be a finite number in \[-5, 5\]"),
     ({"l2_weight": float("nan")}, "l2_weight must be a finite number"),
     ({"lr": "fast"}, "lr must be a finite number"),
     ({"prompts": 5}, "prompts must be a text or a list"),
     ({"templates": "yes"}, "templates must be true or false"),
     ({"precision": ["fp32"]}, "precision must be one of"),
     ({"bogus": 1}, "unknown optimisation settings: bogus")],
)  # fmt: skip
def test_report_fields_are_type_and_range_checked(tmp_path, capsys, config, says):
    report = write_report(tmp_path / "report.json", a_report("ffhq", **config))
    line = refused(["edit", "--from-report", report, "--outdir", tmp_path / "out"], capsys, match=says,
                   watch=[tmp_path])  # fmt: skip
    assert str(report) in line


@pytest.mark.parametrize(
    "text, says",
    [("[" * 100_000, "not a styleclip report"), ('{"config": {}}', "no generator name"),
     ('{"config": [], "generator": {"name": "ffhq"}}', "no config"), ("\udcff", "not a styleclip report")],
)  # fmt: skip
def test_malformed_reports_are_one_line(tmp_path, capsys, text, says):
    report = tmp_path / "report.json"
    report.write_text(text, errors="surrogateescape")
    refused(["edit", "--from-report", report, "--outdir", tmp_path / "out"], capsys, match=says, watch=[tmp_path])


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_report_pngs_are_read_without_decoding_their_pixels(tmp_path, capsys):
    # 12,000 x 12,000 pixels declared (432 MB decoded, and PIL's size warning on stderr): only the text is read
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", 12_000, 12_000, 8, 2, 0, 0, 0))
    text = png_chunk(b"tEXt", b"styleclip:report\0" + json.dumps(a_report("ffhq")).encode())
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + header + text + png_chunk(b"IDAT", zlib.compress(bytes(64))) +
                    png_chunk(b"IEND", b""))  # fmt: skip
    refused(["edit", "--from-report", big, "--outdir", a_file_not_a_folder(tmp_path)], capsys, match="is a file",
            watch=[tmp_path])  # fmt: skip
    # a compressed text chunk that inflates beyond PIL's limit
    info = PngInfo()
    info.add_text("styleclip:report", " " * (8 << 20), zip=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "inflates.png", pnginfo=info)
    refused(["edit", "--from-report", tmp_path / "inflates.png", "--outdir", tmp_path / "out"], capsys,
            match="not a styleclip report", watch=[tmp_path])  # fmt: skip
    (tmp_path / "fake.png").write_bytes(b"GIF89a" + bytes(64))
    refused(["edit", "--from-report", tmp_path / "fake.png", "--outdir", tmp_path / "out"], capsys,
            match="not a styleclip report", watch=[tmp_path])  # fmt: skip


@pytest.mark.parametrize(
    "extra, says",
    [(["--trunc", "1e308"], r"truncation_psi must be a finite number in \[-5, 5\]"),
     (["--trunc", "nan"], "truncation_psi must be a finite number"),
     (["--steps", "0"], "steps must be at least 1"),
     (["--steps", "-1"], "steps must be at least 1"),
     (["--steps", "1000000000"], "steps must be an integer in 1..100000"),
     (["--augment", "1000000000"], "augment must be an integer in 0..128"),
     (["--augment", "1e9"], "invalid int value"),
     (["--max-steps", "0"], "--max-steps must be at least 1"),
     (["--time-limit", "inf"], "--time-limit a positive number"),
     (["--seed", "0-99999999"], "more than 1000000 seeds"),
     (["--seed", "0-999"], "1000 edits is more than --max-edits 100"),
     (["--seed", "-1"], r"seeds must be in 0 \.\. 4294967295")],
)  # fmt: skip
def test_command_line_values_are_refused_before_any_model_loads(tmp_path, capsys, extra, says):
    # a generator that does not exist: a check that ran after loading would say so instead
    argv = ["edit", "--generator", tmp_path / "missing.pkl", "--prompt", "a tiger", "--outdir", tmp_path / "out"]
    refused([*argv, *extra], capsys, match=says, watch=[tmp_path])


def test_batch_command_line_values_are_refused_before_any_model_loads(tmp_path, capsys):
    argv = ["batch", "--generator", tmp_path / "missing.pkl", "--prompt", "a", "--outdir", tmp_path / "out"]
    for extra, says in [(["--seeds", "0", "--method", "optimize", "--trunc", "1e308"], "truncation psi"),
                        (["--seeds", "0", "--method", "optimize", "--steps", "0"], "steps must be an integer in 1"),
                        (["--seeds", "0-20000", "--method", "optimize"], "20001 jobs .*more than --max-edits 10000"),
                        (["--seeds", "0-3", "--method", "optimize", "--max-edits", "2"], "--max-edits 2"),
                        (["--seeds", "0", "--method", "optimize", "--trust-paths"], "--trust-paths goes with --job")]:  # fmt: skip
        refused([*argv, *extra], capsys, match=says, watch=[tmp_path])


# -- 4. latent files: checked from their headers, bounded in number ---------------------------------------------------


def npy_header(shape, descr="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def zip_bomb_npz(path):
    """An .npz whose ws.npy member the zip directory says unpacks to 10 GB (the data itself is a few bytes)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ws.npy", npy_header((20_000_000, 8, 16)) + bytes(1024))
        zf.filelist[0].file_size = 10 << 30
    return path


def huge_member_npz(path):
    """An .npz whose ws.npy header declares 10 GB in a member that holds 1 KB."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ws.npy", npy_header((20_000_000, 8, 16)) + bytes(1024))
    return path


def huge_header_npy(path):
    path.write_bytes(npy_header((20_000_000, 8, 16)) + bytes(64))
    return path


def expanded_pt(path):
    """A .pt holding a 16-float storage viewed as [100M, 8, 16]: 51 GB once materialised."""
    torch.save({"latent": torch.zeros(16).expand(100_000_000, 8, 16)}, path)
    return path


def legacy_pt(path):
    torch.save(torch.zeros(1, 8, 16), path, _use_new_zipfile_serialization=False)
    return path


def object_npy(path):
    np.save(path, np.array([{"ws": 1}], dtype=object), allow_pickle=True)
    return path


def empty_npy(path):
    np.save(path, np.zeros((0, 8, 16), np.float32))
    return path


def nan_npy(path):
    ws = np.zeros((2, 8, 16), np.float32)
    ws[1, 3, 5] = np.inf
    np.save(path, ws)
    return path


def many_rows_npy(path):
    np.save(path, np.zeros((200_000, 16), np.float32))  # a W per row: 200,000 edits
    return path


def wrong_shape_npy(path):
    np.save(path, np.zeros((3, 7, 16), np.float32))
    return path


@pytest.mark.parametrize(
    "make, name, says",
    [(zip_bomb_npz, "bomb.npz", "ws array unpacks to 10,240 MiB, more than"),
     (huge_member_npz, "huge.npz", "ws array declares 9,766 MiB but holds"),
     (huge_header_npy, "huge.npy", "header declares 9,766 MiB of latents but the file holds"),
     (expanded_pt, "expanded.pt", "100,000,000 latents take 48,828 MiB, more than"),
     (legacy_pt, "legacy.pt", "save it with np.save or torch.save"),
     (object_npy, "objects.npy", "pickled Python objects"),
     (empty_npy, "empty.npy", r"holds no latents \(shape \[0, 8, 16\]\)"),
     (nan_npy, "nan.npy", "NaN or infinite"),
     (many_rows_npy, "rows.npy", r"200000 edits \(200000 latents in .* x 1 prompts\) is more than --max-edits 100"),
     (wrong_shape_npy, "shape.npy", r"latent must be W \[N, 16\] or W\+ \[N, 8, 16\]")],
)  # fmt: skip
def test_latent_files_are_checked_before_anything_is_allocated(tmp_path, capsys, assets, make, name, says):
    latent = make(tmp_path / name)
    argv = ["edit", "--generator", assets["generator"], "--clip", assets["clip"], "--device", "cpu",
            "--prompt", "a tiger", "--latent", latent, "--steps", "1", "--no-video", "--outdir", tmp_path / "out"]  # fmt: skip
    line = refused(argv, capsys, match=says, watch=[tmp_path])
    assert str(latent) in line


def test_a_batch_of_too_many_latent_rows_is_refused_before_reading_them(tmp_path, capsys, assets):
    latent = many_rows_npy(tmp_path / "rows.npy")
    argv = ["batch", "--generator", assets["generator"], "--clip", assets["clip"], "--device", "cpu",
            "--latents", latent, "--prompt", "a", "--method", "optimize", "--outdir", tmp_path / "out"]  # fmt: skip
    refused(argv, capsys, match=r"200000 jobs \(200000 sources x 1 prompts x 1 runs\) is more than --max-edits 10000",
            watch=[tmp_path])  # fmt: skip
    refused([*argv[:-2], "--outdir", tmp_path / "out2", "--latents", zip_bomb_npz(tmp_path / "bomb.npz")], capsys,
            match="unpacks to 10,240 MiB", watch=[tmp_path])  # fmt: skip


def test_generate_refuses_a_truncation_that_would_draw_black_pictures(tmp_path, capsys, assets):
    out = tmp_path / "out"
    argv = ["generate", "--generator", assets["generator"], "--seeds", "0", "--trunc", "1e308", "--outdir", out,
            "--device", "cpu"]  # fmt: skip
    refused(argv, capsys, match=r"truncation psi must be a finite number in \[-5, 5\]", watch=[tmp_path],
            may_write=[out])  # fmt: skip
    assert not list(out.glob("*.png"))


def test_an_npz_is_read_from_the_member_that_was_checked(tmp_path):
    """np.load(...)["ws"] prefers a member named bare 'ws' over the 'ws.npy' the checks read."""
    import io
    import zipfile

    from styleclip.latents import load_latent

    G = tiny_generator()
    good = np.zeros((1, G.num_ws, G.w_dim), np.float32)
    path = tmp_path / "two.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for name, array in (("ws.npy", good), ("ws", np.ones((1, G.num_ws, G.w_dim), np.float32))):
            buf = io.BytesIO()
            np.save(buf, array)
            zf.writestr(name, buf.getvalue())
    assert torch.equal(load_latent(path, G), torch.from_numpy(good))


def test_a_folder_never_hides_a_catalogue_name(tmp_path, monkeypatch):
    """An earlier --outdir ffhq or mohawk beside the job file does not turn the names into paths."""
    from styleclip.references import is_catalogue_name

    (tmp_path / "ffhq").mkdir()
    (tmp_path / "mohawk").mkdir()
    monkeypatch.chdir(tmp_path)
    assert is_catalogue_name("ffhq", "generator", tmp_path) and is_catalogue_name("ffhq", "generator")
    assert is_catalogue_name("mohawk", "mapper", tmp_path)
    (tmp_path / "afhqdog").write_bytes(b"a file of that name")
    assert not is_catalogue_name("afhqdog", "generator", tmp_path)  # a file still wins, as the loaders let it


def test_a_trusted_job_file_path_under_home_is_expanded(tmp_path, monkeypatch):
    from styleclip.jobs.spec import read_job_file

    home = tmp_path / "home"
    home.mkdir()
    np.save(home / "lat.npy", np.zeros((2, 8, 16), np.float32))
    monkeypatch.setenv("HOME", str(home))
    job = tmp_path / "job.yaml"
    job.write_text("generator: ffhq\nlatents: ~/lat.npy\nprompts: [a face]\nruns: [{method: optimize}]\n")
    spec = read_job_file(job, trust_paths=True)
    assert spec.latents == str(home / "lat.npy")


def test_a_report_repeated_on_a_photo_neither_opens_nor_announces_its_own_latent(tmp_path, capsys):
    from styleclip.reports import config_from_report

    report = write_report(tmp_path / "r.json", a_report("stylegan2-ada:afhqdog", latent="/srv/inverted/latent.npy"))
    refused_by(lambda: config_from_report(report), match="latent.*--trust-report")
    config, _ = config_from_report(report, photo_given=True)
    assert config.latent is None
