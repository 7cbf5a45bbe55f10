"""Web UI latency: from a slider change to the new image, against one synthesis pass of the generator.

What the server does when α or β moves is the handler behind the sliders (``Handlers.direction``): the direction
and the source's styles are cached, so it should cost one ``synthesis_from_styles`` pass plus the image's
conversion; Gradio then encodes the PNG it sends (timed here too). Random weights in the official architectures
(as ``bench_generator.py``), open_clip ViT-B-32 with random weights, a random relevance matrix.

With ``--served`` it also goes through the UI's real request path: ``styleclip ui`` started as its own process on
127.0.0.1 with the same random-weight models written to a temporary folder (the generator file, CLIP as an OpenAI
state dict, the relevance matrix), driven by ``gradio_client`` as the page drives it: a seed, then slider moves
(the round trip from the request to the new image on this side, PNG and download included), then optimisations
whose per-step time is the interval between the streamed ``step k of n`` updates. Beside them, in this process and
the same number of threads: the slider's handler and ``styleclip.optimize`` with the page's settings, each UI
optimisation alternating with an API one.

    python benchmarks/bench_ui.py [--res 256 512] [--device cpu|cuda|mps] [--precision auto|fp32|bf16|fp16]
    python benchmarks/bench_ui.py --res 512 --served --precision fp32 --steps 6
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def served(res: int, repeats: int, precision: str, steps: int) -> dict:
    """The page's slider move and an optimisation's per-step time through a running ``styleclip ui``, beside the
    handler and ``styleclip.optimize`` in this process."""
    import open_clip
    from gradio_client import Client

    import styleclip
    from styleclip.hub.generators import save_generator

    work = Path(tempfile.mkdtemp(prefix="bench-ui-served-"))
    G = build(res, torch.device("cpu"))
    gen = save_generator(G, work / f"random-{res}.safetensors")
    model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    clip_file = work / "clip-openai-state.pt"
    torch.save(model.state_dict(), clip_file)  # loads the way OpenAI's ViT-B/32 file does
    guide = ClipGuide(model, open_clip.get_tokenizer("ViT-B-32"), "ViT-B-32")
    layout = StyleLayout.of(G, 128)
    rows = torch.nn.functional.normalize(
        torch.randn(layout.size, 512, generator=torch.Generator().manual_seed(0)), dim=1
    )
    matrix = RelevanceMatrix(rows, layout, {"clip": str(clip_file)}).save(work / "relevance.npz")  # the server's name
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "styleclip", "ui", "--generator", str(gen), "--clip", str(clip_file),
           "--relevance", str(matrix), "--device", "cpu", "--samples", "2000", "--cache", str(work / "cache"),
           "--offline", "--precision", precision, "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "TMPDIR": str(work), "PYTHONUNBUFFERED": "1"}
    log_path = work / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.time() + 600
        while "running on" not in log_path.read_text().lower():
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"styleclip ui did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        client.predict(0, 0.7, None, api_name="/seed")
        target, neutral = "a happy dog", "a dog"
        alphas = itertools.cycle([2.0, -3.0, 4.5, -1.5, 3.0])

        def slider():
            client.predict(target, neutral, next(alphas), 0.05, False, api_name="/direction")

        slider()  # the direction, once (text encoding, thresholding)
        ui_slider = []
        for _ in range(repeats):
            t = time.perf_counter()
            slider()
            ui_slider.append(time.perf_counter() - t)

        prompt = "a really happy dog face with mouth open"

        def ui_optimise() -> list[float]:
            stamps = {}
            job = client.submit(prompt, steps, 0.008, 0, "w+", "all", "global", "", api_name="/run")
            for update in job:
                found = re.match(r"step (\d+) of", str(update[1]))
                if found:
                    stamps[int(found[1])] = time.perf_counter()
            job.result()
            # from step 2 on, as the API's figure: the first step also builds the run
            return [stamps[k] - stamps[k - 1] for k in sorted(stamps) if k >= 2 and k - 1 in stamps]

        def api_optimise() -> list[float]:
            stamps = []
            styleclip.optimize(
                G, [prompt], guide, seeds=[0], truncation_psi=0.7, steps=steps, l2_weight=0.008, progress=False,
                precision=precision, callback=lambda step, info: stamps.append(time.perf_counter()),
            )  # fmt: skip
            return [b - a for a, b in itertools.pairwise(stamps)]  # steps 2 to n

        ui_optimise(), api_optimise()  # warm-up
        ui_steps, api_steps = [], []
        for _ in range(repeats):
            ui_steps += ui_optimise()
            api_steps += api_optimise()
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the command closes the app and removes its session folders
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    handler = run(res, torch.device("cpu"), repeats, precision)
    row = {
        "resolution": res,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "ui_slider_s": statistics.median(ui_slider),
        "api_slider_handler_s": handler["slider_handler_s"],
        "api_slider_handler_png_s": handler["slider_handler_png_s"],
        "ui_step_s": statistics.median(ui_steps),
        "api_step_s": statistics.median(api_steps),
        "steps_per_run": steps,
    }
    row["ui_over_api_step"] = row["ui_step_s"] / row["api_step_s"]
    print(
        f"{res:5d}px {precision} served: slider {row['ui_slider_s'] * 1000:7.1f} ms (handler in-process "
        f"{row['api_slider_handler_s'] * 1000:7.1f} ms, + PNG {row['api_slider_handler_png_s'] * 1000:7.1f} ms); "
        f"optimisation step {row['ui_step_s']:.3f} s through the UI, {row['api_step_s']:.3f} s through the API "
        f"(ratio {row['ui_over_api_step']:.2f})",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--served", action="store_true", help="also through a running styleclip ui (CPU)")
    parser.add_argument("--steps", type=int, default=6, help="steps per optimisation run (--served)")
    args = parser.parse_args()
    if args.served:
        from styleclip.utils.memory import keep_freed_memory

        keep_freed_memory()  # as the CLI does in the server
        rows = [served(res, args.repeats, args.precision, args.steps) for res in args.res]
        write_report("ui-served", torch.device("cpu"), rows, RESULTS / f"ui-served-{args.precision}.json",
                     repeats=args.repeats, steps=args.steps)  # fmt: skip
        return
    device = resolve_device(args.device)
    torch.set_grad_enabled(False)
    rows = [run(res, device, args.repeats, args.precision) for res in args.res]
    name = f"ui-{device.type}-{rows[0]['precision']}.json"
    write_report("ui", device, rows, RESULTS / name, repeats=args.repeats, precision=args.precision)


if __name__ == "__main__":
    main()
