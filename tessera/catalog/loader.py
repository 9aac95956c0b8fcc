"""`config/catalog.yaml` into the database: all of it or nothing, every error with file, line and field."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from tessera.catalog.schema import CatalogFile
from tessera.catalog.service import LoadSummary, apply_catalog, catalog_problems, group_codes
from tessera.errors import ConfigError
from tessera.yamlsource import load_yaml


def read_catalog(path: Path, known_groups: set[str] | None = None) -> CatalogFile:
    """Parse and check the file; raise ConfigError listing every problem found."""
    document = load_yaml(path)
    catalog = document.validate(CatalogFile)
    problems = catalog_problems(catalog, known_groups or set())
    if problems:
        issues = [document.issue(where, message) for where, message in problems]
        raise ConfigError(f"{path}: {len(issues)} error(s)", issues=issues)
    return catalog


async def load_catalog(session: AsyncSession, path: Path) -> LoadSummary:
    """Check `path` completely before writing anything, then create or update what it describes."""
    catalog = read_catalog(path, await group_codes(session))
    return await apply_catalog(session, catalog)
