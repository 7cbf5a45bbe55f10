"""Options several commands share."""

from __future__ import annotations


def add_precision_argument(group, default: str = "auto") -> None:
    """``--precision``: one setting for every network of a command (see :mod:`styleclip.utils.precision`)."""
    group.add_argument(
        "--precision", choices=["auto", "fp32", "bf16", "fp16"], default=default,
        help=f"the networks' arithmetic ({default}; auto = bf16 on CPUs with AMX/AVX512-BF16 and on GPUs, else fp32)",
    )  # fmt: skip


def add_compile_argument(group) -> None:
    """``--compile``: ``torch.compile`` the generator, for long jobs (see :mod:`styleclip.utils.compiling`)."""
    group.add_argument(
        "--compile", action="store_true",
        help="torch.compile the generator: each step faster, the first one slow (a minute or more on a small CPU; "
             "seconds once cached); falls back to eager PyTorch where compiling is unavailable",
    )  # fmt: skip


def add_adapted_argument(group) -> None:
    """``--adapted``: draw the base generator's codes with an adapted one (see :mod:`styleclip.adapted`)."""
    group.add_argument(
        "--adapted", default=None, metavar="NAME|PATH",
        help="draw with this adapted generator (StyleGAN-NADA: nada:pixar, or a run's generator.safetensors); "
             "--generator is its base, which maps seeds and inverts photos (default: the base it records)",
    )  # fmt: skip


def say_adapted(G) -> None:
    """One line on stderr when the adapted generator records another base (or none) than the one given."""
    import sys

    note = G.meta.get("adapted_note") if G is not None else None
    if note:
        print(f"styleclip: warning: {note}", file=sys.stderr)


def add_judge_arguments(p) -> None:
    """``--lpips`` and ``--identity``: the judges of ``eval``, ``batch`` (its summary is an evaluation) and ``benchmark``."""
    p.add_argument("--lpips", default="auto",
                   help="auto (LPIPS-VGG if cached), off, vgg, alex, or a lin-layer file (default auto)")  # fmt: skip
    p.add_argument("--identity", default="auto",
                   help="auto (ArcFace for face generators, if cached), off, a name or a path (default auto)")  # fmt: skip
