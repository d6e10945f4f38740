"""The twin's configuration: the Compose file's values with only host names changed.

These tests construct the twin without starting it, so they take well under a second.
"""

from __future__ import annotations

import json
import re

import pytest
from support import REPOSITORY

from dp_stack import compose
from dp_stack.airflow_services import LocalTwin, TwinSettings

# Compose service names as they appear in URLs, after "//" or "@".
SERVICE_HOSTS = ("airflow-apiserver:", "object-store:", "postgres:", "redis:", "mlflow:")
SERVICE_HOST_IN_URL = re.compile(r"[/@](?:" + "|".join(SERVICE_HOSTS) + r")\d")


@pytest.fixture
def local_twin_config(tmp_path):
    return LocalTwin(TwinSettings(home=tmp_path, database_prefix="dp_twin_config_test"))


@pytest.fixture
def compose_env():
    variables = compose.read_env_file(REPOSITORY / ".env.example")
    document = compose.load_compose(REPOSITORY / "docker-compose.yaml", variables)
    return compose.service_environment(document, "airflow-scheduler")


def test_twin_sets_every_compose_variable(local_twin_config, compose_env):
    missing = sorted(set(compose_env) - set(local_twin_config.env))
    assert missing == []


def test_twin_names_no_compose_host(local_twin_config):
    environments = {"airflow": local_twin_config.env, "mlflow": local_twin_config.mlflow_env}
    for service, env in environments.items():
        for name, value in env.items():
            if name.startswith(("AIRFLOW", "MLFLOW", "AWS", "DP_PIPELINE")):
                assert not SERVICE_HOST_IN_URL.search(value), f"{service} {name}={value}"


def test_twin_keeps_compose_values_apart_from_hosts(local_twin_config, compose_env):
    unchanged = [
        "AIRFLOW__CORE__AUTH_MANAGER",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
        "AIRFLOW__CORE__LOAD_EXAMPLES",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION",
        "AIRFLOW__API_AUTH__JWT_ISSUER",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK",
        "DP_PIPELINE_BUCKET",
        "DP_PIPELINE_MODEL_NAME",
        "DP_PIPELINE_EXPERIMENT",
        "MLFLOW_TRACKING_USERNAME",
    ]
    for name in unchanged:
        assert local_twin_config.env[name] == compose_env[name], name


def test_twin_generates_every_secret(local_twin_config):
    placeholders = [
        name for name, value in local_twin_config.variables.items() if "change-me-" in value
    ]
    assert placeholders == []
    for env in (local_twin_config.env, local_twin_config.mlflow_env):
        leaked = [name for name, value in env.items() if "change-me-" in value]
        assert leaked == []


def test_twin_fernet_key_is_valid(local_twin_config):
    from cryptography.fernet import Fernet

    Fernet(local_twin_config.env["AIRFLOW__CORE__FERNET_KEY"])


def test_twin_database_urls_use_psycopg2(local_twin_config):
    env = local_twin_config.env
    airflow_url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert airflow_url.startswith("postgresql+psycopg2://")
    assert airflow_url.endswith("/dp_twin_config_test_airflow")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    mlflow_env = local_twin_config.mlflow_env
    assert mlflow_env["MLFLOW_BACKEND_STORE_URI"].endswith("/dp_twin_config_test_mlflow")
    assert mlflow_env["MLFLOW_AUTH_DATABASE_URI"].endswith("/dp_twin_config_test_mlflow_auth")


def test_twin_execution_api_is_local_api_server(local_twin_config):
    url = local_twin_config.env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    assert url == f"{local_twin_config.api_url}/execution/"


def test_twin_s3_connection_points_at_local_server(local_twin_config):
    env = local_twin_config.env
    connection = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert connection["extra"]["endpoint_url"] == local_twin_config.s3_url
    assert connection["login"] == env["AWS_ACCESS_KEY_ID"]
    assert env["AWS_ENDPOINT_URL_S3"] == local_twin_config.s3_url


def test_twin_services_are_loopback_only(local_twin_config):
    for name, value in local_twin_config.env.items():
        # The data source is the UCI download URL unless a test overrides it.
        if name.startswith(("AIRFLOW", "MLFLOW", "AWS")):
            for host in re.findall(r"https?://([^:/]+)", value):
                assert host == "127.0.0.1", f"{name}={value}"


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("$A/b", {"A": "x"}, "x/b"),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A-d}", {"A": ""}, ""),
        ("${A-d}", {}, "d"),
        ("${A:+set}", {"A": "x"}, "set"),
        ("${A:+set}", {"A": ""}, ""),
        ("${A:-${B}}", {"B": "y"}, "y"),
        ("$${HOSTNAME}", {"HOSTNAME": "no"}, "${HOSTNAME}"),
        ("${A:?A is required}", {"A": "x"}, "x"),
    ],
)
def test_interpolate_follows_compose_rules(text, variables, expected):
    assert compose.interpolate(text, variables) == expected


def test_interpolate_raises_required_message():
    with pytest.raises(compose.ComposeError, match="A must be set in .env"):
        compose.interpolate("${A:?A must be set in .env}", {"A": ""})
