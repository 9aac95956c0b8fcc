"""Schemathesis against the application's own OpenAPI document, with every check on.

Every operation the app documents is exercised with generated valid and invalid input, once with a vendor
administrator's key and once without a key, on SQLite with the rights world seeded. The checks include
documentation conformance: no 5xx, no status code, content type or header the document does not list, no
body that contradicts its schema, invalid input refused, valid input not refused for being malformed.
Temporal is unreachable here, so operations that start or steer workflows answer their documented 503.
"""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.result import Ok
from schemathesis.schemas import BaseSchema

from api.app import create_app
from tessera.db import create_engine, create_session_factory
from tessera.settings import REPO_ROOT, Settings
from tests.conftest import TEST_SECRET, build_rights_world

# Business rules answer 422 to valid-looking references to objects that do not exist (an organization or a
# product named in a body); everything else a check expects of valid input stays as schemathesis has it.
ACCEPTED_FOR_VALID_INPUT = ["2xx", "401", "403", "404", "409", "422", "503"]
# Temporal is down on purpose: 503 is the documented answer of health and of workflow routes. 500 is never.
NOT_SERVER_ERRORS = ["1xx", "2xx", "3xx", "4xx", "503"]
EXAMPLES_PER_OPERATION = 12


async def _seed(url: str) -> str:
    engine = create_engine(url)
    async with create_session_factory(engine)() as session:
        world = await build_rights_world(session)
        await session.commit()
    await engine.dispose()
    return world.keys["vendor_admin"]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> tuple[Settings, str]:
    workdir = tmp_path_factory.mktemp("schemathesis")
    path = workdir / "tessera.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    key = asyncio.run(_seed(url))
    return (
        Settings(
            database_url=url,
            var_dir=workdir / "var",
            config_dir=REPO_ROOT / "config",
            secret_key=TEST_SECRET.decode(),
            temporal_address="127.0.0.1:1",
            # Generated codes and secrets are all wrong: the failure limits would answer 429 to valid input.
            activation_failure_limit_client="1000000/minute",
            activation_failure_limit_global="1000000/minute",
        ),
        key,
    )


@pytest.fixture(scope="module")
def api_schema(seeded: tuple[Settings, str]) -> BaseSchema:
    loaded = schemathesis.openapi.from_asgi("/openapi.json", create_app(seeded[0]))
    loaded.config.checks.update(included_check_names=["all"])
    loaded.config.checks.positive_data_acceptance.expected_statuses = ACCEPTED_FOR_VALID_INPUT
    loaded.config.checks.not_a_server_error.expected_statuses = NOT_SERVER_ERRORS
    return loaded


def all_checks() -> list[Any]:
    load_all_checks()  # the OpenAPI checks register themselves when their module is first imported
    checks = list(CHECKS.get_all())
    assert len(checks) >= 14, [getattr(check, "__name__", check) for check in checks]
    return checks


HYPOTHESIS = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found, in bounded time
)


def _failures(schema: BaseSchema, headers: dict[str, str]) -> tuple[Counter[int], list[str]]:
    """Run every operation in both generation modes; (statuses seen, failure reports)."""
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    checks = all_checks()
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"the document has an invalid operation: {result.err()}")
            continue
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @HYPOTHESIS
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Case[Any]) -> None:
                response = case.call_and_validate(headers=headers, checks=checks)
                statuses[response.status_code] += 1

            try:
                run()
            except Unsatisfiable:
                pass  # an operation without input has no invalid input to send
            except (Exception, BaseExceptionGroup) as failure:
                failures.append(f"{operation.label} [{mode.value}]: {str(failure)[:3000]}")
    return statuses, failures


def test_with_an_admin_key(api_schema: BaseSchema, seeded: tuple[Settings, str]) -> None:
    statuses, failures = _failures(api_schema, {"Authorization": f"Bearer {seeded[1]}"})
    assert not failures, "\n\n".join(failures)
    # The run reached the routes' logic: successes, refusals of bad input, and objects not found.
    assert all(statuses[status] for status in (200, 201, 404, 422)), statuses


def test_without_a_key(api_schema: BaseSchema) -> None:
    statuses, failures = _failures(api_schema, {})
    assert not failures, "\n\n".join(failures)
    assert statuses[401] > 100, statuses
