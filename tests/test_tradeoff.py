"""The benchmark's sweeps and trade-off curves: area, value at a fixed preservation, axes, --sweep parsing."""

from __future__ import annotations

import math

import pytest

from styleclip.evaluation.tradeoff import (
    DEFAULT_SWEEPS,
    choose_axis,
    curve_area,
    parse_sweeps,
    preservation,
    value_at,
)

from hostile import refused_by


def test_area_of_one_point_holds_its_score_below_it():
    # (1, 0) -> (0.8, 0.2): 0.2 * 0.1 from 1 to 0.8, then 0.2 held down to the floor 0.6: 0.04; mean over 0.4
    assert curve_area([(0.8, 0.2)], floor=0.6) == pytest.approx((0.02 + 0.04) / 0.4)


def test_area_rewards_more_edit_for_the_same_preservation():
    weak = [(0.9, 0.05), (0.8, 0.1), (0.7, 0.12)]
    strong = [(0.9, 0.1), (0.8, 0.2), (0.7, 0.24)]
    assert curve_area(strong, 0.5) > curve_area(weak, 0.5) > 0
    # a point below the floor counts only down to the floor: the segment is cut at p0
    cut = curve_area([(0.4, 0.6)], floor=0.7)
    assert cut == pytest.approx((0.3 * (0 + 0.3) / 2) / 0.3)


def test_value_at_fixed_preservation_interpolates_or_says_not_reached():
    pts = [(0.95, 0.05), (0.85, 0.15), (0.75, 0.2)]
    assert value_at(pts, 0.9) == pytest.approx(0.1)
    assert value_at(pts, 0.8) == pytest.approx(0.175)
    assert value_at(pts, 0.7) is None  # the strongest setting still keeps more than p*
    assert value_at([(0.9, 0.1), (0.9, 0.3)], 0.9) == pytest.approx(0.2)  # ties: their mean


def test_preservation_axes():
    assert preservation({"identity": 0.83}, "identity") == pytest.approx(0.83)
    assert preservation({"identity": -0.2}, "identity") == 0.0
    assert preservation({"lpips": 0.25}, "lpips") == pytest.approx(0.75)
    assert preservation({"psnr": 20.0}, "pixels") == pytest.approx(0.9)  # RMSE 0.1
    assert preservation({"psnr": math.inf}, "pixels") == 1.0
    rows = [{"state": "done", "identity": None, "lpips": None, "psnr": 30.0}]
    assert choose_axis(rows) == "pixels"
    assert choose_axis([{**rows[0], "lpips": 0.1}]) == "lpips"
    assert choose_axis([{**rows[0], "lpips": 0.1, "identity": 0.9}]) == "identity"
    refused_by(lambda: choose_axis(rows, "identity"), match="no identity scores")


def test_parse_sweeps():
    s = parse_sweeps(["directions=1, 2,4", "optimize=0.01,0.02"], ("optimize", "directions", "mapper"))
    assert s == {"optimize": (0.01, 0.02), "directions": (1.0, 2.0, 4.0), "mapper": DEFAULT_SWEEPS["mapper"]}
    methods = ("optimize", "directions")
    refused_by(lambda: parse_sweeps(["alpha=1,2"], methods), match="METHOD=V1")
    refused_by(lambda: parse_sweeps(["mapper=0.1"], methods), match="not among --methods")
    refused_by(lambda: parse_sweeps(["directions=1,x"], methods), match="must be numbers")
    refused_by(lambda: parse_sweeps(["directions=1,1"], methods), match="distinct")
    refused_by(lambda: parse_sweeps(["directions=nan"], methods), match="finite")
    refused_by(lambda: parse_sweeps(["optimize=-0.1"], methods), match="cannot be negative")
    refused_by(lambda: parse_sweeps(["directions=" + ",".join(map(str, range(40)))], methods), match="1 to 32")
