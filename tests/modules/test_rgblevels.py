"""rgblevels against a NumPy reference of darktable's rgb levels (tolerance ``atol=rtol=2e-5``)."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import raw_file
from helpers import rgb_image, run_module
from pixelpipe.errors import ParamsError
from pixelpipe.io.icc import colour_module
from pixelpipe.modules.rgblevels import RgblevelsParams

colour = colour_module()
Y_ROW = np.asarray(colour.RGB_COLOURSPACES["ITU-R BT.2020"].matrix_RGB_to_XYZ)[1]
rng = np.random.default_rng(5)
TOL = dict(atol=2e-5, rtol=2e-5)


def _levels(v, b, m, w):
    """darktable: gamma = 10^((grey - mid) / half-range); ((v - b) / (w - b))^gamma above black, else 0."""
    gamma = 10 ** ((m - (b + w) / 2) / ((w - b) / 2))
    return np.where(v > b, np.maximum((v - b) / (w - b), 0) ** gamma, 0.0)


def _norm(px, method):
    sq = (px ** 2).sum(0)
    return {"luminance": np.tensordot(Y_ROW, px, 1), "max": px.max(0), "average": px.mean(0), "sum": px.sum(0),
            "norm": np.sqrt(sq), "power": (px ** 3).sum(0) / np.where(sq > 0, sq, 1)}[method]


def _run(inp, p):
    return run_module("rgblevels", rgb_image(inp), inp, params=p)[0]


def test_defaults_are_identity_for_non_negative_values():
    inp = rng.uniform(0, 3, size=(3, 6, 7)).astype(np.float32)
    np.testing.assert_allclose(_run(inp, RgblevelsParams()), inp, **TOL)
    np.testing.assert_allclose(_run(inp, RgblevelsParams(mode="independent")), inp, **TOL)


def test_grey_half_way_is_a_straight_line_and_grey_sets_the_gamma():
    inp = np.linspace(0, 1.2, 25, dtype=np.float32)[None, None].repeat(3, 0)
    out = _run(inp, RgblevelsParams(preserve_colors="none", black=0.1, grey=0.5, white=0.9))
    np.testing.assert_allclose(out, np.clip((inp - 0.1) / 0.8, 0, None), **TOL)
    # moving grey left brightens: gamma < 1
    darker = _run(inp, RgblevelsParams(preserve_colors="none", black=0.1, grey=0.7, white=0.9))
    brighter = _run(inp, RgblevelsParams(preserve_colors="none", black=0.1, grey=0.3, white=0.9))
    assert np.all(brighter[:, :, 3:17] > out[:, :, 3:17]) and np.all(darker[:, :, 3:17] < out[:, :, 3:17])


def test_independent_channels_match_numpy():
    inp = rng.uniform(-0.1, 1.4, size=(3, 8, 9)).astype(np.float32)
    p = RgblevelsParams(mode="independent", red=[0.05, 0.3, 0.9], green=[0.0, 0.6, 1.0], blue=[0.2, 0.25, 0.5])
    ref = np.stack([_levels(inp[k].astype(float), *lv) for k, lv in enumerate((p.red, p.green, p.blue))])
    np.testing.assert_allclose(_run(inp, p), ref, **TOL)


@pytest.mark.parametrize("preserve", ["none", "luminance", "max", "average", "sum", "norm", "power"])
def test_linked_levels_with_colour_preservation(preserve):
    inp = rng.uniform(0.0, 1.2, size=(3, 6, 8)).astype(np.float32)
    p = RgblevelsParams(preserve_colors=preserve, black=0.02, grey=0.35, white=0.8)
    px = inp.astype(np.float64)
    if preserve == "none":
        ref = _levels(px, 0.02, 0.35, 0.8)
    else:
        n = _norm(px, preserve)
        ref = np.where(n > 0.02, _levels(n, 0.02, 0.35, 0.8) / np.where(n > 0, n, 1), 0.0) * px
    np.testing.assert_allclose(_run(inp, p), ref, **TOL)


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (1, 100000), (100000, 1)])
def test_sizes_and_non_finite_values(shape):
    inp = rng.uniform(-1, 3, size=(3,) + shape).astype(np.float32)
    flat = inp.reshape(3, -1)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, 1e30, -1e30])
    flat[:, : min(flat.shape[1], 6)] = specials[: flat.shape[1]]
    for p in (RgblevelsParams(), RgblevelsParams(black=0.0, grey=0.999, white=1.0),
              RgblevelsParams(black=0.0, grey=1e-4, white=1.0, preserve_colors="power"),
              RgblevelsParams(mode="independent", red=[0.98, 0.99, 1.0])):
        out = _run(inp, p)
        assert out.shape == inp.shape and np.isfinite(out).all()


@pytest.mark.parametrize("d,match", [
    ({"black": 0.6, "grey": 0.5}, "'black' < 'grey' < 'white'"), ({"white": 1.5}, "'white'"),
    ({"red": [0.0, 0.9, 0.8]}, "'red'"), ({"green": [0.0, 0.5]}, "'green'"),
    ({"preserve_colors": "lab"}, "'preserve_colors'"), ({"grey": float("inf")}, "'grey'"),
])
def test_bad_parameters_name_module_and_field(d, match):
    with pytest.raises(ParamsError, match=match) as e:
        RgblevelsParams.from_dict("rgblevels", {**RgblevelsParams().to_dict(), **d})
    assert "rgblevels" in str(e.value)


def test_real_raw_default_is_identity_and_levels_apply():
    from pixelpipe.io.decode import load
    from pixelpipe.pipe.history import Edit
    from pixelpipe.pipe.pipeline import Pipe

    img = load(raw_file("canon_550d_magiclantern_colorchart.dng"))
    edit = Edit.default_for(img)
    base = Pipe(img, edit).render(width=400)
    edit.set_params("rgblevels", img)
    np.testing.assert_allclose(Pipe(img, edit).render(width=400), base, atol=1e-4)
    edit.set_params("rgblevels", img, black=0.0, grey=0.3, white=0.8)
    brighter = Pipe(img, edit).render(width=400)
    assert np.isfinite(brighter).all() and brighter.mean() > base.mean() + 0.02
