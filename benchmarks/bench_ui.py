"""Web UI latency: from a slider change to the new image, against one synthesis pass of the generator.

What the server does when α or β moves is the handler behind the sliders (``Handlers.direction``): the direction
and the source's styles are cached, so it should cost one ``synthesis_from_styles`` pass plus the image's
conversion; Gradio then encodes the PNG it sends (timed here too). Random weights in the official architectures
(as ``bench_generator.py``), open_clip ViT-B-32 with random weights, a random relevance matrix.

    python benchmarks/bench_ui.py [--res 256 512] [--device cpu|cuda|mps] [--precision auto|fp32|bf16|fp16]
"""

from __future__ import annotations

import argparse
import io
import itertools
import tempfile

import torch
from PIL import Image

from bench_generator import build
from report import RESULTS, best_time, write_report
from styleclip.edits.relevance import RelevanceMatrix
from styleclip.guidance.clip import ClipGuide
from styleclip.stylespace import StyleLayout
from styleclip.ui.app import Handlers
from styleclip.ui.session import EditSession, Studio
from styleclip.utils.devices import resolve_device
from styleclip.utils.precision import computing_in


def run(res: int, device: torch.device, repeats: int, precision: str) -> dict:
    import open_clip

    G = build(res, device)
    guide = ClipGuide(
        open_clip.create_model("ViT-B-32", pretrained=None).to(device), open_clip.get_tokenizer("ViT-B-32"), "ViT-B-32"
    )
    work = tempfile.mkdtemp(prefix="bench-ui-")
    layout = StyleLayout.of(G, 128)
    rows = torch.nn.functional.normalize(
        torch.randn(layout.size, 512, generator=torch.Generator().manual_seed(0)), dim=1
    )
    matrix_path = RelevanceMatrix(rows, layout, {"clip": guide.name}).save(f"{work}/relevance.npz")
    studio = Studio(
        G, guide, f"random-{res}", stats_samples=2000, relevance=matrix_path, cache=work, precision=precision
    )
    h = Handlers(studio, work)
    session = EditSession(studio, work)
    session.from_seed(0)
    h.direction(session, "a happy dog", "a dog", 1.0, 0.05, False)  # the direction, once

    styles = session._source_styles()
    with torch.no_grad(), computing_in(studio.precision):  # the pass the page's precision makes
        synthesis = best_time(lambda: G.synthesis_from_styles(styles), device, repeats)

    alphas = itertools.cycle([2.0, -3.0, 4.5, -1.5, 3.0])

    def slider():
        return h.direction(session, "a happy dog", "a dog", next(alphas), 0.05, False)

    handler = best_time(slider, device, repeats)

    def slider_and_png():
        _, pixels, _, _ = slider()
        Image.fromarray(pixels).save(io.BytesIO(), format="PNG")

    with_png = best_time(slider_and_png, device, repeats)
    channels = session.preview.edit["channels_changed"]
    row = {
        "resolution": res,
        "precision": studio.precision,
        "synthesis_s": synthesis,
        "slider_handler_s": handler,
        "slider_handler_png_s": with_png,
        "ratio_handler": handler / synthesis,
        "ratio_with_png": with_png / synthesis,
        "channels_changed": channels,
    }
    print(
        f"{res:5d}px {studio.precision}  synthesis {synthesis * 1000:8.1f} ms  slider {handler * 1000:8.1f} ms ({handler / synthesis:.2f}x)"
        f"  + PNG {with_png * 1000:8.1f} ms ({with_png / synthesis:.2f}x)  [{channels} channels]",
        flush=True,
    )
    session.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.set_grad_enabled(False)
    rows = [run(res, device, args.repeats, args.precision) for res in args.res]
    name = f"ui-{device.type}-{rows[0]['precision']}.json"
    write_report("ui", device, rows, RESULTS / name, repeats=args.repeats, precision=args.precision)


if __name__ == "__main__":
    main()
