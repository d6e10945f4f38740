#!/bin/sh
# Stop the deployment before anything starts with a secret that is still the placeholder from
# .env.example, or that would break the URL or JSON it is embedded in. docker-compose.yaml
# passes each secret as SECRET_<NAME>. The messages name <NAME>, never the value.
set -eu

status=0
checked=0

for variable in $(env | sed -n 's/^\(SECRET_[A-Z0-9_]*\)=.*/\1/p' | sort); do
    name=${variable#SECRET_}
    value=$(printenv "$variable")
    checked=$((checked + 1))
    case "$value" in
        change-me*)
            echo "check-secrets: $name still has the placeholder value from .env.example. Set a real secret in .env." >&2
            status=1
            ;;
        *[!A-Za-z0-9._~=-]*)
            # The values go into connection URLs and a JSON connection string unescaped.
            echo "check-secrets: $name contains characters other than letters, digits and . _ ~ = -. Generate it with 'openssl rand -hex 32'." >&2
            status=1
            ;;
    esac
done

if [ "$checked" -eq 0 ]; then
    echo "check-secrets: no SECRET_* variable was passed, so nothing was checked." >&2
    exit 1
fi

if [ "$status" -eq 0 ]; then
    echo "check-secrets: $checked secrets checked."
fi
exit "$status"
