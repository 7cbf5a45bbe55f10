"""The low-pass filters of StyleGAN3, designed in NumPy (no SciPy at run time).

StyleGAN3 designs every layer's up- and down-sampling filter from the layer's cutoff, transition band
and sampling rate with a Kaiser-windowed sinc (the window method of ``scipy.signal.firwin``) or, for the
rotation-equivariant config R, a radially symmetric jinc. Checkpoints store the designed filters too;
designing them here lets a network be built from its config alone, and the tests check every tap
against SciPy.
"""

from __future__ import annotations

import numpy as np


def kaiser_beta(attenuation: float) -> float:
    """Kaiser's empirical window parameter for a stop-band attenuation in dB."""
    a = float(attenuation)
    if a > 50:
        return 0.1102 * (a - 8.7)
    if a > 21:
        return 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21)
    return 0.0


def kaiser_attenuation(numtaps: int, width: float) -> float:
    """Attenuation (dB) of a Kaiser FIR filter of ``numtaps`` taps and transition ``width`` (fraction of Nyquist)."""
    return 2.285 * (numtaps - 1) * np.pi * width + 7.95


def firwin_lowpass(numtaps: int, cutoff: float, width: float, fs: float) -> np.ndarray:
    """``[numtaps]`` float64 linear-phase low-pass taps with unit DC gain, as ``scipy.signal.firwin``.

    Args:
        numtaps: filter length (>= 1).
        cutoff: -6 dB frequency, in the units of ``fs``.
        width: transition band width, in the units of ``fs``; sets the Kaiser window's beta.
        fs: sampling rate.
    """
    nyquist = 0.5 * fs
    beta = kaiser_beta(kaiser_attenuation(numtaps, width / nyquist))
    m = np.arange(numtaps) - 0.5 * (numtaps - 1)
    c = cutoff / nyquist
    h = c * np.sinc(c * m) * np.kaiser(numtaps, beta)
    return h / h.sum()


def bessel_j1(x: np.ndarray) -> np.ndarray:
    """Bessel function of the first kind, order 1, by Bessel's integral.

    ``J1(x) = 1/pi * integral_0^pi cos(t - x sin t) dt``; the integrand is smooth and periodic, so the
    trapezoidal rule converges geometrically (1024 nodes: double precision for ``|x| < 300``).
    """
    x = np.asarray(x, dtype=np.float64)
    t = np.linspace(0.0, np.pi, 1025)
    weights = np.full(t.shape, 1.0 / 1024)
    weights[[0, -1]] *= 0.5
    flat = x.reshape(-1)
    out = np.empty_like(flat)
    for start in range(0, flat.size, 4096):  # bounded memory for large filters
        chunk = flat[start : start + 4096]
        out[start : start + 4096] = np.cos(t - chunk[:, None] * np.sin(t)) @ weights
    return out.reshape(x.shape)


def jinc_lowpass(numtaps: int, cutoff: float, width: float, fs: float) -> np.ndarray:
    """``[numtaps, numtaps]`` float64 radially symmetric low-pass (Kaiser-windowed jinc), unit DC gain."""
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    with np.errstate(invalid="ignore", divide="ignore"):
        f = bessel_j1(2 * np.pi * cutoff * r) / (np.pi * r)
    f[r == 0] = cutoff  # the limit of J1(2 pi c r) / (pi r) at r = 0
    beta = kaiser_beta(kaiser_attenuation(numtaps, width / (fs / 2)))
    window = np.kaiser(numtaps, beta)
    f = f * np.outer(window, window)
    return f / f.sum()


def design_lowpass(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False) -> np.ndarray | None:
    """A layer's resampling filter: None for ``numtaps == 1`` (identity), else separable or radial taps."""
    if numtaps < 1:
        raise ValueError(f"a filter needs at least one tap, got {numtaps}")
    if numtaps == 1:
        return None
    if radial:
        return jinc_lowpass(numtaps, cutoff, width, fs)
    return firwin_lowpass(numtaps, cutoff, width, fs)
