"""The check every process that runs workflows does before it starts: an invalid workflows.yaml stops it."""

from __future__ import annotations

from tessera.catalog.loader import read_catalog
from tessera.processes.checks import CatalogCodes
from tessera.processes.loader import load_workflows
from tessera.processes.schema import WorkflowsConfig
from tessera.settings import Settings


def load_configured_workflows(settings: Settings) -> WorkflowsConfig:
    """Load `<config_dir>/workflows.yaml` with its templates (and the catalog file, when there is one).

    Raises ConfigError listing every problem with file, line and column.
    """
    catalog = settings.catalog_file
    codes = CatalogCodes.from_catalog(read_catalog(catalog)) if catalog.exists() else None
    return load_workflows(settings.config_dir / "workflows.yaml", settings.config_dir / "templates", codes)
