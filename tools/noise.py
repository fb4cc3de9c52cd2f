"""PMRID's calibrated raw noise model (shared/models/SOURCES.md §3.1), NumPy-free constants.

Noise variance ``k * x_DN + sigma2`` on a V = 959 DN scale, calibrated on an
OPPO Reno 10x; the k-sigma transform maps any (k, sigma2) onto the anchor
ISO 1600 (k_a, sigma2_a) that the network was trained for.
"""
from __future__ import annotations

V = 959.0
K_ANCHOR = 0.96793
S2_ANCHOR = 2.97948


def iso_noise(iso: float) -> tuple[float, float]:
    """PMRID's calibrated (k, sigma2) at an ISO, on the V = 959 DN scale."""
    k = 5.995267e-4 * iso + 8.68861e-3
    s2 = 7.11772e-7 * iso * iso + 6.514934e-4 * iso + 0.11492713
    return k, s2


def profile_from_iso(iso: float) -> tuple[float, float]:
    """(S, O) in normalised units (variance = S*x + O) for PMRID's sensor at ``iso``."""
    k, s2 = iso_noise(iso)
    return k / V, s2 / (V * V)
