"""How far styleclip is from the official code, in fp32 and in bf16: one row per comparison the tests make.

The references are those the tests use: outputs of NVIDIA's stylegan2-ada-pytorch and stylegan3 networks
(``tests/data/reference_*.npz``, CPU fp32, deterministic weights), the ``lpips`` package, StyleCLIP's mapper
arithmetic and its ``GetDt`` text direction (written in the tests from the published code). Each row gives the
largest absolute difference and, for pictures, the largest difference in 8-bit PNG levels.

    python benchmarks/fidelity.py [--precision fp32 bf16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

TESTS = Path(__file__).parents[1] / "tests"
sys.path.insert(0, str(TESTS))

from report import RESULTS, write_report  # noqa: E402
from styleclip.utils.precision import computing_in  # noqa: E402


def png(img: torch.Tensor | np.ndarray) -> np.ndarray:
    x = torch.as_tensor(img).float()
    return (x * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy().astype(int)


def _reference(G, tag: str):
    """``G`` with the tests' deterministic weights, and the official network's outputs for them."""
    from reference_weights import fill

    G = G.eval().requires_grad_(False)
    state = dict(G.named_parameters())
    state.update(G.named_buffers())
    fill(state, seed=0)
    return G, dict(np.load(TESTS / "data" / f"reference_{tag}.npz"))


def stylegan2_rows(precision: str) -> list[dict]:
    from styleclip.hub.formats.nvidia_pkl import config_from_init_kwargs
    from styleclip.nets.stylegan2 import Generator

    from reference_weights import REFERENCE_CONFIGS, image_slices

    rows = []
    for tag, kwargs in REFERENCE_CONFIGS.items():
        G, ref = _reference(Generator(config_from_init_kwargs((), dict(kwargs))), tag)
        with torch.no_grad(), computing_in(precision):
            img = G.synthesize(torch.from_numpy(ref["ws"]), noise_mode="const").float().numpy()
        if "img" in ref:
            got, expected = img, ref["img"]
        else:  # the large configurations keep fingerprints of the picture: corners, a strided grid
            ours = image_slices(img)
            keys = [k for k in ours if not k.endswith(("mean", "std"))]
            got = np.concatenate([ours[k].ravel() for k in keys])
            expected = np.concatenate([ref["w_img_slices/" + k].ravel() for k in keys])
        rows.append(_row(f"StyleGAN2 {tag} synthesis vs NVIDIA", precision, got, expected))
    return rows


def stylegan3_rows(precision: str) -> list[dict]:
    from styleclip.hub.formats.stylegan3_pkl import config3_from_init_kwargs
    from styleclip.nets.stylegan3 import Generator3

    from reference_weights import REFERENCE_CONFIGS_SG3

    rows = []
    for tag, kwargs in REFERENCE_CONFIGS_SG3.items():
        G, ref = _reference(Generator3(config3_from_init_kwargs((), dict(kwargs))), tag)
        with torch.no_grad(), computing_in(precision):
            img = G.synthesize(torch.from_numpy(ref["ws"])).float()
        rows.append(_row(f"StyleGAN3 {tag} synthesis vs NVIDIA", precision, img.numpy(), ref["img"]))
    return rows


def lpips_rows(precision: str) -> list[dict]:
    import tempfile
    import warnings

    import lpips as official

    from styleclip.guidance.perceptual import load_lpips
    from test_perceptual import _write_official

    rows = []
    for net in ("alex", "vgg"):
        with tempfile.TemporaryDirectory() as tmp:
            lin, backbone = _write_official(Path(tmp), net, seed=1)
            ours = load_lpips(net, lin=lin, backbone=backbone, max_size=None)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = official.LPIPS(net=net, pnet_rand=True, model_path=str(lin), verbose=False)
            feats = torch.load(backbone, weights_only=True)
        for name, p in ref.net.named_parameters():
            p.data.copy_(feats["features." + name.split(".", 1)[1]])
        a, b = torch.rand(2, 2, 3, 48, 48, generator=torch.Generator().manual_seed(0)) * 2 - 1
        with torch.no_grad():
            expected = ref(a, b).flatten()
            with computing_in(precision):
                got = ours(a, b).float()
        rows.append(_row(f"LPIPS-{net} vs the lpips package", precision, got.numpy(), expected.numpy(), False))
    return rows


def mapper_rows(precision: str) -> list[dict]:
    from styleclip.hub.mappers import load_mapper
    from test_mapper import reference_edit

    from conftest import tiny_generator
    from mapper_writers import random_mapper_weights, write_official_mapper

    G = tiny_generator(resolution=64)
    weights = random_mapper_weights(G.w_dim)
    path = RESULTS / "fidelity-mapper.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_official_mapper(G, weights, path)
    mapper = load_mapper(path, device="cpu")
    ws = G.mapping_forward(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(0)), truncation_psi=0.7)
    with torch.no_grad(), computing_in(precision):
        got = mapper.edit(ws).float()
    path.unlink()
    expected = reference_edit(weights, ws)
    return [_row("StyleCLIP mapper edit vs its arithmetic", precision, got.numpy(), expected.numpy(), picture=False)]


def _row(what: str, precision: str, got: np.ndarray, expected: np.ndarray, picture: bool = True) -> dict:
    row = {"comparison": what, "precision": precision, "max_abs": float(np.abs(got - expected).max())}
    if picture:
        row["max_png_levels"] = int(np.abs(png(got) - png(expected)).max())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    rows = []
    for precision in args.precision:
        for make in (stylegan2_rows, stylegan3_rows, lpips_rows, mapper_rows):
            rows += make(precision)
    print(f"{'comparison':48} {'precision':9} {'max |diff|':>11} {'PNG levels':>10}")
    for r in rows:
        levels = r.get("max_png_levels", "")
        print(f"{r['comparison']:48} {r['precision']:9} {r['max_abs']:11.2e} {levels!s:>10}")
    write_report("fidelity", torch.device("cpu"), rows, RESULTS / "fidelity.json", precisions=args.precision)


if __name__ == "__main__":
    main()
