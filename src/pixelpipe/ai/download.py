"""Model downloads from a darktable-ai style GitHub repository; only when the user asks.

As darktable does it (``dt_ai_models_download_sync``):

1. ``GET <ai.api_base>/repos/<ai.repository>/releases?per_page=100``;
2. pick the release whose tag's numeric part (leading ``v``, ``release-`` ... stripped)
   is ``ai.compat_version`` exactly, or ``X.Y.Z.N`` (highest ``N`` wins);
3. ``GET <ai.download_base>/<repo>/releases/download/<tag>/<asset>`` into
   ``<cache dir>/ai_downloads/<asset>.part`` - an interrupted download resumes with
   an HTTP ``Range`` request, a short read is retried at once;
4. SHA-256 check against the catalogue ``checksum``, else the release asset's API
   ``digest``, else go on with a warning; a mismatch deletes the download;
5. install the package (:mod:`pixelpipe.ai.package`), then delete the archive.

urllib only; no request is made anywhere else in pixelpipe.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pixelpipe import __version__, prefs, userdirs
from pixelpipe.errors import AIError

from . import catalogue, package, registry
from .catalogue import CatalogueEntry

USER_AGENT = f"pixelpipe/{__version__} (model download)"
TIMEOUT_S = 60
CHUNK = 1 << 16
ATTEMPTS = 3


def notice(msg: str) -> None:
    print(f"pixelpipe: {msg}", file=sys.stderr, flush=True)


def downloads_dir() -> Path:
    return userdirs.cache_dir() / "ai_downloads"


# --------------------------------------------------------------------------- release

_TAG_RE = re.compile(r"^(\d+\.\d+\.\d+)(?:\.(\d+))?$")


def pick_tag(tags: list[str], compat_version: str) -> str | None:
    """The tag for ``compat_version`` ("X.Y.Z"): numeric part == X.Y.Z or X.Y.Z.N, highest N."""
    best: tuple[int, str] | None = None
    for tag in tags:
        m0 = re.search(r"\d", tag)
        if not m0:
            continue
        m = _TAG_RE.match(tag[m0.start():])
        if not m or m.group(1) != compat_version:
            continue
        n = int(m.group(2)) if m.group(2) is not None else -1
        if best is None or n > best[0]:
            best = (n, tag)
    return best[1] if best else None


def _open(url: str, headers: dict[str, str] | None = None):
    h = {"User-Agent": USER_AGENT}
    h.update(headers or {})
    return urllib.request.urlopen(urllib.request.Request(url, headers=h), timeout=TIMEOUT_S)


def _net_error(e: BaseException, url: str) -> AIError:
    if isinstance(e, urllib.error.HTTPError):
        extra = ""
        if e.code in (403, 429) and e.headers.get("X-RateLimit-Remaining") == "0":
            extra = " (GitHub API rate limit reached; try again later)"
        return AIError(f"HTTP {e.code} {e.reason} from {url}{extra}")
    if isinstance(e, urllib.error.URLError):
        return AIError(f"cannot reach {url}: {e.reason}")
    return AIError(f"network error from {url}: {e}")


def fetch_releases(repo: str, api_base: str) -> list[dict]:
    url = f"{api_base.rstrip('/')}/repos/{repo}/releases?per_page=100"
    try:
        with _open(url, {"Accept": "application/vnd.github+json",
                         "X-GitHub-Api-Version": "2022-11-28"}) as r:
            data = json.loads(r.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise _net_error(e, url) from None
    except ValueError as e:
        raise AIError(f"the releases list from {url} is not valid JSON ({e})") from None
    if not isinstance(data, list):
        raise AIError(f"unexpected releases list from {url}")
    return [r for r in data if isinstance(r, dict)]


@dataclass
class Release:
    tag: str
    assets: dict[str, dict]


def find_release(repo: str | None = None, compat_version: str | None = None,
                 api_base: str | None = None) -> Release:
    repo = repo or prefs.get("ai.repository")
    compat_version = compat_version or prefs.get("ai.compat_version")
    api_base = api_base or prefs.get("ai.api_base")
    releases = [r for r in fetch_releases(repo, api_base)
                if not r.get("draft") and isinstance(r.get("tag_name"), str)]
    tag = pick_tag([r["tag_name"] for r in releases], compat_version)
    if tag is None:
        tags = ", ".join(r["tag_name"] for r in releases[:10]) or "none"
        raise AIError(f"no release of {repo} matches version {compat_version} (pref ai.compat_version; "
                      f"tags seen: {tags})")
    rel = next(r for r in releases if r["tag_name"] == tag)
    assets = {a["name"]: a for a in rel.get("assets") or [] if isinstance(a, dict) and "name" in a}
    return Release(tag=tag, assets=assets)


# --------------------------------------------------------------------------- transfer

def _write_chunk(fh, data: bytes) -> None:
    """Write one chunk (a seam for tests simulating a full disk)."""
    fh.write(data)


def _parse_content_range(value: str | None) -> tuple[int, int | None] | None:
    m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", value or "")
    if not m:
        return None
    return int(m.group(1)), (None if m.group(3) == "*" else int(m.group(3)))


class _Interrupted(Exception):
    pass


def download_file(url: str, part: Path, *, max_bytes: int, expected_size: int | None = None,
                  progress: bool = True, desc: str | None = None,
                  on_progress: Callable[[int, int | None], None] | None = None,
                  attempts: int = ATTEMPTS) -> Path:
    """Download ``url`` into ``part``, resuming what is there; returns ``part`` when complete.

    A short read is retried (with ``Range``) up to ``attempts`` times; after that the
    partial file stays for the next call. A full disk deletes the partial file.
    """
    from tqdm import tqdm

    part.parent.mkdir(parents=True, exist_ok=True)
    if expected_size is not None and expected_size > max_bytes:
        raise AIError(f"{desc or url} is {expected_size / (1 << 20):.1f} MiB, over the limit of "
                      f"{max_bytes >> 20} MiB (pref ai.max_download_mb)")
    last_error = ""
    for _attempt in range(max(1, attempts)):
        have = part.stat().st_size if part.exists() else 0
        if expected_size is not None and have > expected_size:
            part.unlink()
            have = 0
        if expected_size is not None and have == expected_size and have > 0:
            return part
        headers = {"Accept": "application/octet-stream"}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            resp = _open(url, headers)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:
                if expected_size is None:
                    return part  # the server has nothing past what we hold; the checksum decides
                part.unlink()
                continue
            raise _net_error(e, url) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            last_error = str(_net_error(e, url))
            continue
        with resp:
            total: int | None
            if resp.status == 206:
                cr = _parse_content_range(resp.headers.get("Content-Range"))
                if cr is None or cr[0] != have:
                    part.unlink(missing_ok=True)  # the server resumed somewhere else: start over
                    continue
                total = cr[1]
                mode = "ab"
            else:
                have = 0
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                mode = "wb"
            if total is None:
                total = expected_size
            if total is not None and total > max_bytes:
                part.unlink(missing_ok=True)
                raise AIError(f"{desc or url} is {total / (1 << 20):.1f} MiB, over the limit of "
                              f"{max_bytes >> 20} MiB (pref ai.max_download_mb)")
            bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                       desc=desc, disable=None if progress else True, file=sys.stderr, leave=False)
            got = have
            try:
                with open(part, mode) as fh:
                    while True:
                        try:
                            chunk = resp.read(CHUNK)
                        except (http.client.IncompleteRead, ConnectionError, socket.timeout,
                                TimeoutError) as e:
                            raise _Interrupted(f"connection lost ({type(e).__name__})") from None
                        if not chunk:
                            break
                        if got + len(chunk) > max_bytes:
                            raise AIError(f"{desc or url} exceeds the limit of {max_bytes >> 20} MiB "
                                          f"(pref ai.max_download_mb)")
                        try:
                            _write_chunk(fh, chunk)
                        except OSError as e:
                            raise package._disk_error(e, "writing the download", part) from None
                        got += len(chunk)
                        bar.update(len(chunk))
                        if on_progress is not None:
                            on_progress(got, total)
            except _Interrupted as e:
                last_error = f"{e} after {got} of {total if total is not None else '?'} bytes"
                continue
            except AIError:
                part.unlink(missing_ok=True)
                raise
            finally:
                bar.close()
            if total is not None and got < total:
                last_error = f"the server closed the connection after {got} of {total} bytes"
                continue
            return part
    raise AIError(f"download of {desc or url} interrupted: {last_error}; run the same command "
                  f"again to resume")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- models

def _entry_for(model_id: str) -> CatalogueEntry:
    e = catalogue.get(model_id)
    if e is None:
        raise AIError(f"unknown model {model_id!r}; see 'pixelpipe ai models list' "
                      f"(a model not in the catalogue installs with 'pixelpipe ai models install FILE')")
    if not e.downloadable:
        raise AIError(f"{model_id} is not published for download; pixelpipe builds it from its "
                      f"weights: run '{e.build}' (needs PyTorch), then "
                      f"'pixelpipe ai models install build/models/{e.github_asset}'")
    return e


def download_model(model_id: str, *, force: bool = False, progress: bool = True,
                   on_progress: Callable[[int, int | None], None] | None = None,
                   release: Release | None = None) -> registry.InstalledModel:
    """Download and install one catalogue model (no-op if installed, unless ``force``)."""
    e = _entry_for(model_id)
    if not force:
        m = registry.get_installed(model_id)
        if m is not None and m.ok:
            return m
    repo = prefs.get("ai.repository")
    rel = release or find_release(repo)
    asset = rel.assets.get(e.github_asset)
    if rel.assets and asset is None:
        raise AIError(f"release {rel.tag} of {repo} has no asset {e.github_asset}")
    expected_sha = e.sha256
    if expected_sha is None and asset is not None:
        digest = asset.get("digest")
        if isinstance(digest, str) and re.fullmatch(r"sha256:[0-9a-fA-F]{64}", digest):
            expected_sha = digest.split(":", 1)[1].lower()
    size = asset.get("size") if asset is not None else None
    size = size if isinstance(size, int) and size > 0 else None
    max_bytes, _ = package.limits()
    base = prefs.get("ai.download_base").rstrip("/")
    url = (f"{base}/{repo}/releases/download/{urllib.parse.quote(rel.tag)}/"
           f"{urllib.parse.quote(e.github_asset)}")
    part = downloads_dir() / (e.github_asset + ".part")
    download_file(url, part, max_bytes=max_bytes, expected_size=size, progress=progress,
                  desc=e.github_asset, on_progress=on_progress)
    digest = sha256_file(part)
    if expected_sha is None:
        notice(f"warning: no checksum known for {e.github_asset} (sha256 {digest}); installing unverified")
    elif digest != expected_sha:
        part.unlink(missing_ok=True)
        raise AIError(f"checksum mismatch for {e.github_asset}: expected sha256 {expected_sha}, "
                      f"got {digest}; the download was deleted and nothing was installed")
    archive = part.with_name(e.github_asset)
    os.replace(part, archive)
    try:
        m = package.install_package(archive, expected_id=model_id)
    except KeyboardInterrupt:
        os.replace(archive, part)  # verified bytes: the next run finds them complete
        raise
    except BaseException:
        archive.unlink(missing_ok=True)
        raise
    archive.unlink(missing_ok=True)
    return m


def download_many(model_ids: list[str], *, force: bool = False, progress: bool = True,
                  report: Callable[[str, str], None] | None = None) -> list[registry.InstalledModel]:
    """Download several models; one failing does not stop the others (Ctrl-C does)."""
    done: list[registry.InstalledModel] = []
    failed: list[str] = []
    release: Release | None = None
    for mid in model_ids:
        if not force:
            m = registry.get_installed(mid)
            if m is not None and m.ok:
                if report:
                    report(mid, "already installed")
                done.append(m)
                continue
        if release is None:
            release = find_release()  # no release: nothing can be downloaded, stop here
        try:
            m = download_model(mid, force=force, progress=progress, release=release)
            if report:
                report(mid, "installed")
            done.append(m)
        except AIError as e:
            failed.append(f"{mid}: {e}")
            if report:
                report(mid, f"failed: {e}")
    if failed:
        raise AIError(f"{len(failed)} of {len(model_ids)} downloads failed: " + "; ".join(failed))
    return done


def default_ids() -> list[str]:
    return [e.id for e in catalogue.entries() if e.default and e.downloadable]


def downloadable_ids() -> list[str]:
    return [e.id for e in catalogue.entries() if e.downloadable]
