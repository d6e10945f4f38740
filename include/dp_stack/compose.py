"""Read docker-compose.yaml and an env file the way Docker Compose interpolates them.

The local twin of the Compose deployment (``dp_stack.airflow_services``) takes each
service's environment and command from the Compose file itself, so the two cannot drift
apart. Only the subset of the Compose Specification that docker-compose.yaml uses is
supported: ``$$``, ``$NAME``, ``${NAME}``, ``${NAME:-default}``, ``${NAME-default}``,
``${NAME:?message}``, ``${NAME?message}``, ``${NAME:+value}`` and ``${NAME+value}``, where
a default or value may itself contain ``${...}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


class ComposeError(ValueError):
    """The Compose file or env file cannot be read or interpolated."""


def read_env_file(path: Path) -> dict[str, str]:
    """Parse ``NAME=value`` lines, skipping blank lines and ``#`` comments.

    Values are taken literally up to the end of the line, with one pair of surrounding
    quotes removed, which is how Compose reads the unquoted values in .env.example.
    """
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, separator, value = stripped.partition("=")
        name = name.strip()
        if not separator or not _NAME.fullmatch(name):
            raise ComposeError(f"{path}:{number}: expected NAME=value, found {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Replace the ``$`` expressions in ``text`` with values from ``variables``.

    Raises ComposeError for a ``${NAME:?message}`` whose variable is unset or empty,
    with the message that the Compose file gives.
    """
    output: list[str] = []
    position = 0
    while True:
        dollar = text.find("$", position)
        if dollar < 0:
            output.append(text[position:])
            return "".join(output)
        output.append(text[position:dollar])
        following = text[dollar + 1 : dollar + 2]
        if following == "$":
            output.append("$")
            position = dollar + 2
        elif following == "{":
            end = _closing_brace(text, dollar + 2)
            output.append(_expand(text[dollar + 2 : end], variables))
            position = end + 1
        else:
            match = _NAME.match(text, dollar + 1)
            if match is None:
                raise ComposeError(f"Invalid '$' at position {dollar} in {text!r}; write $$")
            output.append(variables.get(match.group(), ""))
            position = match.end()


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise ComposeError(f"Unclosed '${{' in {text!r}")


def _expand(expression: str, variables: Mapping[str, str]) -> str:
    match = _NAME.match(expression)
    if match is None:
        raise ComposeError(f"Invalid variable expression ${{{expression}}}")
    name = match.group()
    rest = expression[match.end() :]
    if not rest:
        return variables.get(name, "")
    operator = next((op for op in _OPERATORS if rest.startswith(op)), None)
    if operator is None:
        raise ComposeError(f"Unsupported operator in ${{{expression}}}")
    argument = interpolate(rest[len(operator) :], variables)
    value = variables.get(name)
    # The operators with a colon treat an empty value like an unset one.
    missing = value is None or (operator.startswith(":") and value == "")
    if operator.endswith("-"):
        return argument if missing else value
    if operator.endswith("?"):
        if missing:
            raise ComposeError(argument or f"{name} must be set")
        return value
    return "" if missing else argument


def interpolate_tree(node: Any, variables: Mapping[str, str]) -> Any:
    """Interpolate every string in a parsed YAML document, keys excepted."""
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [interpolate_tree(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, variables) for key, value in node.items()}
    return node


def load_compose(path: Path, variables: Mapping[str, str]) -> dict[str, Any]:
    """Parse a Compose file, resolving anchors and merge keys, and interpolate it."""
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict) or "services" not in document:
        raise ComposeError(f"{path} has no top-level 'services' mapping")
    return interpolate_tree(document, variables)


def service_environment(compose: Mapping[str, Any], service: str) -> dict[str, str]:
    """Return a service's environment as strings, from either the mapping or the list form."""
    services = compose["services"]
    if service not in services:
        raise ComposeError(f"Service {service!r} not found; the file has {sorted(services)}")
    environment = services[service].get("environment") or {}
    if isinstance(environment, list):
        pairs = (item.partition("=") for item in environment)
        return {name: value for name, _, value in pairs}
    return {name: "" if value is None else str(value) for name, value in environment.items()}


def service_command(compose: Mapping[str, Any], service: str) -> list[str]:
    """Return a service's command as a list of arguments."""
    command = compose["services"][service].get("command") or []
    if isinstance(command, str):
        return command.split()
    return [str(argument) for argument in command]
