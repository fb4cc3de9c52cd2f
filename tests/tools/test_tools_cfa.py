"""NumPy helpers of the conversion tools (no PyTorch needed)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools import cfa  # noqa: E402


def test_pack_unpack_rggb_roundtrip():
    x = np.arange(8 * 6, dtype=np.float32).reshape(8, 6)
    p = cfa.pack_rggb(x)
    assert p.shape == (4, 4, 3)
    assert p[0, 0, 0] == x[0, 0] and p[1, 0, 0] == x[0, 1] and p[2, 0, 0] == x[1, 0] and p[3, 0, 0] == x[1, 1]
    np.testing.assert_array_equal(cfa.unpack_rggb(p), x)


def test_xtrans_pattern_is_the_published_one_and_mirror_symmetric():
    rows = ["".join("RGB"[c] for c in r) for r in cfa.XTRANS]
    assert rows == ["GBGGRG", "RGRBGB", "GBGGRG", "GRGGBG", "BGBRGR", "GRGGBG"]
    # 8 G, 2 R and 2 B in every 6x6 block... per 3x3 quarter: 5 G, 2 R, 2 B over both halves
    assert (cfa.XTRANS == 1).sum() == 20 and (cfa.XTRANS == 0).sum() == 8 and (cfa.XTRANS == 2).sum() == 8
    # the X-Trans graph mirrors its padding about rows/columns 1 (and 4): that keeps the phase
    for r in range(6):
        np.testing.assert_array_equal(cfa.XTRANS[r], cfa.XTRANS[(2 - r) % 6])
        np.testing.assert_array_equal(cfa.XTRANS[:, r], cfa.XTRANS[:, (2 - r) % 6])


def test_srgb_curve_roundtrip_and_extension():
    x = np.array([-0.1, 0.0, 0.002, 0.0031308, 0.18, 0.5, 1.0, 1.5], np.float32)
    y = cfa.srgb_encode(x)
    assert abs(float(cfa.srgb_encode(np.float32(0.18))) - 0.4614) < 1e-3
    np.testing.assert_allclose(cfa.srgb_decode(y), x, rtol=1e-5, atol=1e-6)
    assert y[-1] > 1.0 and y[0] < 0.0


def test_bilinear_baseline_exact_on_linear_ramp():
    yy, xx = np.mgrid[0:16, 0:16].astype(np.float32)
    img = np.stack([0.01 * xx + 0.1, 0.02 * yy + 0.05, 0.005 * (xx + yy) + 0.2])
    out = cfa.interpolate_demosaic(cfa.mosaic(img, cfa.RGGB), cfa.RGGB)
    np.testing.assert_allclose(out[:, 2:-2, 2:-2], img[:, 2:-2, 2:-2], atol=1e-5)
    assert cfa.psnr(out, img, border=2) > 90
