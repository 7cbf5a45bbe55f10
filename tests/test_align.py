"""FFHQ alignment on a real photograph that ships with scikit-image (NASA's astronaut portrait)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from styleclip import UsageError

dlib = pytest.importorskip("dlib")
skimage_data = pytest.importorskip("skimage.data")

from styleclip.io.align import align, detect_faces, face_quad  # noqa: E402


@pytest.fixture(scope="module")
def astronaut():
    return Image.fromarray(skimage_data.astronaut())


def test_one_face_aligned_with_the_eyes_at_the_canonical_places(astronaut):
    faces = detect_faces(astronaut)
    assert len(faces) == 1 and faces[0].score > 0.5  # the badge that dlib half-sees scores below the cut
    size = 256
    out = align(astronaut, size)
    assert out.size == (size, size) and out.mode == "RGB"
    [again] = detect_faces(out)
    eyes = np.stack([again.landmarks[36:42].mean(0), again.landmarks[42:48].mean(0)])
    # FFHQ geometry: eyes level, at 37.5 % and 62.5 % of the width, their midpoint between 47.2 % and 50 % height
    assert abs(eyes[0, 0] - 0.375 * size) < 4 and abs(eyes[1, 0] - 0.625 * size) < 4
    assert abs(eyes[0, 1] - eyes[1, 1]) < 4
    assert 0.4722 * size - 4 < eyes[:, 1].mean() < 0.5 * size + 4


def test_quad_geometry_for_a_frontal_face():
    lm = np.zeros((68, 2))
    lm[36:42] = (400, 400)
    lm[42:48] = (600, 400)
    lm[48], lm[54] = (420, 600), (580, 600)
    quad, qsize = face_quad(lm)
    np.testing.assert_allclose(quad, [[100, 20], [100, 820], [900, 820], [900, 20]])
    assert qsize == pytest.approx(800)


def test_no_face_and_bad_face_index(astronaut):
    blank = Image.new("RGB", (200, 200), (90, 120, 200))
    with pytest.raises(UsageError, match="no face found"):
        align(blank, 64)
    with pytest.raises(UsageError, match="out of range"):
        align(astronaut, 64, face=3)
