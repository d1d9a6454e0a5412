"""Bjøntegaard delta rate: the average bitrate difference between two rate-distortion curves at equal quality.

G. Bjøntegaard, "Calculation of average PSNR differences between RD-curves", ITU-T VCEG-M33 (2001): fit log(rate)
as a function of PSNR for each curve, integrate both over the PSNR range they share, and turn the mean difference
of log-rates back into a percentage. Bjøntegaard fitted a cubic polynomial through four points; with curves of any
number of points we interpolate with a monotone piecewise cubic (PCHIP, scipy), as the later JVET/VCEG common test
conditions do, which cannot overshoot between points. A test curve of a single point is compared with the anchor's
interpolated rate at that point's PSNR.

Example:
    >>> round(bd_rate([0.25, 0.5, 1.0], [28.0, 31.0, 34.0], [0.2, 0.4, 0.8], [28.0, 31.0, 34.0]), 1)
    -20.0
"""

from __future__ import annotations

import math

import numpy as np


def _log_rate_curve(rates, psnrs) -> tuple[np.ndarray, np.ndarray]:
    """(PSNR ascending, log-rate) with duplicate PSNRs averaged away, so the interpolation is a function."""
    psnr = np.asarray(psnrs, dtype=np.float64)
    log_rate = np.log(np.asarray(rates, dtype=np.float64))
    order = np.argsort(psnr)
    psnr, log_rate = psnr[order], log_rate[order]
    keep = np.concatenate([[True], np.diff(psnr) > 1e-9])
    return psnr[keep], log_rate[keep]


def bd_rate(anchor_rates, anchor_psnrs, test_rates, test_psnrs) -> float | None:
    """The test curve's average rate difference to the anchor's, in percent (negative: the test needs fewer bits
    for the same PSNR). None when the curves share no PSNR range, or the anchor has fewer than two points."""
    return bd_rate_or_reason(anchor_rates, anchor_psnrs, test_rates, test_psnrs)[0]


def bd_rate_or_reason(anchor_rates, anchor_psnrs, test_rates, test_psnrs,
                      names: tuple[str, str] = ("the anchor", "the test curve")) -> tuple[float | None, str | None]:
    """(`bd_rate`, None), or (None, why there is none) in words a user can act on, the curves called `names`.

    Example:
        >>> bd_rate_or_reason([0.25, 0.5], [28.0, 31.0], [0.1], [20.0], ("JPEG", "this run"))[1]
        'the curves do not overlap: this run reaches 20.00 dB PSNR, JPEG 28.00-31.00 dB'
    """
    from scipy.interpolate import PchipInterpolator

    a_psnr, a_log = _log_rate_curve(anchor_rates, anchor_psnrs)
    t_psnr, t_log = _log_rate_curve(test_rates, test_psnrs)
    for name, psnr in zip(names, (a_psnr, t_psnr)):
        if len(psnr) < (2 if name == names[0] else 1):  # the anchor is integrated; one test point is enough
            return None, f"too few rate points: {name} has {len(psnr)} distinct PSNR value(s)"
    low, high = max(a_psnr[0], t_psnr[0]), min(a_psnr[-1], t_psnr[-1])
    if low > high:
        return None, (f"the curves do not overlap: {names[1]} reaches {_span(t_psnr)} PSNR, "
                      f"{names[0]} {_span(a_psnr)}")
    anchor = PchipInterpolator(a_psnr, a_log)
    if len(t_psnr) == 1 or high - low < 1e-6:
        difference = float(np.interp(low, t_psnr, t_log) - anchor(low))
    else:
        test = PchipInterpolator(t_psnr, t_log)
        difference = float((test.integrate(low, high) - anchor.integrate(low, high)) / (high - low))
    return (math.exp(difference) - 1.0) * 100.0, None


def _span(psnr: np.ndarray) -> str:
    return f"{psnr[0]:.2f} dB" if len(psnr) == 1 else f"{psnr[0]:.2f}-{psnr[-1]:.2f} dB"
