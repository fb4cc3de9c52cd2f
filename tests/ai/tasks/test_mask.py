"""The mask task: SAM 2.1 / SegNext protocol with stand-in models (exact tensor names and
shapes), embedding caches, post-processing, vectorisation into Bézier paths in normalised
input coordinates (through crop and rotation), the sidecar, and the classical method."""
from __future__ import annotations

import json

import numpy as np
import pytest

from task_helpers import SAM_RADII, SEGNEXT_RADIUS, tiny

from pixelpipe.ai.tasks import mask as M
from pixelpipe.ai.tasks import postprocess as pp
from pixelpipe.ai.tasks import vectorize as V


# --------------------------------------------------------------------------- post-processing

def _flood(m):
    H, W = m.shape
    lab = np.zeros((H, W), int)
    n = 0
    for i in range(H):
        for j in range(W):
            if m[i, j] and not lab[i, j]:
                n += 1
                stack = [(i, j)]
                lab[i, j] = n
                while stack:
                    a, b = stack.pop()
                    for da, db in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                        c, d = a + da, b + db
                        if 0 <= c < H and 0 <= d < W and m[c, d] and not lab[c, d]:
                            lab[c, d] = n
                            stack.append((c, d))
    return lab, n


def test_components_and_distance_transform_against_brute_force():
    rng = np.random.default_rng(0)
    m = rng.random((60, 70)) > 0.55
    lab, sizes = pp.label(m)
    ref, n = _flood(m)
    assert sizes.size - 1 == n and len(set(zip(lab[m].tolist(), ref[m].tolist()))) == n
    assert np.array_equal(np.bincount(lab.ravel())[1:], sizes[1:])
    m2 = np.ones((40, 50), bool)
    m2[rng.integers(0, 40, 9), rng.integers(0, 50, 9)] = False
    zy, zx = np.nonzero(~m2)
    yy, xx = np.mgrid[0:40, 0:50]
    brute = ((yy[..., None] - zy) ** 2 + (xx[..., None] - zx) ** 2).min(-1)
    assert np.array_equal(pp.edt_sq(m2), brute)


def test_refine_keeps_the_clicked_component_and_cleans():
    prob = np.zeros((800, 960), np.float32)   # about the 1024 px render the clean-up area refers to
    prob[80:480, 80:480] = 0.9          # clicked square with a small hole
    prob[300:304, 300:304] = 0.1
    prob[560:760, 640:920] = 0.9        # another object
    prob[40:42, 800:802] = 0.9          # speck
    m = pp.refine(prob, None, [(160, 160)], threshold=0.5, edge_refine=0, morph_radius=1, cleanup=20)
    assert m[160, 160] and m[301, 301] and not m[600, 700] and not m[40, 800]
    m2 = pp.refine(prob, None, [], threshold=0.5, edge_refine=0, morph_radius=0, cleanup=0)
    assert m2[160, 160] and not m2[600, 700] and not m2[301, 301]  # no click: the largest component


def test_edge_aware_threshold_raises_the_threshold_on_edges():
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[:, 20:] = 255
    prob = np.full((40, 40), 0.6, np.float32)
    m = pp.refine(prob, rgb, [(5, 5)], threshold=0.5, edge_refine=1.0, morph_radius=0, cleanup=0)
    assert m[5, 5] and not m[5, 19] and not m[5, 20]


def test_vectorise_round_trip_with_holes_and_islands():
    yy, xx = np.mgrid[0:200, 0:260]
    m = ((xx - 130) ** 2 / 100 ** 2 + (yy - 100) ** 2 / 70 ** 2) < 1
    m &= ((xx - 130) ** 2 + (yy - 100) ** 2) >= 30 ** 2
    m |= ((xx - 130) ** 2 + (yy - 100) ** 2) < 12 ** 2
    m |= (abs(xx - 20) < 12) & (abs(yy - 20) < 12)
    for alphamax in (0.0, 1.0, 1.3):
        shapes = V.trace_shapes(m, alphamax=alphamax)
        assert sorted((s.hole, s.depth) for s in shapes) == [(False, 0), (False, 0), (False, 2), (True, 1)]
        r = V.rasterize(shapes, 200, 260)
        assert (r & m).sum() / (r | m).sum() > 0.985
    assert sum(len(s.cubics) for s in V.trace_shapes(m, alphamax=0.0)) > \
        sum(len(s.cubics) for s in V.trace_shapes(m, alphamax=1.3))


# --------------------------------------------------------------------------- SAM 2.1 protocol

def _scene(w=640, h=480):
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[...] = (200, 100, 50)
    return rgb


class _Spy:
    def __init__(self, session):
        self.s, self.feeds = session, []

    def __getattr__(self, k):
        return getattr(self.s, k)

    def run(self, feed, **kw):
        self.feeds.append({k: np.array(v) for k, v in feed.items()})
        return self.s.run(feed, **kw)


def test_sam2_protocol(ai_on):
    from pixelpipe.ai.tasks import common

    model = tiny(ai_on, "mask")
    target = M.target_from_rgb(_scene())
    masker = M.ObjectMasker(model, target, prefs=M.MaskPrefs(refine_passes=2, edge_refine=0.0))
    assert masker.decoder.provider == "cpu" and masker.arch == "sam2"
    spy = masker.decoder = _Spy(masker.decoder)
    prob = masker.probability([(320, 240, True)])
    s = 1024 / 640
    f0, f1, f2 = spy.feeds
    assert np.allclose(f0["point_coords"], [[[320 * s, 240 * s], [0, 0]]]) and np.allclose(f0["point_labels"], [[1, -1]])
    assert f0["has_mask_input"].tolist() == [0.0] and not f0["mask_input"].any()
    assert f1["has_mask_input"].tolist() == [1.0] and f1["mask_input"].shape == (1, 1, 256, 256)
    assert f1["mask_input"].any()   # the previous low-resolution logits are fed back
    assert set(f0) == {"image_embed", "high_res_feats_0", "high_res_feats_1", "point_coords", "point_labels",
                       "mask_input", "has_mask_input"}
    # highest predicted IoU: the 2nd mask, radius SAM_RADII[1] in the 1024 frame
    r = SAM_RADII[1] / s
    assert prob.shape == (480, 640)
    assert prob[240, int(320 + r - 6)] > 0.5 and prob[240, int(320 + r + 6)] < 0.5
    # the encoder saw the ImageNet-normalised, zero-padded 1024 square
    emb = masker.embedding().outputs["image_embed"][0, 0]
    expect = np.mean((np.array([200, 100, 50]) - M.SAM_MEAN) / M.SAM_STD)
    assert emb[5, 5] == pytest.approx(expect, abs=1e-4) and emb[63, 5] == pytest.approx(0, abs=1e-6)
    # a box: corners labelled 2 and 3, no padding point
    spy.feeds.clear()
    masker.prefs.refine_passes = 0
    masker.probability([(320, 240, True)], box=(200, 150, 450, 350))
    assert np.allclose(spy.feeds[0]["point_labels"], [[1, 2, 3]])
    assert np.allclose(spy.feeds[0]["point_coords"][0, 1:], [[200 * s, 150 * s], [450 * s, 350 * s]])
    common.clear_sessions()


def test_encoder_outputs_found_by_substring_and_embedding_caches(ai_on):
    model = tiny(ai_on, "mask", embed="image_embeddings", model_id="mask-tiny-named")
    target = M.target_from_rgb(_scene())
    a = M.ObjectMasker(model, target, prefs=M.MaskPrefs(refine_passes=0))
    a.probability([(100, 100, True)])
    assert a.encoder_runs == 1
    b = M.ObjectMasker(model, target, prefs=M.MaskPrefs(refine_passes=0))
    b.probability([(100, 100, True)])
    assert b.encoder_runs == 0                    # in memory
    M._MEMORY.clear()
    files = list(M.cache_dir().glob("*.seg"))
    assert len(files) == 1 and files[0].read_bytes()[:4] == b"DTSG"
    c = M.ObjectMasker(model, target, prefs=M.MaskPrefs(refine_passes=0))
    c.probability([(100, 100, True)])
    assert c.encoder_runs == 0                    # from disk
    assert np.allclose(c.embedding().outputs["image_embed"], a.embedding().outputs["image_embed"])
    moved = M.Target(target.rgb, 1.0, target.full_size, [], target.input_size, target.identity, 12345)
    d = M.ObjectMasker(model, moved, prefs=M.MaskPrefs(refine_passes=0))
    d.probability([(100, 100, True)])
    assert d.encoder_runs == 1                    # another geometry of the edit: encoded again


def test_segnext_protocol(ai_on):
    model = tiny(ai_on, "mask", arch="segnext")
    masker = M.ObjectMasker(model, M.target_from_rgb(_scene()), prefs=M.MaskPrefs(refine_passes=1))
    assert masker.arch == "segnext"
    spy = masker.decoder = _Spy(masker.decoder)
    prob = masker.probability([(320, 240, True), (50, 50, False)])
    f0, f1 = spy.feeds
    assert f0["point_coords"].shape == (1, 2, 2) and np.allclose(f0["point_labels"], [[1, 0]])
    assert not f0["prev_mask"].any() and f1["prev_mask"].shape == (1, 1, 1024, 1024) and f1["prev_mask"].max() > 0.9
    r = SEGNEXT_RADIUS / (1024 / 640)
    assert prob[240, int(320 + r - 5)] > 0.5 > prob[240, int(320 + r + 5)]
    from pixelpipe.errors import AIError

    with pytest.raises(AIError, match="box prompts need a SAM model"):
        masker.probability([(320, 240, True)], box=(1, 1, 100, 100))


# --------------------------------------------------------------------------- through the pipe and the sidecar

@pytest.fixture
def sample_dng(tmp_path):
    from pixelpipe.io.sample import make_sample_dng

    p = tmp_path / "s.dng"
    make_sample_dng(p, width=480, height=320)
    return p


def _geometry_edit(path):
    import pixelpipe

    ph = pixelpipe.open(path)
    ph.edit.set_params("flip", ph.image, orientation=6)            # rotated
    ph.edit.set_params("crop", ph.image, cx=0.1, cy=0.05, cw=0.9, ch=0.95)
    ph.save_edit()


def test_sam_mask_follows_crop_and_rotation_into_the_sidecar(ai_on, sample_dng):
    import pixelpipe
    from pixelpipe.blend.geometry import Geometry, backward
    from pixelpipe.blend.render import render_group
    from pixelpipe.cli import main
    from pixelpipe.modules.base import ROI

    tiny(ai_on, "mask")
    _geometry_edit(sample_dng)
    ph = pixelpipe.open(sample_dng)
    target = M.render_target(ph)
    W, H = target.full_size
    click = (W * 0.45, H * 0.55)
    assert main(["ai", "mask", str(sample_dng), "--point", f"{click[0]},{click[1]}", "--module", "exposure"]) == 0
    side = json.loads((sample_dng.parent / "s.dng.pixelpipe.json").read_text())
    exp = next(m for m in side["modules"] if m["op"] == "exposure")
    forms = exp["blend"]["forms"]
    assert exp["blend"]["mask_mode"] == "drawn"
    paths = [mm["form"] for g in forms["members"] for mm in g["form"]["members"]]
    assert paths and all(p["type"] == "path" for p in paths)
    # the path's nodes are in normalised input coordinates: the disk's centre is the click carried back
    nodes = np.array([n["p"] for n in paths[0]["nodes"]])
    centre_in = backward(target.stages, np.array([click])) / [ph.image.width, ph.image.height]
    assert np.allclose(nodes.mean(0), centre_in[0], atol=0.01)
    # rendered where the module sits (the whole output here), the form covers the model's mask
    ph2 = pixelpipe.open(sample_dng)
    inst = ph2.edit.find("exposure")
    masker = M.ObjectMasker(M.make_masker.__globals__["common"].require_model("mask"), target,
                            prefs=M.MaskPrefs())
    ref = masker.mask([(click[0], click[1], True)])
    geom = Geometry(ph.image.width, ph.image.height, ROI(0, 0, target.size[0], target.size[1], target.scale),
                    target.stages)
    r = render_group(inst.blend.forms, geom) > 0.5
    assert (r & ref).sum() / (r | ref).sum() > 0.97


def test_classical_mask_needs_no_ai_and_writes_a_png(tmp_path):
    from PIL import Image

    from pixelpipe.cli import main

    h, w = 120, 160
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[...] = (40, 120, 40)
    rgb += (np.random.default_rng(0).integers(0, 20, (h, w, 1))).astype(np.uint8)
    obj = (xx - 90) ** 2 + (yy - 60) ** 2 < 35 ** 2
    rgb[obj] = (220, 60, 60)
    src = tmp_path / "o.png"
    Image.fromarray(rgb).save(src)
    assert main(["ai", "mask", str(src), "--point", "90,60", "--classical"]) == 5  # no destination: refused
    assert main(["ai", "mask", str(src), "--point", "90,60", "--module", "exposure"]) == 5  # AI is off
    assert main(["ai", "mask", str(src), "--point", "90,60", "-o", str(tmp_path / "m.png"), "--classical"]) == 0
    m = np.asarray(Image.open(tmp_path / "m.png")) > 127
    assert m.shape == (h, w) and (m & obj).sum() / (m | obj).sum() > 0.9
    assert main(["ai", "mask", str(src), "--point", "90,60", "--point", "10,10,bg", "--module", "exposure",
                 "--classical"]) == 0
    import pixelpipe

    inst = pixelpipe.open(src).edit.find("exposure")
    assert inst.blend is not None and len(list(inst.blend.forms.walk())) >= 1


def test_object_mask_preferences_reach_the_masker(ai_on):
    """The mask.object.* preferences (darktable's object-mask settings) drive a masker made
    without explicit preferences: refine passes = decoder runs - 1, the threshold moves the edge."""
    from pixelpipe import prefs

    tiny(ai_on, "mask")
    target = M.target_from_rgb(_scene())
    for k, v in (("threshold", 0.3), ("refine_passes", 0), ("morph_radius", 0), ("edge_refine", 0.0),
                 ("cleanup", 0), ("smoothing", 1.0)):
        prefs.put(f"mask.object.{k}", v)
    p = M.MaskPrefs.from_prefs()
    assert (p.threshold, p.refine_passes, p.morph_radius, p.edge_refine, p.cleanup, p.smoothing) == \
        (0.3, 0, 0, 0.0, 0, 1.0)
    runs = {}
    for passes in (0, 3):
        prefs.put("mask.object.refine_passes", passes)
        masker, _ = M.make_masker(target=target)
        assert masker.prefs.refine_passes == passes
        spy = masker.decoder = _Spy(masker.decoder)
        runs[passes] = masker.mask([(320, 240, True)])
        assert len(spy.feeds) == passes + 1
    prefs.put("mask.object.threshold", 0.9)
    masker, _ = M.make_masker(target=target)
    tight = masker.mask([(320, 240, True)])
    assert tight.sum() < runs[0].sum() and (tight & ~runs[0]).sum() == 0


def test_cli_box_prompt_and_bad_box(ai_on):
    """--box reaches a SAM decoder (labels 2/3) through the command; a malformed box is one clear error."""
    from PIL import Image

    from pixelpipe.cli import main

    tiny(ai_on, "mask")
    src = ai_on / "scene.png"
    Image.fromarray(_scene()).save(src)
    out = ai_on / "m.png"
    assert main(["ai", "mask", str(src), "--point", "320,240", "--box", "200,150,450,350", "-o", str(out)]) == 0
    m = np.asarray(Image.open(out)) > 127
    assert m.shape == (480, 640) and m[240, 320] and not m[5, 5]
    assert main(["ai", "mask", str(src), "--box", "200,150,450", "-o", str(ai_on / "bad.png")]) != 0
    assert not (ai_on / "bad.png").exists()
