"""The model catalogue (package data ``ai/data/catalogue.json``).

darktable's ``data/ai_models.json`` format, ``{"version": 1, "models": [...]}``
with ``id, name, description, task, github_asset, checksum ("sha256:..."),
default``, plus model-card fields after darktable-ai's selection criteria
(licence, OSAID and MOF class, training data and its licence, source, paper,
known limitations) and ``repository``: ``darktable-ai`` for packages published
in the releases of ``ai.repository``, ``local`` for models that pixelpipe
builds from weights itself (``build`` says how).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from pixelpipe.errors import AIError
from pixelpipe.prefs import MODEL_ID_RE, TASKS

_FIELDS = {
    "id", "name", "description", "task", "arch", "github_asset", "checksum", "default",
    "repository", "build", "licence", "osaid", "mof", "training_data", "training_data_licence",
    "limitations", "source", "paper",
}
_REQUIRED = ("id", "name", "task", "github_asset")
CHECKSUM_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
ASSET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.(dtmodel|zip)$")

#: model-card fields shown by ``pixelpipe ai models info`` (field, label)
CARD_FIELDS = (
    ("licence", "licence"), ("osaid", "OSAID v1.0"), ("mof", "MOF class"),
    ("training_data", "training data"), ("training_data_licence", "training data licence"),
    ("limitations", "known limitations"), ("source", "source"), ("paper", "paper"),
)


@dataclass(frozen=True)
class CatalogueEntry:
    id: str
    name: str
    task: str
    github_asset: str
    description: str = ""
    arch: str = ""
    checksum: str | None = None
    default: bool = False
    repository: str = "darktable-ai"
    build: str | None = None
    card: dict = field(default_factory=dict)

    @property
    def downloadable(self) -> bool:
        """True if the package is published in the model repository's releases."""
        return self.repository != "local"

    @property
    def sha256(self) -> str | None:
        return self.checksum.split(":", 1)[1] if self.checksum else None


def _entry(raw: dict, where: str) -> CatalogueEntry:
    if not isinstance(raw, dict):
        raise AIError(f"{where}: a model entry must be an object")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise AIError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    for k in _REQUIRED:
        if not isinstance(raw.get(k), str) or not raw[k]:
            raise AIError(f"{where}: missing or empty field {k!r}")
    mid = raw["id"]
    if not MODEL_ID_RE.match(mid):
        raise AIError(f"{where}: invalid model id {mid!r}")
    if raw["task"] not in TASKS:
        raise AIError(f"{where}: {mid}: unknown task {raw['task']!r}")
    if not ASSET_RE.match(raw["github_asset"]):
        raise AIError(f"{where}: {mid}: invalid github_asset {raw['github_asset']!r}")
    checksum = raw.get("checksum")
    if checksum is not None and (not isinstance(checksum, str) or not CHECKSUM_RE.match(checksum)):
        raise AIError(f"{where}: {mid}: checksum must be 'sha256:' and 64 lower-case hex digits")
    repo = raw.get("repository", "darktable-ai")
    if repo not in ("darktable-ai", "local"):
        raise AIError(f"{where}: {mid}: repository must be 'darktable-ai' or 'local'")
    if repo == "local" and not raw.get("build"):
        raise AIError(f"{where}: {mid}: a local model needs a 'build' command")
    if not isinstance(raw.get("default", False), bool):
        raise AIError(f"{where}: {mid}: default must be true or false")
    return CatalogueEntry(
        id=mid, name=raw["name"], task=raw["task"], github_asset=raw["github_asset"],
        description=raw.get("description", ""), arch=raw.get("arch", ""), checksum=checksum,
        default=raw.get("default", False), repository=repo, build=raw.get("build"),
        card={k: raw[k] for k, _ in CARD_FIELDS if raw.get(k)},
    )


def parse(doc: dict, where: str = "catalogue") -> list[CatalogueEntry]:
    """Entries of a catalogue document; :class:`AIError` on any defect."""
    if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(doc.get("models"), list):
        raise AIError(f"{where}: expected {{\"version\": 1, \"models\": [...]}}")
    out: list[CatalogueEntry] = []
    seen: set[str] = set()
    for i, raw in enumerate(doc["models"]):
        e = _entry(raw, f"{where}: models[{i}]")
        if e.id in seen:
            raise AIError(f"{where}: duplicate model id {e.id!r}")
        seen.add(e.id)
        out.append(e)
    return out


@lru_cache(maxsize=1)
def _packaged() -> tuple[CatalogueEntry, ...]:
    ref = resources.files("pixelpipe.ai").joinpath("data/catalogue.json")
    try:
        doc = json.loads(ref.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise AIError(f"cannot read the model catalogue: {e}", path=str(ref)) from None
    return tuple(parse(doc, where=str(ref)))


def entries() -> list[CatalogueEntry]:
    """Every catalogue entry, in catalogue order (the order defaults are resolved in)."""
    return list(_packaged())


def get(model_id: str) -> CatalogueEntry | None:
    for e in _packaged():
        if e.id == model_id:
            return e
    return None


def load_file(path: str | Path) -> list[CatalogueEntry]:
    """Parse a catalogue file (for tests and tools)."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise AIError(f"cannot read catalogue: {e}", path=p) from None
    return parse(doc, where=str(p))
