"""Splitting and writing the preprocessed data."""

from __future__ import annotations

import pandas as pd
import pytest
from adult_rows import adult_data_file, adult_test_file

from dp_pipeline import storage
from dp_pipeline.features import AdultEncoder
from dp_pipeline.preprocess import preprocess, read_parquet, split_train_validation


def numbered_frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"row": range(rows)})


def test_split_sizes_and_disjointness():
    train, validation = split_train_validation(numbered_frame(1000), 0.1, seed=7)
    assert len(validation) == 100
    assert len(train) == 900
    assert set(train["row"]).isdisjoint(validation["row"])


def test_split_is_reproducible_for_a_seed():
    first, _ = split_train_validation(numbered_frame(1000), 0.2, seed=3)
    second, _ = split_train_validation(numbered_frame(1000), 0.2, seed=3)
    other, _ = split_train_validation(numbered_frame(1000), 0.2, seed=4)
    assert first["row"].tolist() == second["row"].tolist()
    assert first["row"].tolist() != other["row"].tolist()


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5])
def test_split_rejects_fraction_outside_unit_interval(fraction):
    with pytest.raises(ValueError, match="validation_fraction must be between 0 and 1"):
        split_train_validation(numbered_frame(10), fraction, seed=1)


def test_preprocess_writes_splits_and_encoder(s3_server):
    prefix = f"s3://{s3_server['bucket']}/preprocess"
    raw = {
        "train": storage.put_bytes(f"{prefix}/raw/adult.data", adult_data_file(200)),
        "test": storage.put_bytes(f"{prefix}/raw/adult.test", adult_test_file(150)),
    }
    uris = preprocess(raw, f"{prefix}/splits", validation_fraction=0.25, seed=1)
    train, validation, test = (read_parquet(uris[name]) for name in ("train", "validation", "test"))
    assert (len(train), len(validation), len(test)) == (150, 50, 150)
    assert set(train["income"]) == {0, 1}
    assert train["workclass"].isna().sum() > 0
    encoder = AdultEncoder.from_json(storage.get_bytes(uris["encoder"]).decode())
    assert encoder == AdultEncoder()
