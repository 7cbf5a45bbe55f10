"""Video editing speed: seconds per frame of each stage of ``styleclip video`` (detect, align, invert, edit, stitch).

A synthetic clip (scikit-image's astronaut panned and zoomed in a 640 x 480 frame, as the tests make it) is edited
with random weights at the published sizes: the generator as in ``bench_generator.py``, an IR-SE50 e4e encoder, a
StyleCLIP mapper. The per-frame cost of each stage is the stage's time over the frames; a 10-second 25-fps clip
(250 frames) is extrapolated from them (the issue's GPU target: under a minute at 1024 px without PTI).

    python benchmarks/bench_video.py [--res 256 1024] [--frames 8] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench_generator import build
from report import RESULTS, peak_memory_mb, write_report
from styleclip.edits.mapper import MapperEdit
from styleclip.inversion.encoders import Encoder
from styleclip.nets.encoders import IRSEEncoder
from styleclip.nets.mapper import LatentMapper, MapperConfig
from styleclip.utils.devices import resolve_device
from styleclip.video import edit_video

CLIP_FRAMES = 250  # 10 s at 25 fps


def synthetic_clip(path: Path, frames: int, size=(640, 480)) -> Path:
    """The astronaut's portrait panned and zoomed over ``frames`` frames (no sound)."""
    import imageio_ffmpeg
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    writer = imageio_ffmpeg.write_frames(str(path), size, fps=25, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=2, ffmpeg_log_level="error")  # fmt: skip
    writer.send(None)
    for t in range(frames):
        scale = 0.8 + 0.005 * t
        im = photo.resize((round(512 * scale), round(512 * scale)), Image.Resampling.BICUBIC)
        canvas = Image.new("RGB", size, (40, 40, 40))
        canvas.paste(im, (60 + 3 * t, -20 + t))
        writer.send(np.ascontiguousarray(np.asarray(canvas)))
    writer.close()
    return path


def run(res: int, frames: int, device: torch.device) -> dict:
    G = build(res, device)
    G.meta["domain"] = "face"
    avg = G.w_avg[None].expand(G.num_ws, -1).clone()
    encoder = Encoder("e4e", IRSEEncoder(G.num_ws).eval().requires_grad_(False).to(device), avg, None)
    torch.manual_seed(0)
    mapper = LatentMapper(MapperConfig(w_dim=G.w_dim, num_ws=G.num_ws)).to(device).eval()
    with tempfile.TemporaryDirectory() as tmp:
        clip = synthetic_clip(Path(tmp) / "clip.mp4", frames)
        t0 = time.perf_counter()
        result = edit_video(clip, G, MapperEdit(mapper, 0.1), Path(tmp) / "out", method="e4e", encoder=encoder,
                            progress=False)  # fmt: skip
        total = time.perf_counter() - t0
        report = json.loads(result.report.read_text())
    per_frame = {k: v / frames for k, v in report["seconds"].items() if k != "total"}
    peak, kind = peak_memory_mb(device)
    row = {
        "resolution": res,
        "frames": frames,
        "seconds_per_frame": per_frame,
        "total_s": total,
        "clip_250_frames_min": sum(per_frame.values()) * CLIP_FRAMES / 60,
        "peak_mem_mb": peak,
        "peak_mem_kind": kind,
    }
    stages = "  ".join(f"{k} {v:.3f}" for k, v in per_frame.items())
    print(f"{res:5d}px  s/frame: {stages}  -> 250 frames {row['clip_250_frames_min']:.1f} min  peak {peak:.0f} MB",
          flush=True)  # fmt: skip
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--device", default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    rows = [run(res, args.frames, device) for res in args.res]
    path = args.json or RESULTS / f"bench_video-{device.type}.json"
    write_report("bench_video", device, rows, path, frames=args.frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
