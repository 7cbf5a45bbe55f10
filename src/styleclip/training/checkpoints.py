"""Training checkpoints of the mapper: its weights, config and generator fingerprint (styleclip's mapper file)
plus the optimiser's state, in one ``.safetensors`` file; ``mapper.safetensors`` beside them holds the newest
weights alone."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch

from ..errors import CheckpointError, UsageError
from ..hub.formats.state import load_exact
from ..hub.mappers import OPTIMIZER_PREFIX, save_mapper

_STEP_FILE = re.compile(r"step-(\d+)\.safetensors")


def step_files(folder: Path) -> list[Path]:
    """``folder``'s ``step-N.safetensors`` files (links left out: never read through), by ``N`` from old to new."""
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return []
    found = []
    for p in folder.iterdir():
        m = _STEP_FILE.fullmatch(p.name)
        if m and not p.is_symlink() and p.is_file():
            found.append((int(m.group(1)), p.name, p))
    return [p for _, _, p in sorted(found)]


def refuse_linked_folders(outdir: Path) -> None:
    """A resumed run writes into ``val/`` and ``tensorboard/``: refuse, in one line, either of them being a link."""
    for folder in (Path(outdir) / "val", Path(outdir) / "tensorboard"):
        if folder.is_symlink():
            raise UsageError(f"{folder} is a link, and styleclip writes no output through a link: make it a folder")


def clear_run(outdir: Path) -> None:
    """Remove an earlier run's checkpoints, validation pictures, logs and TensorBoard curves from ``outdir``
    (``--overwrite``): its
    later steps would otherwise pass for the new run's newest checkpoint and be resumed or kept instead."""
    outdir = Path(outdir)
    for path in [*step_files(outdir / "checkpoints"), outdir / "log.jsonl", outdir / "mapper.safetensors"]:
        path.unlink(missing_ok=True)
    val = outdir / "val"
    if val.is_dir() and not val.is_symlink():
        for path in val.glob("*.png"):
            path.unlink(missing_ok=True)
    elif val.is_symlink():
        val.unlink()
    board = outdir / "tensorboard"  # the earlier run's curves would mix with the new run's
    if board.is_symlink():
        board.unlink()
    elif board.is_dir():
        shutil.rmtree(board)


class Checkpoints:
    """``outdir/checkpoints/step-NNNNNN.safetensors`` (the newest ``keep`` of them) and ``outdir/mapper.safetensors``."""

    def __init__(self, outdir: Path, cfg, meta: dict, resume_keys: tuple[str, ...] = ()) -> None:
        """``cfg``: the training config (``to_dict()``); ``resume_keys``: its settings a resumed run must share."""
        self.dir = outdir / "checkpoints"
        self.final_path = outdir / "mapper.safetensors"
        self.cfg = cfg
        self.resume_keys = resume_keys
        self.meta = dict(meta)  # prompt, generator (with its fingerprint), training settings

    def save(self, mapper, optimizer: torch.optim.Optimizer, step: int, ctx) -> None:
        if not ctx.is_main:
            return
        if self.dir.is_symlink():  # checkpoints land in the run's folder, never through a link to elsewhere
            raise UsageError(f"{self.dir} is a symbolic link; remove it so that checkpoints stay in the run's folder")
        tensors, rest = flatten_optimizer(optimizer.state_dict())
        meta = {**self.meta, "steps": step}
        extra = {"optimizer": json.dumps(rest), "step": str(step)}
        save_mapper(
            mapper, self.dir / f"step-{step:06d}.safetensors", meta, extra_tensors=tensors, extra_metadata=extra
        )
        save_mapper(mapper, self.final_path, meta)
        for old in self.all()[: -self.cfg.keep_checkpoints]:
            old.unlink(missing_ok=True)

    def all(self) -> list[Path]:
        """The checkpoints, oldest first by step number (names sort wrongly past the padding: step-1000000)."""
        return step_files(self.dir)

    def restore(self, mapper, optimizer: torch.optim.Optimizer) -> int:
        """Load the newest checkpoint into ``mapper`` and ``optimizer``; returns its step."""
        found = self.all()
        if not found:
            raise UsageError(f"nothing to resume in {self.dir}: run without --resume to start")
        path = found[-1]
        meta, rest, step, tensors = read_checkpoint(path, ("generator", "training"))
        if meta["generator"]["fingerprint"] != self.meta["generator"]["fingerprint"]:
            raise UsageError(f"{path} was trained with another generator; resume with the same --generator")
        was = meta["training"]
        now = self.cfg.to_dict()
        changed = [k for k in self.resume_keys if was.get(k) != now.get(k)]
        if changed:
            diffs = ", ".join(f"{k} {was.get(k)!r} -> {now.get(k)!r}" for k in changed)
            raise UsageError(f"cannot resume {path} with other settings ({diffs}); use a new --outdir")
        load_exact(mapper, {k: v for k, v in tensors.items() if not k.startswith(OPTIMIZER_PREFIX)}, str(path))
        optimizer.load_state_dict(unflatten_optimizer(tensors, rest))
        return step


def read_checkpoint(path: Path, keys: tuple[str, ...]) -> tuple[dict, dict, int, dict[str, torch.Tensor]]:
    """``(meta, optimizer settings, step, tensors)`` of a training checkpoint whose ``meta`` must hold ``keys``; a
    damaged one (a disk that filled, a file cut short) is one line naming the way on."""
    from ..hub.formats.safetensors_check import read_safetensors

    fix = "delete it to use the one before"
    metadata, tensors = read_safetensors(path, "checkpoint", fix)
    try:
        meta, rest, step = json.loads(metadata["meta"]), json.loads(metadata["optimizer"]), int(metadata["step"])
        for key in keys:
            meta[key]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}); {fix}") from None
    return meta, rest, step, tensors


def flatten_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimiser's ``state_dict()`` as ``(tensors named 'optimizer.INDEX.KEY', the rest as plain JSON)``: what a
    ``.safetensors`` checkpoint can hold (:func:`unflatten_optimizer` turns it back)."""
    tensors, scalars = {}, {}
    for index, entries in state_dict["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{OPTIMIZER_PREFIX}{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    """The optimiser ``state_dict()`` that :func:`flatten_optimizer` took apart."""
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith(OPTIMIZER_PREFIX):
            index, key = name[len(OPTIMIZER_PREFIX) :].split(".", 1)
            state.setdefault(int(index), {})[key] = value
    for name, value in rest["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": rest["param_groups"]}
