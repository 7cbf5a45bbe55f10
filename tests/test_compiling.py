"""torch.compile of the generator: the same images and gradients as eager PyTorch, and a fallback that keeps working."""

from __future__ import annotations

import json

import pytest
import torch

from styleclip.errors import UsageError
from styleclip.utils import compiling as C

from conftest import tiny_generator, tiny_generator3


def _image_and_grad(G, ws, compile: bool):
    w = ws.clone().requires_grad_(True)
    with C.compiling(compile) as record:
        img = G.synthesize(w)
    img.square().mean().backward()
    return img.detach(), w.grad, record


@pytest.mark.skipif(C.compile_unavailable() is not None, reason=f"torch.compile unavailable: {C.compile_unavailable()}")
def test_compiled_synthesis_matches_eager_with_gradients():
    G = tiny_generator(16, seed=3)
    ws = G.mapping_forward(G.z_from_seed([1]), truncation_psi=0.7)
    ref, ref_grad, _ = _image_and_grad(G, ws, False)
    img, grad, record = _image_and_grad(G, ws, True)
    if record.failed:  # e.g. no C++ compiler: then the fallback test below covers what users get
        pytest.skip(f"compiling failed here: {record.failed}")
    assert record.report() == {"requested": True, "used": True, "why": "asked for"}
    assert G.synthesis._compiled is not None and G.synthesis._compiled.compiled is not None
    torch.testing.assert_close(img, ref, atol=1e-4, rtol=1e-4)
    assert torch.nn.functional.cosine_similarity(grad.flatten(), ref_grad.flatten(), dim=0) > 0.9999


def test_a_failing_compiler_falls_back_to_eager_once_with_a_warning(monkeypatch):
    calls = []

    def broken_compile(fn, **kwargs):
        def run(*args, **kw):
            calls.append(1)
            raise RuntimeError("CppCompileError: no working C++ compiler found\nlong log ...")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(C, "compile_unavailable", lambda: None)
    G = tiny_generator(16, seed=3)
    # a compiled graph draws a batch whole, and so does its eager fallback (not sample by sample, as plain eager
    # CPU batches are: the same function with other roundings)
    G.synthesis.split_resolution = 0
    ws = G.mapping_forward(G.z_from_seed([1, 2]), truncation_psi=0.7)
    ref, ref_grad, _ = _image_and_grad(G, ws, False)
    with pytest.warns(UserWarning, match="running it eagerly") as caught:
        img, grad, record = _image_and_grad(G, ws, True)
        again, _, record2 = _image_and_grad(G, ws, True)  # no second attempt, no second warning
    assert len(calls) == 1 and len([w for w in caught if "eagerly" in str(w.message)]) == 1
    assert torch.equal(img, ref) and torch.equal(grad, ref_grad) and torch.equal(again, ref)
    report = record.report()
    assert report["requested"] and not report["used"] and "no working C++ compiler" in report["why"]
    assert "\n" not in report["why"] and not record2.report()["used"]


@pytest.mark.parametrize("error", [C._OUT_OF_MEMORY("out of memory"), UsageError("bad input")])
def test_errors_of_the_job_are_not_taken_for_compiler_failures(monkeypatch, error):
    monkeypatch.setattr(C, "compile_unavailable", lambda: None)
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: fn)  # "compiled" = the function itself

    def failing(*args):
        raise error

    compiled = C.Compiled(failing, "a network")
    with pytest.raises(type(error)):
        compiled()
    assert compiled.failed is None  # compiling stays on


def test_scopes_nest_and_none_inherits():
    assert not C.compile_requested()
    with C.compiling(True) as outer:
        assert outer.requested and C.compile_requested()
        with C.compiling(None) as inner:
            assert inner is outer and C.compile_requested()
        with C.compiling(False):
            assert not C.compile_requested()
        assert C.compile_requested()
    assert not C.compile_requested()


def test_copies_and_pickles_of_a_compiled_network_compile_anew(monkeypatch):
    import copy
    import pickle

    monkeypatch.setattr(C, "compile_unavailable", lambda: None)
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: fn)
    G = tiny_generator3(16)
    with torch.no_grad(), C.compiling(True):
        G.synthesize(G.mapping_forward(G.z_from_seed(0)))
    assert G.synthesis._compiled is not None
    assert copy.deepcopy(G).synthesis._compiled is None
    assert pickle.loads(pickle.dumps(G)).synthesis._compiled is None


def test_edit_report_records_the_compile_setting(tmp_path, monkeypatch, tiny_clip_file):
    from styleclip.edits.optimize import optimize

    monkeypatch.setattr(C, "compile_unavailable", lambda: "torch.compile does not support this Python version")
    G = tiny_generator(16)
    with pytest.warns(UserWarning, match="eagerly"):
        [r] = optimize(G, "a smiling face", clip=str(tiny_clip_file), seeds=[0], steps=2, compile=True, progress=False)
    assert r.compile == {"requested": True, "used": False,
                         "why": "unavailable here: torch.compile does not support this Python version"}  # fmt: skip
    json.dumps(r.compile)
