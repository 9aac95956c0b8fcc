"""`tessera catalog load` and `catalog check` as an analyst runs them: the real CLI, on SQLite and PostgreSQL.

A broken file is reported with its name, line, column and field and changes nothing, not even `updated_at`;
a valid file loaded twice changes nothing the second time; a changed entry updates that entry only.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tessera.catalog.loader import load_catalog
from tessera.db import unit_of_work
from tessera.models import Product
from tessera.settings import REPO_ROOT

DATA = Path(__file__).parent / "data" / "catalog"
VALID = DATA / "valid.yaml"
SHIPPED = REPO_ROOT / "config" / "catalog.yaml"

Snapshot = dict[str, dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


async def tessera(tmp_path: Path, database_url: str, *args: str) -> Run:
    """Run `python -m tessera.cli ARGS` in a fresh process, configured only through its environment.

    It runs in the repository, as an analyst would; every path it is given is absolute.
    """
    env = {
        **os.environ,
        "TESSERA_DATABASE_URL": database_url,
        "TESSERA_SECRET_KEY": "x",
        "TESSERA_VAR_DIR": str(tmp_path / "cli-var"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tessera.cli",
        *args,
        env=env,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


async def snapshot(engine: AsyncEngine) -> Snapshot:
    """Every catalog row with every column, `updated_at` included, by code; read on a fresh connection."""
    keys = {"product_group": "code", "product": "code", "catalog_setting": "key"}
    tables: Snapshot = {}
    async with engine.connect() as connection:
        for table, key in keys.items():
            rows = await connection.execute(text(f'SELECT * FROM "{table}"'))
            tables[table] = {row._mapping[key]: dict(row._mapping) for row in rows}
    return tables


async def stored_product(sessions: async_sessionmaker[AsyncSession], code: str) -> Product:
    async with sessions() as session:
        product = await session.scalar(select(Product).where(Product.code == code))
    assert product is not None
    return product


# --- 1. every kind of error: located, non-zero exit, nothing written ---------------------------------------


@dataclass(frozen=True)
class Broken:
    """A fixture file with one error; `line` and `column` are those of the offending key."""

    name: str
    line: int
    column: int
    field: str
    message: str

    @property
    def file(self) -> Path:
        return DATA / f"broken_{self.name}.yaml"


BROKEN = [
    Broken("unknown_key", 19, 5, "products.0.colour", "unknown key"),
    Broken("wrong_type", 19, 5, "products.0.max_activations", "Input should be a valid integer"),
    Broken("default_not_allowed", 25, 9, "products.0.fields.0.default", "31 is not among the allowed values: 5, 30"),
    Broken("min_above_max", 30, 9, "products.0.fields.1.max", "max (50) is smaller than min (60)"),
    Broken("duplicate_product", 41, 5, "products.2.code", "product 'PRO-CAD' is defined twice"),
    Broken("duplicate_group", 13, 5, "product_groups.2.code", "product group 'CAD' is defined twice"),
    Broken("unknown_group", 16, 5, "products.0.group", "unknown product group 'GAMES' (known: CAD, SIM)"),
]


def assert_located(run: Run, case: Broken) -> None:
    """The one error, as `FILE:LINE:COLUMN: FIELD: MESSAGE` on stderr, and exit status 2."""
    assert run.code == 2, run
    assert "Traceback" not in run.err
    assert run.err.startswith(f"error: {case.file}: 1 error(s)\n"), run.err
    assert f"\n  {case.file}:{case.line}:{case.column}: {case.field}: " in run.err, run.err
    assert case.message in run.err


@pytest.mark.parametrize("case", BROKEN, ids=lambda case: case.name)
async def test_broken_catalog_is_reported_and_changes_nothing(
    case: Broken,
    database_url: str,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    async with unit_of_work(sessions) as session:
        await load_catalog(session, VALID)
    before = await snapshot(engine)
    assert {table: sorted(rows) for table, rows in before.items()} == {
        "product_group": ["CAD", "SIM"],
        "product": ["PRO-CAD", "SIM-CLOUD-Y"],
        "catalog_setting": ["customer_fields"],
    }

    run = await tessera(tmp_path, database_url, "catalog", "load", str(case.file))

    assert_located(run, case)
    assert run.out == ""
    assert await snapshot(engine) == before


# --- 2. idempotent loading; a change touches only what changed ---------------------------------------------


async def test_shipped_catalog_loads_once_and_then_is_unchanged(
    database_url: str, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    first = await tessera(tmp_path, database_url, "catalog", "load", str(SHIPPED))
    assert first.code == 0, first
    assert first.out.startswith("created group ")
    loaded = await snapshot(engine)
    assert all(loaded.values())

    second = await tessera(tmp_path, database_url, "catalog", "load", str(SHIPPED))
    assert second.code == 0, second
    assert second.out.startswith("catalog unchanged (")
    assert await snapshot(engine) == loaded

    # Change the price of one product and give another a new module; nothing else changes.
    yaml = YAML(typ="rt")
    document = yaml.load(SHIPPED.read_text(encoding="utf-8"))
    priced = next(product for product in document["products"] if "price" in product)
    other = next(product for product in reversed(document["products"]) if product is not priced)
    priced_code, other_code = str(priced["code"]), str(other["code"])
    priced["price"]["amount"] = "1234.50"
    other.setdefault("modules", []).append({"code": "ADDED-IN-TEST", "name": {"en": "Added"}})
    changed = tmp_path / "catalog.yaml"
    buffer = StringIO()
    yaml.dump(document, buffer)
    changed.write_text(buffer.getvalue(), encoding="utf-8")

    third = await tessera(tmp_path, database_url, "catalog", "load", str(changed))

    assert third.code == 0, third
    in_file_order = [str(product["code"]) for product in document["products"]]
    updated = [f"product {code}" for code in in_file_order if code in (priced_code, other_code)]
    assert third.out.startswith(f"updated {', '.join(updated)}; "), third.out
    after = await snapshot(engine)
    assert (await stored_product(sessions, priced_code)).price_amount == Decimal("1234.50")
    assert (await stored_product(sessions, other_code)).modules[-1]["code"] == "ADDED-IN-TEST"
    for code in (priced_code, other_code):
        assert after["product"][code]["updated_at"] > loaded["product"][code]["updated_at"]
    untouched = set(loaded["product"]) - {priced_code, other_code}
    assert untouched
    assert {code: after["product"][code] for code in untouched} == {code: loaded["product"][code] for code in untouched}
    assert after["product_group"] == loaded["product_group"]
    assert after["catalog_setting"] == loaded["catalog_setting"]


async def test_groups_already_in_the_database_count_as_known(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    async with unit_of_work(sessions) as session:
        await load_catalog(session, VALID)
    only_product = tmp_path / "more.yaml"
    only_product.write_text("products:\n  - {code: EXTRA, group: SIM, name: {en: Extra}, kind: perpetual}\n")

    async with unit_of_work(sessions) as session:
        summary = await load_catalog(session, only_product)

    assert summary.created == ["product EXTRA"]
    assert (await stored_product(sessions, "EXTRA")).kind == "perpetual"


# --- 3. syntax errors, duplicate keys, missing files -------------------------------------------------------


async def test_yaml_problems_name_the_line_and_load_nothing(sqlite_url: str, tmp_path: Path) -> None:
    syntax = tmp_path / "syntax.yaml"
    syntax.write_text("product_groups:\n  - code: CAD\n    name: {en: CAD\n")
    duplicate = tmp_path / "duplicate.yaml"
    duplicate.write_text("product_groups:\n  - code: CAD\n    name: {en: CAD}\n    code: SIM\n")
    missing = tmp_path / "nowhere" / "catalog.yaml"

    runs = await asyncio.gather(
        tessera(tmp_path, sqlite_url, "catalog", "load", str(syntax)),
        tessera(tmp_path, sqlite_url, "catalog", "check", str(duplicate)),
        tessera(tmp_path, sqlite_url, "catalog", "load", str(missing)),
    )

    for run in runs:
        assert run.code == 2, run
        assert "Traceback" not in run.err
    syntax_run, duplicate_run, missing_run = runs
    assert f"error: {syntax}: invalid YAML" in syntax_run.err
    assert f"{syntax}:4:1: (syntax): " in syntax_run.err
    assert "flow mapping" in syntax_run.err
    assert f"{duplicate}:4:5: (syntax): " in duplicate_run.err
    assert 'duplicate key "code"' in duplicate_run.err
    assert missing_run.err.startswith(f"error: {missing}: file not found")


# --- 5. `catalog check` ------------------------------------------------------------------------------------


async def test_check_counts_a_valid_file_and_locates_every_kind_of_error(tmp_path: Path) -> None:
    unused = f"sqlite+aiosqlite:///{tmp_path / 'never-created.db'}"

    valid, *broken = await asyncio.gather(
        tessera(tmp_path, unused, "catalog", "check", str(VALID)),
        *(tessera(tmp_path, unused, "catalog", "check", str(case.file)) for case in BROKEN),
    )

    assert valid.code == 0, valid
    assert valid.out == "ok: 2 product groups, 2 products\n"
    for run, case in zip(broken, BROKEN, strict=True):
        assert_located(run, case)
    assert not (tmp_path / "never-created.db").exists()
