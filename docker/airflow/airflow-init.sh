#!/usr/bin/env bash
# One-shot start-up job of the Airflow services: checks the settings that would otherwise fail
# later and less clearly, migrates the metadata database and writes the UI login.
set -euo pipefail

log() {
    echo "airflow-init: $*"
}

fail() {
    echo "airflow-init: error: $*" >&2
    exit 1
}

check_executor_matches_profile() {
    # Docker's DNS resolves the name redis only while the celery profile runs that service.
    local executor="${AIRFLOW__CORE__EXECUTOR:-}"
    if [[ "${executor}" == "CeleryExecutor" ]]; then
        getent hosts redis >/dev/null \
            || fail "AIRFLOW_EXECUTOR is CeleryExecutor but the redis service is not running." \
                "Start with 'docker compose --profile celery up', or set" \
                "AIRFLOW_EXECUTOR=LocalExecutor in .env."
    elif getent hosts redis >/dev/null; then
        log "warning: the celery profile is active but AIRFLOW_EXECUTOR is '${executor}'," \
            "so airflow-worker gets no tasks. Set AIRFLOW_EXECUTOR=CeleryExecutor in .env."
    fi
}

check_fernet_key() {
    python - 2>/dev/null <<'PYTHON' || fail "AIRFLOW_FERNET_KEY is not a valid Fernet key (32 url-safe base64-encoded bytes). Generate one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
import os

from cryptography.fernet import Fernet

Fernet(os.environ["AIRFLOW__CORE__FERNET_KEY"])
PYTHON
}

check_admin_username() {
    # The simple auth manager splits its user list on ',' and each entry on ':'.
    [[ -n "${AIRFLOW_ADMIN_USERNAME}" && "${AIRFLOW_ADMIN_USERNAME}" != *[,:]* ]] \
        || fail "AIRFLOW_ADMIN_USERNAME '${AIRFLOW_ADMIN_USERNAME}' is empty or contains ',' or ':'."
}

write_passwords_file() {
    # Written on every start, so a new AIRFLOW_ADMIN_PASSWORD in .env takes effect after
    # `docker compose up`. The rename keeps the API server from reading a half-written file.
    python - <<'PYTHON'
import json
import os
import tempfile
from pathlib import Path

path = Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
path.parent.mkdir(parents=True, exist_ok=True)
passwords = {os.environ["AIRFLOW_ADMIN_USERNAME"]: os.environ["AIRFLOW_ADMIN_PASSWORD"]}
descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".passwords-")
with os.fdopen(descriptor, "w") as file:
    json.dump(passwords, file)
    file.write("\n")
os.chmod(temporary, 0o600)
os.replace(temporary, path)
PYTHON
    log "wrote the login of '${AIRFLOW_ADMIN_USERNAME}' to ${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE}"
}

: "${AIRFLOW_ADMIN_USERNAME:?AIRFLOW_ADMIN_USERNAME must be set}"
: "${AIRFLOW_ADMIN_PASSWORD:?AIRFLOW_ADMIN_PASSWORD must be set}"
: "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE must be set}"

check_executor_matches_profile
check_fernet_key
check_admin_username

log "migrating the metadata database"
airflow db migrate

write_passwords_file
log "done"
