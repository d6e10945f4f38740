"""Preprocess step: split the validated rows and store them with the encoder."""

from __future__ import annotations

import io
import logging

from dp_pipeline import adult, storage
from dp_pipeline.features import AdultEncoder
from dp_pipeline.validate import parse_adult_file

logger = logging.getLogger(__name__)


def to_frame(columns: dict[str, list]):
    """Build a DataFrame from parsed columns, with missing categories as None."""
    import pandas as pd

    frame = pd.DataFrame({name: columns[name] for name in adult.COLUMNS})
    for column in adult.CATEGORIES:
        frame[column] = frame[column].astype(object)
    return frame


def split_train_validation(frame, validation_fraction: float, seed: int):
    """Split rows at random, seeded, into a training and a validation frame."""
    import numpy as np

    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(
            f"validation_fraction must be between 0 and 1, found {validation_fraction}"
        )
    order = np.random.default_rng(seed).permutation(len(frame))
    validation_size = int(round(len(frame) * validation_fraction))
    validation = frame.iloc[order[:validation_size]].reset_index(drop=True)
    train = frame.iloc[order[validation_size:]].reset_index(drop=True)
    return train, validation


def write_parquet(frame, uri: str) -> str:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return storage.put_bytes(uri, buffer.getvalue())


def read_parquet(uri: str):
    import pandas as pd

    return pd.read_parquet(io.BytesIO(storage.get_bytes(uri)))


def preprocess(
    raw: dict[str, str], output_prefix: str, *, validation_fraction: float, seed: int
) -> dict[str, str]:
    """Write train, validation and test Parquet files and the encoder under ``output_prefix``."""
    train_file = parse_adult_file(adult.TRAIN_FILE, storage.get_bytes(raw["train"]))
    test_file = parse_adult_file(adult.TEST_FILE, storage.get_bytes(raw["test"]))
    train, validation = split_train_validation(
        to_frame(train_file.columns), validation_fraction, seed
    )
    test = to_frame(test_file.columns)
    logger.info(
        "Split %d training rows into %d for training and %d for validation; %d test rows",
        train_file.report.rows,
        len(train),
        len(validation),
        len(test),
    )
    uris = {
        name: write_parquet(frame, storage.join(output_prefix, f"{name}.parquet"))
        for name, frame in (
            ("train", train),
            ("validation", validation),
            ("test", test),
        )
    }
    uris["encoder"] = storage.put_bytes(
        storage.join(output_prefix, "encoder.json"), AdultEncoder().to_json().encode()
    )
    return uris
