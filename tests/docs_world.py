"""A tiny copy of the world the docs' commands run in: every catalogue name they use answers with a tiny random
network written in the official file format, CLIP is the tests' tiny CLIP, LPIPS the tests' random one, and the
photos, prompt lists and job files the commands name lie in the working folder.

The catalogue entries keep their names, kinds, domains, formats and defaults; only their files are tiny (so their
published hashes are dropped), and the cache is pre-filled so that nothing is downloaded (offline mode is on).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from styleclip.hub import registry
from styleclip.hub.catalog import ASSETS
from styleclip.stylespace import StyleLayout

from checkpoint_writers import stylegan3_repo_pickle_bytes, write_nvidia_pickle, write_rosinality
from conftest import tiny_clip, tiny_generator3, tiny_lpips_model
from hyperstyle_writers import write_hyperstyle, write_w_encoder
from mapper_writers import random_mapper_weights, write_official_mapper
from test_encoders import TINY_IRSE, tiny_generator_w64, write_checkpoint


def _face_generator():
    """FFHQ's stand-in: 64-wide W so that the tiny e4e / ReStyle encoders fit it, trained-like mapping scale."""
    G = tiny_generator_w64(seed=3)
    for name, p in G.mapping.named_parameters():
        if name.endswith("weight"):
            p.data.mul_(30)
    return G


def _writers(G) -> dict[str, Callable[[Path], None]]:
    """File writers by catalogue format; each writes the tiny network where the cache keeps the real one."""
    from styleclip.nets.encoders import IRSEEncoder

    def sg3(path: Path) -> None:
        G3 = tiny_generator3(resolution=32, seed=2)
        path.write_bytes(stylegan3_repo_pickle_bytes(G3))

    def e4e(path: Path) -> None:
        write_checkpoint(path, IRSEEncoder(G.num_ws, 3, True, TINY_IRSE, stem=16), G)

    def restyle(path: Path) -> None:
        net = IRSEEncoder(G.num_ws, 6, False, TINY_IRSE, stem=16)
        write_checkpoint(path, net, G, latent_avg_rows=False, extra={"global_step": 1})

    def arcface(path: Path) -> None:
        from styleclip.nets.arcface import IRSE

        torch.manual_seed(0)
        torch.save(IRSE(50).state_dict(), path)

    def fs3(path: Path) -> None:
        rows = np.random.RandomState(0).randn(StyleLayout.of(G).size, 32).astype(np.float32)  # the tiny CLIP's width
        np.save(path, rows)

    return {
        "stylegan2-ada-pytorch": lambda path: write_nvidia_pickle(G, path),
        "stylegan2-tensorflow": lambda path: write_nvidia_pickle(G, path),
        "stylegan3-pytorch": sg3,
        "rosinality": lambda path: write_rosinality(G, path),
        "e4e": e4e,
        "restyle-e4e": restyle,
        "hyperstyle": lambda path: write_hyperstyle(G, path),
        "w-encoder": lambda path: write_w_encoder(G, path),
        "arcface-ir-se50": arcface,
        # a 32-px generator has no W+ rows from 64 px up, so no fine mapper (as mohawk and six others lack one)
        "styleclip-mapper": lambda path: write_official_mapper(
            G, random_mapper_weights(G.w_dim, ("coarse", "medium")), path
        ),
        "styleclip-fs3": fs3,
    }


def install(monkeypatch, home: Path) -> None:
    """Point styleclip at ``home`` as its cache, filled lazily with tiny files, and at the tiny CLIP and LPIPS."""
    import open_clip

    from styleclip.guidance import perceptual

    G = _face_generator()
    writers = _writers(G)
    assets = [dataclasses.replace(a, sha256=None, git_blob=None, size=None, urls=()) for a in ASSETS]
    monkeypatch.setattr(registry, "ASSETS", assets)
    monkeypatch.setenv("STYLECLIP_HOME", str(home))
    monkeypatch.setenv("STYLECLIP_OFFLINE", "1")

    real_fetch = registry.fetch

    def fetch(asset, cache=None, offline=None, progress=True):
        path = registry.asset_path(asset, cache)
        if not path.exists() and asset.file_format in writers:
            path.parent.mkdir(parents=True, exist_ok=True)
            writers[asset.file_format](path)
        return real_fetch(asset, cache=cache, offline=offline, progress=progress)

    monkeypatch.setattr(registry, "fetch", fetch)
    import styleclip.cli.models

    monkeypatch.setattr(styleclip.cli.models, "fetch", fetch)

    def create_model(arch, pretrained=None, **kwargs):
        return tiny_clip()

    monkeypatch.setattr(open_clip, "create_model", create_model)

    monkeypatch.setattr(perceptual, "load_lpips", tiny_lpips_model)


def inputs(folder: Path) -> None:
    """The files the docs' commands read: a real face (scikit-image's astronaut) as ``me.jpg`` and in ``photos/``,
    a textured picture standing in for a dog as ``rex.jpg``, a prompt list ``prompts.txt``, and ``clip.mp4``: the
    face panned and zoomed over 12 frames, with a sound track."""
    from skimage import data

    face = Image.fromarray(data.astronaut())
    face.save(folder / "me.jpg", quality=95)
    (folder / "photos").mkdir(exist_ok=True)
    face.save(folder / "photos" / "astronaut.jpg", quality=95)
    rng = np.random.RandomState(4)
    Image.fromarray((rng.rand(96, 80, 3) * 255).astype(np.uint8)).save(folder / "rex.jpg")
    (folder / "prompts.txt").write_text("a smiling face\na face with a beard\n")
    from test_video import synthetic_frames, write_clip

    write_clip(folder / "clip.mp4", synthetic_frames()[:12])
