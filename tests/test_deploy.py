"""The service unit and the container recipe: checked by the tools that know them, here where
they exist (a message says why a check is skipped)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "systemd" / "reachable.service"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
REACHABLE = Path(sys.executable).parent / "reachable"
HADOLINT = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not on this machine")
@pytest.mark.parametrize(
    ("unit", "name"), [("reachable.service", "reachable.service"), ("reachable@.service", "reachable@2.service")]
)
def test_systemd_analyze_verifies_the_unit(tmp_path: Path, unit: str, name: str) -> None:
    # verify checks that ExecStart exists: point it at this machine's installed command.
    written = tmp_path / name
    written.write_text((UNIT.parent / unit).read_text().replace("/opt/reachable/.venv/bin/reachable", str(REACHABLE)))
    run = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(written)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0 and run.stderr.strip() == "", run.stderr


def test_the_unit_runs_confined_with_its_own_user_and_state_folder() -> None:
    text = UNIT.read_text()
    for line in (
        "DynamicUser=yes",
        "StateDirectory=reachable",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "Restart=on-failure",
        "EnvironmentFile=/etc/reachable/credentials.env",
        "UMask=0077",
    ):
        assert f"\n{line}\n" in text, line
    assert "REACHABLE_TELEGRAM_TOKEN=" not in text and "REACHABLE_ENCRYPTION_KEY=" not in text


@pytest.mark.skipif(HADOLINT is None, reason="hadolint is not installed (make test installs it)")
def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    assert HADOLINT is not None
    run = subprocess.run([HADOLINT, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_container_runs_as_a_numeric_non_root_user_with_data_as_a_volume_and_a_healthcheck() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^USER [1-9][0-9]{3,}$", text, re.MULTILINE)
    assert 'VOLUME ["/data"]' in text and "/healthz" in text and "REACHABLE_HEALTH_LISTEN=127.0.0.1:8082" in text
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert version is not None and f'"reachable[postgres]=={version.group(1)}"' in text


TEMPLATE = ROOT / "deploy" / "systemd" / "reachable@.service"
COMPOSE = ROOT / "deploy" / "compose" / "compose.yaml"


def test_each_instance_of_the_template_has_its_own_state_and_port_and_shares_the_secrets() -> None:
    text = TEMPLATE.read_text()
    for line in (
        "StateDirectory=reachable-%i",
        "EnvironmentFile=/etc/reachable/credentials.env",
        "EnvironmentFile=/etc/reachable/instance-%i.env",
        "ExecStart=/opt/reachable/.venv/bin/reachable run --webhook",
        "DynamicUser=yes",
        "UMask=0077",
    ):
        assert f"\n{line}\n" in text, line


def test_the_compose_file_runs_two_webhook_instances_on_postgresql_behind_the_proxy() -> None:
    import yaml

    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    instances = [services[name] for name in ("reachable-1", "reachable-2")]
    for instance in instances:
        assert instance["command"] == ["run", "--webhook"] and instance["read_only"] is True
        assert instance["env_file"] == "credentials.env" and instance["depends_on"]["postgres"]
        assert instance["networks"] == ["inside"], "instances are not reachable from outside"
    assert instances[0]["volumes"] != instances[1]["volumes"]
    assert compose["networks"]["inside"]["internal"] is True
    assert services["caddy"]["networks"] == ["inside", "outside"]
    spread = services["spread"]["command"]
    assert spread[0] == "spread" and spread[-2:] == ["http://reachable-1:8080", "http://reachable-2:8080"]
    caddy = (COMPOSE.parent / "Caddyfile").read_text()
    directives = [line.strip() for line in caddy.splitlines() if not line.startswith("#")]
    assert "reverse_proxy /telegram spread:8090" in directives
    assert not any(line.startswith("log") for line in directives), "no access log"
    example = (COMPOSE.parent / "credentials.env.example").read_text()
    assert "REACHABLE_DATABASE_URL=postgresql://" in example and "REACHABLE_ENCRYPTION_KEY=\n" in example
    assert "PASSWORD" not in COMPOSE.read_text().replace("POSTGRES_PASSWORD", ""), "no secret in the compose file"
