"""Static checks of docker-compose.yaml, its Dockerfiles and .env.example.

No Docker engine runs these files in the test suite, so the tests read them: the Compose
Specification schema, the variables that Compose interpolates, the service dependencies and
the settings that connect Airflow, MLflow, PostgreSQL and the object store.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
REQUIREMENTS = REPO_ROOT / "requirements.txt"
PIPELINE_CONFIG = REPO_ROOT / "include" / "dp_pipeline" / "config.py"
POSTGRES_INIT = REPO_ROOT / "docker" / "postgres" / "init-databases.sh"
AIRFLOW_DOCKERFILE = REPO_ROOT / "docker" / "airflow" / "Dockerfile"
MLFLOW_DOCKERFILE = REPO_ROOT / "mlflow" / "Dockerfile"
MLFLOW_REQUIREMENTS = REPO_ROOT / "mlflow" / "requirements.txt"

# Compose Specification JSON schema (draft-07), copied unchanged from schemas/compose.schema.json
# of the npm package dclint 3.1.0 (MIT licence). dclint's update-compose-schema script fetches
# that file from the compose-spec/compose-spec repository, whose licence is Apache-2.0. To
# update it, copy the file from a newer dclint release and replace the hash below.
SCHEMA_FILE = Path(__file__).with_name("compose-spec.schema.json")
SCHEMA_SHA256 = "46b7d35f19dd93a05f8fea530291bf84d881c1791ec167ecf0e6fb94e639d496"

AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
AIRFLOW_COMMON_ENV_KEY = "x-airflow-common-env"
CELERY_PROFILE = "celery"
CELERY_SERVICES = {"redis", "airflow-worker"}
SECRET_CHECK_SERVICE = "check-secrets"
POSTGRES_SERVICE = "postgres"
OBJECT_STORE_SERVICE = "object-store"
MLFLOW_SERVICE = "mlflow"
BUCKET_SERVICE = "create-buckets"
LONG_RUNNING_RESTART_POLICIES = {"always", "unless-stopped"}

# Names of credential variables, which must have no default anywhere.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|_KEY_ID$")
LOCAL_STACK_VARIABLES = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL_S3",
    "MLFLOW_S3_ENDPOINT_URL",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_BACKEND_STORE_URI",
    "MLFLOW_ARTIFACTS_DESTINATION",
]

# Compose interpolation: $$ is a literal dollar sign, then ${NAME}, ${NAME<op>argument} with the
# operators :- - :? ? :+ +, and the bare $NAME form.
INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<operator>:?[-?+])(?P<argument>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
PLACEHOLDER_PREFIX = "change-me"


class MissingVariableError(KeyError):
    """A ${NAME:?message} or ${NAME?message} reference found no value."""


# --- Helpers --------------------------------------------------------------------------------


def iter_strings(node: Any) -> Iterator[str]:
    """Yield every string value of a parsed YAML document, depth first."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from iter_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from iter_strings(item)


def variable_references(text: str) -> list[tuple[str, str | None, str | None]]:
    """Return (name, operator, argument) for each variable that Compose reads in text."""
    references = []
    for match in INTERPOLATION.finditer(text):
        if match["escaped"]:
            continue
        if match["braced"]:
            references.append((match["braced"], match["operator"], match["argument"]))
        else:
            references.append((match["bare"], None, None))
    return references


def interpolate(text: str, environment: dict[str, str]) -> str:
    """Substitute variables the way Compose does, raising MissingVariableError for ${X:?...}."""

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        operator = match["operator"]
        argument = match["argument"] or ""
        is_set = name in environment
        is_non_empty = bool(environment.get(name))
        if operator == ":-":
            return environment[name] if is_non_empty else argument
        if operator == "-":
            return environment[name] if is_set else argument
        if operator in (":?", "?"):
            present = is_non_empty if operator == ":?" else is_set
            if not present:
                raise MissingVariableError(f"{name}: {argument}")
            return environment[name]
        if operator == ":+":
            return argument if is_non_empty else ""
        if operator == "+":
            return argument if is_set else ""
        return environment.get(name, "")

    return INTERPOLATION.sub(substitute, text)


def as_mapping(environment: Any) -> dict[str, str]:
    """Normalize a service's environment, written as a mapping or a KEY=VALUE list."""
    if environment is None:
        return {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def mounts(service: dict) -> list[tuple[str, str]]:
    """Return (source, target) of each volume of a service, short or long syntax."""
    result = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            result.append((volume.get("source", ""), volume["target"]))
        else:
            source, target = volume.split(":")[:2]
            result.append((source, target))
    return result


def is_named_volume(source: str) -> bool:
    return bool(source) and not source.startswith((".", "/", "~", "$"))


def published_ports(service: dict, environment: dict[str, str]) -> list[tuple[str, int, str]]:
    """Return (host_ip, host_port, protocol) of each port that a service publishes."""
    result = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            if "published" not in port:
                continue
            host_ip = interpolate(str(port.get("host_ip", "0.0.0.0")), environment)
            published = interpolate(str(port["published"]), environment)
            protocol = port.get("protocol", "tcp")
        else:
            text = interpolate(str(port), environment)
            mapping, _, protocol = text.partition("/")
            parts = mapping.split(":")
            if len(parts) == 1:
                continue
            host_ip = parts[0] if len(parts) == 3 else "0.0.0.0"
            published = parts[-2]
            protocol = protocol or "tcp"
        result.append((host_ip, int(published), protocol))
    return result


def dependencies(service: dict) -> dict[str, dict]:
    depends_on = service.get("depends_on", {})
    if isinstance(depends_on, list):
        return {name: {"condition": "service_started"} for name in depends_on}
    return depends_on


def flag_value(command: list[str], flag: str) -> str | None:
    """Return the value of --flag=value or --flag value in a command list."""
    for index, argument in enumerate(command):
        if argument.startswith(f"{flag}="):
            return argument.split("=", 1)[1]
        if argument == flag and index + 1 < len(command):
            return command[index + 1]
    return None


def parse_pins(path: Path) -> dict[str, str]:
    """Return {normalized name: version} of the name==version lines of a requirements file."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


def load_pipeline_config():
    # config.py imports only the standard library. The module is registered before it runs,
    # because dataclasses look up the defining module while building the class.
    spec = importlib.util.spec_from_file_location("_dp_pipeline_config", PIPELINE_CONFIG)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def copy_sources(dockerfile: Path) -> list[str]:
    """Return the source paths of the COPY instructions of a Dockerfile."""
    sources = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if not words or words[0].upper() != "COPY":
            continue
        arguments = [word for word in words[1:] if not word.startswith("--")]
        sources.extend(arguments[:-1])
    return sources


# --- Fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    with COMPOSE_FILE.open() as file:
        return yaml.safe_load(file)


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture(scope="module")
def env_lines() -> list[str]:
    return ENV_EXAMPLE.read_text().splitlines()


@pytest.fixture(scope="module")
def env_example(env_lines) -> dict[str, str]:
    values = {}
    for line in env_lines:
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


@pytest.fixture(scope="module")
def references(compose) -> list[tuple[str, str | None, str | None]]:
    found = []
    for text in iter_strings(compose):
        found.extend(variable_references(text))
    return found


@pytest.fixture(scope="module")
def one_shot_services(services) -> set[str]:
    """Services that others wait for with service_completed_successfully."""
    return {
        name
        for service in services.values()
        for name, dependency in dependencies(service).items()
        if dependency.get("condition") == "service_completed_successfully"
    }


@pytest.fixture(scope="module")
def airflow_common_env(compose) -> dict[str, str]:
    return as_mapping(compose[AIRFLOW_COMMON_ENV_KEY])


# --- Schema ---------------------------------------------------------------------------------


def test_schema_file_unchanged():
    digest = hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest()
    assert digest == SCHEMA_SHA256, (
        f"{SCHEMA_FILE.name} differs from the copy taken from dclint 3.1.0. "
        "Update SCHEMA_SHA256 and the provenance comment together with the file"
    )


def test_compose_matches_schema(compose):
    schema = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(compose)
    ]
    assert not errors, "docker-compose.yaml violates the Compose Specification:\n" + "\n".join(
        errors
    )


# --- Variables and .env.example -------------------------------------------------------------


def test_variables_listed_in_env_example(references, env_example):
    missing = sorted({name for name, _, _ in references} - env_example.keys())
    assert not missing, f"docker-compose.yaml reads variables missing from .env.example: {missing}"


def test_env_example_defines_once(env_lines):
    names = [
        line.partition("=")[0].strip()
        for line in env_lines
        if line.strip() and not line.lstrip().startswith("#")
    ]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    assert not duplicates, f".env.example defines these variables more than once: {duplicates}"


def test_env_example_comments_each_variable(env_lines):
    uncommented = []
    previous = ""
    for line in env_lines:
        if line.strip() and not line.lstrip().startswith("#"):
            if not previous.lstrip().startswith("#"):
                uncommented.append(line.partition("=")[0])
        previous = line
    assert not uncommented, f".env.example has no comment line above: {uncommented}"


def test_env_example_lists_pipeline_variables(env_example):
    config = load_pipeline_config()
    variables = [
        value for value in vars(config).values() if isinstance(value, config.EnvironmentVariable)
    ]
    assert variables, f"found no EnvironmentVariable in {PIPELINE_CONFIG}"
    for variable in variables:
        assert variable.name in env_example, f".env.example lacks {variable.name}"
        assert env_example[variable.name] == str(variable.default), (
            f".env.example sets {variable.name}={env_example[variable.name]!r}, "
            f"but its default in config.py is {variable.default!r}"
        )


def test_env_example_lists_local_stack(env_example):
    missing = [name for name in LOCAL_STACK_VARIABLES if name not in env_example]
    assert not missing, f".env.example lacks local stack variables: {missing}"


# --- Secrets --------------------------------------------------------------------------------


def test_secrets_have_no_default(references):
    secrets = [reference for reference in references if SECRET_NAME.search(reference[0])]
    assert secrets, "found no secret variable in docker-compose.yaml"
    for name, operator, argument in secrets:
        assert operator == ":?", f"${{{name}}} must be written ${{{name}:?...}}, found {operator}"
        assert name in (argument or ""), f"the error message of ${{{name}:?...}} must name {name}"


def test_secrets_placeholders_in_env_example(references, env_example):
    for name in sorted({name for name, _, _ in references if SECRET_NAME.search(name)}):
        value = env_example.get(name, "")
        assert value.startswith(PLACEHOLDER_PREFIX), (
            f".env.example must give {name} a {PLACEHOLDER_PREFIX}-... placeholder, found {value!r}"
        )


def test_secrets_checked_before_start(references, services):
    checked = as_mapping(services[SECRET_CHECK_SERVICE].get("environment"))
    for name in sorted({name for name, _, _ in references if SECRET_NAME.search(name)}):
        key = f"SECRET_{name}"
        assert key in checked, f"{SECRET_CHECK_SERVICE} does not check {name} (expected {key})"
        assert checked[key].startswith(f"${{{name}:?"), f"{key} must be ${{{name}:?...}}"


def test_services_start_after_secret_check(services):
    def reaches_check(name: str, seen: set[str]) -> bool:
        if name == SECRET_CHECK_SERVICE:
            return True
        seen.add(name)
        # A dependency with `required: false` may be absent, so it does not count.
        return any(
            reaches_check(target, seen)
            for target, dependency in dependencies(services[name]).items()
            if target in services and target not in seen and dependency.get("required", True)
        )

    for name in services:
        if name != SECRET_CHECK_SERVICE:
            assert reaches_check(name, set()), f"{name} can start before {SECRET_CHECK_SERVICE}"


# --- Dependencies, healthchecks and restart policies ----------------------------------------


def test_depends_on_targets_exist(services):
    for name, service in services.items():
        for target in dependencies(service):
            assert target in services, f"{name} depends on the undefined service {target}"


def test_depends_on_conditions(services):
    for name, service in services.items():
        for target, dependency in dependencies(service).items():
            condition = dependency.get("condition")
            assert condition in ("service_healthy", "service_completed_successfully"), (
                f"{name} waits for {target} with {condition!r}. "
                "Use service_healthy or service_completed_successfully"
            )
            if condition == "service_healthy":
                assert "healthcheck" in services[target], (
                    f"{name} waits for {target} to be healthy, but {target} has no healthcheck"
                )


def test_one_shot_services_do_not_restart(services, one_shot_services):
    for name in sorted(one_shot_services):
        restart = services[name].get("restart", "no")
        assert restart == "no", f"one-shot service {name} has restart {restart!r}, expected 'no'"
        assert "healthcheck" not in services[name], f"one-shot service {name} has a healthcheck"


def test_long_running_have_healthcheck(services, one_shot_services):
    for name in sorted(services.keys() - one_shot_services):
        assert "healthcheck" in services[name], f"long-running service {name} has no healthcheck"


def test_long_running_have_restart(services, one_shot_services):
    for name in sorted(services.keys() - one_shot_services):
        restart = services[name].get("restart")
        assert restart in LONG_RUNNING_RESTART_POLICIES, (
            f"long-running service {name} has restart {restart!r}, "
            f"expected one of {sorted(LONG_RUNNING_RESTART_POLICIES)}"
        )


# --- Airflow --------------------------------------------------------------------------------


def test_airflow_services_defined(services):
    defined = {name for name in services if name.startswith("airflow-")}
    assert defined == AIRFLOW_SERVICES, f"Airflow services differ: {sorted(defined)}"


def test_airflow_services_share_image(services):
    reference = services["airflow-apiserver"]
    for name in sorted(AIRFLOW_SERVICES):
        assert services[name].get("image") == reference.get("image"), f"{name} uses another image"
        assert services[name].get("build") == reference.get("build"), f"{name} has another build"
    assert reference["build"]["dockerfile"] == "docker/airflow/Dockerfile"


def test_airflow_services_share_environment(services, airflow_common_env):
    for name in sorted(AIRFLOW_SERVICES):
        environment = as_mapping(services[name].get("environment"))
        for key, value in airflow_common_env.items():
            assert environment.get(key) == value, (
                f"{name} sets {key}={environment.get(key)!r}, "
                f"but {AIRFLOW_COMMON_ENV_KEY} has {value!r}"
            )
        extra = sorted(
            key
            for key in environment.keys() - airflow_common_env.keys()
            if key.startswith("AIRFLOW__")
        )
        assert not extra, f"{name} sets Airflow configuration outside the shared block: {extra}"


@pytest.mark.parametrize(
    ("key", "variable"),
    [
        ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW_JWT_SECRET"),
        ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW_FERNET_KEY"),
        ("AIRFLOW__API__SECRET_KEY", "AIRFLOW_API_SECRET_KEY"),
    ],
)
def test_airflow_keys_identical(services, key, variable):
    values = {
        name: as_mapping(services[name].get("environment")).get(key) for name in AIRFLOW_SERVICES
    }
    assert len(set(values.values())) == 1, f"{key} differs between Airflow services: {values}"
    value = values["airflow-apiserver"]
    assert value.startswith(f"${{{variable}:?"), f"{key} must come from ${{{variable}:?...}}"


def test_airflow_mounts_project_folders(services):
    expected = {
        "./dags": "/opt/airflow/dags",
        "./plugins": "/opt/airflow/plugins",
        "./include": "/opt/airflow/include",
    }
    for name in sorted(AIRFLOW_SERVICES):
        mounted = dict(mounts(services[name]))
        for source, target in expected.items():
            assert mounted.get(source) == target, f"{name} does not mount {source} at {target}"


def test_airflow_pythonpath_has_include(services):
    for name in sorted(AIRFLOW_SERVICES):
        environment = as_mapping(services[name].get("environment"))
        entries = environment.get("PYTHONPATH", "").split(":")
        assert "/opt/airflow/include" in entries, (
            f"{name} has no /opt/airflow/include on PYTHONPATH"
        )


def test_venv_cache_on_named_volume(compose, services):
    declared = compose.get("volumes") or {}
    for name in sorted(AIRFLOW_SERVICES):
        service = services[name]
        cache = as_mapping(service.get("environment")).get("DP_PIPELINE_VENV_CACHE")
        assert cache == "/opt/airflow/venv-cache", f"{name} sets DP_PIPELINE_VENV_CACHE={cache!r}"
        sources = [source for source, target in mounts(service) if target == cache]
        assert sources, f"{name} mounts nothing at {cache}"
        assert is_named_volume(sources[0]), f"{name} mounts {sources[0]} at {cache}, not a volume"
        assert sources[0] in declared, f"volume {sources[0]} of {name} is not declared"


def test_airflow_connection_reaches_object_store(airflow_common_env, env_example):
    raw = interpolate(airflow_common_env["AIRFLOW_CONN_AWS_DEFAULT"], env_example)
    connection = json.loads(raw)
    endpoint = connection["extra"]["endpoint_url"]
    assert connection["conn_type"] == "aws", "AIRFLOW_CONN_AWS_DEFAULT is not an aws connection"
    assert endpoint == airflow_common_env["AWS_ENDPOINT_URL_S3"], (
        f"AIRFLOW_CONN_AWS_DEFAULT endpoint_url {endpoint} differs from AWS_ENDPOINT_URL_S3"
    )
    assert urlsplit(endpoint).hostname == OBJECT_STORE_SERVICE, (
        f"AWS_ENDPOINT_URL_S3 {endpoint} does not name the {OBJECT_STORE_SERVICE} service"
    )


def test_airflow_tasks_get_s3_credentials(airflow_common_env):
    for key in ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert airflow_common_env.get(key), f"{AIRFLOW_COMMON_ENV_KEY} does not set {key}"


def test_airflow_reaches_mlflow(airflow_common_env, services):
    uri = urlsplit(airflow_common_env["MLFLOW_TRACKING_URI"])
    port = flag_value(services[MLFLOW_SERVICE]["command"], "--port")
    assert uri.hostname == MLFLOW_SERVICE, f"MLFLOW_TRACKING_URI names {uri.hostname}"
    assert str(uri.port) == port, f"MLFLOW_TRACKING_URI port {uri.port} differs from --port {port}"
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert airflow_common_env.get(key), f"{AIRFLOW_COMMON_ENV_KEY} does not set {key}"


@pytest.mark.parametrize("key", ["DP_PIPELINE_DATA_SOURCE", "DP_PIPELINE_SCHEDULE"])
def test_airflow_passes_pipeline_setting(airflow_common_env, key):
    assert airflow_common_env.get(key, "").startswith(f"${{{key}"), f"{key} is not read from .env"


def test_airflow_metadata_db_on_postgres(airflow_common_env, env_example):
    url = interpolate(airflow_common_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], env_example)
    parts = urlsplit(url)
    assert parts.hostname == POSTGRES_SERVICE, f"Airflow's metadata database is on {parts.hostname}"
    assert parts.path == "/airflow", f"Airflow's metadata database is {parts.path}"


# --- Executor and the celery profile --------------------------------------------------------


def test_executor_follows_env(airflow_common_env):
    executor = airflow_common_env["AIRFLOW__CORE__EXECUTOR"]
    assert executor == "${AIRFLOW_EXECUTOR:-LocalExecutor}", f"AIRFLOW__CORE__EXECUTOR={executor}"


def test_celery_profile_services(services):
    for name in sorted(CELERY_SERVICES):
        assert name in services, f"the {CELERY_PROFILE} profile lacks the {name} service"
        profiles = services[name].get("profiles", [])
        assert profiles == [CELERY_PROFILE], f"{name} has profiles {profiles}"


def test_only_celery_services_have_profiles(services):
    for name in sorted(services.keys() - CELERY_SERVICES):
        assert "profiles" not in services[name], f"{name} is in a profile, so it may not start"


def test_worker_can_scale(services, env_example):
    worker = services["airflow-worker"]
    assert "container_name" not in worker, "airflow-worker has a container_name"
    assert not published_ports(worker, env_example), "airflow-worker publishes a host port"


# --- MLflow, PostgreSQL and the object store ------------------------------------------------


def test_mlflow_backend_store_on_postgres(services, env_example):
    environment = as_mapping(services[MLFLOW_SERVICE]["environment"])
    uri = urlsplit(interpolate(environment["MLFLOW_BACKEND_STORE_URI"], env_example))
    assert uri.hostname == POSTGRES_SERVICE, f"MLflow's backend store is on {uri.hostname}"
    assert uri.path == "/mlflow", f"MLflow's backend store is the database {uri.path}"
    assert services[POSTGRES_SERVICE]["image"].startswith("postgres:"), "postgres runs no postgres"


def test_mlflow_serves_s3_artifacts(services):
    service = services[MLFLOW_SERVICE]
    command = service["command"]
    environment = as_mapping(service["environment"])
    assert "--serve-artifacts" in command, "mlflow does not serve artifacts"
    assert flag_value(command, "--artifacts-destination") == "s3://mlflow/"
    endpoint = urlsplit(environment.get("MLFLOW_S3_ENDPOINT_URL", ""))
    assert endpoint.hostname == OBJECT_STORE_SERVICE, f"MLFLOW_S3_ENDPOINT_URL is {endpoint}"


def test_mlflow_requires_basic_auth(services):
    service = services[MLFLOW_SERVICE]
    environment = as_mapping(service["environment"])
    assert flag_value(service["command"], "--app-name") == "basic-auth", "mlflow has no auth"
    for key in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert environment.get(key, "").startswith("${"), f"mlflow takes {key} from nowhere"


def test_mlflow_allows_service_host(services, env_example):
    allowed = interpolate(flag_value(services[MLFLOW_SERVICE]["command"], "--allowed-hosts"), {})
    assert "mlflow:5000" in allowed.split(","), f"--allowed-hosts {allowed} lacks mlflow:5000"


def test_postgres_init_creates_databases(services):
    targets = [target for _, target in mounts(services[POSTGRES_SERVICE])]
    script = POSTGRES_INIT.read_text()
    assert any(target.startswith("/docker-entrypoint-initdb.d/") for target in targets)
    for database in ("airflow", "mlflow", "mlflow_auth"):
        assert f"CREATE DATABASE {database} " in script, f"no CREATE DATABASE {database}"


def test_buckets_created(services):
    environment = as_mapping(services[BUCKET_SERVICE]["environment"])
    buckets = interpolate(environment["BUCKETS"], {}).split(",")
    default_bucket = load_pipeline_config().BUCKET.default
    assert default_bucket in buckets, f"{BUCKET_SERVICE} does not create {default_bucket}"
    assert "mlflow" in buckets, f"{BUCKET_SERVICE} does not create the mlflow bucket"


# --- Ports, volumes, images and build inputs ------------------------------------------------


@pytest.mark.parametrize("source", ["defaults", ".env.example"])
def test_host_ports_unique(services, env_example, source):
    environment = {} if source == "defaults" else env_example
    owners: dict[tuple[int, str], str] = {}
    for name, service in services.items():
        for _, port, protocol in published_ports(service, environment):
            key = (port, protocol)
            assert key not in owners, f"{name} and {owners.get(key)} both publish {port}/{protocol}"
            owners[key] = name


def test_ports_bind_loopback_by_default(services):
    for name, service in services.items():
        for host_ip, port, _ in published_ports(service, {}):
            assert host_ip == "127.0.0.1", f"{name} publishes {port} on {host_ip} by default"


def test_named_volumes_declared(compose, services):
    declared = compose.get("volumes") or {}
    for name, service in services.items():
        for source, _ in mounts(service):
            if is_named_volume(source):
                assert source in declared, f"{name} mounts the undeclared volume {source}"


def test_bind_mount_sources_exist(services):
    for name, service in services.items():
        for source, _ in mounts(service):
            if source.startswith("./"):
                assert (REPO_ROOT / source).exists(), f"{name} mounts {source}, which is missing"


def test_images_pinned(services):
    for name, service in services.items():
        image = service.get("image", "")
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        assert tag, f"{name} uses {image!r} without a tag"
        assert tag != "latest", f"{name} uses the latest tag"
        assert re.search(r"\d", tag), f"{name} uses {image!r}, whose tag has no version"


def test_airflow_image_matches_requirements(services):
    dockerfile = AIRFLOW_DOCKERFILE.read_text()
    version = re.search(r"^ARG AIRFLOW_VERSION=(\S+)$", dockerfile, re.MULTILINE)
    pins = parse_pins(REQUIREMENTS)
    assert version, f"{AIRFLOW_DOCKERFILE} sets no default AIRFLOW_VERSION"
    assert version[1] == pins["apache-airflow"], (
        f"the Airflow image builds {version[1]}, requirements.txt pins {pins['apache-airflow']}"
    )
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}-python3\.11$", dockerfile, re.M)
    tag = services["airflow-apiserver"]["image"].rpartition(":")[2]
    assert tag == version[1], f"the Airflow image is tagged {tag}, but builds {version[1]}"


def test_mlflow_image_matches_requirements(services):
    image_pins = parse_pins(MLFLOW_REQUIREMENTS)
    project_pins = parse_pins(REQUIREMENTS)
    for name in ("mlflow", "psycopg2-binary", "boto3", "flask-wtf"):
        assert name in image_pins, f"{MLFLOW_REQUIREMENTS.name} does not pin {name}"
    for name, version in image_pins.items():
        expected = project_pins.get(name, version)
        assert version == expected, f"the MLflow image pins {name}=={version}, not {expected}"
    tag = services[MLFLOW_SERVICE]["image"].rpartition(":")[2]
    assert tag == image_pins["mlflow"], f"the MLflow image is tagged {tag}"


@pytest.mark.parametrize("dockerfile", [AIRFLOW_DOCKERFILE, MLFLOW_DOCKERFILE], ids=str)
def test_dockerfile_copies_existing_files(dockerfile):
    ignore_file = dockerfile.with_name(f"{dockerfile.name}.dockerignore")
    allowed = {
        line[1:].strip() for line in ignore_file.read_text().splitlines() if line.startswith("!")
    }
    for source in copy_sources(dockerfile):
        assert (REPO_ROOT / source).is_file(), f"{dockerfile} copies {source}, which is missing"
        assert source in allowed, f"{ignore_file.name} does not let {source} into the context"


def test_builds_use_existing_dockerfiles(services):
    for name, service in services.items():
        build = service.get("build")
        if build:
            path = REPO_ROOT / build["context"] / build["dockerfile"]
            assert path.is_file(), f"{name} builds from {path}, which is missing"
