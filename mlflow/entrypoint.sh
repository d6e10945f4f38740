#!/bin/sh
# Start `mlflow server` with the arguments given, after writing the basic-auth configuration.
#
# MLflow reads the auth database URI only from the file named by MLFLOW_AUTH_CONFIG_PATH, and
# that URI contains a password, so the file is written at start-up from MLFLOW_AUTH_DATABASE_URI
# instead of being baked into the image. The admin user comes from MLFLOW_AUTH_ADMIN_USERNAME
# and MLFLOW_AUTH_ADMIN_PASSWORD, which MLflow 3.17.2 reads from the environment itself.
set -eu

uses_basic_auth=false
for argument in "$@"; do
    case "$argument" in
        --app-name=basic-auth | basic-auth) uses_basic_auth=true ;;
    esac
done

if [ -n "${MLFLOW_AUTH_DATABASE_URI:-}" ]; then
    case "$MLFLOW_AUTH_DATABASE_URI" in
        *%*)
            # configparser treats '%' as the start of an interpolation.
            echo "mlflow-entrypoint: MLFLOW_AUTH_DATABASE_URI must not contain '%'. Use a password without percent-encoded characters." >&2
            exit 1
            ;;
    esac
    config_dir=$(mktemp -d /tmp/mlflow-auth.XXXXXX)
    config_path="$config_dir/basic_auth.ini"
    (
        umask 077
        cat >"$config_path" <<EOF
[mlflow]
default_permission = READ
database_uri = ${MLFLOW_AUTH_DATABASE_URI}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
grant_default_workspace_access = false
EOF
    )
    export MLFLOW_AUTH_CONFIG_PATH="$config_path"
elif [ "$uses_basic_auth" = true ]; then
    echo "mlflow-entrypoint: --app-name basic-auth needs MLFLOW_AUTH_DATABASE_URI, the SQLAlchemy URI of the auth database." >&2
    exit 1
fi

exec mlflow server "$@"
