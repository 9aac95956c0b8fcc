"""docker-compose.yml: valid for Compose, and shaped the way the production deployment relies on.

No Docker engine runs where these tests run, so they check the file, not a running stack: `docker-compose
config -q` parses, validates and interpolates it, and the YAML itself is read for what matters to an
operator (workers scale, the order of start-up, the settings every Tessera process needs).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
from ruamel.yaml import YAML

from tessera.search_attributes import SEARCH_ATTRIBUTES

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
REQUIRE_TOOLS = os.environ.get("CI") == "true" or os.environ.get("TESSERA_REQUIRE_TOOLS") == "1"

# What an operator must set; the file refuses to render without each of them.
REQUIRED_VARIABLES = {
    "TESSERA_SECRET_KEY": "test-secret-key-not-for-production",
    "TESSERA_POSTGRES_PASSWORD": "tessera-test-password",
    "TEMPORAL_POSTGRES_PASSWORD": "temporal-test-password",
}
TESSERA_SERVICES = {"migrate", "api", "worker"}

Service = dict[str, Any]


@pytest.fixture
def docker_compose() -> str:
    """The docker-compose binary; missing is a failure where the tools are required (CI), a skip elsewhere."""
    path = shutil.which("docker-compose")
    if path is None:
        message = "docker-compose is not installed (apt-get install -y --no-install-recommends docker-compose)"
        if REQUIRE_TOOLS:
            pytest.fail(message)
        pytest.skip(message)
    return path


def _compose_config(docker_compose: str, tmp_path: Path, variables: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `docker-compose config -q` with exactly `variables` for the deployment's settings."""
    # Neither the caller's shell nor an `.env` next to the compose file may supply what the test leaves out.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TESSERA_", "TEMPORAL_", "COMPOSE_", "DOCKER_"))
    }
    env.update(variables)
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    return subprocess.run(
        [docker_compose, "--env-file", str(empty_env_file), "-f", str(COMPOSE_FILE), "config", "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_compose_file_is_valid_with_the_required_variables(docker_compose: str, tmp_path: Path) -> None:
    result = _compose_config(docker_compose, tmp_path, REQUIRED_VARIABLES)

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", sorted(REQUIRED_VARIABLES))
def test_compose_file_refuses_to_render_without_a_secret(docker_compose: str, tmp_path: Path, missing: str) -> None:
    variables = {name: value for name, value in REQUIRED_VARIABLES.items() if name != missing}

    result = _compose_config(docker_compose, tmp_path, variables)

    assert result.returncode != 0
    assert missing in result.stderr + result.stdout


# --- the structure, read from the YAML itself ------------------------------------------------------------


@pytest.fixture(scope="module")
def services() -> dict[str, Service]:
    document = YAML(typ="safe").load(COMPOSE_FILE.read_text())
    return cast(dict[str, Service], document["services"])


def _environment(service: Service) -> dict[str, str]:
    """A service's environment as a mapping, whichever of Compose's two spellings the file uses."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(cast(str, item).partition("=")[::2] for item in environment)
    return {str(name): str(value) for name, value in cast(dict[str, object], environment).items()}


def _dependencies(service: Service) -> dict[str, str]:
    """Which services this one waits for, and for what condition."""
    depends_on = service.get("depends_on") or {}
    if isinstance(depends_on, list):
        return dict.fromkeys(cast(list[str], depends_on), "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends_on.items()}


def _script(service: Service) -> str:
    command = service.get("command") or []
    return command if isinstance(command, str) else "\n".join(cast(list[str], command))


def test_the_tessera_services_are_the_ones_built_from_this_repository(services: dict[str, Service]) -> None:
    built = {name for name, service in services.items() if "build" in service}

    assert built == TESSERA_SERVICES


def test_worker_can_be_scaled(services: dict[str, Service]) -> None:
    worker = services["worker"]

    # A fixed container name or a published host port would make a second replica fail to start.
    assert "container_name" not in worker
    assert "ports" not in worker


def test_api_and_worker_start_after_migrations_and_the_temporal_setup(services: dict[str, Service]) -> None:
    for name in ("api", "worker"):
        dependencies = _dependencies(services[name])
        assert dependencies.get("migrate") == "service_completed_successfully", name
        assert dependencies.get("temporal-setup") == "service_completed_successfully", name


def test_one_shot_jobs_wait_for_what_they_need(services: dict[str, Service]) -> None:
    assert _dependencies(services["migrate"]).get("tessera-postgres") == "service_healthy"
    assert _dependencies(services["temporal-setup"]).get("temporal") == "service_healthy"
    assert _dependencies(services["temporal"]).get("temporal-schema") == "service_completed_successfully"
    script = _script(services["migrate"])
    steps = ["tessera migrate", "tessera catalog load", "tessera bootstrap"]
    assert all(step in script for step in steps)
    assert [script.index(step) for step in steps] == sorted(script.index(step) for step in steps)


@pytest.mark.parametrize("name", sorted(TESSERA_SERVICES))
def test_every_tessera_service_gets_database_temporal_and_secret(services: dict[str, Service], name: str) -> None:
    environment = _environment(services[name])

    assert environment["TESSERA_DATABASE_URL"].startswith("postgresql://")
    assert environment["TESSERA_TEMPORAL_ADDRESS"] == "temporal:7233"
    # `:?` makes Compose stop with a message instead of starting with an empty secret.
    assert environment["TESSERA_SECRET_KEY"].startswith("${TESSERA_SECRET_KEY:?")


def test_every_search_attribute_is_registered_with_its_type(services: dict[str, Service]) -> None:
    registered: dict[str, str] = {}
    for service in services.values():
        pattern = r"search-attribute create\b[^\n]*?--name[ =](\w+)[^\n]*?--type[ =](\w+)"
        registered.update(re.findall(pattern, _script(service)))

    assert registered == SEARCH_ATTRIBUTES


def test_only_loopback_ports_are_published(services: dict[str, Service]) -> None:
    published = {name: service["ports"] for name, service in services.items() if "ports" in service}

    assert "127.0.0.1:8000:8000" in published["api"]
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_images_are_pinned(services: dict[str, Service]) -> None:
    for name, service in services.items():
        if "build" in service:
            continue
        # `${TEMPORAL_VERSION:-1.31.2}` pins through its default; a bare name or `latest` pins nothing.
        image = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(service["image"]))
        tag = image.partition(":")[2]
        assert re.fullmatch(r"\d+(\.\d+)+", tag), f"{name}: {service['image']} is not pinned to a version"
