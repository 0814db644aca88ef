"""A model registry on disk: versioned artifacts, one active version, promotion and rollback.

Layout under the root (``MAS_DATA_DIR/models`` by default)::

    v0001-20261125T193000Z-synthetic/   model.joblib, model.json, metrics.json, gains.png, MODEL_CARD.md
    v0002-20261203T081512Z/             ...
    ACTIVE.json                         {"active": "v0002-...", "history": ["v0001-..."], "log": [...]}
    .lock                               flock(2) lock serialising register / promote / rollback

* A version is named ``v<number>-<UTC registration time>`` plus ``-synthetic`` when the model was
  trained on synthetic data. ``register`` copies the artifact directory into a hidden staging
  directory, stamps the version into its ``model.json`` and model card, and renames it into place,
  so a version directory is either complete or absent. Versions are never modified afterwards.
* ``ACTIVE.json`` is replaced atomically (write a temporary file, fsync, ``os.replace``). ``history``
  is the stack of previously active versions: ``promote`` pushes the outgoing version, ``rollback``
  pops it back. ``log`` records every change with its time.
* ``load(version)`` caches scorers by version (the last ``CACHE_SIZE``), so ``active_scorer()`` is cheap
  enough to call on every request: it ``stat``s ``ACTIVE.json`` on each call (or at most every
  ``check_interval_s`` seconds when that is set) and re-reads it only when its inode, mtime or size
  changed — every write makes a new inode, so a promotion by another process is seen on the next call,
  with no restart. A promotion through the same registry object is seen immediately.
"""

from __future__ import annotations

import builtins
import fcntl
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from marketing_agents.scoring_models.errors import ModelNotFoundError, RegistryError
from marketing_agents.scoring_models.model import (
    CARD_FILE,
    METADATA_FILE,
    METRICS_FILE,
    MODEL_FILE,
    Scorer,
)

POINTER_FILE = "ACTIVE.json"
LOCK_FILE = ".lock"
CACHE_SIZE = 4
VERSION_PATTERN = re.compile(r"^v(\d{4,})-(\d{8}T\d{6}Z)(-synthetic)?$")


def default_models_root() -> Path:
    """``$MAS_DATA_DIR/models`` (``MAS_DATA_DIR`` defaults to ``.mas``, as in the settings)."""
    return Path(os.environ.get("MAS_DATA_DIR", ".mas")).expanduser().resolve() / "models"


@dataclass(frozen=True)
class ModelVersion:
    name: str
    number: int
    registered_at: str
    synthetic: bool
    model_kind: str | None
    roc_auc: float | None
    pr_auc: float | None
    active: bool
    path: Path


def _version_number(name: str) -> int:
    """The number of a version name (one that matches ``VERSION_PATTERN``)."""
    match = VERSION_PATTERN.match(name)
    if match is None:
        raise RegistryError(f"'{name}' is not a model version name")
    return int(match.group(1))


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class ModelRegistry:
    def __init__(self, root: str | Path | None = None, *, check_interval_s: float = 0.0):
        self.root = Path(root) if root is not None else default_models_root()
        self.root.mkdir(parents=True, exist_ok=True)
        self.check_interval_s = check_interval_s
        self._thread_lock = threading.RLock()
        self._lock_depth = 0
        self._lock_handle: TextIO | None = None
        self._cache: OrderedDict[str, Scorer] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._pointer_key: tuple | None = None
        self._pointer_active: str | None = None
        self._checked_at = float("-inf")

    # -- locking and the pointer file -------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Holds the registry's inter-process lock (re-entrant within this object)."""
        with self._thread_lock:
            if self._lock_depth == 0:
                handle = open(self.root / LOCK_FILE, "a+")
                fcntl.flock(handle, fcntl.LOCK_EX)
                self._lock_handle = handle
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0:
                    if self._lock_handle is None:  # opened when the depth went from 0 to 1
                        raise RegistryError("registry lock released but its file is not open")
                    fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
                    self._lock_handle.close()
                    self._lock_handle = None

    def _read_pointer(self) -> dict:
        try:
            return json.loads((self.root / POINTER_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"active": None, "history": [], "log": []}

    def _write_pointer(self, pointer: dict) -> None:
        pointer["updated_at"] = _now()
        handle, temporary = tempfile.mkstemp(dir=self.root, prefix=".active-", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(pointer, out, indent=2)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.root / POINTER_FILE)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self._pointer_key = None
        self._checked_at = float("-inf")

    # -- versions ----------------------------------------------------------------------------------

    def versions(self) -> list[str]:
        """Registered version names, oldest first."""
        found = [p.name for p in self.root.iterdir() if p.is_dir() and VERSION_PATTERN.match(p.name)]
        return sorted(found, key=_version_number)

    def exists(self, version: str) -> bool:
        return bool(VERSION_PATTERN.match(version)) and (self.root / version / MODEL_FILE).is_file()

    def path(self, version: str) -> Path:
        if not self.exists(version):
            raise ModelNotFoundError(f"no model version '{version}' in {self.root} "
                                     f"(versions: {', '.join(self.versions()) or 'none'})")
        return self.root / version

    def list(self) -> list[ModelVersion]:
        active = self.active()
        out = []
        for name in self.versions():
            directory = self.root / name
            try:
                metadata = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                metadata = {}
            metrics = metadata.get("metrics", {})
            out.append(ModelVersion(
                name=name, number=_version_number(name),
                registered_at=metadata.get("registered_at", ""), synthetic=bool(metadata.get("synthetic")),
                model_kind=metadata.get("model_kind"), roc_auc=metrics.get("roc_auc"), pr_auc=metrics.get("pr_auc"),
                active=name == active, path=directory))
        return out

    def register(self, directory: str | Path) -> str:
        """Copies a trained model directory into the registry as a new version; returns its name.
        Does not activate it (see :meth:`promote`)."""
        source = Path(directory)
        for name in (MODEL_FILE, METADATA_FILE):
            if not (source / name).is_file():
                raise ModelNotFoundError(f"{source} is not a trained model directory: {name} is missing")
        metadata = json.loads((source / METADATA_FILE).read_text(encoding="utf-8"))
        with self.locked():
            staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".incoming-"))
            try:
                for item in source.iterdir():
                    if item.is_file():
                        shutil.copy2(item, staging / item.name)
                numbers = [_version_number(name) for name in self.versions()]
                registered_at = datetime.now(UTC).replace(microsecond=0)
                version = (f"v{max(numbers, default=0) + 1:04d}-{registered_at:%Y%m%dT%H%M%SZ}"
                           f"{'-synthetic' if metadata.get('synthetic') else ''}")
                metadata.update({"trained_as": metadata.get("version"), "version": version,
                                 "registered_at": registered_at.isoformat().replace("+00:00", "Z")})
                (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
                if (staging / METRICS_FILE).is_file():
                    from marketing_agents.scoring_models.reporting import write_model_card

                    metrics = json.loads((staging / METRICS_FILE).read_text(encoding="utf-8"))
                    write_model_card(metadata, metrics, staging / CARD_FILE)
                os.rename(staging, self.root / version)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            pointer = self._read_pointer()
            pointer.setdefault("log", []).append({"at": _now(), "action": "register", "version": version})
            self._write_pointer(pointer)
        return version

    # -- the active version ------------------------------------------------------------------------

    def active(self) -> str | None:
        """The active version as the pointer file says now (always read)."""
        return self._read_pointer().get("active")

    def history(self) -> builtins.list[str]:  # `list` here is the method above
        """Previously active versions, most recent last (what :meth:`rollback` returns to)."""
        return list(self._read_pointer().get("history", []))

    def promote(self, version: str) -> None:
        """Makes ``version`` the active one; the outgoing version goes onto the history stack."""
        self.path(version)
        with self.locked():
            pointer = self._read_pointer()
            previous = pointer.get("active")
            if previous == version:
                return
            if previous:
                pointer.setdefault("history", []).append(previous)
            pointer["active"] = version
            pointer.setdefault("log", []).append({"at": _now(), "action": "promote", "version": version,
                                                  "previous": previous})
            self._write_pointer(pointer)

    def rollback(self) -> str:
        """Re-activates the previously active version and returns it."""
        with self.locked():
            pointer = self._read_pointer()
            history = pointer.setdefault("history", [])
            while history and not self.exists(history[-1]):
                history.pop()
            if not history:
                raise RegistryError(f"nothing to roll back to: no earlier active version in {self.root}")
            current, previous = pointer.get("active"), history.pop()
            pointer["active"] = previous
            pointer.setdefault("log", []).append({"at": _now(), "action": "rollback", "version": previous,
                                                  "previous": current})
            self._write_pointer(pointer)
            return previous

    # -- loading -----------------------------------------------------------------------------------

    def load(self, version: str | None = None) -> Scorer:
        """The scorer of ``version`` (default: the active one), loaded once and cached."""
        if version is None:
            version = self.active()
            if version is None:
                raise ModelNotFoundError(f"no active model version in {self.root}: train and register one, "
                                         "or call ensure_default_model")
        with self._cache_lock:
            scorer = self._cache.get(version)
            if scorer is not None:
                self._cache.move_to_end(version)
                return scorer
        scorer = Scorer.load(self.path(version))
        with self._cache_lock:
            scorer = self._cache.setdefault(version, scorer)
            self._cache.move_to_end(version)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return scorer

    def _current_active(self) -> str | None:
        now = time.monotonic()
        if self.check_interval_s > 0 and now - self._checked_at < self.check_interval_s:
            return self._pointer_active
        try:
            stat = os.stat(self.root / POINTER_FILE)
            key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            key = None
        if key is None or key != self._pointer_key:
            self._pointer_active = self.active()
            self._pointer_key = key
        self._checked_at = now
        return self._pointer_active

    def active_scorer(self) -> Scorer:
        """The active version's scorer; cheap per call, and follows promotions without a restart."""
        version = self._current_active()
        if version is None:
            raise ModelNotFoundError(f"no active model version in {self.root}: train and register one, "
                                     "or call ensure_default_model")
        return self.load(version)
