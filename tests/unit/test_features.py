"""The public-information encoder: shapes, scaling, one-hot blocks and serialisation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dp_pipeline import adult
from dp_pipeline.features import AdultEncoder


def raw_frame(**changes) -> pd.DataFrame:
    row = {
        "age": 39,
        "workclass": "State-gov",
        "fnlwgt": 77516,
        "education": "Bachelors",
        "education-num": 13,
        "marital-status": "Never-married",
        "occupation": "Adm-clerical",
        "relationship": "Not-in-family",
        "race": "White",
        "sex": "Male",
        "capital-gain": 2174,
        "capital-loss": 0,
        "hours-per-week": 40,
        "native-country": "United-States",
    }
    row.update(changes)
    return pd.DataFrame([row])


def column(encoder: AdultEncoder, matrix: np.ndarray, name: str) -> np.ndarray:
    return matrix[:, encoder.feature_names.index(name)]


def test_encoder_width_matches_feature_names():
    encoder = AdultEncoder()
    matrix = encoder.transform(raw_frame())
    categories = sum(len(values) for values in adult.CATEGORIES.values())
    assert matrix.shape == (1, len(adult.NUMERIC_COLUMNS) + categories)
    assert len(encoder.feature_names) == matrix.shape[1]
    assert matrix.dtype == np.float32


def test_encoder_one_hot_sets_single_category():
    encoder = AdultEncoder()
    matrix = encoder.transform(raw_frame())
    block = [name for name in encoder.feature_names if name.startswith("workclass=")]
    values = [column(encoder, matrix, name)[0] for name in block]
    assert values.count(1.0) == 1
    assert column(encoder, matrix, "workclass=State-gov")[0] == 1.0


@pytest.mark.parametrize("value", ["?", None, "Space-gov"])
def test_encoder_missing_or_unknown_category_is_all_zeros(value):
    encoder = AdultEncoder()
    matrix = encoder.transform(raw_frame(workclass=value))
    block = [name for name in encoder.feature_names if name.startswith("workclass=")]
    assert all(column(encoder, matrix, name)[0] == 0.0 for name in block)


def test_encoder_scales_numeric_bounds_to_unit_interval():
    encoder = AdultEncoder()
    low = encoder.transform(raw_frame(age=17))
    high = encoder.transform(raw_frame(age=90))
    assert column(encoder, low, "age")[0] == 0.0
    assert column(encoder, high, "age")[0] == 1.0


def test_encoder_clips_values_outside_bounds():
    encoder = AdultEncoder()
    matrix = encoder.transform(raw_frame(age=120, **{"hours-per-week": 0}))
    assert column(encoder, matrix, "age")[0] == 1.0
    assert column(encoder, matrix, "hours-per-week")[0] == 0.0


def test_encoder_log_scales_capital_gain():
    encoder = AdultEncoder()
    matrix = encoder.transform(raw_frame(**{"capital-gain": 999}))
    expected = math.log1p(999) / math.log1p(99_999)
    assert column(encoder, matrix, "capital-gain")[0] == pytest.approx(expected, rel=1e-6)


def test_encoder_reports_unknown_categories():
    frame = pd.concat([raw_frame(race="Martian"), raw_frame(workclass="?")])
    assert AdultEncoder().unknown_categories(frame) == {"race": ["Martian"]}


def test_encoder_rejects_frame_missing_column():
    with pytest.raises(KeyError, match="Missing feature columns: age"):
        AdultEncoder().transform(raw_frame().drop(columns=["age"]))


def test_encoder_json_round_trip():
    encoder = AdultEncoder()
    restored = AdultEncoder.from_json(encoder.to_json())
    assert restored == encoder
    frame = raw_frame()
    np.testing.assert_array_equal(restored.transform(frame), encoder.transform(frame))


def test_categories_match_adult_names(adult_dir):
    listed = {}
    for line in (adult_dir / "adult.names").read_text().splitlines():
        name, _, values = line.partition(":")
        if name in adult.CATEGORIES:
            listed[name] = tuple(value.strip() for value in values.rstrip(".").split(","))
    assert listed == adult.CATEGORIES
