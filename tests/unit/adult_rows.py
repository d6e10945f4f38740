"""Small Adult files that the unit tests build, in the exact format of the UCI release."""

from __future__ import annotations

TRAIN_ROW = (
    "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, "
    "White, Male, 2174, 0, 40, United-States, <=50K"
)
RICH_ROW = (
    "52, Self-emp-inc, 287927, HS-grad, 9, Married-civ-spouse, Exec-managerial, Wife, "
    "White, Female, 15024, 0, 40, United-States, >50K"
)
MISSING_ROW = (
    "18, ?, 103497, Some-college, 10, Never-married, ?, Own-child, White, Female, 0, 0, 30, "
    "?, <=50K"
)


def adult_data_file(rows: int = 120, *, newline: str = "\n") -> bytes:
    """An adult.data look-alike: no header, a blank line at the end."""
    lines = [(TRAIN_ROW, RICH_ROW, MISSING_ROW)[index % 3] for index in range(rows)]
    return (newline.join(lines) + newline + newline).encode()


def adult_test_file(rows: int = 120) -> bytes:
    """An adult.test look-alike: the cross-validator line, labels ending in a full stop."""
    lines = [(TRAIN_ROW, RICH_ROW, MISSING_ROW)[index % 3] + "." for index in range(rows)]
    return ("|1x3 Cross validator\n" + "\n".join(lines) + "\n\n").encode()


def replace_line(data: bytes, line_number: int, new_line: str) -> bytes:
    """Return ``data`` with its 1-based ``line_number`` replaced."""
    lines = data.decode().split("\n")
    lines[line_number - 1] = new_line
    return "\n".join(lines).encode()
