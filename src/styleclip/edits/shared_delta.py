"""One latent change for many pictures: StyleCLIP's optimisation edit, fitted once for a whole clip.

Latent optimisation of each frame alone finds a different change per frame, and the edit flickers. Here one shared
change Δ (in W+, or in StyleSpace S) is optimised over a few key frames at once,

    minimise  mean_k D_CLIP(G(w_k + Δ), t) + λ_L2 · ‖Δ‖² + λ_ID · mean_k (1 − cos(ArcFace(G(w_k + Δ)), ArcFace(G(w_k))))

(the loss terms of :mod:`styleclip.edits.optimize`, StyleCLIP's learning-rate schedule), and then the same Δ is
added to every frame's codes, as a global direction would be.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from ..errors import UsageError
from ..guidance.clip import ClipGuide
from ..guidance.identity import IdentityLoss
from ..guidance.losses import ClipLoss, LatentL2Loss, StyleL2Loss
from ..latents import Codes
from ..nets.stylegan2 import Generator
from ..utils.schedules import learning_rate
from .optimize import FACE_ID_WEIGHT

SHARED_SPACES = ("w+", "s")
MAX_KEY_FRAMES = 64


def check_settings(prompt, space, steps, key_frames, lr, l2_weight, id_weight) -> None:
    """One line naming the flag for any setting a :class:`SharedDeltaEdit` cannot use."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise UsageError("empty prompt: describe what the video should show, e.g. --prompt 'a smiling face'")
    if space not in SHARED_SPACES:
        raise UsageError(f"a shared edit moves W+ or S (--space w+ or s), got {space!r}")
    if not (isinstance(steps, int) and not isinstance(steps, bool) and 1 <= steps <= 100_000):
        raise UsageError(f"--steps must be 1 to 100000, got {steps!r}")
    if not (isinstance(key_frames, int) and not isinstance(key_frames, bool) and 1 <= key_frames <= MAX_KEY_FRAMES):
        raise UsageError(f"--key-frames must be 1 to {MAX_KEY_FRAMES}, got {key_frames!r}")
    for flag, value in (("--lr", lr), ("--l2", l2_weight), ("--id-weight", id_weight)):
        if value is not None and not (isinstance(value, (int, float)) and 0 <= value < float("inf")):
            raise UsageError(f"{flag} must be a finite number >= 0, got {value!r}")


@dataclass
class SharedDeltaEdit:
    """A text prompt made into one change ``delta`` shared by every picture it edits.

    ``delta``: W+ ``[1, num_ws, w_dim]`` (``space="w+"``) or ``{layer: [1, channels]}`` (``space="s"``); None until
    :meth:`fit` (or :meth:`load`) sets it. ``id_weight`` None: 0.005 for face generators, else 0. ``identity``: a
    loaded ArcFace loss (else loaded when the weight is above 0).
    """

    prompt: str
    guide: ClipGuide
    space: str = "w+"
    steps: int = 100
    lr: float = 0.1
    l2_weight: float = 0.008
    id_weight: float | None = None
    key_frames: int = 4
    identity: IdentityLoss | None = field(default=None, repr=False)
    delta: torch.Tensor | dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_settings(self.prompt, self.space, self.steps, self.key_frames, self.lr, self.l2_weight, self.id_weight)

    def describe(self) -> dict[str, Any]:
        return {
            "method": "shared-delta",
            "prompt": self.prompt,
            "space": self.space,
            "steps": self.steps,
            "lr": self.lr,
            "l2_weight": self.l2_weight,
            "id_weight": self.id_weight,
            "key_frames": self.key_frames,
            "clip": self.guide.name,
        }

    # -- the change --------------------------------------------------------------------------------------------

    def apply(self, G: Generator, codes: Codes) -> Codes:
        """Every picture of ``codes`` plus the same ``delta`` (W+: ``ws + Δ``; S: ``styles + Δ``)."""
        if self.delta is None:
            raise UsageError("this shared edit has no change yet: fit it on key frames first")
        if self.space == "s":
            styles = codes.style_codes(G)
            return Codes(codes.ws, {k: v + self.delta[k].to(v) if k in self.delta else v for k, v in styles.items()})
        if codes.styles is not None:
            raise UsageError("a W+ edit needs codes without a StyleSpace edit: use --space s")
        return Codes(codes.ws + self.delta.to(codes.ws))

    def arrays(self) -> dict[str, Any]:
        """``delta`` as float32 arrays for an ``.npz`` file (``"ws"`` or ``"styles/<layer>"``)."""
        if self.space == "s":
            return {f"styles/{k}": v.detach().cpu().float().numpy() for k, v in self.delta.items()}
        return {"ws": self.delta.detach().cpu().float().numpy()}

    def load(self, arrays, G: Generator) -> SharedDeltaEdit:
        """Set ``delta`` from :meth:`arrays`' output, checked against ``G``."""
        if self.space == "s":
            widths = {layer.name: layer.channels for layer in G.style_layers}
            delta = {k[len("styles/") :]: torch.as_tensor(arrays[k]) for k in arrays if k.startswith("styles/")}
            if set(delta) != set(widths) or any(v.shape != (1, widths[k]) for k, v in delta.items()):
                raise UsageError("the saved shared change does not fit this generator: rerun with --overwrite")
            self.delta = {k: v.to(G.device, torch.float32) for k, v in delta.items()}
        else:
            ws = torch.as_tensor(arrays["ws"]) if "ws" in arrays else None
            if ws is None or tuple(ws.shape) != (1, G.num_ws, G.w_dim):
                raise UsageError("the saved shared change does not fit this generator: rerun with --overwrite")
            self.delta = ws.to(G.device, torch.float32)
        return self

    # -- finding it --------------------------------------------------------------------------------------------

    def fit(
        self,
        G: Generator,
        ws: torch.Tensor,
        *,
        progress: bool = True,
        callback: Callable[[int, int], None] | None = None,
    ) -> SharedDeltaEdit:
        """Optimise ``delta`` over the key frames' W+ codes ``ws: [K, num_ws, w_dim]`` (G frozen).

        ``callback(step, steps)`` after every step; raising ``KeyboardInterrupt`` there stops (``delta`` unset).
        """
        device = G.device
        ws = G.broadcast(ws.to(device, torch.float32)).detach()
        id_weight = self.id_weight
        if id_weight is None:
            id_weight = FACE_ID_WEIGHT if G.meta.get("domain") == "face" else 0.0
        identity = None
        if id_weight > 0:
            from ..guidance.identity import load_identity_loss

            identity = (self.identity if self.identity is not None else load_identity_loss()).to(device)
        clip_loss = ClipLoss(self.guide.logit_scale)
        target = self.guide.encode_text([self.prompt]).to(device)  # [1, D]
        with torch.no_grad():
            source_styles = G.styles(ws) if self.space == "s" else None
            source = G.synthesis_from_styles(source_styles) if source_styles is not None else G.synthesize(ws)
            source_id = identity.embed(source) if identity is not None else None
        if self.space == "s":
            params = {k: torch.zeros_like(v[:1]).requires_grad_(True) for k, v in source_styles.items()}
            variables = list(params.values())
        else:
            delta = torch.zeros_like(ws[:1]).requires_grad_(True)
            variables = [delta]
        opt = torch.optim.Adam(variables, lr=self.lr)
        l2_w, l2_s = LatentL2Loss(), StyleL2Loss()
        bar = tqdm(total=self.steps, desc="shared edit", unit="step", disable=not progress or None, leave=False)
        thawed = [p for p in G.parameters() if p.requires_grad]  # only Δ learns: no gradients kept for G's weights
        for p in thawed:
            p.requires_grad_(False)
        try:
            for step in range(self.steps):
                for group in opt.param_groups:
                    group["lr"] = learning_rate(step / self.steps, self.lr)
                if self.space == "s":
                    styles = {k: v + params[k] for k, v in source_styles.items()}
                    img = G.synthesis_from_styles(styles)
                    l2 = l2_s(styles, source_styles)[0]  # the same Δ for every frame: one frame's term is ‖Δ‖²
                else:
                    moved = ws + delta
                    img = G.synthesize(moved)
                    l2 = l2_w(moved, ws)[0]
                # the frames' mean, so that λ_L2 and λ_ID weigh as they do for one picture in `optimize`
                loss = clip_loss(self.guide.encode_image(img), target).mean() + self.l2_weight * l2
                if identity is not None:
                    loss = loss + id_weight * identity(img, source_emb=source_id).mean()
                if not torch.isfinite(loss):
                    raise UsageError(f"the shared edit's loss became NaN at step {step}: lower --lr (now {self.lr})")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                bar.update(1)
                if callback is not None:
                    callback(step + 1, self.steps)
        finally:
            bar.close()
            for p in thawed:
                p.requires_grad_(True)
        if self.space == "s":
            self.delta = {k: v.detach() for k, v in params.items()}
        else:
            self.delta = delta.detach()
        return self
