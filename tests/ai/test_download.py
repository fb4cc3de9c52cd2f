"""Downloads from a real loopback HTTP server that looks like GitHub's releases."""
from __future__ import annotations

import dataclasses
import errno
import os

import pytest

from aitest_helpers import make_package, symlink_member
from pixelpipe import prefs
from pixelpipe.ai import catalogue, download, registry
from pixelpipe.errors import AIError


def _publish(server, tmp_path, mid, task, **kw):
    pkg = make_package(tmp_path / "pub" / f"{mid}.dtmodel", mid, task, **kw)
    server.assets[f"{mid}.dtmodel"] = pkg.read_bytes()
    return pkg


def _part(mid):
    return download.downloads_dir() / f"{mid}.dtmodel.part"


def _leftovers():
    d = registry.models_dir()
    return sorted(os.listdir(d)) if d.exists() else []


def test_pick_tag():
    tags = ["release-5.6.0", "release-5.6.0.1", "release-5.6.0.3", "5.6.0.2", "v5.6.1",
            "nightly-5.5.0", "release-5.6.01", "release-5.6.0-rc1", "release-5.6.0.10"]
    assert download.pick_tag(tags, "5.6.0") == "release-5.6.0.10"
    assert download.pick_tag(["v5.6.0", "v5.6.1"], "5.6.0") == "v5.6.0"
    assert download.pick_tag(["nightly-5.5.0"], "5.5.0") == "nightly-5.5.0"
    assert download.pick_tag(["release-5.6.0"], "5.6.1") is None
    assert download.pick_tag(["release-15.6.0", "release-5.6.00"], "5.6.0") is None


def test_download_and_install(server, tmp_path):
    _publish(server, tmp_path, "denoise-nind", "denoise", padding=200_000)
    m = download.download_model("denoise-nind", progress=False)
    assert m.id == "denoise-nind" and m.ok
    api = [e for e in server.log if "/releases?" in e["path"]]
    assert api and api[0]["path"].endswith("/repos/darktable-org/darktable-ai/releases?per_page=100")
    got = server.downloads("denoise-nind.dtmodel")
    # highest release-5.6.0.N wins
    assert got[0]["path"] == "/darktable-org/darktable-ai/releases/download/release-5.6.0.2/denoise-nind.dtmodel"
    assert got[0]["ua"].startswith("pixelpipe/")
    assert not _part("denoise-nind").exists()
    assert list(download.downloads_dir().iterdir()) == []  # archive deleted after install
    assert registry.active_model("denoise").id == "denoise-nind"  # the default
    # already installed: no second transfer
    download.download_model("denoise-nind", progress=False)
    assert len(server.downloads("denoise-nind.dtmodel")) == 1


def test_compat_version_selects_release(server, tmp_path):
    _publish(server, tmp_path, "denoise-nind", "denoise")
    prefs.put("ai.compat_version", "5.9.0")
    with pytest.raises(AIError, match="no release of darktable-org/darktable-ai matches version 5.9.0"):
        download.download_model("denoise-nind", progress=False)
    assert server.downloads("denoise-nind.dtmodel") == []


def test_checksum_mismatch_installs_nothing(server, tmp_path):
    _publish(server, tmp_path, "denoise-nind", "denoise")
    server.modes["denoise-nind.dtmodel"] = "corrupt"
    prefs.put("ai.models.active.denoise", "none")
    with pytest.raises(AIError, match="checksum mismatch.*nothing was installed"):
        download.download_model("denoise-nind", progress=False)
    assert not _part("denoise-nind").exists()
    assert _leftovers() == []
    assert prefs.get("ai.models.active.denoise") == "none"


def test_catalogue_checksum_wins_over_digest(server, tmp_path, monkeypatch):
    _publish(server, tmp_path, "denoise-nind", "denoise")
    e = catalogue.get("denoise-nind")
    fake = dataclasses.replace(e, checksum="sha256:" + "0" * 64)
    monkeypatch.setattr(catalogue, "get", lambda mid: fake if mid == "denoise-nind" else None)
    with pytest.raises(AIError, match="expected sha256 0000"):
        download.download_model("denoise-nind", progress=False)
    assert _leftovers() == []


def test_no_checksum_warns(server, tmp_path, capsys):
    _publish(server, tmp_path, "denoise-nind", "denoise")
    server.modes["denoise-nind.dtmodel"] = "nodigest"
    download.download_model("denoise-nind", progress=False)
    assert "no checksum known" in capsys.readouterr().err


def test_truncated_response_resumes_with_range(server, tmp_path):
    _publish(server, tmp_path, "upscale-bsrgan", "upscale", padding=300_000)
    server.modes["upscale-bsrgan.dtmodel"] = "truncate_once"
    m = download.download_model("upscale-bsrgan", progress=False)
    assert m.ok
    got = server.downloads("upscale-bsrgan.dtmodel")
    assert len(got) == 2
    assert got[0]["range"] is None
    assert got[1]["range"] is not None and got[1]["range"].startswith("bytes=")
    assert int(got[1]["range"][6:-1]) > 0


def test_interrupted_download_resumes(server, tmp_path):
    """Ctrl-C mid-download keeps the .part; the next call continues with a Range request."""
    _publish(server, tmp_path, "denoise-nind", "denoise", padding=400_000)
    prefs.put("ai.models.active.denoise", "none")

    def ctrl_c(got, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download.download_model("denoise-nind", progress=False, on_progress=ctrl_c)
    part = _part("denoise-nind")
    size = part.stat().st_size
    assert 0 < size < len(server.assets["denoise-nind.dtmodel"])
    assert _leftovers() == []  # nothing half-installed
    assert registry.get_installed("denoise-nind") is None
    m = download.download_model("denoise-nind", progress=False)
    assert m.ok
    got = server.downloads("denoise-nind.dtmodel")
    assert got[-1]["range"] == f"bytes={size}-"
    assert not part.exists()
    assert prefs.get("ai.models.active.denoise") == "none"  # slot untouched


def test_complete_part_is_not_downloaded_again(server, tmp_path):
    _publish(server, tmp_path, "denoise-nind", "denoise")
    part = _part("denoise-nind")
    part.parent.mkdir(parents=True)
    part.write_bytes(server.assets["denoise-nind.dtmodel"])
    assert download.download_model("denoise-nind", progress=False).ok
    assert server.downloads("denoise-nind.dtmodel") == []


def test_path_traversal_package_from_server(server, tmp_path):
    for name, member in [("denoise-nind", ("denoise-nind/../../escape.txt", b"x")),
                         ("denoise-nafnet", ("/abs-escape.txt", b"x")),
                         ("upscale-bsrgan", symlink_member("upscale-bsrgan/l", "../../../x"))]:
        task = name.split("-")[0]
        _publish(server, tmp_path, name, task, extra_members=[member])
        with pytest.raises(AIError, match="refusing package"):
            download.download_model(name, progress=False)
    assert _leftovers() == []
    assert not (registry.models_dir().parent / "escape.txt").exists()
    assert list(download.downloads_dir().iterdir()) == []


def test_disk_full_during_download(server, tmp_path, monkeypatch):
    _publish(server, tmp_path, "denoise-nind", "denoise", padding=200_000)
    prefs.put("ai.models.active.denoise", "none")
    calls = {"n": 0}
    real = download._write_chunk

    def writer(fh, data):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fh, data)

    monkeypatch.setattr(download, "_write_chunk", writer)
    with pytest.raises(AIError, match="no space left on device"):
        download.download_model("denoise-nind", progress=False)
    assert not _part("denoise-nind").exists()
    assert _leftovers() == []
    assert prefs.get("ai.models.active.denoise") == "none"


def test_download_size_cap(server, tmp_path):
    _publish(server, tmp_path, "denoise-nind", "denoise", padding=1_500_000)
    prefs.put("ai.max_download_mb", 1)
    with pytest.raises(AIError, match="over the limit of 1 MiB"):
        download.download_model("denoise-nind", progress=False)
    assert server.downloads("denoise-nind.dtmodel") == []  # refused from the API size


def test_missing_asset_and_http_errors(server, tmp_path):
    with pytest.raises(AIError, match="has no asset denoise-nind.dtmodel"):
        _publish(server, tmp_path, "upscale-bsrgan", "upscale")
        download.download_model("denoise-nind", progress=False)
    prefs.put("ai.repository", "someone/else")
    with pytest.raises(AIError, match="HTTP 404"):
        download.download_model("denoise-nind", progress=False)


def test_unreachable_server_is_a_clear_error():
    prefs.put("ai.api_base", "http://127.0.0.1:9")  # discard port: connection refused
    with pytest.raises(AIError, match="cannot reach http://127.0.0.1:9/repos/"):
        download.download_model("denoise-nind", progress=False)


def test_local_and_unknown_models_are_not_downloaded():
    with pytest.raises(AIError, match="not published for download.*tools/build_models.py denoise-ffdnet"):
        download.download_model("denoise-ffdnet")
    with pytest.raises(AIError, match="unknown model 'nope'"):
        download.download_model("nope")


def test_download_many_continues_after_a_failure(server, tmp_path):
    _publish(server, tmp_path, "denoise-nind", "denoise")
    _publish(server, tmp_path, "upscale-bsrgan", "upscale")
    server.modes["denoise-nind.dtmodel"] = "corrupt"
    seen = []
    with pytest.raises(AIError, match="1 of 2 downloads failed: denoise-nind"):
        download.download_many(["denoise-nind", "upscale-bsrgan"], progress=False,
                               report=lambda mid, what: seen.append((mid, what.split(":")[0])))
    assert seen == [("denoise-nind", "failed"), ("upscale-bsrgan", "installed")]
    assert [m.id for m in registry.installed_models()] == ["upscale-bsrgan"]
