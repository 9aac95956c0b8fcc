"""`<config_dir>/workflows.yaml` for the API, reloaded when the file changes (no restart needed).

The checked config is cached under a signature of the files it depends on (the sha256 of workflows.yaml, and
size and modification time of catalog.yaml and every template). An edit takes effect for the next order; an
edit that breaks the file makes orders fail with `workflows-config-invalid` (503) listing the problems, until
it is fixed.
Running orders are unaffected either way: their steps travel in their workflow's input.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from tessera.errors import ConfigError, FieldIssue
from tessera.orders.errors import WorkflowsConfigInvalid
from tessera.processes.schema import WorkflowsConfig
from tessera.processes.startup import load_configured_workflows
from tessera.settings import Settings

Signature = tuple[tuple[str, int, int], ...]


def _stat(path: Path) -> tuple[str, int, int]:
    try:
        found = path.stat()
    except OSError:
        return (str(path), -1, -1)
    return (str(path), found.st_mtime_ns, found.st_size)


def _digest(path: Path) -> tuple[str, int, int]:
    # The file itself is hashed: an edit within the clock's granularity that keeps the size is still seen.
    try:
        content = path.read_bytes()
    except OSError:
        return (str(path), -1, -1)
    return (hashlib.sha256(content).hexdigest(), len(content), 0)


def config_signature(settings: Settings) -> Signature:
    """What a change of the process configuration would change; cheap enough to compute per order."""
    templates = settings.config_dir / "templates"
    template_files = _files(templates)
    # Translations in locale folders count too: an edited German text is a new version.
    for folder in _folders(templates):
        template_files += _files(folder)
    paths = [settings.catalog_file, *map(Path, template_files)]
    return (_digest(settings.config_dir / "workflows.yaml"), *(_stat(path) for path in paths))


def _files(directory: Path) -> list[str]:
    try:
        return sorted(entry.path for entry in os.scandir(directory) if entry.is_file())
    except OSError:
        return []


def _folders(directory: Path) -> list[Path]:
    try:
        return sorted(Path(entry.path) for entry in os.scandir(directory) if entry.is_dir())
    except OSError:
        return []


@dataclass
class _Entry:
    signature: Signature
    config: WorkflowsConfig | None
    error: ConfigError | None


class WorkflowsConfigCache:
    """The checked workflows config of one config directory, re-checked only when its files change."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._entry: _Entry | None = None
        self._lock = threading.Lock()

    def get(self) -> WorkflowsConfig:
        """The current config, or WorkflowsConfigInvalid naming every problem of the file as it is now."""
        signature = config_signature(self._settings)
        entry = self._entry
        if entry is None or entry.signature != signature:
            with self._lock:
                entry = self._entry
                if entry is None or entry.signature != signature:
                    entry = self._load(signature)
                    self._entry = entry
        if entry.config is None:
            assert entry.error is not None
            raise invalid(entry.error)
        return entry.config

    def _load(self, signature: Signature) -> _Entry:
        try:
            return _Entry(signature, load_configured_workflows(self._settings), None)
        except ConfigError as error:
            return _Entry(signature, None, error)


def invalid(error: ConfigError) -> WorkflowsConfigInvalid:
    issues = [
        FieldIssue(issue.field, f"{issue.where()}: {issue.message}" if issue.where() else issue.message)
        for issue in error.issues
    ]
    return WorkflowsConfigInvalid(f"orders are refused until workflows.yaml is fixed: {error.detail}", issues=issues)


_caches: dict[Path, WorkflowsConfigCache] = {}
_caches_lock = threading.Lock()


def workflows_config(settings: Settings) -> WorkflowsConfig:
    """The checked config of `settings.config_dir`, from a per-directory cache shared by the process."""
    key = settings.config_dir.resolve()
    with _caches_lock:
        cache = _caches.get(key)
        if cache is None:
            cache = _caches[key] = WorkflowsConfigCache(settings)
    return cache.get()
