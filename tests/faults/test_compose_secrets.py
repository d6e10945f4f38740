"""Static checks that the Compose deployment has no working default credential.

tests/deployment/test_compose.py already checks that every secret variable is written
``${NAME:?...}``, has a change-me placeholder in .env.example and passes through the
check-secrets service, and that MLflow runs the basic-auth app. These tests look for the
other ways in which a default password could slip through. They check for literal values
in environment entries, URLs, JSON connections and command lines. They run the
check-secrets script itself, and they check MLflow's own defaults, Airflow's login and the
authentication of every service that publishes a port.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import re
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml
from support import REPOSITORY

COMPOSE_FILE = REPOSITORY / "docker-compose.yaml"
ENV_EXAMPLE = REPOSITORY / ".env.example"
CHECK_SECRETS = REPOSITORY / "docker/preflight/check-secrets.sh"

SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|_KEY_ID$|_AUTH$")
REQUIRED_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):\?[^}]*\}")
# A password is a ${...} reference, whose error message may contain spaces, or plain text.
URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:(?P<password>(?:\$\{[^}]*\}|[^@\s/$])*)@")
JSON_PASSWORD = re.compile(r'"password"\s*:\s*"(?P<password>[^"]*)"')
SECRET_FLAG = re.compile(r"^--?[\w.-]*(?:pass|secret|token)[\w.-]*$", re.IGNORECASE)
SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


def environment(service: dict) -> dict[str, str]:
    value = service.get("environment") or {}
    if isinstance(value, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in value)
    return {key: "" if item is None else str(item) for key, item in value.items()}


def command_lines(service: dict) -> list[list[str]]:
    lines = []
    for key in ("command", "entrypoint"):
        value = service.get(key)
        if isinstance(value, str):
            lines.append(value.split())
        elif isinstance(value, list):
            lines.append([str(item) for item in value])
    return lines


def all_strings(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [text for value in node.values() for text in all_strings(value)]
    if isinstance(node, list):
        return [text for value in node for text in all_strings(value)]
    return []


def is_required(value: str) -> bool:
    """Whether ``value`` is exactly one variable that Compose refuses to leave unset."""
    return REQUIRED_REFERENCE.fullmatch(value.strip()) is not None


def secret_settings(services: dict[str, dict]) -> list[tuple[str, str, str]]:
    found = []
    for name, service in services.items():
        for key, value in environment(service).items():
            # A *_FILE setting names where a secret is, not the secret.
            if SECRET_KEY.search(key) and not key.endswith("_FILE"):
                found.append((name, key, value))
    return found


def test_secret_settings_are_required_variables(services):
    settings = secret_settings(services)
    assert len(settings) >= 10, f"found only {settings}"
    literal = [(name, key) for name, key, value in settings if not is_required(value)]
    assert not literal, f"secret settings with a literal or default value: {literal}"


def test_urls_embed_only_required_passwords(compose):
    passwords = [
        m["password"] for text in all_strings(compose) for m in URL_PASSWORD.finditer(text)
    ]
    assert passwords, "found no URL with credentials; the pattern no longer matches"
    literal = [password for password in passwords if password and not is_required(password)]
    assert not literal, f"URLs with literal passwords: {literal}"


def test_json_connections_embed_only_required_passwords(compose):
    passwords = [
        m["password"] for text in all_strings(compose) for m in JSON_PASSWORD.finditer(text)
    ]
    assert passwords, "found no JSON connection; the pattern no longer matches"
    literal = [password for password in passwords if not is_required(password)]
    assert not literal, f"JSON connections with literal passwords: {literal}"


def test_commands_pass_no_literal_secret(services):
    literal = []
    for name, service in services.items():
        for line in command_lines(service):
            for index, argument in enumerate(line):
                flag, has_value, value = argument.partition("=")
                if not SECRET_FLAG.match(flag):
                    continue
                if not has_value:
                    value = line[index + 1] if index + 1 < len(line) else ""
                if not is_required(value):
                    literal.append((name, argument))
    assert not literal, f"command-line secrets that are not required variables: {literal}"


def check_secrets(values: dict[str, str]) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ["PATH"],
        **{f"SECRET_{name}": value for name, value in values.items()},
    }
    return subprocess.run(
        ["sh", str(CHECK_SECRETS)], env=env, capture_output=True, text=True, timeout=30
    )


@pytest.fixture(scope="module")
def checked_secret_names(services) -> list[str]:
    checked = environment(services["check-secrets"])
    return sorted(key.removeprefix("SECRET_") for key in checked if key.startswith("SECRET_"))


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def test_check_secrets_rejects_env_example(checked_secret_names, env_example):
    placeholders = {name: env_example[name] for name in checked_secret_names}
    result = check_secrets(placeholders)
    assert result.returncode == 1, "the .env.example placeholders passed the check"
    for name, value in placeholders.items():
        assert f"check-secrets: {name} still has the placeholder value" in result.stderr
        assert value not in result.stdout + result.stderr, f"the check printed {name}'s value"


def test_check_secrets_accepts_generated(checked_secret_names):
    result = check_secrets({name: secrets.token_hex(32) for name in checked_secret_names})
    assert result.returncode == 0, result.stderr
    assert f"{len(checked_secret_names)} secrets checked" in result.stdout


def test_check_secrets_rejects_one_placeholder(checked_secret_names, env_example):
    values = {name: secrets.token_hex(32) for name in checked_secret_names}
    name = checked_secret_names[0]
    values[name] = env_example[name]
    result = check_secrets(values)
    assert result.returncode == 1
    assert result.stderr.count("still has the placeholder value") == 1


def test_mlflow_ships_no_admin_password():
    # The deployment relies on MLflow refusing to create its admin user without
    # MLFLOW_AUTH_ADMIN_PASSWORD; older MLflow releases shipped the password password1234.
    spec = importlib.util.find_spec("mlflow.server.auth")
    ini = Path(spec.origin).with_name("basic_auth.ini")
    assert ini.is_file(), f"{ini} not found; MLflow's auth app has moved"
    parser = configparser.ConfigParser()
    parser.read(ini)
    assert not parser["mlflow"].get("admin_password"), f"{ini} sets a default admin password"


def test_mlflow_admin_password_is_required(services):
    mlflow = environment(services["mlflow"])
    assert is_required(mlflow["MLFLOW_AUTH_ADMIN_PASSWORD"])
    assert is_required(mlflow["MLFLOW_FLASK_SERVER_SECRET_KEY"])


def test_airflow_api_requires_login(compose, services):
    common = environment({"environment": compose["x-airflow-common-env"]})
    assert common["AIRFLOW__CORE__AUTH_MANAGER"] == SIMPLE_AUTH_MANAGER
    # The simple auth manager lets everyone in as admin when this option is true.
    assert common.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False") != "True"
    assert common["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    init = environment(services["airflow-init"])
    assert is_required(init["AIRFLOW_ADMIN_PASSWORD"])
    api = services["airflow-apiserver"]
    assert environment(api).get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS") in (None, "False")


def _mlflow_authenticates(service: dict) -> bool:
    return any("--app-name=basic-auth" in line for line in command_lines(service))


def _airflow_authenticates(service: dict) -> bool:
    return "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS" not in environment(service)


def _s3_authenticates(service: dict) -> bool:
    env = environment(service)
    return is_required(env.get("AWS_ACCESS_KEY_ID", "")) and is_required(
        env.get("AWS_SECRET_ACCESS_KEY", "")
    )


def _model_server_authenticates(service: dict) -> bool:
    return is_required(environment(service).get("DP_SERVING_TOKEN", ""))


# The authentication of each service that publishes a port, besides the model server. A
# new published service fails test_published_services_authenticate until it gets a check.
AUTHENTICATION_CHECKS = {
    "airflow-apiserver": _airflow_authenticates,
    "mlflow": _mlflow_authenticates,
    "object-store": _s3_authenticates,
}


def model_server_services(services: dict[str, dict]) -> list[str]:
    """Return the services that run the model server (dp_serving or docker/serving)."""
    names = []
    for name, service in services.items():
        build = service.get("build") or {}
        dockerfile = build.get("dockerfile", "") if isinstance(build, dict) else ""
        commands = " ".join(" ".join(line) for line in command_lines(service))
        if "dp_serving" in commands or dockerfile.startswith("docker/serving"):
            names.append(name)
    return names


def test_published_services_authenticate(services):
    checks = dict(AUTHENTICATION_CHECKS)
    checks.update({name: _model_server_authenticates for name in model_server_services(services)})
    published = [name for name, service in services.items() if service.get("ports")]
    assert published, "no service publishes a port"
    unknown = sorted(set(published) - checks.keys())
    assert not unknown, (
        f"{unknown} publish ports, but no authentication check exists for them; add one to "
        "AUTHENTICATION_CHECKS"
    )
    for name in published:
        assert checks[name](services[name]), f"{name} does not authenticate"


def test_model_server_requires_token(services):
    names = model_server_services(services)
    if not names:
        pytest.skip("docker-compose.yaml has no model server service yet")
    for name in names:
        assert _model_server_authenticates(services[name]), (
            f"{name} must set DP_SERVING_TOKEN: ${{DP_SERVING_TOKEN:?...}}"
        )
