"""Feature encoding built only from public information about the Adult schema.

Nothing in the encoder is fitted on the rows: the category lists come from adult.names
and the numeric bounds are fixed below. The encoder therefore ships inside the model
without spending any privacy budget, and the same code encodes the training data and
the rows that the served model receives.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from dp_pipeline import adult

# Fixed bounds for scaling numerics to [0, 1]. They follow the census coding (age 17 to
# 90, hours top-coded at 99, capital gains at 99,999, at most 16 years of education) and
# a round upper bound for the sampling weight. Values outside are clipped.
SCALING_BOUNDS: dict[str, tuple[float, float]] = {
    "age": (17.0, 90.0),
    "fnlwgt": (10_000.0, 1_500_000.0),
    "education-num": (1.0, 16.0),
    "capital-gain": (0.0, 99_999.0),
    "capital-loss": (0.0, 5_000.0),
    "hours-per-week": (1.0, 99.0),
}
# Heavy-tailed columns are scaled on a log(1 + x) axis.
LOG_SCALED = ("fnlwgt", "capital-gain", "capital-loss")


@dataclass(frozen=True)
class AdultEncoder:
    """One-hot encoding of categoricals and bounded min-max scaling of numerics.

    A missing value (``?``) or a category not listed in adult.names encodes as all zeros
    in that column's one-hot block.
    """

    categories: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(adult.CATEGORIES))
    bounds: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(SCALING_BOUNDS))
    log_scaled: tuple[str, ...] = LOG_SCALED

    @property
    def feature_names(self) -> list[str]:
        names = list(adult.NUMERIC_COLUMNS)
        for column in adult.FEATURE_COLUMNS:
            if column in self.categories:
                names.extend(f"{column}={value}" for value in self.categories[column])
        return names

    def transform(self, frame):
        """Encode a DataFrame of raw census columns into a float32 matrix."""
        import numpy as np

        missing = [column for column in adult.FEATURE_COLUMNS if column not in frame.columns]
        if missing:
            raise KeyError(f"Missing feature columns: {', '.join(missing)}")
        blocks = [
            self._scale(frame[column].to_numpy(dtype="float64"), column)
            for column in adult.NUMERIC_COLUMNS
        ]
        for column in adult.FEATURE_COLUMNS:
            if column in self.categories:
                values = frame[column].to_numpy(dtype=object)
                blocks.extend(
                    (values == category).astype("float32") for category in self.categories[column]
                )
        return np.stack(blocks, axis=1).astype("float32")

    def unknown_categories(self, frame) -> dict[str, list[str]]:
        """Return, per column, the values that are neither listed nor missing."""
        unknown = {}
        for column, known in self.categories.items():
            values = set(frame[column].dropna().astype(str)) - set(known) - {adult.MISSING}
            if values:
                unknown[column] = sorted(values)
        return unknown

    def _scale(self, values, column: str):
        import numpy as np

        low, high = self.bounds[column]
        if column in self.log_scaled:
            values, low, high = (
                np.log1p(np.maximum(values, 0.0)),
                math.log1p(low),
                math.log1p(high),
            )
        return ((np.clip(values, low, high) - low) / (high - low)).astype("float32")

    def to_json(self) -> str:
        return json.dumps(
            {
                "categories": {k: list(v) for k, v in self.categories.items()},
                "bounds": {k: list(v) for k, v in self.bounds.items()},
                "log_scaled": list(self.log_scaled),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> AdultEncoder:
        spec = json.loads(text)
        return cls(
            categories={k: tuple(v) for k, v in spec["categories"].items()},
            bounds={k: (float(v[0]), float(v[1])) for k, v in spec["bounds"].items()},
            log_scaled=tuple(spec["log_scaled"]),
        )
