"""StyleCLIP mapper checkpoints written in the official layout: ``torch.save({'state_dict', 'opts'})`` with the
mapper under ``mapper.{course,medium,fine}_mapping.mapping.{1..4}.{weight,bias}`` and the generator under
``decoder.*`` (rosinality's names)."""

from __future__ import annotations

from pathlib import Path

import torch

from checkpoint_writers import rosinality_state_dict

OFFICIAL_NAMES = {"coarse": "course_mapping", "medium": "medium_mapping", "fine": "fine_mapping"}


def random_mapper_weights(w_dim: int, groups=("coarse", "medium", "fine"), seed: int = 0) -> dict:
    """``{group: [(weight [w_dim, w_dim], bias [w_dim]) x 4]}`` with StyleCLIP's init scale (randn / 0.01) and
    non-zero biases, so that a bias applied on the wrong axis shows."""
    gen = torch.Generator().manual_seed(seed)
    return {
        g: [(torch.randn(w_dim, w_dim, generator=gen) / 0.01, torch.randn(w_dim, generator=gen) * 30) for _ in range(4)]
        for g in groups
    }


def write_official_mapper(G, weights: dict, path: Path, description: str = "mohawk hairstyle") -> Path:
    sd = {}
    for group, layers in weights.items():
        for i, (w, b) in enumerate(layers, start=1):
            sd[f"mapper.{OFFICIAL_NAMES[group]}.mapping.{i}.weight"] = w.clone()
            sd[f"mapper.{OFFICIAL_NAMES[group]}.mapping.{i}.bias"] = b.clone()
    if G is not None:
        sd.update({f"decoder.{k}": v for k, v in rosinality_state_dict(G).items()})
    opts = {"description": description, "mapper_type": "LevelsMapper", "no_coarse_mapper": "coarse" not in weights,
            "no_medium_mapper": "medium" not in weights, "no_fine_mapper": "fine" not in weights,
            "stylegan_size": G.img_resolution if G is not None else 1024, "batch_size": 2, "learning_rate": 0.5,
            "checkpoint_path": None}  # fmt: skip
    torch.save({"state_dict": sd, "opts": opts}, path)
    return path
