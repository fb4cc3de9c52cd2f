"""Installed models and the active model of each task.

Models live as ``<models dir>/<id>/config.json`` plus their ONNX files; the
models dir is the pref ``ai.models_dir`` or ``<data dir>/models``. Folders whose
name starts with ``.`` are pixelpipe's temporary install/delete folders and are
never listed.

Task slots (darktable's ``plugins/ai/models/active/<task>``) are the prefs
``ai.models.active.<task>``: a model id, ``none`` (the task is off) or unset,
which resolves to the first installed model that the catalogue (or its
config.json) marks ``default``, and stores that choice, as darktable does.
Deleting the active model unsets its slot.
"""
from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pixelpipe import prefs, userdirs
from pixelpipe.errors import AIError
from pixelpipe.prefs import MODEL_ID_RE, TASKS

from . import catalogue, config, tasks
from .catalogue import CatalogueEntry
from .config import ModelConfig


def models_dir() -> Path:
    """Where models are installed (pref ``ai.models_dir``, else ``<data dir>/models``)."""
    custom = prefs.get("ai.models_dir")
    return Path(custom) if custom else userdirs.data_dir() / "models"


@dataclass
class InstalledModel:
    """A model folder with a valid ``config.json`` (or, with :attr:`error`, a broken one)."""

    id: str
    path: Path
    config: ModelConfig | None
    entry: CatalogueEntry | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def name(self) -> str:
        return self.config.name if self.config else (self.entry.name if self.entry else self.id)

    @property
    def task(self) -> str:
        if self.config:
            return self.config.task
        return self.entry.task if self.entry else "?"

    @property
    def description(self) -> str:
        if self.config and self.config.description:
            return self.config.description
        return self.entry.description if self.entry else ""

    @property
    def default(self) -> bool:
        """Marked default by the catalogue, or (for models not in it) by its config.json."""
        if self.entry is not None:
            return self.entry.default
        return bool(self.config and self.config.raw.get("default") is True)

    def files(self) -> list[tasks.ModelFile]:
        if self.config is None:
            return []
        return tasks.model_files(self.config, self.path)

    def scales(self) -> list[int]:
        """Upscale factors this model offers (``[1]`` for other tasks)."""
        return sorted({f.scale for f in self.files()}) or [1]

    def variants(self) -> list[str]:
        return [f.variant.kind for f in self.files() if f.variant is not None]

    def model_file(self, *, scale: int | None = None, variant: str | None = None,
                   role: str | None = None) -> tasks.ModelFile:
        """The ONNX file for a scale (upscale), a variant (rawdenoise) or a role (mask)."""
        files = self.files()
        if not files:
            raise AIError(f"model {self.id} has no ONNX file", path=self.path)
        if self.task == "upscale" and scale is not None:
            for f in files:
                if f.scale == scale:
                    return f
            raise AIError(f"model {self.id} offers no x{scale} upscale "
                          f"(it has {', '.join('x%d' % s for s in self.scales())})")
        if self.task == "rawdenoise" and variant is not None:
            for f in files:
                if f.variant is not None and f.variant.kind == variant:
                    return f
            if variant == "xtrans":  # darktable: X-Trans falls back to the linear variant
                return self.model_file(variant="linear")
            raise AIError(f"model {self.id} has no {variant} variant "
                          f"(it has {', '.join(self.variants()) or 'none'})")
        if self.task == "mask":
            role = role or "encoder"
            for f in files:
                if f.role == role:
                    return f
            raise AIError(f"model {self.id} has no {role}")
        return files[0]

    def onnx_path(self, **kw) -> Path:
        return self.path / self.model_file(**kw).filename


def _load_one(d: Path) -> InstalledModel:
    try:
        cfg = config.load(d / "config.json")
    except AIError as e:
        mid = d.name
        return InstalledModel(id=mid, path=d, config=None, entry=catalogue.get(mid), error=str(e))
    m = InstalledModel(id=cfg.id, path=d, config=cfg, entry=catalogue.get(cfg.id),
                       warnings=list(cfg.warnings))
    if cfg.id != d.name:
        m.warnings.append(f"folder name {d.name!r} differs from the model id {cfg.id!r}")
    return m


def scan(*, include_broken: bool = False) -> list[InstalledModel]:
    """Installed models, in catalogue order, then the others by id. The first folder
    holding an id wins; a folder with a broken config.json is listed only with
    ``include_broken``."""
    root = models_dir()
    try:
        dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise AIError(f"cannot list models: {e.strerror}", path=root) from None
    found: dict[str, InstalledModel] = {}
    broken: list[InstalledModel] = []
    for d in dirs:
        if not (d / "config.json").is_file():
            continue
        m = _load_one(d)
        if not m.ok:
            broken.append(m)
        elif m.id not in found:
            found[m.id] = m
    order = {e.id: i for i, e in enumerate(catalogue.entries())}
    models = sorted(found.values(), key=lambda m: (order.get(m.id, len(order)), m.id))
    return models + broken if include_broken else models


def installed_models(task: str | None = None) -> list[InstalledModel]:
    """Valid installed models (of ``task``)."""
    return [m for m in scan() if task is None or m.task == task]


def get_installed(model_id: str) -> InstalledModel | None:
    """The installed model with this id (or a broken model folder of this name)."""
    for m in scan(include_broken=True):
        if m.id == model_id:
            return m
    return None


def require_installed(model_id: str) -> InstalledModel:
    m = get_installed(model_id)
    if m is None:
        hint = ""
        e = catalogue.get(model_id)
        if e is not None:
            hint = (f"; download it with: pixelpipe ai models download {model_id}" if e.downloadable
                    else f"; build it with: {e.build}")
        else:
            hint = "; see 'pixelpipe ai models list'"
        raise AIError(f"model {model_id!r} is not installed{hint}")
    if not m.ok:
        raise AIError(f"model {model_id!r} is broken: {m.error}")
    return m


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise AIError(f"unknown AI task {task!r} (tasks: {', '.join(TASKS)})")


def active_model(task: str) -> InstalledModel | None:
    """The model every consumer of ``task`` uses, or None when the task is off
    (``none``) or no model for it is installed."""
    _check_task(task)
    key = f"ai.models.active.{task}"
    value = prefs.get(key)
    if value == "none":
        return None
    if value:
        m = get_installed(value)
        if m is None or not m.ok:
            why = "is not installed" if m is None else f"is broken ({m.error})"
            raise AIError(f"the active {task} model {value!r} {why}; download it with "
                          f"'pixelpipe ai models download {value}' or choose another with "
                          f"'pixelpipe ai models activate ID'")
        if m.task != task:
            raise AIError(f"the active {task} model {value!r} is a {m.task} model; choose a "
                          f"{task} model with 'pixelpipe ai models activate ID'")
        return m
    for m in installed_models(task):
        if m.default:
            prefs.put(key, m.id)  # persisted, as darktable does
            return m
    return None


def activate(model_id: str) -> InstalledModel:
    """Make ``model_id`` the active model of its task."""
    if model_id == "none":
        raise AIError("to switch a task off use: pixelpipe ai models deactivate TASK")
    m = require_installed(model_id)
    if m.task not in TASKS:
        raise AIError(f"model {model_id!r} is for task {m.task!r}, which pixelpipe does not use "
                      f"(tasks: {', '.join(TASKS)})")
    prefs.put(f"ai.models.active.{m.task}", m.id)
    return m


def deactivate(task: str) -> None:
    """Switch ``task`` off (its slot becomes ``none``)."""
    _check_task(task)
    prefs.put(f"ai.models.active.{task}", "none")


def delete(model_id: str) -> InstalledModel:
    """Remove an installed model; unsets its task slot if it was active and forgets its tile sizes."""
    if not MODEL_ID_RE.match(model_id):
        raise AIError(f"invalid model id {model_id!r}")
    m = get_installed(model_id)
    if m is None:
        raise AIError(f"model {model_id!r} is not installed")
    root = models_dir()
    trash = root / f".delete-{model_id}-{secrets.token_hex(4)}"
    try:
        os.rename(m.path, trash)
    except OSError as e:
        raise AIError(f"cannot delete model {model_id}: {e.strerror}", path=m.path) from None
    shutil.rmtree(trash, ignore_errors=True)
    if m.task in TASKS and prefs.get(f"ai.models.active.{m.task}") == m.id:
        prefs.unset(f"ai.models.active.{m.task}")
    keys = tuple(f"ai.tile_cache.{k}." for k in tile_cache_keys(m.id))
    prefs.unset_matching(lambda k: k.startswith(keys))
    return m


def tile_cache_keys(model_id: str) -> list[str]:
    """The ``<model>`` parts of the tile-cache prefs of a model: its id, and
    ``<id>_<variant>`` for rawdenoise variants."""
    return [model_id] + [f"{model_id}_{v}" for v in config.VARIANT_KINDS]


def slot_values() -> dict[str, str | None]:
    """The raw pref value of each task slot (None = unset)."""
    return {t: prefs.get(f"ai.models.active.{t}") for t in TASKS}
