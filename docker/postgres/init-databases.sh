#!/usr/bin/env bash
# Create the roles and databases of the deployment. The postgres image runs this once, when the
# data volume is empty, so later password changes in .env need ALTER ROLE or a new volume.
#
#   airflow      Airflow's metadata database, and the Celery result backend
#   mlflow       MLflow's backend store (runs, metrics, model registry)
#   mlflow_auth  users and permissions of MLflow's basic-auth app

# The script does without `set -u`, because the postgres entrypoint sources scripts that are not
# executable and the option would then stay on in the entrypoint's own shell.
set -eo pipefail

: "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD must be set}"
: "${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD must be set}"

# psql's :'name' syntax quotes the passwords as SQL literals, so no value is spliced into SQL.
psql --set=ON_ERROR_STOP=1 \
    --username="${POSTGRES_USER}" \
    --dbname="${POSTGRES_DB}" \
    --set=airflow_password="${AIRFLOW_DB_PASSWORD}" \
    --set=mlflow_password="${MLFLOW_DB_PASSWORD}" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';

CREATE DATABASE airflow OWNER airflow;
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;

-- Each role reaches only its own databases.
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
REVOKE ALL ON DATABASE mlflow_auth FROM PUBLIC;
SQL
