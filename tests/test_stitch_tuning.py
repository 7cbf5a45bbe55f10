"""STIT's stitching tuning on the tests' tiny generator: a copy of the generator tuned so that the edited picture meets
the source crop on the border ring while its face stays the edit's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from styleclip.errors import UsageError
from styleclip.latents import Codes
from styleclip.video.masks import stitch_masks
from styleclip.video.stitch import feather_mask
from styleclip.video.stitch_tuning import square_masks, stitching_tuning, tuning_masks, tuning_settings

from hostile import refused_by
from test_encoders import tiny_generator_w64

SIZE = 32


def err(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor) -> float:
    """STIT's masked MSE (summed over the colour channels, the mask counted once)."""
    return float(((a - b) * m).square().sum() / m.sum())


@pytest.fixture(scope="module")
def scene():
    """A frame whose footage differs from the inversion around the face (a smooth backdrop on the border ring) and
    an edit that changes the whole picture, as an edit of the codes does."""
    G = tiny_generator_w64(seed=3)
    torch.manual_seed(0)
    ws = G.mapping_forward(torch.randn(1, G.z_dim))
    masks = square_masks(SIZE)
    b = torch.from_numpy(masks.border)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, SIZE), torch.linspace(-1, 1, SIZE), indexing="ij")
    backdrop = torch.stack([0.6 * xx, 0.6 * yy, 0.3 * torch.ones_like(xx)])[None]
    with torch.no_grad():
        source = G.synthesize(ws) * (1 - b) + backdrop * b
        codes = Codes(ws + 0.5 * torch.randn_like(ws))
        edited = codes.image(G, noise_mode="const")
    return G, codes, source, edited, masks


def snapshot(G) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in G.state_dict().items()}


def same(G, before: dict[str, torch.Tensor]) -> bool:
    after = G.state_dict()
    return after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())


def test_tuning_pulls_the_border_to_the_source_and_keeps_the_face(scene):
    G, codes, source, edited, masks = scene
    b, c = torch.from_numpy(masks.border), torch.from_numpy(masks.content)
    before, inputs = snapshot(G), (source.clone(), edited.clone(), codes.ws.clone())
    seen, stats = [], {}
    with torch.no_grad():  # as the video pipeline draws its edits
        out = stitching_tuning(G, codes, source, edited, masks.border, masks.content, steps=8,
                               callback=lambda done, total: seen.append((done, total)), stats=stats)  # fmt: skip
    assert out.shape == (1, 3, SIZE, SIZE) and not out.requires_grad and torch.isfinite(out).all()
    untuned = err(edited, source, b)
    assert err(out, source, b) < 0.8 * untuned
    # the face moves far less than the border, and stays much nearer the edit than the source is
    assert err(out, edited, c) < 0.25 * err(source, edited, c)
    assert seen == [(k, 8) for k in range(1, 9)]
    assert stats["steps"] == 8 and not stats["stopped_early"]
    assert stats["border_loss"]["first"] == pytest.approx(untuned, rel=1e-3)
    assert stats["border_loss"]["last"] == pytest.approx(err(out, source, b), rel=1e-4)
    # the caller's generator, codes and pictures are as they were; nothing of it takes gradients
    assert same(G, before) and not any(p.requires_grad for p in G.parameters())
    assert torch.equal(source, inputs[0]) and torch.equal(edited, inputs[1]) and torch.equal(codes.ws, inputs[2])


def test_border_loss_threshold_stops_early(scene):
    G, codes, source, edited, masks = scene
    stats: dict = {}
    first = err(edited, source, torch.from_numpy(masks.border))
    out = stitching_tuning(G, codes, source, edited, masks.border, masks.content, steps=3, threshold=2 * first,
                           stats=stats)  # fmt: skip
    assert stats["steps"] == 0 and stats["stopped_early"]  # checked before the first update: the edit as it was
    assert torch.allclose(out, edited, atol=1e-4)
    stats = {}
    stitching_tuning(G, codes, source, edited, masks.border, masks.content, steps=40, threshold=0.95 * first,
                     stats=stats)  # fmt: skip
    assert stats["stopped_early"] and 0 < stats["steps"] < 40 and stats["border_loss"]["last"] < 0.95 * first


def test_stylespace_codes_and_an_empty_border(scene):
    G, codes, source, edited, masks = scene
    styles = G.styles(codes.ws)
    layer = next(iter(styles))
    styles[layer] = styles[layer] + 0.5
    s_codes = Codes(codes.ws, styles)
    with torch.no_grad():
        s_edit = s_codes.image(G, noise_mode="const")
    before = snapshot(G)
    stats: dict = {}
    out = stitching_tuning(G, s_codes, source, s_edit, masks.border, masks.content, steps=2, stats=stats)
    assert stats["steps"] == 2 and not torch.allclose(out, s_edit) and same(G, before)
    # nothing to stitch: the edit comes back untouched, without a step
    stats = {}
    out = stitching_tuning(G, codes, source, edited, np.zeros((SIZE, SIZE)), masks.content, stats=stats)
    assert torch.equal(out, edited) and stats["steps"] == 0


def test_cancelled_by_the_callback_leaves_the_generator_untouched(scene):
    G, codes, source, edited, masks = scene
    before = snapshot(G)
    calls = []

    def stop(done, total):
        calls.append(done)
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stitching_tuning(G, codes, source, edited, masks.border, masks.content, steps=50, callback=stop)
    assert calls == [1, 2] and same(G, before)


def test_refusals_are_one_line(scene):
    G, codes, source, edited, masks = scene
    b, c = masks.border, masks.content

    def call(**kw):
        args = dict(G=G, codes=codes, source_crop=source, edited_crop=edited, border=b, content=c) | kw
        return lambda: stitching_tuning(**args)

    for steps in (0, -1, 1.5, True, 10_001, "100"):
        refused_by(call(steps=steps), match="--stitch-steps must be a whole number from 1 to 10000", error=UsageError)
    for lr in (0, -1e-3, float("nan"), float("inf"), 2.0):
        refused_by(call(lr=lr), match="learning rate must be above 0", error=UsageError)
    refused_by(call(threshold=-0.1), match="--border-loss-threshold must be a number >= 0", error=UsageError)
    refused_by(call(threshold=float("nan")), match="--border-loss-threshold", error=UsageError)
    refused_by(call(border=b[:16]), match=r"border mask is \[16, 32\], the crop 32 x 32", error=UsageError)
    refused_by(call(content=np.ones((64, 64))), match="content mask", error=UsageError)
    refused_by(call(source_crop=source[:, :, :16]), match=r"source crop must be a \[1, 3, 32, 32\]", error=UsageError)
    refused_by(call(edited_crop=torch.cat([edited, edited])), match="edited crop must be", error=UsageError)
    refused_by(call(source_crop=source * float("nan")), match="NaN", error=UsageError)
    refused_by(call(codes=Codes(codes.ws.repeat(2, 1, 1))), match="batch 1", error=UsageError)
    # the run's record checks the same, before any model would load
    refused_by(lambda: tuning_settings(0), match="--stitch-steps", error=UsageError)
    refused_by(lambda: tuning_settings(threshold=-1), match="--border-loss-threshold", error=UsageError)
    assert tuning_settings(50, threshold=0.005, parser=True) == {
        "steps": 50, "lr": 3e-4, "content_weight": 0.01, "border_loss_threshold": 0.005, "noise_mode": "const",
        "mask": "face-parsing",
    }  # fmt: skip
    assert tuning_settings(threshold=0)["border_loss_threshold"] is None


def test_square_masks_are_the_paste_masks_ramp_and_plateau():
    masks = square_masks(64)
    blend = feather_mask(64)
    assert masks.kind == "feathered square" and np.array_equal(masks.blend, blend)
    assert np.array_equal(masks.border > 0, (blend > 0) & (blend < 1))
    assert np.array_equal(masks.content > 0, blend == 1)
    assert not (masks.border * masks.content).any()  # disjoint
    assert masks.border[0].sum() == 0 and masks.border[:, -1].sum() == 0  # the never-pasted margin is left out
    assert masks.border.sum() > 0 and masks.content.sum() > 0


class DiscParser:
    """A stand-in face parser: a skin disc (class 1) on background (0), or nothing; records what it labelled."""

    def __init__(self, face: bool = True) -> None:
        self.face = face
        self.seen = []

    def labels(self, crop):
        self.seen.append(crop)
        yy, xx = np.mgrid[:512, :512]
        disc = (yy - 256) ** 2 + (xx - 256) ** 2 < 150**2
        return (disc & self.face).astype(np.uint8)


def test_tuning_masks_from_the_parsed_source_or_the_square(scene):
    _, _, source, _, _ = scene
    parser = DiscParser()
    masks = tuning_masks(source, parser=parser)
    ref = stitch_masks(parser.labels(None), SIZE)
    assert parser.seen[0] is source  # the source crop is parsed, never the edit
    assert masks.kind == "face-parsing"
    for name in ("border", "content", "blend"):
        assert np.array_equal(getattr(masks, name), getattr(ref, name))
    # no face found, or no parser: the feathered square (the frame is still edited and stitched)
    for found in (tuning_masks(source, parser=DiscParser(face=False)), tuning_masks(source)):
        assert found.kind == "feathered square" and np.array_equal(found.border, square_masks(SIZE).border)
    crop = np.zeros((48, 48, 3), np.uint8)
    assert tuning_masks(crop).border.shape == (48, 48)
    refused_by(lambda: square_masks(0), match="crop size must be positive", error=UsageError)
